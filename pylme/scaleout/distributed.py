"""One linear mixed model fitted from a partitioned data set (a dask DataFrame): the rows stay
in the partitions, only sufficient statistics travel.

Two passes over the partitions, then the fit on the client:

1. ``scan`` (pylme.scaleout.daskframe): the model frame of all partitions together (missing rows,
   factor levels in R's order, column types), named errors for bad partitions.
2. ``PartitionModel.stats``: per partition, the blocked objective's cross-products
   (pylme.objectives.blocked): block 1's per-level Gram blocks, ``Z2'WZ1``, ``Z2'WZ2``, ``[X y]`` against
   both blocks and itself, with the pieces of lme4's checks (X's R factor for the rank, column
   sums for the scales, per-level sums for the start); summed over partitions by a tree of
   dask tasks. Every piece is sparse in the levels a partition holds.
3. ``DistributedObjective``: the blocked objective of those statistics, optimised by the same fit
   driver as an in-memory fit; at the optimum one more pass computes the residuals explicitly
   (lme4's wrss). Fitted values and residuals are lazy dask Series, partition by partition, and
   the summary's scaled-residual quantiles are exact order statistics found in two passes.

What reaches the client: arrays of the size of the random effects (block 1's levels, ``[X y]``
x block 1), block 2's pattern and ``Z2'WZ1``, whose entries are the distinct (block-1 level,
block-2 level) pairs: independent of n for nested designs and for crossed ones with few pairs
per level (see README "Data larger than memory").
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scipy.linalg import blas, lapack

from ..description.factors import Factor
from ..description.formula import ParsedFormula, expand_dot, expand_terms, parse_mixed
from ..description.model_matrix import DesignSpec, design, dqrdc2_rank, numeric_vector
from ..description.reterms import ReTerm, ReTrms, _lambdat_template, stacked_Zt
from ..errors import DataError, ModelError
from ..fitted.model import LmerMod
from ..fitting.driver import LmerControl, fit_lmer
from ..objectives.blocked import (BlockedObjective, BlockPlan, GramBlocks, _check_memory, _Factor, block_split, first_plans,
                                  fits, memory_limit_of)
from ..objectives.rankupdate import direct_plans
from ..objectives.tiled import DENSE_TILE, inverse_by_solves
from ..objectives.lformula import check_nlevels, check_zdims
from ..objectives.objective import PLSState
from ..objectives.response import LmerResp
from .daskframe import (FrameScan, LevelIndex, ScanPlan, combine_scans, complete_rows, grouping_levels,
                        scan_partition, scan_plan, stateful_calls)
from .partitions import add, exact_quantiles, over_partitions
from .states import learn_states


# ---------------------------------------------------------------- per-partition statistics
@dataclass
class PartStats:
    """Sums over rows of one partition (or several): what the fit needs from the data."""

    n: int
    A11: sp.csr_matrix  # (nl1, nc1^2)
    A21: sp.csr_matrix  # (q2, q1)
    A22: sp.csr_matrix  # (q2, q2), lower triangle
    A1XY: sp.csr_matrix  # (q1, pall + 1)
    A2XY: sp.csr_matrix  # (q2, pall + 1)
    AXY: np.ndarray  # (pall + 1, pall + 1)
    R: np.ndarray  # X's R factor (unweighted)
    xsum: np.ndarray
    xsq: np.ndarray
    x01: np.ndarray  # columns of zeros and ones only
    ldW: float
    bad_weights: tuple[int, int]  # negative, zero
    level_sums: list  # per grouping factor: (sums of y, counts) per level, sparse
    ysum: float
    ysq: float

    def __add__(self, other: "PartStats | None") -> "PartStats":
        if other is None:
            return self
        R = np.linalg.qr(np.vstack([self.R, other.R]), mode="r")
        return PartStats(
            self.n + other.n, self.A11 + other.A11, self.A21 + other.A21, self.A22 + other.A22,
            self.A1XY + other.A1XY, self.A2XY + other.A2XY, self.AXY + other.AXY, R, self.xsum + other.xsum,
            self.xsq + other.xsq, self.x01 & other.x01, self.ldW + other.ldW,
            (self.bad_weights[0] + other.bad_weights[0], self.bad_weights[1] + other.bad_weights[1]),
            [(a + c, b + d) for (a, b), (c, d) in zip(self.level_sums, other.level_sums)],
            self.ysum + other.ysum, self.ysq + other.ysq,
        )

    __radd__ = __add__

    def variances(self) -> tuple[np.ndarray, float]:
        """For lme4's start: the variance of each grouping factor's level means (over rows) and
        of y, from the per-level sums."""
        n, ybar = self.n, self.ysum / self.n
        v = []
        for sums, counts in self.level_sums:
            sm, c = sums.toarray().ravel(), counts.toarray().ravel()
            used = c > 0
            v.append(float(np.sum(c[used] * (sm[used] / c[used] - ybar) ** 2)) / (n - 1))
        return np.array(v), (self.ysq - n * ybar * ybar) / (n - 1)


def add_stats(a: PartStats | None, b: PartStats | None = None) -> PartStats | None:
    """The sum of two partitions' statistics (an empty partition gives None)."""
    if a is None:
        return b
    return a + b


@dataclass
class TermInfo:
    """A random-effects term on all partitions, as a partition codes it: its bar, the index of its
    grouping factor's levels and its lhs coding (the level labels stay on the client)."""

    bar: object
    index: LevelIndex
    spec: DesignSpec

    @property
    def nc(self) -> int:
        return len(self.spec.column_names)

    @property
    def nl(self) -> int:
        return self.index.nlevels


@dataclass(frozen=True)
class _Codes:
    """A partition's codes of a grouping factor (what stacked_Zt and the level sums read)."""

    codes: np.ndarray
    nlevels: int


@dataclass
class PartitionModel:
    """What a partition needs to compute its statistics and its residuals (sent to the workers)."""

    pf: ParsedFormula
    plan: ScanPlan
    X_spec: DesignSpec
    terms: list[TermInfo]  # in lme4's order
    groups: list  # per grouping factor (flist order): the index of its first term
    k1: int
    keep: list[int] = field(default_factory=list)  # X's kept columns (after the rank check)
    states: dict = field(default_factory=dict)  # what scale() learned from all partitions

    # -------------------------------------------------------- the rows of one partition
    def frame(self, part: pd.DataFrame):
        """The complete-case rows of a partition with y, X (all columns), the offset and the
        weights' square roots (None: unweighted), and the terms' global codes and lhs columns;
        None when the partition has no complete rows."""
        complete, w, off = complete_rows(part, self.plan)
        if not complete.any():
            return None
        frame = part.loc[complete, self.plan.columns]
        y = numeric_vector(frame, self.pf.response_label, self.pf.response)
        X = self.X_spec.matrix(frame)
        offsets = [numeric_vector(frame, v.label, v.node, what="offset", states=self.states)
                   for v in self.X_spec.terms.offsets]
        if off is not None:
            offsets.append(off[complete])
        offset = np.sum(offsets, axis=0) if offsets else np.zeros(len(frame))
        sqrtw = None if w is None else np.sqrt(w[complete])
        terms = [ReTerm(t.bar, _Codes(t.index.codes(frame), t.nl), t.spec, t.spec.matrix(frame)) for t in self.terms]
        return frame, y, X, offset, sqrtw, terms

    def named_frame(self, part: pd.DataFrame, index: int):
        """``frame``, its errors naming the partition (``index``)."""
        try:
            return self.frame(part)
        except (DataError, ModelError) as exc:
            raise type(exc)(f"partition {index}: {exc}") from exc

    def stats(self, part: pd.DataFrame, index: int) -> PartStats | None:
        """The statistics of one partition (None when it has no complete rows)."""
        rows = self.named_frame(part, index)
        if rows is None:
            return None
        frame, y, X, offset, sqrtw, terms = rows
        n = len(y)
        w = np.ones(n) if sqrtw is None else sqrtw
        Zt = stacked_Zt(terms).tocsc()
        Zt.data *= np.repeat(w, np.diff(Zt.indptr))
        Zt = Zt.tocsr()
        k1, idx1, idx2 = block_split(_Sizes(self.terms))
        Z1t, Z2t = Zt[idx1], Zt[idx2]
        XY = np.column_stack([X, y - offset]) * w[:, None]
        t1 = self.terms[k1]
        return PartStats(
            n=n, A11=_level_blocks(Z1t, t1.nl, t1.nc), A21=(Z2t @ Z1t.T).tocsr(),
            A22=sp.tril(Z2t @ Z2t.T).tocsr(), A1XY=_sparse_rows(Z1t, XY), A2XY=_sparse_rows(Z2t, XY),
            AXY=XY.T @ XY, R=np.linalg.qr(X, mode="r"), xsum=X.sum(axis=0), xsq=(X * X).sum(axis=0),
            x01=np.all((X == 0.0) | (X == 1.0), axis=0), ldW=float(2.0 * np.sum(np.log(w))) if sqrtw is not None else 0.0,
            bad_weights=(0, 0) if sqrtw is None else _bad_weights(part, self.plan),
            level_sums=[_level_sums(terms[k].factor, y) for k in self.groups], ysum=float(y.sum()),
            ysq=float(y @ y),
        )

    def _blocks(self, frame_rows):
        """Z1t, Z2t (unweighted) and [X y - offset] of a partition's rows."""
        frame, y, X, offset, sqrtw, terms = frame_rows
        Zt = stacked_Zt(terms).tocsr()
        _, idx1, idx2 = block_split(_Sizes(self.terms))
        return Zt[idx1], Zt[idx2], np.column_stack([X, y - offset])

    def grouped_stats(self, part: pd.DataFrame, index: int, shift: float, cross: bool = True) -> "GroupStats | None":
        """The statistics of a partition holding whole levels of block 1 (a scalar intercept term,
        no weights), summed per group of levels with equal row counts: per group its number of
        levels, ``C = sum A31_l A13_l``, ``D = sum A31_l A12_l`` and ``H = sum A21_l A12_l``
        (lower triangle); ``shift``: subtracted from y in the sums for the start (precision).
        Without ``cross`` (block 2 formed from A21 on the client: pylme.objectives.rankupdate) no
        ``H``, but A21 itself and the levels' row counts."""
        rows = self.named_frame(part, index)
        if rows is None:
            return None
        frame, y, X, offset, sqrtw, terms = rows
        Z1t, Z2t, XY = self._blocks(rows)
        count = np.diff(Z1t.indptr)
        levels = np.flatnonzero(count)
        A31 = Z1t[levels] @ XY  # (levels here, m)
        A21 = (Z2t @ Z1t[levels].T).tocsc()
        groups = {}
        for value in np.unique(count[levels]):
            sel = np.flatnonzero(count[levels] == value)
            A, B = A31[sel], A21[:, sel]
            groups[float(value)] = [sel.size, A.T @ A, np.asarray(B @ A).T] + ([sp.tril(B @ B.T).tocsr()] if cross else [])
        ys = y - shift
        sums1 = Z1t[levels] @ ys
        return GroupStats(
            n=len(y), groups=groups, A22=sp.tril(Z2t @ Z2t.T).tocsr(), A2XY=_sparse_rows(Z2t, XY), AXY=XY.T @ XY,
            R=np.linalg.qr(X, mode="r"), xsum=X.sum(axis=0), xsq=(X * X).sum(axis=0),
            x01=np.all((X == 0.0) | (X == 1.0), axis=0),
            level_sums=[_level_sums(terms[k].factor, ys) if k != self.k1 else None for k in self.groups],
            ssq1=float(np.sum(sums1 * sums1 / count[levels])), ysum=float(ys.sum()), ysq=float(ys @ ys),
            A21=None if cross else (Z2t @ Z1t.T).tocsr(),
            counts1=None if cross else sp.csr_matrix((count[levels].astype(float), (np.zeros(levels.size, int), levels)),
                                                     shape=(1, count.size)),
        )

    def grouped_pairs(self, part: pd.DataFrame, index: int) -> dict | None:
        """Before ``grouped_stats``: per group of block-1 levels with equal row counts (whole levels
        here), its number of levels, the entries its sum of ``A21_l A12_l`` (lower triangle) can
        hold at most: ``k (k + 1) / 2`` for a level whose rows meet k random effects of block 2, and
        its levels' entries of A21 (the k: block 2 formed from A21 instead holds those)."""
        rows = self.named_frame(part, index)
        if rows is None:
            return None
        Z1t, Z2t, _ = self._blocks(rows)
        count = np.diff(Z1t.indptr)
        levels = np.flatnonzero(count)
        k = np.diff((Z2t @ Z1t[levels].T).tocsc().indptr).astype(np.int64)
        keys, inverse = np.unique(count[levels], return_inverse=True)
        sizes, pairs = np.bincount(inverse), np.bincount(inverse, weights=k * (k + 1) // 2)
        entries = np.bincount(inverse, weights=k)
        return {float(c): np.array([m, e, a]) for c, m, e, a in zip(keys, sizes, pairs, entries)}

    def block1_modes(self, part: pd.DataFrame, index: int, beta: np.ndarray, c2: np.ndarray,
                     lam: float) -> tuple[np.ndarray, np.ndarray]:
        """Block 1's spherical modes for the whole levels of a partition:
        ``u_l = lam r_l / (lam^2 n_l + 1)``, ``r = Z1'(y - offset - X beta - Z2 c2)``, c2 = Lambda2 u2."""
        rows = self.frame(part)
        if rows is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        Z1t, Z2t, XY = self._blocks(rows)
        r = Z1t @ (XY[:, -1] - XY[:, self.keep] @ beta - Z2t.T @ c2)
        count = np.diff(Z1t.indptr)
        levels = np.flatnonzero(count)
        return levels, lam * r[levels] / (lam * lam * count[levels] + 1.0)

    def block1_quad(self, part: pd.DataFrame, index: int, Q: np.ndarray,
                    chunk: int = 4_000_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the whole block-1 levels of a partition: the levels, their row counts and
        ``a_l' Q a_l`` with ``a_l = Z2' z1_l`` (the block-2 effects a level's rows meet), from the
        pairs of each level's entries, ``chunk`` pairs at a time."""
        rows = self.frame(part)
        if rows is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
        Z1t, Z2t, _ = self._blocks(rows)
        count = np.diff(Z1t.indptr)
        levels = np.flatnonzero(count)
        A = (Z2t @ Z1t[levels].T).tocsc()
        k = np.diff(A.indptr).astype(np.int64)
        npairs = k * k
        ends = np.cumsum(npairs)
        bounds = np.searchsorted(ends, np.arange(chunk, ends[-1] + chunk, chunk), side="right") if ends.size else []
        quad = np.zeros(levels.size)
        for a, b in zip(np.r_[0, bounds[:-1]].astype(int), np.asarray(bounds, dtype=int)):
            if b <= a:
                continue
            level = np.repeat(np.arange(a, b), npairs[a:b])
            off = np.arange(level.size) - np.repeat(ends[a:b] - npairs[a:b], npairs[a:b])
            es = A.indptr[level] + off // k[level]
            et = A.indptr[level] + off % k[level]
            quad[a:b] = np.bincount(level - a, weights=A.data[es] * A.data[et] * Q[A.indices[es], A.indices[et]],
                                    minlength=b - a)
        return levels, count[levels].astype(float), quad

    # -------------------------------------------------------- at the estimates
    def fitted(self, part: pd.DataFrame, beta: np.ndarray, b: np.ndarray) -> pd.DataFrame:
        """Per complete row: fitted value (with the offset), response, weights' square roots."""
        rows = self.frame(part)
        if rows is None:
            return pd.DataFrame({"fitted": np.zeros(0), "y": np.zeros(0), "sqrtw": np.zeros(0)}, index=part.index[:0])
        frame, y, X, offset, sqrtw, terms = rows
        eta = X[:, self.keep] @ beta + stacked_Zt(terms).T @ b + offset
        w = np.ones(len(y)) if sqrtw is None else sqrtw
        return pd.DataFrame({"fitted": eta, "y": y, "sqrtw": w}, index=frame.index)


class _Sizes:
    """The terms' sizes as ``block_split`` reads them from a ReTrms."""

    def __init__(self, terms: list[TermInfo]):
        self.terms = terms
        self.Gp = np.concatenate([[0], np.cumsum([t.nl * t.nc for t in terms])])


def _level_blocks(Z1t: sp.csr_matrix, nl: int, nc: int) -> sp.csr_matrix:
    """Block 1's level blocks Z1_l'WZ1_l as rows of nc^2 entries (levels absent here: empty rows)."""
    if nc == 1:
        return sp.csr_matrix(np.asarray(Z1t.multiply(Z1t).sum(axis=1)).reshape(nl, 1))
    G = (Z1t @ Z1t.T).tocoo()
    same = G.row // nc == G.col // nc
    r, c = G.row[same], G.col[same]
    return sp.csr_matrix((G.data[same], (r // nc, (r % nc) * nc + c % nc)), shape=(nl, nc * nc))


def _sparse_rows(Zt: sp.csr_matrix, XY: np.ndarray) -> sp.csr_matrix:
    """``Zt @ XY`` with only the rows of Zt that hold entries (a partition's levels)."""
    rows = np.flatnonzero(np.diff(Zt.indptr))
    dense = Zt[rows] @ XY
    m = XY.shape[1]
    return sp.csr_matrix((dense.ravel(), np.tile(np.arange(m), rows.size), _row_pointer(rows, Zt.shape[0], m)), shape=(Zt.shape[0], m))


def _row_pointer(rows: np.ndarray, nrows: int, m: int) -> np.ndarray:
    """The CSR row pointer of a matrix whose ``rows`` hold m entries each and the others none."""
    counts = np.zeros(nrows, dtype=np.int64)
    counts[rows] = m
    return np.concatenate([[0], np.cumsum(counts)])


def _level_sums(fac: _Codes, y: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per level of a grouping factor: the sum of y and the count (sparse rows)."""
    s = sp.csr_matrix((y, (np.zeros(y.size, int), fac.codes)), shape=(1, fac.nlevels))
    c = sp.csr_matrix((np.ones(y.size), (np.zeros(y.size, int), fac.codes)), shape=(1, fac.nlevels))
    return s, c


def _bad_weights(part: pd.DataFrame, plan: ScanPlan) -> tuple[int, int]:
    """Negative and zero prior weights among a partition's complete rows."""
    complete, w, _ = complete_rows(part, plan)
    w = w[complete]
    return int(np.sum(w < 0)), int(np.sum(w == 0))


@dataclass
class GroupStats:
    """Sums over rows of partitions holding whole levels of block 1, per group of its levels
    with equal row counts (see ``PartitionModel.grouped_stats``): independent of n and of the
    number of block-1 levels."""

    n: int
    groups: dict  # row count -> [levels, C (m, m), D (m, q2), H (q2, q2) lower]
    A22: sp.csr_matrix
    A2XY: sp.csr_matrix
    AXY: np.ndarray
    R: np.ndarray
    xsum: np.ndarray
    xsq: np.ndarray
    x01: np.ndarray
    level_sums: list  # per grouping factor (None for block 1's, whose levels are whole here)
    ssq1: float  # sum over block 1's levels of (sum of shifted y)^2 / count
    ysum: float  # of the shifted y
    ysq: float
    ldW: float = 0.0
    bad_weights: tuple[int, int] = (0, 0)
    A21: sp.csr_matrix | None = None  # Z2'Z1 (q2 x block-1 levels), where block 2 is formed from it
    counts1: sp.csr_matrix | None = None  # then also block 1's row counts (1 x levels)

    def __add__(self, other: "GroupStats | None") -> "GroupStats":
        if other is None:
            return self
        groups = {k: list(v) for k, v in self.groups.items()}
        for k, v in other.groups.items():
            groups[k] = [a + b for a, b in zip(groups[k], v)] if k in groups else list(v)
        return GroupStats(
            self.n + other.n, groups, self.A22 + other.A22, self.A2XY + other.A2XY, self.AXY + other.AXY,
            np.linalg.qr(np.vstack([self.R, other.R]), mode="r"), self.xsum + other.xsum, self.xsq + other.xsq,
            self.x01 & other.x01,
            [None if a is None else (a[0] + b[0], a[1] + b[1]) for a, b in zip(self.level_sums, other.level_sums)],
            self.ssq1 + other.ssq1, self.ysum + other.ysum, self.ysq + other.ysq,
            A21=None if self.A21 is None else self.A21 + other.A21,
            counts1=None if self.counts1 is None else self.counts1 + other.counts1,
        )

    def variances(self) -> tuple[np.ndarray, float]:
        """As ``PartStats.variances``, block 1's from its levels' sums of squares."""
        n, ybar = self.n, self.ysum / self.n
        v = []
        for sums in self.level_sums:
            if sums is None:
                v.append((self.ssq1 - n * ybar * ybar) / (n - 1))
                continue
            sm, c = sums[0].toarray().ravel(), sums[1].toarray().ravel()
            used = c > 0
            v.append(float(np.sum(c[used] * (sm[used] / c[used] - ybar) ** 2)) / (n - 1))
        return np.array(v), (self.ysq - n * ybar * ybar) / (n - 1)


def _grouped_task(part: pd.DataFrame, index: int, model: PartitionModel, shift: float,
                  cross: bool = True) -> GroupStats | None:
    return model.grouped_stats(part, index, shift, cross)


def _pairs_task(part: pd.DataFrame, index: int, model: PartitionModel) -> dict | None:
    return model.grouped_pairs(part, index)


def _add_groups(a: dict | None, b: dict | None = None) -> dict | None:
    """The sum of two partitions' ``grouped_pairs`` (per row count: levels, pairs, entries)."""
    if a is None or b is None:
        return a if b is None else b
    out = dict(a)
    for key, value in b.items():
        out[key] = out[key] + value if key in out else value
    return out


def grouped_plans(terms1: list[str], terms2: list[str], q1: int, ngroups: int, m3: int, q2: int,
                  pairs: float | None = None) -> list[BlockPlan]:
    """The memory of the blocked factor from statistics per group of block-1 levels: block 1's
    per-group cross-products with ``[X y]`` and block 2, the ``[X y]`` block and, with ``pairs``
    (the entries of the groups' sums of ``A21_l A12_l``, or a bound), the cross map they make."""
    plan = [BlockPlan("block 1", terms1, GroupedFirstBlock.kind, q1, 8.0 * ngroups * m3 * (m3 + q2)),
            BlockPlan("[X y]", ["X", "y"], "dense [X y]", m3, 3.0 * m3 * (q2 + m3) * 8)]
    if pairs is not None:
        plan.append(BlockPlan("cross map A21 V A12", terms1 + terms2, f"sparse map, at most {pairs:,.0f} entries",
                              q2, 40.0 * pairs))
    return plan


def _quad_task(part: pd.DataFrame, index: int, model: PartitionModel, Q: np.ndarray):
    return model.block1_quad(part, index, Q)


def _modes_task(part: pd.DataFrame, index: int, model: PartitionModel, beta, c2, lam: float):
    return model.block1_modes(part, index, beta, c2, lam)


def _stats_task(part: pd.DataFrame, index: int, model: PartitionModel) -> PartStats | None:
    return model.stats(part, index)


def _scan_task(part: pd.DataFrame, index: int, plan: ScanPlan):
    return scan_partition(part, index, plan)


def _fitted_task(part: pd.DataFrame, index: int, model: PartitionModel, beta, b) -> pd.DataFrame:
    return model.fitted(part, beta, b)


# ---------------------------------------------------------------- the model's structure from the scan
def reterms_from_scan(pf: ParsedFormula, scan: FrameScan, states: dict) -> tuple[list[TermInfo], ReTrms]:
    """The random-effects terms over all partitions, in lme4's order, and a ReTrms of their
    structure (levels, Lambda's pattern and map; its Zt has no columns: the rows are elsewhere);
    ``states``: what scale() learned from all partitions."""
    infos, factors = [], []
    for bar in pf.bars:
        levels, index = grouping_levels(bar, scan)
        if levels.nlevels == 0:
            raise DataError(f"Invalid grouping factor specification, {bar.group}")
        spec, Xi = design(expand_terms(bar.lhs), scan.prototype, states)
        if Xi.shape[1] == 0:
            raise ModelError(f"random-effects term ({bar.label}) has no columns")
        infos.append(TermInfo(bar, index, spec))
        factors.append(levels)
    nl = [t.nl for t in infos]
    order = list(range(len(nl)))
    if any(b > a for a, b in zip(nl, nl[1:])):
        order = list(reversed(sorted(range(len(nl)), key=nl.__getitem__)))
    infos, factors = [infos[i] for i in order], [factors[i] for i in order]
    terms = [ReTerm(t.bar, f, t.spec, np.zeros((0, t.nc))) for t, f in zip(infos, factors)]
    Lambdat, Lind, lower = _lambdat_template(terms)
    theta0 = np.where(np.isfinite(lower), 1.0, 0.0)
    flist: dict[str, Factor] = {}
    for t in terms:
        flist.setdefault(t.group, t.factor)
    asgn = [list(flist).index(t.group) for t in terms]
    Lambdat.data = theta0[Lind]
    q = int(sum(t.nl * t.nc for t in terms))
    return infos, ReTrms(terms, sp.csc_matrix((q, 0)), Lambdat, Lind, theta0, lower, flist, asgn)


# ---------------------------------------------------------------- the objective from statistics
@dataclass
class StatsDesign:
    """A design known by its structure and sizes (its rows are in the partitions)."""

    reTrms: ReTrms
    n: int
    p: int

    @property
    def lam(self):
        return self.reTrms.lam

    @property
    def q(self) -> int:
        return int(self.reTrms.Gp[-1])

    @property
    def lower(self) -> np.ndarray:
        return self.reTrms.lower


@dataclass
class StatsResp:
    """A Gaussian response known by its size, sum of log weights and criterion."""

    n: int
    ldW: float
    REML: bool = True
    weighted: bool = False

    deviance = LmerResp.deviance
    criterion = LmerResp.criterion
    with_REML = LmerResp.with_REML


class DistributedObjective(BlockedObjective):
    """The blocked objective of statistics reduced over partitions; the residuals at the
    optimum come from one more pass over the partitions (``residual_pass``)."""

    def __init__(self, design: StatsDesign, resp: StatsResp, blocks: GramBlocks, residual_pass,
                 start: np.ndarray | None = None, fill: str = "auto", memory_limit: float | None = None):
        super().__init__(design, resp, start, fill, memory_limit, blocks)
        self.residual_pass = residual_pass

    def with_response(self, resp):
        raise ModelError("a fit from a dask DataFrame has no in-memory response to replace (refit, the bootstrap "
                         "and profiles need the rows in memory)")

    def pls_state(self, theta: np.ndarray) -> PLSState:
        """The PLS solution at theta from the blocked factor; wrss from explicit residuals, summed
        over the partitions as lme4 computes it from the rows."""
        theta = np.array(theta, dtype=float)
        f = self._factor(theta)
        if f is None:
            raise ModelError("the blocked factor is not positive definite at theta")
        p = self.p
        RX, beta, u, RZX1 = self.modes(theta, f)
        b = self.design.lam.Lambdat(theta).T @ u
        ldRX2 = 2.0 * float(np.sum(np.log(np.diag(RX)))) if p else 0.0
        return PLSState(theta=theta, beta=beta, u=u, b=b, eta=None, wrss=self.residual_pass(beta, b),
                        ussq=float(u @ u), ldL2=f.ld1 + f.ld2, ldRX2=ldRX2, RX=RX,
                        RZX=np.vstack([RZX1, f.L32t[:, :p]]))

    def cond_var_blocks(self, theta: np.ndarray, columns: list[np.ndarray], chunk: int = 2048) -> np.ndarray:
        """Blocks of ``Lambda P^-1 Lambda'`` (P = Lambda'Z'WZLambda + I) from the blocked factor:
        with M1 block 1's level blocks, B = Lambda2'A21 Lambda1 and S block 2's Schur complement,
        ``P^-1 = [M1^-1, 0; 0, 0] + G' S^-1 G`` with ``G = [-B M1^-1, I]``."""
        theta = np.asarray(theta, dtype=float)
        f = self._factor(theta)
        if f is None:
            raise ModelError("the blocked factor is not positive definite at theta")
        idx = np.asarray(columns)
        nlev, k = idx.shape
        q = self.design.q
        where = np.full(q, -1)
        where[self.idx1] = np.arange(self.idx1.size)  # position in block 1
        pos2 = np.full(q, -1)
        pos2[self.idx2] = np.arange(self.q2)
        nc1 = self.block1.nc
        Lt = self.design.lam.Lambdat(theta).tocsc()
        if (where[idx] >= 0).any():
            Lam1, Minv = self.block1.inverses(theta)
            if self.q2:
                B = (self.lam2.Lambdat(theta) @ self.A21r) @ sp.kron(sp.identity(self.block1.nl), sp.csr_matrix(Lam1))
                G1 = -(B @ sp.block_diag(list(Minv), format="csc")).tocsc()
        out = np.empty((nlev, k, k))
        per = max(1, chunk // max(k, 1))
        for start in range(0, nlev, per):
            block = idx[start : start + per]
            cols = block.ravel()
            # M1^-1 part, on block-1 columns of the same level
            m1 = np.zeros((len(block), k, k))
            w1 = where[block]
            for a in range(k):
                for c in range(k):
                    ok = (w1[:, a] >= 0) & (w1[:, c] >= 0) & (w1[:, a] // nc1 == w1[:, c] // nc1)
                    if ok.any():
                        m1[ok, a, c] = Minv[w1[ok, a] // nc1, w1[ok, a] % nc1, w1[ok, c] % nc1]
            if self.q2:
                G = np.zeros((self.q2, cols.size))
                in1 = where[cols] >= 0
                if in1.any():
                    G[:, in1] = G1[:, where[cols[in1]]].toarray()
                in2 = np.flatnonzero(pos2[cols] >= 0)
                G[pos2[cols[in2]], in2] = 1.0
                Y = self.fill.solve_L(G).reshape(self.q2, len(block), k)
                m1 = m1 + np.einsum("qli,qlj->lij", Y, Y)
            lam_blocks = np.stack([Lt[block[i]][:, block[i]].toarray().T for i in range(len(block))])
            out[start : start + len(block)] = lam_blocks @ m1 @ np.swapaxes(lam_blocks, 1, 2)
        return out


class GroupedFirstBlock:
    """Block 1 as groups of levels with equal row counts (a scalar intercept term, no weights):
    its level blocks are the counts, so ``V_l`` is one number per group."""

    nc = 1
    kind = "diagonal, levels grouped by count"

    def __init__(self, counts: np.ndarray, sizes: np.ndarray, lam, k: int):
        self.counts, self.sizes, self.lam, self.k = counts, sizes, lam, k
        self.rep = np.arange(counts.size)  # each group is its own representative

    level_group: np.ndarray | None = None  # each level's group, where block 2 is formed from A21

    def level_values(self, V: np.ndarray) -> np.ndarray:
        """V_l per level from V per group."""
        return V[self.level_group, 0, 0]

    def factor(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """2 sum log diag L11 over all levels, and V per group (groups, 1, 1)."""
        lam2 = self.lam.block(theta, self.k)[0, 0] ** 2
        d = lam2 * self.counts + 1.0
        return float(self.sizes @ np.log(d)), (lam2 / d)[:, None, None]


class GroupedObjective(DistributedObjective):
    """The blocked objective from statistics summed per group of block-1 levels (``GroupStats``):
    ``S33 = A33 - sum_g v_g C_g``, ``S32 = A32 - sum_g v_g D_g``, ``H = A22 - sum_g v_g H_g``;
    what the client holds is independent of n and of block 1's number of levels. Block 1's
    modes at the optimum come from one more pass over the partitions (``level_pass``)."""

    def __init__(self, design: StatsDesign, resp: StatsResp, stats: GroupStats, keep: list[int], residual_pass,
                 level_pass, quad_pass, start: np.ndarray | None = None, fill: str = "auto",
                 memory_limit: float | None = None):
        """``quad_pass(Q)``: block 1's levels, row counts and ``a_l' Q a_l`` from a pass over the
        partitions (the conditional variances)."""
        self._setup_terms(design, resp, start)
        self.quad_pass, self.memory_limit = quad_pass, memory_limit
        rows = keep + [stats.AXY.shape[0] - 1]
        keys = sorted(stats.groups)
        groups = [stats.groups[k] for k in keys]
        self.block1 = GroupedFirstBlock(np.array(keys), np.array([g[0] for g in groups], dtype=float),
                                        design.lam, self.k1)
        self.C = np.stack([g[1][np.ix_(rows, rows)] for g in groups])
        self.D = np.stack([g[2][rows] for g in groups]) if self.q2 else np.zeros((len(groups), len(rows), 0))
        self.A32 = np.ascontiguousarray(stats.A2XY[:, rows].toarray().T)
        self.A33 = stats.AXY[np.ix_(rows, rows)].copy()
        self.residual_pass, self.level_pass = residual_pass, level_pass
        m3 = self.m3
        self.plan = grouped_plans(self.terms1, [], self.idx1.size, len(groups), m3, self.q2)
        limit = memory_limit_of(memory_limit)
        _check_memory(self.plan, limit)
        if self.q2 and stats.A21 is not None:  # no cross map: block 2 formed from A21 each evaluation
            counts = stats.counts1.toarray().ravel()
            self.block1.level_group = np.minimum(np.searchsorted(np.array(keys), counts), len(keys) - 1)
            self._setup_direct(_canonical_coo(stats.A22), stats.A21, 1, limit)
        elif self.q2:
            self._setup_fill(_canonical_coo(stats.A22), 1, fill, limit, [_canonical_coo(g[3]) for g in groups])

    @property
    def has_gradient(self) -> bool:
        return False

    def _factor(self, theta: np.ndarray):
        ld1, V = self.block1.factor(theta)
        v = V[:, 0, 0]
        S33 = self.A33 - np.tensordot(v, self.C, 1)
        ld2, L32t = 0.0, np.zeros((0, self.m3))
        if self.q2:
            ld2, L32t = self._fill(theta, V, self.A32 - np.tensordot(v, self.D, 1))
            if ld2 is None:
                return None
            S33 -= blas.dgemm(1.0, L32t, L32t, trans_a=1)
        L33, info = lapack.dpotrf(S33, lower=1, clean=1)
        if info != 0:
            return None
        return _Factor(ld1, ld2, L32t, L33)

    def pls_state(self, theta: np.ndarray) -> PLSState:
        """beta and block 2's modes from the factor, block 1's from a pass over the partitions;
        RZX's block-1 rows are not formed (``getME("RZX")`` is refused)."""
        theta = np.array(theta, dtype=float)
        f = self._factor(theta)
        if f is None:
            raise ModelError("the blocked factor is not positive definite at theta")
        p = self.p
        RX = f.L33[:p, :p].T.copy()
        beta = lapack.dtrtrs(RX, f.L33[p, :p].copy(), lower=0)[0] if p else np.zeros(0)
        u = np.zeros(self.design.q)
        c2 = np.zeros(self.q2)
        if self.q2:
            u[self.idx2] = u2 = self.fill.solve_Lt(f.L32t @ np.r_[-beta, 1.0])
            c2 = self.lam2.Lambdat(theta).T @ u2
        u[self.idx1] = self.level_pass(beta, c2, float(self.design.lam.block(theta, self.k1)[0, 0]))
        b = self.design.lam.Lambdat(theta).T @ u
        return PLSState(theta=theta, beta=beta, u=u, b=b, eta=None, wrss=self.residual_pass(beta, b),
                        ussq=float(u @ u), ldL2=f.ld1 + f.ld2,
                        ldRX2=2.0 * float(np.sum(np.log(np.diag(RX)))) if p else 0.0, RX=RX,
                        RZX=np.zeros((0, p)))

    def cond_var_blocks(self, theta: np.ndarray, columns: list[np.ndarray], chunk: int = 2048) -> np.ndarray:
        """Block 2's from the factor (as DistributedObjective); block 1's (a scalar term) from
        ``P^-1``'s diagonal: with ``m_l = lam1^2 n_l + 1``, ``Q = Lambda2 S^-1 Lambda2'`` (S block 2's
        Schur complement) and ``a_l = Z2' z1_l`` (on the workers),
        ``(P^-1)_ll = 1 / m_l + lam1^2 a_l' Q a_l / m_l^2``, times ``lam1^2``."""
        idx = np.asarray(columns)
        in1 = np.isin(idx, self.idx1)
        if not in1.any():
            return super().cond_var_blocks(theta, columns, chunk)
        if not in1.all():
            raise ModelError(f"the grouping factor of {self.terms1[0]} has other terms too: the conditional "
                             "covariances between them are not computed from per-group statistics; use "
                             "ranef(condVar=False)")
        theta = np.asarray(theta, dtype=float)
        lam1 = float(self.design.lam.block(theta, self.k1)[0, 0])
        levels, counts, quad = self.quad_pass(self._block2_inverse(theta))
        m = np.zeros(self.idx1.size)
        q = np.zeros(self.idx1.size)
        m[levels], q[levels] = lam1 * lam1 * counts + 1.0, quad
        var = lam1 * lam1 * (1.0 / m + lam1 * lam1 * q / (m * m))
        return var[idx[:, 0] - self.idx1[0]][:, None, None]

    def _block2_inverse(self, theta: np.ndarray) -> np.ndarray:
        """``Q = Lambda2 S^-1 Lambda2'`` (dense, q2 x q2) at theta: ``S^-1`` from block 2's factor
        (LAPACK's dpotri for a dense one up to DENSE_TILE, else solves of the identity's columns); its memory is
        checked first."""
        q2 = self.q2
        if not q2:
            return np.zeros((0, 0))
        _check_memory(self.plan + [BlockPlan("block 2's inverse", self.terms2, "dense", q2, 16.0 * q2 * q2)],
                      memory_limit_of(self.memory_limit), "the conditional variances of block 1")
        if self._factor(theta) is None:
            raise ModelError("the blocked factor is not positive definite at theta")
        if self.fill.kind == "dense" and q2 <= DENSE_TILE:  # larger: solves (OpenBLAS's buffer, DENSE_TILE)
            inv, info = lapack.dpotri(self.fill.L, lower=1)
            if info != 0:
                raise ModelError("block 2's factor is singular at theta")
            inv = np.tril(inv) + np.tril(inv, -1).T
        else:
            inv = inverse_by_solves(self.fill.solve_L, self.fill.solve_Lt, q2)
        Lt2 = self.lam2.Lambdat(theta)
        return np.asarray(Lt2.T @ np.asarray(Lt2.T @ inv).T)


# ---------------------------------------------------------------- the fitted model
@dataclass
class DroppedRows:
    """The model frame's record of dropped rows (what ``MerMod.na_action`` reads)."""

    dropped: pd.Index


@dataclass
class DaskFormula:
    """What lFormula gives for a dask DataFrame: the structure, not the rows."""

    formula: ParsedFormula
    frame: DroppedRows
    n: int
    X_spec: DesignSpec
    fixef_names: list[str]
    col_dropped: list[str]
    reTrms: ReTrms
    REML: bool
    data: object  # the dask DataFrame
    model: PartitionModel
    client: object = None
    weights_arg: str | None = None
    offset_arg: str | None = None
    data_name: str | None = None
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


#: what a fit from a dask DataFrame does not hold (getME names)
ROW_COMPONENTS = ("X", "Z", "Zt", "Ztlist", "y", "mu", "weights", "offset", "L", "devfun")


def _pearson(frame: pd.DataFrame) -> np.ndarray:
    return ((frame["y"] - frame["fitted"]) * frame["sqrtw"]).to_numpy()


class _ScaledResiduals:
    """A partition's scaled Pearson residuals at the estimates (picklable for the workers)."""

    def __init__(self, model: PartitionModel, beta: np.ndarray, b: np.ndarray, sigma: float):
        self.model, self.beta, self.b, self.sigma = model, beta, b, sigma

    def __call__(self, part: pd.DataFrame) -> np.ndarray:
        return _pearson(self.model.fitted(part, self.beta, self.b)) / self.sigma


def _wrss_task(part: pd.DataFrame, index: int, model: PartitionModel, beta, b) -> float:
    r = _pearson(model.fitted(part, beta, b))
    return float(r @ r)


class DaskLmerMod(LmerMod):
    """A linear mixed model fitted from a dask DataFrame: the extractors that read the
    estimates are as in memory; fitted values and residuals are lazy dask Series."""

    @property
    def n(self) -> int:
        return self.lmod.n

    @property
    def p(self) -> int:
        return len(self.lmod.fixef_names)

    @property
    def devfun(self):
        raise ModelError(_NOT_HELD.format(what="the CHOLMOD objective (devfun)"))

    def getME(self, name: str):
        if name in ROW_COMPONENTS or (name == "RZX" and isinstance(self.objective, GroupedObjective)):
            raise ModelError(_NOT_HELD.format(what=f"getME({name!r})"))
        return super().getME(name)

    def _lazy(self):
        lmod = self.lmod
        meta = pd.DataFrame({"fitted": pd.Series(dtype=float), "y": pd.Series(dtype=float),
                             "sqrtw": pd.Series(dtype=float)})
        return lmod.data.map_partitions(lmod.model.fitted, self.state.beta, self.state.b, meta=meta)

    def fitted(self):
        """The fitted values (with the offset), a lazy dask Series over the complete rows."""
        return self._lazy()["fitted"]

    def residuals(self, type: str = "response", scaled: bool = False):
        """Residuals as a lazy dask Series: response, or Pearson (times the weights' square
        roots); scaled: divided by sigma."""
        if type not in ("response", "pearson"):
            raise ValueError(f"residual type {type!r} not available for lmer fits: use 'response' or 'pearson'")
        f = self._lazy()
        res = f["y"] - f["fitted"]
        if type == "pearson":
            res = res * f["sqrtw"]
        return res / self.sigma() if scaled else res

    resid = residuals

    def scaled_residual_quantiles(self, probs: list[float]) -> np.ndarray:
        """Exact quantiles of the scaled Pearson residuals, by two passes over the partitions."""
        values = _ScaledResiduals(self.lmod.model, self.state.beta, self.state.b, self.sigma())
        return exact_quantiles(self.lmod.data, values, probs, self.lmod.client)


_NOT_HELD = ("{what} is not available for a fit from a dask DataFrame: its rows stay in the partitions "
             "(fitted() and residuals() are lazy dask Series)")


def _refuse(name: str):
    def method(self, *args, **kwargs):
        raise ModelError(_NOT_HELD.format(what=f"{name}()"))
    method.__name__ = name
    method.__doc__ = f"Not available for a fit from a dask DataFrame ({name} needs the rows)."
    return method


for _name in ("refit", "update", "simulate", "hatvalues", "cooks_distance", "influence", "allFit", "profile",
              "predict", "drop1", "step", "ranova", "anova"):
    setattr(DaskLmerMod, _name, _refuse(_name))


# ---------------------------------------------------------------- lmer on a dask DataFrame
def lmer_dask(formula: str, data, REML: bool = True, weights: str | None = None, offset: str | None = None,
              start=None, control=None, verbose: int = 0, client=None):
    """``pylme.lmer`` on a dask DataFrame: scan, statistics, the blocked objective, the fit."""
    control = control or LmerControl()
    meta = data._meta
    pf = expand_dot(parse_mixed(formula), meta.columns)
    if pf.response is None:
        raise DataError(f"formula {formula!r} has no response: write it as 'response ~ terms'")
    if not pf.bars:
        raise ModelError("No random effects terms specified in formula")
    stateful = stateful_calls(pf)
    plan = scan_plan(pf, meta, weights, offset)
    scan = combine_scans(over_partitions(data, _scan_task, (plan,), client), plan)
    states = learn_states(data, stateful, scan.prototype, client)
    X_spec, _ = design(expand_terms(pf.fixed), scan.prototype, states)
    infos, rt = reterms_from_scan(pf, scan, states)
    check_nlevels(rt, scan.ncomplete)
    check_zdims(rt, scan.ncomplete)
    groups = [next(k for k, t in enumerate(infos) if t.bar.group == g) for g in rt.flist]
    k1, idx1, idx2 = block_split(rt)
    t1 = rt.terms[k1]
    pall = len(X_spec.column_names)
    model = PartitionModel(pf, plan, X_spec, infos, groups, k1, states=states)
    by_group = _grouped_column(rt, k1, weights)
    if by_group is None:  # the level-wise blocks that will reach this process, before they are made
        _check_memory(first_plans([t1.label], idx1.size, t1.nl, t1.nc, pall + 1, idx2.size),
                      memory_limit_of(control.memory_limit))
        stats = over_partitions(data, _stats_task, (model,), client, combine=add_stats)[0]
    else:
        rows = data if scan.split[by_group] == 0 else data.shuffle(on=by_group)  # whole levels per partition
        # the groups' sums of A21_l A12_l hold up to the pairs of block-2 effects met in one level
        # (a crossed design's users x items: the pairs of items a user rated): bounded before they are made
        groups = over_partitions(rows, _pairs_task, (model,), client, combine=_add_groups)[0] or {}
        cross = _cross_map_or_direct(rt, k1, groups, pall + 1, memory_limit_of(control.memory_limit))
        shift = float(numeric_vector(scan.prototype.iloc[:1], pf.response_label, pf.response)[0])
        stats = over_partitions(rows, _grouped_task, (model, shift, cross), client, combine=add_stats)[0]
    if stats.bad_weights != (0, 0):
        neg, zero = stats.bad_weights
        raise DataError(f"weights must be positive: {neg} negative and {zero} zero prior weights "
                        "(lme4 gives an infinite criterion for zero weights; drop those rows instead)")
    rank, pivot = dqrdc2_rank(stats.R, 1e-7) if pall else (0, [])
    keep = sorted(pivot[:rank])
    model.keep = keep
    names = list(X_spec.column_names)
    col_dropped = [nm for k, nm in enumerate(names) if k not in keep]
    messages = []
    if col_dropped:
        k = len(col_dropped)
        messages.append(f"fixed-effect model matrix is rank deficient so dropping {k} column{'s' if k > 1 else ''}"
                        f" / coefficient{'s' if k > 1 else ''}")
    n = stats.n
    design_ = StatsDesign(rt, n, len(keep))
    resp = StatsResp(n, stats.ldW, REML, weighted=weights is not None)
    lmod = DaskFormula(pf, DroppedRows(scan.dropped), n, X_spec, [names[k] for k in keep], col_dropped, rt, REML,
                       data, model, client, weights, offset, data_name=meta.attrs.get("name"), messages=messages,
                       warnings=scan.notes + _scale_warning(stats, keep))

    def residual_pass(beta: np.ndarray, b: np.ndarray) -> float:
        return over_partitions(data, _wrss_task, (model, beta, b), client, combine=add)[0]

    if by_group is None:
        objective = DistributedObjective(design_, resp, _gram_blocks(stats, keep, t1.nl, t1.nc), residual_pass,
                                         _start(rt, stats, start), memory_limit=control.memory_limit)
    else:
        def level_pass(beta: np.ndarray, c2: np.ndarray, lam: float) -> np.ndarray:
            u1 = np.zeros(t1.nl)
            for levels, u in over_partitions(rows, _modes_task, (model, beta, c2, lam), client):
                u1[levels] = u
            return u1

        def quad_pass(Q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            found = over_partitions(rows, _quad_task, (model, Q), client)
            return tuple(np.concatenate([f[i] for f in found]) for i in range(3))

        objective = GroupedObjective(design_, resp, stats, keep, residual_pass, level_pass, quad_pass,
                                     _start(rt, stats, start), memory_limit=control.memory_limit)
    fm = fit_lmer(DaskLmerMod, lmod, objective, control, verbose, objective if control.optimizer else None)
    fm.emit_messages()
    return fm


def _cross_map_or_direct(rt: ReTrms, k1: int, groups: dict, m3: int, limit: tuple[float, str]) -> bool:
    """Whether the groups' sums of ``A21_l A12_l`` (the cross map) are made (True), or block 2 is
    formed from A21 on the client each evaluation (False: where the map, bounded by ``groups``,
    does not fit and A21 with the dense block does; block 2's terms all scalar); a ModelError
    naming the cross map when neither fits."""
    t1 = rt.terms[k1]
    terms2 = [t.label for k, t in enumerate(rt.terms) if k != k1]
    q2 = int(rt.Gp[-1]) - t1.nl
    triangle = q2 * (q2 + 1) / 2
    pairs = sum(min(g[1], triangle) for g in groups.values())
    with_map = grouped_plans([t1.label], terms2, t1.nl, len(groups), m3, q2, pairs)
    if q2 and not fits(with_map, limit) and all(t.nc == 1 for k, t in enumerate(rt.terms) if k != k1):
        entries = sum(g[2] for g in groups.values())
        direct = grouped_plans([t1.label], terms2, t1.nl, len(groups), m3, q2) + direct_plans([t1.label], terms2, q2,
                                                                                               entries)
        if fits(direct, limit):
            return False
    _check_memory(with_map, limit)
    return True


#: from this many levels of block 1 on, where its term is a scalar intercept and there are no
#: prior weights, the statistics are summed per group of block-1 levels with equal row counts
#: (GroupedObjective: client memory independent of n and of the number of those levels)
GROUPED_MIN_LEVELS = 100_000


def _grouped_column(rt: ReTrms, k1: int, weights) -> str | None:
    """The column whose levels are block 1's, where the fit is made per group of them (else None)."""
    term = rt.terms[k1]
    node = term.bar.group_node
    if weights is not None or term.cnms != ["(Intercept)"] or node.op != "name" or term.nl < GROUPED_MIN_LEVELS:
        return None
    return node.text


def _gram_blocks(stats: PartStats, keep: list[int], nl1: int, nc1: int) -> GramBlocks:
    """The blocked objective's Gram blocks from the reduced statistics (X's kept columns and y)."""
    rows = keep + [stats.AXY.shape[0] - 1]
    return GramBlocks(
        A11=stats.A11.toarray().reshape(nl1, nc1, nc1), A21=stats.A21.tocsc(),
        A22=_canonical_coo(stats.A22), A31=np.ascontiguousarray(stats.A1XY[:, rows].toarray().T),
        A32=np.ascontiguousarray(stats.A2XY[:, rows].toarray().T), A33=stats.AXY[np.ix_(rows, rows)].copy(),
    )


def _canonical_coo(A: sp.spmatrix) -> sp.coo_matrix:
    """A as COO with its duplicates summed."""
    A = A.tocsr()
    A.sum_duplicates()
    return A.tocoo()


def _scale_warning(stats: PartStats, keep: list[int], tol: float = 1000.0) -> list[str]:
    """lme4's checkScaleX from the columns' sums (pylme.description.model_matrix.check_scale_x on the rows)."""
    cont = ~stats.x01[keep]
    if not cont.any() or stats.n < 2:
        return []
    n = stats.n
    s, s2 = stats.xsum[keep][cont], stats.xsq[keep][cont]
    var = np.maximum(s2 - s * s / n, 0.0) / (n - 1)
    logsd = 0.5 * np.log(var)
    spread = np.abs(logsd[:, None] - logsd[None, :])
    if np.any(spread > np.log(tol)) or np.any(np.abs(logsd) > np.log(tol)):
        return ["Some predictor variables are on very different scales: consider rescaling"]
    return []


def _start(rt: ReTrms, stats, start) -> np.ndarray:
    """lme4's starting theta (getStart; mkLmerDevfun's variance ratios for scalar intercept terms)
    from the per-level sums of y."""
    if isinstance(start, dict):
        start = start.get("theta")
    if start is not None:
        start = np.asarray(start, dtype=float)
        if start.shape != rt.theta0.shape:
            raise ModelError(f"incorrect number of theta components (!={rt.theta0.size})")
        return start
    theta = rt.theta0.copy()
    if not (all(t.cnms == ["(Intercept)"] for t in rt.terms) and len(rt.flist) == len(rt.lower)):
        return theta
    v, total = stats.variances()
    v_e = total - v.sum()
    if np.isfinite(v_e) and v_e > 0:
        theta = np.sqrt(v / v_e)
    return theta
