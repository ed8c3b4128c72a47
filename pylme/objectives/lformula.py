"""lme4's first two steps: ``lFormula`` (formula + data -> model frame, response, X and the
random-effects terms) and ``mkLmerDevfun`` (-> the design, the response and the CHOLMOD objective,
with lme4's starting theta)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..description.formula import ParsedFormula, expand_dot, expand_terms, parse_mixed
from ..description.model_matrix import DesignSpec, check_scale_x, design_spec, drop_rank_deficient, numeric_vector
from ..description.modelframe import ModelFrame, as_data_frame, model_frame
from ..description.reterms import ReTrms, mk_reterms, reterm_parts
from ..errors import DataError, FormulaError, ModelError
from .blocked import BlockPlan, _check_memory, memory_limit_of
from .design import lmm_design
from .pls import CholmodObjective
from .response import lmer_resp


@dataclass
class LmerFormula:
    """What lme4's lFormula returns: the model frame, response, X and the random-effects terms."""

    formula: ParsedFormula
    frame: ModelFrame
    y: np.ndarray
    X: np.ndarray
    X_spec: DesignSpec
    fixef_names: list[str]
    col_dropped: list[str]
    reTrms: ReTrms
    REML: bool
    weights: np.ndarray | None
    offset: np.ndarray | None
    data: pd.DataFrame
    weights_arg: str | np.ndarray | None = None
    offset_arg: str | np.ndarray | None = None
    data_name: str | None = None
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def lFormula(
    formula: str,
    data: pd.DataFrame,
    REML: bool = True,
    weights: str | np.ndarray | None = None,
    offset: str | np.ndarray | None = None,
    memory_limit: float | None = None,
) -> LmerFormula:
    """Parse the formula, build the model frame, X (rank-checked) and the random-effects terms.
    Before X and Z are made, their sizes (and those of mkLmerDevfun's products) are checked
    against ``memory_limit`` (bytes; default 80% of the memory available): a model too large
    fails at once, naming its largest matrix (``matrices_plan``)."""
    data = as_data_frame(data)
    pf = expand_dot(parse_mixed(formula), data.columns)
    if pf.response is None:
        raise FormulaError(f"formula {formula!r} has no response: write it as 'response ~ terms'")
    if not pf.bars:
        raise ModelError("No random effects terms specified in formula")
    mf = model_frame(pf, data, weights, offset)
    messages = []
    frame = mf.data
    y = numeric_vector(frame, pf.response_label, pf.response, states=mf.states)
    parts = reterm_parts(pf.bars, frame, mf.states)
    fixed = expand_terms(pf.fixed)
    spec = design_spec(fixed, frame, mf.states)
    _check_memory(matrices_plan(len(y), len(spec.column_names), [(bar.label, f.nlevels, len(c.column_names))
                                                                 for bar, (f, c) in zip(pf.bars, parts)]),
                  memory_limit_of(memory_limit), "the model matrices (lFormula and mkLmerDevfun)")
    reTrms = mk_reterms(pf.bars, frame, mf.states, parts)
    check_nlevels(reTrms, len(y))
    check_zdims(reTrms, len(y))
    X = spec.matrix(frame)
    names = list(spec.column_names)
    X, keep = drop_rank_deficient(X)
    col_dropped = [nm for k, nm in enumerate(names) if k not in keep]
    if col_dropped:
        k = len(col_dropped)
        messages.append(
            f"fixed-effect model matrix is rank deficient so dropping {k} column{'s' if k > 1 else ''}"
            f" / coefficient{'s' if k > 1 else ''}"
        )
    off = offset_sum(fixed.offsets, frame, mf.offset, mf.states)
    w = mf.weights
    if w is not None and np.any(w <= 0):
        raise DataError(
            f"weights must be positive: {int(np.sum(w < 0))} negative and {int(np.sum(w == 0))} zero prior weights "
            "(lme4 gives an infinite criterion for zero weights; drop those rows instead)"
        )
    return LmerFormula(
        pf, mf, y, X, spec, [names[k] for k in keep], col_dropped, reTrms, REML, w, off,
        data=data, weights_arg=weights, offset_arg=offset, data_name=data.attrs.get("name"), messages=messages,
        warnings=mf.notes + check_scale_x(X),
    )


def matrices_plan(n: int, p: int, terms: list[tuple[str, int, int]]) -> list[BlockPlan]:
    """The memory of what lFormula and mkLmerDevfun make for ``n`` rows, ``p`` columns of X and
    the random-effects ``terms`` (label, levels, columns): X, the copy its rank check
    factors, Z (Zt's entries and indices, each term's columns and codes), Z'X and the response's
    vectors; the data frame itself is the caller's."""
    nc = sum(c for _, _, c in terms)
    q = sum(nl * c for _, nl, c in terms)
    return [BlockPlan("X", [f"{n:,} rows x {p} columns"], "dense", 0, 8.0 * n * p),
            BlockPlan("X's rank check", [f"{n:,} rows x {p} columns"], "dense QR", 0, 8.0 * n * p),
            BlockPlan("Z", [label for label, _, _ in terms], "sparse", q, n * (20.0 * nc + 8.0 * len(terms))),
            BlockPlan("Z'X", [f"{q:,} x {p}"], "dense", 0, 8.0 * q * p),
            BlockPlan("response", ["y", "mu", "residuals", "weights", "offset"], "vectors", 0, 40.0 * n)]


def offset_sum(offsets, frame: pd.DataFrame, argument: np.ndarray | None, states: dict) -> np.ndarray | None:
    """Sum of the formula's offset(...) terms and the offset argument (None if neither)."""
    parts = [numeric_vector(frame, v.label, v.node, what="offset", states=states) for v in offsets]
    if argument is not None:
        parts.append(argument)
    return np.sum(parts, axis=0) if parts else None


def check_nlevels(reTrms: ReTrms, n: int) -> None:
    """lme4's checkNlevels: each grouping factor needs > 1 and < n levels."""
    nlev = {name: f.nlevels for name, f in reTrms.flist.items()}
    if any(v < 2 for v in nlev.values()):
        bad = ", ".join(k for k, v in nlev.items() if v < 2)
        raise ModelError(f"grouping factors must have > 1 sampled level (problems: {bad})")
    bad = [k for k, v in nlev.items() if v >= n]
    if bad:
        raise ModelError(
            "number of levels of each grouping factor must be < number of observations "
            f"(problems: {', '.join(bad)})"
        )


def check_zdims(reTrms: ReTrms, n: int) -> None:
    """lme4's checkZdims: each term needs fewer random effects than observations."""
    for t in reTrms.terms:
        q = t.nl * t.nc
        if n <= q:
            raise ModelError(
                f"number of observations (={n}) <= number of random effects (={q}) for term ({t.label}); "
                "the random-effects parameters and the residual variance (or scale parameter) "
                "are probably unidentifiable"
            )


def mkLmerDevfun(lmod: LmerFormula, start: np.ndarray | None = None) -> CholmodObjective:
    """The profiled criterion as a function of theta (the CHOLMOD objective of the model's design
    and response), with lme4's starting value in ``start``."""
    resp = lmer_resp(lmod.y, lmod.weights, lmod.offset, lmod.REML)
    return CholmodObjective(lmm_design(lmod.X, lmod.reTrms, resp), resp, get_start(lmod, start))


def get_start(lmod: LmerFormula, start: np.ndarray | dict | None) -> np.ndarray:
    """lme4's getStart, and mkLmerDevfun's variance-ratio start for scalar intercept terms."""
    rt = lmod.reTrms
    if isinstance(start, dict):
        start = start.get("theta")
    if start is not None:
        start = np.asarray(start, dtype=float)
        if start.shape != rt.theta0.shape:
            raise ModelError(f"incorrect number of theta components (!={rt.theta0.size})")
        return start
    theta = rt.theta0.copy()
    scalar = all(t.cnms == ["(Intercept)"] for t in rt.terms) and len(rt.flist) == len(rt.lower)
    if scalar:
        y = lmod.y
        v = np.array([np.var(_group_means(y, f.codes, f.nlevels), ddof=1) for f in rt.flist.values()])
        v_e = np.var(y, ddof=1) - v.sum()
        if np.isfinite(v_e) and v_e > 0:
            theta = np.sqrt(v / v_e)
    return theta


def _group_means(y: np.ndarray, codes: np.ndarray, nlevels: int) -> np.ndarray:
    """R's ave(y, f): each observation replaced by its group's mean."""
    sums = np.bincount(codes, weights=y, minlength=nlevels)
    counts = np.bincount(codes, minlength=nlevels)
    return (sums / counts)[codes]
