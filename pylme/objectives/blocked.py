"""The profiled criterion by a blocked Cholesky factorisation (MixedModels.jl's approach, with
sparse or tiled fill blocks where MixedModels.jl only has dense ones).

The random effects are split into block 1, the term with the most random effects, and block 2,
all the other terms (in lme4's order); block 3 is ``[X y]``. The Gram blocks ``A_ij`` of the
weighted ``[Z1 | Z2 | X y]`` are built once. Per theta:

    L11_l = chol(Lambda1' A11_l Lambda1 + I)            block 1: per level, batched (diagonal
    V_l   = Lambda1 (Lambda1' A11_l Lambda1 + I)^-1 Lambda1'     when the term is scalar)
    S22   = Lambda2' (A22 - A21 V A12) Lambda2 + I      fixed pattern; ``A21 V A12`` by a
    L22   = chol(S22)                                   precomputed sparse map of V (``.data``)
    S32   = (A32 - A31 V A12) Lambda2                   block 2: dense (LAPACK), sparse (CHOLMOD
    L32   = S32 L22^-T                                  supernodal, analysed once) or tiled
    L33   = chol(A33 - A31 V A13 - L32 L32')            (pylme.objectives.tiled), whichever is predicted fastest

with ``ldL2 = 2 sum log diag L11 + log det S22``, ``ldRX2`` from the X rows of ``L33`` and
``pwrss = L33[-1, -1]^2``: the last diagonal element. The criterion is the same function of theta
as the CHOLMOD path (``pls.CholmodObjective``), which stays the general path and the cross-check. At the
optimum ``solve`` reads beta and u off the same factor by back-substitution and recomputes the
fit from explicit residuals, as lme4 does (the CHOLMOD path's factor of a model this large may
not fit in memory).

With a dense (or no) block 2 the criterion's gradient comes from the same factor
(``criterion_and_gradient``; the formulas are pylme.objectives.gradient's), for ``lmerControl(optimizer="L-BFGS-B")``.

Where the cross map would not fit in memory (a crossed design with many pairs of block-2 effects
met within one level: users x items), block 2 is instead formed densely from ``A21`` at every
evaluation (pylme.objectives.rankupdate, MixedModels.jl's way) for a scalar block 1 and scalar
block-2 terms.

Before any of this is allocated, the memory each block needs is estimated (dense sizes, CHOLMOD's
predicted size of a sparse factor, the tiles a tiled factor stores); a model that cannot fit fails
with a ModelError naming the block.
"""
from __future__ import annotations

import copy
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas, lapack
from sksparse.cholmod import CholmodNotPositiveDefiniteError, analyze

from ..description.reterms import LambdaMap
from ..errors import ModelError
from . import gradient
from .design import LmmDesign
from .memory import BlockPlan, available_bytes, format_bytes, predicted_factor
from .objective import Objective, PLSState
from .pls import CholmodObjective
from .response import CriterionTerms, LmerResp
from .tiled import DenseFill, TiledFill, plan_tiles

#: below this many observations the CHOLMOD path is faster (less Python overhead per evaluation)
MIN_ROWS = 10_000
#: a fill block of at most this order is always dense
DENSE_ALWAYS = 2_000
#: a larger one is factored the way predicted to be fastest (among those that fit in memory), from
#: these rates (flops per second, measured on this 2-core machine): LAPACK's dense dpotrf on scipy's
#: OpenBLAS (the grades design's order-8017 block: 172 GFlop in 1.6 s), CHOLMOD supernodal on the
#: system's reference BLAS (InstEval's d block: 118 MFlop in 28 ms), and pylme.objectives.tiled's own model
DENSE_RATE = 100e9
CHOLMOD_RATE = 4e9
#: a cross map with at least this many entries is computed in two halves on two threads
THREADED_MAP = 200_000
#: keys below this bound are made unique by a table rather than by sorting (unique_keys)
UNIQUE_TABLE_MAX = 1 << 24
#: the share of the available memory a fit may plan to use
MEMORY_SHARE = 0.8


class FirstBlock:
    """Block 1: one term, block diagonal with one nc x nc block per level (diagonal if nc = 1)."""

    def __init__(self, A11: np.ndarray, lam: LambdaMap, k: int):
        self.A11, self.lam, self.k = A11, lam, k  # A11: (nl, nc, nc); the term is lam's term k
        self.nl, self.nc = A11.shape[0], A11.shape[1]
        self.kind = "diagonal" if self.nc == 1 else "block-diagonal"
        # levels with equal Gram blocks (and so equal V_l): each level's group, each group's first level
        _, self.rep, self.group = np.unique(A11.reshape(self.nl, -1), axis=0, return_index=True, return_inverse=True)
        self.group = self.group.reshape(-1)

    def factor(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """2 sum log diag L11, and V_l = Lambda1 (Lambda1' A11_l Lambda1 + I)^-1 Lambda1' as (nl, nc, nc)."""
        if self.nc == 1:
            lam2 = self.lam.block(theta, self.k)[0, 0] ** 2
            d = lam2 * self.A11[:, 0, 0] + 1.0
            return float(np.sum(np.log(d))), (lam2 / d)[:, None, None]
        Lam, L = self._cholesky(theta)
        W = np.linalg.solve(L, np.broadcast_to(Lam.T, L.shape))  # L^-1 Lambda1', so V = W'W
        return 2.0 * float(np.sum(np.log(np.diagonal(L, axis1=1, axis2=2)))), np.einsum("lki,lkj->lij", W, W)

    def level_values(self, V: np.ndarray) -> np.ndarray:
        """A scalar block's V_l per level (``factor``'s V is per level already)."""
        return V[:, 0, 0]

    def solve(self, theta: np.ndarray, r: np.ndarray, A1X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """u1 = M^-1 Lambda1' r per level (M = Lambda1' A11 Lambda1 + I) and RZX1 = L11^-1 Lambda1' A1X."""
        Lam, L = self._cholesky(theta)
        c = np.einsum("ji,lj->li", Lam, r.reshape(self.nl, self.nc))[..., None]  # Lambda1' r per level
        u = np.linalg.solve(np.swapaxes(L, 1, 2), np.linalg.solve(L, c))[..., 0]
        A = np.einsum("ji,mlj->lim", Lam, A1X.reshape(A1X.shape[0], self.nl, self.nc))  # (nl, nc, p)
        RZX = np.linalg.solve(L, A) if A1X.shape[0] else A
        return u.ravel(), RZX.reshape(self.nl * self.nc, A1X.shape[0])

    def inverses(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lambda1 and the inverses M_l^-1 of the level blocks M_l = Lambda1' A11_l Lambda1 + I, (nl, nc, nc)."""
        Lam, L = self._cholesky(theta)
        return Lam, np.linalg.inv(L @ np.swapaxes(L, 1, 2))

    def _cholesky(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lambda1 and the batched factors L11_l of Lambda1' A11_l Lambda1 + I."""
        nc = self.nc
        Lam = self.lam.block(theta, self.k)
        M = np.einsum("ji,ljk,km->lim", Lam, self.A11, Lam)
        M[:, np.arange(nc), np.arange(nc)] += 1.0
        return Lam, np.linalg.cholesky(M)


class CrossMap:
    """``A21 V A12`` on a fixed lower-triangular pattern as a sparse linear map of V's entries.

    Each level's columns of A21 (a super column) contribute the products of its entries' pairs;
    the map is built once (in chunks of levels), and per theta the update is one sparse
    matrix-vector product. Levels whose Gram blocks A11_l are equal have equal V_l at every theta
    (``group``: one group per distinct block), so their pairs are summed into one column of the
    map when it is built: InstEval's 2,972 students fall into 86 groups (their rating counts).
    """

    def __init__(self, A21: sp.csc_matrix, nc: int, group: np.ndarray, extra_keys: np.ndarray,
                 chunk: int = 4_000_000):
        q1 = A21.shape[1]
        ngroups = int(group.max()) + 1 if group.size else 0
        ptr = np.asarray(A21.indptr[::nc], dtype=np.int64)
        acol = np.repeat(np.arange(q1) % nc, np.diff(A21.indptr))  # the column within its level
        npairs = np.diff(ptr) * (np.diff(ptr) + 1) // 2
        bounds = np.searchsorted(np.cumsum(npairs), np.arange(chunk, npairs.sum() + chunk, chunk), side="right")
        parts = [_level_pairs(A21, acol, nc, group, ptr, npairs, a, b)
                 for a, b in zip(np.r_[0, bounds[:-1]], bounds) if b > a]
        keys = np.concatenate([k for k, _, _ in parts] + [np.zeros(0, np.int64)])
        colv = np.concatenate([c for _, c, _ in parts] + [np.zeros(0, np.int64)])
        vals = np.concatenate([v for _, _, v in parts] + [np.zeros(0)])
        del parts
        q2 = A21.shape[0]
        self.keys, inverse = unique_keys(np.concatenate([keys, extra_keys]), q2 * q2)
        self.map = sp.csr_matrix((vals, (inverse[: keys.size], colv)), shape=(self.keys.size, ngroups * nc * nc))

    @classmethod
    def of_groups(cls, sums: list[sp.coo_matrix], extra_keys: np.ndarray, q2: int) -> "CrossMap":
        """The map of a scalar block 1 from sums already made per group: ``sums[g]`` the lower
        triangle of ``sum_{l in g} A21_l A12_l`` (pylme.scaleout.distributed reduces them over partitions)."""
        new = cls.__new__(cls)
        keys = [b.col.astype(np.int64) * q2 + b.row for b in sums]
        new.keys, inverse = unique_keys(np.concatenate(keys + [extra_keys]), q2 * q2)
        cols = np.repeat(np.arange(len(sums)), [k.size for k in keys])
        vals = np.concatenate([b.data for b in sums] + [np.zeros(0)])
        new.map = sp.csr_matrix((vals, (inverse[: cols.size], cols)), shape=(new.keys.size, len(sums)))
        return new

    @property
    def map(self) -> sp.csr_matrix:
        """The whole map (its halves stacked again where it is kept in two)."""
        return self._parts[0] if len(self._parts) == 1 else sp.vstack(self._parts, format="csr")

    @map.setter
    def map(self, m: sp.csr_matrix) -> None:
        """Kept whole or, when large enough to share between two threads, as two halves of about
        equal entries (each entry stored once)."""
        if m.nnz < THREADED_MAP:
            self._parts = (m,)
        else:
            split = int(np.searchsorted(m.indptr, m.nnz // 2))
            self._parts = (m[:split], m[split:])

    def adjoint(self, w: np.ndarray) -> np.ndarray:
        """The transposed map applied to ``w`` (one value per pattern entry), half by half."""
        if len(self._parts) == 1:
            return self._parts[0].T @ w
        split = self._parts[0].shape[0]
        return self._parts[0].T @ w[:split] + self._parts[1].T @ w[split:]

    def __call__(self, V: np.ndarray) -> np.ndarray:
        """``A21 V A12`` on the pattern for V of each group (ngroups, nc, nc); a large map's halves on
        two threads (scipy's sparse products release the GIL), the same sums as one product."""
        v = V.ravel()
        if len(self._parts) == 1:
            return self._parts[0] @ v
        first = _second_thread().submit(self._parts[0].__matmul__, v)
        second = self._parts[1] @ v
        return np.concatenate([first.result(), second])


_POOL: ThreadPoolExecutor | None = None


def _second_thread() -> ThreadPoolExecutor:
    """One worker thread for the cross maps (made when first needed)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(1)
    return _POOL


def _stop_second_thread() -> None:
    """Before a fork: stop the worker, so that the process forks with one thread (a child makes its own)."""
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(wait=True)
        _POOL = None


os.register_at_fork(before=_stop_second_thread)


def _level_pairs(A21: sp.csc_matrix, acol: np.ndarray, nc: int, group: np.ndarray, ptr: np.ndarray,
                 npairs: np.ndarray, a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys (column-major lower triangle), V indices (of the level's group) and values of the entry
    pairs of levels a..b-1."""
    q2 = A21.shape[0]
    level = np.repeat(np.arange(a, b), npairs[a:b])
    k = np.arange(level.size, dtype=np.int64) - np.repeat(np.cumsum(npairs[a:b]) - npairs[a:b], npairs[a:b])
    s = ((np.sqrt(8.0 * k + 1.0) - 1.0) // 2).astype(np.int64)
    s += (s + 1) * (s + 2) // 2 <= k  # guard the floating-point square root
    s -= s * (s + 1) // 2 > k
    es = ptr[level] + s
    et = ptr[level] + k - s * (s + 1) // 2
    ri, rj = A21.indices[es].astype(np.int64), A21.indices[et].astype(np.int64)
    vals = A21.data[es] * A21.data[et]
    if nc > 1:
        vals = np.where((es != et) & (ri == rj), 2.0 * vals, vals)  # both (a, b) and (b, a) on the diagonal
    colv = group[level] * nc * nc + acol[es] * nc + acol[et]
    return np.minimum(ri, rj) * q2 + np.maximum(ri, rj), colv, vals


def unique_keys(keys: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True)`` for keys in [0, bound): by a table of the keys
    present, without sorting, when the table is small (a dense fill block's), else by sorting."""
    if bound > UNIQUE_TABLE_MAX:
        return np.unique(keys, return_inverse=True)
    present = np.zeros(bound, dtype=bool)
    present[keys] = True
    rank = np.cumsum(present, dtype=np.int32) - 1
    return np.flatnonzero(present), rank[keys].astype(np.int64)


def pair_count(A21: sp.csc_matrix, nc: int) -> int:
    """Entries the CrossMap of A21 will hold (before it is built)."""
    ptr = np.asarray(A21.indptr[:: nc] if nc > 1 else A21.indptr, dtype=np.int64)
    lens = np.diff(ptr[: A21.shape[1] // nc + 1])
    return int(np.sum(lens * (lens + 1) // 2))


class SparseFill:
    """Block 2 factored by CHOLMOD on its fixed pattern: analysed once, refactored in place."""

    kind = "sparse"

    def __init__(self, pattern: sp.csc_matrix):
        self.S = pattern
        self.factor_ = analyze(pattern, mode="supernodal")

    def factor(self, vals: np.ndarray) -> float | None:
        self.S.data = vals
        try:
            self.factor_.cholesky_inplace(self.S)
        except CholmodNotPositiveDefiniteError:
            return None
        return float(self.factor_.logdet())

    def clone(self) -> "SparseFill":
        """The same analysis with a matrix and factor of its own (another objective's)."""
        new = copy.copy(self)
        new.S, new.factor_ = self.S.copy(), self.factor_.copy()
        return new

    def solve_L(self, B: np.ndarray) -> np.ndarray:
        f = self.factor_
        return f.solve_L(f.apply_P(B), use_LDLt_decomposition=False)

    def solve_Lt(self, c: np.ndarray) -> np.ndarray:
        """P' L22^-T c."""
        f = self.factor_
        return f.apply_Pt(f.solve_Lt(c, use_LDLt_decomposition=False))


class BlockedObjective(Objective):
    """Theta -> REML criterion or ML deviance, as the CHOLMOD objective but by blocks."""

    def __init__(self, design: LmmDesign, resp: LmerResp, start: np.ndarray | None = None, fill: str = "auto",
                 memory_limit: float | None = None, blocks: GramBlocks | None = None):
        """``fill``: 'auto', 'dense', 'sparse' (CHOLMOD) or 'tiled' (pylme.objectives.tiled) for block 2,
        or 'direct': block 2 dense and formed from A21 each evaluation, without the cross map
        (pylme.objectives.rankupdate; 'auto' chooses it where the cross map does not fit in memory);
        ``memory_limit``: bytes the blocks may use (default: a share of the memory available now);
        ``blocks``: the Gram blocks when they were computed elsewhere (pylme.scaleout.distributed reduces
        them over the partitions of a data set), else they are computed from the design."""
        t1 = self._setup_terms(design, resp, start)
        if blocks is None:
            blocks = gram_blocks(design, resp, self.idx1, self.idx2, t1.nc)
        self.block1 = FirstBlock(blocks.A11, design.lam, self.k1)
        self.A31, self.A32, self.A33, self.A21 = blocks.A31, blocks.A32, blocks.A33, blocks.A21.tocsc()
        self.A21r = self.A21.tocsr()
        self.plan = first_plans(self.terms1, self.idx1.size, t1.nl, t1.nc, self.m3, self.q2)
        limit = memory_limit_of(memory_limit)
        _check_memory(self.plan, limit)
        if self.q2:
            self._setup_fill(blocks.A22, t1.nc, fill, limit)

    def _setup_terms(self, design: LmmDesign, resp: LmerResp, start: np.ndarray | None):
        """The design, response and start; block 1's term and the blocks' positions in b; block
        2's theta -> Lambda2. Returns block 1's term."""
        self.design, self.resp = design, resp
        rt = design.reTrms
        self.start = rt.theta0.copy() if start is None else start
        self._cholmod: CholmodObjective | None = None
        self.k1, self.idx1, self.idx2 = block_split(rt)
        t1 = rt.terms[self.k1]
        self.terms1, self.terms2 = [t1.label], [t.label for k, t in enumerate(rt.terms) if k != self.k1]
        self.q2, self.p = self.idx2.size, design.p
        self.m3 = self.p + 1
        self.lam2 = rt.lam.sub([k for k in range(len(rt.terms)) if k != self.k1])  # block 2's theta -> Lambda2
        self.diag2 = self.lam2.nnz == self.q2 and bool(np.all(self.lam2.pattern.indices == np.arange(self.q2)))
        self.nevals = 0
        return t1

    def with_response(self, resp: LmerResp) -> "BlockedObjective":
        """The same blocks for a new response: only the response's row of the ``[X y]``
        cross-products is recomputed; block 1, the cross map and block 2's pattern, order and
        factor structure are reused (refit, the bootstrap), block 2's workspace is its own."""
        new = copy.copy(self)
        new.resp, new._cholmod = resp, None
        Zty, Xty = self.design.cross(resp.yw)
        new.A31, new.A32, new.A33 = self.A31.copy(), self.A32.copy(), self.A33.copy()
        new.A31[-1], new.A32[-1] = Zty[self.idx1], Zty[self.idx2]
        new.A33[-1, :-1] = new.A33[:-1, -1] = Xty
        new.A33[-1, -1] = float(resp.yw @ resp.yw)
        if self.q2:
            new.fill = self.fill.clone()  # its own workspace: the fit's objective stays usable
        new.nevals = 0
        return new

    def _setup_fill(self, A22: sp.coo_matrix, nc1: int, fill: str, limit: tuple[float, str],
                    group_sums: list[sp.coo_matrix] | None = None) -> None:
        """Block 2: the sparse map A21 V A12 on the pattern of A22's lower triangle (``A22``), and
        the way to factor it (dense, sparse or tiled; see _fill_options); ``group_sums``: the
        map's columns when made elsewhere (``CrossMap.of_groups``). With ``fill='direct'``, or
        'auto' where the map does not fit in memory and block 2 formed from A21 does, no map
        (``_setup_direct``)."""
        q2 = self.q2
        keys22 = A22.col.astype(np.int64) * q2 + A22.row
        diag = np.arange(q2, dtype=np.int64) * (q2 + 1)
        if group_sums is None:
            npairs = pair_count(self.A21, nc1)
            # building the map holds keys, indices and values of every pair, then sorts the keys
            cross = BlockPlan("cross map A21 V A12", self.terms1 + self.terms2, "sparse map", q2, 64.0 * npairs)
            if fill == "direct" or (fill == "auto" and not fits(self.plan + [cross], limit)
                                    and self.direct_possible(nc1)
                                    and fits(self.plan + self.direct_plans(self.A21), limit)):
                self._setup_direct(A22, self.A21, nc1, limit)
                return
            self.plan.append(cross)
            _check_memory(self.plan, limit)
            cross.bytes = 12.0 * npairs  # what the map keeps
            self.cross = CrossMap(self.A21, nc1, self.block1.group, np.concatenate([keys22, diag]))
        else:
            nnz = sum(b.nnz for b in group_sums)
            self.plan.append(BlockPlan("cross map A21 V A12", self.terms1 + self.terms2, "sparse map", q2, 40.0 * nnz))
            _check_memory(self.plan, limit)
            self.cross = CrossMap.of_groups(group_sums, np.concatenate([keys22, diag]), q2)
        if not self.diag2:
            self._close_pattern()
        keys = self.cross.keys
        self.rows, self.cols = (keys % q2).astype(np.int32), (keys // q2).astype(np.int32)
        self.A22 = np.zeros(keys.size)
        self.A22[np.searchsorted(keys, keys22)] = A22.data
        self.diag_pos = np.searchsorted(keys, diag)
        if self.diag2:  # H_ij scales by theta_a theta_b: the index of (a, b) in theta's outer product
            Lind2 = self.lam2.Lind
            self.scale_pair = Lind2[self.rows] * self.design.lam.ntheta + Lind2[self.cols]
        else:
            self._setup_scaling()
        kind = "dense" if fill == "auto" and q2 <= DENSE_ALWAYS else fill
        options = self._fill_options(kind, limit[0] - sum(p.bytes for p in self.plan))
        if kind == "auto":
            kind = options[0][0]
        _, _, nbytes, made = next(o for o in options if o[0] == kind)
        self.plan.append(BlockPlan("block 2", self.terms2, kind, q2, nbytes))
        _check_memory(self.plan, limit)
        self.fill = made()

    def direct_possible(self, nc1: int) -> bool:
        """Whether block 2 can be formed from A21 each evaluation (pylme.objectives.rankupdate): block 1
        scalar, block 2's Lambda diagonal."""
        return nc1 == 1 and self.diag2

    def direct_plans(self, A21: sp.spmatrix) -> list[BlockPlan]:
        """The memory of block 2 formed from A21 each evaluation: A21 and the dense block."""
        from .rankupdate import direct_plans

        return direct_plans(self.terms1, self.terms2, self.q2, float(A21.nnz))

    def _setup_direct(self, A22: sp.coo_matrix, A21: sp.spmatrix, nc1: int, limit: tuple[float, str]) -> None:
        """Block 2 without a cross map: formed densely from A21 each evaluation and factored by
        LAPACK (pylme.objectives.rankupdate); for a scalar block 1 and a diagonal Lambda2."""
        from .rankupdate import RankUpdateFill

        if not self.direct_possible(nc1):
            raise ModelError(f"block 2 is formed from A21 (fill='direct') only where block 1 is a scalar term and "
                             f"block 2's terms are all scalar; here block 1 is {', '.join(self.terms1)} and block 2 "
                             f"{', '.join(self.terms2)}")
        self.plan += self.direct_plans(A21)
        _check_memory(self.plan, limit)
        self.cross = None
        self.fill = RankUpdateFill(A22, A21, self.q2)

    def _fill_options(self, kind: str, room: float) -> list[tuple[str, float, float, object]]:
        """The ways to factor block 2 (``kind``, or all three for 'auto'), fastest first among those
        within ``room`` bytes: (kind, predicted seconds per factorisation, bytes, constructor)."""
        q2 = self.q2
        dense_flops = q2 * (q2 + 1.0) * (2.0 * q2 + 1.0) / 6.0  # sum of squared column counts
        options = []
        if kind in ("auto", "dense"):
            options.append(("dense", dense_flops / DENSE_RATE, 8.0 * q2 * q2 + 8.0 * self.rows.size,
                            lambda: DenseFill(self.rows, self.cols, q2)))
        if kind in ("auto", "sparse", "tiled"):
            pattern = self._pattern()
        if kind in ("auto", "sparse"):
            size = predicted_factor(pattern)
            entries, flops = (size.entries, size.flops) if size else (q2 * (q2 + 1) / 2, dense_flops)
            options.append(("sparse", flops / CHOLMOD_RATE, 12.0 * entries + 12.0 * pattern.nnz,  # factor, matrix
                            lambda: SparseFill(pattern)))
        # the tiles hold at least the factor's entries (8 bytes each): where even those do not fit,
        # the tiles are not planned (planning a nearly dense factor's tiles takes long)
        if kind == "tiled" or (kind == "auto" and 8.0 * entries <= room):
            tiles = plan_tiles(pattern)
            options.append(("tiled", tiles.seconds, tiles.bytes + 4.0 * pattern.nnz,  # tiles, scatter index
                            lambda: TiledFill(pattern, tiles)))
        if not options:
            raise ValueError(f"fill must be 'auto', 'dense', 'sparse', 'tiled' or 'direct', not {kind!r}")
        return sorted(options, key=lambda o: (o[2] > room, o[1] if o[2] <= room else o[2]))

    def _close_pattern(self) -> None:
        """Close the pattern under the blocks of Lambda2 (an entry (i, j) brings in every pair of
        the blocks of i and j), so that Lambda2' H Lambda2 stays on it; remap the cross map."""
        from scipy.sparse.csgraph import connected_components  # imported on first use: a diagonal Lambda2 needs none

        q2 = self.q2
        Lt2 = self.lam2.pattern
        _, block = connected_components(Lt2 + Lt2.T, directed=False)
        order = np.argsort(block, kind="stable")
        start = np.searchsorted(block[order], np.arange(block.max() + 2))
        size = np.diff(start)
        keys = self.cross.keys
        i, j = keys % q2, keys // q2
        bi, bj = block[i], block[j]
        n = size[bi] * size[bj]
        e = np.repeat(np.arange(keys.size), n)
        w = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        a = order[start[bi[e]] + w // size[bj[e]]]
        b = order[start[bj[e]] + w % size[bj[e]]]
        closed, _ = unique_keys(np.concatenate([keys, np.minimum(a, b) * q2 + np.maximum(a, b)]), q2 * q2)
        m = self.cross.map.tocoo()
        pos = np.searchsorted(closed, keys)
        self.cross.map = sp.csr_matrix((m.data, (pos[m.row], m.col)), shape=(closed.size, m.shape[1]))
        self.cross.keys = closed

    def _setup_scaling(self) -> None:
        """The triples of S_ij = sum_ab Lt2[i, a] H[a, b] Lt2[j, b] on the closed pattern."""
        q2, keys = self.q2, self.cross.keys
        marker = self.lam2.pattern.copy()
        marker.data = np.arange(marker.nnz, dtype=float)
        R = marker.tocsr()
        R.sort_indices()
        rc = np.diff(R.indptr)
        i, j = self.rows.astype(np.int64), self.cols.astype(np.int64)
        n = rc[i] * rc[j]
        t = np.repeat(np.arange(keys.size), n)
        w = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        p1 = R.indptr[i[t]] + w // rc[j[t]]
        p2 = R.indptr[j[t]] + w % rc[j[t]]
        a, b = R.indices[p1].astype(np.int64), R.indices[p2].astype(np.int64)
        self.scale_target = t
        self.scale_src = np.searchsorted(keys, np.minimum(a, b) * q2 + np.maximum(a, b))
        self.scale_e1, self.scale_e2 = R.data[p1].astype(np.int64), R.data[p2].astype(np.int64)

    def _pattern(self) -> sp.csc_matrix:
        keys = self.cross.keys
        indptr = np.searchsorted(self.cols, np.arange(self.q2 + 1)).astype(np.int32)
        return sp.csc_matrix((np.ones(keys.size), self.rows, indptr), shape=(self.q2, self.q2))

    def criterion(self, theta: np.ndarray) -> float:
        self.nevals += 1
        f = self._factor(np.asarray(theta, dtype=float))
        return np.inf if f is None else self._criterion(f)

    def _criterion(self, f: _Factor) -> float:
        d = np.diag(f.L33)
        return self.deviance(CriterionTerms(ldL2=f.ld1 + f.ld2, ldRX2=2.0 * float(np.sum(np.log(d[: self.p]))),
                                            pwrss=d[-1] ** 2))

    @property
    def reports_progress(self) -> bool:
        return True

    @property
    def has_gradient(self) -> bool:
        """Whether ``criterion_and_gradient`` is available: block 2 dense (its inverse is needed) or absent."""
        return not self.q2 or (self.fill.kind == "dense" and self.cross is not None)

    def criterion_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The criterion and its gradient in theta (pylme.objectives.gradient's formulas), from one blocked factor."""
        theta = np.asarray(theta, dtype=float)
        self.nevals += 1
        f = self._factor(theta)
        if f is None:
            return np.inf, np.full(theta.size, np.nan)
        return self._criterion(f), self._gradient(theta, f)

    def _gradient(self, theta: np.ndarray, f: _Factor) -> np.ndarray:
        """The gradient at theta from the factor f (a dense or no block 2; see pylme.objectives.gradient)."""
        rt = self.design.reTrms
        REML, p, q2 = self.resp.REML, self.p, self.q2
        _, _, u, _ = self.modes(theta, f)
        pwrss = f.L33[-1, -1] ** 2
        c = (self.design.n - p if REML else self.design.n) / pwrss
        Sig = self._trailing_inverse(f, REML)
        Sbar = self._block2_sums(Sig[:q2, :q2])
        Sbar[self.k1] = self._block1_sum(theta, Sig, REML)
        grad = np.zeros(theta.size)
        toff, Gp = rt.theta_offsets, rt.Gp
        for k, term in enumerate(rt.terms):
            sl = slice(toff[k], toff[k + 1])
            T = rt.lam.block(theta, k)
            if np.any(np.diag(T) == 0.0):  # singular T: by differences of the criterion (one-sided at the
                # bound, where a scalar term's derivative, 0 as the criterion is even in it, hides its sign)
                grad[sl] = [self._central(theta, j) for j in range(sl.start, sl.stop)]
                continue
            grad[sl] = gradient.term_gradient(T, term.nl, Sbar[k], u[Gp[k] : Gp[k + 1]].reshape(term.nl, term.nc), c)
        return grad

    def _central(self, theta: np.ndarray, j: int) -> float:
        """d crit / d theta_j by central differences (a forward one at a bound)."""
        up, down = theta.copy(), theta.copy()
        up[j] += gradient.DELTA
        down[j] = max(theta[j] - gradient.DELTA, self.lower[j])
        return (self(up) - self(down)) / (up[j] - down[j])

    def _trailing_inverse(self, f: _Factor, REML: bool) -> np.ndarray:
        """Sigma_rr: the inverse of the system left after block 1, [block 2, X] (REML) or block 2 (ML)."""
        q2, p = self.q2, self.p
        m = q2 + (p if REML else 0)
        L = np.zeros((m, m), order="F")
        if q2:
            L[:q2, :q2] = self.fill.L  # its upper triangle is zero: block 2 is scattered into the lower one
        if REML and p:
            L[q2:, :q2] = f.L32t[:, :p].T
            L[q2:, q2:] = f.L33[:p, :p]
        return gradient.trailing_inverse(L)

    def _block2_sums(self, Sig22: np.ndarray) -> dict[int, np.ndarray]:
        """For each term of block 2: the sum over its levels of Sigma's diagonal blocks."""
        out, off = {}, 0
        for k, term in enumerate(self.design.reTrms.terms):
            if k == self.k1:
                continue
            out[k] = gradient.level_sum(Sig22, off + np.arange(term.nl) * term.nc, term.nc)
            off += term.nl * term.nc
        return out

    def _block1_sum(self, theta: np.ndarray, Sig: np.ndarray, REML: bool) -> np.ndarray:
        """Block 1's term: the sum over its levels of Sigma_11,l (see pylme.objectives.gradient)."""
        blk, q2, p = self.block1, self.q2, self.p
        nl, nc = blk.nl, blk.nc
        T1, Minv = blk.inverses(theta)
        K = Kx = None
        if q2:
            weight = np.where(self.rows == self.cols, 1.0, 2.0) * self._q22_on_pattern(theta, Sig[:q2, :q2])
            k = self.cross.adjoint(weight).reshape(-1, nc, nc)
            K = 0.5 * (k + np.swapaxes(k, 1, 2))  # per group; equal levels have equal M_l
        if REML and p:
            Ax1 = self.A31[:p].reshape(p, nl, nc)
            Sxx = np.tril(Sig[q2:, q2:]) + np.tril(Sig[q2:, q2:], -1).T
            SA = (Sxx @ self.A31[:p]).reshape(p, nl, nc)
            Kx = np.einsum("pla,plb->lab", Ax1, SA)
            if q2:
                Q2x = self.lam2.Lambdat(theta).T @ Sig[q2:, :q2].T
                F = (self.A21r.T @ Q2x).reshape(nl, nc, p)
                cross = np.einsum("lap,plb->lab", F, Ax1)
                Kx += cross + np.swapaxes(cross, 1, 2)
        return gradient.first_block_sum(Minv, T1, K, blk.rep, Kx)

    def _q22_on_pattern(self, theta: np.ndarray, Sig22: np.ndarray) -> np.ndarray:
        """Q22 = Lambda2 Sigma22 Lambda2' at block 2's pattern entries (Sig22: lower triangle)."""
        rows, cols = self.rows, self.cols
        if self.diag2:
            return Sig22[rows, cols] * np.multiply.outer(theta, theta).ravel()[self.scale_pair]
        full = np.tril(Sig22) + np.tril(Sig22, -1).T
        Lt2 = self.lam2.Lambdat(theta)
        left = Lt2.T @ full  # Lambda2 Sigma22
        return np.asarray((Lt2.T @ left.T).T)[rows, cols]

    def _factor(self, theta: np.ndarray) -> _Factor | None:
        """The blocked factor at theta (None if a block is not positive definite)."""
        ld1, V = self.block1.factor(theta)
        Y = np.einsum("mla,lab->mlb", self.A31.reshape(self.m3, -1, V.shape[1]), V).reshape(self.m3, -1)
        S33 = self.A33 - _abt(Y, self.A31)
        ld2, L32t = 0.0, np.zeros((0, self.m3))
        if self.q2:
            S32 = self.A32 - (self.A21r @ Y.T).T
            ld2, L32t = self._fill(theta, V, S32)
            if ld2 is None:
                return None
            S33 -= blas.dgemm(1.0, L32t, L32t, trans_a=1)
        L33, info = lapack.dpotrf(S33, lower=1, clean=1)
        if info != 0:
            return None
        return _Factor(ld1, ld2, L32t, L33)

    def _fill(self, theta: np.ndarray, V: np.ndarray, S32: np.ndarray) -> tuple[float | None, np.ndarray]:
        """Factor block 2 at theta; returns its log-determinant and L32' = L22^-1 P S32'."""
        if self.cross is None:  # formed from A21 (a scalar block 1, a diagonal Lambda2)
            lam = self.lam2.values(theta)
            ld2 = self.fill.factor_updated(lam, self.block1.level_values(V))
            S23 = S32.T * lam[:, None]
            return (None, S32.T) if ld2 is None else (ld2, self.fill.solve_L(S23))
        H = self.A22 - self.cross(V[self.block1.rep])
        if self.diag2:
            H *= np.multiply.outer(theta, theta).ravel()[self.scale_pair]
            S23 = S32.T * self.lam2.values(theta)[:, None]
        else:
            lam = self.lam2.values(theta)
            H = np.bincount(self.scale_target, weights=lam[self.scale_e1] * lam[self.scale_e2] * H[self.scale_src],
                            minlength=H.size)
            S23 = self.lam2.Lambdat(theta) @ S32.T
        H[self.diag_pos] += 1.0
        ld2 = self.fill.factor(H)
        if ld2 is None:
            return None, S32.T
        return ld2, self.fill.solve_L(S23)

    def pls_state(self, theta: np.ndarray) -> PLSState:
        """The PLS solution at theta from the blocked factor (u and b in lme4's order, RZX in the
        factor's block order), residuals computed explicitly."""
        theta = np.array(theta, dtype=float)
        f = self._factor(theta)
        if f is None:
            raise ModelError("the blocked factor is not positive definite at theta")
        p = self.p
        RX, beta, u, RZX1 = self.modes(theta, f)
        d = self.design
        b = d.lam.Lambdat(theta).T @ u
        RZX = np.vstack([RZX1, f.L32t[:, :p]])
        ldRX2 = 2.0 * float(np.sum(np.log(np.diag(RX)))) if p else 0.0
        eta = d.X @ beta + d.Zt.T @ b
        return PLSState(theta=theta, beta=beta, u=u, b=b, eta=eta, wrss=self.resp.wrss(eta), ussq=float(u @ u),
                        ldL2=f.ld1 + f.ld2, ldRX2=ldRX2, RX=RX, RZX=RZX)

    def cond_var_blocks(self, theta: np.ndarray, columns: list[np.ndarray]) -> np.ndarray:
        """By the CHOLMOD objective of the same design and response (built when first needed)."""
        if self._cholmod is None:
            self._cholmod = CholmodObjective(self.design, self.resp, self.start)
        return self._cholmod.cond_var_blocks(theta, columns)

    def modes(self, theta: np.ndarray, f: _Factor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """RX, beta, the spherical modes u (lme4's order) and block 1's RZX, by back-substitution
        in the blocked factor ``f`` at theta."""
        p = self.p
        RX = f.L33[:p, :p].T.copy()
        beta = lapack.dtrtrs(RX, f.L33[p, :p].copy(), lower=0)[0] if p else np.zeros(0)
        u = np.zeros(self.design.q)
        r1 = self.A31[-1] - beta @ self.A31[:p]
        if self.q2:
            u2 = self.fill.solve_Lt(f.L32t @ np.r_[-beta, 1.0])
            u[self.idx2] = u2
            r1 = r1 - self.A21r.T @ (self.lam2.Lambdat(theta).T @ u2)
        u1, RZX1 = self.block1.solve(theta, r1, self.A31[:p])
        u[self.idx1] = u1
        return RX, beta, u, RZX1

    def memory_plan(self) -> str:
        """What the blocks were estimated to need, one line each."""
        return "\n".join(p.describe() for p in self.plan)

    def planned_bytes(self) -> float:
        return sum(p.bytes for p in self.plan)



@dataclass
class GramBlocks:
    """The weighted cross-products the blocked factor is built from (``[Z1 | Z2 | X y]``'s Gram
    matrix by blocks): block 1's level blocks, Z2'WZ1, the lower triangle of Z2'WZ2, and the
    ``[X y]`` rows against block 1, block 2 and themselves."""

    A11: np.ndarray  # (nl1, nc1, nc1)
    A21: sp.spmatrix  # (q2, q1)
    A22: sp.coo_matrix  # (q2, q2), lower triangle
    A31: np.ndarray  # (p + 1, q1)
    A32: np.ndarray  # (p + 1, q2)
    A33: np.ndarray  # (p + 1, p + 1)


def block_split(rt) -> tuple[int, np.ndarray, np.ndarray]:
    """Block 1's term (the one with the most random effects) and the positions in b of block 1
    and of block 2 (the other terms, in order)."""
    sizes = [t.nl * t.nc for t in rt.terms]
    k1 = int(np.argmax(sizes))
    Gp = rt.Gp
    idx1 = np.arange(Gp[k1], Gp[k1 + 1])
    idx2 = np.concatenate([np.arange(Gp[k], Gp[k + 1]) for k in range(len(sizes)) if k != k1] + [np.zeros(0, int)])
    return k1, idx1, idx2


def gram_blocks(design: LmmDesign, resp: LmerResp, idx1: np.ndarray, idx2: np.ndarray, nc1: int) -> GramBlocks:
    """The Gram blocks of an in-memory design and response."""
    Zt = design.Ztw.tocsr()
    Z1t, Z2t = Zt[idx1], Zt[idx2]
    Zty, Xty = design.cross(resp.yw)
    yty = float(resp.yw @ resp.yw)
    return GramBlocks(
        A11=_block_diagonal(Z1t, idx1.size // nc1, nc1),
        A21=Z2t @ Z1t.T,
        A22=sp.tril(Z2t @ Z2t.T).tocoo(),
        A31=np.vstack([design.ZtX[idx1].T, Zty[idx1][None, :]]),
        A32=np.vstack([design.ZtX[idx2].T, Zty[idx2][None, :]]),
        A33=np.block([[design.XtX, Xty[:, None]], [Xty[None, :], np.array([[yty]])]]),
    )


def first_plans(terms1: list[str], q1: int, nl1: int, nc1: int, m3: int, q2: int) -> list[BlockPlan]:
    """The memory of block 1, of the [X y] x block 1 cross-products and of the [X y] block."""
    return [BlockPlan("block 1", terms1, "diagonal" if nc1 == 1 else "block-diagonal", q1, 3.0 * nl1 * nc1**2 * 8),
            BlockPlan("[X y] x block 1", terms1, "dense", q1, 2.0 * m3 * q1 * 8),
            BlockPlan("[X y]", ["X", "y"], "dense [X y]", m3, 3.0 * m3 * (q2 + m3) * 8)]


def memory_limit_of(memory_limit: float | None) -> tuple[float, str]:
    """The bytes a fit may plan to use and where that figure comes from."""
    if memory_limit is None:
        avail = available_bytes()
        return MEMORY_SHARE * avail, f"{MEMORY_SHARE:.0%} of the {format_bytes(avail)} available"
    return float(memory_limit), "memory_limit"


def fits(plan: list[BlockPlan], limit: tuple[float, str]) -> bool:
    """Whether the blocks planned need at most the limit."""
    return sum(p.bytes for p in plan) <= limit[0]


def _check_memory(plan: list[BlockPlan], limit: tuple[float, str], what: str = "the blocked factor") -> None:
    """Raise a ModelError naming the largest block when the blocks planned so far need more than
    the limit (bytes, and where it comes from); ``what``: the whole the blocks make up."""
    total = sum(p.bytes for p in plan)
    if total > limit[0]:
        big = max(plan, key=lambda p: p.bytes)
        raise ModelError(
            f"{what} would need about {format_bytes(total)}, more than the {format_bytes(limit[0])} "
            f"allowed ({limit[1]}); the largest block is {big.describe()}"
        )


def _abt(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A @ B.T`` for C-ordered A and B by scipy's BLAS, without copies (numpy's ``@`` would wake
    numpy's own OpenBLAS threads, which slow the LAPACK calls that follow; see pylme.objectives.tiled)."""
    return blas.dgemm(1.0, A.T, B.T, trans_a=1)


@dataclass
class _Factor:
    """The parts of the blocked factor at one theta that the criterion and the solution read."""

    ld1: float
    ld2: float
    L32t: np.ndarray  # (q2, m3): L22^-1 P S23
    L33: np.ndarray  # (m3, m3) lower


def _block_diagonal(Z1t: sp.csr_matrix, nl: int, nc: int) -> np.ndarray:
    """The level blocks of Z1'Z1 (block diagonal for a single grouping factor): (nl, nc, nc)."""
    if nc == 1:
        return np.asarray(Z1t.multiply(Z1t).sum(axis=1)).reshape(nl, 1, 1)
    G = (Z1t @ Z1t.T).tocsr()
    base = np.arange(nl) * nc
    out = np.empty((nl, nc, nc))
    for i in range(nc):
        for j in range(nc):
            out[:, i, j] = np.asarray(G[base + i, base + j]).ravel()
    return out


def blocked_size(design: LmmDesign) -> int:
    """The order of block 2 and [X y]: what is left after the largest term is eliminated."""
    sizes = [t.nl * t.nc for t in design.reTrms.terms]
    return design.q - max(sizes) + design.p + 1


def BlockedDevfun(devfun: Objective, fill: str = "auto", memory_limit: float | None = None) -> BlockedObjective:
    """The blocked objective of another objective's design and response, from its start
    (``BlockedDevfun(pylme.lmer(..., devFunOnly=True), fill=...)``)."""
    return BlockedObjective(devfun.design, devfun.resp, devfun.start, fill, memory_limit)
