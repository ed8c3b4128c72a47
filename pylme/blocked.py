"""The profiled criterion by a blocked Cholesky factorisation (MixedModels.jl's approach).

The Gram blocks of ``[Z1 | Zr X y]`` are built once. Per theta, the first term (the one with
the most levels) is eliminated level by level with batched nc x nc Cholesky factors, and the
Schur complement of everything else (the other terms, X and y) is factored densely:

    L11_l = chol(Lambda1' A11_l Lambda1 + I)                  per level l (batched)
    C     = A_r1 blockdiag(Lambda1 L11_l^-T)                   sparse, fixed pattern
    S     = Lambda_r' (A_rr - C C') Lambda_r + [I 0; 0 0]       dense, m x m
    L_S   = chol(S)

and ``ldL2 = 2 sum log diag(L11) + 2 sum log diag(L_S)[:q2]``, ``ldRX2`` from the X rows of
L_S and ``pwrss = L_S[-1, -1]^2``: the last diagonal element. The criterion is the same
function of theta as the CHOLMOD path (``pls.LmerDevfun``), which stays the general path, the
cross-check, and the one that computes the reported fit from explicit residuals.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from .pls import LmerDevfun

#: the largest Schur complement (other random effects + p + 1) factored densely
MAX_DENSE = 3000
#: below this many observations the CHOLMOD path is faster (less Python overhead per evaluation)
MIN_ROWS = 10_000


def blocked_size(devfun: LmerDevfun) -> int:
    """The order of the dense Schur complement the blocked path would factor."""
    t1 = devfun.reTrms.terms[0]
    return devfun.reTrms.Zt.shape[0] - t1.nl * t1.nc + devfun.p + 1


class BlockedDevfun:
    """Theta -> REML criterion or ML deviance, as ``LmerDevfun`` but by blocks."""

    def __init__(self, base: LmerDevfun):
        self.base = base
        rt = base.reTrms
        t1 = rt.terms[0]
        self.nl1, self.nc1 = t1.nl, t1.nc
        self.q1 = t1.nl * t1.nc
        q = rt.Zt.shape[0]
        self.q2 = q - self.q1
        self.nth1 = t1.ntheta
        Zt = base.Ztw.tocsr()
        Z1t, Zrt = Zt[: self.q1], Zt[self.q1 :]
        Rt = sp.vstack([Zrt, sp.csr_matrix(base.Xw.T), sp.csr_matrix(base.yw[None, :])], format="csr")
        self.m = Rt.shape[0]
        self.A11 = _block_diagonal(Z1t, self.nl1, self.nc1)
        self.Ar1 = (Rt @ Z1t.T).tocsr()
        self.Arr = (Rt @ Rt.T).toarray()
        self.inflate = np.concatenate([np.ones(self.q2), np.zeros(self.m - self.q2)])
        self.nevals = 0

    # the interface optimizeLmer uses
    @property
    def lower(self) -> np.ndarray:
        return self.base.lower

    @property
    def start(self) -> np.ndarray:
        return self.base.start

    def __call__(self, theta: np.ndarray) -> float:
        theta = np.asarray(theta, dtype=float)
        self.nevals += 1
        ld1, C = self._first_term(theta)
        G = (C @ C.T).toarray()
        Lr = self._lambda_rest_t(theta)
        S = Lr @ (Lr @ (self.Arr - G)).T  # Lambda_r' (Arr - G) Lambda_r (symmetric)
        S[np.diag_indices_from(S)] += self.inflate
        L, info = lapack.dpotrf(S, lower=1, clean=0, overwrite_a=1)
        if info != 0:
            return np.inf
        d = np.diag(L)
        st = _Pieces(
            ldL2=ld1 + 2.0 * np.sum(np.log(d[: self.q2])),
            ldRX2=2.0 * np.sum(np.log(d[self.q2 : -1])),
            pwrss=d[-1] ** 2,
        )
        return self.base.deviance_from(st, self.base.REML)

    def _first_term(self, theta: np.ndarray) -> tuple[float, sp.csr_matrix]:
        """Batched factors of the first term's diagonal blocks; C = A_r1 blockdiag(Lambda1 L11^-T)."""
        nc = self.nc1
        Lam = np.zeros((nc, nc))
        rows, cols = np.triu_indices(nc)
        Lam[cols, rows] = theta[: self.nth1]  # column-major lower triangle
        M = np.einsum("ji,ljk,km->lim", Lam, self.A11, Lam)
        M[:, np.arange(nc), np.arange(nc)] += 1.0
        L11 = np.linalg.cholesky(M)
        ld1 = 2.0 * float(np.sum(np.log(np.diagonal(L11, axis1=1, axis2=2))))
        # W_l = Lambda1 L11_l^-T, i.e. W_l' solves L11_l W_l' = Lambda1'
        W = np.swapaxes(np.linalg.solve(L11, np.broadcast_to(Lam.T, L11.shape)), 1, 2)
        BD = sp.bsr_matrix((W, np.arange(self.nl1), np.arange(self.nl1 + 1)), shape=(self.q1, self.q1))
        return ld1, (self.Ar1 @ BD).tocsr()

    def _lambda_rest_t(self, theta: np.ndarray) -> sp.csr_matrix:
        """Lambda_r' for the other terms, padded with the identity for X and y."""
        lam = self.base.reTrms.Lambdat_at(theta)[self.q1 :, self.q1 :]
        return sp.block_diag([lam, sp.identity(self.m - self.q2)], format="csr")


class _Pieces:
    """What ``LmerDevfun.deviance_from`` reads from a PLS solution."""

    def __init__(self, ldL2: float, ldRX2: float, pwrss: float):
        self.ldL2, self.ldRX2, self.pwrss = ldL2, ldRX2, pwrss


def _block_diagonal(Z1t: sp.csr_matrix, nl: int, nc: int) -> np.ndarray:
    """The level blocks of Z1'Z1 (block diagonal for a single grouping factor): (nl, nc, nc)."""
    G = (Z1t @ Z1t.T).tocsr()
    base = np.arange(nl) * nc
    out = np.empty((nl, nc, nc))
    for i in range(nc):
        for j in range(nc):
            out[:, i, j] = np.asarray(G[base + i, base + j]).ravel()
    return out


def choose(devfun: LmerDevfun, method: str = "auto"):
    """The objective to optimise: 'cholmod' (the general path), 'blocked', or 'auto' (blocked for
    at least MIN_ROWS observations when its dense Schur complement is at most MAX_DENSE wide)."""
    if method not in ("auto", "cholmod", "blocked"):
        raise ValueError(f"method must be 'auto', 'cholmod' or 'blocked', not {method!r}")
    use_blocked = method == "blocked" or (
        method == "auto" and devfun.n >= MIN_ROWS and blocked_size(devfun) <= MAX_DENSE
    )
    return BlockedDevfun(devfun) if use_blocked else devfun
