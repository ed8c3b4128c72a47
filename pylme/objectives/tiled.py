"""A block-sparse (tiled) Cholesky factorisation of a symmetric positive definite matrix with a
fixed sparsity pattern, on scipy's BLAS and LAPACK.

The matrix is permuted by a fill-reducing order (METIS, from CHOLMOD's symbolic analysis) and cut
into square tiles; a tile of the factor is stored only if the matrix has an entry in it or it
fills in during the factorisation (decided once, on the tiles). The factor is kept as its upper
triangle ``U = L'`` in row panels: panel ``k`` holds the stored tiles ``U[k, j]`` (``j >= k``)
side by side in one Fortran-ordered array, so that ``U[k, j1:j2]`` over consecutive stored tiles
is one contiguous matrix. One factorisation, right-looking, per tile row ``k``:

    U[k, k]  = chol(S[k, k])                       dpotrf (upper)
    U[k, k:] = U[k, k]^-T U[k, k:]                 one dtrsm on the panel right of the diagonal
    U[j, j] -= U[k, j]' U[k, j]                    dsyrk, for each stored j > k
    U[j, J] -= U[k, j]' U[k, J]                    dgemm, J a run of stored tiles after j that is
                                                   contiguous in both panels k and j

The list of these calls (on views of one buffer) is built once; per factorisation the buffer is
zeroed, the values are scattered into it and the calls are run. Every product goes through scipy's
BLAS: numpy's ``@`` runs on numpy's own copy of OpenBLAS, whose threads, still spinning after a
call, slow the next scipy call by an order of magnitude on 2 cores.
"""
from __future__ import annotations

import copy
import ctypes

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas, cython_blas, cython_lapack, lapack
from sksparse.cholmod import CholmodError, analyze

from ..errors import ModelError

#: the tile sizes plan_tiles tries
TILE_SIZES = (128, 192, 256, 384, 512)
#: flops per second of the tile operations, and seconds per BLAS/LAPACK call beyond its flops
#: (Python loop, f2py checks, OpenBLAS thread start-up): a least-squares fit of the measured
#: factorisation times of the grades design's fill block (order 8017) at tiles 128 to 512, on
#: scipy's OpenBLAS with 2 cores (94 GFlop/s and 23 us; dgemm alone reaches ~120 GFlop/s)
RATE = 95e9
OVERHEAD = 22e-6


@dataclass
class TilePlan:
    """The tiling of a pattern and what one factorisation is predicted to cost."""

    perm: np.ndarray  # the fill-reducing order: row i of the permuted matrix is row perm[i]
    tile: int  # tile size (the last tile may be shorter)
    flops: float  # flops of one factorisation (the tile operations done)
    bytes: float  # memory of the stored tiles
    nops: int  # BLAS/LAPACK calls per factorisation
    seconds: float  # predicted time: flops / RATE + nops * OVERHEAD
    symbolic: "_Symbolic | None" = field(default=None, repr=False, compare=False)  # the tiles, for TiledFill


def fill_order(pattern: sp.csc_matrix) -> np.ndarray:
    """METIS's fill-reducing order of the symmetric matrix whose lower triangle is ``pattern``
    (CHOLMOD's default choice where CHOLMOD was built without METIS)."""
    sym = (pattern + pattern.T).tocsc()
    try:
        factor = analyze(sym, mode="supernodal", ordering_method="metis")
    except CholmodError:
        factor = analyze(sym, mode="supernodal")
    return np.asarray(factor.P(), dtype=np.int64)


def plan_tiles(pattern: sp.csc_matrix, sizes: tuple[int, ...] = TILE_SIZES,
               perm: np.ndarray | None = None) -> TilePlan:
    """The cheapest tiling (by predicted seconds) of ``pattern`` over the tile ``sizes``, in the
    fill-reducing order ``perm`` (default: ``fill_order``); nothing of the factor's size is
    allocated."""
    if perm is None:
        perm = fill_order(pattern)
    row, col = _permuted_upper(pattern, perm)
    plans = []
    for t in sizes:
        sym = _Symbolic(row, col, _uniform(pattern.shape[0], t))
        plans.append(TilePlan(perm, t, sym.flops, 8.0 * sym.size, sym.nops, sym.flops / RATE + sym.nops * OVERHEAD, sym))
    return min(plans, key=lambda p: p.seconds)


def _permuted_upper(pattern: sp.csc_matrix, perm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column in the upper triangle of the permuted matrix of each entry of ``pattern``."""
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size)
    a = inv[pattern.indices]
    b = inv[np.repeat(np.arange(pattern.shape[1]), np.diff(pattern.indptr))]
    return np.minimum(a, b), np.maximum(a, b)


def _uniform(n: int, t: int) -> np.ndarray:
    """Bounds of tiles of size t (the last one shorter) covering 0..n."""
    return np.r_[np.arange(0, n, t), n]


class _Symbolic:
    """Tiles (between ``bounds``), their fill and the panel layout (entries at ``row <= col``)."""

    def __init__(self, row: np.ndarray, col: np.ndarray, bounds: np.ndarray):
        self.bounds = bounds
        nt = bounds.size - 1
        self.sizes = np.diff(bounds)
        self.tile_of = np.repeat(np.arange(nt), self.sizes)
        stored = np.zeros(nt * nt, dtype=bool)
        stored[self.tile_of[row] * nt + self.tile_of[col]] = True
        stored = stored.reshape(nt, nt)
        stored[np.arange(nt), np.arange(nt)] = True
        for k in range(nt):  # tile-level elimination: the tiles of row k fill in among themselves
            js = np.flatnonzero(stored[k, k + 1:]) + k + 1
            stored[np.ix_(js, js)] = True
        self.stored = np.triu(stored)
        self.cols = [np.flatnonzero(self.stored[k]) for k in range(nt)]  # starts with k itself
        s = self.sizes
        self.offsets = [np.r_[0, np.cumsum(s[c])] for c in self.cols]  # column offsets in panel k
        widths = np.array([o[-1] for o in self.offsets])
        self.at = np.full((nt, nt), -1, dtype=np.int64)  # at[k, j]: column of tile U[k, j] in panel k
        for k, c in enumerate(self.cols):
            self.at[k, c] = self.offsets[k][:-1]
        self.base = np.r_[0, np.cumsum(s * widths)]
        self.size = int(self.base[-1])
        self.updates = [self._updates(k) for k in range(nt)]
        flops = nops = 0.0
        for k in range(nt):
            sk, off = float(s[k]), widths[k] - s[k]
            flops += sk**3 / 3.0 + sk**2 * off
            nops += 1 + (off > 0)
            for j, a0, a1, b0, b1, c0, c1 in self.updates[k]:
                flops += sk * float(s[j]) ** 2 if b0 < 0 else 2.0 * sk * s[j] * (b1 - b0)
            nops += len(self.updates[k])
        self.flops, self.nops = flops, int(nops)

    def _updates(self, k: int) -> list[tuple[int, int, int, int, int, int, int]]:
        """The updates from panel k: ``(j, a0, a1, b0, b1, c0, c1)``: panel j's columns c0:c1 less
        ``P_k[:, a0:a1]' P_k[:, b0:b1]`` (``U[k, j]`` is ``P_k[:, a0:a1]``); ``b0 = -1`` for the
        diagonal tile ``U[j, j]`` (dsyrk). The tiles after j in panel k are cut into runs that are
        contiguous in panel j too."""
        cols, off = self.cols[k], self.offsets[k]
        out = []
        for p in range(1, cols.size):
            j, a0, a1 = cols[p], off[p], off[p + 1]
            out.append((j, a0, a1, -1, -1, 0, int(self.sizes[j])))
            pos = np.searchsorted(self.cols[j], cols[p + 1:])  # where those tiles sit in panel j
            breaks = np.flatnonzero(np.diff(pos) != 1) + 1
            for r0, r1 in zip(np.r_[0, breaks], np.r_[breaks, pos.size]):
                if r1 > r0:
                    b0, b1 = off[p + 1 + r0], off[p + 1 + r1]
                    c0 = self.offsets[j][pos[r0]]
                    out.append((j, a0, a1, b0, b1, c0, c0 + b1 - b0))
        return out


class TiledFill:
    """Block 2 factored as a tiled Cholesky factor on its fixed pattern (see the module)."""

    kind = "tiled"

    def __init__(self, pattern: sp.csc_matrix, plan: TilePlan | None = None):
        if plan is None:
            plan = plan_tiles(pattern)
        self.plan = plan
        self.n = n = pattern.shape[0]
        self.perm = plan.perm
        row, col = _permuted_upper(pattern, self.perm)
        sym = plan.symbolic if plan.symbolic is not None else _Symbolic(row, col, _uniform(n, plan.tile))
        self._sym = sym
        self.bounds, self.stored = sym.bounds, sym.stored
        tile_r, tile_c = sym.tile_of[row], sym.tile_of[col]
        colpos = sym.at[tile_r, tile_c] + col - self.bounds[tile_c]  # column of each entry in its panel
        flat = sym.base[tile_r] + colpos * sym.sizes[tile_r] + row - self.bounds[tile_r]
        self.flat = flat.astype(np.int32) if sym.size < 2**31 else flat  # where each value goes in buf
        nt = self.bounds.size - 1
        self.index = [np.concatenate([np.arange(self.bounds[j], self.bounds[j + 1]) for j in sym.cols[k][1:]]
                                     + [np.zeros(0, dtype=np.int64)]) for k in range(nt)]  # rows right of tile k
        self.diag = np.concatenate([sym.base[k] + np.arange(sym.sizes[k]) * (sym.sizes[k] + 1) for k in range(nt)])
        self._workspace()

    def _workspace(self) -> None:
        """The buffer of the stored tiles, its row panels and the list of calls on their views."""
        sym = self._sym
        self.buf = np.zeros(sym.size)
        nt = self.bounds.size - 1
        self.panels = [self.buf[sym.base[k]:sym.base[k + 1]].reshape(sym.sizes[k], -1, order="F") for k in range(nt)]
        self.steps = []
        for k in range(nt):
            P, sk = self.panels[k], sym.sizes[k]
            off = P[:, sk:] if P.shape[1] > sk else None
            updates = [(P[:, a0:a1], None if b0 < 0 else P[:, b0:b1], self.panels[j][:, c0:c1])
                       for j, a0, a1, b0, b1, c0, c1 in sym.updates[k]]
            self.steps.append((P[:, :sk], off, updates))

    def clone(self) -> "TiledFill":
        """The same tiling with a buffer of its own (another objective's factorisations)."""
        new = copy.copy(self)
        new._workspace()
        return new

    def factor(self, vals: np.ndarray) -> float | None:
        """Factor P S P' = U'U from S's values in pattern order; log det S, or None if S is not
        positive definite."""
        buf = self.buf
        buf.fill(0.0)
        buf[self.flat] = vals
        potrf, trsm, syrk, gemm = lapack.dpotrf, blas.dtrsm, blas.dsyrk, blas.dgemm
        for D, off, updates in self.steps:
            info = potrf(D, lower=0, clean=0, overwrite_a=1)[1]
            if info != 0:
                return None
            if off is not None:
                trsm(1.0, D, off, side=0, lower=0, trans_a=1, overwrite_b=1)
            for A, B, C in updates:
                if B is None:
                    syrk(-1.0, A, beta=1.0, c=C, trans=1, lower=0, overwrite_c=1)
                else:
                    gemm(-1.0, A, B, 1.0, C, trans_a=1, overwrite_c=1)
        return 2.0 * float(np.sum(np.log(buf[self.diag])))

    def solve_L(self, B: np.ndarray) -> np.ndarray:
        """L^-1 (P B) for B of shape (n, m) or (n,), L = U' (forward substitution by tile rows)."""
        X = np.array(B, dtype=float).reshape(self.n, -1)[self.perm]
        bounds = self.bounds
        for k, (D, off, _) in enumerate(self.steps):
            s, e = bounds[k], bounds[k + 1]
            X[s:e] = blas.dtrsm(1.0, D, X[s:e], side=0, lower=0, trans_a=1)
            if off is not None:
                X[self.index[k]] -= blas.dgemm(1.0, off, X[s:e], trans_a=1)
        return X.reshape(np.shape(B))

    def solve_Lt(self, c: np.ndarray) -> np.ndarray:
        """P' L^-T c for c of shape (n,) or (n, m) (back substitution by tile rows)."""
        X = np.array(c, dtype=float).reshape(self.n, -1)
        bounds = self.bounds
        for k in range(len(self.steps) - 1, -1, -1):
            D, off, _ = self.steps[k]
            s, e = bounds[k], bounds[k + 1]
            if off is not None:
                X[s:e] -= blas.dgemm(1.0, off, X[self.index[k]])
            X[s:e] = blas.dtrsm(1.0, D, X[s:e], side=0, lower=0)
        out = np.empty_like(X)
        out[self.perm] = X
        return out.reshape(np.shape(c))

    def lower_factor(self) -> np.ndarray:
        """The factor L of P S P' as a dense array (for checks)."""
        U = np.zeros((self.n, self.n))
        b = self.bounds
        for k, P in enumerate(self.panels):
            cols = np.concatenate([np.arange(b[j], b[j + 1]) for j in np.flatnonzero(self.stored[k])])
            U[b[k]:b[k + 1], cols] = P
        return np.triu(U).T


#: the largest order LAPACK's dpotrf is given in one call; a larger dense block is factored by
#: tiles of this order (dense_cholesky). The OpenBLAS that scipy bundles (scipy-openblas 0.3.30,
#: built with 32 MiB work buffers) overruns its buffer in its threaded dpotrf: the threaded dsyrk
#: of the trailing matrix (order m) packs GEMM_Q x 0.71 m doubles into the first thread's buffer,
#: past 32 MiB from order ~15,500 on two threads with the AVX-512 kernels (GEMM_Q = 384), ~22,700
#: with the AVX2 ones; it crashed there (docs/performance.md). Order 2,048 asks about 5 MiB.
DENSE_TILE = 2048


def _cython_function(module, name: str, nargs: int):
    """The C function behind scipy's ``cython_blas``/``cython_lapack`` ``name`` (scipy's own
    BLAS/LAPACK: the Fortran calling convention, every argument a pointer), callable by ctypes,
    which releases the GIL for the call. Unlike the f2py wrappers of scipy.linalg.blas it takes a
    leading dimension, so that it works in place on a sub-matrix."""
    capsule = module.__pyx_capi__[name]
    get_name, get_pointer = ctypes.pythonapi.PyCapsule_GetName, ctypes.pythonapi.PyCapsule_GetPointer
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    address = get_pointer(capsule, get_name(capsule))
    return ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * nargs)(address)


def _ref(value: bytes | int | float):
    """A Fortran argument: a pointer to a char, an int or a double."""
    if isinstance(value, bytes):
        return ctypes.byref(ctypes.c_char(value))
    return ctypes.byref(ctypes.c_double(value) if isinstance(value, float) else ctypes.c_int(value))


class _InPlace:
    """dpotrf, dtrsm, dsyrk and dgemm on sub-matrices of one square Fortran-ordered float64
    array S, each named by its first row and column and its sizes."""

    def __init__(self, S: np.ndarray):
        self.base, self.n = S.ctypes.data, S.shape[0]
        self.ld = _ref(self.n)
        self._potrf = _cython_function(cython_lapack, "dpotrf", 5)
        self._trsm = _cython_function(cython_blas, "dtrsm", 11)
        self._syrk = _cython_function(cython_blas, "dsyrk", 10)
        self._gemm = _cython_function(cython_blas, "dgemm", 13)

    def _at(self, i: int, j: int) -> ctypes.c_void_p:
        return ctypes.c_void_p(self.base + 8 * (i + j * self.n))

    def potrf(self, k: int, n: int) -> int:
        """L L' = S[k:k+n, k:k+n] over its lower triangle; LAPACK's info."""
        info = ctypes.c_int(0)
        self._potrf(_ref(b"L"), _ref(n), self._at(k, k), self.ld, ctypes.byref(info))
        return info.value

    def trsm(self, i: int, m: int, k: int, n: int) -> None:
        """S[i:i+m, k:k+n] := S[i:i+m, k:k+n] L^-T, L the lower triangle of S[k:k+n, k:k+n]."""
        self._trsm(_ref(b"R"), _ref(b"L"), _ref(b"T"), _ref(b"N"), _ref(m), _ref(n), _ref(1.0),
                   self._at(k, k), self.ld, self._at(i, k), self.ld)

    def syrk(self, j: int, w: int, k: int, n: int) -> None:
        """S[j:j+w, j:j+w] -= S[j:j+w, k:k+n] S[j:j+w, k:k+n]' over its lower triangle."""
        self._syrk(_ref(b"L"), _ref(b"N"), _ref(w), _ref(n), _ref(-1.0), self._at(j, k), self.ld,
                   _ref(1.0), self._at(j, j), self.ld)

    def gemm(self, i: int, m: int, j: int, w: int, k: int, n: int) -> None:
        """S[i:i+m, j:j+w] -= S[i:i+m, k:k+n] S[j:j+w, k:k+n]'."""
        self._gemm(_ref(b"N"), _ref(b"T"), _ref(m), _ref(w), _ref(n), _ref(-1.0), self._at(i, k), self.ld,
                   self._at(j, k), self.ld, _ref(1.0), self._at(i, j), self.ld)


def dense_cholesky(S: np.ndarray, tile: int = DENSE_TILE) -> int:
    """Factor S = L L' in place, as LAPACK's ``dpotrf`` (lower) does: L over S's lower triangle
    (S float64, Fortran order), the strict upper triangle untouched; returns dpotrf's info (0, or
    the order of the first leading minor that is not positive definite).

    Up to order ``tile``, one dpotrf. Above it (see DENSE_TILE for why), right-looking by tiles of
    that order, every call in place on S: for each diagonal tile K,

        L[K, K]  = chol(S[K, K])                 dpotrf
        L[>K, K] = S[>K, K] L[K, K]^-T           dtrsm on the panel below it
        S[J, J] -= L[J, K] L[J, K]'              dsyrk, for each tile column J > K
        S[>J, J] -= L[>J, K] L[J, K]'            dgemm (OpenBLAS's dgemm blocks its buffers)
    """
    n = S.shape[0]
    if not (S.dtype == np.float64 and S.flags.f_contiguous and S.shape == (n, n)):
        raise ValueError("dense_cholesky needs a square Fortran-ordered float64 array")
    if n <= tile:
        return lapack.dpotrf(S, lower=1, clean=0, overwrite_a=1)[1]
    calls = _InPlace(S)
    for k in range(0, n, tile):
        b = min(tile, n - k)
        info = calls.potrf(k, b)
        if info != 0:
            return k + info
        if k + b < n:
            calls.trsm(k + b, n - k - b, k, b)
        for j in range(k + b, n, tile):
            w = min(tile, n - j)
            calls.syrk(j, w, k, b)
            if j + w < n:
                calls.gemm(j + w, n - j - w, j, w, k, b)
    return 0


def lower_solve(L: np.ndarray, b: np.ndarray, trans: int) -> np.ndarray:
    """L^-1 b (trans 0) or L'^-1 b (trans 1) for a lower triangular L (LAPACK's dtrtrs)."""
    x, info = lapack.dtrtrs(L, b, lower=1, trans=trans)
    if info:
        raise ModelError(f"triangular solve failed (dtrtrs info {info})")
    return x


def inverse_by_solves(solve_L, solve_Lt, n: int, chunk: int = 512) -> np.ndarray:
    """``S^-1 = L'^-1 L^-1`` (dense, n x n) from the two triangular solves of S's factor, by chunks
    of the identity's columns: for a factor that is not dense, and for a dense one above
    DENSE_TILE, where LAPACK's dpotri would run OpenBLAS's threaded update in one call."""
    inv = np.empty((n, n))
    for a in range(0, n, chunk):
        m = min(chunk, n - a)
        E = np.zeros((n, m), order="F")
        E[np.arange(a, a + m), np.arange(m)] = 1.0
        inv[:, a : a + m] = solve_Lt(solve_L(E))
    return inv


class DenseFill:
    """Block 2 factored densely by LAPACK (lower, column-major, in place; by tiles of order
    ``tile`` above it: dense_cholesky)."""

    kind = "dense"
    tile = DENSE_TILE

    def __init__(self, rows: np.ndarray, cols: np.ndarray, q2: int):
        self.q2 = q2
        self.flat = cols.astype(np.int64) * q2 + rows  # Fortran order
        self.L: np.ndarray | None = None

    def factor(self, vals: np.ndarray) -> float | None:
        self.L = None  # the last factor is freed before the next is made: one q2 x q2 array at a time
        S = np.zeros((self.q2, self.q2), order="F")  # (fresh zero pages: faster here than refilling one)
        S.ravel(order="F")[self.flat] = vals
        return self.factor_formed(S)

    def factor_formed(self, S: np.ndarray) -> float | None:
        """Factor the formed block S (lower triangle, Fortran order) in place; its log-determinant,
        or None if it is not positive definite."""
        info = dense_cholesky(S, self.tile)
        self.L = S
        if info != 0:
            return None
        return 2.0 * float(np.sum(np.log(np.diagonal(self.L))))

    def solve_L(self, B: np.ndarray) -> np.ndarray:
        """L22^-1 B for B of shape (q2, m)."""
        return lapack.dtrtrs(self.L, np.asfortranarray(B), lower=1)[0]

    def solve_Lt(self, c: np.ndarray) -> np.ndarray:
        """L22^-T c."""
        return lapack.dtrtrs(self.L, c, lower=1, trans=1)[0]

    def clone(self) -> "DenseFill":
        """The same block with a factor of its own (another objective's factorisations)."""
        new = copy.copy(self)
        new.L = None
        return new
