"""The objective: what the optimiser minimises, declared once for every way of computing it.

lme4's ``mkLmerDevfun`` returns a function of theta; pylme has three implementations of that
function, equal to rounding (pylme.objectives.pls: CHOLMOD, the general one; pylme.objectives.dense: one dense
Cholesky factor for small models; pylme.objectives.blocked: MixedModels.jl's blocked factor for large ones).
Each is built from a design (pylme.objectives.design) and a response (pylme.objectives.response) and implements
``Objective``; callers use the protocol and never ask which one they hold.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import ModelError
from .design import LmmDesign
from .response import CriterionTerms, LmerResp


@dataclass
class PLSState:
    """The solution of the penalized least-squares problem at one theta (what getME reads)."""

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    b: np.ndarray  # Lambda u: the random effects on their own scale
    eta: np.ndarray  # X beta + Z b (no offset)
    wrss: float
    ussq: float
    ldL2: float
    ldRX2: float
    RX: np.ndarray  # upper triangular, RX'RX = X'X - RZX'RZX
    RZX: np.ndarray

    @property
    def pwrss(self) -> float:
        return self.wrss + self.ussq


class Objective(Protocol):
    """theta -> the profiled REML criterion or ML deviance of a design and a response.

    The methods with a body are what an implementation gets by subclassing this protocol; the
    others it must define."""

    design: LmmDesign
    resp: LmerResp
    start: np.ndarray  # where the optimiser starts
    nevals: int  # criterion evaluations so far

    @property
    def lower(self) -> np.ndarray:
        """theta's lower bounds."""
        return self.design.lower

    def criterion(self, theta: np.ndarray) -> float:
        """The criterion at theta."""
        ...

    def __call__(self, theta: np.ndarray) -> float:
        return self.criterion(theta)

    def many(self, thetas: np.ndarray) -> np.ndarray:
        """The criterion at each row of ``thetas`` (checkConv's finite-difference points)."""
        return np.array([self.criterion(theta) for theta in thetas])

    def with_response(self, resp: LmerResp) -> "Objective":
        """The same objective for another response with the same weights (refit, refitML,
        the bootstrap): what depends on the design alone is reused."""
        ...

    def pls_state(self, theta: np.ndarray) -> PLSState:
        """The PLS solution at theta, the fit's residuals computed explicitly as lme4 does."""
        ...

    def cond_var_blocks(self, theta: np.ndarray, columns: list[np.ndarray]) -> np.ndarray:
        """Blocks of ``Lambda (Lambda'Z'WZLambda + I)^-1 Lambda'`` for groups of random effects
        (``columns``: per level, the indices into b; all of one length k): (levels, k, k),
        unscaled (multiply by sigma^2)."""
        ...

    def deviance(self, st: CriterionTerms, REML: bool | None = None) -> float | np.ndarray:
        """Either criterion (REML, or the ML deviance) from a solution's terms; None: this
        objective's own."""
        REML = self.resp.REML if REML is None else REML
        return self.resp.deviance(st, REML, self.design.p)

    @property
    def has_gradient(self) -> bool:
        """Whether ``criterion_and_gradient`` is available (L-BFGS-B)."""
        return False

    def criterion_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The criterion and its gradient in theta."""
        raise ModelError(f"{type(self).__name__} has no analytic gradient")

    def prepare(self) -> None:
        """Do once the work that every objective made from this one by ``with_response`` reuses
        (CHOLMOD's symbolic analysis, where CHOLMOD solves at the optimum): many responses."""

    @property
    def reports_progress(self) -> bool:
        """Whether a fit on it is long enough for a progress bar on a terminal."""
        return False

    def memory_plan(self) -> str:
        """What its factor was estimated to need, one line per block ('' if nothing is planned)."""
        return ""

    def planned_bytes(self) -> float:
        """The bytes its factor was estimated to need (0 if nothing is planned)."""
        return 0.0
