"""Printing numbers and tables as R does (``format``, ``print`` of a character matrix,
``printCoefmat``), for lme4's print and summary layouts."""
from __future__ import annotations

import math

import numpy as np


def _sig_digits(x: float, digits: int) -> tuple[int, int]:
    """(significant digits needed, decimal exponent) of x shown to ``digits`` significant digits."""
    if x == 0 or not math.isfinite(x):
        return 1, 0
    mant, exp = f"{abs(x):.{digits - 1}e}".split("e")
    nsig = len(mant.replace(".", "").rstrip("0")) or 1
    return nsig, int(exp)


def zapsmall(x, digits: int = 7) -> np.ndarray:
    """R 4.2's zapsmall: round to ``digits - log10(max |x|)`` decimal places, that count
    itself rounded half up to a whole number (as R's round() treats a fractional digits);
    NaN is ignored and kept."""
    x = np.asarray(x, dtype=float)
    finite = x[~np.isnan(x)]
    if finite.size == 0:
        return x
    mx = float(np.max(np.abs(finite)))
    if mx <= 0:
        return x
    return np.round(x, math.floor(max(0.0, digits - math.log10(mx)) + 0.5))


def format_numbers(values, digits: int = 7) -> list[str]:
    """R's ``format(x, digits=)`` of a numeric vector: a common number of decimals so that
    every element shows at least ``digits`` significant digits (fixed notation, or
    scientific where fixed would be wider), right-aligned to a common width."""
    vals = [float(v) for v in np.atleast_1d(values)]
    finite = [v for v in vals if math.isfinite(v)]
    if not finite:
        return _pad([_nonfinite(v) for v in vals])
    sig = [_sig_digits(v, digits) for v in finite]
    rgt = max(max(0, n - 1 - e) for n, e in sig)
    left = max((v < 0) + max(1, e + 1) for v, (_, e) in zip(finite, sig))  # R: sign counted per element
    neg = any(v < 0 for v in finite)
    fixed_width = left + (rgt > 0) + rgt
    mxsig = max(n for n, _ in sig)
    sci_width = neg + (mxsig + 1 if mxsig > 1 else mxsig) + 4
    if fixed_width > sci_width:
        out = [_nonfinite(v) if not math.isfinite(v) else _sci(v, mxsig - 1) for v in vals]
    else:
        out = [_nonfinite(v) if not math.isfinite(v) else f"{v:.{rgt}f}" for v in vals]
    return _pad(out)


def _sci(v: float, decimals: int) -> str:
    mant, exp = f"{v:.{decimals}e}".split("e")
    return f"{mant}e{int(exp):+03d}"


def _nonfinite(v: float) -> str:
    return "NA" if math.isnan(v) else ("Inf" if v > 0 else "-Inf")


def _pad(strings: list[str]) -> list[str]:
    width = max(len(s) for s in strings)
    return [s.rjust(width) for s in strings]


def format_number(value: float, digits: int = 7) -> str:
    return format_numbers([value], digits)[0]


def render_table(columns: dict[str, list[str]], left: tuple[str, ...] = (), row_names: list[str] | None = None,
                 right_all: bool = False, width: int | None = None) -> str:
    """R's print of a character matrix (quote = FALSE): row names, then each column padded to
    its widest entry, left-aligned (or right-aligned for columns not in ``left`` when right_all).
    With ``width`` (R's ``options(width)``), columns that do not fit go to further blocks, each
    with the row names, as R's print wraps a wide matrix."""
    nrow = len(next(iter(columns.values()))) if columns else 0
    rn = row_names if row_names is not None else [""] * nrow
    rn_width = max([len(r) for r in rn] + [0])
    if width is not None:
        blocks = column_blocks(columns, rn_width, width)
        if len(blocks) > 1:
            return "\n".join(render_table({k: columns[k] for k in b}, left, row_names, right_all) for b in blocks)
    lines = [" " * rn_width]
    body = [r.ljust(rn_width) for r in rn]
    for name, cells in columns.items():
        width = max([len(name)] + [len(c) for c in cells])
        align_left = name in left or not right_all
        lines[0] += " " + (name.ljust(width) if align_left else name.rjust(width))
        for i, c in enumerate(cells):
            body[i] += " " + (c.ljust(width) if align_left else c.rjust(width))
    return "\n".join(lines + body)


def column_blocks(columns: dict[str, list[str]], rn_width: int, width: int) -> list[list[str]]:
    """R's printMatrix: a block takes columns (each its width plus a gap) while the line stays
    shorter than ``width``; a block has at least one column."""
    blocks: list[list[str]] = []
    used = width
    for name, cells in columns.items():
        w = 1 + max([len(name)] + [len(c) for c in cells])
        if not blocks or used + w >= width:
            blocks.append([])
            used = rn_width
        blocks[-1].append(name)
        used += w
    return blocks


def named_vector(names: list[str], values: list[str], gap: int = 1, width: int = 80) -> list[str]:
    """R's print of a named vector: a common column width, right-aligned, wrapped at ``width``."""
    w = max(len(s) for s in names + values)
    per_line = max(1, width // (w + gap))
    lines = []
    for start in range(0, len(names), per_line):
        chunk = slice(start, start + per_line)
        lines.append("".join(n.rjust(w) + " " * gap for n in names[chunk]))
        lines.append("".join(v.rjust(w) + " " * gap for v in values[chunk]))
    return lines


def format_pvals(p: np.ndarray, digits: int) -> list[str]:
    """R's format.pval(p, digits) with eps = .Machine$double.eps: the p-values from 1e-3 up
    (1e-4 when digits > 1) formatted together, the smaller ones together, those below eps as
    "< 2e-16"."""
    eps = float(np.finfo(float).eps)
    out = ["NA"] * len(p)
    ok = ~np.isnan(p)
    tiny = ok & (p < eps)
    rest = ok & ~tiny
    expo = np.floor(np.log10(np.where(p > 0, p, 1e-50)))
    fixp = (expo >= -3) | ((expo == -4) & (digits > 1))
    for group in (rest & fixp, rest & ~fixp):
        for i, text in zip(np.flatnonzero(group), format_numbers(p[group], digits) if group.any() else []):
            out[i] = text
    if tiny.any():
        d = max(1, digits - 2)
        nc = max((len(out[i]) for i in np.flatnonzero(rest)), default=0)
        if rest.any() and d > 1 and d + 6 > nc:
            d = max(1, nc - 7)
        sep = "" if d == 1 and (not rest.any() or nc <= 6) else " "
        for i in np.flatnonzero(tiny):
            out[i] = "<" + sep + format_numbers([eps], d)[0]
    return out


def signif_stars(p: float) -> str:
    """R's significance codes (symnum with the cutpoints of printCoefmat)."""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else " "
