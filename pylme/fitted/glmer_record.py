"""A glmer fit as a FitRecord (the conformance harness's common format).

The criterion is the optimised deviance (-2 logLik as lme4 reports it); ``theta`` is theta-hat;
``devfun_at`` holds the deviance at given (theta, beta) points, each as {"theta": [theta..., beta...],
"value": x}; ``residuals`` are response residuals y - mu.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .record import FitRecord


def glmer_record(fm, devfun_pars: list[list[float]] | None = None) -> FitRecord:
    from .. import __version__

    vc = fm.vcov()
    re = fm.ranef(condVar=True)
    ranef, condvar_sd = {}, {}
    for grp, df in re.items():
        sds = np.sqrt(np.diagonal(re.condVar[grp], axis1=1, axis2=2))
        ranef[grp] = {c: dict(zip(df.index, map(float, df[c]))) for c in df.columns}
        condvar_sd[grp] = {c: dict(zip(df.index, map(float, sds[:, k]))) for k, c in enumerate(df.columns)}
    par = list(map(float, fm.opt.par))
    points = [list(map(float, t)) for t in (devfun_pars or [])] + [par]
    devfun_at = [{"theta": t, "value": float(fm.devfun(np.array(t)))} for t in points]
    fm.devfun(np.array(par))  # leave the objective's state at the fit
    rows = fm.VarCorr().as_data_frame()
    return FitRecord(
        engine="pylme", engine_version=__version__, formula=fm.formula, REML=False, n=fm.nobs(),
        criterion=float(fm.opt.fval), logLik=float(fm.logLik()), AIC=float(fm.AIC()), BIC=float(fm.BIC()),
        theta=list(map(float, fm.theta)), beta={k: float(v) for k, v in fm.fixef().items()},
        beta_se={k: float(np.sqrt(vc.loc[k, k])) for k in vc.index}, vcov=vc.to_numpy().tolist(),
        sigma=fm.sigma(),
        varcorr=[{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in rows.to_dict("records")],
        ranef=ranef, condvar_sd=condvar_sd, fitted=fm.fitted().tolist(),
        residuals=fm.residuals(type="response").tolist(), is_singular=fm.isSingular(),
        messages=list(fm.messages), warnings=list(fm.warnings), devfun_at=devfun_at, family_theta=fm.family.theta,
    )
