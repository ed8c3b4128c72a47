"""The fitted generalized linear mixed model (lme4's glmerMod) and what differs from lmerMod.

lme4 defines these quantities for glmerMod, and pylme reports the same:

- ``logLik`` is minus half the optimised deviance: for nAGQ = 1 the Laplace approximation
  ``ldL2 + |u|^2 + aic`` (the family's -2 log-likelihood at the conditional modes); for nAGQ > 1
  lme4's quadrature deviance is built on the deviance residuals instead of the aic, so it differs
  from the integrated likelihood by a constant (cbpp, nAGQ = 25: -50.005 where integrating the
  likelihood gives -91.98). pylme reports lme4's number and documents the difference.
- ``deviance()`` is the sum of the squared deviance residuals at the conditional modes, not
  -2 logLik (which summary() prints in its "deviance" column, as lme4).
- ``vcov()`` is, as lme4's default ``use.hessian = TRUE``, the (beta, beta) block of twice the
  inverse of the finite-difference Hessian of the deviance in (theta, beta) (falling back to
  (RX'RX)^-1 when that is not positive definite, or for nAGQ = 0 where there is no Hessian).
- ``sigma()`` is 1 for the binomial and Poisson families; for families with a dispersion
  (Gamma, inverse.gaussian, gaussian) it is sqrt(pwrss / n), lme4's sigmaML.
"""
from __future__ import annotations

import textwrap
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .fitting import emit
from .formula import deparse, expand_double_verts, names_in, parse, update_formula
from .model import LogLik, MerMod
from .printing import format_numbers, format_pvals, named_vector, render_table, signif_stars
from .summary import correlation_lines, groups_line, residual_quantiles
from .varcorr import VarCorr


@dataclass
class GlmerMod(MerMod):
    """A generalized linear mixed model fitted by ``pylme.glmer``."""

    nAGQ: int = 1
    data_warnings: list[str] = field(default_factory=list)
    nevals: int | None = None  # glmer_nb: the number of refits over theta (lme4's attr(fit, "nevals"))

    # ------------------------------------------------------------ basic quantities
    @property
    def devfun(self):
        """lme4's ``getME(fm, "devfun")``: the deviance function that was optimised."""
        return self.objective

    @property
    def offset(self) -> np.ndarray:
        return self.objective.offset

    def _factor_at_theta(self):
        """lme4's L: the factor of the last PIRLS evaluation (at the fit's estimates)."""
        return self.objective.factor

    @property
    def REML(self) -> bool:
        return False

    @property
    def family(self):
        return self.lmod.family

    @property
    def warnings(self) -> list[str]:
        return self.lmod.warnings + self.data_warnings + self.opt.warnings + self.conv.warnings

    def emit_messages(self) -> None:
        """Report lme4's messages and warnings for a glmer fit."""
        emit(self.lmod.messages, self.conv.messages, self.lmod.warnings + self.data_warnings,
             self.opt.warnings + self.conv.warnings)

    def sigma(self) -> float:
        """1 without a dispersion parameter; else sqrt(pwrss / n) (lme4's sigmaML)."""
        if not self.family.has_scale:
            return 1.0
        return float(np.sqrt(self.state.pwrss / self.n))

    def npar(self) -> int:
        extra = 1 if self.family.has_scale or self.family.theta is not None else 0
        return self.p + len(self.theta) + extra

    def logLik(self, REML: bool | None = None) -> LogLik:
        """Minus half the optimised deviance (see the module docstring for nAGQ > 1)."""
        if REML:
            raise ValueError("can't compute REML deviance for a non-LMM")
        return LogLik(-self.opt.fval / 2, self.npar(), self.n)

    def deviance(self, REML: bool | None = None) -> float:
        """The sum of squared deviance residuals (lme4's deviance() of a glmerMod)."""
        return float(np.sum(self.residuals(type="deviance").to_numpy() ** 2))

    def REMLcrit(self) -> float:
        raise ValueError("can't compute REML deviance for a non-LMM")

    def df_residual(self) -> int:
        return self.n - self.npar()

    def isSingular(self, tol: float = 1e-4) -> bool:
        from .convergence import is_singular

        return is_singular(self.theta, self.lmod.reTrms.lower, tol)

    # ------------------------------------------------------------ fitted values and residuals
    def fitted(self) -> pd.Series:
        """The conditional means mu (lme4's fitted of a glmerMod)."""
        return pd.Series(self.state.mu, index=self.lmod.frame.data.index)

    def _response(self):
        return self.devfun.pirls.resp

    def residuals(self, type: str = "deviance", scaled: bool = False) -> pd.Series:
        """lme4's residuals of a glmerMod: 'deviance' (default), 'pearson', 'working', 'response'."""
        fam, y, mu = self.family, self.lmod.y, self.state.mu
        w = self.lmod.prior_weights
        eta = self.state.eta + self.offset
        if type == "deviance":
            d = np.sqrt(np.maximum(fam.dev_resids(y, mu, w), 0.0))
            res = np.where(y > mu, d, -d)
        elif type == "pearson":
            res = np.sqrt(w / fam.variance(mu)) * (y - mu)
        elif type == "working":
            res = (y - mu) / fam.mu_eta(eta)
        elif type == "response":
            res = y - mu
        else:
            raise ValueError(f"residual type {type!r}: use 'deviance', 'pearson', 'working' or 'response'")
        if scaled:
            res = res / self.sigma()
        return pd.Series(res, index=self.lmod.frame.data.index)

    resid = residuals

    def predict(self, newdata: pd.DataFrame | None = None, re_form=None, allow_new_levels: bool = False,
                type: str = "link", se_fit: bool = False, interval: str = "none", level: float = 0.95):
        """lme4's predict.merMod: the linear predictor (``type="link"``) or the mean
        (``type="response"``), with all, none (``re_form="~0"``) or some random-effects terms.
        ``se_fit=True`` / ``interval="confidence"`` (lme4 1.1-31 ignores se.fit; pylme adds it,
        with ``re_form="~0"``): the population-level fit with its standard error from vcov and
        Wald limits on the link scale; ``type="response"`` back-transforms the fit and the
        limits (linkinv) and the SE by the delta method (|d mu / d eta| SE), as R's predict.glm."""
        if type not in ("link", "response"):
            raise ValueError(f"type must be 'link' or 'response', not {type!r}")
        from .predict import predict, predict_se

        if se_fit or interval != "none":
            out = predict_se(self, newdata, re_form, se_fit, interval, level)
            if type == "response":
                eta = out["fit"].to_numpy()
                if se_fit:
                    out["se.fit"] = np.abs(self.family.mu_eta(eta)) * out["se.fit"].to_numpy()
                for col in ("fit", "lwr", "upr"):
                    if col in out:
                        out[col] = self.family.linkinv(out[col].to_numpy())
                if interval != "none":  # a decreasing inverse link (Gamma's inverse) swaps the limits
                    lims = np.sort(out[["lwr", "upr"]].to_numpy(), axis=1)
                    out["lwr"], out["upr"] = lims[:, 0], lims[:, 1]
            return out
        eta = predict(self, newdata, re_form, allow_new_levels)
        return eta if type == "link" else pd.Series(self.family.linkinv(eta.to_numpy()), index=eta.index)

    # ------------------------------------------------------------ covariance of the fixed effects
    def vcov(self, use_hessian: bool | None = None) -> pd.DataFrame:
        """lme4's vcov of a glmerMod (use.hessian = TRUE when the Hessian is there; see the module docstring)."""
        names = self.lmod.fixef_names
        V = self.sigma() ** 2 * self._unscaled_rx()
        hess = self._vcov_hessian()
        if use_hessian is None:
            use_hessian = hess is not None
        if use_hessian and hess is None:
            raise ValueError("'use.hessian'=TRUE specified, but Hessian is unavailable")
        if use_hessian:
            if np.all(np.isfinite(hess)) and np.min(np.linalg.eigvalsh(hess)) > 0:
                V = hess
            else:
                warnings.warn("variance-covariance matrix computed from finite-difference Hessian is\nnot positive "
                              "definite or contains NA values: falling back to var-cov estimated from RX", stacklevel=2)
        return pd.DataFrame(V, index=names, columns=names)

    def _unscaled_rx(self) -> np.ndarray:
        RXi = np.linalg.inv(self.state.RX) if self.p else np.zeros((0, 0))
        return RXi @ RXi.T

    def _vcov_hessian(self) -> np.ndarray | None:
        """2 H^-1's beta block (symmetrised), H the deviance's Hessian in (theta, beta); None without one."""
        d = self.opt.derivs
        ntheta = len(self.theta)
        if d is None or d.Hessian.shape[0] <= ntheta:
            return None
        try:
            Hi = np.linalg.solve(d.Hessian, np.eye(d.Hessian.shape[0]))
        except np.linalg.LinAlgError:
            return np.full((self.p, self.p), np.nan)
        Hi = Hi[ntheta:, ntheta:]
        return Hi + Hi.T

    # ------------------------------------------------------------ random effects
    def VarCorr(self) -> VarCorr:
        vc = super().VarCorr()
        if not self.family.has_scale:
            vc.sigma = None
        return vc

    def getME(self, name: str):
        """lme4's getME, with glmer's ``mu``, ``beta`` (from the optimiser) and prior ``weights``."""
        table = {"mu": lambda: self.state.mu, "weights": lambda: self.lmod.prior_weights,
                 "devfun": lambda: self.devfun, "glmer.nb.theta": lambda: self.family.theta}
        if name in table:
            return table[name]()
        return super().getME(name)

    # ------------------------------------------------------------ printing
    def method_title(self) -> str:
        how = ("(Laplace Approximation)" if self.nAGQ == 1 else
               f"(Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nAGQ})" if self.nAGQ > 1 else "")
        return f"Generalized linear mixed model fit by maximum likelihood {how}"

    def _header(self) -> list[str]:
        title = self.method_title()
        if len(title) + 5 + len("glmerMod") > 80:
            lines = textwrap.wrap(title, width=77, subsequent_indent="  ")
            lines[-1] += " [glmerMod]"
        else:
            lines = [f"{title} ['glmerMod']"]
        lines.append(f" Family: {self.family.family}  ( {self.family.link_name} )")
        lines.append(f"Formula: {deparse(expand_double_verts(parse(self.formula)))}")
        if self.lmod.data_name:
            lines.append(f"   Data: {self.lmod.data_name}")
        return lines

    def _aic_lines(self, digits: int) -> list[str]:
        ll = float(self.logLik())
        vals = [round(v, digits) for v in (self.AIC(), self.BIC(), ll, -2 * ll)]
        names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
        return named_vector(names, format_numbers(vals, 7) + [str(self.df_residual())])

    def summary(self, ddf: str = "lme4"):
        return GlmerSummary(self)

    def __str__(self) -> str:
        lines = self._header() + self._aic_lines(4)
        lines += ["Random effects:", self.VarCorr().format(("Std.Dev.",), 4), groups_line(self)]
        fe = self.fixef()
        lines.append("Fixed Effects:")
        lines += named_vector(list(fe.index), format_numbers(fe.to_numpy(), 4), gap=2)
        return "\n".join(lines + self._fit_notes())

    def _fit_notes(self) -> list[str]:
        msgs = [m for m in self.messages if "singular" in m] + self.warnings
        if not msgs:
            return []
        name, conv = self.opt.summary.optimizer, self.opt.summary.conv
        head = [f"optimizer ({name}) convergence code: {conv}" + (" (OK)" if conv == 0 else "")] if self.warnings else []
        return head + msgs

    # ------------------------------------------------------------ records
    def record(self, devfun_pars: list[list[float]] | None = None):
        from .glmer_record import glmer_record

        return glmer_record(self, devfun_pars)

    def refit(self, newresp=None):
        """lme4's refit: the same model on a new response, optimised from this fit's estimates."""
        return self.objective.refit(self, newresp)

    def update(self, formula: str | None = None, **kwargs) -> "GlmerMod":
        """Refit with some arguments changed, as R's ``update(gm, . ~ . - period)``: glmer with
        this fit's family, nAGQ, weights, offset and control unless given (``data``, ``start``,
        ``control``, ... as ``pylme.glmer`` takes them); a formula with ``.`` is read as R's
        update.formula reads it. A glmer_nb fit is updated with its estimated theta held fixed, as
        lme4's (whose call is glmer with ``negative.binomial(theta)``)."""
        if formula is not None and "." in names_in(formula):
            formula = update_formula(self.formula, formula)
        args = {"family": self.family, "nAGQ": self.nAGQ, "weights": self.lmod.weights_arg,
                "offset": self.lmod.offset_arg, "control": self.control}
        args.update(kwargs)
        data = args.pop("data", self.lmod.data)
        return self.objective.fit(formula or self.formula, data, **args)


class GlmerSummary:
    """summary(gm): lme4's GLMM layout with z values and Pr(>|z|)."""

    def __init__(self, fm: GlmerMod):
        from scipy import stats  # imported on first use, as scipy.stats is slow to import

        self.fm = fm
        se = np.sqrt(np.diag(fm.vcov().to_numpy()))
        beta = fm.fixef().to_numpy()
        z = beta / se
        self.coefficients = pd.DataFrame({"Estimate": beta, "Std. Error": se, "z value": z,
                                          "Pr(>|z|)": 2 * stats.norm.sf(np.abs(z))}, index=fm.fixef().index)

    def __str__(self) -> str:
        fm, digits = self.fm, 4
        lines = fm._header() + [""] + fm._aic_lines(1) + [""]
        lines += ["Scaled residuals: "] + residual_quantiles(fm, digits) + [""]
        lines += ["Random effects:", fm.VarCorr().format(("Variance", "Std.Dev."), digits), groups_line(fm)]
        if fm.na_message:
            lines.append(f"({len(fm.na_action)} observations deleted due to missingness)")
        if len(self.coefficients):
            lines += ["", "Fixed effects:", z_table(self.coefficients, digits)]
            lines += correlation_lines(fm)
        return "\n".join(lines + fm._fit_notes())

    __repr__ = __str__


def z_table(coefs: pd.DataFrame, digits: int = 4) -> str:
    """R's printCoefmat for Estimate, Std. Error, z value and Pr(>|z|) with significance stars."""
    cs_vals = coefs[["Estimate", "Std. Error"]].to_numpy(dtype=float)
    acs = np.abs(cs_vals[np.isfinite(cs_vals) & (cs_vals != 0)])
    digmin = 1 + (np.floor(np.log10(acs.min())) if acs.size else 0)
    dec = max(1, int(digits - digmin))
    cs = format_numbers(np.round(cs_vals, dec).ravel(), digits)
    cols = {"Estimate": cs[0::2], "Std. Error": cs[1::2]}
    cols["z value"] = format_numbers(np.round(coefs["z value"].to_numpy(), max(1, min(5, digits - 1))), digits)
    p = coefs["Pr(>|z|)"].to_numpy()
    cols["Pr(>|z|)"] = format_pvals(p, max(1, min(5, digits - 1)))
    stars = [signif_stars(v) for v in p]
    cols[""] = [st.ljust(max(map(len, stars))) for st in stars]
    table = render_table(cols, row_names=list(coefs.index), right_all=True)
    return table + "\n---\nSignif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"

