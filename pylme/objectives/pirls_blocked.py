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

from ..description.reterms import ReTrms
from ..errors import ModelError
from .design import SparseProduct
from .pirls import WeightedPLS
from .tiled import DENSE_TILE, dense_cholesky, lower_solve

#: block 2 of at most this order is factored dense (a larger one stays with CHOLMOD)
MAX_BLOCK2 = 4_000
#: ``"auto"`` picks the blocked factor for crossed designs where it applies and its dense Schur
#: complement's products (``q2^2 q1`` for block 2 of order q2 against q1 levels) cost at most this
#: much per observation: VerbAgg (24 items x 316 ids, 7,584 rows: 24) twice as fast per evaluation
#: as CHOLMOD's factor; grouseticks with (1 | BROOD) + (1 | LOCATION) (1,162) and with (1 | INDEX)
#: too (32,000) were faster with CHOLMOD's (docs/performance.md). A single term (block 2 empty)
#: keeps CHOLMOD's factor (a diagonal system, cheap either way), whose rounding follows lme4's
#: optimiser path evaluation for evaluation (tests/test_glmer_postfit.py's allFit) ...
AUTO_DENSE_PER_ROW = 100
#: ... or where it applies to at least this many observations (the 1-million-row crossed design,
#: 2,000 items, which CHOLMOD's factor cannot fit in time)
AUTO_MIN_ROWS = 100_000
#: ``Z2' W Z1`` with at most this many entries (q2 x q1) is held dense; above, sparse
DENSE_CROSS = 2_000_000
#: cells of the Schur term a band of its rows holds (2 MB of float64), see ``_cross_pairs``
PAIR_BAND_CELLS = 262_144


def blocked_applies(reTrms: ReTrms) -> bool:
    """Whether the two-block factorisation fits: the first term scalar and the others of total
    order at most ``MAX_BLOCK2``."""
    terms = reTrms.terms
    q1 = terms[0].nl * terms[0].nc
    return terms[0].nc == 1 and reTrms.Zt.shape[0] - q1 <= MAX_BLOCK2


def weighted_pls(X: np.ndarray, reTrms: ReTrms, method: str = "auto") -> WeightedPLS:
    """PIRLS's weighted system: the two-block one with ``"blocked"``, or with ``"auto"`` where it
    applies with a small dense part (``AUTO_DENSE_PER_ROW``) or to at least ``AUTO_MIN_ROWS``
    observations; else CHOLMOD's (``"cholmod"``)."""
    if method not in ("auto", "blocked", "cholmod"):
        raise ModelError(f"PIRLS factorisation {method!r}: use 'auto', 'blocked' or 'cholmod'")
    if method == "auto":
        n, q1 = X.shape[0], reTrms.terms[0].nl
        q2 = reTrms.Zt.shape[0] - q1 * reTrms.terms[0].nc
        small = 0 < q2 and q2 * q2 * q1 <= AUTO_DENSE_PER_ROW * n
        method = "blocked" if blocked_applies(reTrms) and (small or n >= AUTO_MIN_ROWS) else "cholmod"
    if method == "cholmod":
        return WeightedPLS(X, reTrms)
    if not blocked_applies(reTrms):
        raise ModelError("the blocked PIRLS factorisation needs a scalar first random-effects term and "
                         f"at most {MAX_BLOCK2} random effects in the other terms")
    return BlockedWeightedPLS(X, reTrms)


class BlockedWeightedPLS(WeightedPLS):
    """``WeightedPLS`` with the two-block factor for PIRLS's iterations (see the module's docstring);
    CHOLMOD's factor only when asked for (``factor``: getME's L, condVar, RZX)."""

    tile = DENSE_TILE  # block 2's Cholesky by tiles of this order above it (tiled.dense_cholesky)

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
        # Z2' W Z1: one entry per (row of block 2, level of block 1) met by an observation; held
        # dense (q2 x q1, summed straight into its flat entries) or sparse (the entries met)
        has = level[c2] >= 0
        key = r2[has].astype(np.int64) * self.q1 + level[c2[has]]
        coef = v2[has] * z1val[c2[has]]
        self.cross_dense = self.q2 * self.q1 <= DENSE_CROSS
        if self.cross_dense:
            self.cross = _FlatMap(key, c2[has], coef, (self.q2, self.q1), n)
        else:
            uniq, inv = np.unique(key, return_inverse=True)
            self.cross = SparseProduct(inv, c2[has], coef, (uniq.size, n))
            self.cross_rows, self.cross_cols = (uniq // self.q1).astype(np.int32), (uniq % self.q1).astype(np.int32)
            # the keys are sorted, so the entries are in CSR order already: row pointers made once
            self.cross_indptr = np.concatenate([[0], np.cumsum(np.bincount(self.cross_rows, minlength=self.q2))])
            self.cross_pairs = _cross_pairs(self.cross_rows, self.cross_cols, self.q2)
        # Z2' W Z2 (dense q2 x q2, by flat index): pairs of block-2 entries of one observation
        self.a22 = _pairs_map(Zt, self.q1, self.q2)
        # each observation one entry of value 1 in each block, block 2 one scalar term (VerbAgg's
        # id x item): Z1'WZ1 and the diagonal Z2'WZ2 are the column and row sums of a dense Z2'WZ1
        self.sums_from_cross = bool(self.q2 and self.cross_dense and all(
            m.per_col == 1 and m.unit for m in (self.z1sq, self.cross, self.a22)))
        pat = reTrms.lam.pattern
        prow, pcol = pat.indices, np.repeat(np.arange(pat.shape[1]), np.diff(pat.indptr))
        in2 = prow >= self.q1
        self.lam2_diagonal = bool(np.all(prow[in2] == pcol[in2]))
        # where Lambdat's diagonal sits among its stored values (lambda1 and a diagonal Lambda2)
        on_diag = np.flatnonzero(prow == pcol)
        self.diag_at = on_diag[np.argsort(prow[on_diag], kind="stable")]
        self.version_cholmod = -1  # the factorisation CHOLMOD's factor was made at
        self._blk: dict = {}

    def set_theta(self, theta: np.ndarray) -> None:
        super().set_theta(theta)
        diag = self._lam_values[self.diag_at]
        self.lam1 = diag[: self.q1]
        if self.lam2_diagonal:
            self.lam2 = diag[self.q1:]  # a vector when Lambda2 is diagonal
        else:
            self.lam2 = self.reTrms.lam.Lambdat(self.theta).tocsr()[self.q1:, self.q1:]

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
        q1, q2 = self.q1, self.q2
        lam1sq = self.lam1 * self.lam1
        if self.sums_from_cross:
            A21 = self.cross(w)
            D, A22 = 1.0 + lam1sq * A21.sum(axis=0), np.diag(A21.sum(axis=1))
        else:
            D = 1.0 + lam1sq * self.z1sq(w)
        blk = {"D": D, "sqrtD": np.sqrt(D)}
        if q2:
            if self.cross_dense:
                A21 = A21 if self.sums_from_cross else self.cross(w)
                blk["A21"] = A21
                S = self._schur(A22 if self.sums_from_cross else self.a22(w), (A21 * (lam1sq / D)) @ A21.T)
            else:
                cross = self.cross.rows.size and self.cross(w)
                blk["A21"] = sp.csr_matrix((cross, self.cross_cols, self.cross_indptr), shape=(q2, q1))
                if isinstance(self.lam2, np.ndarray):
                    S = self._schur_upper(self.cross_pairs.upper(cross, lam1sq / D), w).T
                else:
                    S = self._schur(self.a22(w), self.cross_pairs(cross, lam1sq / D))
            L22 = np.asfortranarray(S)  # S's lower triangle (a C-ordered S is copied, as LAPACK's wrapper would)
            info = dense_cholesky(L22, self.tile)  # by tiles above DENSE_TILE (OpenBLAS's buffer)
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

    def _schur(self, A22: np.ndarray, G: np.ndarray) -> np.ndarray:
        """S = I + Lambda2' (A22 - G) Lambda2, dense."""
        M = A22 - G
        S = self._l2t(self._l2t(M).T) if not isinstance(self.lam2, np.ndarray) else np.outer(self.lam2, self.lam2) * M
        S[np.diag_indices(self.q2)] += 1.0
        return S

    def _schur_upper(self, U: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``_schur`` for a diagonal Lambda2 in the upper triangle of U (G's upper triangle, the rest
        0), in place: no q2 x q2 temporaries (32 MB each for the 2,000 items of the 1M-row design).
        Its transpose, Fortran-ordered, holds S in its lower triangle for LAPACK."""
        lam2 = self.lam2
        if isinstance(self.a22, _DiagMap):
            U *= -1.0
            U.flat[:: self.q2 + 1] += SparseProduct.__call__(self.a22, w)
        else:
            np.subtract(self.a22(w), U, out=U)
        U *= lam2[:, None]
        U *= lam2
        U.flat[:: self.q2 + 1] += 1.0
        return U

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
        c2 = lower_solve(blk["L22"], a2 - self._cmul(c1 / sd), trans=0)
        return np.concatenate([c1, c2])

    def _backward(self, c: np.ndarray) -> np.ndarray:
        """L'^-1 c."""
        blk, q1 = self._blk, self.q1
        sd = blk["sqrtD"] if c.ndim == 1 else blk["sqrtD"][:, None]
        c1 = c[:q1]
        if not self.q2:
            return c1 / sd
        x2 = lower_solve(blk["L22"], c[q1:], trans=1)
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
            self.LtZt.data = self.lt_values * self.sqrtW[self.entry_col]
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
        cu, beta = self.beta_step(cu, wz, u_only, self._blocked_x)
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
        self.LtZt.data = self.lt_values * self.sqrtW[self.entry_col]
        return super().diag_LLt()


class _CrossPairs:
    """``A21 diag(v) A21'`` (dense q2 x q2) for a sparse A21 of fixed pattern: for each column of
    A21 (a level of block 1), every pair of its entries with row j <= row k, summed into the upper
    triangle by ``bincount`` and mirrored (no sparse-product set-up per call). A21's entries are
    scaled by sqrt(v) of their column and put in column order first (``order``); the pairs come
    grouped by bands of the result's rows (``_cross_pairs``)."""

    def __init__(self, order: np.ndarray, col: np.ndarray, a: np.ndarray, b: np.ndarray, target: np.ndarray, q2: int):
        self.order, self.col, self.a, self.b, self.target, self.q2 = order, col, a, b, target, q2

    def __call__(self, data: np.ndarray, v: np.ndarray) -> np.ndarray:
        U = self.upper(data, v)
        G = U + U.T
        G[np.diag_indices(self.q2)] -= np.diag(U)
        return G

    def upper(self, data: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The upper triangle of ``A21 diag(v) A21'`` (row <= column; the rest 0)."""
        q2 = self.q2
        d = data[self.order] * np.sqrt(v)[self.col]
        return np.bincount(self.target, weights=d[self.a] * d[self.b], minlength=q2 * q2).reshape(q2, q2)


def _cross_pairs(rows: np.ndarray, cols: np.ndarray, q2: int) -> _CrossPairs:
    """The pairs of A21's entries within each column, for ``_CrossPairs`` (indices into the
    entries in column order)."""
    order = np.argsort(cols, kind="stable")
    c, r = cols[order], rows[order]
    cnt = np.bincount(c)
    start = np.concatenate([[0], np.cumsum(cnt)])
    per = cnt[c]
    a = np.repeat(np.arange(c.size), per)
    b = start[c[a]] + (np.arange(a.size) - np.repeat(np.cumsum(per) - per, per))
    keep = r[a] <= r[b]
    a, b = a[keep].astype(np.int32), b[keep].astype(np.int32)
    # the pairs grouped by bands of PAIR_BAND_CELLS / q2 rows of the result: bincount then adds into
    # one band (2 MB) at a time, not all over q2^2 cells (1M-row design: 0.21 to 0.06-0.10 s of 10.5
    # million pairs into 2,000 x 2,000; the whole Schur term 0.38 to 0.29 s)
    band = np.argsort(r[a] // max(1, PAIR_BAND_CELLS // q2), kind="stable")
    a, b = a[band], b[band]
    return _CrossPairs(order.astype(np.int32), c.astype(np.int32), a, b, r[a].astype(np.int64) * q2 + r[b], q2)


def _pairs_map(Zt: sp.csc_matrix, q1: int, q2: int) -> SparseProduct:
    """``w -> vec(Z2' W Z2)`` (row-major q2 x q2) as a sparse map: for each observation, every pair
    of its block-2 entries."""
    n = Zt.shape[1]
    obs = np.repeat(np.arange(n), np.diff(Zt.indptr))
    keep = Zt.indices >= q1
    rows, cols, vals = Zt.indices[keep] - q1, obs[keep], Zt.data[keep]
    cnt = np.bincount(cols, minlength=n)
    if cnt.max(initial=0) <= 1:  # one block-2 entry an observation at most: Z2'WZ2 is diagonal
        return _DiagMap(rows, cols, vals * vals, q2, n)
    start = np.concatenate([[0], np.cumsum(cnt)])
    a = np.repeat(np.arange(rows.size), cnt[cols])  # each entry, once per entry of its observation
    within = np.arange(a.size) - np.repeat(np.cumsum(cnt[cols]) - cnt[cols], cnt[cols])
    b = start[cols[a]] + within
    key = rows[a].astype(np.int64) * q2 + rows[b]
    return _FlatMap(key, cols[a], vals[a] * vals[b], (q2, q2), n)


class _FlatMap(SparseProduct):
    """A SparseProduct of n observations' weights onto the flat entries of a dense matrix of
    ``dims`` (row-major), returned as the matrix."""

    def __init__(self, key: np.ndarray, obs: np.ndarray, coef: np.ndarray, dims: tuple[int, int], n: int):
        super().__init__(key, obs, coef, (dims[0] * dims[1], n))
        self.dims = dims

    def __call__(self, w: np.ndarray, data: np.ndarray | None = None) -> np.ndarray:
        return super().__call__(w, data).reshape(self.dims)


class _DiagMap(SparseProduct):
    """A SparseProduct of n observations' weights onto the diagonal of a q2 x q2 matrix, returned
    as the (dense) matrix: no q2^2 sums where every pair of entries is one entry with itself."""

    def __init__(self, rows: np.ndarray, obs: np.ndarray, coef: np.ndarray, q2: int, n: int):
        super().__init__(rows, obs, coef, (q2, n))

    def __call__(self, w: np.ndarray, data: np.ndarray | None = None) -> np.ndarray:
        return np.diag(super().__call__(w, data))
