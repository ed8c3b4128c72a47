"""Fitting a generalized linear mixed model, as lme4's glmer's visible steps:

``glFormula`` (formula + data + family -> frame, response, X, random-effects terms) ->
``mkGlmerDevfun`` (-> PIRLS at the starting theta, the nAGQ = 0 deviance of theta) ->
``optimizeGlmer`` stage 1 (theta, nAGQ = 0) -> ``updateGlmerDevfun`` (-> the Laplace or
quadrature deviance of (theta, beta)) -> ``optimizeGlmer`` stage 2 -> ``mkGlmerMod``, with
``checkConv`` on the derivatives in (theta, beta). ``glmer`` runs them in order.

lme4 optimises stage 1 with minqa's bobyqa and stage 2 with its Nelder-Mead; pylme uses nlopt's
BOBYQA for both, stage 2 over theta and beta in standard-error units (``_Stage2Coordinates``), and
ends stage 2 with the finish of pylme.fitting.polish: Newton steps on checkConv's derivatives from
BOBYQA's end to a certified optimum, at lme4's deviance or below it (the conformance corpus checks
this case by case). The number of deviance evaluations is what a fit costs; the module's constants
(STAGE1_XTOL, STAGE2_*, HESSIAN_REUSE_SE) say how each was set and measured.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..description.evaluate import Evaluator, Logical
from ..description.factors import Factor
from ..description.family import Family, as_family
from ..description.formula import expand_dot, expand_terms, parse_mixed
from ..description.model_matrix import check_scale_x, design, drop_rank_deficient, numeric_columns
from ..description.modelframe import as_data_frame, model_frame
from ..description.reterms import ReTrms, mk_reterms
from ..errors import DataError, FormulaError, ModelError, PylmeWarning
from ..fitted.glmer_model import GlmerMod
from ..fitting.convergence import ConvCheck, Derivs, check_conv, deriv12, one_by_one
from ..fitting.optimizer import OptSummary, optwrap
from ..objectives.lformula import LmerFormula, check_zdims, offset_sum
from ..objectives.pirls import GlmResponse, Pirls, PirlsState, gh_rule
from ..objectives.pirls_blocked import weighted_pls
from .lmer import lmer


@dataclass
class GlmerControl:
    """lme4's glmerControl defaults. ``optimizer`` names lme4's two stages' optimisers (recorded);
    pylme runs nlopt's BOBYQA in both (see the module's docstring), except for a stage given
    ``"nloptwrap"``, which runs lme4's nloptwrap itself: nlopt with lme4's defaults overridden by
    ``optCtrl`` (``algorithm``, ``maxeval``, ``xtol_rel``, ...), as ``allFit`` uses it.
    ``optimizer=None`` evaluates the model at ``start`` without optimising (to install another
    engine's estimates). ``optCtrl``'s steps and x tolerances apply, in stage 2, to theta and to beta
    in its standard-error units (see the module's docstring). ``pirls_factor`` (pylme's own) picks
    PIRLS's factorisation: the two-block one where the first random-effects term is scalar
    (``"blocked"``), CHOLMOD's (``"cholmod"``), or (``"auto"``, the default) the two-block one where it
    applies with a small second block or to 100,000 observations or more, else CHOLMOD's
    (pylme.objectives.pirls_blocked.weighted_pls)."""

    optimizer: tuple[str, str] | None = ("bobyqa", "Nelder_Mead")
    optCtrl: dict = field(default_factory=dict)
    restart_edge: bool = False
    boundary_tol: float = 1e-5
    calc_derivs: bool = True
    tolPwrss: float = 1e-7
    compDev: bool = True
    nAGQ0initStep: bool = True
    check_response_not_const: str = "stop"
    # finish the last stage where its optimiser stopped short of the optimum, and certify the end
    # (pylme.fitting.polish, as lmerControl's); False keeps the optimiser's end, evaluation for evaluation
    polish: bool = True
    check_conv_grad_tol: float = 2e-3
    check_conv_singular_tol: float = 1e-4
    check_conv_hess_tol: float = 1e-6
    pirls_factor: str = "auto"  # pylme: "auto", "cholmod" or "blocked" (two-block) (pylme.objectives.pirls_blocked)

    def __post_init__(self) -> None:
        if isinstance(self.optimizer, str):
            self.optimizer = (self.optimizer, self.optimizer)
        if self.restart_edge:
            raise ModelError("restart_edge not implemented for optimizeGlmer yet")


def glmerControl(**kwargs) -> GlmerControl:
    """R's ``glmerControl(...)`` with Python argument names (``boundary.tol`` -> ``boundary_tol``)."""
    return GlmerControl(**{k.replace(".", "_"): v for k, v in kwargs.items()})


@dataclass
class GlmerFormula(LmerFormula):
    """What glFormula returns: lFormula's parts, the family, and the response as the family's
    ``initialize`` leaves it (y, binomial totals n, prior weights, starting mean)."""

    family: Family | None = None
    n_trials: np.ndarray | None = None
    prior_weights: np.ndarray | None = None
    mustart: np.ndarray | None = None
    response_levels: tuple[str, ...] | None = None  # a factor response's levels
    response_kind: str = "vector"  # "vector", "factor" or "cbind"


def glFormula(formula: str, data: pd.DataFrame, family="gaussian", weights=None, offset=None) -> GlmerFormula:
    """Parse the formula, build the model frame, the response (in each of R's binomial forms),
    X (rank-checked) and the random-effects terms, and run the family's ``initialize``."""
    fam = as_family(family)
    data = as_data_frame(data)
    pf = expand_dot(parse_mixed(formula), data.columns)
    if pf.response is None:
        raise FormulaError(f"formula {formula!r} has no response: write it as 'response ~ terms'")
    if not pf.bars:
        raise ModelError("No random effects terms specified in formula")
    mf = model_frame(pf, data, weights, offset)
    frame = mf.data
    raw, kind, levels = _response(frame, pf.response, pf.response_label, fam, mf.states)
    reTrms = mk_reterms(pf.bars, frame, mf.states)
    n = len(frame)
    _check_nlevels_glmer(reTrms, n)
    check_zdims(reTrms, n + 1)  # glFormula allows as many random effects as observations
    fixed = expand_terms(pf.fixed)
    spec, X = design(fixed, frame, mf.states)
    names = list(spec.column_names)
    X, keep = drop_rank_deficient(X)
    col_dropped = [nm for k, nm in enumerate(names) if k not in keep]
    messages = []
    if col_dropped:
        k = len(col_dropped)
        messages.append(f"fixed-effect model matrix is rank deficient so dropping {k} column{'s' if k > 1 else ''}"
                        f" / coefficient{'s' if k > 1 else ''}")
    off = offset_sum(fixed.offsets, frame, mf.offset, mf.states)
    w = np.ones(n) if mf.weights is None else np.asarray(mf.weights, dtype=float)
    if np.any(w < 0):
        raise DataError(f"weights must be >= 0: {int(np.sum(w < 0))} negative prior weights")
    init = fam.initialize(raw, w)
    return GlmerFormula(
        pf, mf, init.y, X, spec, [names[k] for k in keep], col_dropped, reTrms, False, mf.weights, off,
        data=data, weights_arg=weights, offset_arg=offset, data_name=data.attrs.get("name"), messages=messages,
        warnings=mf.notes + init.warnings + check_scale_x(X), family=fam, n_trials=init.n,
        prior_weights=init.weights, mustart=init.mustart, response_levels=levels, response_kind=kind,
    )


def _response(frame: pd.DataFrame, node, label: str, fam: Family, states: dict):
    """The response as the family's initialize receives it: a vector, or for
    ``cbind(successes, failures)`` a two-column matrix; with its kind and a factor's levels."""
    if node.op == "call" and node.text == "cbind":
        args = [a for a in node.args]
        if len(args) != 2 or fam.family != "binomial":
            raise DataError(f"response {label!r}: cbind() takes two columns (successes, failures) and only for "
                            "the binomial family")
        cols = [_numeric(Evaluator(frame, states).value(a), str(a), len(frame)) for a in args]
        return np.column_stack(cols), "cbind", None
    value = Evaluator(frame, states).value(node)
    if isinstance(value, Factor):
        if fam.family != "binomial":
            raise DataError(f"response {label!r} must be numeric for the {fam.family} family, not a factor")
        if value.nlevels > 2:
            raise DataError(f"response {label!r} is a factor with {value.nlevels} levels "
                            f"({', '.join(value.levels[:5])}{', ...' if value.nlevels > 5 else ''}): a binomial "
                            "response factor must have two levels (the first is failure); R would count every "
                            "level but the first as a success")
        if np.any(value.codes < 0):
            raise DataError(f"NA/NaN/Inf in 'y': response {label!r} has missing values")
        return (value.codes != 0).astype(float), "factor", tuple(value.levels)
    if isinstance(value, Logical):
        value = value.values
    return _numeric(value, label, len(frame)), "vector", None


def _numeric(value, label: str, n: int) -> np.ndarray:
    if isinstance(value, Factor) or (isinstance(value, np.ndarray) and value.dtype == object):
        raise DataError(f"response {label!r} must be numeric (or, for the binomial family, a two-level factor)")
    if isinstance(value, Logical):
        value = value.values
    y, _ = numeric_columns(value, label, n)
    if y.shape[1] != 1:
        raise DataError(f"response {label!r} must be a single numeric column")
    y = y[:, 0].astype(float)
    if not np.all(np.isfinite(y)):
        raise DataError(f"NA/NaN/Inf in 'y': response {label!r} has {int(np.sum(~np.isfinite(y)))} such values")
    return y


def _check_nlevels_glmer(reTrms: ReTrms, n: int) -> None:
    """glFormula's checkNlevels (allow.n = TRUE): each grouping factor needs > 1 and <= n levels."""
    bad = [k for k, f in reTrms.flist.items() if f.nlevels < 2]
    if bad:
        raise ModelError(f"grouping factors must have > 1 sampled level (problems: {', '.join(bad)})")
    bad = [k for k, f in reTrms.flist.items() if f.nlevels > n]
    if bad:
        raise ModelError("number of levels of each grouping factor must be <= number of observations "
                         f"(problems: {', '.join(bad)})")


def check_response(y: np.ndarray, level: str = "stop") -> list[str]:
    """lme4's checkResponse: a constant response is an error (or a warning)."""
    if level != "ignore" and len(np.unique(y)) < 2:
        if level == "stop":
            raise DataError("Response is constant")
        return ["Response is constant"]
    return []


#: stage 1 (theta, nAGQ = 0) stops when BOBYQA's trust region is below this fraction of its first
#: step (minqa's rhoend is 1e-6 of it): stage 1 only gives stage 2 its start, and the evaluations
#: below 1e-4 moved stage 2's start by less than stage 2's own first steps (measured: VerbAgg 44 -> 38,
#: grouseticks 92 -> 78 evaluations, the final deviances within 1e-8 of each other)
STAGE1_XTOL = 1e-4
#: stage 2's first steps: 0.02 per theta (0.2 x 0.1, lme4's Nelder-Mead) and half a standard error per
#: beta (beta is optimised in standard-error units: see ``_Stage2Coordinates``); its stopping rules,
#: with the finish behind them (pylme.fitting.polish: a Newton step on checkConv's derivatives
#: carries the end to the optimum): steps below 5e-4 of the first ones, or a deviance change below 1e-8
STAGE2_THETA_STEP, STAGE2_BETA_STEP = 0.02, 0.5
#: ... and no beta's first step above lme4's largest (0.2 x min(SE, 10))
STAGE2_BETA_MAX_STEP = 2.0
STAGE2_XTOL, STAGE2_FTOL = 5e-4, 1e-8
#: the finish reuses checkConv's Hessian at a point within this many standard errors of where it was
#: taken, a step that lowers the deviance by about its square (1e-6): measured on cbpp, grouseticks,
#: Contraception and VerbAgg, the deviance's Hessian moves by 0.1 to 0.3 of vcov per standard error
#: travelled, so vcov from the reused Hessian is within 3e-4 of the final point's (a seventh of the
#: conformance tolerance on vcov, 2e-3, which lme4's own Nelder-Mead end, up to 1e-2 SE from the
#: optimum, needs); farther, the derivatives are computed anew at the final point
HESSIAN_REUSE_SE = 1e-3


class GlmerDevfun:
    """lme4's glmer deviance function. Stage 1 (``nAGQ=0``) is a function of theta with beta
    inside PIRLS; after ``update(nAGQ)`` it is a function of (theta, beta): Laplace for nAGQ = 1,
    adaptive Gauss-Hermite quadrature for nAGQ > 1."""

    #: the certificate's gradient is Richardson-extrapolated (pylme.fitting.polish.richardson_gradient)
    extrapolate_gradient = True
    #: the finish reuses checkConv's Hessian within this many standard errors of where it was taken
    #: (pylme.fitting.polish.hessian_distance)
    hessian_reuse_se = HESSIAN_REUSE_SE

    def __init__(self, glmod: GlmerFormula, control: GlmerControl):
        fam = glmod.family
        off = np.zeros(len(glmod.y)) if glmod.offset is None else np.asarray(glmod.offset, dtype=float)
        resp = GlmResponse(fam, glmod.y, glmod.n_trials, glmod.prior_weights, off.copy(), off.copy(), off.copy())
        resp.update_mu(fam.linkfun(glmod.mustart))
        self.glmod = glmod
        self.reTrms = glmod.reTrms
        self.pls = weighted_pls(glmod.X, glmod.reTrms, control.pirls_factor)
        self.pirls = Pirls(self.pls, resp, control.tolPwrss)
        self.ntheta = len(self.reTrms.theta0)
        self.nAGQ = 0
        self.codes = None
        self.rule = gh_rule(0)
        self.last: PirlsState | None = None
        self.at: np.ndarray | None = None  # the parameters of the last evaluation (the state's)
        self.nevals = 0  # evaluations so far (the optimisers', checkConv's, the finish's)
        self.pls.set_theta(self.reTrms.theta0)
        self.pirls.update(u_only=not control.nAGQ0initStep)
        self.pirls.lp0 = self.pls.lin_pred(self.pirls.u, self.pirls.beta)
        self.lower = self.reTrms.lower.copy()

    @property
    def offset(self) -> np.ndarray:
        return self.pirls.base_offset

    @property
    def sqrtw(self) -> np.ndarray:
        return np.sqrt(self.pirls.resp.weights)

    def resolution(self, deviance: float) -> float:
        """The smallest change of the deviance that PIRLS resolves (pylme.fitting.polish's certificate):
        it stops when the penalized deviance changes by less than tolPwrss relative, so where it
        stops moves the deviance by about that much; the deviance jumps where the number of
        iterations changes (measured on the corpus near the optimum: 2e-4 on sleepstudy's Gamma
        fit, 1.2e-7 of its deviance, tolPwrss 1e-7)."""
        return self.pirls.tol * abs(deviance)

    def update(self, nAGQ: int) -> "GlmerDevfun":
        """lme4's updateGlmerDevfun: the deviance of (theta, beta) from here on, starting each
        PIRLS from the current linear predictor."""
        if nAGQ > 1:
            rt = self.reTrms
            if len(rt.flist) != 1 or len(rt.terms) != 1 or rt.terms[0].nc != 1:
                raise ModelError("nAGQ > 1 is only available for models with a single, scalar random-effects term")
            self.codes = rt.terms[0].factor.codes
        self.nAGQ = nAGQ
        self.rule = gh_rule(nAGQ)
        self.lower = np.concatenate([self.reTrms.lower, np.full(self.pls.p, -np.inf)])
        self.pirls.lp0 = self.pls.lin_pred(self.pirls.u, self.pirls.beta)
        return self

    def __call__(self, pars: np.ndarray) -> float:
        return self.evaluate(pars).value

    def evaluate(self, pars: np.ndarray) -> PirlsState:
        """One evaluation, leaving the model's state at ``pars`` (as lme4's devfun does)."""
        pars = np.asarray(pars, dtype=float)
        self.nevals += 1
        pr, resp = self.pirls, self.pirls.resp
        pr.start()
        if self.nAGQ == 0:
            self.pls.set_theta(pars)
            pr.update(u_only=False)
            value = pr.laplace()
        else:
            self.pls.set_theta(pars[: self.ntheta])
            beta = pars[self.ntheta:]
            resp.offset = pr.base_offset + self.pls.x_beta(beta)
            pr.update(u_only=True)
            value = pr.laplace() if self.nAGQ == 1 else pr.agq(self.rule, self.codes)
        self.last = pr.state(value)
        self.at = pars.copy()
        if self.nAGQ > 0:
            self.last.beta = pars[self.ntheta:].copy()
            self.last.eta = resp.eta - pr.base_offset
        return self.last

    def cond_var_blocks(self, theta: np.ndarray, columns: list[np.ndarray], chunk: int = 2048) -> np.ndarray:
        """Conditional covariance blocks of b at the last evaluation's weights (lme4's condVar)."""
        return self.pls.cond_var_blocks(columns, chunk)

    def refit(self, fm, newresp=None, family=None):
        """lme4's refit of the glmer fit ``fm`` (whose deviance function this is) to a new response
        and/or family (``refit_glmer``): how a fitted model refits without importing this module."""
        return refit_glmer(fm, newresp, family)

    def fit(self, formula: str, data, **kwargs):
        """A new glmer fit (``pylme.glmer(formula, data, **kwargs)``): how a fitted model's
        ``update`` refits without importing this module."""
        return glmer(formula, data, **kwargs)

    def unsc(self) -> np.ndarray:
        """(RX'RX)^-1 of the last factorisation (lme4's pp$unsc())."""
        RXi = np.linalg.inv(self.pls.RX) if self.pls.p else np.zeros((0, 0))
        return RXi @ RXi.T

    @property
    def factor(self):
        return self.pls.factor

    def update_factor(self, theta: np.ndarray) -> None:
        """The factor is the last evaluation's (at the fit's estimates): nothing to redo."""


@dataclass
class GlmerOpt:
    """optimizeGlmer's outcome over both stages: the final run, each stage's, derivatives in
    (theta, beta) at the end, and the optimiser's warnings."""

    summary: OptSummary
    runs: list[OptSummary]
    derivs: Derivs | None
    warnings: list[str]
    objective: object = None

    @property
    def par(self) -> np.ndarray:
        return self.summary.par

    @property
    def fval(self) -> float:
        return self.summary.fval


def _stage1_control(theta0: np.ndarray, user: dict) -> dict:
    """minqa's bobyqa first step for stage 1, min(0.95, 0.2 max|theta|), as nlopt's initial step,
    stopping at STAGE1_XTOL of it."""
    rhobeg = min(0.95, 0.2 * float(np.max(np.abs(theta0)))) or 0.2
    return {"xtol_abs": STAGE1_XTOL * rhobeg, "ftol_abs": 1e-12, "xtol_rel": 0.0, "initial_step": rhobeg, **user}


@dataclass
class _Stage2Coordinates:
    """Stage 2's BOBYQA works in z, (theta, beta) = origin + T z, with theta as it is and beta in units
    of its standard errors and correlations at stage 1's end: T's beta block is the Cholesky factor of
    (RX'RX)^-1 there. The deviance's Hessian in beta is then near the identity (times 2), where in
    (theta, beta) its condition number is that of X'WX (correlated columns, an intercept beside an
    uncentred covariate): BOBYQA's quadratic model needs far fewer evaluations (VerbAgg's stage 2: 52
    instead of 182 at the same stopping rules). Theta keeps its bounds (shifted by the origin)."""

    origin: np.ndarray
    T: np.ndarray
    ntheta: int

    @classmethod
    def at(cls, devfun: "GlmerDevfun", origin: np.ndarray) -> "_Stage2Coordinates":
        nt = devfun.ntheta
        T = np.eye(origin.size)
        if origin.size > nt:
            unsc = devfun.unsc()
            se = np.sqrt(np.diag(unsc))
            # a separated beta has a huge SE: its first step kept to lme4's largest (0.2 x 10), where PIRLS converges
            cap = np.minimum(1.0, STAGE2_BETA_MAX_STEP / (STAGE2_BETA_STEP * se))
            T[nt:, nt:] = cap[:, None] * np.linalg.cholesky(unsc)
        return cls(np.array(origin, dtype=float), T, nt)

    def pars(self, z: np.ndarray) -> np.ndarray:
        return self.origin + self.T @ z

    def lower(self, lower: np.ndarray) -> np.ndarray:
        return np.concatenate([lower[: self.ntheta] - self.origin[: self.ntheta],
                               np.full(self.origin.size - self.ntheta, -np.inf)])


def _stage2_control(ntheta: int, npar: int, user: dict) -> dict:
    """Stage 2's first steps and stopping rules in its coordinates (``_Stage2Coordinates``)."""
    step = np.concatenate([np.full(ntheta, STAGE2_THETA_STEP), np.full(npar - ntheta, STAGE2_BETA_STEP)])
    return {"xtol_abs": list(step * STAGE2_XTOL), "ftol_abs": STAGE2_FTOL, "xtol_rel": 0.0, "initial_step": list(step),
            **user}


def _stage2_bobyqa(devfun: "GlmerDevfun", start: np.ndarray, user: dict, verbose: int) -> OptSummary:
    """BOBYQA over (theta, beta) from ``start`` in stage 2's coordinates; the record (start, bounds,
    each evaluation, the end) in (theta, beta), the control in the coordinates BOBYQA saw."""
    coords = _Stage2Coordinates.at(devfun, start)
    ctrl = _stage2_control(devfun.ntheta, start.size, user)
    summary = optwrap(lambda z: devfun(coords.pars(z)), np.zeros(start.size), coords.lower(devfun.lower), ctrl,
                      verbose=verbose)
    summary.control = {**summary.control, "coordinates": "theta; beta in standard errors at stage 1's end"}
    summary.initial, summary.lower = np.array(start, dtype=float), devfun.lower.copy()
    summary.par = coords.pars(summary.par)
    summary.log = [(coords.pars(z), value) for z, value in summary.log]
    return summary


def optimizeGlmer(devfun: GlmerDevfun, control: GlmerControl, start: np.ndarray, stage: int,
                  verbose: int = 0) -> GlmerOpt:
    """One stage: BOBYQA from ``start`` (theta; stage 2: theta and beta), or lme4's nloptwrap when
    the stage's optimizer is ``"nloptwrap"``; derivatives at the end (stage 2), the final
    evaluation at the optimum, then lme4's boundary check; stage 2's end finished (``_finish``),
    with a second opinion where that end is not certified (``_second_opinion``)."""
    name = control.optimizer[stage - 1]
    if name == "nloptwrap":  # lme4's nloptwrap: nloptr with lme4's defaults and the user's optCtrl, no adjustments
        summary = optwrap(devfun, start, devfun.lower, dict(control.optCtrl), verbose=verbose)
        return _end_of_stage(devfun, control, summary, stage, name)
    if stage == 1:
        summary = optwrap(devfun, np.where(np.all(start == 0), 0.001, start), devfun.lower,
                          _stage1_control(start, control.optCtrl), verbose=verbose)
        return _end_of_stage(devfun, control, summary, stage, name + " (pylme: nlopt BOBYQA)")
    plain = _plain_stage2_control(devfun, control.optCtrl)  # at stage 1's end, as the coordinates
    summary = _stage2_bobyqa(devfun, start, control.optCtrl, verbose)
    opt = _end_of_stage(devfun, control, summary, stage, name + " (pylme: nlopt BOBYQA)")
    cert = opt.summary.certificate
    if control.polish and cert is not None and not cert.certified:
        opt = _second_opinion(devfun, control, start, plain, opt, verbose)
    return opt


def _end_of_stage(devfun: GlmerDevfun, control: GlmerControl, summary: OptSummary, stage: int,
                  optimizer: str) -> GlmerOpt:
    """After a stage's optimiser: checkConv's derivatives (stage 2), the state at the end (stage 1: stage
    2 starts from PIRLS there), lme4's boundary check, and stage 2's finish."""
    derivs = deriv12(one_by_one(devfun), summary.par, fx=summary.fval) if stage == 2 and control.calc_derivs else None
    summary.optimizer = optimizer
    if stage == 1:
        devfun(summary.par)
    msgs = [f"convergence code {summary.conv} from {summary.optimizer}: {summary.message}"] if summary.conv else []
    if (stage == 2 or devfun.nAGQ == 0) and control.boundary_tol > 0:
        summary = _check_boundary(devfun, summary, control.boundary_tol)
    opt = GlmerOpt(summary, [summary], derivs, msgs, devfun)
    return _finish(devfun, opt, control) if stage == 2 else opt


def _plain_stage2_control(devfun: GlmerDevfun, user: dict) -> dict:
    """Stage 2 in (theta, beta) as they are, with tight stopping rules (``_second_opinion``): lme4's
    Nelder-Mead steps 0.2 x (0.1 per theta, min(SE of beta, 10)), stopping at steps 5e-6 of them or a
    deviance change of 1e-12."""
    step = 0.2 * np.concatenate([np.full(devfun.ntheta, 0.1), np.minimum(np.sqrt(np.diag(devfun.unsc())), 10.0)])
    return {"xtol_abs": list(step * 5e-6), "ftol_abs": 1e-12, "xtol_rel": 0.0, "initial_step": list(step), **user}


def _second_opinion(devfun: GlmerDevfun, control: GlmerControl, start: np.ndarray, plain: dict, opt: GlmerOpt,
                    verbose: int) -> GlmerOpt:
    """Where stage 2's finished end is not certified, stage 2 once more from its start in (theta, beta)
    as they are with tight stopping rules (``_plain_stage2_control``), finished; the lower end is kept.
    On a deviance with kinks (PIRLS's step-halving: cbpp's cauchit fit) BOBYQA in standard-error units
    can stop at a kink that the finish cannot leave (1.3e-3 above lme4's deviance there), where this
    path, the one stage 2 took before the finish carried it, reaches the optimum. Costs nothing where
    the end is certified."""
    from ..fitting.polish import rounding

    summary = optwrap(devfun, start, devfun.lower, plain, verbose=verbose)
    other = _end_of_stage(devfun, control, summary, 2, opt.summary.optimizer)
    mine, theirs = opt.summary.certificate, other.summary.certificate
    tried = f"stage 2 again in (theta, beta) with tight stopping rules ({summary.feval} evaluations"
    evaluations = mine.evaluations + summary.feval + theirs.evaluations
    if other.fval < opt.fval - rounding(opt.fval):
        other.summary.certificate = replace(theirs, steps=[tried + ")"] + theirs.steps, evaluations=evaluations)
        return other
    opt.summary.certificate = replace(mine, steps=mine.steps + [tried + f", finished, ends at {other.fval:.12g})"],
                                      evaluations=evaluations)
    devfun(opt.par)
    return opt


def _finish(devfun: GlmerDevfun, opt: GlmerOpt, control: GlmerControl) -> GlmerOpt:
    """The last stage's end in (theta, beta) certified and, unless ``glmerControl(polish=False)``,
    finished where it is not the optimum, by lmer's code (pylme.fitting.driver.finish, whose bounds
    are the devfun's: theta's diagonal >= 0, beta free); checkConv's derivatives are reused where they
    were taken at the end. The deviance function is left at the end again (the fitted model reads
    its last evaluation)."""
    from ..fitting.driver import finish

    done = finish(devfun, opt, control, mirrors=devfun.reTrms.lam.factor_columns())
    if not np.array_equal(devfun.at, done.summary.par):
        devfun(done.summary.par)
    return done


def _check_boundary(devfun: GlmerDevfun, summary: OptSummary, tol: float) -> OptSummary:
    """lme4's check.boundary: a theta within ``tol`` of its bound is set to it if that is better."""
    theta = summary.par[: devfun.ntheta]
    diff = theta - devfun.reTrms.lower
    edge = np.flatnonzero((diff > 0) & (diff < tol))
    if not edge.size:
        return summary
    par = summary.par.copy()
    for i in edge:
        trial = par.copy()
        trial[i] = devfun.reTrms.lower[i]
        if devfun(trial) < summary.fval:
            par[i] = trial[i]
    summary.par, summary.fval = par, devfun(par)
    return summary


def _no_optimization(devfun: GlmerDevfun, start: np.ndarray) -> GlmerOpt:
    summary = OptSummary("none", {}, start.copy(), devfun.lower, par=start.copy(), fval=devfun(start), feval=1,
                         status=1000, message="no optimization")
    return GlmerOpt(summary, [summary], None, [], devfun)


def _start(start, devfun: GlmerDevfun, nAGQ: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(theta, fixef) of ``start``: a vector (theta) or a dict with 'theta' and/or 'fixef'."""
    if start is None:
        return None, None
    if isinstance(start, dict):
        bad = set(start) - {"theta", "fixef"}
        if bad:
            raise ModelError(f"bad name(s) for start vector ({', '.join(sorted(bad))}); should be 'theta' and/or 'fixef'")
        theta, fixef = start.get("theta"), start.get("fixef")
        if fixef is not None and nAGQ == 0:
            raise ModelError("should not specify both start$fixef and nAGQ==0")
    else:
        theta, fixef = start, None
    if theta is not None:
        theta = np.asarray(theta, dtype=float)
        if theta.shape != devfun.reTrms.theta0.shape:
            raise ModelError(f"incorrect number of theta components (!={devfun.ntheta})")
    if fixef is not None:
        fixef = np.asarray(fixef, dtype=float)
        if fixef.shape != (devfun.pls.p,):
            raise ModelError(f"incorrect number of fixef components (!={devfun.pls.p})")
    return theta, fixef


def checkConv(opt: GlmerOpt, devfun: GlmerDevfun, control: GlmerControl) -> ConvCheck:
    return check_conv(opt.derivs, opt.par, devfun.lower, grad_tol=control.check_conv_grad_tol,
                      hess_tol=control.check_conv_hess_tol, singular_tol=control.check_conv_singular_tol)


def glmer(
    formula: str,
    data: pd.DataFrame,
    family="gaussian",
    control: GlmerControl | None = None,
    start=None,
    verbose: int = 0,
    nAGQ: int = 1,
    weights: str | np.ndarray | None = None,
    offset: str | np.ndarray | None = None,
    devFunOnly: bool = False,
):
    """Fit a generalized linear mixed model as lme4's ``glmer`` does (Laplace by default;
    ``nAGQ=0``: beta inside PIRLS; ``nAGQ>1``: adaptive Gauss-Hermite quadrature)."""
    control = control or GlmerControl()
    fam = as_family(family)
    nAGQ = int(nAGQ)
    if not 0 <= nAGQ <= 100:
        raise ModelError(f"nAGQ must be between 0 and 100, not {nAGQ}")
    if fam.family == "gaussian" and fam.link_name == "identity":
        warnings.warn("calling glmer() with family=gaussian (identity link) as a shortcut to lmer() is deprecated; "
                      "please call lmer() directly", FutureWarning, stacklevel=2)
        return lmer(formula, data, REML=True, weights=weights, offset=offset)
    glmod = glFormula(formula, data, fam, weights, offset)
    data_warnings = check_response(glmod.y, control.check_response_not_const)
    devfun = mkGlmerDevfun(glmod, control)
    theta_start, fixef_start = _start(start, devfun, nAGQ)
    if nAGQ == 0 and devFunOnly:
        return devfun
    theta = devfun.reTrms.theta0.copy() if theta_start is None else theta_start
    runs = []
    if control.optimizer is None:
        opt = _finish_without_optimizer(devfun, theta, fixef_start, nAGQ, control.calc_derivs)
    else:
        if control.nAGQ0initStep:
            opt = optimizeGlmer(devfun, control, theta, 1, verbose) if nAGQ == 0 else _stage1(devfun, control, theta, verbose)
            runs.append(opt.summary)
            theta = opt.par
        if nAGQ > 0:
            devfun.update(nAGQ)
            beta = devfun.pirls.beta.copy() if fixef_start is None else fixef_start
            if devFunOnly:
                return devfun
            opt = optimizeGlmer(devfun, control, np.concatenate([theta, beta]), 2, verbose)
            runs.append(opt.summary)
        opt.runs = runs
    conv = checkConv(opt, devfun, control) if control.calc_derivs else ConvCheck()
    fm = GlmerMod(lmod=glmod, objective=devfun, opt=opt, conv=conv, control=control, state=devfun.last, nAGQ=nAGQ,
                  data_warnings=data_warnings)
    fm.emit_messages()
    return fm


def _stage1(devfun: GlmerDevfun, control: GlmerControl, theta: np.ndarray, verbose: int) -> GlmerOpt:
    """Stage 1 ahead of nAGQ >= 1: no boundary check and no derivatives (as lme4)."""
    saved = control.boundary_tol
    control.boundary_tol = 0.0
    try:
        return optimizeGlmer(devfun, control, theta, 1, verbose)
    finally:
        control.boundary_tol = saved


def _finish_without_optimizer(devfun: GlmerDevfun, theta: np.ndarray, fixef: np.ndarray | None, nAGQ: int,
                              calc_derivs: bool) -> GlmerOpt:
    """``optimizer=None``: the deviance at ``start`` (theta; and fixef for nAGQ >= 1, else the
    nAGQ = 0 fit's beta at theta), with the derivatives there as after an optimisation."""
    if nAGQ == 0:
        return _no_optimization(devfun, theta)
    devfun(theta)
    beta = devfun.pirls.beta.copy() if fixef is None else fixef
    devfun.update(nAGQ)
    opt = _no_optimization(devfun, np.concatenate([theta, beta]))
    if calc_derivs:
        opt.derivs = deriv12(one_by_one(devfun), opt.par, fx=opt.fval)
        devfun(opt.par)
    return opt


def refit_glmer(fm, newresp=None, family=None):
    """lme4's refit of a glmerMod: the same design with a new response (a vector on the fit's
    response scale, or for the binomial a two-column matrix of successes and failures, whose
    row sums become the weights) and/or a new family (glmer.nb's refitNB), optimised from the
    fit's theta (and beta) in the fit's last stage only."""
    glmod = _refit_formula(fm.lmod, newresp, family or fm.family)
    control = fm.control
    devfun = GlmerDevfun(glmod, control)
    theta = np.asarray(fm.theta, dtype=float)
    if fm.nAGQ == 0:
        opt = optimizeGlmer(devfun, control, theta, 1)
    else:
        devfun.update(fm.nAGQ)
        opt = optimizeGlmer(devfun, control, np.concatenate([theta, fm.fixef().to_numpy()]), 2)
    conv = checkConv(opt, devfun, control) if control.calc_derivs else ConvCheck()
    return type(fm)(lmod=glmod, objective=devfun, opt=opt, conv=conv, control=control, state=devfun.last,
                    nAGQ=fm.nAGQ, data_warnings=[])


def _refit_formula(glmod: GlmerFormula, newresp, fam: Family) -> GlmerFormula:
    """The fit's glFormula with the response (and prior weights) of ``newresp`` and the family
    ``fam``, its starting mean from the family's initialize, as lme4's mkRespMod in refit."""
    y, weights, n = glmod.y, glmod.prior_weights, glmod.n_trials
    if newresp is not None:
        y = np.asarray(newresp, dtype=float)
        if y.ndim == 2 and fam.family == "binomial" and y.shape[1] == 2:
            n = y.sum(axis=1)
            weights = n
            y = np.divide(y[:, 0], n, out=np.zeros_like(n), where=n != 0)
        if y.shape != glmod.y.shape:
            raise DataError(f"refit: the new response has {y.shape[0]} values, the fit {glmod.y.shape[0]}")
    init = fam.initialize(y, weights)
    return replace(glmod, family=fam, y=init.y, prior_weights=weights, n_trials=n, mustart=init.mustart)


def mkGlmerDevfun(glmod: GlmerFormula, control: GlmerControl | None = None) -> GlmerDevfun:
    """lme4's mkGlmerDevfun: PIRLS at the starting theta (nAGQ = 0), then the stage-1 deviance."""
    return GlmerDevfun(glmod, control or GlmerControl())


__all__ = ["glmer", "glFormula", "mkGlmerDevfun", "optimizeGlmer", "GlmerControl", "glmerControl", "GlmerDevfun", "refit_glmer",
           "PylmeWarning"]
