"""Interpolation splines as R's ``splines`` package builds them for lme4's profiles.

``interp_spline`` is ``interpSpline``: the natural cubic spline through the points, held as a
piecewise polynomial per knot (value, slope, curvature/2, cubic coefficient), R's polySpline.
``back_spline`` is ``backSpline``: the inverse of a monotone spline, a piecewise cubic that
matches the values and inverse slopes at the knots, quadratic (or linear) on the two end
intervals. ``predict`` evaluates a polySpline as R does: intervals closed on the right, NaN
outside the knots. lme4's profile confidence intervals are the back spline of zeta evaluated
at the normal quantiles, so using R's construction gives R's intervals.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline


@dataclass
class PolySpline:
    """A piecewise cubic: ``coef[i]`` are the polynomial coefficients in ``x - knots[i]``."""

    knots: np.ndarray
    coef: np.ndarray  # (nknots, 4): constant, linear, quadratic, cubic

    def predict(self, x) -> np.ndarray:
        """R's predict.polySpline: NaN outside [first knot, last knot]."""
        x = np.atleast_1d(np.asarray(x, dtype=float))
        k = self.knots
        i = np.searchsorted(k, x, side="left") - 1  # intervals (k[i], k[i+1]]
        i[x == k[0]] = 0
        inside = (i >= 0) & (i < k.size - 1) & np.isfinite(x)
        out = np.full(x.shape, np.nan)
        ii = i[inside]
        d = x[inside] - k[ii]
        c = self.coef[ii]
        out[inside] = c[:, 0] + d * (c[:, 1] + d * (c[:, 2] + d * c[:, 3]))
        return out


def interp_spline(x, y) -> PolySpline:
    """R's ``interpSpline(x, y)``: the natural cubic interpolating spline (at least 4 distinct x)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if np.any(np.diff(x) == 0):
        raise ValueError("values of 'x' must be distinct")
    if x.size < 4:
        raise ValueError("must have at least 'ord'=4 points")
    cs = CubicSpline(x, y, bc_type="natural")
    coef = np.empty((x.size, 4))
    coef[:-1] = cs.c[::-1].T
    coef[-1] = [y[-1], cs(x[-1], 1), 0.0, 0.0]
    return PolySpline(x, coef)


def back_spline(sp: PolySpline) -> PolySpline:
    """R's ``backSpline``: the inverse of a monotone cubic spline."""
    knots, coef = sp.knots, sp.coef
    nk = knots.size
    kdiff = np.diff(knots)
    bknots = coef[:, 0]
    adiff = np.diff(bknots)
    if np.all(adiff < 0):
        reverse = True
    elif np.all(adiff > 0):
        reverse = False
    else:
        raise ValueError("spline must be monotone")
    b = np.zeros((nk, 4))
    b[:, 0] = knots
    b[:, 1] = 1.0 / coef[:, 1]
    for i in range(nk - 1):  # cubic Hermite piece: values and inverse slopes at both ends
        a = np.array([[adiff[i] ** 2, adiff[i] ** 3], [2 * adiff[i], 3 * adiff[i] ** 2]])
        b[i, 2:] = np.linalg.solve(a, [kdiff[i] - adiff[i] * b[i, 1], b[i + 1, 1] - b[i, 1]])
    b[-1, 1:] = np.nan
    if nk > 2:  # quadratic end pieces, each matching the inverse slope at its inner knot
        b[0, 3] = b[nk - 2, 3] = 0.0
        b[0, 1:3] = np.linalg.solve(np.array([[adiff[0], adiff[0] ** 2], [1.0, 2 * adiff[0]]]),
                                    [kdiff[0], 1.0 / coef[1, 1]])
        b[nk - 2, 2] = (kdiff[-1] - adiff[-1] * b[nk - 2, 1]) / adiff[-1] ** 2
    if b[0, 2] > 0:
        b[0, 2], b[0, 1] = 0.0, kdiff[0] / adiff[0]
    if b[nk - 2, 2] < 0:
        b[nk - 2, 2], b[nk - 2, 1] = 0.0, kdiff[-1] / adiff[-1]
    if reverse:
        return PolySpline(bknots[::-1].copy(), b[::-1].copy())
    return PolySpline(bknots.copy(), b)
