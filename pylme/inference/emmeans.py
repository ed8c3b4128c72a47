"""Estimated marginal means of a fitted model, as R's emmeans 1.8 computes them for lmer fits:
the reference grid, marginal means over it, contrasts among them (pairwise, treatment vs
control, polynomial, custom), with Kenward-Roger (emmeans' default for lmer), Satterthwaite
or asymptotic degrees of freedom and emmeans' multiplicity adjustments (pylme.inference.multcomp).

* **Reference grid** (``ref_grid``): every level of each factor of the fixed part, each numeric
  covariate at its mean over the fitted rows (or at the values given in ``at``); its rows in
  expand.grid order (the first variable varies fastest) and the linear functions of beta
  that predict them (X built by the fit's own coding), plus the mean of the formula's offset
  terms over the fitted rows, as emmeans 1.8 adds it.
* **Marginal means** (``emmeans``): the equally weighted average of the grid's rows over the
  variables not in ``specs`` and ``by``.
* **Inference** at theta-hat: estimate ``L beta``, SE ``sqrt(L V L')`` and df per row: with
  Kenward-Roger V is pbkrtest's adjusted covariance (of the REML refit for an ML fit, as pbkrtest
  does) and df its ``Lb_ddf``; with Satterthwaite V is ``vcov(fm)`` and df lmerTest's; asymptotic
  df are infinite (emmeans switches to it above 3,000 observations unless the limits are raised).
* **Scales**: ``tran="log"`` or ``"logit"`` (emmeans' ``tran``), or a fit's ``family`` (an
  object with ``link``, ``linkinv`` and ``mu_eta``, as a glmer fit will carry), gives results
  on the link scale by default and ``type="response"`` back-transforms estimates, SEs (delta
  method) and interval limits; contrasts of log-scale means become ratios (odds ratios for
  logit). A fit with a family has asymptotic df, as emmeans gives GLMMs.

Rows that are not estimable in a rank-deficient model (estimability's test against the null
space of the full model matrix) are NaN and print ``nonEst``.
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.linalg

from ..description.factors import as_factor, r_label
from ..description.formula import names_in
from ..description.model_matrix import FactorCoding, numeric_vector
from ..errors import DataError, FitMessage, ModelError
from . import multcomp

LMER_DF = ("kenward-roger", "satterthwaite", "asymptotic")


# ---------------------------------------------------------------- scales
@dataclass(frozen=True)
class Link:
    """A link (or response transformation): its name, inverse and derivative of the inverse."""

    name: str
    linkinv: object
    mu_eta: object
    inv_label: str = "response"


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


TRANSFORMS = {
    "log": Link("log", np.exp, np.exp),
    "logit": Link("logit", _expit, lambda x: _expit(x) * (1 - _expit(x))),
}
#: emmeans' labels of back-transformed means of a GLMM's common links (.std.link.labels)
_FAMILY_LABELS = {"logit": "prob", "probit": "prob", "cloglog": "prob", "log": "rate"}


def _link_of(fm, tran: str | None) -> Link | None:
    """The scale the linear predictor is on: ``tran``, else the fit's family (glmer), else none."""
    if tran is not None:
        if tran not in TRANSFORMS:
            raise ModelError(f"tran must be one of {', '.join(TRANSFORMS)}, not {tran!r}")
        return TRANSFORMS[tran]
    family = fm.family
    if family is None or family.link_name == "identity":
        return None
    name = family.link_name
    return Link(name, family.linkinv, family.mu_eta, _FAMILY_LABELS.get(name, "response"))


# ---------------------------------------------------------------- degrees of freedom
@dataclass
class DfMethod:
    """The covariance of beta-hat the SEs use and the df of a linear function L beta."""

    name: str  # as emmeans prints it: kenward-roger, satterthwaite, asymptotic
    V: np.ndarray
    df: object  # L (p,) -> float


def df_method(fm, lmer_df: str = "kenward-roger", pbkrtest_limit: int = 3000, lmerTest_limit: int = 3000) -> DfMethod:
    """emmeans' emm_basis.merMod choice: Kenward-Roger, Satterthwaite or asymptotic (df = Inf),
    falling back as emmeans does when the number of observations exceeds a limit."""
    mode = lmer_df.lower()
    if mode not in LMER_DF:
        raise ModelError(f"lmer_df must be one of {', '.join(LMER_DF)}, not {lmer_df!r}")
    V = fm.vcov().to_numpy()
    if fm.family is not None:
        return DfMethod("asymptotic", V, lambda L: math.inf)
    n = fm.nobs()
    if mode == "kenward-roger" and n > pbkrtest_limit:
        _limit_note("pbkrtest", pbkrtest_limit, n)
        mode = "satterthwaite"
    if mode == "satterthwaite" and n > lmerTest_limit:
        _limit_note("lmerTest", lmerTest_limit, n)
        mode = "kenward-roger" if n <= pbkrtest_limit else "asymptotic"
    if mode == "kenward-roger":
        return _kenward_roger(fm, V)
    if mode == "satterthwaite":
        from .satterthwaite import satterthwaite_info, t_test

        info = satterthwaite_info(fm)
        return DfMethod(mode, V, lambda L: t_test(info, L)["df"])
    return DfMethod(mode, V, lambda L: math.inf)


def _limit_note(pkg: str, limit: int, n: int) -> None:
    warnings.warn(f"Note: D.f. calculations have been disabled because the number of observations exceeds {limit}.\n"
                  f"To enable adjustments, add the argument '{pkg}_limit={n}' (or larger)", FitMessage, stacklevel=4)


def _kenward_roger(fm, V: np.ndarray) -> DfMethod:
    """pbkrtest's adjusted covariance (of the REML refit when fm is an ML fit, as pbkrtest's
    vcovAdj does) with Lb_ddf taking the fit's own vcov as the unadjusted one (emmeans)."""
    from .kenward_roger import Lb_ddf, vcovAdj

    if fm.REML:
        info = vcovAdj(fm)
    else:
        from .reduction import optimising

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = vcovAdj(optimising(fm).update(REML=True))
    info = replace(info, vcov_beta=V)
    return DfMethod("kenward-roger", info.vcov_adj, lambda L: Lb_ddf(info, L))


# ---------------------------------------------------------------- the grid
@dataclass
class EmmGrid:
    """A grid of linear functions of beta with what emmeans keeps beside them (its emmGrid):
    ``grid`` holds the label columns, ``linfct`` one row of coefficients per grid row."""

    fm: object
    grid: pd.DataFrame
    linfct: np.ndarray
    offset: np.ndarray
    dfm: DfMethod
    link: Link | None
    est_name: str = "prediction"
    est_type: str = "prediction"  # prediction, contrast or pairs (Tukey's family)
    by: list[str] = field(default_factory=list)
    adjust: str = "none"
    fam_size: int = 1
    infer: tuple[bool, bool] = (False, False)
    level: float = 0.95
    avgd_over: list[str] = field(default_factory=list)
    init_mesg: list[str] = field(default_factory=list)
    log_contrast: bool = False
    pair_by: list[str] | None = None  # a set of pairs is Tukey's family only within these by groups

    def __len__(self) -> int:
        return len(self.grid)

    def summary(self, infer: bool | tuple[bool, bool] | None = None, level: float | None = None,
                adjust: str | None = None, by: list[str] | str | None | bool = False, type: str = "link"):
        """emmeans' summary: estimates, SE, df, intervals (``infer[0]``) and tests (``infer[1]``)
        with the grid's adjustment unless ``adjust`` is given; ``type="response"`` back-transforms."""
        from .emm_summary import summarise

        infer = self.infer if infer is None else (infer, infer) if isinstance(infer, bool) else tuple(infer)
        by = self.by if by is False else _as_list(by)
        return summarise(self, infer, self.level if level is None else level,
                         multcomp.check_method(adjust or self.adjust), by, type)

    def confint(self, level: float | None = None, adjust: str | None = None, type: str = "link"):
        """emmeans' confint: the summary with intervals and no tests."""
        return self.summary((True, False), level, adjust, type=type)

    def test(self, adjust: str | None = None, type: str = "link"):
        """emmeans' test: the summary with t-tests of each estimate = 0 and no intervals."""
        return self.summary((False, True), adjust=adjust, type=type)

    def contrast(self, method: str | dict = "eff", by: list[str] | str | None | bool = False,
                 adjust: str | None = None, **options) -> "EmmGrid":
        """emmeans' contrast: ``method`` "pairwise", "revpairwise", "trt.vs.ctrl" (``ref=``,
        ``reverse=``), "poly", "eff", or a dict name -> coefficients over the levels; within each
        ``by`` group. The default adjustment is the method's (tukey, dunnettx, none, fdr)."""
        from .emm_contrast import contrast

        return contrast(self, method, self.by if by is False else _as_list(by), adjust, options)

    def pairs(self, reverse: bool = False, by: list[str] | str | None | bool = False,
              adjust: str | None = None) -> "EmmGrid":
        """emmeans' pairs: all pairwise differences (Tukey-adjusted by default)."""
        return self.contrast("revpairwise" if reverse else "pairwise", by=by, adjust=adjust)

    def __str__(self) -> str:
        return str(self.summary())

    __repr__ = __str__


def _as_list(x) -> list[str]:
    return [] if x is None else [x] if isinstance(x, str) else list(x)


def _grid_values(fm, at: dict | None) -> dict[str, tuple[str, list]]:
    """Per data variable of the fixed part, in order of appearance: ("factor", level labels)
    or ("numeric", values); ``at`` replaces a variable's values."""
    spec, frame = fm.lmod.X_spec, fm.lmod.frame.data
    out: dict[str, tuple[str, list]] = {}
    for var in spec.terms.variables + spec.terms.offsets:
        coding = spec.codings.get(var.label)
        if isinstance(coding, FactorCoding):
            out.setdefault(var.data_names[0], ("factor", list(coding.levels)))
            continue
        for name in var.data_names:
            out.setdefault(name, ("numeric", [float(np.mean(frame[name].to_numpy(dtype=float)))]))
    for name, values in (at or {}).items():
        if name not in out:
            raise DataError(f"at: {name!r} is not a variable of the fixed-effects formula; "
                            f"its variables: {', '.join(out)}")
        kind, levels = out[name]
        values = [values] if np.isscalar(values) else list(values)
        if kind == "factor":
            unknown = [v for v in values if r_label(v) not in levels]
            if unknown:
                raise DataError(f"at: {unknown} not among the levels of {name!r}: {', '.join(levels)}")
            values = [r_label(v) for v in values]
        out[name] = (kind, values)
    return out


def _grid_frame(fm, values: dict[str, tuple[str, list]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The grid in expand.grid order: its labels, and a data frame of the fit's column types
    that the fit's X coding can read (a factor's levels taken from rows of the data)."""
    frame = fm.lmod.frame.data
    sizes = [len(v) for _, v in values.values()]
    index = np.indices(sizes[::-1]).reshape(len(sizes), -1)[::-1] if sizes else np.zeros((0, 1), int)
    labels, data = {}, {}
    for (name, (kind, vals)), idx in zip(values.items(), index):
        labels[name] = [vals[i] for i in idx]
        if kind == "numeric":
            data[name] = np.asarray(labels[name], dtype=float)
        else:
            fac = as_factor(frame[name])
            first = [int(np.flatnonzero(fac.codes == fac.levels.index(lev))[0]) for lev in vals]
            data[name] = frame[name].iloc[[first[i] for i in idx]].reset_index(drop=True)
    return pd.DataFrame(labels), pd.DataFrame(data)


def _nonestimable_basis(fm) -> np.ndarray | None:
    """An orthonormal basis of the null space of the full model matrix (None when X has full
    rank): estimability::nonest.basis' space."""
    if not fm.lmod.col_dropped:
        return None
    return scipy.linalg.null_space(fm.lmod.X_spec.matrix(fm.lmod.frame.data))


def _linfct(fm, data: pd.DataFrame) -> np.ndarray:
    """The grid's rows of X on the kept columns; NaN rows where a prediction is not estimable."""
    spec = fm.lmod.X_spec
    full = spec.matrix(data)
    L = full[:, [spec.column_names.index(nm) for nm in fm.lmod.fixef_names]]
    basis = _nonestimable_basis(fm)
    if basis is not None:
        ssq = np.maximum(np.sum(full**2, axis=1), 1e-8)
        L[np.sum((full @ basis) ** 2, axis=1) >= 1e-8 * ssq] = np.nan
    return L


def _grid_offset(fm, nrow: int) -> np.ndarray:
    """emmeans' .offset.: the mean over the fitted rows of the formula's offset terms, the same
    on every grid row (whatever the covariates' grid values)."""
    frame = fm.lmod.frame.data
    total = sum((numeric_vector(frame, v.label, v.node, what="offset", states=fm.lmod.frame.states) for v in fm.lmod.X_spec.terms.offsets),
                np.zeros(len(frame)))
    return np.full(nrow, float(np.mean(total)))


def ref_grid(fm, at: dict | None = None, lmer_df: str = "kenward-roger", tran: str | None = None,
             pbkrtest_limit: int = 3000, lmerTest_limit: int = 3000) -> EmmGrid:
    """emmeans' ``ref_grid(fm)``: predictions at each combination of factor levels with the
    numeric covariates at their means (or at the values in ``at``, a dict variable -> values)."""
    values = _grid_values(fm, at)
    labels, data = _grid_frame(fm, values)
    dfm = df_method(fm, lmer_df, pbkrtest_limit, lmerTest_limit)
    return EmmGrid(fm, labels, _linfct(fm, data), _grid_offset(fm, len(data)), dfm, _link_of(fm, tran),
                   fam_size=len(labels))


# ---------------------------------------------------------------- marginal means
def parse_specs(specs: str | list[str]) -> tuple[str | None, list[str], list[str]]:
    """(contrast method, specs, by) from emmeans' specs: a name, a list of names, or a formula
    such as ``"~ A"``, ``"~ A | B"``, ``"pairwise ~ A"`` (names only; nothing is evaluated)."""
    if not isinstance(specs, str):
        return None, list(specs), []
    if "~" not in specs:
        return None, [specs.strip()], []
    lhs, rhs = specs.split("~", 1)
    method = lhs.strip() or None
    rhs, _, by = rhs.partition("|")
    return method, _names(rhs), _names(by)


def _names(text: str) -> list[str]:
    text = text.strip()
    if not text:
        return []
    if not re.fullmatch(r"[\w.]+(\s*[+*:]\s*[\w.]+)*", text):
        raise ModelError(f"emmeans specs {text!r}: give variable names joined by '+' (e.g. '~ A + B | C')")
    return names_in(text)


def emmeans(fm_or_grid, specs: str | list[str], by: str | list[str] | None = None, at: dict | None = None,
            lmer_df: str = "kenward-roger", tran: str | None = None, level: float = 0.95,
            adjust: str | None = None, pbkrtest_limit: int = 3000, lmerTest_limit: int = 3000):
    """emmeans' ``emmeans(fm, specs, by)``: marginal means of ``specs`` (a factor name, a list,
    or a formula string ``"~ A | B"``; ``"pairwise ~ A"`` also returns the contrasts, an
    ``EmmList``) averaged with equal weights over the grid's other factors."""
    method, specs, by2 = parse_specs(specs)
    by = _as_list(by) + by2
    rg = fm_or_grid if isinstance(fm_or_grid, EmmGrid) else ref_grid(
        fm_or_grid, at, lmer_df, tran, pbkrtest_limit, lmerTest_limit)
    _check_specs(rg, specs + by, at)
    emm = _marginal(rg, specs, by, level, adjust and multcomp.check_method(adjust))
    if method is None:
        return emm
    return EmmList({"emmeans": emm, "contrasts": emm.contrast(method)})


def _check_specs(rg: EmmGrid, names: list[str], at: dict | None) -> None:
    kinds = _grid_kinds(rg)
    for name in names:
        if name not in kinds:
            factors = [k for k, v in kinds.items() if v == "factor"]
            raise DataError(f"emmeans: {name!r} is not a factor of the fixed-effects formula; "
                            f"its factors: {', '.join(factors) or '(none)'}")
        if kinds[name] == "numeric" and name not in (at or {}):
            raise DataError(f"emmeans: {name!r} is a numeric covariate, not a factor; give the values at which "
                            f"to estimate means with at={{{name!r}: [...]}}")
    if not names:
        raise DataError("emmeans: specs names no variable")


def _grid_kinds(rg: EmmGrid) -> dict[str, str]:
    spec = rg.fm.lmod.X_spec
    factors = {v.data_names[0] for v in spec.terms.variables if isinstance(spec.codings.get(v.label), FactorCoding)}
    return {c: "factor" if c in factors else "numeric" for c in rg.grid.columns}


def _marginal(rg: EmmGrid, specs: list[str], by: list[str], level: float, adjust: str | None) -> EmmGrid:
    """The equally weighted means of the grid's rows per combination of ``specs + by``."""
    keys = specs + [b for b in by if b not in specs]
    levels = {k: list(dict.fromkeys(rg.grid[k])) for k in keys}
    codes = [np.array([levels[k].index(v) for v in rg.grid[k]]) for k in keys]
    sizes = [len(levels[k]) for k in keys]
    cell = np.ravel_multi_index(codes[::-1], sizes[::-1]) if keys else np.zeros(len(rg.grid), int)
    ncell = int(np.prod(sizes))
    count = np.bincount(cell, minlength=ncell)[:, None]
    L = np.stack([np.bincount(cell, weights=rg.linfct[:, j], minlength=ncell) for j in range(rg.linfct.shape[1])],
                 axis=1) / count if rg.linfct.shape[1] else np.zeros((ncell, 0))
    off = np.bincount(cell, weights=rg.offset, minlength=ncell) / count[:, 0]
    index = np.indices(sizes[::-1]).reshape(len(sizes), -1)[::-1]
    grid = pd.DataFrame({k: [levels[k][i] for i in idx] for k, idx in zip(keys, index)})
    avgd = [c for c in rg.grid.columns if c not in keys and rg.grid[c].nunique() > 1]
    if _in_interaction(rg.fm, keys):
        warnings.warn("NOTE: Results may be misleading due to involvement in interactions", FitMessage, stacklevel=3)
    return replace(rg, grid=grid, linfct=L, offset=off, est_name="emmean", est_type="prediction", by=list(by),
                   adjust=adjust or "none", fam_size=len(grid), infer=(True, False), level=level,
                   avgd_over=list(dict.fromkeys(rg.avgd_over + avgd)))


def _in_interaction(fm, keys: list[str]) -> bool:
    """emmeans' .some.term.contains: a fixed term names every key and more variables besides."""
    for term in fm.lmod.X_spec.terms.terms:
        label = ":".join(v.label for v in term)
        variables = {n for v in term for n in v.data_names}
        if all(k in label for k in keys) and len(variables) > len(keys):
            return True
    return False


class EmmList(dict):
    """emmeans' emm_list (``emmeans(fm, pairwise ~ A)``): the means and their contrasts."""

    def __str__(self) -> str:
        return "\n".join(f"${name}\n{value}\n" for name, value in self.items())

    __repr__ = __str__
