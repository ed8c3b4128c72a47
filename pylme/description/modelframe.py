"""The model frame: the rows and columns a formula uses, with R's ``na.omit``.

Every column a formula names must exist (once: a duplicated name it uses is an error); rows
with a missing value in any of them (or in the weights or offset) are dropped and counted, as
``model.frame`` does. As R's model.frame evaluates ``poly(x, 2)`` or ``scale(x)`` on all rows
of the data before dropping any, their data-dependent state is learned here from all rows
(``states``). polars and pyarrow frames, and anything with ``to_pandas()`` or the dataframe
interchange protocol, are converted to pandas first.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError
from .evaluate import Evaluator
from .factors import column_note
from .formula import ParsedFormula, expand_terms
from .rsyntax import variables, walk

#: functions whose values depend on all the data they are given (learned once, see pylme.description.bases)
_STATEFUL = {"poly", "scale", "bs", "ns"}
_CONSTANT_NAMES = {"T", "F", "pi"}


@dataclass
class ModelFrame:
    """The complete-case rows of the data (the data itself when every row is complete)."""

    data: pd.DataFrame
    dropped: pd.Index  # labels of the rows dropped for missing values
    weights: np.ndarray | None
    offset: np.ndarray | None
    states: dict = field(default_factory=dict)  # what poly, scale, bs and ns learned from all rows
    notes: list[str] = field(default_factory=list)  # how a column's type decided its use


def as_data_frame(data, what: str = "data") -> pd.DataFrame:
    """A pandas DataFrame of ``data``: itself, or converted by its ``to_pandas()`` (polars,
    pyarrow) or the dataframe interchange protocol (``__dataframe__``)."""
    if isinstance(data, pd.DataFrame):
        return data
    if callable(getattr(data, "to_pandas", None)):
        frame = data.to_pandas()
        if isinstance(frame, pd.DataFrame):
            return frame
    if callable(getattr(data, "__dataframe__", None)):
        return pd.api.interchange.from_dataframe(data)
    kind = type(data)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    raise DataError(f"{what} must be a pandas DataFrame, not {name} (polars and pyarrow tables, and frames with "
                    "to_pandas() or the __dataframe__ protocol, are converted)")


def formula_columns(pf: ParsedFormula) -> list[str]:
    """Data names used by a mixed-model formula (response, fixed part, random-effects terms),
    in order of appearance."""
    nodes = [n for n in (pf.response, pf.fixed) if n is not None]
    nodes += [n for bar in pf.bars for n in (bar.lhs, bar.group_node)]
    return list(dict.fromkeys(name for node in nodes for name in variables(node)))


def model_frame(
    pf: ParsedFormula,
    data: pd.DataFrame,
    weights: str | np.ndarray | None = None,
    offset: str | np.ndarray | None = None,
) -> ModelFrame:
    """Check the formula's columns and drop the rows with a missing value in one of them (R's na.omit)."""
    data = as_data_frame(data)
    if len(data) == 0:
        raise DataError("0 (non-NA) cases: data has no rows")
    cols = [c for c in formula_columns(pf) if c in data.columns or c not in _CONSTANT_NAMES]
    _check_columns(pf, data, cols)
    w = _column_or_array(weights, data, "weights")
    off = _column_or_array(offset, data, "offset")
    complete = np.ones(len(data), dtype=bool)
    notes = []
    for c in cols:
        column = data[c]
        complete &= ~_missing(column)
        notes += [note] if (note := column_note(c, column)) is not None else []
    for values in (w, off):
        if values is not None:
            complete &= ~np.isnan(values)
    if not complete.any():
        raise DataError("0 (non-NA) cases: every row has a missing value in a column the formula uses")
    return ModelFrame(
        data=data if complete.all() else data.loc[complete, cols],
        dropped=data.index[~complete],
        weights=None if w is None else w[complete],
        offset=None if off is None else off[complete],
        states=learn_states(pf, data),
        notes=notes,
    )


def _check_columns(pf: ParsedFormula, data: pd.DataFrame, cols: list[str]) -> None:
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise DataError(
            f"column(s) {', '.join(repr(c) for c in missing)} named in the formula {pf.text!r} "
            f"not found in data; available: {', '.join(map(str, data.columns))}"
        )
    duplicated = set() if data.columns.is_unique else set(data.columns[data.columns.duplicated()])
    twice = [c for c in cols if c in duplicated]
    if twice:
        raise DataError(f"data has more than one column named {', '.join(map(repr, twice))}, which the formula "
                        f"{pf.text!r} uses: rename them (pandas' df.columns) so that the formula names one")


def learn_states(pf: ParsedFormula, data: pd.DataFrame) -> dict:
    """What poly, scale, bs and ns learn, from all rows of the data (R's model.frame evaluates
    them before na.omit): each variable that calls one is evaluated once here."""
    states: dict = {}
    nodes = [pf.response] if pf.response is not None else []
    for rhs in [pf.fixed] + [bar.lhs for bar in pf.bars]:
        if rhs is not None:
            terms = expand_terms(rhs)
            nodes += [v.node for v in terms.variables] + [v.node for v in terms.offsets]
    stateful = [n for n in nodes if any(m.op == "call" and m.text in _STATEFUL for m in walk(n))]
    if stateful:
        evaluator = Evaluator(data, states)
        for node in stateful:
            evaluator.value(node)
    return states


def _missing(col: pd.Series) -> np.ndarray:
    """R's is.na for a column: NaN and None, missing categories, pandas' NA."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return col.array.codes < 0
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return np.zeros(len(col), dtype=bool)
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        return np.isnan(col.to_numpy())
    return col.isna().to_numpy()


def _column_or_array(value: str | np.ndarray | None, data: pd.DataFrame, what: str) -> np.ndarray | None:
    """Weights or an offset: a column of data or one value per row; NaN is missing (the row is
    dropped), an infinite value an error."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in data.columns:
            raise DataError(f"{what} column {value!r} not found in data")
        value = data[value]
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numeric") from exc
    if arr.shape != (len(data),):
        raise DataError(f"{what} must have one value per row of data ({len(data)}), got shape {arr.shape}")
    if np.isinf(arr).any():
        rows = list(data.index[np.isinf(arr)][:5])
        raise DataError(f"{what} must be finite: {int(np.isinf(arr).sum())} infinite value(s), in row(s) {rows}")
    return arr
