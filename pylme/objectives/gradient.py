"""The gradient of the profiled criterion in theta, from the blocked factor (for L-BFGS-B).

With Lambda = sum_j theta_j E_j, the whole system Omega = [Lambda'Z'Z Lambda + I, Lambda'Z'X;
X'Z Lambda, X'X] (REML; its random-effects block A alone for ML) and Sigma its inverse, the
normal equations ``u = Lambda' Z' r`` and Omega - blockdiag(I, 0) = [Z Lambda, X]'[Z Lambda, X]
give, where Lambda is invertible,

    d log|Omega| / d theta_j = 2 tr(Lambda^-1 E_j) - 2 tr(Sigma_uu Lambda^-1 E_j)
    d pwrss / d theta_j      = -2 u' Lambda^-1 E_j u

so for a term with factor T (nc x nc, nl levels) and its theta at T[a, b]:

    d crit / d theta_j = 2 [(nl I - Sbar - c Ubar) T^-1]_(b, a),    c = (n - p or n) / pwrss

with Sbar the sum over the term's levels of Sigma's nc x nc diagonal blocks and Ubar the sum of
u_l u_l'. Block 2's blocks of Sigma are read off the inverse of the trailing factor [block 2, X]
(LAPACK dpotri; that is why the gradient needs a dense block 2); block 1's are

    Sigma_11,l = M_l^-1 + M_l^-1 T1' (A_1r,l Q A_r1,l) T1 M_l^-1,   Q = Lambda_r Sigma_rr Lambda_r'

where ``A_1r,l Q A_r1,l`` comes from the adjoint of the cross map (one column per group of equal
levels) plus the X rows. A term whose T is singular (a diagonal theta at its bound) has its
components by central differences of the criterion instead.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import lapack, solve_triangular

from ..description.reterms import theta_positions
from .tiled import DENSE_TILE, inverse_by_solves, lower_solve

#: the step of the central differences for a term whose T is singular
DELTA = 1e-5


def term_gradient(T: np.ndarray, nl: int, Sbar: np.ndarray, U: np.ndarray, c: float) -> np.ndarray:
    """d crit / d theta for one term's thetas (lme4's order): ``2 [(nl I - Sbar - c U'U) T^-1]_(b, a)``
    with T its nonsingular factor, U its modes u by level (nl, nc), c = (n - p or n) / pwrss."""
    nc = T.shape[0]
    Tinv = solve_triangular(T, np.eye(nc), lower=True)
    D = (nl * np.eye(nc) - Sbar - c * (U.T @ U)) @ Tinv
    a, b = theta_positions(nc)
    return 2.0 * D[b, a]


def trailing_inverse(L: np.ndarray) -> np.ndarray:
    """Sigma_rr from the lower factor L of the system left after block 1 (Fortran order, upper
    triangle zero): its lower triangle only (the upper one is not set)."""
    n = L.shape[0]
    if n == 0:
        return np.zeros((0, 0))
    if n > DENSE_TILE:  # OpenBLAS's one-call dpotri at such orders: see DENSE_TILE
        return inverse_by_solves(lambda B: lower_solve(L, B, 0), lambda B: lower_solve(L, B, 1), n)
    S, info = lapack.dpotri(L, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"dpotri failed (info {info})")
    return S


def level_sum(Sig: np.ndarray, start: np.ndarray, nc: int) -> np.ndarray:
    """The sum over a term's levels (first rows ``start``) of Sigma's nc x nc diagonal blocks,
    read from its lower triangle."""
    return np.array([[Sig[start + max(i, j), start + min(i, j)].sum() for j in range(nc)] for i in range(nc)])


def first_block_sum(Minv: np.ndarray, T1: np.ndarray, K: np.ndarray | None, rep: np.ndarray,
                    Kx: np.ndarray | None) -> np.ndarray:
    """Block 1's sum over levels of Sigma_11,l = M_l^-1 + M_l^-1 T1' K_l T1 M_l^-1, with K_l the
    cross map's part (one per group of equal levels, ``rep`` their first levels) plus the X rows'
    (per level); either may be None (absent)."""
    nc = T1.shape[0]
    total = np.zeros((nc, nc))
    if K is not None:
        Mg = Minv[rep]
        total = np.einsum("gij,ki,gkl,lm,gmn->jn", Mg, T1, K, T1, Mg)
    if Kx is not None:
        total = total + np.einsum("lij,ki,lkm,mn,lnr->jr", Minv, T1, Kx, T1, Minv)
    return Minv.sum(axis=0) + total
