"""The model frame: the rows and columns a formula uses, with R's ``na.omit``.

Every column a formula names must exist; rows with a missing value in any of them
(or in the weights or offset) are dropped and counted, as ``model.frame`` does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import DataError
from .formula import ParsedFormula, expand_terms, names_in


@dataclass
class ModelFrame:
    """The complete-case rows of the data (the data itself when every row is complete)."""

    data: pd.DataFrame
    dropped: pd.Index  # labels of the rows dropped for missing values
    weights: np.ndarray | None
    offset: np.ndarray | None


def formula_columns(pf: ParsedFormula) -> list[str]:
    """Data names used by a mixed-model formula, in order of appearance."""
    texts = [pf.response_label] if pf.response is not None else []
    fixed = expand_terms(pf.fixed)
    texts += [v.text for v in fixed.variables] + [v.text for v in fixed.offsets]
    for bar in pf.bars:
        if bar.lhs is not None:
            t = expand_terms(bar.lhs)
            texts += [v.text for v in t.variables] + [v.text for v in t.offsets]
        texts += list(bar.group_vars)
    out: list[str] = []
    for text in texts:
        for name in names_in(text):
            if name not in out:
                out.append(name)
    return out


def model_frame(
    pf: ParsedFormula,
    data: pd.DataFrame,
    weights: str | np.ndarray | None = None,
    offset: str | np.ndarray | None = None,
) -> ModelFrame:
    """Check the formula's columns and drop the rows with a missing value in one of them (R's na.omit)."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if len(data) == 0:
        raise DataError("0 (non-NA) cases: data has no rows")
    cols = formula_columns(pf)
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise DataError(
            f"column(s) {', '.join(repr(c) for c in missing)} named in the formula {pf.text!r} "
            f"not found in data; available: {', '.join(map(str, data.columns))}"
        )
    w = _column_or_array(weights, data, "weights")
    off = _column_or_array(offset, data, "offset")
    complete = np.ones(len(data), dtype=bool)
    for missing in [_missing(data[c]) for c in cols] + [np.isnan(a) for a in (w, off) if a is not None]:
        complete &= ~missing
    if not complete.any():
        raise DataError("0 (non-NA) cases: every row has a missing value in a column the formula uses")
    return ModelFrame(
        data=data if complete.all() else data.loc[complete, cols],
        dropped=data.index[~complete],
        weights=None if w is None else w[complete],
        offset=None if off is None else off[complete],
    )


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
    return arr
