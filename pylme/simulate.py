"""Responses simulated from a fitted model (lme4's simulate.merMod for linear mixed models).

With ``re_form="~0"`` (lme4's default ``re.form = NA``, ``use.u = FALSE``) new random effects
are drawn for every term: ``y* = X beta + offset + sigma (Z Lambda u* + e*)`` with u*, e*
standard normal. With ``re_form=None`` (``use.u = TRUE``) the random effects stay at their
conditional modes and only e* is drawn; a formula keeps the terms it names and draws the
others. Draws come in lme4's order (all of u* for every simulation, then all of e*) from R's
generator (``pylme.rng``), so a seed gives the responses lme4 gives after ``set.seed(seed)``.
As in lme4, prior weights do not scale the simulated residuals.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import FormulaError
from .predict import selected_terms
from .rng import RRandom


def simulate(fm, nsim: int = 1, seed: int | None = None, re_form="~0", use_u: bool | None = None) -> pd.DataFrame:
    """``simulate(fm, nsim, seed, re.form)``: a DataFrame with columns sim_1 ... sim_nsim."""
    nsim = check_nsim(nsim)
    if use_u is not None:
        re_form = None if use_u else "~0"
    rng = RRandom(new_seed() if seed is None else seed)
    keep = selected_terms(fm, re_form)
    drawn = _drawn_terms(fm, keep)
    eta = fm.predict(re_form=re_form).to_numpy()
    sim = np.zeros((fm.n, nsim))
    if drawn:
        U = _u_to_response(fm, drawn)
        sim += U @ rng.rnorm(U.shape[1] * nsim).reshape(nsim, U.shape[1]).T
    sim += rng.rnorm(fm.n * nsim).reshape(nsim, fm.n).T
    values = eta[:, None] + fm.sigma() * sim
    return pd.DataFrame(values, index=fm.lmod.frame.data.index, columns=[f"sim_{k + 1}" for k in range(nsim)])


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
