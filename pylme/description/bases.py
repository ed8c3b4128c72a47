"""The data-dependent transformations of a covariate that R's formulas use, as R computes them:
``poly`` (orthogonal polynomials, or raw powers), ``scale``, and the B-spline bases of the splines
package, ``bs`` and ``ns``.

Each is learned once from the fitted data (its ``*State``: poly's recurrence coefficients,
scale's centre and scale, the splines' knots) and applied to new data with that state, as R's
``makepredictcall`` makes ``predict`` do. Learning ignores missing values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .factors import seq_len_out


# ---------------------------------------------------------------- poly
@dataclass(frozen=True)
class PolyState:
    """R's ``attr(poly(x, degree), "coefs")``: the three-term recurrence (alpha, norm2)."""

    alpha: np.ndarray
    norm2: np.ndarray


def poly_state(x: np.ndarray, degree: int) -> PolyState:
    """R's ``poly(x, degree)`` coefficients: the QR decomposition of the centred powers of x
    gives orthogonal columns, whose squared norms and weighted means are the recurrence."""
    x = x[~np.isnan(x)]
    unique = len(np.unique(x))
    if degree >= unique:
        raise DataError(f"poly(): 'degree' ({degree}) must be less than the number of unique points ({unique})")
    xbar = x.mean()
    xc = x - xbar
    q, r = np.linalg.qr(np.vander(xc, degree + 1, increasing=True))
    Z = q * np.diag(r)  # sign-free: R's qr.qy(QR, diag(R))
    norm2 = (Z**2).sum(axis=0)
    alpha = ((xc[:, None] * Z**2).sum(axis=0) / norm2 + xbar)[:degree]
    return PolyState(alpha, np.concatenate([[1.0], norm2]))


def poly_apply(x: np.ndarray, state: PolyState) -> np.ndarray:
    """R's ``poly(x, degree, coefs = state)``: the orthogonal polynomials at x (n x degree)."""
    return (poly_recurrence(x, state.alpha, state.norm2) / np.sqrt(state.norm2[1:]))[:, 1:]


def poly_recurrence(x: np.ndarray, alpha: np.ndarray, norm2: np.ndarray) -> np.ndarray:
    """The monic orthogonal polynomials Z_0 .. Z_d at x (n x (d + 1)) from the first d
    coefficients of the recurrence (alpha, and norm2 = [1, |Z_0|^2, ..., |Z_(d-1)|^2])."""
    degree = alpha.size
    Z = np.ones((x.size, degree + 1))
    if degree:
        Z[:, 1] = x - alpha[0]
    for i in range(1, degree):
        Z[:, i + 1] = (x - alpha[i]) * Z[:, i] - (norm2[i + 1] / norm2[i]) * Z[:, i - 1]
    return Z


def poly_raw(x: np.ndarray, degree: int) -> np.ndarray:
    """R's ``poly(x, degree, raw = TRUE)``: x, x^2, ..., x^degree."""
    return x[:, None] ** np.arange(1, degree + 1)


# ---------------------------------------------------------------- scale
def scale_state(x: np.ndarray, center, scale) -> tuple[float | None, float | None]:
    """R's ``scale(x, center, scale)`` attributes: the mean (center = TRUE) and the root mean
    square of the centred values over n - 1 (scale = TRUE), or the numbers given."""
    ok = x[~np.isnan(x)]
    c = float(ok.mean()) if center is True else (None if center is False else float(center))
    if c is not None:
        ok = ok - c
    if scale is True:
        s = math.sqrt(float(np.sum(ok**2)) / max(1, ok.size - 1))
    else:
        s = None if scale is False else float(scale)
    return c, s


def scale_apply(x: np.ndarray, state: tuple[float | None, float | None]) -> np.ndarray:
    c, s = state
    out = x - c if c is not None else x.astype(float)
    return out / s if s is not None else out


# ---------------------------------------------------------------- B-splines
@dataclass(frozen=True)
class SplineState:
    """What ``makepredictcall`` keeps of ``bs``/``ns``: knots, boundary knots, degree, intercept."""

    knots: np.ndarray
    boundary: tuple[float, float]
    degree: int
    intercept: bool
    natural: bool


def quantile7(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """R's ``quantile(x, probs)`` (type 7), with R's interpolation arithmetic."""
    x = np.sort(x)
    index = 1 + (x.size - 1) * probs
    lo, hi = np.floor(index).astype(int), np.ceil(index).astype(int)
    qs = x[lo - 1]
    h = index - lo
    interp = (index > lo) & (x[hi - 1] != qs)
    return np.where(interp, (1 - h) * qs + h * x[hi - 1], qs)


def spline_state(x: np.ndarray, df, knots, degree: int, intercept: bool, boundary, natural: bool) -> SplineState:
    """R's ``bs``/``ns`` knots: ``df`` gives interior knots at equally spaced quantiles of x
    (within the boundary knots, by default the range of x)."""
    x = x[~np.isnan(x)]
    check_spline_degree(degree)
    bounds = spline_bounds(boundary) or (float(x.min()), float(x.max()))
    probs = spline_knot_probs(df, knots, degree, intercept, natural)
    if probs.size:
        knots = quantile7(x[(x >= bounds[0]) & (x <= bounds[1])], probs)
    return spline_knots_state(knots, bounds, degree, intercept, natural)


def spline_bounds(boundary) -> tuple[float, float] | None:
    """The boundary knots given (sorted); None when they are the range of x."""
    return None if boundary is None else tuple(sorted(float(b) for b in boundary))


def check_spline_degree(degree: int) -> None:
    if degree < 1:
        raise DataError("bs(): 'degree' must be integer >= 1")


def spline_knot_probs(df, knots, degree: int, intercept: bool, natural: bool) -> np.ndarray:
    """The probabilities at which R's ``bs``/``ns`` put interior knots when only ``df`` is given
    (equally spaced quantiles of x within the boundary knots); none when knots are given."""
    if knots is not None or df is None:
        return np.zeros(0)
    order = 4 if natural else degree + 1
    n_inner = max(int(df) - (1 + intercept if natural else order - (1 - intercept)), 0)
    return seq_len_out(0.0, 1.0, n_inner + 2)[1:-1]


def spline_knots_state(knots, bounds: tuple[float, float], degree: int, intercept: bool,
                       natural: bool) -> SplineState:
    """The state of a basis with these interior and boundary knots."""
    knots = np.zeros(0) if knots is None else np.sort(np.atleast_1d(np.asarray(knots, dtype=float)))
    return SplineState(knots, bounds, 3 if natural else degree, intercept, natural)


def spline_apply(x: np.ndarray, state: SplineState) -> np.ndarray:
    """The basis at x: R's ``bs`` (B-splines, the first dropped without intercept) or ``ns``
    (cubic B-splines projected onto the null space of the second derivatives at the boundary
    knots); beyond the boundary knots, bs continues each basis function by its Taylor
    polynomial at a pivot a quarter of the way to the next knot, ns linearly."""
    order = state.degree + 1
    lo, hi = state.boundary
    aknots = np.sort(np.concatenate([np.repeat([lo, hi], order), state.knots]))
    ok = ~np.isnan(x)
    basis = np.full((x.size, aknots.size - order), np.nan)
    xs = x[ok]
    inner = (xs >= lo) & (xs <= hi)
    vals = np.zeros((xs.size, basis.shape[1]))
    vals[inner] = _design(aknots, xs[inner], order)
    for side, pivot in (("left", lo), ("right", hi)):
        out = xs < lo if side == "left" else xs > hi
        if out.any():
            vals[out] = _extrapolate(aknots, xs[out], order, state, pivot, side)
    basis[ok] = vals
    if state.natural:
        const = _design(aknots, np.array([lo, hi]), order, deriv=2)
        if not state.intercept:
            const, basis = const[:, 1:], basis[:, 1:]
        q, _ = np.linalg.qr(const.T, mode="complete")
        return basis @ q[:, 2:]
    return basis if state.intercept else basis[:, 1:]


def _extrapolate(aknots, x, order, state: SplineState, boundary: float, side: str) -> np.ndarray:
    if state.natural:
        d = _design(aknots, np.array([boundary, boundary]), order, deriv=np.array([0, 1]))
        return np.column_stack([np.ones_like(x), x - boundary]) @ d
    e = 0.25
    nxt = aknots[order] if side == "left" else aknots[-order - 1]
    pivot = (1 - e) * boundary + e * nxt
    derivs = np.arange(order)
    d = _design(aknots, np.full(order, pivot), order, deriv=derivs)
    powers = (x - pivot)[:, None] ** derivs[None, :]
    return powers @ (d / np.array([math.factorial(k) for k in derivs])[:, None])


def _design(aknots: np.ndarray, x: np.ndarray, order: int, deriv=0) -> np.ndarray:
    """R's ``splineDesign(aknots, x, order, derivs)``: each B-spline (or its derivative) at x."""
    from scipy.interpolate import BSpline  # imported on first use: only bs() and ns() need it

    nb = aknots.size - order
    spline = BSpline(aknots, np.eye(nb), order - 1, extrapolate=True)
    derivs = np.broadcast_to(np.asarray(deriv), x.shape)
    out = np.empty((x.size, nb))
    for d in np.unique(derivs):
        rows = derivs == d
        out[rows] = spline(x[rows], nu=int(d))
    return out
