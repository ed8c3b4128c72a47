"""Block 2 of the blocked factor formed without a cross map (MixedModels.jl's way): each
evaluation, its Schur complement is made dense straight from the sparse ``A21`` (block 2 x
block 1) and factored by LAPACK.

For a scalar block 1 (``V`` diagonal: one ``v_l >= 0`` per level) and a diagonal ``Lambda2``
(block 2's terms all scalar), with ``D = Lambda2``:

    S22 = D (A22 - A21 V A12) D + I = D A22 D + I - C C',   C = D A21 diag(sqrt(v))

``C C'`` is the sum over block 1's levels of the rank-k_l updates of the k_l block-2 effects a
level meets (for users x items, the items a user rated). It is computed by tiles of the dense
lower triangle: for block-2 ranges I >= J of ``TILE`` effects, scipy's sparse product
``C_I C_J'`` (the products ``k_lI k_lJ`` of each level's entries in I and J, summed per pair of
effects by the product) is made dense and subtracted from the tile. So an evaluation costs about
``sum_l k_l^2 / 2`` multiply-adds and one pass over the dense triangle, and the memory beyond the
dense block and ``A21`` is one tile's product. Where the cross map (pylme.objectives.blocked.CrossMap:
one entry per pair met within a group of levels) would not fit in memory, this needs only the
dense block and ``A21``; each evaluation then adds the products above to the dense factorisation
of order q2.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .memory import BlockPlan
from .tiled import DenseFill

#: block-2 effects per tile of the dense triangle (a tile's product and its dense copy: at most
#: 20 TILE^2 bytes)
TILE = 2048
#: bytes per entry of A21 this fill keeps and makes per evaluation (indices and values, each
#: entry's block-2 effect, the scaled values, their transposed tiles)
A21_BYTES_PER_ENTRY = 40.0


def direct_plans(terms1: list[str], terms2: list[str], q2: int, entries: float) -> list[BlockPlan]:
    """The memory of block 2 formed from A21 (``entries`` entries): A21 with its per-evaluation
    copies, and the dense block with one tile's product."""
    tile = float(min(TILE, q2)) ** 2
    return [BlockPlan("A21 (block 2 x block 1)", terms1 + terms2, "sparse", q2, A21_BYTES_PER_ENTRY * entries),
            BlockPlan("block 2", terms2, RankUpdateFill.formed, q2, 8.0 * q2 * q2 + 20.0 * tile)]


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
        C = sp.csr_matrix(A21)  # a block-2 effect's entries are one row; an entry's column is its level
        C.sum_duplicates()
        self.C = C
        self.effect = np.repeat(np.arange(q2, dtype=np.int32), np.diff(C.indptr))
        self.tiles = [(a, min(a + TILE, q2)) for a in range(0, q2, TILE)]

    def factor_updated(self, lam: np.ndarray, v: np.ndarray) -> float | None:
        """Form ``D A22 D + I - C C'`` (D = diag(lam), C = D A21 diag(sqrt(v))) in the dense lower
        triangle and factor it; returns the log-determinant (None if not positive definite)."""
        q2 = self.q2
        self.L = None  # the last factor is freed before the next is made
        S = np.zeros((q2, q2), order="F")
        flat = S.ravel(order="K")  # a view (S is Fortran-contiguous): flat[col * q2 + row]
        flat[self.flat22] = self.data22 * lam[self.rows22] * lam[self.cols22]
        C = self.C
        scaled = sp.csr_matrix((C.data * np.sqrt(v)[C.indices] * lam[self.effect], C.indices, C.indptr), shape=C.shape)
        rows = [scaled[a:b] for a, b in self.tiles]
        for j, (a, b) in enumerate(self.tiles):
            cols = rows[j].T.tocsr()  # levels x tile J
            for i in range(j, len(self.tiles)):
                c, d = self.tiles[i]
                block = (rows[i] @ cols).toarray()
                S[c:d, a:b] -= np.tril(block) if i == j else block
        flat[:: q2 + 1] += 1.0
        return self.factor_formed(S)
