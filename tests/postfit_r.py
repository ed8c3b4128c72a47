"""Live R for the after-the-fit tests (tests/test_emmeans.py, test_reduction.py,
test_influence.py, test_glmer_postfit.py): fit a model in R (lme4 1.1-31 with lmerTest 3.1-3,
emmeans 1.8.4, pbkrtest 0.5.2 loaded) on the very data pylme fits, evaluate R expressions
written in these test files on it (``fm`` is the fit), and return for each what R prints and
its numbers. The fit's theta comes back too, so that pylme can be evaluated at lme4's theta-hat
(``fit_at``) and the comparison measures the method, not the optimiser.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

import pylme

#: R: each expression (text) evaluated in env (where fm is the fit): what R prints and its table
R_ONE = r"""one <- function(code) {
    x <- suppressMessages(suppressWarnings(eval(parse(text = code), envir = env)))
    text <- suppressMessages(suppressWarnings(utils::capture.output(print(x))))
    tab <- if (inherits(x, "emmGrid")) as.data.frame(summary(x)) else if (is.data.frame(x)) x else if (is.matrix(x)) as.data.frame(x) else
           if (is.numeric(x)) data.frame(value = unname(x)) else NULL
    cols <- if (is.null(tab)) list() else lapply(tab, function(col) if (is.numeric(col)) as.numeric(col)
                                                  else as.character(col))
    list(text = text, names = names(tab), rows = rownames(tab), cols = cols)
  }"""

R_RUN = r"""
function(formula, data, REML, exprs, weights) {
  suppressMessages({library(lmerTest); library(emmeans)})
  env <- new.env(parent = globalenv())
  env$data <- data; env$REML <- REML
  if (!is.null(weights)) { env$data$.w <- data[[weights]]; data <- env$data }
  args <- list(formula = stats::as.formula(formula, env = env), data = quote(data), REML = REML)
  if (!is.null(weights)) args$weights <- quote(.w)
  # the call holds the formula itself and the symbol data, so that update() (influence, allFit,
  # drop1, ranova, step) finds them where it evaluates
  fm <- suppressMessages(suppressWarnings(eval(as.call(c(quote(lmerTest::lmer), args)), env)))
  env$fm <- fm
  ONE
  list(theta = unname(lme4::getME(fm, "theta")), out = lapply(exprs, one))
}
""".replace("ONE", R_ONE)


@dataclass
class RResult:
    """What R printed for an expression and its value as a DataFrame (None if not tabular)."""

    text: str
    table: pd.DataFrame | None


def r_postfit(formula: str, data: pd.DataFrame, exprs: list[str], REML: bool = True,
              weights: str | None = None) -> tuple[np.ndarray, list[RResult]]:
    """lme4's theta-hat and, per R expression, its print and table."""
    import r_reference as rr

    rr._bridge()
    ro = rr._state["ro"]
    fn = ro.r(R_RUN)
    res = fn(formula, rr._frame_to_r(data), bool(REML), ro.StrVector(exprs), ro.NULL if weights is None else weights)
    return np.array(rr._floats(rr._get(res, "theta"))), _r_results(rr, ro, rr._get(res, "out"))


def fit_at(formula: str, data: pd.DataFrame, theta, REML: bool = True, weights: str | None = None):
    """The pylme model at the given theta (no optimisation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylme.lmer(formula, data, REML=REML, weights=weights, start=np.asarray(theta),
                          control=pylme.lmerControl(optimizer=None))


def printed(obj) -> str:
    """What pylme prints for obj, trailing spaces removed (R pads some lines)."""
    return "\n".join(line.rstrip() for line in str(obj).strip("\n").splitlines())


def assert_close(got, want, rel: float, what: str, abs_: float = 0.0) -> None:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs R {want.shape}"
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{what}: NaN pattern {got} vs R {want}"
    ok = ~np.isnan(want)
    g, w = got[ok], want[ok]
    with np.errstate(invalid="ignore"):  # equal infinities (asymptotic df) are equal
        bad = (g != w) & ~(np.abs(g - w) <= rel * np.abs(w) + abs_)
    assert not bad.any(), f"{what}: {got[ok][bad]} vs R {want[ok][bad]}"


R_GLMER_RUN = r"""
function(formula, data, family, nAGQ, exprs, weights) {
  suppressMessages(library(lme4))
  env <- new.env(parent = globalenv())
  env$data <- data
  if (!is.null(weights)) { env$data$.w <- data[[weights]]; data <- env$data }
  args <- list(formula = stats::as.formula(formula, env = env), data = quote(data), family = str2lang(family))
  if (nAGQ != 1) args$nAGQ <- nAGQ
  if (!is.null(weights)) args$weights <- quote(.w)
  # the call holds the formula, the symbol data and the family's code, so that update() finds them
  fm <- suppressMessages(suppressWarnings(eval(as.call(c(quote(lme4::glmer), args)), env)))
  env$fm <- fm
  ONE
  list(theta = unname(getME(fm, "theta")), beta = unname(fixef(fm)), out = lapply(exprs, one))
}
""".replace("ONE", R_ONE)


def _r_results(rr, ro, items) -> list[RResult]:
    """Each evaluated expression's print and table, from the R functions' ``out`` lists."""
    out = []
    for item in items:
        text = "\n".join(line.rstrip() for line in rr._strings(rr._get(item, "text"))).strip("\n")
        names = rr._get(item, "names")
        table = None
        if names is not None and names is not ro.NULL and len(names):
            cols = rr._get(item, "cols")
            data_cols = {}
            for name, col in zip(rr._strings(names), cols):
                data_cols[name] = rr._floats(col) if col.rclass[0] == "numeric" else rr._strings(col)
            table = pd.DataFrame(data_cols, index=rr._strings(rr._get(item, "rows")))
        out.append(RResult(text.replace("\u2018", "'").replace("\u2019", "'"), table))
    return out


def r_glmer_postfit(formula: str, data: pd.DataFrame, family: str, exprs: list[str], nAGQ: int = 1,
                    weights: str | None = None) -> tuple[np.ndarray, np.ndarray, list[RResult]]:
    """lme4's glmer fit (``family`` is R code: ``"binomial"``, ``'Gamma(link = "log")'``): its
    theta, fixed effects and, per R expression on it (``fm``), what R prints and its table."""
    import r_reference as rr

    rr._bridge()
    ro = rr._state["ro"]
    fn = ro.r(R_GLMER_RUN)
    res = fn(formula, rr._frame_to_r(data), family, int(nAGQ), ro.StrVector(exprs),
             ro.NULL if weights is None else weights)
    theta, beta = (np.array(rr._floats(rr._get(res, k))) for k in ("theta", "beta"))
    return theta, beta, _r_results(rr, ro, rr._get(res, "out"))


def glmer_at(formula: str, data: pd.DataFrame, family, theta, beta, nAGQ: int = 1, weights: str | None = None):
    """The pylme glmer model at the given (theta, beta) (no optimisation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylme.glmer(formula, data, family=family, nAGQ=nAGQ, weights=weights,
                           start={"theta": np.asarray(theta), "fixef": np.asarray(beta)},
                           control=pylme.glmerControl(optimizer=None))


def r_eval(code: str, **frames) -> np.ndarray:
    """Evaluate R code (lme4 loaded) with data frames bound by name (r_reference's converter),
    as a float array."""
    import r_reference
    from rpy2 import robjects as ro

    r_reference.r_versions()
    for name, frame in frames.items():
        ro.globalenv[name] = r_reference._frame_to_r(frame)
    return np.array(ro.r(f"suppressMessages(suppressWarnings({{ library(lme4); {code} }}))"), dtype=float)
