"""Kenward-Roger's adjusted covariance and denominator degrees of freedom for t- and F-tests of
fixed effects, with the same answers as R's pbkrtest (0.5.2) as lmerTest (3.1-3) uses it:
``summary(fm, ddf = "Kenward-Roger")``, ``anova(fm, type, ddf = "Kenward-Roger")`` and
``contest(fm, L, ddf = "Kenward-Roger")``.

The method (pbkrtest's parameterisation)
----------------------------------------
The marginal covariance of y is ``V = sum_r gamma_r G_r``: one ``gamma_r`` per covariance
component of each random-effects term (the lower triangle of its VarCorr matrix, an element
and its mirror sharing one parameter) with ``G_r = Z_t (I ⊗ E_r) Z_t'``, and the residual
variance ``sigma^2`` with ``G = I`` (prior weights are not part of it, as in pbkrtest). With
``Phi = vcov(beta)``, ``P_r = -X'V^-1 G_r V^-1 X`` and ``Q_rs = X'V^-1 G_r V^-1 G_s V^-1 X``,
the expected REML information is ``I_rs = tr(V^-1 G_r V^-1 G_s) - 2 tr(Phi Q_rs) +
tr(Phi P_r Phi P_s)``, ``W = 2 I^-1`` (a pseudo-inverse when an eigenvalue is below 1e-10) and
the adjusted covariance ``Phi_A = Phi + 2 Phi (sum_rs W_rs (Q_rs - P_r Phi P_s)) Phi``.

For a hypothesis ``L beta = 0`` of rank q, with ``Theta = L'(L Phi L')^-1 L``, the sums
``A1 = sum W_rs tr(Theta Phi P_r Phi) tr(Theta Phi P_s Phi)`` and
``A2 = sum W_rs tr(Theta Phi P_r Phi Theta Phi P_s Phi)`` give the denominator df and the
scaling of the Wald F computed with ``Phi_A``; a t-test is the case q = 1 with standard error
``sqrt(l' Phi_A l)``.

Nothing of size n x n is formed: with ``V = sigma^2 (I + Z Lambda Lambda' Z')`` and
``C = Lambda'Z'Z Lambda + I``, Woodbury's identity gives ``V^-1`` applied to n x p blocks,
``Z'V^-1 Z`` and ``Z'V^-2 Z`` as q x q matrices, and ``tr(V^-2)`` from ``C^-1``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp

from ..errors import ModelError, PylmeWarning
from .tables import f_row, qform, t_row

__all__ = ["REML_ONLY", "KenwardRogerInfo", "Lb_ddf", "f_test", "t_test", "vcovAdj"]

_EPS = float(np.finfo(float).eps)
REML_ONLY = "Kenward-Roger's method is only available for REML model fits"


@dataclass
class KenwardRogerInfo:
    """pbkrtest's ``vcovAdj`` with its attributes P and W, and what the tests need besides."""

    beta: np.ndarray
    vcov_beta: np.ndarray  # Phi, lme4's vcov
    vcov_adj: np.ndarray  # Phi_A
    P: list[np.ndarray]
    W: np.ndarray
    sigma: float
    names: list[str]


# ---------------------------------------------------------------- V and its derivatives
def _derivative_patterns(reTrms) -> list[sp.csr_matrix]:
    """Per covariance parameter of each term (row-major upper triangle of its VarCorr block),
    the q x q matrix D_r with G_r = Z D_r Z': ones at (i, j) and (j, i) in every level's block."""
    q = int(reTrms.Gp[-1])
    out = []
    for t, off in zip(reTrms.terms, reTrms.Gp[:-1]):
        base = off + np.arange(t.nl) * t.nc
        for i in range(t.nc):
            for j in range(i, t.nc):
                rows = np.concatenate([base + i, base + j]) if i != j else base + i
                cols = np.concatenate([base + j, base + i]) if i != j else base + i
                out.append(sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(q, q)))
    return out


class _Marginal:
    """``V = s2 (I + Z Lambda Lambda' Z')`` through Woodbury's identity, in q-space."""

    def __init__(self, Zt: sp.csc_matrix, Lambdat: sp.csc_matrix, s2: float):
        self.Zt, self.Lambdat, self.s2 = Zt, Lambdat, s2
        q = Zt.shape[0]
        self.ZtZ = (Zt @ Zt.T).toarray()
        A = np.asarray(Lambdat @ self.ZtZ)  # Lambda' Z'Z
        C = np.eye(q) + np.asarray(Lambdat @ A.T).T
        self.cho = la.cho_factor(C)
        K = np.eye(q) - np.asarray(Lambdat.T @ la.cho_solve(self.cho, A))
        self.ZtVinvZ = self.ZtZ @ K / s2  # Z'V^-1 Z
        self.ZtVinv2Z = K.T @ self.ZtVinvZ / s2  # Z'V^-2 Z
        S = np.eye(q) - la.cho_solve(self.cho, np.eye(q))  # C^-1 Lambda'Z'Z Lambda
        self.trace_Vinv2 = (Zt.shape[1] - 2.0 * np.trace(S) + np.sum(S * S.T)) / s2**2

    def solve(self, Y: np.ndarray) -> np.ndarray:
        """V^-1 Y for an n x k block."""
        inner = la.cho_solve(self.cho, np.asarray(self.Lambdat @ (self.Zt @ Y)))
        return (Y - self.Zt.T @ (self.Lambdat.T @ inner)) / self.s2


def _information_blocks(fm, Phi: np.ndarray):
    """pbkrtest's P_r, Q_rs (r <= s, as a dict) and the expected information matrix."""
    rt = fm.lmod.reTrms
    X = np.asarray(fm.lmod.X, dtype=float)
    mv = _Marginal(rt.Zt, rt.lam.Lambdat(fm.theta), fm.sigma() ** 2)
    D = _derivative_patterns(rt)
    k = len(D) + 1  # the residual variance last
    TT = mv.solve(X)  # V^-1 X
    ZtT = np.asarray(rt.Zt @ TT)
    O = [np.asarray(rt.Zt.T @ (Dr @ ZtT)) for Dr in D] + [TT]  # G_r V^-1 X
    P = [-ZtT.T @ (Dr @ ZtT) for Dr in D] + [-TT.T @ TT]
    VO = [mv.solve(o) for o in O]
    DM = [np.asarray(Dr @ mv.ZtVinvZ) for Dr in D]
    Q, info = {}, np.empty((k, k))
    for r in range(k):
        for s in range(r, k):
            Q[r, s] = O[r].T @ VO[s]
            if s < k - 1:
                ktrace = np.sum(DM[r] * DM[s].T)
            elif r < k - 1:
                ktrace = float(D[r].multiply(mv.ZtVinv2Z).sum())
            else:
                ktrace = mv.trace_Vinv2
            info[r, s] = info[s, r] = ktrace - 2.0 * np.sum(Phi * Q[r, s]) + np.sum((Phi @ P[r]) * (P[s] @ Phi))
    return P, Q, info


def _ginv(A: np.ndarray) -> np.ndarray:
    """MASS::ginv: the pseudo-inverse over singular values above sqrt(eps) times the largest."""
    return np.linalg.pinv(A, rcond=math.sqrt(_EPS))


def vcovAdj(fm) -> KenwardRogerInfo:
    """pbkrtest's ``vcovAdj(fm)``: the Kenward-Roger adjusted covariance of the fixed effects
    (``.vcov_adj``) with its P and W (computed once per fit; REML fits only)."""
    cache = fm.__dict__
    if "_kenward_roger_info" in cache:
        return cache["_kenward_roger_info"]
    if not fm.REML:
        raise ModelError(REML_ONLY)
    Phi = fm.vcov().to_numpy()
    P, Q, info = _information_blocks(fm, Phi)
    condi = np.min(np.abs(np.linalg.eigvalsh(info)))
    W = 2.0 * (np.linalg.inv(info) if condi > 1e-10 else _ginv(info))
    W = (W + W.T) / 2.0
    k = len(P)
    U = np.zeros_like(Phi)
    for r in range(k):
        for s in range(r, k):
            term = W[r, s] * (Q[r, s] - P[r] @ Phi @ P[s])
            U += term + term.T if r != s else term
    out = KenwardRogerInfo(beta=np.asarray(fm.fixef(), dtype=float), vcov_beta=Phi,
                           vcov_adj=Phi + 2.0 * Phi @ U @ Phi, P=P, W=W, sigma=fm.sigma(),
                           names=list(fm.lmod.fixef_names))
    cache["_kenward_roger_info"] = out
    return out


# ---------------------------------------------------------------- df and F scaling
def _A1_A2(info: KenwardRogerInfo, L: np.ndarray) -> tuple[float, float]:
    Phi = info.vcov_beta
    try:
        Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    except np.linalg.LinAlgError:  # a zero contrast: R's solve() gives no df either
        return np.nan, np.nan
    u = [Theta @ Phi @ Pr @ Phi for Pr in info.P]
    A1 = A2 = 0.0
    k = len(u)
    for r in range(k):
        for s in range(r, k):
            e = 1.0 if r == s else 2.0
            A1 += e * info.W[r, s] * np.trace(u[r]) * np.trace(u[s])
            A2 += e * info.W[r, s] * np.sum(u[r] * u[s].T)
    return A1, A2


def _div_zero(x: float, y: float, tol: float = 1e-14) -> float:
    return 1.0 if abs(x) < tol and abs(y) < tol else x / y


def _ddf_scaling(A1: float, A2: float, q: int) -> tuple[float, float]:
    """Kenward and Roger's denominator df and the F scaling factor from A1, A2."""
    with np.errstate(all="ignore"):
        B = (A1 + 6.0 * A2) / (2.0 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        den = 3.0 * q + 2.0 * (1.0 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        V0 = 1.0 + c1 * B
        V0 = 0.0 if abs(V0) < 1e-10 else V0
        V1, V2 = 1.0 - c2 * B, 1.0 - c3 * B
        rho = _div_zero(1.0 - A2 / q, V1) ** 2 * V0 / V2 / q
        ddf = 4.0 + (q + 2) / (q * rho - 1.0)
        scaling = 1.0 if abs(ddf - 2.0) < 0.01 else ddf * (1.0 - A2 / q) / (ddf - 2.0)
    return float(ddf), float(scaling)


def Lb_ddf(info: KenwardRogerInfo, L: np.ndarray) -> float:
    """pbkrtest's ``Lb_ddf``: the Kenward-Roger df for ``L beta`` (q = the rows of L)."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    return _ddf_scaling(*_A1_A2(info, L), L.shape[0])[0]


def _rank(L: np.ndarray) -> int:
    """Matrix::rankMatrix: singular values >= max(dim) * eps * the largest."""
    sv = np.linalg.svd(L, compute_uv=False)
    return int(np.sum(sv >= max(L.shape) * _EPS * sv[0])) if sv.size and sv[0] > 0 else 0


def _full_rank(L: np.ndarray, q: int) -> np.ndarray:
    """L itself, or an orthonormal basis of its row space when L has more rows than its rank
    q (pbkrtest's force_full_rank; every quantity of the test depends on the row space only)."""
    return L if q == L.shape[0] else np.linalg.svd(L)[2][:q]


# ---------------------------------------------------------------- the tests
def t_test(fm, L: np.ndarray, rhs: float = 0.0, confint: bool = False, level: float = 0.95) -> dict:
    """One t-test of ``L beta = rhs`` (lmerTest's contest1D with ddf = "Kenward-Roger"):
    standard error from the adjusted covariance, df from ``Lb_ddf``."""
    if np.any(np.isnan(L)):
        return t_row(np.nan, np.nan, np.nan, rhs, confint, level)
    info = vcovAdj(fm)
    estimate = float(L @ info.beta)
    se = np.sqrt(max(qform(L, info.vcov_adj), 0.0))
    return t_row(estimate, se, Lb_ddf(info, L), rhs, confint, level)


def f_test(fm, L: np.ndarray, rhs=0.0) -> dict | None:
    """F-test of ``L beta = rhs`` (lmerTest's contestMD with ddf = "Kenward-Roger", through
    pbkrtest's KRmodcomp): Mean Sq from the unscaled Wald F with the adjusted covariance,
    F value scaled. None for an empty hypothesis (no rows, or rank 0)."""
    k = L.shape[0]
    if k == 0:
        return None
    if np.any(np.isnan(L)):
        return f_row(np.nan, np.nan, np.nan, np.nan)
    info = vcovAdj(fm)
    rhs = np.broadcast_to(np.asarray(rhs, dtype=float), (k,))
    beta = info.beta
    if np.any(rhs != 0):
        if np.linalg.matrix_rank(L, tol=1e-7 * np.linalg.norm(L, 2)) < k:  # R's qr(L)$rank
            warnings.warn("Contrast is rank deficient and test may be affected", PylmeWarning, stacklevel=4)
        beta = beta - _ginv(L) @ rhs
    q = _rank(L)
    if q == 0:
        return None
    Lf = _full_rank(L, q)
    Lb = Lf @ beta
    wald = float(Lb @ np.linalg.solve(Lf @ info.vcov_adj @ Lf.T, Lb))
    ddf, scaling = _ddf_scaling(*_A1_A2(info, Lf), q)
    return f_row(wald / q, q, ddf, info.sigma, scaling)
