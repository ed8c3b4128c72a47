"""Bridge to R's lme4: fit a model in R and return it as a :class:`pylme.fitted.record.FitRecord`.

Importing this module is cheap; rpy2 (and so R) is loaded on the first call that needs it.
The numbers come from ``lme4::lmer`` and are the reference the pylme engine is tested against.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from pylme.fitted.record import FitRecord

__all__ = ["available", "fit", "fit_glmer", "glmer_devfun_values", "fit_with_extras", "devfun_values", "r_versions", "confint", "profile",
           "simulate", "bootmer", "inference"]

# R side of the bridge.  Everything R-specific happens here, so that Python only sees
# plain vectors and lists.  Each function gets a formula string and an R data.frame.
_R_CODE = r"""
local({
  fml <- function(formula) stats::as.formula(formula, env = new.env(parent = globalenv()))

  ctrl <- function(control) do.call(lme4::lmerControl, control)

  # Run expr, collecting (and muffling) its messages and warnings.
  collect <- function(expr) {
    msgs <- character(0); warns <- character(0)
    value <- withCallingHandlers(expr,
      message = function(m) {
        msgs <<- c(msgs, sub("\n$", "", conditionMessage(m)))
        invokeRestart("muffleMessage")
      },
      warning = function(w) {
        warns <<- c(warns, conditionMessage(w))
        invokeRestart("muffleWarning")
      })
    list(value = value, messages = msgs, warnings = warns)
  }

  # Per grouping factor: level labels, column names, conditional modes and their sds.
  ranef_parts <- function(fm) {
    rr <- lme4::ranef(fm, condVar = TRUE)
    lapply(rr, function(df) {
      pv <- attr(df, "postVar")
      if (is.null(pv)) pv <- attr(df, "condVar")
      blocks <- if (is.list(pv)) pv else list(pv)
      sds <- do.call(cbind, lapply(blocks, function(a)
        t(matrix(sqrt(apply(a, 3L, function(m) diag(as.matrix(m)))), nrow = dim(a)[1L]))))
      list(levels = rownames(df), columns = names(df),
           values = as.matrix(df), sd = unname(as.matrix(sds)))
    })
  }

  summarise <- function(fm) {
    vc <- as.data.frame(lme4::VarCorr(fm))
    is_reml <- lme4::isREML(fm)
    list(
      n = stats::nobs(fm),
      criterion = if (is_reml) lme4::REMLcrit(fm) else stats::deviance(fm),
      logLik = as.numeric(stats::logLik(fm)),
      AIC = stats::AIC(fm), BIC = stats::BIC(fm),
      theta = unname(lme4::getME(fm, "theta")),
      beta = lme4::fixef(fm),
      vcov = unname(as.matrix(stats::vcov(fm))),
      sigma = stats::sigma(fm),
      varcorr = list(grp = as.character(vc$grp), var1 = as.character(vc$var1),
                     var2 = as.character(vc$var2), vcov = vc$vcov, sdcor = vc$sdcor),
      ranef = ranef_parts(fm),
      fitted = unname(stats::fitted(fm)),
      residuals = unname(stats::residuals(fm, type = "response")),
      is_singular = lme4::isSingular(fm),
      col_dropped = names(attr(lme4::getME(fm, "X"), "col.dropped")))
  }

  fit <- function(formula, data, REML, control, weights = NULL) {
    args <- list(formula = fml(formula), data = data, REML = REML, control = ctrl(control))
    if (!is.null(weights)) args$weights <- data[[weights]]
    got <- collect(tryCatch(do.call(lme4::lmer, args), error = function(e) e))
    out <- list(messages = got$messages, warnings = got$warnings)
    if (inherits(got$value, "error")) return(c(out, error = conditionMessage(got$value)))
    s <- tryCatch(summarise(got$value), error = function(e) e)
    if (inherits(s, "error")) return(c(out, error = conditionMessage(s)))
    c(out, s)
  }

  devfun <- function(formula, data, REML, control, thetas, weights = NULL) {
    got <- collect(tryCatch({
      args <- list(formula = fml(formula), data = data, REML = REML, control = ctrl(control),
                   devFunOnly = TRUE)
      if (!is.null(weights)) args$weights <- data[[weights]]
      dd <- do.call(lme4::lmer, args)
      vapply(thetas, function(th) dd(th), numeric(1))
    }, error = function(e) e))
    if (inherits(got$value, "error")) stop(conditionMessage(got$value))
    got$value
  }

  # Inference on a fit: a table as list(rows, cols, vals) (a matrix or data frame).
  tab <- function(x) list(rows = rownames(x), cols = colnames(x), vals = unname(as.matrix(x)))

  refit_fun <- function(formula, data, REML) {
    fm <- lme4::lmer(fml(formula), data = data, REML = REML)
    vn <- c(sprintf(".sig%02d", seq_along(lme4::getME(fm, "theta"))), ".sigma")
    stat <- function(m) c(stats::setNames(c(lme4:::Cv_to_Sv(lme4::getME(m, "theta"),
        lengths(m@cnms), s = stats::sigma(m))), vn), lme4::fixef(m))
    list(fm = fm, stat = stat)
  }

  confint_tab <- function(formula, data, REML, method, level, nsim, seed, boot_type) {
    fm <- lme4::lmer(fml(formula), data = data, REML = REML)
    if (method == "boot") set.seed(seed)
    ci <- suppressMessages(stats::confint(fm, level = level, method = method, nsim = nsim,
                                          boot.type = boot_type))
    tab(ci)
  }

  profile_tab <- function(formula, data, REML) {
    fm <- lme4::lmer(fml(formula), data = data, REML = REML)
    pr <- as.data.frame(stats::profile(fm))
    list(par = as.character(pr$.par), vals = unname(as.matrix(pr[, setdiff(names(pr), c(".par", ".focal"))])),
         cols = setdiff(names(pr), c(".par", ".focal")))
  }

  simulate_mat <- function(formula, data, REML, nsim, seed, use_u) {
    fm <- lme4::lmer(fml(formula), data = data, REML = REML)
    unname(as.matrix(stats::simulate(fm, nsim = nsim, seed = seed, use.u = use_u)))
  }

  bootmer_tab <- function(formula, data, REML, nsim, seed, refit) {
    rf <- refit_fun(formula, data, REML)
    if (refit) {  # lme4's bootMer: refit() of each simulated response
      t <- lme4::bootMer(rf$fm, rf$stat, nsim = nsim, seed = seed)$t
    } else {      # a fresh lmer on each simulated response (lme4's refit of REML fits with p > 1 differs)
      ss <- stats::simulate(rf$fm, nsim = nsim, seed = seed)
      t <- t(vapply(ss, function(y) { d <- data; d[[all.vars(fml(formula))[1]]] <- y
                 rf$stat(lme4::lmer(fml(formula), data = d, REML = REML)) }, rf$stat(rf$fm)))
    }
    list(t0 = rf$stat(rf$fm), names = names(rf$stat(rf$fm)), t = unname(as.matrix(t)))
  }

  # lmerTest's and lme4's inference tables on one fit (see pylme.fitted.record.INFERENCE_KINDS)
  # the fixed part's first factor: emmeans' specs in the records (pylme.fitted.extract.first_factor)
  first_factor <- function(formula, data) {
    vars <- all.vars(lme4::nobars(fml(formula))[[3]])
    vars[vapply(vars, function(v) is.factor(data[[v]]) || is.character(data[[v]]), logical(1))][1]
  }
  emm_tab <- function(s, label, cols) {
    m <- as.matrix(as.data.frame(s)[, cols]); rownames(m) <- as.character(s[[label]]); tab(m) }
  numbered <- function(x, name) tab(matrix(unname(x), ncol = 1, dimnames = list(as.character(seq_along(x)), name)))
  repca_tab <- function(fm) {
    r <- lme4::rePCA(fm)
    rows <- unlist(lapply(names(r), function(n) paste0(n, ".", seq_along(r[[n]]$sdev))))
    vals <- do.call(rbind, lapply(r, function(p) cbind(p$sdev, p$sdev^2 / sum(p$sdev^2))))
    tab(matrix(vals, ncol = 2, dimnames = list(rows, c("sdev", "proportion")))) }

  inference_tabs <- function(formula, data, REML, kinds) {
    suppressMessages(library(lmerTest))
    quiet <- function(x) suppressMessages(suppressWarnings(x))
    env <- new.env(parent = globalenv())  # drop1's refits evaluate data and REML in the formula's environment
    env$data <- data; env$REML <- REML
    fm <- quiet(lmerTest::lmer(stats::as.formula(formula, env = env), data = data, REML = REML))
    emm <- function() quiet(emmeans::emmeans(fm, first_factor(formula, data)))
    one <- function(kind) switch(kind,
      emmeans_kenward_roger = emm_tab(summary(emm()), first_factor(formula, data),
                                      c("emmean", "SE", "df", "lower.CL", "upper.CL")),
      emmeans_pairs_kenward_roger = emm_tab(summary(pairs(emm())), "contrast",
                                            c("estimate", "SE", "df", "t.ratio", "p.value")),
      drop1 = tab(quiet(lme4:::drop1.merMod(fm, test = "Chisq"))),
      ranova = tab(quiet(lmerTest::ranova(fm))),
      hatvalues = numbered(stats::hatvalues(fm), "hat"),
      cooks_distance = numbered(stats::cooks.distance(fm), "cooks.distance"),
      rePCA = repca_tab(fm),
      wald = { ci <- stats::confint(fm, method = "Wald"); tab(ci[!is.na(ci[, 1]), , drop = FALSE]) },
      profile = tab(quiet(stats::confint(fm, method = "profile"))),
      satterthwaite = tab(summary(fm)$coefficients),
      kenward_roger = tab(quiet(summary(fm, ddf = "Kenward-Roger"))$coefficients),
      anova_satterthwaite = tab(anova(fm, type = 3)),
      anova_kenward_roger = tab(quiet(anova(fm, type = 3, ddf = "Kenward-Roger"))),
      stop("unknown inference kind ", kind))
    stats::setNames(lapply(kinds, one), kinds)
  }

  # glmer: family(link = link), optional weights/offset columns, nAGQ; the record's criterion is
  # -2 logLik (the optimised deviance); devfun_at: the stage-2 deviance function (devFunOnly) at pars
  glmer_args <- function(formula, data, family, link, nAGQ, weights, offset) {
    fam <- get(family, mode = "function", envir = asNamespace("stats"))
    args <- list(formula = fml(formula), data = data, family = if (is.null(link)) fam() else fam(link = link),
                 nAGQ = nAGQ)
    if (!is.null(weights)) args$weights <- data[[weights]]
    if (!is.null(offset)) args$offset <- data[[offset]]
    args
  }
  # family "negative.binomial": lme4::glmer.nb (its shape theta estimated); par then ends with that shape
  is_nb <- function(family) identical(family, "negative.binomial")
  glmer_fit <- function(formula, data, family, link, nAGQ, weights = NULL, offset = NULL) {
    args <- glmer_args(formula, data, if (is_nb(family)) "poisson" else family, link, nAGQ, weights, offset)
    if (is_nb(family)) args$family <- NULL
    fitter <- if (is_nb(family)) lme4::glmer.nb else lme4::glmer
    got <- collect(tryCatch(do.call(fitter, args), error = function(e) e))
    out <- list(messages = got$messages, warnings = got$warnings)
    if (inherits(got$value, "error")) return(c(out, error = conditionMessage(got$value)))
    fm <- got$value
    s <- tryCatch(summarise(fm), error = function(e) e)
    if (inherits(s, "error")) return(c(out, error = conditionMessage(s)))
    s$criterion <- -2 * as.numeric(stats::logLik(fm))
    s$sigma <- stats::sigma(fm)
    s$par <- if (nAGQ == 0) unname(lme4::getME(fm, "theta")) else c(unname(lme4::getME(fm, "theta")), unname(lme4::fixef(fm)))
    if (is_nb(family)) {
      s$family_theta <- lme4::getME(fm, "glmer.nb.theta")
      s$par <- c(s$par, s$family_theta)
    }
    c(out, s)
  }
  glmer_devfun <- function(formula, data, family, link, nAGQ, pars, weights = NULL, offset = NULL) {
    args <- c(glmer_args(formula, data, if (is_nb(family)) "poisson" else family, link, nAGQ, weights, offset),
              devFunOnly = TRUE)
    one <- function(p) {
      if (!is_nb(family)) return(do.call(lme4::glmer, args)(p))
      k <- length(p)  # a negative binomial point ends with the shape theta
      args$family <- MASS::negative.binomial(theta = p[k])
      do.call(lme4::glmer, args)(p[-k])
    }
    got <- collect(tryCatch({
      if (is_nb(family)) vapply(pars, one, numeric(1)) else {
        dd <- do.call(lme4::glmer, args)
        vapply(pars, function(p) dd(p), numeric(1))
      }
    }, error = function(e) e))
    if (inherits(got$value, "error")) stop(conditionMessage(got$value))
    got$value
  }

  make_factor <- function(codes, levels, ordered)
    factor(levels[codes], levels = levels, ordered = ordered)

  make_frame <- function(cols, n)
    structure(cols, class = "data.frame", row.names = .set_row_names(as.integer(n)))

  versions <- function()
    c(R = R.version.string, lme4 = utils::packageDescription("lme4")$Version)

  environment()
})
"""

_state: dict[str, Any] = {}


def _bridge() -> Any:
    """Load rpy2 and lme4 once; return the R environment holding the bridge functions."""
    if "env" in _state:
        return _state["env"]
    try:
        import rpy2.robjects as ro
    except Exception as exc:  # ImportError, or R itself failing to start
        raise RuntimeError(f"R with lme4 is not available: rpy2 could not load R ({exc})") from exc
    if not ro.r('isTRUE(requireNamespace("lme4", quietly = TRUE))')[0]:
        raise RuntimeError("R with lme4 is not available: R package 'lme4' is not installed")
    _state["ro"] = ro
    _state["env"] = ro.r(_R_CODE)
    return _state["env"]


def available() -> bool:
    """True when R, rpy2 and lme4 can be used."""
    try:
        _bridge()
    except RuntimeError:
        return False
    return True


def r_versions() -> dict[str, str]:
    """The R version string and the lme4 version, as {"R": ..., "lme4": ...}."""
    v = _bridge()["versions"]()
    return {"R": str(v[0]), "lme4": str(v[1])}


# ---------------------------------------------------------------- Python -> R


def _column_to_r(col: pd.Series) -> Any:
    """One DataFrame column as an R vector (factor, numeric, integer, logical or character)."""
    ro = _state["ro"]
    missing = col.isna().to_numpy()
    if isinstance(col.dtype, pd.CategoricalDtype):
        levels = ro.StrVector([str(c) for c in col.cat.categories])
        codes = [ro.NA_Integer if c < 0 else int(c) + 1 for c in col.cat.codes]
        return _bridge()["make_factor"](ro.IntVector(codes), levels, bool(col.cat.ordered))
    if pd.api.types.is_bool_dtype(col.dtype):
        return ro.BoolVector([ro.NA_Logical if m else bool(v) for v, m in zip(col, missing)])
    if pd.api.types.is_integer_dtype(col.dtype):
        vals = col.to_numpy(dtype=float, na_value=np.nan)
        if np.nanmax(np.abs(vals), initial=0) < 2**31 - 1:
            return ro.IntVector([ro.NA_Integer if m else int(v) for v, m in zip(vals, missing)])
        return ro.FloatVector([ro.NA_Real if m else float(v) for v, m in zip(vals, missing)])
    if pd.api.types.is_float_dtype(col.dtype):
        vals = col.to_numpy(dtype=float, na_value=np.nan)
        return ro.FloatVector([ro.NA_Real if m else float(v) for v, m in zip(vals, missing)])
    if pd.api.types.is_string_dtype(col.dtype) or col.dtype == object:
        return ro.StrVector([ro.NA_Character if m else str(v) for v, m in zip(col, missing)])
    raise TypeError(f"column {col.name!r}: dtype {col.dtype} has no R counterpart here")


def _frame_to_r(data: pd.DataFrame) -> Any:
    """The DataFrame as an R data.frame with the same column names."""
    ro = _state["ro"]
    cols = ro.ListVector([(str(name), _column_to_r(data.iloc[:, i]))
                          for i, name in enumerate(data.columns)])
    return _bridge()["make_frame"](cols, len(data))


def _value_to_r(value: Any) -> Any:
    """A control setting (scalar, list or dict) as an R value."""
    ro = _state["ro"]
    if isinstance(value, dict):
        return ro.ListVector({k: _value_to_r(v) for k, v in value.items()})
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if all(isinstance(v, bool) for v in items):
        return ro.BoolVector(items)
    if all(isinstance(v, int) for v in items):
        return ro.IntVector(items)
    if all(isinstance(v, (int, float)) for v in items):
        return ro.FloatVector(items)
    if all(isinstance(v, str) for v in items):
        return ro.StrVector(items)
    raise TypeError(f"control value {value!r} has no R counterpart here")


def _control_to_r(control: dict[str, Any]) -> Any:
    """lmerControl arguments; Python names use ``_`` where R's use ``.`` (check_conv_singular)."""
    ro = _state["ro"]
    return ro.ListVector({k.replace("_", "."): _value_to_r(v) for k, v in control.items()})


# ---------------------------------------------------------------- R -> Python


def _floats(x: Any) -> list[float]:
    """An R numeric vector or matrix (column-major) as floats, NA as nan."""
    return [float(v) for v in x]


def _strings(x: Any) -> list[str | None]:
    """An R character vector as strings, NA as None."""
    ro = _state["ro"]
    return [None if v is ro.NA_Character else str(v) for v in x]


def _get(x: Any, name: str) -> Any:
    """Element ``name`` of an R list, or None when absent or NULL."""
    names = list(x.names) if x.names is not None and x.names is not _state["ro"].NULL else []
    if name not in names:
        return None
    v = x[names.index(name)]
    return None if v is _state["ro"].NULL else v


def _matrix(x: Any) -> list[list[float]]:
    """An R matrix as a list of rows."""
    nrow, ncol = (int(d) for d in x.dim)
    flat = _floats(x)
    return [[flat[i + j * nrow] for j in range(ncol)] for i in range(nrow)]


def _named(x: Any) -> dict[str, float]:
    """A named R numeric vector as an ordered dict (empty for an empty or unnamed vector)."""
    if x.names is None or x.names is _state["ro"].NULL:
        return {}
    return dict(zip(_strings(x.names), _floats(x)))


def _ranef(parts: Any) -> tuple[dict, dict]:
    """ranef and condvar_sd dicts: group -> column -> level -> value."""
    ranef: dict[str, dict[str, dict[str, float]]] = {}
    sds: dict[str, dict[str, dict[str, float]]] = {}
    for grp, p in zip(_strings(parts.names), parts):
        levels, columns = _strings(_get(p, "levels")), _strings(_get(p, "columns"))
        vals, sd = _matrix(_get(p, "values")), _matrix(_get(p, "sd"))
        ranef[grp] = {c: {lv: vals[i][j] for i, lv in enumerate(levels)} for j, c in enumerate(columns)}
        sds[grp] = {c: {lv: sd[i][j] for i, lv in enumerate(levels)} for j, c in enumerate(columns)}
    return ranef, sds


def _varcorr(vc: Any) -> list[dict[str, Any]]:
    """Rows of as.data.frame(VarCorr(fm))."""
    cols = {k: _get(vc, k) for k in ("grp", "var1", "var2", "vcov", "sdcor")}
    grp, var1, var2 = (_strings(cols[k]) for k in ("grp", "var1", "var2"))
    vcov, sdcor = _floats(cols["vcov"]), _floats(cols["sdcor"])
    return [{"grp": g, "var1": a, "var2": b, "vcov": v, "sdcor": s}
            for g, a, b, v, s in zip(grp, var1, var2, vcov, sdcor)]


def _fill(rec: FitRecord, out: Any) -> None:
    """Copy the summarised lme4 fit ``out`` into ``rec``."""
    rec.n = int(_get(out, "n")[0])
    for name in ("criterion", "logLik", "AIC", "BIC", "sigma"):
        setattr(rec, name, float(_get(out, name)[0]))
    rec.theta = _floats(_get(out, "theta"))
    rec.beta = _named(_get(out, "beta"))
    rec.vcov = _matrix(_get(out, "vcov"))
    rec.beta_se = {k: math.sqrt(rec.vcov[i][i]) for i, k in enumerate(rec.beta)}
    rec.varcorr = _varcorr(_get(out, "varcorr"))
    rec.ranef, rec.condvar_sd = _ranef(_get(out, "ranef"))
    rec.fitted = _floats(_get(out, "fitted"))
    rec.residuals = _floats(_get(out, "residuals"))
    rec.is_singular = bool(_get(out, "is_singular")[0])


# ---------------------------------------------------------------- public API


def fit(formula: str, data: pd.DataFrame, REML: bool = True,
        devfun_thetas: list[list[float]] | None = None, weights: str | None = None,
        **control: Any) -> FitRecord:
    """Fit ``lme4::lmer(formula, data, REML)`` in R and return its FitRecord.

    ``control`` goes to ``lmerControl`` (``_`` in names becomes ``.``).  ``devfun_at`` holds
    lme4's devFunOnly objective at each of ``devfun_thetas`` and then at lme4's optimum.
    ``weights`` names a column of ``data`` holding prior weights.
    An R error is returned as a record with ``error`` set, never raised.
    """
    return fit_with_extras(formula, data, REML, devfun_thetas, weights, **control)[0]


def fit_with_extras(formula: str, data: pd.DataFrame, REML: bool = True,
                    devfun_thetas: list[list[float]] | None = None, weights: str | None = None,
                    **control: Any) -> tuple[FitRecord, dict[str, Any]]:
    """As :func:`fit`, also returning facts FitRecord has no field for.

    The extras are ``col_dropped``: the fixed-effect columns lme4 dropped as
    rank-deficient (``attr(getME(fm, "X"), "col.dropped")``), empty when none.
    """
    env = _bridge()
    versions = r_versions()
    rec = FitRecord(engine="lme4", engine_version=versions["lme4"], formula=formula,
                    REML=bool(REML), r_version=versions["R"])
    rdata, rcontrol = _frame_to_r(data), _control_to_r(control)
    rweights = _state["ro"].NULL if weights is None else weights
    out = env["fit"](formula, rdata, bool(REML), rcontrol, rweights)
    rec.messages = _strings(_get(out, "messages") or [])
    rec.warnings = _strings(_get(out, "warnings") or [])
    error = _get(out, "error")
    if error is not None:
        rec.error = str(error[0])
        return rec, {"col_dropped": []}
    _fill(rec, out)
    thetas = [list(map(float, t)) for t in (devfun_thetas or [])] + [rec.theta]
    values = _devfun(env, formula, rdata, REML, rcontrol, thetas, rweights)
    rec.devfun_at = [{"theta": t, "value": v} for t, v in zip(thetas, values)]
    dropped = _get(out, "col_dropped")
    return rec, {"col_dropped": [] if dropped is None else _strings(dropped)}


def _devfun(env: Any, formula: str, rdata: Any, REML: bool, rcontrol: Any,
            thetas: list[list[float]], rweights: Any = None) -> list[float]:
    """lme4's devFunOnly objective at each theta (R data and control already converted)."""
    ro = _state["ro"]
    rthetas = ro.ListVector([(str(i), ro.FloatVector(t)) for i, t in enumerate(thetas)])
    rweights = ro.NULL if rweights is None else rweights
    return _floats(env["devfun"](formula, rdata, bool(REML), rcontrol, rthetas, rweights))


def devfun_values(formula: str, data: pd.DataFrame, thetas: list[list[float]],
                  REML: bool = True, weights: str | None = None, **control: Any) -> list[dict[str, Any]]:
    """lme4's devFunOnly objective at each theta, as [{"theta": [...], "value": x}, ...].

    Unlike :func:`fit`, an R error here is raised (as rpy2's RRuntimeError).
    """
    env = _bridge()
    thetas = [list(map(float, t)) for t in thetas]
    values = _devfun(env, formula, _frame_to_r(data), REML, _control_to_r(control), thetas, weights)
    return [{"theta": t, "value": v} for t, v in zip(thetas, values)]


# ---------------------------------------------------------------- inference (lme4's confint, profile, simulate, bootMer)


def _table(x: Any) -> pd.DataFrame:
    vals = np.array(_matrix(_get(x, "vals")), dtype=float)
    return pd.DataFrame(vals, index=_strings(_get(x, "rows")), columns=_strings(_get(x, "cols")))


def confint(formula: str, data: pd.DataFrame, REML: bool = True, method: str = "profile",
            level: float = 0.95, nsim: int = 500, seed: int = 1, boot_type: str = "perc") -> pd.DataFrame:
    """lme4's ``confint(lmer(formula, data, REML), level, method)`` (``set.seed(seed)`` first
    for ``method = "boot"``), with R's row and column names."""
    out = _bridge()["confint_tab"](formula, _frame_to_r(data), bool(REML), method, float(level), int(nsim),
                                  int(seed), boot_type)
    return _table(out)


def profile(formula: str, data: pd.DataFrame, REML: bool = True) -> pd.DataFrame:
    """``as.data.frame(profile(lmer(...)))``: .zeta, every parameter, and .par."""
    out = _bridge()["profile_tab"](formula, _frame_to_r(data), bool(REML))
    frame = pd.DataFrame(np.array(_matrix(_get(out, "vals")), dtype=float), columns=_strings(_get(out, "cols")))
    frame[".par"] = _strings(_get(out, "par"))
    return frame


def simulate(formula: str, data: pd.DataFrame, REML: bool = True, nsim: int = 1, seed: int = 1,
             use_u: bool = False) -> np.ndarray:
    """``simulate(lmer(...), nsim, seed, use.u)`` as an array (rows, nsim)."""
    out = _bridge()["simulate_mat"](formula, _frame_to_r(data), bool(REML), int(nsim), int(seed), bool(use_u))
    return np.array(_matrix(out), dtype=float)


def bootmer(formula: str, data: pd.DataFrame, REML: bool = True, nsim: int = 10, seed: int = 1,
            refit: bool = True) -> tuple[pd.Series, pd.DataFrame]:
    """lme4's parametric bootstrap of (sd/cor, sigma, fixed effects): ``bootMer(fm, FUN, nsim,
    seed)`` when ``refit``, else a fresh ``lmer`` on each of ``simulate(fm, nsim, seed)``."""
    out = _bridge()["bootmer_tab"](formula, _frame_to_r(data), bool(REML), int(nsim), int(seed), bool(refit))
    names = _strings(_get(out, "names"))
    t = np.array(_matrix(_get(out, "t")), dtype=float).reshape(int(nsim), len(names))
    return pd.Series(_floats(_get(out, "t0")), index=names), pd.DataFrame(t, columns=names)


def inference(formula: str, data: pd.DataFrame, REML: bool, kinds: list[str]) -> dict[str, dict[str, Any]]:
    """lme4's and lmerTest's inference tables (``pylme.fitted.record.INFERENCE_KINDS``) on one fit,
    each as {"rows", "cols", "values"} with NaN as None."""
    env = _bridge()
    ro = _state["ro"]
    out = env["inference_tabs"](formula, _frame_to_r(data), bool(REML), ro.StrVector(list(kinds)))
    tables = {}
    for kind in kinds:
        t = _get(out, kind)
        vals = _get(t, "vals")
        rows = [[None if math.isnan(v) else v for v in row] for row in (_matrix(vals) if vals.dim[0] else [])]
        tables[kind] = {"rows": _strings(_get(t, "rows") or []), "cols": _strings(_get(t, "cols") or []),
                        "values": rows}
    return tables


# ---------------------------------------------------------------- glmer


def _glmer_args(data: pd.DataFrame, family: str, link: str | None, weights: str | None, offset: str | None):
    ro = _state["ro"]
    return (_frame_to_r(data), family, ro.NULL if link is None else link,
            ro.NULL if weights is None else weights, ro.NULL if offset is None else offset)


def fit_glmer(formula: str, data: pd.DataFrame, family: str = "binomial", link: str | None = None, nAGQ: int = 1,
              weights: str | None = None, offset: str | None = None,
              devfun_pars: list[list[float]] | None = None) -> FitRecord:
    """Fit ``lme4::glmer(formula, data, family(link), nAGQ, weights, offset)`` in R and return its
    FitRecord (``family="negative.binomial"``: ``lme4::glmer.nb``, its shape in ``family_theta``
    and as the last element of each ``devfun_at`` point): ``criterion`` is -2 logLik (the optimised deviance); ``devfun_at`` holds lme4's
    deviance function (``devFunOnly = TRUE``: of theta for nAGQ = 0, else of (theta, beta)) at
    each of ``devfun_pars`` and then at lme4's estimates. An R error is returned in ``error``."""
    env = _bridge()
    versions = r_versions()
    rec = FitRecord(engine="lme4", engine_version=versions["lme4"], formula=formula, REML=False,
                    r_version=versions["R"])
    rdata, fam, rlink, rw, roff = _glmer_args(data, family, link, weights, offset)
    out = env["glmer_fit"](formula, rdata, fam, rlink, int(nAGQ), rw, roff)
    rec.messages = _strings(_get(out, "messages") or [])
    rec.warnings = _strings(_get(out, "warnings") or [])
    error = _get(out, "error")
    if error is not None:
        rec.error = str(error[0])
        return rec
    _fill(rec, out)
    if _get(out, "family_theta") is not None:
        rec.family_theta = float(_get(out, "family_theta")[0])
    pars = [list(map(float, p)) for p in (devfun_pars or [])] + [_floats(_get(out, "par"))]
    values = _glmer_devfun(env, formula, rdata, fam, rlink, nAGQ, pars, rw, roff)
    rec.devfun_at = [{"theta": p, "value": v} for p, v in zip(pars, values)]
    return rec


def _glmer_devfun(env, formula, rdata, fam, rlink, nAGQ, pars, rw, roff) -> list[float]:
    ro = _state["ro"]
    rpars = ro.ListVector([(str(i), ro.FloatVector(p)) for i, p in enumerate(pars)])
    return _floats(env["glmer_devfun"](formula, rdata, fam, rlink, int(nAGQ), rpars, rw, roff))


def glmer_devfun_values(formula: str, data: pd.DataFrame, pars: list[list[float]], family: str = "binomial",
                        link: str | None = None, nAGQ: int = 1, weights: str | None = None,
                        offset: str | None = None) -> list[dict[str, Any]]:
    """lme4's glmer deviance function (devFunOnly) at each of ``pars``, as [{"theta": par, "value": x}]."""
    env = _bridge()
    rdata, fam, rlink, rw, roff = _glmer_args(data, family, link, weights, offset)
    values = _glmer_devfun(env, formula, rdata, fam, rlink, nAGQ, pars, rw, roff)
    return [{"theta": list(map(float, p)), "value": v} for p, v in zip(pars, values)]
