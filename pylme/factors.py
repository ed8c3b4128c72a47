"""Factors as R sees them: levels in R's order, labels as R prints them, and contrast codings.

Strings sort into levels (C-locale order), pandas categoricals keep their category order,
numbers sort numerically and are labelled as R's ``as.character`` writes them, logicals
become FALSE/TRUE. Unused levels are dropped, as ``model.frame`` and lme4 do.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Factor:
    """Integer codes (0-based, -1 for missing) into a tuple of level labels."""

    codes: np.ndarray
    levels: tuple[str, ...]
    ordered: bool = False

    @property
    def nlevels(self) -> int:
        return len(self.levels)


def r_label(value: object) -> str:
    """A value as R's ``as.character`` labels a factor level."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return str(int(f)) if f.is_integer() and abs(f) < 1e15 else f"{f:.15g}"
    return str(value)


def is_factor_like(series: pd.Series) -> bool:
    """Columns R would treat as factors in a model formula (not numbers)."""
    dtype = series.dtype
    return isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype) or not (
        pd.api.types.is_numeric_dtype(dtype)
    )


def as_factor(series: pd.Series, drop_unused: bool = True) -> Factor:
    """Convert any column to a Factor with R's level order; unused levels dropped."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        cat = series.cat
        levels = [r_label(c) for c in cat.categories]
        codes = cat.codes.to_numpy().astype(np.int64)
        fac = Factor(codes, tuple(levels), bool(cat.ordered))
    else:
        values = series.to_numpy()
        missing = pd.isna(series).to_numpy()
        present = values[~missing]
        if pd.api.types.is_bool_dtype(series.dtype):
            uniq = np.array([False, True])
        elif pd.api.types.is_numeric_dtype(series.dtype):
            uniq = np.unique(present.astype(float))
        else:
            uniq = np.array(sorted({str(v) for v in present}), dtype=object)
            present = present.astype(str)
        codes = np.full(len(values), -1, dtype=np.int64)
        codes[~missing] = np.searchsorted(uniq, present) if len(uniq) else -1
        fac = Factor(codes, tuple(r_label(u) for u in uniq))
    return drop_unused_levels(fac) if drop_unused else fac


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
