"""The data sets bundled with pylme (lme4's examples and the WWGbook classroom data).

``load(name)`` returns a DataFrame typed as in R: factors become ``pandas.Categorical``
with R's level order (ordered for R's ordered factors), numerics float64, integers int64
(float64 where they have missing values).  The files and their manifest are written by
``scripts/export_datasets.R``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from typing import Any

import numpy as np
import pandas as pd

from pylme.errors import DataError

__all__ = ["list_datasets", "load"]

_PACKAGE = "pylme._data"
_MANIFEST = "manifest.json"
_FACTOR_TYPES = frozenset({"factor", "ordered"})


@lru_cache(maxsize=1)
def _manifest() -> dict[str, dict[str, Any]]:
    """The manifest's entries, by data set name, in the manifest's order."""
    text = files(_PACKAGE).joinpath(_MANIFEST).read_text(encoding="utf-8")
    return {entry["name"]: entry for entry in json.loads(text)["datasets"]}


def list_datasets() -> list[str]:
    """Names of the bundled data sets, in the manifest's order."""
    return list(_manifest())


def _entry(name: str) -> dict[str, Any]:
    entries = _manifest()
    if name not in entries:
        raise DataError(f"unknown data set {name!r}; available: {', '.join(entries)}")
    return entries[name]


def _read_csv(entry: dict[str, Any]) -> pd.DataFrame:
    # Everything is read as text: Python's int() and float() then parse numbers exactly
    # (pandas' own float parser is not guaranteed to round correctly in every version).
    with files(_PACKAGE).joinpath(entry["file"]).open("rb") as handle:
        frame = pd.read_csv(
            handle, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8"
        )
    expected = [col["name"] for col in entry["columns"]]
    if list(frame.columns) != expected:
        raise DataError(
            f"data set {entry['name']!r}: file columns {list(frame.columns)} "
            f"differ from the manifest's {expected}"
        )
    return frame


def _as_factor(values: pd.Series, column: dict[str, Any], name: str) -> pd.Categorical:
    levels = [str(level) for level in column["levels"]]
    unknown = set(values.dropna()) - set(levels)
    if unknown:
        raise DataError(
            f"data set {name!r}, column {column['name']!r}: values {sorted(unknown)[:5]} "
            "are not among the manifest's levels"
        )
    return pd.Categorical(
        values.astype(object), categories=levels, ordered=column["type"] == "ordered"
    )


def _parse(values: pd.Series, column: dict[str, Any], name: str, parse: type) -> list:
    """Each text parsed by ``parse`` (``int`` or ``float``), None where missing."""
    try:
        return [None if pd.isna(text) else parse(text) for text in values]
    except ValueError as exc:
        raise DataError(f"data set {name!r}, column {column['name']!r}: {exc}") from None


def _as_numeric(values: pd.Series, column: dict[str, Any], name: str) -> np.ndarray:
    return np.array(_parse(values, column, name, float), dtype=np.float64)  # None -> NaN


def _as_integer(values: pd.Series, column: dict[str, Any], name: str) -> np.ndarray:
    """int64, or float64 where the column has missing values."""
    parsed = _parse(values, column, name, int)
    if any(v is None for v in parsed):
        return np.array(parsed, dtype=np.float64)  # None -> NaN
    return np.array(parsed, dtype=np.int64)


def _typed(frame: pd.DataFrame, entry: dict[str, Any]) -> pd.DataFrame:
    columns: dict[str, pd.Categorical | np.ndarray] = {}
    for column in entry["columns"]:
        values = frame[column["name"]]
        if column["type"] in _FACTOR_TYPES:
            columns[column["name"]] = _as_factor(values, column, entry["name"])
        elif column["type"] == "integer":
            columns[column["name"]] = _as_integer(values, column, entry["name"])
        else:
            columns[column["name"]] = _as_numeric(values, column, entry["name"])
    return pd.DataFrame(columns)


def load(name: str) -> pd.DataFrame:
    """The bundled data set ``name`` (see ``list_datasets()``), typed as in R.

    Raises ``DataError`` naming the available data sets when ``name`` is unknown.
    ``frame.attrs["name"]`` holds the name, which fits print as R's ``Data:`` line.
    """
    entry = _entry(name)
    frame = _typed(_read_csv(entry), entry)
    if len(frame) != entry["rows"]:
        raise DataError(
            f"data set {name!r} has {len(frame)} rows, the manifest says {entry['rows']}"
        )
    frame.attrs["name"] = name
    return frame
