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

from .reterms import lambda_block, theta_positions

#: the step of the central differences for a term whose T is singular
DELTA = 1e-5


def blocked_gradient(B, theta: np.ndarray, f) -> np.ndarray:
    """The gradient of ``B`` (a BlockedDevfun with a dense or no block 2) at theta, given its factor f."""
    base, rt = B.base, B.base.reTrms
    REML, p, q2 = base.REML, B.p, B.q2
    _, _, u, _ = B.modes(theta, f)
    pwrss = f.L33[-1, -1] ** 2
    c = (base.n - p if REML else base.n) / pwrss
    Sig = _trailing_inverse(B, f, REML)
    Sbar = _block2_sums(B, Sig[:q2, :q2])
    Sbar[B.k1] = _block1_sum(B, theta, Sig, REML)
    grad = np.zeros(theta.size)
    toff, Gp = rt.theta_offsets, rt.Gp
    for k, term in enumerate(rt.terms):
        nc, nl = term.nc, term.nl
        sl = slice(toff[k], toff[k + 1])
        T = lambda_block(theta[sl], nc)
        if np.any(np.diag(T) == 0.0):  # singular T: by differences of the criterion (one-sided at the
            # bound, where a scalar term's derivative, 0 as the criterion is even in it, hides its sign)
            grad[sl] = [_central(B, theta, j) for j in range(sl.start, sl.stop)]
            continue
        U = u[Gp[k] : Gp[k + 1]].reshape(nl, nc)
        Tinv = solve_triangular(T, np.eye(nc), lower=True)
        D = (nl * np.eye(nc) - Sbar[k] - c * (U.T @ U)) @ Tinv
        a, b = theta_positions(nc)
        grad[sl] = 2.0 * D[b, a]
    return grad


def _central(B, theta: np.ndarray, j: int) -> float:
    """d crit / d theta_j by central differences (a forward one at a bound)."""
    up, down = theta.copy(), theta.copy()
    up[j] += DELTA
    down[j] = max(theta[j] - DELTA, B.lower[j])
    return (B(up) - B(down)) / (up[j] - down[j])


def _trailing_inverse(B, f, REML: bool) -> np.ndarray:
    """Sigma_rr: the inverse of the system left after block 1, [block 2, X] (REML) or block 2 (ML),
    from its lower factor; its lower triangle only (the upper one is not set)."""
    q2, p = B.q2, B.p
    m = q2 + (p if REML else 0)
    if m == 0:
        return np.zeros((0, 0))
    L = np.zeros((m, m), order="F")
    if q2:
        L[:q2, :q2] = B.fill.L  # its upper triangle is zero: block 2 is scattered into the lower one
    if REML and p:
        L[q2:, :q2] = f.L32t[:, :p].T
        L[q2:, q2:] = f.L33[:p, :p]
    S, info = lapack.dpotri(L, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"dpotri failed (info {info})")
    return S


def _block2_sums(B, Sig22: np.ndarray) -> dict[int, np.ndarray]:
    """For each term of block 2: the sum over its levels of Sigma's diagonal blocks."""
    rt = B.base.reTrms
    out, off = {}, 0
    for k, term in enumerate(rt.terms):
        if k == B.k1:
            continue
        nc, nl = term.nc, term.nl
        start = off + np.arange(nl) * nc
        out[k] = np.array([[Sig22[start + max(i, j), start + min(i, j)].sum() for j in range(nc)] for i in range(nc)])
        off += nl * nc
    return out


def _block1_sum(B, theta: np.ndarray, Sig: np.ndarray, REML: bool) -> np.ndarray:
    """Block 1's term: the sum over its levels of Sigma_11,l (see the module's docstring)."""
    blk, q2, p = B.block1, B.q2, B.p
    nl, nc = blk.nl, blk.nc
    T1, Minv = blk.inverses(theta)
    K = np.zeros((nl, nc, nc))
    if q2:
        rows, cols = B.rows, B.cols  # the pattern's lower triangle
        weight = np.where(rows == cols, 1.0, 2.0) * _q22_on_pattern(B, theta, Sig[:q2, :q2])
        k = B.cross.adjoint(weight).reshape(-1, nc, nc)
        k = 0.5 * (k + np.swapaxes(k, 1, 2))  # per group; equal levels have equal M_l
        Mg = Minv[blk.rep]
        total = np.einsum("gij,ki,gkl,lm,gmn->jn", Mg, T1, k, T1, Mg)
    else:
        total = np.zeros((nc, nc))
    if REML and p:
        Ax1 = B.A31[:p].reshape(p, nl, nc)
        Sxx = np.tril(Sig[q2:, q2:]) + np.tril(Sig[q2:, q2:], -1).T
        SA = (Sxx @ B.A31[:p]).reshape(p, nl, nc)
        Kx = np.einsum("pla,plb->lab", Ax1, SA)
        if q2:
            Q2x = B.lambda2t(theta).T @ Sig[q2:, :q2].T
            F = (B.A21r.T @ Q2x).reshape(nl, nc, p)
            cross = np.einsum("lap,plb->lab", F, Ax1)
            Kx += cross + np.swapaxes(cross, 1, 2)
        total = total + np.einsum("lij,ki,lkm,mn,lnr->jr", Minv, T1, Kx, T1, Minv)
    return Minv.sum(axis=0) + total


def _q22_on_pattern(B, theta: np.ndarray, Sig22: np.ndarray) -> np.ndarray:
    """Q22 = Lambda2 Sigma22 Lambda2' at block 2's pattern entries (Sig22: lower triangle)."""
    rows, cols = B.rows, B.cols
    if B.diag2:
        return Sig22[rows, cols] * np.multiply.outer(theta, theta).ravel()[B.scale_pair]
    full = np.tril(Sig22) + np.tril(Sig22, -1).T
    Lt2 = B.lambda2t(theta)
    left = Lt2.T @ full  # Lambda2 Sigma22
    return np.asarray((Lt2.T @ left.T).T)[rows, cols]
