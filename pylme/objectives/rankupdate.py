"""Block 2 of the blocked factor formed without a cross map (MixedModels.jl's way): each
evaluation, its Schur complement is made dense straight from the sparse ``A21`` (block 2 x
block 1) and factored by LAPACK.

For a scalar block 1 (``V`` diagonal: one ``v_l >= 0`` per level) and a diagonal ``Lambda2``
(block 2's terms all scalar), with ``D = Lambda2``:

    S22 = D (A22 - A21 V A12) D + I = D A22 D + I - C C',   C = D A21 diag(sqrt(v))

``C C'`` is the sum over block 1's levels of the rank-k_l updates of the k_l block-2 effects a
level meets (for users x items, the items a user rated): ``sum_l k_l^2`` products an
evaluation, with nothing kept between evaluations but ``A21`` itself. The levels are taken in
chunks of at most ``CHUNK_PAIRS`` products (scipy's sparse product ``C_c' C_c`` of a chunk's rows,
which sums the pairs the chunk's levels share), and each chunk's lower triangle is added into
the dense block, so the memory beyond the block and ``A21`` stays bounded. Where the cross map
(pylme.objectives.blocked.CrossMap: one entry per pair met within a group of levels) would not
fit in memory, this needs only the dense block and ``A21``; each evaluation costs the
products above and a dense factorisation of order q2.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .blocked import BlockPlan, DenseFill

#: the products ``k_l^2`` of one chunk of block-1 levels (the sparse product's entries, and the
#: temporary arrays of its lower triangle, about 50 bytes each, are bounded by it; a level with
#: more pairs is a chunk of its own)
CHUNK_PAIRS = 8_000_000
#: bytes per product of a chunk while it is added in (the product's entries, their positions)
CHUNK_BYTES_PER_PAIR = 50.0
#: bytes per entry of A21 this fill keeps and makes per evaluation (indices and values, the
#: level of each entry, the scaled values)
A21_BYTES_PER_ENTRY = 24.0


def direct_plans(terms1: list[str], terms2: list[str], q2: int, entries: float, products: float,
                 largest: float) -> list[BlockPlan]:
    """The memory of block 2 formed from A21: A21 (``entries`` entries, with the per-evaluation
    copy of its values) and the dense block with a chunk's temporaries (``products``: the sum of
    ``k_l^2`` over the levels, or a bound; ``largest``: the most of one level; a chunk's product
    has at most q2^2 entries)."""
    chunk = min(max(min(CHUNK_PAIRS, products), largest), float(q2) * q2)
    return [BlockPlan("A21 (block 2 x block 1)", terms1 + terms2, "sparse", q2, A21_BYTES_PER_ENTRY * entries),
            BlockPlan("block 2", terms2, RankUpdateFill.formed, q2, 8.0 * q2 * q2 + CHUNK_BYTES_PER_PAIR * chunk)]


def chunk_bounds(k: np.ndarray, budget: int | None = None) -> list[tuple[int, int]]:
    """Consecutive ranges of levels whose products ``k_l^2`` sum to at most ``budget`` (default
    CHUNK_PAIRS; a level with more is a range of its own)."""
    budget = CHUNK_PAIRS if budget is None else budget
    ends = np.cumsum(np.asarray(k, dtype=np.int64) ** 2)
    bounds, start = [], 0
    while start < ends.size:
        before = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, before + budget, side="right")), start + 1)
        bounds.append((start, stop))
        start = stop
    return bounds


class RankUpdateFill(DenseFill):
    """Block 2 dense, formed each evaluation from A21 by the rank updates of block 1's levels
    (no cross map); factored and solved as ``DenseFill``."""

    kind = "dense"
    formed = "dense, formed from A21 each evaluation (no cross map)"

    def __init__(self, A22: sp.coo_matrix, A21: sp.spmatrix, q2: int):
        """``A22``: the lower triangle of Z2'WZ2 (COO, no duplicates); ``A21``: Z2'WZ1 (q2 x levels)."""
        self.q2, self.L = q2, None
        self.flat22 = A22.col.astype(np.int64) * q2 + A22.row  # Fortran order, lower triangle
        self.rows22, self.cols22, self.data22 = A22.row, A22.col, A22.data
        Bt = sp.csc_matrix(A21).T.tocsr()  # levels x q2: a level's entries are one row
        Bt.sum_duplicates()
        self.Bt = Bt
        k = np.diff(Bt.indptr)
        self.level = np.repeat(np.arange(k.size, dtype=np.int32), k)  # each entry's level
        self.chunks = chunk_bounds(k)

    def factor_updated(self, lam: np.ndarray, v: np.ndarray) -> float | None:
        """Form ``D A22 D + I - C C'`` (D = diag(lam), C = D A21 diag(sqrt(v))) in the dense lower
        triangle and factor it; returns the log-determinant (None if not positive definite)."""
        q2 = self.q2
        self.L = None  # the last factor is freed before the next is made
        S = np.zeros((q2, q2), order="F")
        flat = S.ravel(order="K")  # a view (S is Fortran-contiguous): flat[col * q2 + row]
        flat[self.flat22] = self.data22 * lam[self.rows22] * lam[self.cols22]
        Bt = self.Bt
        data = Bt.data * np.sqrt(v)[self.level] * lam[Bt.indices]
        for a, b in self.chunks:
            _subtract_pairs(flat, q2, _rows(Bt, data, a, b))
        flat[:: q2 + 1] += 1.0
        return self.factor_formed(S)


def _rows(Bt: sp.csr_matrix, data: np.ndarray, a: int, b: int) -> sp.csr_matrix:
    """Rows a..b-1 of Bt with the values ``data`` (no copy of the indices)."""
    p0, p1 = Bt.indptr[a], Bt.indptr[b]
    return sp.csr_matrix((data[p0:p1], Bt.indices[p0:p1], Bt.indptr[a : b + 1] - p0), shape=(b - a, Bt.shape[1]))


def _subtract_pairs(flat: np.ndarray, q2: int, C: sp.csr_matrix) -> None:
    """``flat`` (a q2 x q2 array in Fortran order) minus the lower triangle of ``C' C``. The
    product is symmetric, so its row i is column i: the entries with j >= i of row i are added
    into column i of the lower triangle (contiguous in memory)."""
    P = (C.T.tocsr() @ C).tocsr()
    i = np.repeat(np.arange(q2, dtype=np.int64), np.diff(P.indptr))
    keep = P.indices >= i
    flat[i[keep] * q2 + P.indices[keep]] -= P.data[keep]
