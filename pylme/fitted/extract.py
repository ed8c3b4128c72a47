"""A fitted model as a FitRecord: the plain-data form the conformance harness compares."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .record import FitRecord


def fit_record(fm, version: str, devfun_thetas: list[list[float]] | None = None) -> FitRecord:
    """Fill every FitRecord field from a pylme fit; ``devfun_thetas`` are extra thetas at
    which the objective is evaluated (the optimum is always included, last)."""
    ll = fm.logLik()
    vc = fm.vcov()
    re = fm.ranef(condVar=True)
    ranef, condvar_sd = {}, {}
    for grp, df in re.items():
        sds = np.sqrt(np.diagonal(re.condVar[grp], axis1=1, axis2=2))
        ranef[grp] = {c: dict(zip(df.index, map(float, df[c]))) for c in df.columns}
        condvar_sd[grp] = {c: dict(zip(df.index, map(float, sds[:, k]))) for k, c in enumerate(df.columns)}
    thetas = [list(map(float, t)) for t in (devfun_thetas or [])] + [list(map(float, fm.theta))]
    devfun_at = [{"theta": t, "value": float(fm.devfun(np.array(t)))} for t in thetas]
    vcrows = fm.VarCorr().as_data_frame()
    return FitRecord(
        engine="pylme",
        engine_version=version,
        formula=fm.formula,
        REML=fm.REML,
        n=fm.nobs(),
        criterion=float(fm.REMLcrit() if fm.REML else fm.deviance(REML=False)),
        logLik=float(ll),
        AIC=float(fm.AIC()),
        BIC=float(fm.BIC()),
        theta=list(map(float, fm.theta)),
        beta={k: float(v) for k, v in fm.fixef().items()},
        beta_se={k: float(np.sqrt(vc.loc[k, k])) for k in vc.index},
        vcov=vc.to_numpy().tolist(),
        sigma=fm.sigma(),
        varcorr=[{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in vcrows.to_dict("records")],
        ranef=ranef,
        condvar_sd=condvar_sd,
        fitted=fm.fitted().tolist(),
        residuals=fm.residuals().tolist(),
        is_singular=fm.isSingular(),
        messages=list(fm.messages),
        warnings=list(fm.warnings),
        devfun_at=devfun_at,
    )


def inference_record(fm, kinds) -> dict:
    """The inference tables ``kinds`` (see ``record.INFERENCE_KINDS``) of a fit, as plain data."""
    makers = {
        "wald": lambda: fm.confint(method="Wald").dropna(),
        "profile": lambda: fm.confint(method="profile"),
        "satterthwaite": lambda: fm.summary(ddf="Satterthwaite").coefficients,
        "kenward_roger": lambda: fm.summary(ddf="Kenward-Roger").coefficients,
        "anova_satterthwaite": lambda: fm.anova(type=3, ddf="Satterthwaite"),
        "anova_kenward_roger": lambda: fm.anova(type=3, ddf="Kenward-Roger"),
    }
    makers.update(postfit_tables(fm))
    return {kind: table_record(makers[kind]()) for kind in kinds}


#: the after-the-fit tables of a record (a subset of record.INFERENCE_KINDS)
POSTFIT_KINDS = ("emmeans_kenward_roger", "emmeans_pairs_kenward_roger", "drop1", "ranova", "hatvalues",
                 "cooks_distance", "rePCA")


def first_factor(fm) -> str | None:
    """The first factor of the fixed part: the conformance records' emmeans specs."""
    from ..description.model_matrix import FactorCoding

    spec = fm.lmod.X_spec
    return next((v.data_names[0] for v in spec.terms.variables if isinstance(spec.codings[v.label], FactorCoding)),
                None)


def _numbered(values: pd.Series, name: str) -> pd.DataFrame:
    return pd.DataFrame({name: values.to_numpy()}, index=[str(i + 1) for i in range(len(values))])


def _emm_table(summary: pd.DataFrame, label: str, cols: list[str]) -> pd.DataFrame:
    return summary[cols].set_axis([str(v) for v in summary[label]], axis=0)


def _repca_table(fm) -> pd.DataFrame:
    rows = {}
    for name, pc in fm.rePCA().items():
        with np.errstate(invalid="ignore", divide="ignore"):
            prop = pc.sdev**2 / np.sum(pc.sdev**2)
        rows.update({f"{name}.{k + 1}": (s, p) for k, (s, p) in enumerate(zip(pc.sdev, prop))})
    return pd.DataFrame.from_dict(rows, orient="index", columns=["sdev", "proportion"])


def postfit_tables(fm) -> dict:
    """Makers of the after-the-fit tables (POSTFIT_KINDS) of a fit, as R's functions give them."""
    from ..inference.emmeans import emmeans

    spec = first_factor(fm)
    return {
        "emmeans_kenward_roger": lambda: _emm_table(emmeans(fm, spec).summary(), spec,
                                                    ["emmean", "SE", "df", "lower.CL", "upper.CL"]),
        "emmeans_pairs_kenward_roger": lambda: _emm_table(emmeans(fm, spec).pairs().summary(), "contrast",
                                                          ["estimate", "SE", "df", "t.ratio", "p.value"]),
        "drop1": lambda: fm.drop1(test="Chisq"),
        "ranova": lambda: fm.ranova(),
        "hatvalues": lambda: _numbered(fm.hatvalues(), "hat"),
        "cooks_distance": lambda: _numbered(fm.cooks_distance(), "cooks.distance"),
        "rePCA": lambda: _repca_table(fm),
    }


def table_record(table: pd.DataFrame) -> dict:
    """A table as {"rows", "cols", "values"}, NaN as None (JSON has no NaN)."""
    values = [[None if pd.isna(v) else float(v) for v in row] for row in table.to_numpy()]
    return {"rows": [str(r) for r in table.index], "cols": [str(c) for c in table.columns], "values": values}
