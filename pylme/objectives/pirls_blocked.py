"""PIRLS's weighted system by a two-block Cholesky factorisation (the blocked objective's idea,
pylme.objectives.blocked, for a matrix whose weights change at every PIRLS iteration).

For models whose first random-effects term (the one with the most levels, lme4's order) is scalar,
``A = Lambdat Zt W Z Lambda + I`` splits into block 1, that term's levels (diagonal: ``D``), and
block 2, all the other terms (order q2, small: a dense matrix)::

    A = [ D   C' ]     D  = I + Lambda1' Z1' W Z1 Lambda1          (a vector)
        [ C   A2 ]     C  = Lambda2' Z2' W Z1 Lambda1              (Z2' W Z1: fixed pattern, data linear in w)
                       A2 = I + Lambda2' Z2' W Z2 Lambda2
    L = [ D^1/2        0  ]      L22 L22' = S = A2 - C D^-1 C'     (LAPACK's dense Cholesky)
        [ C D^-1/2    L22 ]

so ``ldL2 = sum log D + 2 sum log diag L22`` and the solves are two triangular solves of order q2
around elementwise divisions. Every cross-product is a ``bincount`` over index maps built once
(the design's pattern does not change), so an iteration costs a few passes over the observations
and one Cholesky of order q2, where CHOLMOD forms ``A`` from ``Lambdat Zt W^1/2`` and factors it
(with its per-call set-up) each time. The factor is a different one from CHOLMOD's (no fill-reducing
permutation), so its deviance agrees with CHOLMOD's to rounding; lme4's ``L`` (``getME``), RZX in
CHOLMOD's order and the conditional variances come from CHOLMOD's factor, made at the weights of the
evaluation they are asked for (``factor``).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from ..description.reterms import ReTrms
from ..errors import ModelError
from .design import SparseProduct
from .pirls import WeightedPLS

#: block 2 of at most this order is factored dense (a larger one stays with CHOLMOD)
MAX_BLOCK2 = 4_000
#: ``"auto"`` picks the blocked factor from this many observations: below, CHOLMOD's was as fast or
#: faster (cbpp, Contraception, VerbAgg with 7,584 rows, grouseticks); the 1-million-row crossed
#: design needs the blocked one (docs/performance.md). Sizes in between were not measured.
AUTO_MIN_ROWS = 100_000
#: ``Z2' W Z1`` with at most this many entries (q2 x q1) is held dense; above, sparse
DENSE_CROSS = 2_000_000


def blocked_applies(reTrms: ReTrms) -> bool:
    """Whether the two-block factorisation fits: the first term scalar and the others of total
    order at most ``MAX_BLOCK2``."""
    terms = reTrms.terms
    q1 = terms[0].nl * terms[0].nc
    return terms[0].nc == 1 and reTrms.Zt.shape[0] - q1 <= MAX_BLOCK2


def weighted_pls(X: np.ndarray, reTrms: ReTrms, method: str = "auto") -> WeightedPLS:
    """PIRLS's weighted system: the two-block one with ``"blocked"``, or with ``"auto"`` where it
    applies to at least ``AUTO_MIN_ROWS`` observations; else CHOLMOD's (``"cholmod"``)."""
    if method not in ("auto", "blocked", "cholmod"):
        raise ModelError(f"PIRLS factorisation {method!r}: use 'auto', 'blocked' or 'cholmod'")
    if method == "cholmod" or (method == "auto" and (X.shape[0] < AUTO_MIN_ROWS or not blocked_applies(reTrms))):
        return WeightedPLS(X, reTrms)
    if not blocked_applies(reTrms):
        raise ModelError("the blocked PIRLS factorisation needs a scalar first random-effects term and "
                         f"at most {MAX_BLOCK2} random effects in the other terms")
    return BlockedWeightedPLS(X, reTrms)


class BlockedWeightedPLS(WeightedPLS):
    """``WeightedPLS`` with the two-block factor for PIRLS's iterations (see the module's docstring);
    CHOLMOD's factor only when asked for (``factor``: getME's L, condVar, RZX)."""

    def __init__(self, X: np.ndarray, reTrms: ReTrms):
        super().__init__(X, reTrms)
        Zt = reTrms.Zt.tocsc()
        self.q1 = reTrms.terms[0].nl
        q, n = Zt.shape
        self.q2 = q - self.q1
        obs = np.repeat(np.arange(n), np.diff(Zt.indptr))
        first = Zt.indices < self.q1
        r1, c1, v1 = Zt.indices[first], obs[first], Zt.data[first]
        r2, c2, v2 = Zt.indices[~first] - self.q1, obs[~first], Zt.data[~first]
        self.z1 = SparseProduct(r1, c1, v1, (self.q1, n))  # Z1' (block 1's rows of Zt)
        self.z1sq = SparseProduct(r1, c1, v1 * v1, (self.q1, n))
        self.z2 = SparseProduct(r2, c2, v2, (self.q2, n))
        level = np.full(n, -1)
        level[c1] = r1
        z1val = np.zeros(n)
        z1val[c1] = v1
        # Z2' W Z1: one entry per (row of block 2, level of block 1) met by an observation
        has = level[c2] >= 0
        key = r2[has].astype(np.int64) * self.q1 + level[c2[has]]
        uniq, inv = np.unique(key, return_inverse=True)
        self.cross = SparseProduct(inv, c2[has], v2[has] * z1val[c2[has]], (uniq.size, n))
        self.cross_rows, self.cross_cols = (uniq // self.q1).astype(np.int32), (uniq % self.q1).astype(np.int32)
        self.cross_dense = self.q2 * self.q1 <= DENSE_CROSS
        self.cross_pairs = None if self.cross_dense else _cross_pairs(self.cross_rows, self.cross_cols, self.q2)
        # Z2' W Z2 (dense q2 x q2, by flat index): pairs of block-2 entries of one observation
        self.a22 = _pairs_map(Zt, self.q1, self.q2)
        pat = reTrms.lam.pattern.tocoo()
        in2 = pat.row >= self.q1
        self.lam2_diagonal = bool(np.all(pat.row[in2] == pat.col[in2]))
        self.version_cholmod = -1  # the factorisation CHOLMOD's factor was made at
        self._blk: dict = {}

    def set_theta(self, theta: np.ndarray) -> None:
        super().set_theta(theta)
        Lt = self.reTrms.lam.Lambdat(self.theta).tocsr()
        self.lam1 = Lt.diagonal()[: self.q1].copy()
        L2t = Lt[self.q1:, self.q1:]
        self.lam2 = L2t.diagonal().copy() if self.lam2_diagonal else L2t  # a vector when Lambda2 is diagonal

    def _l2t(self, M: np.ndarray) -> np.ndarray:
        """Lambda2' M (M a vector or a matrix of q2 rows)."""
        if isinstance(self.lam2, np.ndarray):
            return self.lam2 * M if M.ndim == 1 else self.lam2[:, None] * M
        return np.asarray(self.lam2 @ M)

    def _l2(self, M: np.ndarray) -> np.ndarray:
        """Lambda2 M."""
        if isinstance(self.lam2, np.ndarray):
            return self.lam2 * M if M.ndim == 1 else self.lam2[:, None] * M
        return np.asarray(self.lam2.T @ M)

    def factorize(self, sqrtW: np.ndarray, with_x: bool = True) -> None:
        """The two-block factor at the weights ``sqrtW**2`` (and RZX, RX with ``with_x``)."""
        w = sqrtW * sqrtW
        lam1, q1, q2 = self.lam1, self.q1, self.q2
        D = 1.0 + lam1 * lam1 * self.z1sq(w)
        cross = self.cross.rows.size and self.cross(w)
        blk = {"D": D, "sqrtD": np.sqrt(D)}
        if q2:
            A22 = self.a22(w)
            if self.cross_dense:
                A21 = np.zeros((q2, q1))
                A21[self.cross_rows, self.cross_cols] = cross
                G = (A21 * (lam1 * lam1 / D)) @ A21.T
                blk["A21"] = A21
            else:
                G = self.cross_pairs(cross, lam1 * lam1 / D)
                blk["A21"] = sp.csr_matrix((cross, (self.cross_rows, self.cross_cols)), shape=(q2, q1))
            M = A22 - G
            S = self._l2t(self._l2t(M).T) if not isinstance(self.lam2, np.ndarray) else np.outer(self.lam2, self.lam2) * M
            S[np.diag_indices(q2)] += 1.0
            L22, info = lapack.dpotrf(S, lower=1, clean=1, overwrite_a=1)
            if info:
                raise ModelError(f"the weighted random-effects system is not positive definite (dpotrf info {info})")
            blk["L22"] = L22
        self._blk = blk
        self.sqrtW = sqrtW
        self.version += 1
        self._x = None
        self._bx = None
        if with_x:
            self._blocked_x()

    def _cmul(self, a1: np.ndarray) -> np.ndarray:
        """C a1 = Lambda2' Z2'WZ1 Lambda1 a1 (a1 a vector or a q1-row matrix)."""
        s = self.lam1 * a1 if a1.ndim == 1 else self.lam1[:, None] * a1
        return self._l2t(np.asarray(self._blk["A21"] @ s))

    def _ctmul(self, x2: np.ndarray) -> np.ndarray:
        """C' x2."""
        t = np.asarray(self._blk["A21"].T @ self._l2(x2))
        return self.lam1 * t if t.ndim == 1 else self.lam1[:, None] * t

    def _forward(self, a: np.ndarray) -> np.ndarray:
        """L^-1 a (a vector or a q-row matrix)."""
        blk, q1 = self._blk, self.q1
        a1, a2 = a[:q1], a[q1:]
        sd = blk["sqrtD"] if a.ndim == 1 else blk["sqrtD"][:, None]
        c1 = a1 / sd
        if not self.q2:
            return c1
        c2 = _trsv(blk["L22"], a2 - self._cmul(c1 / sd), trans=0)
        return np.concatenate([c1, c2])

    def _backward(self, c: np.ndarray) -> np.ndarray:
        """L'^-1 c."""
        blk, q1 = self._blk, self.q1
        sd = blk["sqrtD"] if c.ndim == 1 else blk["sqrtD"][:, None]
        c1 = c[:q1]
        if not self.q2:
            return c1 / sd
        x2 = _trsv(blk["L22"], c[q1:], trans=1)
        return np.concatenate([(c1 - self._ctmul(x2) / sd) / sd, x2])

    def _rhs(self, s: np.ndarray) -> np.ndarray:
        """Lambdat Zt s for an n-vector or an (n, p) matrix s."""
        r1 = self.z1(s)
        r1 = self.lam1 * r1 if s.ndim == 1 else self.lam1[:, None] * r1
        if not self.q2:
            return r1
        return np.concatenate([r1, self._l2t(self.z2(s))])

    def _blocked_x(self) -> tuple[np.ndarray, np.ndarray]:
        """RZX = L^-1 Lambdat Zt W X and RX (RX'RX = X'WX - RZX'RZX) in this factor's order."""
        if self._bx is None:
            V = self.X * self.sqrtW[:, None]
            RZX = self._forward(self._rhs(V * self.sqrtW[:, None])) if self.p else np.zeros((self.q1 + self.q2, 0))
            try:
                RX = np.linalg.cholesky(V.T @ V - RZX.T @ RZX).T if self.p else np.zeros((0, 0))
            except np.linalg.LinAlgError as exc:
                raise ModelError("Downdated VtV is not positive definite") from exc
            self._bx = (RZX, RX)
        return self._bx

    @property
    def factor(self):
        """CHOLMOD's factor at the last factorisation's theta and weights (made when asked for)."""
        F = super().factor
        if self.version_cholmod != self.version:
            self.LtZt.data = self._lt_values * self.sqrtW[self.entry_col]
            F.cholesky_AAt_inplace(self.LtZt, beta=1.0)
            self.version_cholmod = self.version
        return F

    def x_parts(self) -> tuple[np.ndarray, np.ndarray]:
        """RZX in CHOLMOD's order (lme4's, for getME) and RX, of the current weights."""
        if self._x is None:
            self.factor
            self._x = super().x_parts()
        return self._x

    @property
    def RX(self) -> np.ndarray:
        return self._blocked_x()[1]

    def solve(self, wz: np.ndarray, u_only: bool) -> tuple[np.ndarray, np.ndarray]:
        cu = self._forward(self._rhs(wz * self.sqrtW))
        if u_only or not self.p:
            beta = np.zeros(self.p)
        else:
            RZX, RX = self._blocked_x()
            rhs = (self.X * self.sqrtW[:, None]).T @ wz - RZX.T @ cu
            beta = np.linalg.solve(RX, np.linalg.solve(RX.T, rhs))
            cu = cu - RZX @ beta
        return self._backward(cu), beta

    @property
    def ldL2(self) -> float:
        blk = self._blk
        ld = float(np.sum(np.log(blk["D"])))
        if self.q2:
            ld += 2.0 * float(np.sum(np.log(np.diag(blk["L22"]))))
        return ld

    def diag_LLt(self) -> np.ndarray:
        if not self.q2:
            return self._blk["D"]
        self.LtZt.data = self._lt_values * self.sqrtW[self.entry_col]
        return super().diag_LLt()


def _trsv(L: np.ndarray, b: np.ndarray, trans: int) -> np.ndarray:
    """L^-1 b (trans 0) or L'^-1 b (trans 1) for a lower triangular L (LAPACK's dtrtrs)."""
    x, info = lapack.dtrtrs(L, b, lower=1, trans=trans)
    if info:
        raise ModelError(f"triangular solve failed (dtrtrs info {info})")
    return x


class _CrossPairs:
    """``A21 diag(v) A21'`` (dense q2 x q2) for a sparse A21 of fixed pattern: for each column of
    A21 (a level of block 1), every pair of its entries with row j <= row k, summed into the upper
    triangle by ``bincount`` and mirrored (no sparse-product set-up per call)."""

    def __init__(self, a: np.ndarray, b: np.ndarray, col: np.ndarray, target: np.ndarray, q2: int):
        self.a, self.b, self.col, self.target, self.q2 = a, b, col, target, q2

    def __call__(self, data: np.ndarray, v: np.ndarray) -> np.ndarray:
        q2 = self.q2
        U = np.bincount(self.target, weights=data[self.a] * data[self.b] * v[self.col], minlength=q2 * q2).reshape(q2, q2)
        G = U + U.T
        G[np.diag_indices(q2)] -= np.diag(U)
        return G


def _cross_pairs(rows: np.ndarray, cols: np.ndarray, q2: int) -> _CrossPairs:
    """The pairs of A21's entries within each column, for ``_CrossPairs``."""
    order = np.argsort(cols, kind="stable")
    c = cols[order]
    cnt = np.bincount(c)
    start = np.concatenate([[0], np.cumsum(cnt)])
    per = cnt[c]
    a = np.repeat(np.arange(c.size), per)
    b = start[c[a]] + (np.arange(a.size) - np.repeat(np.cumsum(per) - per, per))
    a, b = order[a], order[b]
    keep = rows[a] <= rows[b]
    a, b = a[keep].astype(np.int32), b[keep].astype(np.int32)
    return _CrossPairs(a, b, cols[a].astype(np.int32), rows[a].astype(np.int64) * q2 + rows[b], q2)


def _pairs_map(Zt: sp.csc_matrix, q1: int, q2: int) -> SparseProduct:
    """``w -> vec(Z2' W Z2)`` (row-major q2 x q2) as a sparse map: for each observation, every pair
    of its block-2 entries."""
    n = Zt.shape[1]
    obs = np.repeat(np.arange(n), np.diff(Zt.indptr))
    keep = Zt.indices >= q1
    rows, cols, vals = Zt.indices[keep] - q1, obs[keep], Zt.data[keep]
    cnt = np.bincount(cols, minlength=n)
    start = np.concatenate([[0], np.cumsum(cnt)])
    a = np.repeat(np.arange(rows.size), cnt[cols])  # each entry, once per entry of its observation
    within = np.arange(a.size) - np.repeat(np.cumsum(cnt[cols]) - cnt[cols], cnt[cols])
    b = start[cols[a]] + within
    key = rows[a].astype(np.int64) * q2 + rows[b]
    return _FlatMap(key, cols[a], vals[a] * vals[b], q2)


class _FlatMap(SparseProduct):
    """A SparseProduct onto the flat entries of a dense q2 x q2 matrix, returned as the matrix."""

    def __init__(self, key: np.ndarray, obs: np.ndarray, coef: np.ndarray, q2: int):
        super().__init__(key, obs, coef, (q2 * q2, int(obs.max(initial=0)) + 1))
        self.q2 = q2

    def __call__(self, w: np.ndarray, data: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(self.rows, weights=self.data * w[self.cols], minlength=self.q2 * self.q2).reshape(self.q2, self.q2)
