"""Negative binomial GLMMs as lme4 1.1-31's ``glmer.nb``.

lme4's steps, which pylme follows:

1. a Poisson ``glmer`` of the same model (its messages suppressed, its warnings kept);
2. a first shape theta from MASS's ``theta.ml`` (Newton's method on the shape's score at the
   Poisson fit's means, ``limit = 20`` iterations, ``eps = 2 * tol``);
3. a ``glmer`` with ``negative.binomial(theta)``;
4. R's ``optimize`` (Brent's method) of -2 logLik over log(theta) in ``interval``
   (log(theta) +- 3) to ``tol`` (5e-5), each evaluation refitting the last fit with the new
   theta (lme4's refitNB: stage 2 from the last fit's theta and beta).

The result is the fit at the optimum; its family is ``Negative Binomial(theta)`` (MASS's name,
theta rounded to 4 digits), ``getME("glmer.nb.theta")`` gives theta, ``nevals`` the number of
refits, and logLik counts theta as a parameter (lme4's npar).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from ..description.family import negative_binomial, poisson
from ..errors import FitMessage, ModelError, PylmeWarning, SingularFitMessage


def theta_ml(y: np.ndarray, mu: np.ndarray, weights: np.ndarray | None = None, limit: int = 10,
             eps: float = np.finfo(float).eps ** 0.25) -> tuple[float, list[str]]:
    """MASS's ``theta.ml``: the maximum-likelihood negative binomial shape for means ``mu``,
    by Newton's method from the moment estimate; with MASS's warnings (truncation at zero, the
    iteration limit)."""
    from scipy import special

    y, mu = np.asarray(y, dtype=float), np.asarray(mu, dtype=float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    t0 = float(np.sum(w) / np.sum(w * (y / mu - 1.0) ** 2))
    it, delta = 1, 1.0
    while it < limit and abs(delta) > eps:
        t0 = abs(t0)
        score = np.sum(w * (special.digamma(t0 + y) - special.digamma(t0) + math.log(t0) + 1.0
                            - np.log(t0 + mu) - (y + t0) / (mu + t0)))
        info = np.sum(w * (-special.polygamma(1, t0 + y) + special.polygamma(1, t0) - 1.0 / t0
                           + 2.0 / (mu + t0) - (y + t0) / (mu + t0) ** 2))
        delta = float(score / info)
        t0 += delta
        it += 1
    notes = []
    if t0 < 0:
        t0 = 0.0
        notes.append("estimate truncated at zero")
    if it == limit:
        notes.append("iteration limit reached")
    return t0, notes


def glmer_nb(formula: str, data: pd.DataFrame, interval: tuple[float, float] | None = None, tol: float = 5e-5,
             verbose: int = 0, initCtrl: dict | None = None, **kwargs):
    """lme4's ``glmer.nb(formula, data, ...)``: a negative binomial GLMM with its shape theta
    estimated (see the module docstring). ``kwargs`` go to ``glmer`` (``control``, ``nAGQ``,
    ``weights``, ``offset``, ``start``); ``initCtrl`` as lme4's (``limit``, ``eps``, ``theta``:
    a starting theta skips the Poisson fit)."""
    from .glmer import glmer

    if "family" in kwargs:
        raise ModelError("glmer_nb fits the negative binomial family: leave 'family' out")
    init = {"limit": 20, "eps": 2 * tol, "theta": None, **(initCtrl or {})}
    th = init["theta"]
    if th is None:
        with _quiet_messages():
            g0 = glmer(formula, data, family=poisson(), verbose=int(verbose >= 2), **kwargs)
        th, notes = theta_ml(g0.lmod.y, g0.fitted().to_numpy(), g0.lmod.prior_weights, init["limit"], init["eps"])
        for note in notes:
            warnings.warn(note, PylmeWarning, stacklevel=2)
        if verbose:
            print(f"th := est_theta(glmer(..)) = {th:.7g}", end="")
    with _quiet_messages():
        g1 = glmer(formula, data, family=negative_binomial(th), **kwargs)
    if verbose:
        print(f" --> dev.= -2*logLik(.) = {-2 * float(g1.logLik()):.7g}")
    lo, hi = (math.log(th) - 3, math.log(th) + 3) if interval is None else interval
    fit = opt_theta(g1, (lo, hi), tol, verbose)
    fit.data_warnings = list(g1.data_warnings)
    fit.emit_messages()
    return fit


def opt_theta(fit, interval: tuple[float, float], tol: float, verbose: int = 0):
    """lme4's optTheta: Brent's minimisation (R's ``optimize``) of -2 logLik over log(theta),
    each evaluation refitting the last fit with ``negative.binomial(exp(t))``; the fit at the
    minimum, with ``nevals`` the number of refits."""
    from scipy.optimize import fminbound

    from .glmer import refit_glmer

    state = {"last": fit, "fits": {}}

    def objective(t: float) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state["last"] = refit_glmer(state["last"], family=negative_binomial(math.exp(t)))
        state["fits"][t] = state["last"]
        dev = -2.0 * float(state["last"].logLik())
        if verbose:
            print(f"{len(state['fits']):2d}: th={math.exp(t):#15.10g}, dev={dev:#14.8f}, "
                  f"beta[1]={state['last'].fixef().iloc[0]:#14.8f}")
        return dev

    tmin = fminbound(objective, interval[0], interval[1], xtol=tol, maxfun=1000)
    best = state["fits"][tmin]
    best.nevals = len(state["fits"])
    return best


class _quiet_messages(warnings.catch_warnings):
    """R's suppressMessages: lme4's messages (the singular-fit note) hidden, warnings kept."""

    def __enter__(self):
        out = super().__enter__()
        warnings.simplefilter("ignore", FitMessage)
        warnings.simplefilter("ignore", SingularFitMessage)
        return out


__all__ = ["glmer_nb", "theta_ml", "opt_theta"]
