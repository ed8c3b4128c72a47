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
    """The complete-case rows of the data restricted to the formula's columns."""

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
    """Select the formula's columns and drop incomplete rows (R's na.omit)."""
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
    frame = data[cols].copy()
    w = _column_or_array(weights, data, "weights")
    off = _column_or_array(offset, data, "offset")
    complete = ~frame.isna().any(axis=1).to_numpy()
    for extra in (w, off):
        if extra is not None:
            complete &= ~np.isnan(extra)
    if not complete.any():
        raise DataError("0 (non-NA) cases: every row has a missing value in a column the formula uses")
    return ModelFrame(
        data=frame.loc[complete],
        dropped=data.index[~complete],
        weights=None if w is None else w[complete],
        offset=None if off is None else off[complete],
    )


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
