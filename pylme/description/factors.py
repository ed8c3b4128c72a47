"""Data columns and factors as R sees them in a model formula.

A column is what R would hold for it (``column_value``): a pandas categorical is a factor (its
category order kept), bool a logical, numbers numeric (integers kept as integers for their
labels), dates and times numeric (seconds since 1970-01-01 UTC as R's POSIXct; ``datetime.date``
objects days as R's Date), an object column of numbers numeric, and anything else character.
A factor's levels are in R's order: strings sorted as R sorts them in a UTF-8 locale
(pylme.rbase.collation), numbers numerically and labelled as R's ``as.character`` writes them (15
significant digits: 0.1 + 0.2 and 0.3 are one level "0.3"), logicals FALSE/TRUE. Unused levels
are dropped, as ``model.frame`` and lme4 do. ``factor``, ``cut`` and ``relevel`` are R's.
"""
from __future__ import annotations

import datetime as _dt
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError
from ..rbase.collation import sorted_strings
from ..rbase.printing import format_number

#: integers R holds as integer (32-bit); larger ones are doubles in R
_R_INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class Factor:
    """Integer codes (0-based, -1 for missing) into a tuple of level labels."""

    codes: np.ndarray
    levels: tuple[str, ...]
    ordered: bool = False

    @property
    def nlevels(self) -> int:
        return len(self.levels)


@dataclass(frozen=True)
class Logical:
    """An R logical vector: 1.0 TRUE, 0.0 FALSE, NaN NA."""

    values: np.ndarray


def r_label(value: object) -> str:
    """A value as R's ``as.character`` labels a factor level."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, np.integer)) and abs(int(value)) <= _R_INT_MAX:
        return str(int(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        return format_number(float(value), 15)
    return str(value)


# ---------------------------------------------------------------- columns
def column_value(series: pd.Series):
    """A data column as R holds it: Factor, Logical, a numeric array (int64 or float64) or a
    character array (object dtype, None for NA)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cat = series.cat
        return Factor(cat.codes.to_numpy().astype(np.int64), tuple(r_label(c) for c in cat.categories.tolist()),
                      bool(cat.ordered))
    if pd.api.types.is_bool_dtype(dtype):
        return Logical(series.to_numpy(dtype=float, na_value=np.nan))
    if pd.api.types.is_integer_dtype(dtype):
        if series.isna().any():
            return series.to_numpy(dtype=float, na_value=np.nan)
        return series.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(dtype):
        return series.to_numpy(dtype=float, na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return _seconds(series)
    if pd.api.types.is_timedelta64_dtype(dtype):
        return series.dt.total_seconds().to_numpy(dtype=float, na_value=np.nan)
    if pd.api.types.is_complex_dtype(dtype):
        raise DataError(f"column {series.name!r} is complex ({dtype}): a model formula needs real numbers")
    return _object_value(series)


def _seconds(series: pd.Series) -> np.ndarray:
    """Date-times as R's POSIXct: seconds since 1970-01-01 00:00 UTC."""
    values = series.dt.tz_convert("UTC") if getattr(series.dt, "tz", None) is not None else series
    stamps = values.to_numpy(dtype="datetime64[ns]")
    out = (stamps - np.datetime64(0, "ns")).astype("timedelta64[ns]").astype(np.int64) / 1e9
    return np.where(pd.isna(series).to_numpy(), np.nan, out)


def _object_value(series: pd.Series):
    """An object column: numbers numeric, ``datetime.date`` days (R's Date), bools logical,
    anything else character."""
    present = series[~pd.isna(series)].tolist()
    missing = pd.isna(series).to_numpy()
    if present and all(isinstance(v, (bool, np.bool_)) for v in present):
        return Logical(np.array([np.nan if m else float(bool(v)) for v, m in zip(series, missing)]))
    if present and all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in present):
        return np.array([np.nan if m else float(v) for v, m in zip(series, missing)])
    if present and all(isinstance(v, _dt.date) and not isinstance(v, _dt.datetime) for v in present):
        return np.array([np.nan if m else float(v.toordinal() - _EPOCH_ORDINAL) for v, m in zip(series, missing)])
    if present and all(isinstance(v, (_dt.datetime, pd.Timestamp)) for v in present):
        return _seconds(pd.to_datetime(series, utc=True))
    return np.array([None if m else str(v) for v, m in zip(series, missing)], dtype=object)


_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()


def column_note(name: str, series: pd.Series) -> str | None:
    """What pylme says when a column's type, not its name, decides how it enters the model, as
    R would read it (a date as a number, an object column of numbers as numeric), and when its
    integers are too large for the doubles the fit computes in."""
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return (f"column {name!r} ({dtype}) enters the model as a number: seconds since 1970-01-01 00:00 UTC, "
                "as R's POSIXct (divide by 86400 for days, as R's Date)")
    if pd.api.types.is_timedelta64_dtype(dtype):
        return f"column {name!r} ({dtype}) enters the model as a number of seconds"
    if pd.api.types.is_integer_dtype(dtype) and len(series):
        values = series.dropna().to_numpy(dtype=np.int64)
        lost = values.astype(float).astype(np.int64) != values
        if lost.any():
            return (f"column {name!r} ({dtype}) has {int(lost.sum())} value(s) beyond 2**53 that a double cannot "
                    "hold exactly: the model uses them rounded (subtract a constant first, e.g. its minimum, "
                    "to keep them exact)")
        return None
    if dtype == object:
        value = _object_value(series)
        if isinstance(value, np.ndarray) and value.dtype == float:
            kind = "dates" if any(isinstance(v, _dt.date) for v in series) else "numbers"
            how = "days since 1970-01-01, as R's Date" if kind == "dates" and not any(
                isinstance(v, _dt.datetime) for v in series) else "numeric, as R reads a column of numbers"
            return (f"column {name!r} has dtype object holding {kind}: used as {how} (convert it with "
                    "astype(float), or to a pandas Categorical for a factor)")
    return None


# ---------------------------------------------------------------- factors
def as_factor(series: pd.Series, drop_unused: bool = True) -> Factor:
    """A column as a factor (R's ``as.factor``) with R's level order; unused levels dropped."""
    return to_factor(column_value(series), drop_unused)


def to_factor(value, drop_unused: bool = True) -> Factor:
    """R's ``as.factor`` of an evaluated value (Factor, Logical, numbers or strings)."""
    if isinstance(value, Factor):
        fac = value
    elif isinstance(value, Logical):
        v = value.values
        fac = _code([lab for lab, x in (("FALSE", 0.0), ("TRUE", 1.0)) if np.any(v == x)],
                    np.where(np.isnan(v), None, np.where(v == 1.0, "TRUE", "FALSE")))
    elif isinstance(value, np.ndarray) and value.dtype != object:
        fac = _numeric_factor(value)
    else:
        strings = np.asarray(value, dtype=object)
        fac = _code(sorted_strings(s for s in strings if s is not None), strings)
    return drop_unused_levels(fac) if drop_unused else fac


def _numeric_factor(values: np.ndarray) -> Factor:
    """Levels of numbers: sorted values, labelled as R's as.character, equal labels one level."""
    missing = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), dtype=bool)
    uniq = np.unique(values[~missing])
    labels = [r_label(u) for u in uniq.tolist()]
    new = np.array([True] + [a != b for a, b in zip(labels[1:], labels[:-1])], dtype=bool)[: len(labels)]
    group = np.cumsum(new) - 1
    codes = np.full(len(values), -1, dtype=np.int64)
    if len(uniq):
        codes[~missing] = group[np.searchsorted(uniq, values[~missing])]
    return Factor(codes, tuple(lab for lab, keep in zip(labels, new) if keep))


def _code(levels: list[str], labels: np.ndarray) -> Factor:
    """Codes of ``labels`` (None: missing; a label not in ``levels``: missing) into ``levels``."""
    index = {lev: k for k, lev in enumerate(levels)}
    codes = np.fromiter((index.get(s, -1) if s is not None else -1 for s in labels), dtype=np.int64,
                        count=len(labels))
    return Factor(codes, tuple(levels))


def labels_of(value) -> np.ndarray:
    """R's ``as.character`` of an evaluated value (None for NA)."""
    if isinstance(value, Factor):
        lev = np.array(value.levels + (None,), dtype=object)
        return lev[value.codes]
    if isinstance(value, Logical):
        return np.array([None if np.isnan(v) else ("TRUE" if v else "FALSE") for v in value.values], dtype=object)
    if isinstance(value, np.ndarray) and value.dtype != object:
        if value.dtype.kind == "f":
            return np.array([None if np.isnan(v) else r_label(v) for v in value.tolist()], dtype=object)
        return np.array([r_label(v) for v in value.tolist()], dtype=object)
    return np.asarray(value, dtype=object)


def factor(value, levels=None, labels=None, ordered: bool | None = None) -> Factor:
    """R's ``factor(x, levels, labels, ordered)``: values matched to ``levels`` by their labels
    (a value not among them is NA), the levels renamed by ``labels``."""
    ordered = (isinstance(value, Factor) and value.ordered) if ordered is None else ordered
    if levels is None:
        fac = to_factor(value)
    else:
        level_labels = [str(s) for s in labels_of(np.atleast_1d(levels))]
        fac = _code(list(dict.fromkeys(level_labels)), labels_of(value))
    if labels is not None:
        new = [str(s) for s in labels_of(np.atleast_1d(labels))]
        if len(new) != fac.nlevels or len(set(new)) != len(new):
            raise DataError(f"factor(): labels {new} must be {fac.nlevels} distinct labels, one per level "
                            f"{list(fac.levels)}")
        fac = Factor(fac.codes, tuple(new))
    return Factor(fac.codes, fac.levels, bool(ordered))


def relevel(fac: Factor, ref) -> Factor:
    """R's ``relevel(x, ref)``: level ``ref`` (a label, or a 1-based position) first."""
    if fac.ordered:
        raise DataError("relevel() is only for (unordered) factors, as in R")
    if isinstance(ref, str):
        if ref not in fac.levels:
            raise DataError(f"relevel(): 'ref' must be an existing level: {ref!r} is not among {list(fac.levels)}")
        k = fac.levels.index(ref)
    else:
        k = int(ref) - 1
        if not 0 <= k < fac.nlevels:
            raise DataError(f"relevel(): ref = {int(ref)} must be in 1:{fac.nlevels}")
    order = [k] + [j for j in range(fac.nlevels) if j != k]
    remap = np.empty(fac.nlevels, dtype=np.int64)
    remap[order] = np.arange(fac.nlevels)
    codes = np.where(fac.codes >= 0, remap[np.maximum(fac.codes, 0)], -1)
    return Factor(codes, tuple(fac.levels[j] for j in order))


def cut(x: np.ndarray, breaks, labels=None, include_lowest: bool = False, right: bool = True, dig_lab: int = 3,
        ordered: bool = False):
    """R's ``cut.default``: intervals from ``breaks`` (a number of equal intervals over the range,
    widened by 1/1000 of it, or the cut points), labelled as R labels them (``(0.994,3]``);
    ``labels=False`` gives the interval numbers."""
    breaks = np.atleast_1d(np.asarray(breaks, dtype=float))
    if breaks.size == 1:
        breaks = _equal_breaks(x, breaks[0])
    else:
        breaks = np.sort(breaks)
    if len(np.unique(breaks)) != breaks.size:
        raise DataError("cut(): 'breaks' are not unique")
    nb = breaks.size
    codes = _bincode(x, breaks, right, include_lowest)
    if labels is False:
        return np.where(codes >= 0, codes + 1.0, np.nan)
    if labels is None:
        labels = _interval_labels(breaks, right, include_lowest, dig_lab)
    labels = [str(s) for s in np.atleast_1d(labels)]
    if len(labels) != nb - 1:
        raise DataError("cut(): number of intervals and length of 'labels' differ")
    return Factor(codes, tuple(labels), ordered)


def _equal_breaks(x: np.ndarray, k: float) -> np.ndarray:
    if not np.isfinite(k) or k < 2:
        raise DataError("cut(): invalid number of intervals")
    nb = int(k + 1)
    lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
    dx = hi - lo
    if dx == 0:
        dx = abs(lo) if lo != 0 else 1.0
        return seq_len_out(lo - dx / 1000, hi + dx / 1000, nb)
    b = seq_len_out(lo, hi, nb)
    b[0], b[-1] = lo - dx / 1000, hi + dx / 1000
    return b


def seq_len_out(start: float, stop: float, n: int) -> np.ndarray:
    """R's ``seq.int(from, to, length.out = n)``: ``from + i * by``, both ends exact."""
    by = (stop - start) / (n - 1) if n > 1 else 0.0
    out = start + np.arange(n) * by
    out[-1] = stop
    return out


def _bincode(x: np.ndarray, breaks: np.ndarray, right: bool, include_lowest: bool) -> np.ndarray:
    """R's ``.bincode``: the interval of each value (-1 outside, or NA)."""
    side = "left" if right else "right"
    codes = np.searchsorted(breaks, x, side=side) - 1
    if include_lowest:
        edge = breaks[0] if right else breaks[-1]
        codes = np.where(x == edge, 0 if right else breaks.size - 2, codes)
    bad = np.isnan(x) | (codes < 0) | (codes >= breaks.size - 1)
    return np.where(bad, -1, codes).astype(np.int64)


def _interval_labels(breaks: np.ndarray, right: bool, include_lowest: bool, dig_lab: int) -> list[str]:
    """``(a,b]`` labels with the fewest digits (from ``dig.lab``, at most 12) that tell the breaks apart."""
    for dig in range(dig_lab, max(12, dig_lab) + 1):
        text = [f"{0.0 + b:.{dig}g}" for b in breaks]
        if all(a != b for a, b in zip(text[:-1], text[1:])):
            break
    else:
        return [f"Range_{k + 1}" for k in range(breaks.size - 1)]
    labels = [f"{'(' if right else '['}{a},{b}{']' if right else ')'}" for a, b in zip(text[:-1], text[1:])]
    if include_lowest:
        if right:
            labels[0] = "[" + labels[0][1:]
        else:
            labels[-1] = labels[-1][:-1] + "]"
    return labels


def drop_unused_levels(fac: Factor) -> Factor:
    used = np.zeros(fac.nlevels, dtype=bool)
    used[fac.codes[fac.codes >= 0]] = True
    if used.all():
        return fac
    remap = np.cumsum(used) - 1
    codes = np.where(fac.codes >= 0, remap[np.maximum(fac.codes, 0)], -1)
    return Factor(codes, tuple(l for l, u in zip(fac.levels, used) if u), fac.ordered)


def interaction(factors: list[Factor]) -> Factor:
    """lme4's ``%i%`` for grouping factors ``a:b``: observed combinations, ordered by
    (level of a, level of b), labelled ``"a:b"``."""
    fac = factors[0]
    for nxt in factors[1:]:
        missing = (fac.codes < 0) | (nxt.codes < 0)
        key = np.where(missing, -1, fac.codes * nxt.nlevels + nxt.codes)
        uniq = np.unique(key[key >= 0])
        codes = np.where(missing, -1, np.searchsorted(uniq, key))
        levels = tuple(f"{fac.levels[k // nxt.nlevels]}:{nxt.levels[k % nxt.nlevels]}" for k in uniq)
        fac = Factor(codes, levels)
    return fac


def contr_treatment(n: int) -> np.ndarray:
    """R's contr.treatment: indicators of levels 2..n."""
    return np.eye(n)[:, 1:]


def contr_poly(n: int) -> tuple[np.ndarray, list[str]]:
    """R's contr.poly: orthonormal polynomial contrasts on scores 1..n, named .L .Q .C ^4 ..."""
    scores = np.arange(1, n + 1, dtype=float)
    y = np.vander(scores - scores.mean(), n, increasing=True)
    q, r = np.linalg.qr(y)
    raw = q * np.diag(r)  # sign-free: the product of Q's column and R's diagonal
    z = raw / np.sqrt((raw**2).sum(axis=0))
    names = [".L", ".Q", ".C"] + [f"^{k}" for k in range(4, n)]
    return z[:, 1:], names[: n - 1]
