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

from ..errors import DataError

__all__ = ["list_datasets", "load", "simulate_expression"]

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


def simulate_expression(n_responses: int, n_individuals: int = 60, n_tissues: int = 4, n_batches: int = 6,
                        seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A simulated RNA-seq-shaped study (not a bundled data set): samples from ``n_individuals``
    individuals in ``n_tissues`` tissues each, processed in ``n_batches`` batches at random, and
    ``n_responses`` expression values per sample (one column each, named gene1, gene2, ...).

    Each response has its own mean, tissue effects, age slope and individual and batch standard
    deviations (some zero-ish, as real genes' are), with unit residual noise, so that
    ``expr ~ tissue + age + (1 | individual) + (1 | batch)`` fits it. Returns (samples, responses),
    the rows of both in the same order: the shape of variancePartition's examples and of the
    many-fits benchmark (pylme.lmer_many, scripts/bench.py --many)."""
    rng = np.random.default_rng(seed)
    individual = np.repeat(np.arange(n_individuals), n_tissues)
    tissue = np.tile(np.arange(n_tissues), n_individuals)
    batch = rng.integers(0, n_batches, individual.size)
    age = np.round(rng.uniform(20.0, 70.0, n_individuals), 1)[individual]
    samples = pd.DataFrame({
        "individual": pd.Categorical([f"ind{i + 1}" for i in individual], [f"ind{i + 1}" for i in range(n_individuals)]),
        "tissue": pd.Categorical([f"T{t + 1}" for t in tissue], [f"T{t + 1}" for t in range(n_tissues)]),
        "batch": pd.Categorical([f"B{b + 1}" for b in batch], [f"B{b + 1}" for b in range(n_batches)]),
        "age": age,
    })
    k = n_responses
    mean = rng.normal(5.0, 2.0, k)
    tissue_eff = rng.normal(0.0, 0.5, (n_tissues, k))
    slope = rng.normal(0.0, 0.01, k)
    sd_ind, sd_batch = rng.uniform(0.0, 1.0, k), rng.uniform(0.0, 0.5, k)
    expr = (mean + tissue_eff[tissue] + age[:, None] * slope
            + rng.normal(size=(n_individuals, k))[individual] * sd_ind
            + rng.normal(size=(n_batches, k))[batch] * sd_batch + rng.normal(size=(individual.size, k)))
    return samples, pd.DataFrame(expr, columns=[f"gene{j + 1}" for j in range(k)])
