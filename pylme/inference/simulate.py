"""Responses simulated from a fitted model (lme4's simulate.merMod).

With ``re_form="~0"`` (lme4's default ``re.form = NA``, ``use.u = FALSE``) new random effects
are drawn for every term: ``y* = X beta + offset + sigma (Z Lambda u* + e*)`` with u*, e*
standard normal. With ``re_form=None`` (``use.u = TRUE``) the random effects stay at their
conditional modes and only e* is drawn; a formula keeps the terms it names and draws the
others. Draws come in lme4's order (all of u* for every simulation, then all of e*) from R's
generator (``pylme.rbase.rng``), so a seed gives the responses lme4 gives after ``set.seed(seed)``.
As in lme4, prior weights do not scale the simulated residuals.

For a glmer fit the random effects are drawn as for lmer (R's stream), the mean is the inverse
link of the simulated linear predictor, and the response is drawn from the family around it
(``_glmm_response``: numpy's draws, not R's).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, PylmeWarning
from ..rbase.rng import RRandom
from .predict import selected_terms


def simulate(fm, nsim: int = 1, seed: int | None = None, re_form="~0", use_u: bool | None = None) -> pd.DataFrame:
    """``simulate(fm, nsim, seed, re.form)``: a DataFrame with columns sim_1 ... sim_nsim."""
    nsim = check_nsim(nsim)
    if use_u is not None:
        re_form = None if use_u else "~0"
    seed = new_seed() if seed is None else seed
    rng = RRandom(seed)
    keep = selected_terms(fm, re_form)
    drawn = _drawn_terms(fm, keep)
    eta = fm.predict(re_form=re_form).to_numpy()
    sim = np.zeros((fm.n, nsim))
    if drawn:
        U = _u_to_response(fm, drawn)
        sim += U @ rng.rnorm(U.shape[1] * nsim).reshape(nsim, U.shape[1]).T
    if fm.family is not None:
        values = _glmm_response(fm, fm.family.linkinv(eta[:, None] + sim), seed)
    else:
        sim += rng.rnorm(fm.n * nsim).reshape(nsim, fm.n).T
        values = eta[:, None] + fm.sigma() * sim
    return pd.DataFrame(values, index=fm.lmod.frame.data.index, columns=[f"sim_{k + 1}" for k in range(nsim)])


def _glmm_response(fm, mu: np.ndarray, seed: int) -> np.ndarray:
    """lme4's simfunList: a response drawn around each simulated mean (columns), on the scale
    the fit's response has (binomial: the proportion of the prior weights, the number of
    trials). The draws are numpy's (a generator seeded with ``seed``), not R's rbinom/rpois/
    rgamma streams; the dispersions are lme4 1.1-31's: Gamma shape sigma x weights, inverse
    Gaussian shape weights / sigma, negative binomial size theta."""
    fam, wts = fm.family, fm.lmod.prior_weights[:, None]
    gen = np.random.default_rng(seed)
    name = "negative.binomial" if fam.theta is not None else fam.family
    if name in ("gaussian", "poisson", "negative.binomial") and np.any(wts != 1):
        warnings.warn("ignoring prior weights", PylmeWarning, stacklevel=3)
    if name == "binomial":
        if np.any(wts % 1 != 0):
            raise DataError("cannot simulate from non-integer prior.weights")
        size = wts.astype(np.int64) * np.ones_like(mu, dtype=np.int64)
        return np.divide(gen.binomial(size, mu), size, out=np.zeros_like(mu), where=size > 0)
    if name == "poisson":
        return gen.poisson(mu).astype(float)
    if name == "negative.binomial":
        return gen.negative_binomial(fam.theta, fam.theta / (fam.theta + mu)).astype(float)
    if name == "Gamma":
        shape = fm.sigma() * wts * np.ones_like(mu)
        return gen.gamma(shape, mu / shape)
    if name == "inverse.gaussian":
        return gen.wald(mu, wts / fm.sigma() * np.ones_like(mu))
    return gen.normal(mu, fm.sigma())


def check_nsim(nsim) -> int:
    if isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 1:
        raise ValueError(f"nsim must be a positive integer, not {nsim!r}")
    return int(nsim)


def new_seed() -> int:
    """A fresh seed for R's set.seed when none is given (so the run can still be repeated)."""
    return int(np.random.SeedSequence().entropy % 2**31)


def _drawn_terms(fm, keep: dict[int, list[int]]) -> list[int]:
    """The terms whose random effects are simulated: those re_form does not keep whole."""
    terms = fm.lmod.reTrms.terms
    partial = [terms[i].label for i, cols in keep.items() if len(cols) != terms[i].nc]
    if partial:
        raise FormulaError(f"simulate: re_form must keep whole random-effects terms; it keeps part of ({partial[0]})")
    return [i for i in range(len(terms)) if i not in keep]


def _u_to_response(fm, drawn: list[int]):
    """``(Lambdat Zt)'`` restricted to the drawn terms: maps spherical effects u* to the rows."""
    rt = fm.lmod.reTrms
    rows = np.concatenate([np.arange(rt.Gp[i], rt.Gp[i + 1]) for i in drawn])
    Lambdat = rt.lam.Lambdat(fm.theta).tocsr()[rows][:, rows]
    return (Lambdat @ rt.Zt.tocsr()[rows]).T.tocsr()
