"""The response of a linear mixed model (lme4's ``lmerResp``): y, the offset, the prior weights,
and the profiled criterion read off a penalized least-squares solution.

The design (pylme.objectives.design) holds X, Z and theta -> Lambda; this module holds what belongs to the
observed response, so that a new response (refit, simulation, many responses) or new weights
leave the design as it is. With ``W`` the prior weights, ``ldW = sum log W``, ``pwrss`` the
penalized weighted residual sum of squares, n rows and p fixed effects, lme4's ``Laplace`` is

    ML:    ldL2 - ldW         + n   (1 + log(2 pi pwrss / n))
    REML:  ldL2 - ldW + ldRX2 + n-p (1 + log(2 pi pwrss / (n-p)))
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class CriterionTerms(NamedTuple):
    """What the criterion reads from a factorisation (floats, or arrays of them for a batch)."""

    ldL2: float | np.ndarray
    ldRX2: float | np.ndarray
    pwrss: float | np.ndarray


@dataclass
class LmerResp:
    """A Gaussian response: y, its offset and prior weights, and whether the criterion is REML."""

    y: np.ndarray
    offset: np.ndarray
    weights: np.ndarray  # prior weights (ones when none are given)
    REML: bool = True
    weighted: bool = False  # whether prior weights were given (else Z is used unscaled)

    def __post_init__(self) -> None:
        self.sqrtw = np.sqrt(self.weights)
        self.ldW = float(np.sum(np.log(self.weights)))
        self.yw = (self.y - self.offset) * self.sqrtw

    @property
    def n(self) -> int:
        return len(self.y)

    def with_y(self, y: np.ndarray) -> "LmerResp":
        """The same offset and weights for another response."""
        new = copy.copy(self)
        new.y = np.asarray(y, dtype=float)
        new.yw = (new.y - self.offset) * self.sqrtw
        return new

    def with_REML(self, REML: bool) -> "LmerResp":
        """The same response with the other criterion (refitML, the profile's ML deviance)."""
        new = copy.copy(self)
        new.REML = bool(REML)
        return new

    def wrss(self, eta: np.ndarray) -> float:
        """The weighted residual sum of squares of the linear predictor eta (no offset),
        the residuals computed explicitly, as lme4 does."""
        wres = self.sqrtw * (self.y - self.offset - eta)
        return float(wres @ wres)

    def deviance(self, st: CriterionTerms, REML: bool, p: int) -> float | np.ndarray:
        """lme4's ``Laplace``: either criterion from the same solution (devCrit); p fixed effects."""
        lnum = np.log(2.0 * np.pi * st.pwrss)
        if not REML:
            return st.ldL2 - self.ldW + self.n * (1.0 + lnum - np.log(self.n))
        nmp = self.n - p
        return st.ldL2 - self.ldW + st.ldRX2 + nmp * (1.0 + lnum - np.log(nmp))

    def criterion(self, st: CriterionTerms, p: int) -> float | np.ndarray:
        """This response's criterion (REML or ML deviance) from a solution."""
        return self.deviance(st, self.REML, p)


def lmer_resp(y: np.ndarray, weights: np.ndarray | None = None, offset: np.ndarray | None = None,
              REML: bool = True) -> LmerResp:
    """The response of a fit (lme4's ``mkRespMod``): no weights means weights of 1, no offset 0."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    off = np.zeros(n) if offset is None else np.asarray(offset, dtype=float)
    return LmerResp(y, off, w, REML, weighted=weights is not None)
