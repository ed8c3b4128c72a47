"""FitRecord: one fit as plain, JSON round-trippable data, the same for every engine.

pylme fits produce it with ``fm.record()``; ``r_reference.fit`` produces it from R's
lme4; the conformance harness compares two of them quantity by quantity.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


#: the inference tables a record may carry, each named for the R call that makes it
INFERENCE_KINDS = {
    "wald": 'confint(fm, method = "Wald")',
    "profile": "confint(fm)",
    "satterthwaite": "lmerTest's summary(fm)$coefficients",
    "kenward_roger": 'lmerTest\'s summary(fm, ddf = "Kenward-Roger")$coefficients',
    "anova_satterthwaite": "lmerTest's anova(fm, type = 3)",
    "anova_kenward_roger": 'lmerTest\'s anova(fm, type = 3, ddf = "Kenward-Roger")',
    # after the fit (pylme.fitted.extract.POSTFIT_KINDS); emmeans' specs is the fixed part's first factor
    "emmeans_kenward_roger": "emmeans' summary(emmeans(fm, first factor)): emmean, SE, df, lower.CL, upper.CL",
    "emmeans_pairs_kenward_roger": "emmeans' summary(pairs(emmeans(fm, first factor))): Tukey-adjusted tests",
    "drop1": 'lme4\'s drop1(fm, test = "Chisq")',
    "ranova": "lmerTest's ranova(fm)",
    "hatvalues": "lme4's hatvalues(fm), rows numbered from 1",
    "cooks_distance": "lme4's cooks.distance(fm), rows numbered from 1",
    "rePCA": "lme4's rePCA(fm): per factor and component (factor.k) sdev and proportion of variance",
}


@dataclass
class FitRecord:
    """A fitted linear mixed model as plain data.

    ``ranef`` and ``condvar_sd`` map grouping factor -> coefficient name -> level -> value.
    ``varcorr`` holds the rows of ``as.data.frame(VarCorr(fm))``: grp, var1, var2, vcov, sdcor.
    ``devfun_at`` holds lme4's ``devFunOnly`` objective at given theta: {"theta": [...], "value": x}.
    ``inference`` maps a kind of inference (``INFERENCE_KINDS``) to its table:
    {"rows": [...], "cols": [...], "values": [[...], ...]} (NaN as None).
    ``error`` is set (and the numbers left empty) when the engine failed on the case.
    """

    engine: str
    engine_version: str
    formula: str
    REML: bool
    r_version: str | None = None
    n: int | None = None
    criterion: float | None = None
    logLik: float | None = None
    AIC: float | None = None
    BIC: float | None = None
    theta: list[float] = field(default_factory=list)
    beta: dict[str, float] = field(default_factory=dict)
    beta_se: dict[str, float] = field(default_factory=dict)
    vcov: list[list[float]] = field(default_factory=list)
    sigma: float | None = None
    varcorr: list[dict[str, Any]] = field(default_factory=list)
    ranef: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    condvar_sd: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    fitted: list[float] = field(default_factory=list)
    residuals: list[float] = field(default_factory=list)
    is_singular: bool | None = None
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    devfun_at: list[dict[str, Any]] = field(default_factory=list)
    inference: dict[str, dict[str, Any]] = field(default_factory=dict)
    family_theta: float | None = None  # glmer.nb's estimated shape theta
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FitRecord":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown FitRecord fields: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "FitRecord":
        return cls.from_dict(json.loads(text))
