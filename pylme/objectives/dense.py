"""A dense objective for small models: what ``lmer`` and ``refit`` optimise when q + p + 1 is small.

With ``A = W^1/2 [Z  X  r]`` (``r`` the response less its offset, made orthogonal to X, which
leaves pwrss unchanged and keeps it from being a small difference of large numbers) the Gram
matrix ``G = A'A`` is built once; a new response recomputes only its last row and column. Per
theta, with ``S = blockdiag(Lambda, I_p, 1)``:

    M = S' G S + blockdiag(I_q, 0, 0),    L L' = M   (one LAPACK dpotrf)

and ``ldL2 = 2 sum log diag L[:q]``, ``ldRX2 = 2 sum log diag L[q:q+p]``, ``pwrss = L[-1, -1]^2``;
the criterion is the response's (pylme.objectives.response) of these. M is not formed by matrix products: its
entries are quadratic in theta, so a map precomputed from Lambda's pattern (``scaled_gram_map``)
sums ``theta_a theta_b G_ij`` into M's lower triangle in one ``np.bincount``. The criterion is the
CHOLMOD objective's (``pls.CholmodObjective``) to rounding (1e-12 relative over the corpus), at about a
quarter of its cost per evaluation; ``many`` evaluates checkConv's finite-difference points in one
batch. The fit at the optimum is the CHOLMOD objective's PLS solution (``pls_state``), residuals
computed explicitly, as lme4 reports it.
"""
from __future__ import annotations

import copy

import numpy as np
from scipy.linalg import lapack

from ..description.reterms import LambdaMap
from .design import LmmDesign, SparseProduct
from .objective import Objective, PLSState
from .pls import CholmodObjective
from .response import CriterionTerms, LmerResp

MAX_DIM = 300  # the largest q + p + 1 for which the dense objective is used
MAX_LAMBDA_NNZ = 2000  # and the most entries of Lambda (M's terms are built from pairs of them)


class DenseObjective(Objective):
    """The profiled criterion by one dense Cholesky factor of the scaled Gram matrix."""

    def __init__(self, design: LmmDesign, resp: LmerResp, start: np.ndarray | None = None,
                 cholmod: CholmodObjective | None = None):
        """``cholmod``: the CHOLMOD objective of the same design and response, if already built
        (it solves the PLS problem at the optimum and where M breaks down)."""
        self.design, self.resp = design, resp
        self._cholmod = CholmodObjective(design, resp, start) if cholmod is None else cholmod
        self._cholmod_of = self._cholmod  # the CHOLMOD objective for some response, to copy from
        self.start = self._cholmod.start if start is None else start
        self.nevals = 0
        self.q, self.p = design.q, design.p
        q, p = self.q, self.p
        self.m = m = q + p + 1
        self._ztw = SparseProduct.of_csc(design.Ztw)
        self._Q = np.linalg.qr(design.Xw)[0] if p else np.zeros((design.n, 0))
        self.G = np.zeros((m, m))
        self.G[:q, :q] = (design.Ztw @ design.Ztw.T).toarray()
        self.G[:q, q : q + p] = design.ZtX
        self.G[q : q + p, :q] = design.ZtX.T
        self.G[q : q + p, q : q + p] = design.XtX
        self._map = scaled_gram_map(design.lam, self.G, q)
        self._t = np.ones(design.lam.ntheta + 1)  # theta, then 1
        self._set_response(resp.yw)

    def _set_response(self, yw: np.ndarray) -> None:
        """The last row and column of G for the weighted response ``yw``: O(n (q + p))."""
        r = yw - self._Q @ (self._Q.T @ yw)
        col = np.concatenate([self._ztw(r), self.design.Xw.T @ r, [r @ r]])
        self.G[-1, :] = col
        self.G[:, -1] = col
        self._values = np.append(self.G.reshape(-1), 1.0)[self._map[3]]

    @property
    def cholmod(self) -> CholmodObjective:
        """The CHOLMOD objective of this design and response (made from another response's when
        first needed: for the fit at the optimum)."""
        if self._cholmod is None:
            self._cholmod = self._cholmod_of.with_response(self.resp)
        return self._cholmod

    def prepare(self) -> None:
        self.cholmod.prepare()

    def with_response(self, resp: LmerResp) -> DenseObjective:
        new = copy.copy(self)
        new.resp, new._cholmod, new._cholmod_of = resp, None, self.cholmod
        new.G, new._t = self.G.copy(), self._t.copy()
        new.nevals = 0
        new._set_response(resp.yw)
        return new

    def pls_state(self, theta: np.ndarray) -> PLSState:
        """The PLS solution at theta, from the CHOLMOD objective (what the fitted model reports)."""
        return self.cholmod.pls_state(theta)

    def cond_var_blocks(self, theta: np.ndarray, columns: list[np.ndarray]) -> np.ndarray:
        return self.cholmod.cond_var_blocks(theta, columns)

    def factor(self, theta: np.ndarray) -> tuple[np.ndarray, int]:
        """The lower Cholesky factor of M at theta and LAPACK's info. M's lower triangle (Fortran
        order) is a sum of products ``theta_a theta_b G_ij`` (theta_k = 1 for k = len(theta))."""
        flat, i1, i2, _ = self._map
        t = self._t
        t[:-1] = theta
        M = np.bincount(flat, weights=self._values * t[i1] * t[i2], minlength=self.m * self.m)
        return lapack.dpotrf(M.reshape(self.m, self.m).T, 1, 0, 1)  # lower, no cleaning, in place

    def many(self, thetas: np.ndarray) -> np.ndarray:
        """The criterion at each row of ``thetas``, the factorisations batched (checkConv's
        finite differences); one by one if one of them breaks down."""
        flat, i1, i2, _ = self._map
        k, mm = len(thetas), self.m * self.m
        t = np.ones((self._t.size, k))
        t[:-1] = thetas.T
        index = (flat[:, None] + np.arange(k) * mm).ravel()  # term-major: M of point j at j * mm
        M = np.bincount(index, weights=(self._values[:, None] * t[i1] * t[i2]).ravel(), minlength=k * mm)
        try:  # numpy's cholesky reads the lower triangle only
            L = np.linalg.cholesky(M.reshape(k, self.m, self.m).transpose(0, 2, 1))
        except np.linalg.LinAlgError:
            return np.array([self(theta) for theta in thetas])
        self.nevals += k
        d = np.diagonal(L, axis1=1, axis2=2)
        logd = np.log(d[:, :-1]).cumsum(axis=1)
        ldL2 = 2.0 * logd[:, self.q - 1]
        return self.deviance(CriterionTerms(ldL2, 2.0 * logd[:, -1] - ldL2, d[:, -1] ** 2))

    def criterion(self, theta: np.ndarray) -> float:
        """The criterion (REML or ML, as the CHOLMOD objective's); that objective's value where M is
        not positive definite to rounding (e.g. X not of full rank)."""
        self.nevals += 1
        L, info = self.factor(theta)
        if info:
            return self.cholmod(theta)
        d = L.diagonal()
        logd = np.log(d[:-1]).tolist()
        return self.deviance(CriterionTerms(2.0 * sum(logd[: self.q]), 2.0 * sum(logd[self.q :]), float(d[-1]) ** 2))


def scaled_gram_map(lam: LambdaMap, G: np.ndarray, q: int) -> tuple[np.ndarray, ...]:
    """The lower triangle of ``M = S' G S + blockdiag(I_q, 0)``, ``S = blockdiag(Lambda, I)``, as a
    sum of terms ``theta[i1] theta[i2] G.flat[gidx]`` into ``M`` (Fortran order) at ``flat``
    (theta extended by a 1; G.flat extended by a 1, at m * m, for the identity). Structural zeros
    of the Z'Z block are left out, so the terms follow the sparsity of Lambda' Z'Z Lambda."""
    Lambdat, Lind = lam.pattern, lam.Lind
    m = G.shape[0]
    nt = int(Lind.max()) + 1
    row, col = Lambdat.indices, np.repeat(np.arange(q), np.diff(Lambdat.indptr))  # Lambda[col, row]
    e, f = (a.ravel() for a in np.meshgrid(np.arange(row.size), np.arange(row.size), indexing="ij"))
    keep = (row[e] >= row[f]) & (G[col[e], col[f]] != 0.0)
    e, f = e[keep], f[keep]
    quad = (row[f] * m + row[e], Lind[e], Lind[f], col[e] * m + col[f])
    j = np.arange(q, m)
    ej, jj = np.repeat(np.arange(row.size), j.size), np.tile(j, row.size)
    lin = (row[ej] * m + jj, Lind[ej], np.full(ej.size, nt), col[ej] * m + jj)
    a, b = (x.ravel() for x in np.meshgrid(j, j, indexing="ij"))
    a, b = a[a >= b], b[a >= b]
    const = (b * m + a, np.full(a.size, nt), np.full(a.size, nt), a * m + b)
    eye = (np.arange(q) * (m + 1), np.full(q, nt), np.full(q, nt), np.full(q, m * m))
    return tuple(np.concatenate(parts) for parts in zip(quad, lin, const, eye))


def is_small(design: LmmDesign) -> bool:
    """Whether the dense objective suits the design: ``q + p + 1 <= MAX_DIM`` and Lambda with at
    most ``MAX_LAMBDA_NNZ`` entries."""
    return design.q + design.p + 1 <= MAX_DIM and design.lam.nnz <= MAX_LAMBDA_NNZ
