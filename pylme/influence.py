"""Influence diagnostics of a fitted model, as lme4 1.1-31 computes them:

* ``hatvalues`` (lme4's hatvalues.merMod): the diagonal of the hat matrix of the penalized
  least-squares fit at theta-hat, ``colSums(CL^2) + colSums(CR^2)`` with
  ``CL = L^-1 P Lambda'Z'W^1/2`` and ``CR = RX'^-1 (X'W^1/2 - RZX' CL)``, W the prior weights;
  for a glmer fit L, RZX and RX are the fit's (PIRLS's working weights at the estimates) while W
  stays the prior weights, as lme4 computes it, with lme4's warning that the hat matrix may not
  make sense for GLMMs (cbpp's hat values reach 5, their sum 163.5 for 56 rows);
* ``cooks_distance`` (cooks.distance.merMod): ``(r / (1 - h))^2 h / (sigma^2 p)`` from the
  Pearson residuals r and hat values h (sigma = 1 for the binomial and Poisson families);
* ``influence`` (influence.merMod): each observation, or each group of a grouping variable,
  deleted in turn and the model refitted from the estimates (theta; and the fixed effects of a
  glmer fit with nAGQ > 0) with at most ``maxfun`` evaluations, keeping the fixed effects,
  variance components and vcov of every deletion; its ``cooks_distance``, ``dfbeta`` and
  ``dfbetas`` are lme4's methods for that object.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sksparse.cholmod import cholesky_AAt

from .errors import DataError, PylmeWarning
from .fitting import lmerControl

_CHUNK = 2_000_000  # entries of CL computed at a time


def _factor_sqrtw(fm) -> np.ndarray:
    """The square roots of the weights in the fit's factor L: the prior weights of an lmer fit,
    the working weights of the last PIRLS iteration of a glmer fit."""
    return fm.state.sqrtW if fm.family is not None else np.sqrt(fm.getME("weights"))


def _hat_parts(fm) -> tuple[np.ndarray, np.ndarray]:
    """(colSums(CL^2), colSums(CR^2)): the random-effects and fixed-effects parts of the hat values."""
    sqrtw = np.sqrt(fm.getME("weights"))
    LtZt = (fm.getME("Lambdat") @ fm.getME("Zt")).tocsc()
    A = (LtZt @ sp.diags(sqrtw)).tocsc()
    X = fm.getME("X").to_numpy()
    Xw = X * sqrtw[:, None]
    sqrtw_L = _factor_sqrtw(fm)
    AL = (LtZt @ sp.diags(sqrtw_L)).tocsc()
    factor = cholesky_AAt(AL, beta=1.0)  # L L' = P (AL AL' + I) P'

    def half_solve(B) -> np.ndarray:
        return factor.solve_L(factor.apply_P(B), use_LDLt_decomposition=False)

    RZX = half_solve(np.asarray(AL @ (X * sqrtw_L[:, None])))
    RX = fm.getME("RX")
    q, n = A.shape
    cl2, cr2 = np.empty(n), np.empty(n)
    step = max(1, _CHUNK // max(q, 1))
    for start in range(0, n, step):
        cols = slice(start, min(n, start + step))
        CL = half_solve(A[:, cols].toarray())
        CR = np.linalg.solve(RX.T, Xw[cols].T - RZX.T @ CL)
        cl2[cols], cr2[cols] = np.sum(CL**2, axis=0), np.sum(CR**2, axis=0)
    return cl2, cr2


def hatvalues(fm) -> pd.Series:
    """lme4's ``hatvalues(fm)``: the leverage of each fitted row (with lme4's warning for a glmer fit)."""
    if fm.family is not None:
        warnings.warn("the hat matrix may not make sense for GLMMs", PylmeWarning, stacklevel=3)
    cl2, cr2 = _hat_parts(fm)
    return pd.Series(cl2 + cr2, index=fm.fitted().index, name="hat")


def cooks_distance(fm) -> pd.Series:
    """lme4's ``cooks.distance(fm)`` (cooks.distance.merMod), from the hat values; for the
    deletion diagnostics use ``influence(fm).cooks_distance()``."""
    h = hatvalues(fm).to_numpy()
    r = fm.residuals(type="pearson").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (r / (1 - h)) ** 2 * h / (fm.sigma() ** 2 * fm.p)
    d[np.isinf(d)] = np.nan
    return pd.Series(d, index=fm.fitted().index, name="cooks.distance")


# ---------------------------------------------------------------- deletion diagnostics
def _var_cov_comps(fm) -> pd.Series:
    """sigma^2 then each VarCorr term's lower triangle (column by column), named as lme4's
    influence.merMod names them: ``v[a]`` and ``C[b,a]``, prefixed ``group:`` when there are several terms."""
    vc = fm.VarCorr()
    prefix = len(vc.terms) > 1
    values, names = [fm.sigma() ** 2], ["sigma^2"]
    for t in vc.terms:
        k = len(t.names)
        for j in range(k):
            for i in range(j, k):
                label = f"v[{t.names[i]}]" if i == j else f"C[{t.names[i]},{t.names[j]}]"
                names.append(f"{t.group}:{label}" if prefix else label)
                values.append(t.cov[i, j])
    return pd.Series(values, index=names)


class InfluenceMerMod:
    """lme4's influence.merMod: the fit's estimates and those with each group deleted."""

    def __init__(self, fm, groups: str, deleted: list, fits: list):
        self.groups = groups
        self.deleted = deleted
        self.fixed_effects = fm.fixef()
        self.var_cov_comps = _var_cov_comps(fm)
        self.vcov = fm.vcov()
        index = pd.Index(deleted, name=groups)
        self.fixed_effects_deleted = pd.DataFrame([f.fixef().to_numpy() for f in fits], index=index,
                                                  columns=self.fixed_effects.index)
        self.var_cov_comps_deleted = pd.DataFrame([_var_cov_comps(f).to_numpy() for f in fits], index=index,
                                                  columns=self.var_cov_comps.index)
        self.vcov_deleted = {d: f.vcov() for d, f in zip(deleted, fits)}
        self.converged = pd.Series([f.opt.summary.conv == 0 and not f.opt.warnings for f in fits], index=index)
        self.function_evals = pd.Series([f.opt.summary.feval for f in fits], index=index)

    def dfbeta(self, which: str = "fixed") -> pd.DataFrame:
        """lme4's dfbeta: each deletion's estimates minus the fit's (``which="var.cov"`` for the
        variance components)."""
        if which == "fixed":
            return self.fixed_effects_deleted - self.fixed_effects
        if which == "var.cov":
            return self.var_cov_comps_deleted - self.var_cov_comps
        raise ValueError(f"which must be 'fixed' or 'var.cov', not {which!r}")

    def dfbetas(self) -> pd.DataFrame:
        """lme4's dfbetas: dfbeta divided by each deletion's standard errors."""
        se = pd.DataFrame([np.sqrt(np.diag(v.to_numpy())) for v in self.vcov_deleted.values()],
                          index=self.fixed_effects_deleted.index, columns=self.fixed_effects.index)
        return self.dfbeta() / se

    def cooks_distance(self) -> pd.Series:
        """lme4's cooks.distance.influence.merMod: ``db' V^-1 db (n - p) / (n p)`` with n the
        number of deletions and V the fit's vcov."""
        db = self.dfbeta().to_numpy()
        n, p = db.shape
        vinv = (n - p) / (n * p) * np.linalg.inv(self.vcov.to_numpy())
        return pd.Series(np.einsum("ij,jk,ik->i", db, vinv, db), index=self.fixed_effects_deleted.index,
                         name="cooks.distance")

    def __repr__(self) -> str:
        return (f"influence.merMod: {len(self.deleted)} deletions of {self.groups}; "
                f"{int((~self.converged).sum())} not converged")


def _deletion_groups(data: pd.DataFrame, groups) -> tuple[str, pd.Series]:
    """The deletion label of each data row: the row label, a column, or columns pasted with '.'."""
    if groups is None:
        return "case", pd.Series(data.index, index=data.index)
    cols = [groups] if isinstance(groups, str) else list(groups)
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise DataError(f"influence: groups column(s) {missing} not in the data; columns: {', '.join(map(str, data.columns))}")
    if len(cols) == 1:
        return cols[0], data[cols[0]]
    return ".".join(cols), data[cols].astype(str).agg(".".join, axis=1)


def _subset_argument(value, keep: np.ndarray):
    return value[keep] if isinstance(value, np.ndarray) else value


def influence(fm, groups=None, maxfun: int = 1000) -> InfluenceMerMod:
    """lme4's ``influence(fm, groups)``: the model refitted (``fm.update``) with each observation
    (``groups`` None) or each level of ``groups`` (a column, or several pasted together)
    deleted, from the estimates with at most ``maxfun`` evaluations per optimisation (lme4's
    default 1000) and otherwise lme4's default control; an lmer deletion fit is finished to its
    certified optimum as the fit was (``lmerControl(polish=)``)."""
    data = fm.lmod.data
    name, labels = _deletion_groups(data, groups)
    deleted = list(pd.unique(labels))
    control, start = _deletion_control(fm, maxfun)
    fits = []
    for d in deleted:
        keep = (labels != d).to_numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append(fm.update(data=data.loc[keep], weights=_subset_argument(fm.lmod.weights_arg, keep),
                                  offset=_subset_argument(fm.lmod.offset_arg, keep), start=start, control=control))
    return InfluenceMerMod(fm, name, deleted, fits)


def _deletion_control(fm, maxfun: int):
    """influence.merMod's control (the default one with ``maxfun``) and start: theta, and for a
    glmer fit with nAGQ > 0 also the fixed effects."""
    if fm.family is None:
        return lmerControl(optCtrl={"maxeval": maxfun}, polish=fm.control.polish), fm.theta
    start = {"theta": fm.theta} if fm.nAGQ == 0 else {"theta": fm.theta, "fixef": fm.fixef().to_numpy()}
    return type(fm.control)(optCtrl={"maxeval": maxfun}), start   # the default GlmerControl with maxfun
