"""The fitted linear mixed model (lme4's lmerMod) and its extractors.

The object holds the results at theta-hat (the PLS solution, the optimiser's record, the
convergence checks); extractors return pandas objects labelled as R labels them.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..description.formula import names_in, update_formula
from ..errors import DataError, ModelError
from ..fitting.convergence import ConvCheck, is_singular
from ..fitting.driver import LmerControl, OptResult, emit, fit_formula, refit_lmer
from ..inference.varcorr import VarCorr, VarCorrTerm, unique_names
from ..objectives.lformula import LmerFormula
from ..objectives.objective import Objective, PLSState
from ..objectives.pls import CholmodObjective
from .record import FitRecord


class LogLik(float):
    """A log-likelihood with its degrees of freedom, as R's logLik object."""

    df: int
    nobs: int

    def __new__(cls, value: float, df: int, nobs: int) -> "LogLik":
        obj = super().__new__(cls, value)
        obj.df, obj.nobs = df, nobs
        return obj

    def __repr__(self) -> str:
        return f"'log Lik.' {float(self):.7g} (df={self.df})"


class Ranef(dict):
    """``ranef(fm)``: grouping factor -> DataFrame of conditional modes; ``condVar`` holds,
    per factor, the conditional covariance blocks, an array (levels, k, k)."""

    condVar: dict[str, np.ndarray]


@dataclass
class MerMod:
    """A fitted mixed model (lme4's merMod): the results at the optimum, and the extractors that do
    not depend on the family (fixed and random effects, VarCorr, getME, the fit's record of
    messages). ``LmerMod`` (here) and ``GlmerMod`` (pylme.fitted.glmer_model) add their family's parts,
    which these extractors read: ``REML``, ``sigma()``, ``offset``, ``fitted()``, ``npar()``,
    ``logLik()``, ``devfun`` and lme4's factor L. The analyses (pylme.anova, satterthwaite,
    profile, ...) take a fitted model."""

    lmod: LmerFormula
    objective: Objective  # what was optimised (the CHOLMOD objective where nothing was)
    opt: OptResult
    conv: ConvCheck
    control: LmerControl
    state: PLSState

    # ------------------------------------------------------------ basic quantities
    @property
    def formula(self) -> str:
        return self.lmod.formula.text

    @property
    def theta(self) -> np.ndarray:
        return self.state.theta

    @property
    def family(self):
        """The GLM family of a glmer fit (pylme.description.family); None for a linear mixed model."""
        return None

    @property
    def optinfo(self):
        """The optimiser's record (pylme.fitting.optimizer.OptSummary) with the certificate that theta-hat is the
        optimum (pylme.fitting.polish); ``print(fm.optinfo)`` shows both."""
        return self.opt.summary

    @property
    def n(self) -> int:
        return len(self.lmod.y)

    @property
    def p(self) -> int:
        return self.lmod.X.shape[1]

    @property
    def messages(self) -> list[str]:
        """lme4's messages for this fit (rank deficiency, rows dropped, singular fit)."""
        return self.lmod.messages + self.conv.messages

    @property
    def warnings(self) -> list[str]:
        """lme4's warnings for this fit: predictor scales, optimiser return code, convergence checks."""
        return self.lmod.warnings + self.opt.warnings + self.conv.warnings

    @property
    def na_action(self) -> pd.Index:
        """Labels of the data rows dropped for missing values (R's na.action)."""
        return self.lmod.frame.dropped

    @property
    def na_message(self) -> str | None:
        k = len(self.na_action)
        return f"{k} row{'s' if k > 1 else ''} with missing values dropped (na.omit)" if k else None

    def scaled_residual_quantiles(self, probs: list[float]) -> np.ndarray:
        """Quantiles of the scaled Pearson residuals (summary's "Scaled residuals")."""
        return np.quantile(self.residuals(type="pearson", scaled=True).to_numpy(), probs)

    def emit_messages(self) -> None:
        notes = [self.na_message] if self.na_message else []
        if self.lmod.col_dropped:
            notes.append(f"rank-deficient fixed-effect column(s) dropped: {', '.join(self.lmod.col_dropped)}")
        emit(notes + self.lmod.messages, self.conv.messages, self.lmod.warnings, self.opt.warnings + self.conv.warnings)

    def fixef(self) -> pd.Series:
        """Fixed-effects estimates, named as R names X's columns."""
        return pd.Series(self.state.beta, index=self.lmod.fixef_names, name="fixef")

    def AIC(self) -> float:
        return -2 * float(self.logLik()) + 2 * self.npar()

    def BIC(self) -> float:
        return -2 * float(self.logLik()) + np.log(self.n) * self.npar()

    def nobs(self) -> int:
        return self.n

    def ngrps(self) -> pd.Series:
        return pd.Series({k: f.nlevels for k, f in self.lmod.reTrms.flist.items()})

    def isSingular(self, tol: float = 1e-4) -> bool:
        return is_singular(self.theta, self.lmod.reTrms.lower, tol)

    # ------------------------------------------------------------ random effects
    def VarCorr(self) -> VarCorr:
        """Per term sigma^2 Lambda Lambda', named as lme4 names VarCorr's components."""
        s2 = self.sigma() ** 2
        rt = self.lmod.reTrms
        groups = unique_names([t.group for t in rt.terms])
        terms = [
            VarCorrTerm(g, t.cnms, s2 * (L @ L.T)) for g, t, L in zip(groups, rt.terms, rt.lam.blocks(self.theta))
        ]
        return VarCorr(terms, self.sigma())

    def _factor_columns(self, fac_index: int) -> tuple[list[str], np.ndarray]:
        """Column names and, per level, the positions in b of a grouping factor's effects."""
        rt = self.lmod.reTrms
        names, pos = [], []
        for i, t in enumerate(rt.terms):
            if rt.asgn[i] != fac_index:
                continue
            names += t.cnms
            pos.append(rt.Gp[i] + np.arange(t.nl)[:, None] * t.nc + np.arange(t.nc)[None, :])
        return names, np.hstack(pos)

    def ranef(self, condVar: bool = True) -> Ranef:
        """Conditional modes of the random effects per grouping factor (lme4's ranef);
        with condVar, their conditional covariance blocks in ``.condVar``."""
        out = Ranef()
        out.condVar = {}
        for k, (name, fac) in enumerate(self.lmod.reTrms.flist.items()):
            cols, pos = self._factor_columns(k)
            out[name] = pd.DataFrame(self.state.b[pos], index=pd.Index(fac.levels, name=name), columns=cols)
            if condVar:
                out.condVar[name] = self._cond_var(k)
        return out

    def _cond_var(self, fac_index: int) -> np.ndarray:
        cache = self.__dict__.setdefault("_condvar_cache", {})
        if fac_index not in cache:
            _, pos = self._factor_columns(fac_index)
            blocks = self.objective.cond_var_blocks(self.theta, list(pos))
            cache[fac_index] = self.sigma() ** 2 * blocks
        return cache[fac_index]

    def coef(self) -> dict[str, pd.DataFrame]:
        """Per grouping factor: fixed effects plus that factor's random effects, level by level."""
        fe = self.fixef()
        out = {}
        for name, re in self.ranef(condVar=False).items():
            df = pd.DataFrame(np.tile(fe.to_numpy(), (len(re), 1)), index=re.index, columns=fe.index)
            for col in re.columns:
                if col in df.columns:
                    df[col] = df[col] + re[col]
                else:
                    df[col] = re[col]
            extra = [c for c in re.columns if c not in fe.index]
            out[name] = df[extra + list(fe.index)] if extra else df
        return out

    # ------------------------------------------------------------ getME
    def getME(self, name: str):
        """lme4's getME: the model's components by their lme4 names."""
        rt, st = self.lmod.reTrms, self.state
        Lambdat = rt.lam.Lambdat(self.theta)
        table = {
            "X": lambda: pd.DataFrame(self.lmod.X, columns=self.lmod.fixef_names),
            "Z": lambda: rt.Zt.T.tocsc(),
            "Zt": lambda: rt.Zt,
            "Ztlist": lambda: {t.label: t.Zt() for t in rt.terms},
            "y": lambda: self.lmod.y,
            "mu": lambda: self.fitted().to_numpy(),
            "u": lambda: st.u,
            "b": lambda: st.b,
            "Gp": lambda: rt.Gp,
            "Lambdat": lambda: Lambdat,
            "Lambda": lambda: Lambdat.T.tocsc(),
            "Lind": lambda: rt.Lind + 1,
            "L": lambda: self._factor_at_theta(),
            "RX": lambda: st.RX,
            "RZX": lambda: st.RZX,
            "beta": lambda: st.beta,
            "theta": lambda: pd.Series(self.theta, index=self._theta_names()),
            "lower": lambda: rt.lower,
            "flist": lambda: {k: pd.Categorical.from_codes(f.codes, f.levels) for k, f in rt.flist.items()},
            "cnms": lambda: rt.cnms_list,
            "weights": lambda: self.objective.resp.weights,
            "offset": lambda: self.offset,
            "REML": lambda: self.p if self.REML else 0,
            "is_REML": lambda: self.REML,
            "n_rtrms": lambda: len(rt.terms),
            "n_rfacs": lambda: len(rt.flist),
            "N": lambda: self.n,
            "n": lambda: self.n,
            "p": lambda: self.p,
            "q": lambda: rt.Zt.shape[0],
            "sigma": self.sigma,
            "devcomp": self._devcomp,
            "devfun": lambda: self.devfun,
            "optinfo": lambda: self.opt,
        }
        if name not in table:
            raise KeyError(f"getME: unknown component {name!r}; available: {', '.join(table)}")
        return table[name]()

    def _theta_names(self) -> list[str]:
        return theta_names(self.lmod.reTrms)

    def _devcomp(self) -> dict:
        st = self.state
        cmp = {
            "ldL2": st.ldL2, "ldRX2": st.ldRX2, "wrss": st.wrss, "ussq": st.ussq, "pwrss": st.pwrss,
            "REML": self.REMLcrit() if self.REML else np.nan,
            "dev": np.nan if self.REML else self.deviance(REML=False),
            "sigmaML": float(np.sqrt(st.pwrss / self.n)),
            "sigmaREML": float(np.sqrt(st.pwrss / (self.n - self.p))),
        }
        dims = {"N": self.n, "n": self.n, "p": self.p, "nmp": self.n - self.p, "q": self.lmod.reTrms.Zt.shape[0],
                "nth": len(self.theta), "reTrms": len(self.lmod.reTrms.terms), "REML": self.p if self.REML else 0}
        return {"cmp": cmp, "dims": dims}

    def rePCA(self):
        """lme4's ``rePCA(fm)`` (see pylme.inference.repca)."""
        from ..inference.repca import rePCA

        return rePCA(self)


    # ------------------------------------------------------------ analyses (both families)
    def _lmer_only(self, what: str) -> None:
        """Refuse, naming it, an lmerTest analysis for a glmer fit (lmerTest's tables, with their
        denominator df, are for linear mixed models)."""
        if self.family is not None:
            raise ModelError(f"{what} is for lmer fits; for a glmer fit use lme4's: gm.anova(), "
                             "gm.drop1(test='Chisq') or pylme.anova(gm0, gm)")

    def anova(self, *others, type: int | str | None = None, ddf: str = "lme4", **kwargs):
        """lme4's anova: with other fits, the likelihood-ratio table (see pylme.anova; its rows are
        labelled by the caller's names for the models, or keywords: ``fm.anova(small=fm0)``); alone,
        the sequential F table of the fixed-effect terms. With ``ddf="Satterthwaite"`` or
        ``"Kenward-Roger"``, or a ``type`` (1, 2, 3), lmerTest's F table with that method's
        denominator df (Satterthwaite's when only ``type`` is given)."""
        from ..inference.anova import anova, anova_single

        if ddf != "lme4" or type is not None:
            self._lmer_only("anova with type or ddf (lmerTest's F table)")
            if others:
                raise ValueError("type and ddf apply to the anova of a single model")
            if ddf not in ("Satterthwaite", "Kenward-Roger", "lme4"):
                raise ValueError(f"ddf must be 'Satterthwaite', 'Kenward-Roger' (or 'lme4' for lme4's table), not {ddf!r}")
            from ..inference.satterthwaite import anova_table

            return anova_table(self, 3 if type is None else type, "Satterthwaite" if ddf == "lme4" else ddf)
        compared = others or any(isinstance(v, MerMod) for v in kwargs.values())
        return anova(self, *others, **kwargs) if compared else anova_single(self)

    # ------------------------------------------------------------ after the fit: reduction, influence, optimisers
    def drop1(self, scope=None, test: str = "none", k: float = 2.0, ddf: str | None = None):
        """lme4's ``drop1(fm, test = "Chisq")`` (ML refits without each marginal fixed term; a
        glmer fit's refits are glmer fits, see ``update``); with ``ddf``, lmerTest's F-test table
        (see pylme.inference.reduction; lmer fits only, as lmerTest)."""
        if ddf is not None:
            self._lmer_only("drop1 with ddf (lmerTest's F tests)")
        from ..inference.reduction import drop1

        return drop1(self, scope, test, k, ddf)

    def hatvalues(self) -> pd.Series:
        """lme4's ``hatvalues(fm)`` (see pylme.influence)."""
        from ..inference.influence import hatvalues

        return hatvalues(self)

    def cooks_distance(self) -> pd.Series:
        """lme4's ``cooks.distance(fm)`` from the hat values (see pylme.influence)."""
        from ..inference.influence import cooks_distance

        return cooks_distance(self)

    def influence(self, groups=None, maxfun: int = 1000):
        """lme4's ``influence(fm, groups)``: deletion refits (see pylme.influence)."""
        from ..inference.influence import influence

        return influence(self, groups, maxfun)

    def allFit(self, optimizers=None, maxfun: int = 100_000, verbose: bool = True):
        """lme4's ``allFit(fm)`` (see pylme.inference.allfit)."""
        from ..inference.allfit import allFit

        return allFit(self, optimizers, maxfun, verbose)

    # ------------------------------------------------------------ intervals, profiles, simulation
    def confint(self, parm=None, level: float = 0.95, method: str = "profile", nsim: int = 500,
                boot_type: str = "perc", seed: int | None = None, **kwargs) -> pd.DataFrame:
        """lme4's confint: ``method="profile"`` (likelihood profile), ``"Wald"`` (fixed effects
        only; NaN rows for the variance parameters) or ``"boot"`` (parametric bootstrap)."""
        from ..inference.confint import confint

        return confint(self, parm, level, method, nsim, boot_type, seed, **kwargs)

    def profile(self, which=None, **kwargs):
        """lme4's profile: zeta against each parameter (``.frame``), with its splines."""
        from ..inference.profile import profile

        return profile(self, which, **kwargs)

    def simulate(self, nsim: int = 1, seed: int | None = None, re_form="~0", use_u: bool | None = None):
        """lme4's simulate: responses drawn from the fitted model (R's stream for a given seed)."""
        from ..inference.simulate import simulate

        return simulate(self, nsim, seed, re_form, use_u)


@dataclass
class LmerMod(MerMod):
    """A linear mixed model fitted by ``pylme.lmer``."""

    # ------------------------------------------------------------ the LMM's criterion and residuals
    @property
    def devfun(self) -> CholmodObjective:
        """lme4's ``getME(fm, "devfun")``: the CHOLMOD objective of this fit's design and response
        (what ``lmer(..., devFunOnly=True)`` gives), made when first asked for."""
        if "_devfun" not in self.__dict__:
            self.__dict__["_devfun"] = CholmodObjective(self.objective.design, self.objective.resp)
        return self.__dict__["_devfun"]

    @property
    def REML(self) -> bool:
        return self.lmod.REML

    @property
    def offset(self) -> np.ndarray:
        return self.objective.resp.offset

    def sigma(self) -> float:
        """Residual standard deviation (REML: pwrss/(n-p); ML: pwrss/n)."""
        denom = self.n - self.p if self.REML else self.n
        return float(np.sqrt(self.state.pwrss / denom))

    def REMLcrit(self) -> float:
        return self.objective.deviance(self.state, REML=True)

    def deviance(self, REML: bool | None = None) -> float:
        """ML deviance; for a REML fit lme4 warns and returns the REML criterion unless REML=False."""
        if self.REML and REML is None:
            warnings.warn(
                "deviance() is deprecated for REML fits; use REMLcrit for the REML criterion or "
                "deviance(.,REML=FALSE) for deviance calculated at the REML fit",
                FutureWarning,
                stacklevel=2,
            )
            return self.REMLcrit()
        return self.objective.deviance(self.state, REML=bool(REML))

    def npar(self) -> int:
        return self.p + len(self.theta) + 1

    def logLik(self, REML: bool | None = None) -> LogLik:
        reml = self.REML if REML is None else REML
        return LogLik(-self.objective.deviance(self.state, reml) / 2, self.npar(), self.n)

    def predict(self, newdata: pd.DataFrame | None = None, re_form=None, allow_new_levels: bool = False,
                se_fit: bool = False, interval: str = "none", level: float = 0.95):
        """Predictions (lme4's predict.merMod): re_form None = all random effects, "~0" = none,
        a formula such as "~(1|Subject)" = those terms only; new levels contribute 0 when allowed.
        ``se_fit=True`` or ``interval="confidence"`` (with ``re_form="~0"``): a DataFrame with the
        population-level fit, its standard error and Wald limits, conditional on theta-hat."""
        from ..inference.predict import predict, predict_se

        if se_fit or interval != "none":
            return predict_se(self, newdata, re_form, se_fit, interval, level)
        return predict(self, newdata, re_form, allow_new_levels)

    def fitted(self) -> pd.Series:
        """Fitted values X beta + Z b + offset, indexed as the data's complete rows."""
        return pd.Series(self.state.eta + self.offset, index=self.lmod.frame.data.index)

    def residuals(self, type: str = "response", scaled: bool = False) -> pd.Series:
        """Response residuals, or Pearson residuals (weighted; divided by sigma when scaled)."""
        res = self.lmod.y - self.fitted().to_numpy()
        if type == "pearson":
            res = res * self.objective.resp.sqrtw
        elif type != "response":
            raise ValueError(f"residual type {type!r} not available for lmer fits: use 'response' or 'pearson'")
        if scaled:
            res = res / self.sigma()
        return pd.Series(res, index=self.lmod.frame.data.index)

    resid = residuals

    def vcov(self) -> pd.DataFrame:
        """sigma^2 (RX'RX)^-1, the covariance of the fixed-effects estimates."""
        RXinv = np.linalg.inv(self.state.RX) if self.p else np.zeros((0, 0))
        V = self.sigma() ** 2 * (RXinv @ RXinv.T)
        names = self.lmod.fixef_names
        return pd.DataFrame(V, index=names, columns=names)

    def _factor_at_theta(self):
        """lme4's L: CHOLMOD's factor at theta-hat, whichever objective was optimised."""
        self.devfun.update_factor(self.theta)
        return self.devfun.factor

    # ------------------------------------------------------------ refitting
    def update(self, formula: str | None = None, **kwargs) -> "LmerMod":
        """Refit with some arguments changed, as R's ``update(fm, REML = FALSE)``; a formula
        with ``.`` is read as R's update.formula reads it (``". ~ . - sex"``)."""
        if formula is not None and "." in names_in(formula):
            formula = update_formula(self.formula, formula)
        args = {"REML": self.REML, "weights": self.lmod.weights_arg, "offset": self.lmod.offset_arg,
                "control": self.control}
        args.update(kwargs)
        data = args.pop("data", self.lmod.data)
        return fit_formula(type(self), formula or self.formula, data, **args)

    def refit(self, newresp) -> "LmerMod":
        """Refit to a new response (same design), starting from this fit's theta, as lme4's refit.
        The objective that was optimised is reused with the new response's cross-products; the fit
        is solved at the optimum as lmer's."""
        try:
            y = np.asarray(newresp, dtype=float).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise DataError(f"newresp must be numbers, one per fitted row ({self.n}): {exc}") from exc
        if y.shape != self.lmod.y.shape:
            raise DataError(f"newresp must have {self.n} values (one per fitted row), got {y.size}")
        if not np.all(np.isfinite(y)):
            raise DataError("newresp has missing or infinite values")
        lmod = copy.copy(self.lmod)
        lmod.y = y
        fm = refit_lmer(self, lmod, self.objective.resp.with_y(y), keep_log=False)
        conv = fm.conv
        emit([], conv.messages, [], fm.opt.warnings + conv.warnings)
        return fm

    def contest(self, L, rhs=0.0, joint: bool | None = None, confint: bool = False, level: float = 0.95,
                ddf: str = "Satterthwaite"):
        """lmerTest's contest: t-tests (one row of L) or F-tests (several) of L beta = rhs with
        Satterthwaite's (default) or ``ddf="Kenward-Roger"`` degrees of freedom."""
        from ..inference.satterthwaite import contest

        return contest(self, L, rhs=rhs, joint=joint, confint=confint, level=level, ddf=ddf)

    def ranova(self, reduce_terms: bool = True):
        """lmerTest's ``ranova(fm)``: likelihood-ratio tests of the random-effects terms."""
        from ..inference.reduction import ranova

        return ranova(self, reduce_terms)

    def step(self, ddf: str = "Satterthwaite", alpha_random: float = 0.1, alpha_fixed: float = 0.05, **kwargs):
        """lmerTest's ``step(fm)``: backward elimination of random, then fixed terms."""
        from ..inference.reduction import step

        return step(self, ddf, alpha_random, alpha_fixed, **kwargs)

    # ------------------------------------------------------------ records and printing
    def record(self, devfun_thetas: list[list[float]] | None = None) -> FitRecord:
        """This fit as a FitRecord (the conformance harness's common format)."""
        from .. import __version__
        from .extract import fit_record

        return fit_record(self, __version__, devfun_thetas)

    def summary(self, ddf: str = "lme4"):
        """summary(fm); ``ddf="Satterthwaite"`` or ``"Kenward-Roger"`` adds lmerTest's df and
        Pr(>|t|) columns (Kenward-Roger: Std. Error from the adjusted covariance)."""
        from ..inference.summary import Summary

        if ddf not in ("lme4", "Satterthwaite", "Kenward-Roger"):
            raise ValueError(f"ddf must be 'lme4', 'Satterthwaite' or 'Kenward-Roger', not {ddf!r}")
        return Summary(self, ddf)

    def __str__(self) -> str:
        from ..inference.summary import print_merMod

        return print_merMod(self)

    def __repr__(self) -> str:
        return self.__str__()


def theta_names(reTrms) -> list[str]:
    """getME(fm, "theta")'s names: per term, "group.column" for a standard deviation's factor and
    "group.column_i.column_j" for a correlation's."""
    names = []
    for t in reTrms.terms:
        for j in range(t.nc):
            for i in range(j, t.nc):
                names.append(f"{t.group}.{t.cnms[i]}" if i == j else f"{t.group}.{t.cnms[i]}.{t.cnms[j]}")
    return names
