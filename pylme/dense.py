"""A dense objective for small models, used by ``refit``.

With ``A = W^1/2 [Z  X  r]`` (``r`` the response less its offset, made orthogonal to X, which
leaves pwrss unchanged and keeps it from being a small difference of large numbers) the Gram
matrix ``G = A'A`` is built once. Per theta, with ``S = blockdiag(Lambda, I_p, 1)``:

    M = S' G S + blockdiag(I_q, 0, 0),    L L' = M   (one LAPACK dpotrf)

and ``ldL2 = 2 sum log diag L[:q]``, ``ldRX2 = 2 sum log diag L[q:q+p]``, ``pwrss = L[-1, -1]^2``;
the criterion is ``LmerDevfun.deviance_from`` of these, the same function of theta as the CHOLMOD
objective (``pls.LmerDevfun``) to rounding. It is not lme4's arithmetic, so ``lmer`` keeps the
CHOLMOD objective; ``refit`` optimises on this one when ``q + p + 1 <= MAX_DIM``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from .pls import LmerDevfun, SparseProduct

MAX_DIM = 300  # the largest q + p + 1 for which the dense objective is used


@dataclass
class DenseState:
    """What the criterion needs from a factorisation."""

    ldL2: float
    ldRX2: float
    pwrss: float


class DenseDevfun:
    """The profiled criterion of ``devfun`` by one dense Cholesky factor of the scaled Gram matrix."""

    def __init__(self, devfun: LmerDevfun):
        self.devfun = devfun
        self.lower = devfun.lower
        self.q, self.p = devfun.Ztw.shape[0], devfun.p
        m = self.q + self.p + 1
        self._ztw = SparseProduct.of_csc(devfun.Ztw)
        self._Q = np.linalg.qr(devfun.Xw)[0] if self.p else np.zeros((devfun.n, 0))
        self.G = np.zeros((m, m))
        q, p = self.q, self.p
        self.G[:q, :q] = (devfun.Ztw @ devfun.Ztw.T).toarray()
        self.G[:q, q : q + p] = devfun.ZtX
        self.G[q : q + p, :q] = devfun.ZtX.T
        self.G[q : q + p, q : q + p] = devfun.XtX
        self._set_response(devfun.yw)
        Lt = devfun.reTrms.Lambdat  # S[:q, :q] = Lambda = Lambdat'
        self._S = np.eye(m)
        self._S_flat = self._S.reshape(-1)
        self._S_index = np.repeat(np.arange(q), np.diff(Lt.indptr)) * m + Lt.indices
        self._S_flat[self._S_index] = 0.0
        self._Lind = devfun.reTrms.Lind
        self._I_index = np.arange(q) * (m + 1)

    def _set_response(self, yw: np.ndarray) -> None:
        """The last row and column of G for the weighted response ``yw``: O(n (q + p))."""
        r = yw - self._Q @ (self._Q.T @ yw)
        col = np.concatenate([self._ztw(r), self.devfun.Xw.T @ r, [r @ r]])
        self.G[-1, :] = col
        self.G[:, -1] = col

    def with_response(self, y: np.ndarray, devfun: LmerDevfun | None = None) -> "DenseDevfun":
        """The same objective for a new response (``devfun``: its CHOLMOD objective, if built)."""
        new = copy.copy(self)
        new.devfun = self.devfun.with_response(y) if devfun is None else devfun
        new.G = self.G.copy()
        new._S = self._S.copy()
        new._S_flat = new._S.reshape(-1)
        new._set_response(new.devfun.yw)
        return new

    def factor(self, theta: np.ndarray) -> tuple[np.ndarray, int]:
        """The lower Cholesky factor of M at theta (Fortran order) and LAPACK's info."""
        self._S_flat[self._S_index] = theta[self._Lind]
        S = self._S
        M = S.T @ self.G @ S
        M.reshape(-1)[self._I_index] += 1.0
        return lapack.dpotrf(M.T, lower=1, clean=0, overwrite_a=1)  # M.T: M in Fortran order

    def state(self, theta: np.ndarray) -> DenseState | None:
        """ldL2, ldRX2 and pwrss at theta; None when M is not positive definite to rounding."""
        L, info = self.factor(np.asarray(theta, dtype=float))
        if info:
            return None
        logd = np.log(L.diagonal())
        q = self.q
        return DenseState(2.0 * float(logd[:q].sum()), 2.0 * float(logd[q:-1].sum()), float(L[-1, -1]) ** 2)

    def __call__(self, theta: np.ndarray) -> float:
        """The criterion (REML or ML, as the CHOLMOD objective's); that objective's value where the
        dense factorisation breaks down (a response fitted exactly, X not of full rank)."""
        st = self.state(theta)
        if st is None:
            return self.devfun(theta)
        return self.devfun.deviance_from(st, self.devfun.REML)


def dense_devfun(devfun: LmerDevfun) -> DenseDevfun | None:
    """The dense objective of a small model (``q + p + 1 <= MAX_DIM``), else None."""
    return DenseDevfun(devfun) if devfun.Ztw.shape[0] + devfun.p + 1 <= MAX_DIM else None
