"""What ``scale()``, ``poly()``, ``bs()`` and ``ns()`` learn from all rows of a partitioned data
set, by passes over its partitions: the states that pylme.description.bases learns from the rows
in memory (R's model.frame learns them before rows with missing values are dropped), keyed as the
evaluator keys them, so that the partitions' model matrices are the in-memory fit's.

- scale: the mean, then the root mean square of the centred values (two passes);
- poly: the three-term recurrence of the orthogonal polynomials (one pass per degree, the Stieltjes
  procedure: alpha_k and |Z_k|^2 from the sums of Z_k^2 and x Z_k^2, Z_k from the coefficients before);
- bs, ns: the range of x, then the interior knots as exact quantiles (pylme.scaleout.partitions).
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from ..description import bases
from ..description.evaluate import FUNCTIONS, Evaluator, _Args, poly_arguments, scale_arguments, spline_arguments
from ..description.rsyntax import deparse
from ..errors import DataError
from .partitions import add, exact_quantiles, over_partitions


def learn_states(ddf, calls: list, prototype: pd.DataFrame, client=None) -> dict:
    """The state of each stateful call (``pylme.scaleout.daskframe.stateful_calls``), learned from
    all partitions' rows; its arguments are checked on the prototype frame first."""
    states: dict = {}
    for node in calls:
        label = deparse(node)
        if label in states:
            continue
        args = _Args(Evaluator(prototype, {}), node, FUNCTIONS[node.text].formals)
        args.numeric_vector()  # x must be numbers: the formula's error, before any pass
        state = _LEARNERS[node.text](ddf, node, args, label, client)
        if state is not None:
            states[label] = state
    return states


def _x(part: pd.DataFrame, node) -> np.ndarray:
    """The call's x on a partition's rows, missing values left out."""
    x = _Args(Evaluator(part, {}), node, FUNCTIONS[node.text].formals).numeric_vector()
    return x[~np.isnan(x)]


# ---------------------------------------------------------------- scale
def _learn_scale(ddf, node, args: _Args, label: str, client) -> tuple[float | None, float | None]:
    center, scale = scale_arguments(args, label)
    given = not isinstance(center, (bool, np.bool_))
    total, count, squares = over_partitions(ddf, _moments_task, (node, float(center) if given else 0.0), client,
                                            combine=add)[0]
    c = None if center is False else float(center) if given else float(total / count)
    if center is True and scale is True:
        total, count, squares = over_partitions(ddf, _moments_task, (node, c), client, combine=add)[0]
    s = np.sqrt(squares / max(1, count - 1)) if scale is True else None if scale is False else float(scale)
    return c, None if s is None else float(s)


def _moments_task(part: pd.DataFrame, index: int, node, shift: float) -> np.ndarray:
    """A partition's sum, count and sum of squares of x minus ``shift``."""
    x = _x(part, node) - shift
    return np.array([x.sum(), x.size, x @ x])


# ---------------------------------------------------------------- poly
def _learn_poly(ddf, node, args: _Args, label: str, client) -> bases.PolyState | None:
    degree, raw = poly_arguments(args, label)
    if raw:
        return None
    distinct = over_partitions(ddf, _distinct_task, (node, degree + 1), client,
                               combine=partial(_union, cap=degree + 1))[0]
    if distinct.size <= degree:  # exact: no partition's values were cut at degree + 1
        raise DataError(f"poly(): 'degree' ({degree}) must be less than the number of unique points ({distinct.size})")
    alpha, norm2 = np.zeros(0), np.ones(1)
    for k in range(degree + 1):
        centre = alpha[0] if alpha.size else 0.0
        zz, xzz = over_partitions(ddf, _poly_task, (node, alpha, norm2, centre), client, combine=add)[0]
        norm2 = np.append(norm2, zz)
        if k < degree:
            alpha = np.append(alpha, xzz / zz + centre)
    return bases.PolyState(alpha, norm2)


def _poly_task(part: pd.DataFrame, index: int, node, alpha: np.ndarray, norm2: np.ndarray,
               centre: float) -> np.ndarray:
    """A partition's sums of Z_k^2 and (x - centre) Z_k^2, Z_k the next polynomial of the recurrence."""
    x = _x(part, node)
    z2 = bases.poly_recurrence(x, alpha, norm2)[:, -1] ** 2
    return np.array([z2.sum(), (x - centre) @ z2])


def _distinct_task(part: pd.DataFrame, index: int, node, cap: int) -> np.ndarray:
    return np.unique(_x(part, node))[:cap]


def _union(a: np.ndarray, b: np.ndarray | None = None, *, cap: int) -> np.ndarray:
    """The distinct values of both, the smallest ``cap`` kept (enough to tell whether there are ``cap``)."""
    return a if b is None else np.union1d(a, b)[:cap]


# ---------------------------------------------------------------- bs, ns
def _learn_spline(ddf, node, args: _Args, label: str, client) -> bases.SplineState:
    natural = node.text == "ns"
    kw = spline_arguments(args, label, natural)
    bases.check_spline_degree(kw["degree"])
    bounds = bases.spline_bounds(kw["boundary"]) or over_partitions(ddf, _range_task, (node,), client,
                                                                     combine=_span)[0]
    knots = kw["knots"]
    probs = bases.spline_knot_probs(kw["df"], knots, kw["degree"], kw["intercept"], natural)
    if probs.size:
        knots = exact_quantiles(ddf, _Within(node, *bounds), list(probs), client)
    return bases.spline_knots_state(knots, bounds, kw["degree"], kw["intercept"], natural)


def _range_task(part: pd.DataFrame, index: int, node) -> tuple[float, float]:
    x = _x(part, node)
    return (float(x.min()), float(x.max())) if x.size else (np.inf, -np.inf)


def _span(a: tuple[float, float], b: tuple[float, float] | None = None) -> tuple[float, float]:
    return a if b is None else (min(a[0], b[0]), max(a[1], b[1]))


class _Within:
    """A partition's x within the boundary knots (the values whose quantiles are the knots)."""

    def __init__(self, node, lo: float, hi: float):
        self.node, self.lo, self.hi = node, lo, hi

    def __call__(self, part: pd.DataFrame) -> np.ndarray:
        x = _x(part, self.node)
        return x[(x >= self.lo) & (x <= self.hi)]


_LEARNERS = {"scale": _learn_scale, "poly": _learn_poly, "bs": _learn_spline, "ns": _learn_spline}
