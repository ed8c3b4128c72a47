"""The rows of lmerTest's t and F tables, shared by the tests of fixed effects (pylme.satterthwaite,
pylme.kenward_roger, pylme.reduction): the columns, a t row, an F row, the quadratic form."""
from __future__ import annotations

import numpy as np

T_COLUMNS = ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
F_COLUMNS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]


def qform(x: np.ndarray, A: np.ndarray) -> float:
    """The quadratic form x'Ax."""
    return float(x @ A @ x)


def p_t(tstat, df):
    """Two-sided p-value of a t statistic."""
    from scipy import stats  # on first use: import pylme stays light

    return 2.0 * stats.t.sf(np.abs(tstat), df)


def t_row(estimate, se, df, rhs, confint, level):
    """lmerTest's t-table row: Estimate, Std. Error, df, t value, (lower, upper,) Pr(>|t|)."""
    with np.errstate(all="ignore"):
        tstat = (estimate - rhs) / se
    row = {"Estimate": estimate, "Std. Error": se, "df": df, "t value": tstat}
    if confint:
        from scipy import stats

        fac = stats.t.isf((1.0 - level) / 2.0, df)
        row["lower"], row["upper"] = estimate - se * fac, estimate + se * fac
    row["Pr(>|t|)"] = p_t(tstat, df) if not np.isnan(tstat) else np.nan
    return row


def f_row(F, ndf, ddf, sigma, scaling: float = 1.0):
    """lmerTest's F-table row: Mean Sq from the unscaled F, the F value scaled (Kenward-Roger's
    F scaling; 1 for Satterthwaite)."""
    ms = F * sigma**2
    F = F * scaling
    from scipy import stats

    with np.errstate(all="ignore"):
        pval = stats.f.sf(F, ndf, ddf) if np.isfinite(F) else np.nan
    return {"Sum Sq": ms * ndf, "Mean Sq": ms, "NumDF": ndf, "DenDF": ddf, "F value": F, "Pr(>F)": pval}
