"""pylme: linear mixed-effects models in Python with the same answers as R's lme4.

    import pylme
    sleep = pylme.datasets.load("sleepstudy")
    fm = pylme.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    print(fm.summary())
"""
from __future__ import annotations

__version__ = "0.1.0"

import importlib
import importlib.machinery
import sys

from .api.lmer import lmer, mkMerMod
from .errors import (
    ConvergenceWarning,
    DataError,
    FitMessage,
    FormulaError,
    ModelError,
    PylmeError,
    PylmeWarning,
    SingularFitMessage,
)
from .fitted.model import LmerMod
from .fitted.record import FitRecord
from .fitting.driver import LmerControl, checkConv, lmerControl, optimizeLmer
from .objectives.lformula import lFormula, mkLmerDevfun
from .rbase.collation import get_collation, set_collation


#: The rest of the API (glmer, emmeans, the bootstrap, many fits, anova, R's files), each name
#: imported from its module when first used: an lmer fit needs none of them.
_ON_FIRST_USE = {
    ".api.glmer": ("GlmerControl", "glFormula", "glmer", "glmerControl", "mkGlmerDevfun"),
    ".api.glmer_nb": ("glmer_nb",),
    ".description.family": ("Family", "Gamma", "binomial", "gaussian", "inverse_gaussian", "negative_binomial", "poisson"),
    ".fitted.glmer_model": ("GlmerMod",),
    ".inference.anova": ("anova",),
    ".inference.bootstrap": ("BootMer", "bootMer"),
    ".inference.emmeans": ("emmeans", "ref_grid"),
    ".io.read_r": ("read_r",),
    ".scaleout.many": ("ManyFits", "lmer_many"),
}
_NAMES = {name: module for module, names in _ON_FIRST_USE.items() for name in names}


#: The documented modules reached as ``pylme.<name>``, each from its stage's folder and imported when
#: first used (plotting needs matplotlib and scipy.stats: most fits need neither).
_MODULES = {
    "datasets": ".io.datasets",
    "plotting": ".io.plotting",
    "kenward_roger": ".inference.kenward_roger",
    "family": ".description.family",
    "blocked": ".objectives.blocked",    # README: pylme.blocked.BlockedDevfun(devfun, fill=...)
    "polish": ".fitting.polish",         # docs/migration.md: pylme.polish.polish(devfun, theta, ...)
}


class _DocumentedModules:
    """The import system's finder and loader of the documented modules by their documented names:
    ``import pylme.plotting`` or ``from pylme.datasets import load`` gives the module of its stage."""

    def find_spec(self, fullname: str, path=None, target=None):
        package, _, name = fullname.partition(".")
        if package == __name__ and name in _MODULES:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(_MODULES[spec.name.partition(".")[2]], __name__)

    def exec_module(self, module) -> None:
        """Nothing to run: the module was run under its own name."""


sys.meta_path.append(_DocumentedModules())


def __getattr__(name: str):
    """The documented modules (``pylme.datasets``, ``pylme.plotting``, ``pylme.kenward_roger``, ...)
    and the names of ``_NAMES`` (``pylme.glmer``, ``pylme.emmeans``, ...), imported when first used,
    so that ``import pylme`` loads only what an lmer fit needs."""
    if name in _MODULES:
        return importlib.import_module(_MODULES[name], __name__)
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name], __name__), name)
        globals()[name] = value   # the next use finds it here
        return value
    raise AttributeError(f"module 'pylme' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULES) | set(_NAMES))


def _method(name: str):
    def f(fm, *args, **kwargs):
        return getattr(fm, name)(*args, **kwargs)

    f.__name__ = name
    f.__doc__ = f"R's ``{name}(fm, ...)``: the same as ``fm.{name}(...)``."
    return f


fixef = _method("fixef")
ranef = _method("ranef")
coef = _method("coef")
VarCorr = _method("VarCorr")
sigma = _method("sigma")
logLik = _method("logLik")
AIC = _method("AIC")
BIC = _method("BIC")
deviance = _method("deviance")
REMLcrit = _method("REMLcrit")
fitted = _method("fitted")
residuals = _method("residuals")
resid = residuals
vcov = _method("vcov")
nobs = _method("nobs")
ngrps = _method("ngrps")
predict = _method("predict")
isSingular = _method("isSingular")
getME = _method("getME")
refit = _method("refit")
summary = _method("summary")
contest = _method("contest")
confint = _method("confint")
profile = _method("profile")
simulate = _method("simulate")
drop1 = _method("drop1")
ranova = _method("ranova")
step = _method("step")
hatvalues = _method("hatvalues")
influence = _method("influence")
rePCA = _method("rePCA")
allFit = _method("allFit")


def cooks_distance(x):
    """R's ``cooks.distance(x)``: of a fit (from its hat values) or of ``influence(fm)`` (from
    the deletion refits)."""
    return x.cooks_distance()


def pairs(emm, **kwargs):
    """emmeans' ``pairs(emm)``: the same as ``emm.pairs(...)``."""
    return emm.pairs(**kwargs)


def contrast(emm, method="eff", **kwargs):
    """emmeans' ``contrast(emm, method)``: the same as ``emm.contrast(method, ...)``."""
    return emm.contrast(method, **kwargs)

__all__ = [
    "lmer", "lFormula", "mkLmerDevfun", "optimizeLmer", "checkConv", "mkMerMod", "LmerMod", "LmerControl",
    "lmerControl", "FitRecord", "anova", "datasets", "plotting", "read_r", "fixef", "ranef", "coef", "VarCorr", "sigma", "logLik", "AIC", "BIC",
    "deviance", "REMLcrit", "fitted", "residuals", "resid", "vcov", "nobs", "ngrps", "predict", "isSingular",
    "getME", "refit", "summary", "contest", "confint", "profile", "simulate", "bootMer",
    "emmeans", "ref_grid", "pairs", "contrast", "drop1", "ranova", "step", "hatvalues", "influence", "cooks_distance",
    "rePCA", "allFit", "BootMer", "lmer_many", "ManyFits", "PylmeError", "FormulaError", "DataError", "ModelError", "PylmeWarning",
    "ConvergenceWarning", "SingularFitMessage", "FitMessage", "set_collation", "get_collation",
    "glmer", "glmer_nb", "glFormula", "mkGlmerDevfun", "GlmerMod", "GlmerControl", "glmerControl", "Family", "binomial",
    "poisson", "Gamma", "inverse_gaussian", "gaussian", "negative_binomial",
]
