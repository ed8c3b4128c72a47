"""The summary of an emmeans grid (emmeans 1.8's summary.emmGrid) and its print
(print.summary_emm): estimates, SE, df, adjusted intervals and tests, back-transformed when
asked, with emmeans' notes beneath the table."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from ..errors import FitMessage
from ..rbase.printing import column_blocks, format_numbers, zapsmall
from . import multcomp
from .emm_contrast import by_rows

_TYPE_CODE = {"prediction": 1, "contrast": 2, "pairs": 3}


class SummaryEmm(pd.DataFrame):
    """emmeans' summary_emm: a data frame printed as emmeans prints it, with its notes."""

    _metadata = ["est_name", "by_vars", "mesg"]

    @property
    def _constructor(self):
        return SummaryEmm

    def __str__(self) -> str:
        return print_summary_emm(self)

    __repr__ = __str__


def _estimates(g) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L beta (+ offset), its SE and df per grid row (NaN rows: not estimable)."""
    beta = g.fm.fixef().to_numpy()
    est, se, df = (np.full(len(g.linfct), np.nan) for _ in range(3))
    for i, L in enumerate(g.linfct):
        if np.all(np.isfinite(L)):
            est[i] = L @ beta + g.offset[i]
            se[i] = math.sqrt(max(float(L @ g.dfm.V @ L), 0.0))
            df[i] = g.dfm.df(L)
    return est, se, df


def _family(g, by: list[str], rows: list[np.ndarray], adjust: str) -> tuple[int, int, int, list[int]]:
    """(family size, tests per family, type code, Scheffe rank per by group), emmeans' fam.info."""
    by_size = len(g.grid)
    for b in by:
        by_size //= g.grid[b].nunique()
    code = _TYPE_CODE.get(g.est_type, 2)
    if code == 3 and (g.pair_by or []) != list(by):
        code = 2  # pairs regrouped by other variables are no longer one family of pairs
    ranks = [np.linalg.matrix_rank(zapsmall(np.nan_to_num(g.linfct[r]))) for r in rows] if adjust == "scheffe" else [0]
    return g.fam_size, by_size, code, ranks


def _resolve(adjust: str, n_contr: int, code: int) -> str:
    """The adjustment emmeans applies: none for a single test, Sidak for Tukey outside one
    family of pairwise comparisons (with emmeans' note)."""
    if n_contr == 1 and adjust != "scheffe":
        return "none"
    if code != 3 and adjust == "tukey":
        warnings.warn('Note: adjust = "tukey" was changed to "sidak"\nbecause "tukey" is only appropriate for '
                      "one set of pairwise comparisons", FitMessage, stacklevel=5)
        return "sidak"
    return adjust


def _adjust_note(kind: str, adjust: str, fam_size: int, n_contr: int, rank: int) -> list[str]:
    """emmeans' "P value adjustment" / "Conf-level adjustment" line, when it prints one."""
    check = {"none": 1, "tukey": 2, "scheffe": 3}.get(adjust, 99)
    if check == 1 or (fam_size < 3 and check < 10):
        return []
    extra = {"tukey": f"for comparing a family of {fam_size} estimates", "scheffe": f"with rank {rank}"}.get(
        adjust, f"for {n_contr} {'tests' if kind == 'P value' else 'estimates'}")
    return [f"{kind} adjustment: {adjust} method {extra}"]


def summarise(g, infer: tuple[bool, bool], level: float, adjust: str, by: list[str], type: str) -> SummaryEmm:
    """emmeans' summary.emmGrid for two-sided tests of 0 (``infer``: intervals, tests)."""
    if type not in ("link", "response"):
        raise ValueError(f"type must be 'link' or 'response', not {type!r}")
    est, se, df = _estimates(g)
    rows = by_rows(g.grid, by)
    inv = type == "response" and g.link is not None
    # emmeans names the df method of an lmer fit only; a glmer fit's asymptotic df go unnamed
    glmm = getattr(g.fm, "family", None) is not None
    mesg = list(g.init_mesg) + ([] if glmm else [f"Degrees-of-freedom method: {g.dfm.name}"])
    if g.link is not None and not inv:
        mesg.append(f"Results are given on the {g.link.name} (not the response) scale.")
    out = {c: g.grid[c].tolist() for c in g.grid.columns}
    if inv and g.log_contrast:
        out["contrast"] = [c.replace(" - ", " / ") for c in out["contrast"]]
    table = {"est": est, "SE": se, "df": df}
    fam_size, n_contr, code, ranks = _family(g, by, rows, adjust)
    asymptotic = bool(np.all(np.isnan(df) | np.isinf(df)))
    if infer[0]:
        table.update(_intervals(g, est, se, df, level, adjust, rows, (fam_size, n_contr, code, ranks), inv,
                                asymptotic, mesg))
    if infer[1]:
        table.update(_tests(g, est, se, df, adjust, rows, (fam_size, n_contr, code, ranks), inv, asymptotic, mesg))
    est_name = g.est_name
    if inv:
        table["SE"] = np.abs(g.link.mu_eta(est)) * se
        table["est"] = g.link.linkinv(est)
        est_name = g.link.inv_label
    if g.avgd_over:
        mesg.insert(0, f"Results are averaged over the levels of: {', '.join(g.avgd_over)}")
    out.update({(est_name if k == "est" else k): v for k, v in table.items()})
    result = SummaryEmm(out)
    result.est_name, result.by_vars, result.mesg = est_name, list(by), list(dict.fromkeys(mesg))
    return result


def _intervals(g, est, se, df, level, adjust, rows, fam, inv, asymptotic, mesg) -> dict:
    fam_size, n_contr, code, ranks = fam
    method = _resolve(multcomp.interval_method(adjust), n_contr, code)
    cv = np.full(len(est), np.nan)
    for r, rank in zip(rows, ranks * len(rows) if len(ranks) == 1 else ranks):
        cv[r] = multcomp.critical_value(level, df[r], method, fam_size, n_contr, rank)
    lower, upper = est - cv * se, est + cv * se
    names = ("asymp.LCL", "asymp.UCL") if asymptotic else ("lower.CL", "upper.CL")
    mesg += [f"Confidence level used: {_r_number(level)}"] + _adjust_note("Conf-level", method, fam_size,
                                                                         n_contr, ranks[0])
    if inv:
        lower, upper = g.link.linkinv(lower), g.link.linkinv(upper)
        if not np.all(np.nan_to_num(upper - lower) >= 0):
            lower, upper = upper, lower
        mesg.append(f"Intervals are back-transformed from the {g.link.name} scale")
    return {names[0]: lower, names[1]: upper}


def _tests(g, est, se, df, adjust, rows, fam, inv, asymptotic, mesg) -> dict:
    fam_size, n_contr, code, ranks = fam
    method = _resolve(adjust, n_contr, code)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = est / se
    p = np.full(len(est), np.nan)
    for r, rank in zip(rows, ranks * len(rows) if len(ranks) == 1 else ranks):
        ok = r[np.isfinite(t[r])]
        k = len(r) if method in multcomp.P_ADJUST else n_contr
        p[ok] = multcomp.adjusted_p(t[ok], df[ok], method, fam_size, k, rank)
    out = {}
    if inv and float(g.link.linkinv(0.0)) != 0.0:
        out["null"] = np.full(len(est), float(g.link.linkinv(0.0)))
    out["z.ratio" if asymptotic else "t.ratio"] = t
    out["p.value"] = p
    n_note = len(rows[-1]) if method in multcomp.P_ADJUST else n_contr
    mesg += _adjust_note("P value", method, fam_size, n_note, ranks[0])
    if inv:
        mesg.append(f"Tests are performed on the {g.link.name} scale")
    return out


def _r_number(x: float) -> str:
    """A number as R's paste() writes it (15 significant digits)."""
    return f"{x:.15g}"


# ---------------------------------------------------------------- printing
def _opt_digits(row: np.ndarray) -> int:
    """emmeans' .opt.dig: digits enough to show the estimate to about a tenth of its SE."""
    z = np.array([row.min(), row.max()]) / np.max(np.abs(row))
    dz = zapsmall(np.array([z[1] - z[0], z[0], z[1]]), 8)[0]
    if dz == 0:
        return 3
    return max(int(round(1.51 - math.log10(dz))), 3)


def _column_cells(name: str, values, digits: int) -> tuple[list[str], bool]:
    """A column's cells as format.data.frame writes them (a common width) and whether the
    column is right-justified (numbers) or left-justified (labels)."""
    if name in ("t.ratio", "z.ratio"):
        cells, right = [f"{round(v, 3):.3f}" if np.isfinite(v) else "NA" for v in values], True
    elif name == "p.value":
        cells = [f"{round(v, 4):.4f}" if np.isfinite(v) else "NA" for v in values]
        cells, right = ["<.0001" if c == "0.0000" else c for c in cells], True
    elif isinstance(values[0], str):
        cells, right = list(values), False
    else:
        x = zapsmall(np.asarray(values, dtype=float))
        cells, right = format_numbers(np.round(x, 2) if name == "df" else x, digits), True
    width = max(len(c) for c in cells)
    return [c.rjust(width) if right else c.ljust(width) for c in cells], right


def print_summary_emm(s: SummaryEmm) -> str:
    """emmeans' print.summary_emm: the table (one per ``by`` group), then the notes."""
    est = s[s.est_name].to_numpy(dtype=float)
    digits = 3
    if "SE" in s.columns:
        spans = est[:, None] + s["SE"].to_numpy(dtype=float)[:, None] * np.array([-2.0, 0.0, 2.0])
        digits = max([3] + [_opt_digits(r) for r in spans if np.all(np.isfinite(r))])
    formatted, columns = {}, {}
    for name in s.columns:
        cells, right = _column_cells(name, s[name].tolist(), digits)
        if name == s.est_name:
            cells = ["nonEst".rjust(len(c)) if not np.isfinite(v) else c for v, c in zip(est, cells)]
        formatted[name] = cells
        width = max([len(name)] + [len(c) for c in cells])
        columns[name] = ([c.rjust(width) if right else c.ljust(width) for c in cells],
                         name.rjust(width) if right else name.ljust(width))
    shown = [c for c in s.columns if c not in s.by_vars]
    wraps = column_blocks({c: columns[c][0] + [columns[c][1]] for c in shown}, 0, 80)
    blocks = []
    for rows in _print_groups(s):
        lines = [", ".join(f"{b} = {formatted[b][rows[0]]}" for b in s.by_vars) + ":"] if s.by_vars else []
        for cols in wraps:  # R's print of a wide matrix: further columns below, rows repeated
            lines.append(" " + " ".join(columns[c][1] for c in cols))
            lines += [" " + " ".join(columns[c][0][i] for c in cols) for i in rows]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks) + "\n" + "\n".join(s.mesg)


def _print_groups(s: SummaryEmm) -> list[list[int]]:
    if not s.by_vars:
        return [list(range(len(s)))]
    keys = [pd.Series(s[b]).astype(str).tolist() for b in s.by_vars]
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(*keys)):
        groups.setdefault(key, []).append(i)
    return list(groups.values())
