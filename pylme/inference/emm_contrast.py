"""Contrasts of estimated marginal means (emmeans 1.8's ``contrast``, ``pairs`` and the
``.emmc`` families): coefficient matrices over the levels of a grid, applied within each
``by`` group, with each family's default multiplicity adjustment."""
from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd

from ..description.factors import contr_poly, r_label
from ..errors import DataError, ModelError

_PARENS = re.compile(r"-|\+|/|\*")  # emmeans' "parens" option: levels with an operator are parenthesised
_POLY_NAMES = ["linear", "quadratic", "cubic", "quartic"] + [f"degree {d}" for d in range(5, 21)]
#: contrast families with log-scale ratios: the linear predictor's link -> (estimate label, link name)
_RATIOS = {"log": ("ratio", "log"), "logit": ("odds.ratio", "log odds ratio")}


class Contrasts:
    """A family of contrasts: coefficient columns over k levels, its default adjustment, the
    family size for Tukey's method (None: the group size) and whether it is a set of pairs."""

    def __init__(self, coefs: dict[str, np.ndarray], adjust: str, fam_size: int | None = None, pairs: bool = False):
        self.coefs, self.adjust, self.fam_size, self.pairs = coefs, adjust, fam_size, pairs


def pairwise(levs: list[str]) -> Contrasts:
    k = len(levs)
    coefs = {f"{levs[i]} - {levs[j]}": _diff(k, i, j) for i in range(k - 1) for j in range(i + 1, k)}
    return Contrasts(coefs, "tukey", k, pairs=True)


def revpairwise(levs: list[str]) -> Contrasts:
    k = len(levs)
    coefs = {f"{levs[i]} - {levs[j]}": _diff(k, i, j) for i in range(1, k) for j in range(i)}
    return Contrasts(coefs, "tukey", k, pairs=True)


def trt_vs_ctrl(levs: list[str], ref: int | str = 1, reverse: bool = False) -> Contrasts:
    """Each level against the control ``ref`` (a level, or its 1-based position as in R)."""
    r = _level_index(levs, ref)
    coefs = {}
    for i in range(len(levs)):
        if i != r:
            name = f"{levs[r]} - {levs[i]}" if reverse else f"{levs[i]} - {levs[r]}"
            coefs[name] = -_diff(len(levs), i, r) if reverse else _diff(len(levs), i, r)
    return Contrasts(coefs, "dunnettx")


def poly(levs: list[str], max_degree: int | None = None) -> Contrasts:
    """Orthogonal polynomial contrasts scaled to integers, as emmeans' poly.emmc."""
    k = len(levs)
    degree = min(6, k - 1) if max_degree is None else min(max_degree, k - 1)
    M = contr_poly(k)[0][:, :degree]
    coefs = {}
    for j in range(degree):
        con = M[:, j] / np.min(M[:, j][M[:, j] > 0.01])
        z = np.max(np.abs(con - np.round(con)))
        while z > 0.05:
            con = con / z
            z = np.max(np.abs(con - np.round(con)))
        coefs[_POLY_NAMES[j]] = np.round(con)
    return Contrasts(coefs, "none")


def eff(levs: list[str]) -> Contrasts:
    """Each level against the mean of all levels."""
    k = len(levs)
    coefs = {f"{lev} effect": np.eye(k)[i] - 1.0 / k for i, lev in enumerate(levs)}
    return Contrasts(coefs, "fdr")


METHODS = {"pairwise": pairwise, "revpairwise": revpairwise, "trt.vs.ctrl": trt_vs_ctrl, "poly": poly, "eff": eff}


def _diff(k: int, i: int, j: int) -> np.ndarray:
    con = np.zeros(k)
    con[i], con[j] = 1.0, -1.0
    return con


def _level_index(levs: list[str], ref) -> int:
    if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
        if not 1 <= ref <= len(levs):
            raise DataError(f"trt.vs.ctrl: ref={ref} is out of range: there are {len(levs)} levels (1-based)")
        return int(ref) - 1
    if str(ref) not in levs:
        raise DataError(f"trt.vs.ctrl: ref {ref!r} is not a level; levels: {', '.join(levs)}")
    return levs.index(str(ref))


def _custom(levs: list[str], coefs: dict) -> Contrasts:
    out = {}
    for name, c in coefs.items():
        c = np.asarray(c, dtype=float)
        if c.shape != (len(levs),):
            raise DataError(f"contrast {name!r} has {c.size} coefficients; the grid has {len(levs)} levels "
                            f"({', '.join(levs)})")
        out[str(name)] = c
    return Contrasts(out, "none")


def _is_num(values) -> bool:
    """emmeans' .is.num: numbers, or labels that all read as numbers (a factor with levels 0, 1, ...)."""
    try:
        [float(v) for v in values]
    except ValueError:
        return False
    return True


def level_labels(grid: pd.DataFrame, by: list[str]) -> list[str]:
    """emmeans' level labels of a grid's rows: the non-``by`` values joined by spaces, those of a
    numeric variable (or of a factor with numeric labels) prefixed by its name (``Days4.5``,
    ``fDays1``), a label with an operator in parentheses."""
    cols = [c for c in grid.columns if c not in by]
    parts = [[f"{c}{v if isinstance(v, str) else r_label(v)}" for v in grid[c]] if _is_num(grid[c])
             else list(grid[c]) for c in cols]
    labels = [" ".join(p) for p in zip(*parts)]
    return [f"({lab})" if _PARENS.search(lab) else lab for lab in labels]


def by_rows(grid: pd.DataFrame, by: list[str]) -> list[np.ndarray]:
    """The rows of each ``by`` group, groups in order of first appearance (emmeans' .find.by.rows)."""
    if not by:
        return [np.arange(len(grid))]
    missing = [b for b in by if b not in grid.columns]
    if missing:
        raise DataError(f"by variable(s) {missing} are not in the grid; its variables: {', '.join(grid.columns)}")
    keys = pd.Series([" ".join(map(str, row)) for row in grid[by].itertuples(index=False)])
    return [np.flatnonzero(keys.to_numpy() == k) for k in dict.fromkeys(keys)]


def contrast(g, method, by: list[str], adjust: str | None, options: dict):
    """The EmmGrid of the contrasts ``method`` within each ``by`` group of ``g``."""
    from .multcomp import check_method

    if adjust is not None:
        adjust = check_method(adjust)
    groups = by_rows(g.grid, by)
    if len({len(r) for r in groups}) > 1:
        raise ModelError("by groups of unequal sizes are not supported by contrast")
    levs = [lab for lab in level_labels(g.grid.iloc[groups[0]].reset_index(drop=True), by)]
    family = _family(method, levs, options)
    C = np.array(list(family.coefs.values())) if family.coefs else np.zeros((0, len(levs)))
    rows = np.concatenate(groups)
    K = np.kron(np.eye(len(groups)), C)
    grid = pd.DataFrame({"contrast": list(family.coefs) * len(groups)})
    for b in by:
        grid[b] = np.repeat([g.grid[b].iloc[r[0]] for r in groups], len(C))
    sums = C.sum(axis=1)
    true_contrast = bool(np.all(np.abs(sums / (1e-6 + np.abs(C).max(axis=1, initial=0.0))) < 1e-6))
    est_type = "pairs" if family.pairs else ("contrast" if np.all(np.abs(sums) < 1e-3) else "prediction")
    link, log_contrast, init = _contrast_scale(g.link, true_contrast)
    return replace(g, grid=grid, linfct=K @ g.linfct[rows], offset=K @ g.offset[rows], est_name="estimate",
                   est_type=est_type, by=list(by), adjust=adjust or family.adjust,
                   fam_size=family.fam_size or len(groups[0]), infer=(False, True), link=link,
                   log_contrast=log_contrast, init_mesg=init, pair_by=list(by))


def _family(method, levs: list[str], options: dict) -> Contrasts:
    if isinstance(method, dict):
        return _custom(levs, method)
    if method not in METHODS:
        raise ModelError(f"contrast method {method!r} is not available: use one of {', '.join(METHODS)} "
                         "or a dict of coefficients")
    return METHODS[method](levs, **options)


def _contrast_scale(link, true_contrast: bool):
    """(link, log_contrast, notes): contrasts of log- or logit-scale means are ratios on the
    response scale (emmeans' ``ratios = TRUE``); any other link is dropped with emmeans' note."""
    if link is None:
        return None, False, []
    if true_contrast and link.name in _RATIOS:
        label, name = _RATIOS[link.name]
        return replace(link, name=name, linkinv=np.exp, mu_eta=np.exp, inv_label=label), True, []
    return None, False, [f"Note: contrasts are still on the {link.name} scale"]
