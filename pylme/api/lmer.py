"""Fitting a linear mixed model, as lme4's four visible steps:

``lFormula`` (formula + data -> frame, X, random-effects terms) ->
``mkLmerDevfun`` (-> the profiled criterion as a function of theta; pylme.objectives.lformula) ->
``optimizeLmer`` (-> theta-hat, with lme4's restart and boundary checks) ->
``mkMerMod`` (-> the fitted model), with ``checkConv`` between the last two (pylme.fitting.driver).
``lmer`` runs them in order; this module puts the steps and the fitted model's class together.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ModelError
from ..fitted.model import LmerMod
from ..fitting.convergence import ConvCheck
from ..fitting.driver import LmerControl, OptResult, fit_formula, make_model
from ..objectives.lformula import LmerFormula
from ..objectives.objective import Objective


def mkMerMod(lmod: LmerFormula, devfun: Objective, opt: OptResult, conv: ConvCheck, control: LmerControl) -> LmerMod:
    """lme4's mkMerMod: the fitted linear mixed model at theta-hat."""
    return make_model(LmerMod, lmod, devfun, opt, conv, control)


def lmer(
    formula: str,
    data: pd.DataFrame,
    REML: bool = True,
    weights: str | np.ndarray | None = None,
    offset: str | np.ndarray | None = None,
    start: np.ndarray | dict | None = None,
    control: LmerControl | None = None,
    verbose: int = 0,
    devFunOnly: bool = False,
    client=None,
):
    """Fit a linear mixed model as lme4's ``lmer`` does (REML by default); ``devFunOnly=True``
    returns the objective (the CHOLMOD objective, lme4's devfun) without fitting. ``data`` may be
    a dask DataFrame: the model is then fitted from statistics of its partitions
    (pylme.scaleout.distributed), on ``client`` (a dask.distributed Client) if given, else on dask's
    default scheduler."""
    from ..scaleout.daskframe import is_dask_frame

    if is_dask_frame(data):
        if devFunOnly:
            raise ModelError("devFunOnly=True needs the rows in memory; a dask DataFrame's stay in its partitions")
        from ..scaleout.distributed import lmer_dask

        return lmer_dask(formula, data, REML, weights, offset, start, control, verbose, client)
    if client is not None:
        raise ModelError("client= is for a dask DataFrame; this data is in memory")
    return fit_formula(LmerMod, formula, data, REML, weights, offset, start, control, verbose, devFunOnly)
