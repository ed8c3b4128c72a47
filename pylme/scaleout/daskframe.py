"""The model frame of a partitioned data set (a dask DataFrame), found without holding its rows.

One pass over the partitions (``scan``) finds what R's ``model.frame`` would find on all the
rows together: that every column the formula uses is in every partition, with one type across
partitions; which rows have a missing value (dropped and counted, as ``na.omit`` drops them);
and the values of every column that becomes a factor, from which the levels follow in R's
order, the same as in memory (pylme.description.factors sorts them by pylme.rbase.collation). A *prototype*
frame (a few complete rows, with every factor value present) then gives the model matrices'
codings and the random-effects terms exactly as ``lFormula`` would on all rows; each partition's
rows are coded into those global levels (``LevelIndex``).

What fails is named by partition and column: a column missing from some partitions, types that
differ, a factor level spelled two ways in disjoint sets of partitions, a partition that cannot
be read. An empty partition is no error.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..description.factors import Factor, column_note
from ..description.formula import ParsedFormula, expand_terms
from ..description.modelframe import _STATEFUL, _column_or_array, _missing, formula_columns
from ..description.reterms import grouping_factor
from ..description.rsyntax import variables, walk
from ..errors import DataError, ModelError

#: calls whose arguments become factor levels (their columns' values are collected)
_FACTOR_CALLS = {"factor", "as.factor", "ordered", "as.ordered", "cut", "interaction", "as.character", "relevel"}
#: complete rows kept per partition for the prototype frame
_SAMPLE_ROWS = 3


def is_dask_frame(data) -> bool:
    """Whether ``data`` is a dask DataFrame (checked without importing dask)."""
    return type(data).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(data, "npartitions")


def dtype_kind(dtype) -> str:
    """A column type as the model frame reads it: numeric, logical, factor, character or time."""
    if isinstance(dtype, pd.CategoricalDtype):
        return "factor"
    if pd.api.types.is_bool_dtype(dtype):
        return "logical"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "time"
    return "character"


@dataclass
class ScanPlan:
    """What the first pass looks at: the formula's data columns, the weights and offset columns,
    the columns whose values become factor levels, and the grouping factors of several columns."""

    columns: list[str]
    weights: str | None
    offset: str | None
    level_columns: list[str]
    group_columns: list[list[str]]  # per grouping expression of several columns: its columns
    design_columns: list[str]  # the level columns the model matrices use (the prototype's)


@dataclass
class PartScan:
    """One partition's contribution to the model frame."""

    index: int
    missing: list[str] = field(default_factory=list)
    kinds: dict = field(default_factory=dict)
    categories: dict = field(default_factory=dict)
    nrows: int = 0
    ncomplete: int = 0
    na_counts: dict = field(default_factory=dict)
    dropped: list = field(default_factory=list)
    levels: dict = field(default_factory=dict)  # column -> its distinct values in the complete rows
    combos: list = field(default_factory=list)  # per grouping expression of several columns
    sample: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def scan_plan(pf: ParsedFormula, meta: pd.DataFrame, weights, offset) -> ScanPlan:
    """The first pass's plan for a formula on a dask DataFrame whose empty frame is ``meta``;
    weights and offset must be column names (a partitioned data set has no row order to match
    an array against)."""
    for what, value in (("weights", weights), ("offset", offset)):
        if value is not None and not isinstance(value, str):
            raise DataError(f"with a dask DataFrame, {what} must be the name of a column, not "
                            f"{type(value).__name__}: the rows are in the partitions")
    cols = [c for c in formula_columns(pf) if c in meta.columns or c not in ("T", "F", "pi")]
    group_nodes = [bar.group_node for bar in pf.bars]
    in_design: set = set()
    for node in _rhs_nodes(pf):
        for sub in walk(node):
            if sub.op == "call" and sub.text in _FACTOR_CALLS:
                in_design.update(variables(sub))
        in_design.update(c for c in variables(node) if c in meta.columns and dtype_kind(meta[c].dtype) != "numeric")
    levels = in_design | {c for node in group_nodes for c in variables(node)}
    multi = [list(dict.fromkeys(variables(node))) for node in group_nodes]
    return ScanPlan(cols, weights, offset, [c for c in cols if c in levels], [m for m in multi if len(m) > 1],
                    [c for c in cols if c in in_design])


def _rhs_nodes(pf: ParsedFormula) -> list:
    """The fixed part and the random-effects terms' left-hand sides."""
    return [n for n in [pf.fixed] + [bar.lhs for bar in pf.bars] if n is not None]


def stateful_calls(pf: ParsedFormula) -> list:
    """The ``scale()``, ``poly()``, ``bs()`` and ``ns()`` calls of the formula's terms and offsets,
    whose states (mean and sd, the polynomials' recurrence, the knots) passes over the partitions
    learn (pylme.scaleout.states). Refused: one in the response, or one inside another."""
    nodes = []
    for rhs in _rhs_nodes(pf):
        terms = expand_terms(rhs)
        nodes += [v.node for v in terms.variables] + [v.node for v in terms.offsets]
    calls = []
    for node in ([pf.response] if pf.response is not None else []) + nodes:
        for m in walk(node):
            if m.op != "call" or m.text not in _STATEFUL:
                continue
            inner = [a.text for a in walk(m) if a is not m and a.op == "call" and a.text in _STATEFUL]
            if node is pf.response or inner:
                where = f"inside {m.text}()" if inner else "in the response"
                name = inner[0] if inner else m.text
                raise ModelError(f"{name}() {where} learns from all rows at once, which a fit from a dask DataFrame "
                                 f"does not do: add the transformed column to the data first (term {name}(...))")
            calls.append(m)
    return calls


def complete_rows(part: pd.DataFrame, plan: ScanPlan) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The complete-case mask of a partition (as ``model_frame``), its weights and offset."""
    w = _column_or_array(plan.weights, part, "weights")
    off = _column_or_array(plan.offset, part, "offset")
    complete = np.ones(len(part), dtype=bool)
    for c in plan.columns:
        complete &= ~_missing(part[c])
    for values in (w, off):
        if values is not None:
            complete &= ~np.isnan(values)
    return complete, w, off


def scan_partition(part: pd.DataFrame, index: int, plan: ScanPlan) -> PartScan:
    """The first pass on one partition."""
    out = PartScan(index, nrows=len(part))
    wanted = plan.columns + [c for c in (plan.weights, plan.offset) if c is not None]
    out.missing = [c for c in dict.fromkeys(wanted) if c not in part.columns]
    if out.missing:
        return out
    for c in dict.fromkeys(wanted):
        out.kinds[c] = dtype_kind(part[c].dtype)
        if out.kinds[c] == "factor":
            out.categories[c] = tuple(part[c].cat.categories.tolist())
    complete, _, _ = complete_rows(part, plan)
    out.ncomplete = int(complete.sum())
    out.na_counts = {c: int(_missing(part[c]).sum()) for c in plan.columns}
    out.dropped = part.index[~complete].tolist()
    rows = part.loc[complete]
    out.levels = {c: rows[c].drop_duplicates() for c in plan.level_columns}
    out.combos = [rows[cols].drop_duplicates() for cols in plan.group_columns]
    out.sample = rows[plan.columns].head(_SAMPLE_ROWS)
    out.notes = [n for c in plan.columns if (n := column_note(c, part[c])) is not None]
    return out


@dataclass
class FrameScan:
    """The model frame of all partitions together: counts, dropped rows, the prototype frame
    (every factor value, a few complete rows) and the grouping expressions' observed values."""

    nrows: int
    ncomplete: int
    dropped: pd.Index
    prototype: pd.DataFrame
    levels: dict  # column -> its distinct values (complete rows, all partitions)
    combos: list[pd.DataFrame]
    notes: list[str]
    plan: ScanPlan
    split: dict  # per factor column: how often its levels recur in further partitions (0: each in one)


def combine_scans(scans: list[PartScan], plan: ScanPlan) -> FrameScan:
    """The partitions' scans as one model frame, or a DataError naming the partition and column."""
    for s in scans:
        if s.missing:
            have = [t.index for t in scans if not t.missing]
            raise DataError(f"partition {s.index} has no column(s) {', '.join(map(repr, s.missing))} (named in the "
                            f"formula or as weights/offset)" + (f"; partition {have[0]} has them" if have else ""))
    _check_kinds(scans)
    ncomplete = sum(s.ncomplete for s in scans)
    if ncomplete == 0:
        raise DataError("0 (non-NA) cases: every row has a missing value in a column the formula uses")
    full = [s for s in scans if s.ncomplete]
    levels = {c: _union([s.levels[c] for s in full]) for c in plan.level_columns}
    _check_spellings(levels, full)
    sample = pd.concat([s.sample for s in full])
    size = max([len(sample)] + [len(levels[c]) for c in plan.design_columns])
    proto = sample.iloc[np.arange(size) % len(sample)].reset_index(drop=True)
    for c in plan.design_columns:
        proto[c] = levels[c].iloc[np.arange(size) % len(levels[c])].reset_index(drop=True)
    combos = [pd.concat([s.combos[k] for s in full]).drop_duplicates().reset_index(drop=True)
              for k in range(len(plan.group_columns))]
    dropped = pd.Index([label for s in scans for label in s.dropped])
    notes = list(dict.fromkeys(n for s in scans for n in s.notes))
    split = {c: sum(len(s.levels[c]) for s in full) - len(v) for c, v in levels.items()}
    return FrameScan(sum(s.nrows for s in scans), ncomplete, dropped, proto, levels, combos, notes, plan, split)


def _union(parts: list[pd.Series]) -> pd.Series:
    """The distinct values of a column over partitions (its type kept)."""
    return pd.concat(parts).drop_duplicates().reset_index(drop=True)


def _check_kinds(scans: list[PartScan]) -> None:
    """One type per column across the partitions (numbers of any width are one type), and one
    set of categories per categorical column."""
    first: dict = {}
    for s in scans:
        for c, kind in s.kinds.items():
            if s.nrows == 0 and kind == "character":
                continue  # an empty partition's column may read as object
            if c not in first:
                first[c] = (s.index, kind, s.categories.get(c))
                continue
            i, k, cats = first[c]
            if kind != k:
                raise DataError(f"column {c!r} is {k} in partition {i} but {kind} in partition {s.index}: "
                                "give it one type in every partition")
            if kind == "factor" and s.categories[c] != cats:
                raise DataError(f"column {c!r} has different categories in partitions {i} and {s.index}: a factor's "
                                "levels must be the same in every partition (dask's categorize() or "
                                "astype with one CategoricalDtype)")


def _check_spellings(levels: dict, scans: list[PartScan]) -> None:
    """A level spelled two ways (case, surrounding spaces) in disjoint sets of partitions is a
    DataError: in one frame they would be two levels, which a partitioned data set written in
    pieces almost never means."""
    for c, values in levels.items():
        strings = [v for v in values.tolist() if isinstance(v, str)]
        seen: dict = {}
        for v in strings:
            seen.setdefault(v.strip().casefold(), []).append(v)
        for spellings in seen.values():
            if len(spellings) < 2:
                continue
            where = {v: {s.index for s in scans if (s.levels[c] == v).any()} for v in spellings}
            a, b = spellings[:2]
            if not where[a] & where[b]:
                raise DataError(f"factor {c!r} has level {a!r} in partition {min(where[a])} and {b!r} in partition "
                                f"{min(where[b])}, never together: one level spelled two ways? (spell it one way in "
                                "every partition; levels that differ only in case or spaces are kept apart in one "
                                "frame)")


class LevelIndex:
    """Codes of a grouping expression's values in a partition into its levels over all
    partitions: by binary search in the sorted values for a column of integers (whose levels are
    in numeric order), else by the levels' labels."""

    def __init__(self, node, levels: tuple[str, ...], values: np.ndarray | None = None):
        self.node, self.nlevels = node, len(levels)
        self.values = values
        self.labels = None if values is not None else pd.Index(levels)

    def codes(self, frame: pd.DataFrame) -> np.ndarray:
        if self.values is not None:
            x = frame[self.node.text].to_numpy()
            pos = np.minimum(np.searchsorted(self.values, x), self.values.size - 1)
            if not np.array_equal(self.values[pos], x):
                raise DataError(f"values of {self.node.text!r} not found in the first pass")
            return pos
        local = grouping_factor(self.node, frame)
        lookup = self.labels.get_indexer(list(local.levels))
        if np.any(lookup < 0):
            unknown = [lev for lev, k in zip(local.levels, lookup) if k < 0]
            raise DataError(f"level(s) {unknown[:5]} of {self.node.text!r} not found in the first pass")
        return lookup[local.codes] if local.codes.size else local.codes


def grouping_levels(bar, scan: FrameScan) -> tuple[Factor, LevelIndex]:
    """The levels of a bar term's grouping factor over all partitions (in R's order), and the
    index that codes a partition's values into them."""
    node = bar.group_node
    cols = list(dict.fromkeys(variables(node)))
    if len(cols) > 1:
        frame = scan.combos[scan.plan.group_columns.index(cols)]
    else:
        frame = pd.DataFrame({cols[0]: scan.levels[cols[0]]})
    fac = grouping_factor(node, frame)
    levels = Factor(np.zeros(0, dtype=np.int64), fac.levels, fac.ordered)
    column = frame[cols[0]] if node.op == "name" else None
    if column is not None and pd.api.types.is_integer_dtype(column.dtype):
        return levels, LevelIndex(node, fac.levels, np.sort(column.to_numpy(dtype=np.int64)))
    return levels, LevelIndex(node, fac.levels)
