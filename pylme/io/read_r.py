"""Read data frames from R's data files (``.rds``, ``.RData``, ``.rda``) with R's types.

Factors become ``pandas.Categorical`` with R's levels in R's order, unused levels kept
(``ordered=True`` for R's ordered factors); integers int64 (float64 where they have NA),
doubles float64, logicals bool (object with NaN where they have NA), character columns
pandas' string dtype, Dates datetime64.  The index holds R's row names (1, 2, ... when R's
are automatic), so ``fm.na_action`` names dropped rows as R's ``na.action`` does.
The files are parsed by the ``rdata`` package; R is not needed.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["R_SUFFIXES", "read_r"]

R_SUFFIXES = (".rds", ".rdata", ".rda")

_R_DAY = np.datetime64("1970-01-01", "D")


def _date(obj: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    """R's Date (days since 1970-01-01, NA as NaN) as datetime64[D]."""
    days = np.asarray(obj, dtype=float)
    out = np.full(days.shape, np.datetime64("NaT"), dtype="datetime64[D]")
    present = ~np.isnan(days)
    out[present] = _R_DAY + days[present].astype(np.int64)
    return out


def _column(values: pd.Series) -> pd.Series | pd.Categorical:
    """One column with pylme's dtypes (those of ``pylme.datasets.load``)."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return values
    missing = values.isna()
    if pd.api.types.is_bool_dtype(dtype):
        return values.astype(object).where(~missing, np.nan) if missing.any() else values.astype(bool)
    if pd.api.types.is_integer_dtype(dtype):
        return values.astype(np.float64) if missing.any() else values.astype(np.int64)
    if pd.api.types.is_float_dtype(dtype):
        return values.astype(np.float64)
    if pd.api.types.is_string_dtype(dtype):
        # pandas' default dtype for text (what read_csv gives), missing values NaN
        return pd.Series(values.to_numpy(dtype=object, na_value=np.nan), index=values.index, name=values.name)
    return values


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({name: _column(frame[name]) for name in frame.columns}, index=frame.index)


def _kind(obj: Any) -> str:
    """What an R object read by rdata was, in R's words."""
    if isinstance(obj, pd.DataFrame):
        return "data frame"
    if isinstance(obj, dict):
        return "list"
    if isinstance(obj, np.ndarray):
        return "matrix" if obj.ndim == 2 else "vector"
    return type(obj).__name__


def _pick(objects: dict[str, Any], name: str | None, path: Path) -> pd.DataFrame:
    """The object ``name`` of an .RData file (the only one when ``name`` is None)."""
    listing = ", ".join(f"{key} ({_kind(obj)})" for key, obj in objects.items()) or "none"
    if name is None:
        if len(objects) != 1:
            raise DataError(f"{path} holds {len(objects)} objects; choose one by its name: {listing}")
        name = next(iter(objects))
    if name not in objects:
        raise DataError(f"{path} has no object {name!r}; its objects: {listing}")
    return _data_frame(objects[name], f"{path}: object {name!r}")


def _data_frame(obj: Any, what: str) -> pd.DataFrame:
    if not isinstance(obj, pd.DataFrame):
        raise DataError(f"{what} is not a data frame (it is an R {_kind(obj)})")
    return _typed(obj)


def _read(path: Path, suffix: str) -> Any:
    import rdata  # imported on first use: it takes a tenth of a second, and most fits read no R file

    reader = rdata.read_rds if suffix == ".rds" else rdata.read_rda
    constructors = {**rdata.conversion.DEFAULT_CLASS_MAP, "Date": _date}
    with warnings.catch_warnings():
        # classes rdata does not know (lm, terms, ...) come back as plain R lists: such an
        # object is refused below if it is the one asked for, and ignored otherwise
        warnings.filterwarnings("ignore", message="Missing constructor for R class")
        try:
            return reader(path, constructor_dict=constructors)
        except Exception as exc:  # rdata raises many kinds on damaged or foreign files
            raise DataError(f"cannot read {path} as an R data file: {exc}") from exc


def read_r(path: str | os.PathLike[str], name: str | None = None) -> pd.DataFrame:
    """The data frame in R's data file ``path``: R's ``readRDS(path)`` for ``.rds``; for
    ``.RData``/``.rda`` (R's ``load``) the object ``name``, which may be left out when the
    file holds one object.  Raises ``DataError`` naming the problem (missing file, another
    suffix, an object that is not a data frame, an unknown or ambiguous ``name``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in R_SUFFIXES:
        raise DataError(f"{path}: not an R data file (expected .rds, .RData or .rda)")
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    if suffix == ".rds":
        if name is not None:
            raise DataError(f"{path}: an .rds file holds one object; name= is for .RData files")
        return _data_frame(_read(path, suffix), str(path))
    return _pick(_read(path, suffix), name, path)
