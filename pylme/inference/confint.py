"""Confidence intervals for a fitted model (lme4's confint.merMod): profile, Wald or bootstrap,
with lme4's row names (``.sig01``, ..., ``.sigma``, then the fixed effects) and R's column names."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .bootstrap import bootMer, perc_labels
from .profile import profile, profile_names, select_parameters
from .varcorr import theta_to_sdcor

METHODS = ("profile", "Wald", "boot")


def confint(fm, parm=None, level: float = 0.95, method: str = "profile", nsim: int = 500,
            boot_type: str = "perc", seed: int | None = None, **kwargs) -> pd.DataFrame:
    """Intervals for the parameters ``parm`` (names, ``"theta_"``, ``"beta_"``; all by default)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, not {method!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level!r}")
    vn = profile_names(fm)
    names = vn + list(fm.lmod.fixef_names)
    chosen = names if parm is None else select_parameters(parm, names, len(vn))
    if method == "profile":
        return profile(fm, which=chosen, **kwargs).confint(level=level)
    if method == "Wald":
        return _wald(fm, vn, level).loc[chosen]
    boot = bootMer(fm, lambda m: sdcor_and_fixef(m, vn), nsim=nsim, seed=seed, **kwargs)
    return boot.confint(level=level, type=boot_type).loc[chosen]


def sdcor_and_fixef(fm, vn: list[str]) -> pd.Series:
    """lme4's bootstrap statistic for confint: sd/cor parameters, sigma, fixed effects."""
    ncs = [t.nc for t in fm.lmod.reTrms.terms]
    sd = theta_to_sdcor(fm.theta, ncs, fm.sigma())[: len(vn)]  # no .sigma for a family without a dispersion
    return pd.concat([pd.Series(sd, index=vn), fm.fixef()])


def _wald(fm, vn: list[str], level: float) -> pd.DataFrame:
    """Estimate +- z standard error for the fixed effects; NaN for the variance parameters."""
    a = (1 - level) / 2
    z = stats.norm.ppf([a, 1 - a])
    beta = fm.fixef().to_numpy()
    se = np.sqrt(np.diag(fm.vcov().to_numpy()))
    values = np.vstack([np.full((len(vn), 2), np.nan), beta[:, None] + se[:, None] * z[None, :]])
    return pd.DataFrame(values, index=vn + list(fm.fixef().index), columns=perc_labels(level))
