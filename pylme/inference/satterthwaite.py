"""Satterthwaite's denominator degrees of freedom for t- and F-tests of fixed effects,
with the same answers as R's lmerTest (3.1-3): ``summary(fm)``, ``contest(fm, L)`` and
``anova(fm, type = 1/2/3)``.

The method
----------
The variance parameters are ``varpar = (theta, sigma)``. Writing the (REML or ML)
deviance as a function of varpar, with sigma no longer profiled out,

    ML:    ldL2 + pwrss / sigma^2 + n log(2 pi sigma^2)
    REML:  the ML expression + ldRX2 - p log(2 pi sigma^2)

(``ldL2``, ``pwrss`` and ``ldRX2`` from the penalized least-squares solution at theta),
its Hessian H at the estimates gives the asymptotic covariance of varpar, ``A = 2 H^-1``
(a pseudo-inverse over the eigenvalues above 1e-8). ``C(varpar) = sigma^2 (RX'RX)^-1``
is the covariance of the fixed effects; its Jacobian ``J_k = dC/dvarpar_k`` is taken
numerically. For a contrast ``l`` the variance of ``l'beta`` is ``v = l'Cl``, its
gradient ``g_k = l'J_k l``, and Satterthwaite's degrees of freedom are
``2 v^2 / (g'Ag)``. An F-test of ``L beta = 0`` (k rows) rotates L onto the eigenvectors
of ``L C L'``, computes one such ``nu_m`` per retained eigenvalue and combines them as
``2E / (E - q)`` with ``E = sum(nu_m / (nu_m - 2))``.

Numerical derivatives use Richardson extrapolation of central differences with four
halvings of the step (the scheme of R's numDeriv with its default settings: relative
step 0.1 for the Hessian and 1e-4 for the Jacobian), so that pylme's numbers agree with
lmerTest's to far below the tests' tolerances when the fits agree.

Type I, II and III hypothesis matrices follow lmerTest's constructions (sequential
Doolittle contrasts; marginal or Doolittle contrasts after reordering the containing
terms; and type III contrasts orthogonalised against the terms containing them,
computed in treatment coding and mapped to the fit's coding).

The table builders (``contest``, ``contest1D``, ``contestMD``, ``satterthwaite_table``,
``anova_table``) take ``ddf="Kenward-Roger"`` to run the same tables with the tests of
``pylme.inference.kenward_roger``, as lmerTest's do.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from ..errors import FitMessage, ModelError, PylmeWarning
from ..rbase.printing import zapsmall
from .tables import F_COLUMNS, T_COLUMNS, f_row, qform, t_row

__all__ = [
    "SatterthwaiteInfo",
    "SatterthwaiteWarning",
    "anova_table",
    "anova_type3",
    "contest",
    "contest1D",
    "contestMD",
    "difference_steps",
    "eigen_warnings",
    "hypothesis_matrices",
    "numeric_hessian",
    "numeric_jacobian",
    "richardson",
    "satterthwaite_info",
    "satterthwaite_table",
]


_EPS = float(np.finfo(float).eps)
_ZERO_TOL = math.sqrt(_EPS / 7e-7)  # below this |x| the step is absolute, not relative


class SatterthwaiteWarning(PylmeWarning):
    """lmerTest's warnings about the Hessian of the variance parameters."""


# ---------------------------------------------------------------- numerical derivatives
def richardson(approx: list, r: int) -> np.ndarray:
    """Extrapolate approximations made with steps h, h/2, h/4, ... whose error is a series
    in even powers of h: each pass cancels the next power (4^m weights)."""
    a = [np.asarray(x, dtype=float) for x in approx]
    for m in range(1, r):
        w = 4.0**m
        a = [(w * a[k + 1] - a[k]) / (w - 1.0) for k in range(len(a) - 1)]
    return a[0]


def difference_steps(x: np.ndarray, d: float, eps: float) -> np.ndarray:
    return np.abs(d * x) + eps * (np.abs(x) < _ZERO_TOL)


def numeric_hessian(f, x, d: float = 0.1, eps: float = 1e-4, r: int = 4) -> np.ndarray:
    """Hessian of a scalar function by Richardson-extrapolated central differences.

    Steps start at ``|d x|`` (``eps`` where x is near 0) and are halved r-1 times.
    Diagonal entries come from second differences; an off-diagonal (i, j) from the
    second difference along e_i + e_j less the extrapolated diagonal curvatures.
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    h0 = difference_steps(x, d, eps)
    f0 = f(x)
    H = np.zeros((n, n))
    for i in range(n):
        ei = np.zeros(n)
        ei[i] = 1.0
        approx = []
        for k in range(r):
            h = h0[i] / 2.0**k
            approx.append((f(x + h * ei) - 2.0 * f0 + f(x - h * ei)) / h**2)
        H[i, i] = richardson(approx, r)
    for i in range(n):
        for j in range(i):
            approx = []
            for k in range(r):
                h = h0 / 2.0**k
                step = np.zeros(n)
                step[i], step[j] = h[i], h[j]
                num = f(x + step) - 2.0 * f0 + f(x - step) - H[i, i] * h[i] ** 2 - H[j, j] * h[j] ** 2
                approx.append(num / (2.0 * h[i] * h[j]))
            H[i, j] = H[j, i] = richardson(approx, r)
    return H


def numeric_jacobian(F, x, d: float = 1e-4, eps: float = 1e-4, r: int = 4) -> np.ndarray:
    """Jacobian (len(F(x)) x len(x)) of a vector function by Richardson-extrapolated
    central differences, steps starting at ``|d x|`` (``eps`` near 0)."""
    x = np.asarray(x, dtype=float)
    n = x.size
    h0 = difference_steps(x, d, eps)
    cols = []
    for i in range(n):
        ei = np.zeros(n)
        ei[i] = 1.0
        approx = []
        for k in range(r):
            h = h0[i] / 2.0**k
            approx.append((np.ravel(F(x + h * ei)) - np.ravel(F(x - h * ei))) / (2.0 * h))
        cols.append(richardson(approx, r))
    return np.column_stack(cols) if cols else np.zeros((np.ravel(F(x)).size, 0))


# ---------------------------------------------------------------- the variance parameters
@dataclass
class SatterthwaiteInfo:
    """What Satterthwaite's method needs from a fit (lmerTest's lmerModLmerTest slots)."""

    varpar: np.ndarray  # (theta, sigma)
    beta: np.ndarray
    vcov_beta: np.ndarray  # sigma^2 (RX'RX)^-1
    hessian: np.ndarray  # of the deviance in varpar
    vcov_varpar: np.ndarray  # 2 H^-1 (pseudo-inverse over the positive eigenvalues)
    jac: np.ndarray  # (len(varpar), p, p): d vcov_beta / d varpar_k
    sigma: float
    names: list[str]
    warnings: list[str] = field(default_factory=list)


def deviance_varpar(fm, varpar: np.ndarray) -> float:
    """The deviance (REML criterion for REML fits) at theta with sigma given, not profiled."""
    varpar = np.asarray(varpar, dtype=float)
    theta, sigma2 = varpar[:-1], varpar[-1] ** 2
    st = fm.objective.pls_state(theta)
    n = fm.n
    dev = st.ldL2 + st.pwrss / sigma2 + n * math.log(2.0 * math.pi * sigma2)
    if not fm.REML:
        return dev
    return dev + st.ldRX2 - fm.p * math.log(2.0 * math.pi * sigma2)


def vcov_beta_varpar(fm, varpar: np.ndarray) -> np.ndarray:
    """sigma^2 (RX'RX)^-1 at theta (the covariance of beta-hat given the variance parameters)."""
    varpar = np.asarray(varpar, dtype=float)
    st = fm.objective.pls_state(varpar[:-1])
    RXi = np.linalg.inv(st.RX) if fm.p else np.zeros((0, 0))
    return varpar[-1] ** 2 * (RXi @ RXi.T)


def eigen_warnings(values: np.ndarray, tol: float) -> list[str]:
    out = []
    neg = values[values < -tol]
    zero = values[(values > -tol) & (values < tol)]
    if neg.size:
        word = "eigenvalues" if neg.size > 1 else "eigenvalue"
        out.append(f"Model failed to converge with {neg.size} negative {word}: "
                   + " ".join(f"{v:1.1e}" for v in neg))
    if zero.size:
        word = "eigenvalues" if zero.size > 1 else "eigenvalue"
        out.append(f"Model may not have converged with {zero.size} {word} close to zero: "
                   + " ".join(f"{v:1.1e}" for v in zero))
    return out


def satterthwaite_info(fm, tol: float = 1e-8) -> SatterthwaiteInfo:
    """The variance parameters' covariance and the Jacobian of vcov(beta), computed once per
    fit (cached on the fit); warns as lmerTest does about negative or near-zero Hessian
    eigenvalues."""
    cache = fm.__dict__
    info = cache.get("_satterthwaite_info")
    if info is not None:
        return info
    sigma = fm.sigma()
    varpar = np.concatenate([np.asarray(fm.theta, dtype=float), [sigma]])
    H = numeric_hessian(lambda vp: deviance_varpar(fm, vp), varpar)
    # LAPACK's symmetric eigensolver, decreasing order as R's eigen()
    values, vectors = np.linalg.eigh(H)
    values, vectors = values[::-1], vectors[:, ::-1]
    msgs = eigen_warnings(values, tol)
    pos = values > tol
    Hinv = (vectors[:, pos] / values[pos]) @ vectors[:, pos].T
    p = fm.p
    jac = numeric_jacobian(lambda vp: vcov_beta_varpar(fm, vp), varpar)
    jac = np.stack([jac[:, k].reshape(p, p) for k in range(varpar.size)]) if p else np.zeros((varpar.size, 0, 0))
    st = fm.state
    RXi = np.linalg.inv(st.RX) if p else np.zeros((0, 0))
    info = SatterthwaiteInfo(
        varpar=varpar,
        beta=np.asarray(st.beta, dtype=float),
        vcov_beta=sigma**2 * (RXi @ RXi.T),
        hessian=H,
        vcov_varpar=2.0 * Hinv,
        jac=jac,
        sigma=sigma,
        names=list(fm.lmod.fixef_names),
        warnings=msgs,
    )
    for msg in msgs:
        warnings.warn(msg, SatterthwaiteWarning, stacklevel=3)
    cache["_satterthwaite_info"] = info
    return info


# ---------------------------------------------------------------- tests of contrasts
def _width_check(L: np.ndarray, fm) -> None:
    names = list(fm.lmod.fixef_names)
    p = len(names)
    if L.shape[-1] != p:
        raise ModelError(
            f"contrast has {L.shape[-1]} column{'s' if L.shape[-1] != 1 else ''}; expecting {p} "
            f"(one per fixed-effect coefficient: {', '.join(names)})"
        )


DDF_METHODS = ("Satterthwaite", "Kenward-Roger")


@dataclass
class _Method:
    """The t- and F-test of one ddf method, bound to a fit."""

    title: str  # as lmerTest's headings name it
    names: list[str]
    t_test: Callable[..., dict]
    f_test: Callable[..., dict | None]


def _method(fm, ddf: str) -> _Method:
    """Satterthwaite's tests (this module) or Kenward-Roger's (pylme.inference.kenward_roger)."""
    if ddf == "Satterthwaite":
        info = satterthwaite_info(fm)
        return _Method("Satterthwaite's", info.names, partial(t_test, info), partial(_f_test, info))
    if ddf == "Kenward-Roger":  # the adjusted covariance is computed when a test first needs it
        from . import kenward_roger as kr

        return _Method("Kenward-Roger's", list(fm.lmod.fixef_names), partial(kr.t_test, fm), partial(kr.f_test, fm))
    raise ValueError(f"ddf must be one of {', '.join(map(repr, DDF_METHODS))}, not {ddf!r}")


def t_test(info: SatterthwaiteInfo, L: np.ndarray, rhs: float = 0.0, confint: bool = False,
            level: float = 0.95) -> dict:
    """One t-test of ``L beta = rhs`` with Satterthwaite's df (lmerTest's contest1D)."""
    if np.any(np.isnan(L)):
        return t_row(np.nan, np.nan, np.nan, rhs, confint, level)
    estimate = float(L @ info.beta)
    var_con = qform(L, info.vcov_beta)
    grad = np.array([qform(L, J) for J in info.jac])
    denom = qform(grad, info.vcov_varpar)
    with np.errstate(divide="ignore", invalid="ignore"):
        ddf = 2.0 * var_con**2 / denom
    return t_row(estimate, math.sqrt(var_con), float(ddf), rhs, confint, level)


def contest1D(fm, L, rhs: float = 0.0, confint: bool = False, level: float = 0.95,
              ddf: str = "Satterthwaite") -> pd.DataFrame:
    """t-test of one linear combination ``L beta = rhs`` (L of length p): Estimate,
    Std. Error, df, t value, Pr(>|t|) as lmerTest's contest1D (``ddf``: "Satterthwaite" or
    "Kenward-Roger")."""
    L = np.asarray(L, dtype=float)
    if L.ndim == 2 and 1 in L.shape:
        L = L.reshape(-1)
    if L.ndim != 1:
        raise ModelError(f"contest1D needs one contrast (a vector of length {fm.p}), got shape {L.shape}")
    _width_check(L, fm)
    method = _method(fm, ddf)
    cols = T_COLUMNS[:4] + (["lower", "upper"] if confint else []) + T_COLUMNS[4:]
    if L.size == 0:
        return pd.DataFrame(columns=cols, dtype=float)
    return pd.DataFrame([method.t_test(L, rhs, confint, level)], columns=cols)


def _combine_df(nu: np.ndarray, tol: float = 1e-8) -> float:
    """One denominator df from the per-direction Satterthwaite dfs of a multi-df F-test."""
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2.0)))
    return 2.0 * E / (E - nu.size)


def _f_test(info: SatterthwaiteInfo, L: np.ndarray, rhs=0.0, eps: float = math.sqrt(_EPS)) -> dict | None:
    """F-test of ``L beta = rhs`` (lmerTest's contestMD); None for an empty hypothesis."""
    k = L.shape[0]
    rhs = np.broadcast_to(np.asarray(rhs, dtype=float), (k,)).copy()
    if k == 0:
        return None
    if np.any(np.isnan(L)):
        return f_row(np.nan, np.nan, np.nan, np.nan)
    if k == 1:
        t = t_test(info, L[0], float(rhs[0]))
        return f_row(t["t value"] ** 2, 1, t["df"], info.sigma)
    beta = info.beta
    if np.any(rhs != 0):
        beta = beta - np.linalg.pinv(L, rcond=eps) @ rhs
    VL = L @ info.vcov_beta @ L.T
    d, P = np.linalg.eigh(VL)
    d, P = d[::-1], P[:, ::-1]
    tol = max(eps * d[0], 0.0)
    pos = d > tol
    q = int(np.sum(pos))
    if q < k and np.any(rhs != 0):
        warnings.warn("Contrast is rank deficient and test may be affected", PylmeWarning, stacklevel=3)
    if q == 0:
        return None
    PtL = (P.T @ L)[:q]
    if q == 1:
        t = t_test(info, PtL[0], float(rhs[0]))
        return f_row(t["t value"] ** 2, 1, t["df"], info.sigma)
    F = float(np.sum((PtL @ beta) ** 2 / d[:q]) / q)
    nu = np.empty(q)
    for m in range(q):
        grad = np.array([qform(PtL[m], J) for J in info.jac])
        nu[m] = 2.0 * d[m] ** 2 / qform(grad, info.vcov_varpar)
    return f_row(F, q, _combine_df(nu), info.sigma)


def contestMD(fm, L, rhs=0.0, ddf: str = "Satterthwaite") -> pd.DataFrame:
    """Joint F-test of ``L beta = rhs`` (L: k x p): Sum Sq, Mean Sq, NumDF, DenDF, F value,
    Pr(>F) as lmerTest's contestMD. Satterthwaite: rotated onto the eigenvectors of
    ``L vcov(beta) L'`` (directions with eigenvalue <= sqrt(eps) * the largest are dropped);
    Kenward-Roger: pbkrtest's KRmodcomp on L's row space."""
    L = np.asarray(L, dtype=float)
    if L.ndim == 1:
        L = L.reshape(1, -1)
    _width_check(L, fm)
    row = _method(fm, ddf).f_test(L, rhs)
    return pd.DataFrame([row] if row else [], columns=F_COLUMNS)


def contest(fm, L, rhs=0.0, joint: bool | None = None, confint: bool = False, level: float = 0.95,
            ddf: str = "Satterthwaite") -> pd.DataFrame:
    """Test linear hypotheses ``L beta = rhs`` with Satterthwaite's or (``ddf="Kenward-Roger"``)
    Kenward-Roger's degrees of freedom.

    * a vector of length p (or a 1 x p matrix) gives a t-test (lmerTest's contest1D);
    * a k x p matrix with k > 1 gives one F-test of the k rows jointly (contestMD);
    * ``joint=True`` forces the F-test also for one row (lmerTest's ``contest`` default);
      ``joint=False`` gives one t-test per row (``contest(..., joint = FALSE)``).

    The width must be p, the number of fixed-effect coefficients; a ``ModelError`` names it.
    """
    arr = np.asarray(L, dtype=float)
    if arr.ndim not in (1, 2):
        raise ModelError(f"a contrast must be a vector or a matrix, got an array of shape {arr.shape}")
    _width_check(arr, fm)
    index = L.index if isinstance(L, pd.DataFrame) else None
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if joint is None:
        joint = arr.shape[0] > 1
    if joint:
        return contestMD(fm, arr, rhs, ddf)
    method = _method(fm, ddf)
    rhs_v = np.broadcast_to(np.asarray(rhs, dtype=float), (arr.shape[0],))
    cols = T_COLUMNS[:4] + (["lower", "upper"] if confint else []) + T_COLUMNS[4:]
    rows = [method.t_test(arr[i], float(rhs_v[i]), confint, level) for i in range(arr.shape[0])]
    out = pd.DataFrame(rows, columns=cols)
    if index is not None and len(index) == len(out):
        out.index = index
    return out


def satterthwaite_table(fm, ddf: str = "Satterthwaite") -> pd.DataFrame:
    """lmerTest's ``summary(fm, ddf = ddf)$coefficients``: per fixed effect Estimate,
    Std. Error, df, t value and Pr(>|t|) with Satterthwaite's (or Kenward-Roger's, whose
    Std. Error comes from the adjusted covariance) degrees of freedom."""
    method = _method(fm, ddf)
    p = len(method.names)
    rows = [method.t_test(np.eye(p)[i]) for i in range(p)]
    return pd.DataFrame(rows, index=pd.Index(method.names), columns=T_COLUMNS)


# ---------------------------------------------------------------- ANOVA tables
def _doolittle_L(x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Unit lower-triangular factor of an LU (Doolittle) decomposition without pivoting,
    with entries below ``eps`` in magnitude set to 0 (and a column zeroed where the pivot is)."""
    n = x.shape[0]
    L = np.eye(n)
    U = np.zeros((n, n))
    for i in range(n):
        U[i, :] = x[i, :] - L[i, :i] @ U[:i, :]
        if i + 1 < n:
            col = x[i + 1 :, i] - L[i + 1 :, :i] @ U[:i, i]
            L[i + 1 :, i] = 0.0 if abs(U[i, i]) < eps else col / U[i, i]
    L[np.abs(L) < eps] = 0.0
    return L


@dataclass
class _Design:
    """The fit's fixed-effects terms and columns as lmerTest sees them."""

    labels: list[str]  # term labels in R's order
    order: list[int]  # number of variables per term
    col_terms: list[str]  # per column of X: "(Intercept)" or its term label
    names: list[str]  # X's column names
    X: np.ndarray
    contained: dict[str, list[str]]  # term -> the terms containing it (lmerTest's containment)
    intercept: bool


def _design(fm) -> _Design:
    lmod = fm.lmod
    spec = lmod.X_spec
    terms = spec.terms
    labels = list(terms.labels)
    full = list(spec.column_names)
    keep = [full.index(nm) for nm in lmod.fixef_names]
    assign = [spec.assign[k] for k in keep]
    col_terms = ["(Intercept)" if a == 0 else labels[a - 1] for a in assign]
    # R's factors attribute: a variable is coded 1 in a term when the term without it is
    # empty or contained in a preceding term, 2 otherwise; lmerTest's containment uses the 1s.
    sets = [[v.label for v in t] for t in terms.terms]
    ones = []
    for j, t in enumerate(sets):
        row = set()
        for v in t:
            rest = set(t) - {v}
            if not rest or any(rest <= set(s) for s in sets[:j]):
                row.add(v)
        ones.append(row)
    numerics = {label for label, c in spec.codings.items() if _is_plain_numeric(c)}
    contained = {}
    for j, lab in enumerate(labels):
        vj = ones[j]
        inside = []
        for k, other in enumerate(labels):
            vk = ones[k]
            if vj <= vk and vk - vj and (vj & numerics) == (vk & numerics):
                inside.append(other)
        contained[lab] = inside
    return _Design(labels, [len(t) for t in terms.terms], col_terms, list(lmod.fixef_names),
                   np.asarray(lmod.X, dtype=float), contained, bool(terms.intercept))


def _is_plain_numeric(coding) -> bool:
    """A variable R's model frame classes as "numeric" (one numeric column; not a matrix)."""
    from ..description.model_matrix import NumericCoding

    return isinstance(coding, NumericCoding) and len(coding.names) == 1


def _term_cols(des: _Design) -> dict[str, list[int]]:
    out = {}
    for i, t in enumerate(des.col_terms):
        out.setdefault(t, []).append(i)
    for lab in des.labels:
        out.setdefault(lab, [])
    return out


def _contrasts_type1(des: _Design) -> dict[str, np.ndarray]:
    p = des.X.shape[1]
    if p == 0 or (p == 1 and des.intercept):
        return {}
    L = np.ones((1, 1)) if p == 1 else _doolittle_L(des.X.T @ des.X).T
    cols = _term_cols(des)
    return {lab: L[cols[lab], :] for lab in des.labels}


def _contrasts_type2(des: _Design) -> dict[str, np.ndarray]:
    p = des.X.shape[1]
    if p <= 1 or len(des.labels) <= 1:
        return _contrasts_type1(des)
    cols = _term_cols(des)
    out = {}
    for lab in des.labels:
        inside = des.contained[lab]
        if not inside:  # not contained in any term: the marginal test of its coefficients
            out[lab] = np.eye(p)[cols[lab], :]
            continue
        # the term and the terms containing it last, then sequential (Doolittle) contrasts
        last = [c for t in [lab] + inside for c in cols[t]]
        order = [c for c in range(p) if c not in last] + last
        Lc = _doolittle_L(des.X[:, order].T @ des.X[:, order]).T
        rows = [i for i, c in enumerate(order) if des.col_terms[c] == lab]
        back = np.argsort(order)  # columns back in X's order
        out[lab] = Lc[np.ix_(rows, back)]
    return out


def _treatment_spec(spec):
    """A copy of the design spec with every ordered factor in treatment coding."""
    import copy

    from ..description.model_matrix import FactorCoding

    new = copy.copy(spec)
    new.codings = {k: FactorCoding(c.levels, False) if isinstance(c, FactorCoding) else c
                   for k, c in spec.codings.items()}
    return new


def _contrasts_type3(fm, des: _Design) -> dict[str, np.ndarray]:
    from ..description.model_matrix import FactorCoding, drop_rank_deficient

    p = des.X.shape[1]
    if p <= 1 or len(des.labels) <= 1:
        return _contrasts_type1(des)
    spec = fm.lmod.X_spec
    frame = fm.lmod.frame.data
    factors = [c for c in spec.codings.values() if isinstance(c, FactorCoding)]
    remake = not factors or any(c.ordered for c in factors)
    if remake:
        # lmerTest computes type III contrasts in treatment coding, then maps them to the fit's
        tspec = _treatment_spec(spec)
        Xt = tspec.matrix(frame)
        names = ["(Intercept)"] if spec.terms.intercept else []
        tassign = [0] if spec.terms.intercept else []
        for k, (term, tk) in enumerate(zip(spec.terms.terms, spec.term_kinds), start=1):
            nm = tspec._term_block(frame.iloc[:1], term, tk)[1]
            names += nm
            tassign += [k] * len(nm)
        Xt, keep = drop_rank_deficient(Xt)
        tdes = _Design(des.labels, des.order,
                       ["(Intercept)" if tassign[k] == 0 else des.labels[tassign[k] - 1] for k in keep],
                       [names[k] for k in keep], Xt, des.contained, des.intercept)
        ctr = _extract_type3(fm, tdes, tspec)
        mapping = zapsmall(np.linalg.pinv(Xt, rcond=math.sqrt(_EPS)) @ des.X)
        return {lab: L @ mapping for lab, L in ctr.items()}
    return _extract_type3(fm, des, spec)


def _extract_type3(fm, des: _Design, spec) -> dict[str, np.ndarray]:
    """Type III contrasts for a treatment-coded X: the coefficients of the full-indicator
    ("redundant") design in X's parameters, each term's columns orthogonalised against the
    columns of the terms containing it (highest order first)."""
    frame = fm.lmod.frame.data
    blocks, rd_names = [], []
    if spec.terms.intercept:
        blocks.append(np.ones((len(frame), 1)))
        rd_names.append("(Intercept)")
    for term in spec.terms.terms:
        kinds = tuple(0 if _is_numeric_coding(spec.codings[v.label]) else 2 for v in term)
        b, nm = spec._term_block(frame, term, kinds)
        blocks.append(b)
        rd_names += nm
    rdX = np.hstack(blocks) if blocks else np.zeros((len(frame), 0))
    missing = [nm for j, nm in enumerate(rd_names) if np.all(rdX[:, j] == 0)]
    if missing:
        # lmerTest's message, as R's paste() joins its two parts
        warnings.warn(f"Missing cells for: {', '.join(missing)}.  \nInterpret type III hypotheses with care.",
                      FitMessage, stacklevel=4)
    X = des.X
    M = zapsmall((np.linalg.pinv(X, rcond=math.sqrt(_EPS)) @ rdX).T)  # rd params x X columns
    cols = _term_cols(des)
    order = sorted(range(len(des.labels)), key=lambda j: -des.order[j])  # stable: highest order first
    for j in order:
        lab = des.labels[j]
        inside = des.contained[lab]
        if not inside or not cols[lab]:
            continue
        Z = M[:, [c for t in inside for c in cols[t]]]
        Y = M[:, cols[lab]]
        if Z.shape[1]:
            coef, *_ = np.linalg.lstsq(Z, Y, rcond=None)
            Y = Y - Z @ coef
        M[:, cols[lab]] = zapsmall(Y)
    pos = {nm: i for i, nm in enumerate(rd_names)}
    try:
        rows = [pos[nm] for nm in des.names]
    except KeyError as exc:  # pragma: no cover - every treatment-coded column has a redundant twin
        raise ModelError(f"type III contrasts: column {exc.args[0]!r} not found in the indicator design") from None
    S = M[rows, :]  # X columns x X columns
    out = {}
    for lab in des.labels:
        L = S[:, cols[lab]].T
        out[lab] = L[np.sum(np.abs(L), axis=1) > 1e-8, :]
    return out


def _is_numeric_coding(coding) -> bool:
    from ..description.model_matrix import NumericCoding

    return isinstance(coding, NumericCoding)


def hypothesis_matrices(fm, type=3) -> dict[str, np.ndarray]:
    """The hypothesis (contrast) matrix per model term that lmerTest's ``anova(fm, type)`` tests:
    type 1 (sequential), 2 (each term adjusted for all terms not containing it) or 3."""
    t = _anova_type(type)
    des = _design(fm)
    if t == 1:
        return _contrasts_type1(des)
    if t == 2:
        return _contrasts_type2(des)
    return _contrasts_type3(fm, des)


def _anova_type(type) -> int:
    table = {"1": 1, "I": 1, "2": 2, "II": 2, "3": 3, "III": 3}
    key = str(type).upper()
    if key not in table:
        raise ValueError(f"anova type {type!r} not recognized: use 1, 2 or 3 (or 'I', 'II', 'III')")
    return table[key]


def anova_table(fm, type=3, ddf: str = "Satterthwaite") -> pd.DataFrame:
    """lmerTest's ``anova(fm, type = type, ddf = ddf)`` (Satterthwaite's or Kenward-Roger's
    method): per term Sum Sq, Mean Sq, NumDF, DenDF, F value and Pr(>F). Terms whose
    hypothesis is empty (all its contrasts zero) get a row of NaN at the end, as lmerTest does."""
    method = _method(fm, ddf)
    Ls = hypothesis_matrices(fm, type)
    rows, index, empty = [], [], []
    for lab, L in Ls.items():
        row = method.f_test(np.asarray(L, dtype=float))
        if row is None:
            empty.append(lab)
            continue
        rows.append(row)
        index.append(lab)
    for lab in empty:
        rows.append({c: np.nan for c in F_COLUMNS})
        index.append(lab)
    from .anova import AnovaTable

    out = AnovaTable(pd.DataFrame(rows, index=pd.Index(index), columns=F_COLUMNS))
    kind = {1: "I", 2: "II", 3: "III"}[_anova_type(type)]
    out.attrs["heading"] = f"Type {kind} Analysis of Variance Table with {method.title} method"
    out.heading = [out.attrs["heading"]]
    return out


def anova_type3(fm) -> pd.DataFrame:
    """lmerTest's ``anova(fm)`` (type III, Satterthwaite)."""
    return anova_table(fm, 3)
