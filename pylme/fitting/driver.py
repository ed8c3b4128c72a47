"""Fitting: from the objective to the fitted model, written once (lme4's ``optimizeLmer`` ->
``checkConv`` -> ``mkMerMod``).

``choose_objective`` picks the implementation of the criterion (pylme.objectives.objective);
``optimize`` runs the optimiser on it (BOBYQA with lme4's restart_edge and boundary check, or
L-BFGS-B); ``fit_lmer`` is the one driver that lmer, refit, refitML (``refit_lmer``), update
(``fit_formula``) and pylme.scaleout.many's fits go through. The fitted model's class is given by the
caller (pylme.fitted.model's LmerMod, or the class of the fit being refitted), so that this module does
not depend on the fitted models, which depend on it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import ConvergenceWarning, FitMessage, ModelError, PylmeWarning, SingularFitMessage
from ..objectives.blocked import MIN_ROWS, BlockedObjective
from ..objectives.dense import MAX_DIM, MAX_LAMBDA_NNZ, DenseObjective, is_small
from ..objectives.design import LmmDesign
from ..objectives.lformula import LmerFormula, lFormula, mkLmerDevfun
from ..objectives.memory import check_memory_limit
from ..objectives.objective import Objective
from ..objectives.pls import CholmodObjective
from ..objectives.response import LmerResp
from ..rbase.progress import progress_bar
from .convergence import ConvCheck, Derivs, check_conv, deriv12, derivs_from_gradient
from .optimizer import OptSummary, lbfgsb, optwrap


@dataclass
class LmerControl:
    """lme4's lmerControl defaults (nloptwrap/BOBYQA, restart_edge, boundary.tol, checks).
    ``optimizer=None`` skips optimisation: the model is evaluated at the start (lme4's
    ``lmerControl(optimizer = NULL)``), e.g. to install another engine's theta."""

    optimizer: str | None = "nloptwrap"
    optCtrl: dict = field(default_factory=dict)
    # the objective's linear algebra (see choose_objective): "auto" (default), "cholmod" (the general
    # path), "dense" (small models) or "blocked" (large ones)
    method: str = "auto"
    # bytes the model matrices (lFormula) and the blocked factor may each use (default: 80% of the
    # memory available); more fails at once, before the matrices are made
    memory_limit: float | None = None
    restart_edge: bool = True
    boundary_tol: float = 1e-5
    calc_derivs: bool = True
    # finish the optimisation where the optimiser of record stopped short of the optimum, and certify
    # the end (pylme.fitting.polish); False keeps lme4's stopping point, evaluation for evaluation
    polish: bool = True
    check_conv_grad_tol: float = 2e-3
    check_conv_singular_tol: float = 1e-4
    check_conv_hess_tol: float = 1e-6

    def __post_init__(self) -> None:
        self.memory_limit = check_memory_limit(self.memory_limit)


def lmerControl(**kwargs) -> LmerControl:
    """R's ``lmerControl(...)`` with Python argument names (``boundary.tol`` -> ``boundary_tol``)."""
    return LmerControl(**{k.replace(".", "_"): v for k, v in kwargs.items()})


@dataclass
class OptResult:
    """optimizeLmer's outcome: the final optimiser run, all runs, and derivatives at the end."""

    summary: OptSummary
    runs: list[OptSummary]
    derivs: Derivs | None
    warnings: list[str]
    objective: Objective | None = None  # what was optimised (choose_objective); None: nothing was

    @property
    def par(self) -> np.ndarray:
        return self.summary.par

    @property
    def fval(self) -> float:
        return self.summary.fval


METHODS = ("auto", "cholmod", "dense", "blocked")


OPTIMIZERS = ("nloptwrap", "L-BFGS-B")


def choose_objective(design: LmmDesign, resp: LmerResp, method: str = "auto", memory_limit: float | None = None,
                     optimizer: str = "nloptwrap", start: np.ndarray | None = None,
                     cholmod: CholmodObjective | None = None) -> Objective:
    """The function of theta that the optimiser minimises, all equal to lme4's criterion to rounding:
    'cholmod' (pylme.objectives.pls), 'dense' (one dense Cholesky of a small model, pylme.objectives.dense), 'blocked'
    (pylme.objectives.blocked) or 'auto': dense where the model is small enough (q + p + 1 at most
    dense.MAX_DIM, Lambda with at most dense.MAX_LAMBDA_NNZ entries), else blocked from
    blocked.MIN_ROWS observations on, else CHOLMOD. ``optimizer='L-BFGS-B'`` needs the gradient,
    which the blocked objective with a dense block 2 has (pylme.objectives.gradient): 'auto' gives that one.
    ``cholmod``: the CHOLMOD objective of this design and response, if built (it is reused)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, not {method!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))} or None, not {optimizer!r}")
    if optimizer == "L-BFGS-B":
        return _gradient_objective(design, resp, method, memory_limit, start)
    if method == "blocked":
        return BlockedObjective(design, resp, start, memory_limit=memory_limit)
    if method != "cholmod" and is_small(design):
        return DenseObjective(design, resp, start, cholmod)
    if method == "dense":
        raise ModelError(f"method='dense' is for small models (q + p + 1 <= {MAX_DIM}, at most {MAX_LAMBDA_NNZ} "
                         f"entries in Lambda); this one has q + p + 1 = {design.q + design.p + 1} and "
                         f"{design.lam.nnz} entries in Lambda: use 'auto', 'cholmod' or 'blocked'")
    if method == "auto" and design.n >= MIN_ROWS:
        return BlockedObjective(design, resp, start, memory_limit=memory_limit)
    return cholmod or CholmodObjective(design, resp, start)


def _gradient_objective(design: LmmDesign, resp: LmerResp, method: str, memory_limit: float | None,
                        start: np.ndarray | None) -> BlockedObjective:
    """The blocked objective with its gradient (a dense or no block 2), or a ModelError saying why not."""
    if method not in ("auto", "blocked"):
        raise ModelError(f"optimizer='L-BFGS-B' uses the gradient of the blocked objective; method={method!r} "
                         "has none: use method='auto' or 'blocked'")
    objective = BlockedObjective(design, resp, start, memory_limit=memory_limit)
    if not objective.has_gradient:
        raise ModelError(f"optimizer='L-BFGS-B' needs block 2 dense (its inverse gives the gradient); this model's "
                         f"block 2 ({', '.join(objective.terms2)}; order {objective.q2}) is factored "
                         f"{objective.fill.kind}: use the default optimizer 'nloptwrap'")
    return objective


def optimizeLmer(devfun: CholmodObjective, control: LmerControl | None = None, verbose: int = 0,
                 objective: Objective | None = None) -> OptResult:
    """lme4's optimizeLmer: the optimiser from the start on the objective ``lmerControl(method=,
    optimizer=)`` selects for devfun's design and response (choose_objective; or ``objective``,
    one built already), with lme4's restart_edge and boundary check (see ``optimize``)."""
    control = control or LmerControl()
    if objective is None:
        objective = choose_objective(devfun.design, devfun.resp, control.method, control.memory_limit,
                                     control.optimizer, devfun.start, devfun)
    return optimize(objective, objective.start, control, verbose)


def optimize(objective: Objective, start: np.ndarray, control: LmerControl, verbose: int = 0,
             edge_checks: bool = True, keep_log: bool = True, second_opinions: bool = True) -> OptResult:
    """The optimiser on ``objective`` from ``start``: BOBYQA (nloptwrap, lme4's default and path)
    or L-BFGS-B on the analytic gradient; with ``edge_checks`` (optimizeLmer; not refit or
    refitML, which call lme4's optwrap alone) lme4's restart_edge when a boundary theta should
    move and its boundary check (a theta within boundary.tol of its bound is set to it if that is
    better); then, for every fit, the end certified and finished (``finish``, pylme.fitting.polish)
    and, with ``second_opinions`` (not inside one), the CHOLMOD objective's path where the dense
    end is not certified (``_cholmod_path``) and a restart of each singular vector-valued term
    (``_singular_term_restarts``). ``keep_log=False`` keeps no log of the evaluations."""
    lower = objective.lower
    bar = progress_bar(None, "lmer evaluations", None if objective.reports_progress and edge_checks else False)
    run = _optwrap(objective, start, control, verbose, bar, keep_log)
    runs = [run]
    if edge_checks and control.restart_edge and control.optimizer == "nloptwrap":
        on_bound = np.flatnonzero(run.summary.par == lower)
        if on_bound.size:
            d0 = objective(run.summary.par)
            btol = 1e-5
            grads = []
            for i in on_bound:
                theta = run.summary.par.copy()
                theta[i] = lower[i] + btol
                grads.append((objective(theta) - d0) / btol)
            if any(g < 0 for g in grads):
                if verbose:
                    print("some theta parameters on the boundary, restarting")
                run = _optwrap(objective, run.summary.par, control, verbose, bar, keep_log)
                runs.append(run)
    bar.close()
    if edge_checks and control.boundary_tol > 0:
        run = _check_boundary(objective, run, control.boundary_tol)
    run = finish(objective, run, control)
    if second_opinions:
        run = _cholmod_path(objective, start, control, edge_checks, run)
        run = _singular_term_restarts(objective, control, edge_checks, run)
    return OptResult(run.summary, [r.summary for r in runs], run.derivs, run.warnings, objective)


def _cholmod_path(objective: Objective, start: np.ndarray, control: LmerControl, edge_checks: bool,
                  run: OptResult) -> OptResult:
    """A second opinion where the finish on the dense objective ends uncertified: the dense and
    CHOLMOD objectives are one function to rounding, but on a badly scaled surface (thetas in the
    thousands) their BOBYQA paths part and can end in different basins. The optimiser once more from
    ``start`` on the CHOLMOD objective (lme4's own path, as nearly as rounding allows), finished;
    its end is kept where the fit's objective is lower there by more than rounding. Only where the
    end is not certified, so a fit that ends at a certified optimum costs nothing more."""
    from .polish import rounding

    cert = run.summary.certificate
    if not (control.polish and isinstance(objective, DenseObjective) and cert is not None and not cert.certified):
        return run
    other = optimize(objective.cholmod, start, control, 0, edge_checks, keep_log=False, second_opinions=False)
    theta = other.summary.par
    fval = float(objective(theta))
    mine = other.summary.certificate
    tried = f"the CHOLMOD objective's path ({other.summary.feval} evaluations"
    evaluations = cert.evaluations + other.summary.feval + mine.evaluations + 1
    if not fval < run.summary.fval - rounding(run.summary.fval):
        cert = replace(cert, steps=cert.steps + [tried + f", finished, ends higher: {fval:.12g})"],
                       evaluations=evaluations)
        return replace(run, summary=replace(run.summary, certificate=cert))
    cert = replace(mine, criterion_path=cert.criterion_path, criterion=fval, theta_path=cert.theta_path,
                   steps=cert.steps + [tried + ")"] + mine.steps, evaluations=evaluations)
    summary = replace(run.summary, par=theta.copy(), fval=fval, certificate=cert)
    return replace(run, summary=summary, derivs=other.derivs if control.calc_derivs else None)


def _singular_vector_terms(lam, theta: np.ndarray) -> list[int]:
    """The terms with two or more columns whose factor has a diagonal entry at 0 (within
    pylme.fitting.polish.MIRROR_NEAR) at theta: a covariance matrix of reduced rank."""
    from .polish import MIRROR_NEAR

    columns = iter(lam.factor_columns())
    out = []
    for k, nc in enumerate(lam.ncs):
        diags = [next(columns)[0] for _ in range(nc)]
        if nc > 1 and any(abs(theta[d]) <= MIRROR_NEAR for d in diags):
            out.append(k)
    return out


def _singular_term_restarts(objective: Objective, control: LmerControl, edge_checks: bool,
                            run: OptResult) -> OptResult:
    """A second opinion at a certified end where a vector-valued term's covariance has reduced
    rank: the certificate (mirrors included) proves a local optimum, but a term with several
    columns can have another basin of a different rank that no local step reaches (prop_dc4276f86e:
    ``(0 + f | g1)`` of rank 2 at 958.12, of rank 1 at 946.49, lme4 1.1-31 ending in either from
    run to run). For each such term the optimiser runs once more from the end with that term's
    factor reset to lme4's start (the identity), finished; its end is kept where it is lower by
    more than a certified point's tolerance (pylme.fitting.polish: the decrease the quadratic model
    may still predict there), i.e. in another basin. Nothing is tried at an uncertified end (the
    finish and the CHOLMOD path have done what they can) or without ``lmerControl(polish=True)``."""
    from .polish import certify_tol

    cert = run.summary.certificate
    if not (control.polish and cert is not None and cert.certified):
        return run
    lam = objective.design.lam
    off = lam.theta_offsets
    columns = lam.factor_columns()
    first = np.concatenate([[0], np.cumsum(lam.ncs)]).astype(int)
    for k in _singular_vector_terms(lam, run.summary.par):
        theta = run.summary.par.copy()
        theta[off[k]:off[k + 1]] = 0.0
        theta[[columns[j][0] for j in range(first[k], first[k + 1])]] = 1.0
        other = optimize(objective, theta, control, 0, edge_checks, keep_log=False, second_opinions=False)
        tried = f"term {k + 1} restarted from the identity ({other.summary.feval} evaluations"
        evaluations = cert.evaluations + other.summary.feval + other.summary.certificate.evaluations
        if not other.summary.fval < run.summary.fval - certify_tol(run.summary.fval):
            cert = replace(cert, steps=cert.steps + [tried + f", ends at {other.summary.fval:.12g})"],
                           evaluations=evaluations)
            run = replace(run, summary=replace(run.summary, certificate=cert))
            continue
        mine = other.summary.certificate
        cert = replace(mine, criterion_path=cert.criterion_path, theta_path=cert.theta_path,
                       steps=cert.steps + [tried + ")"] + mine.steps, evaluations=evaluations)
        summary = replace(run.summary, par=other.summary.par.copy(), fval=other.summary.fval, certificate=cert)
        run = replace(run, summary=summary, derivs=other.derivs if control.calc_derivs else None)
    return run


def finish(objective, run: OptResult, control: LmerControl, mirrors=None) -> OptResult:
    """The optimiser's end certified and, unless ``lmerControl(polish=False)``, finished where it is
    not the optimum (pylme.fitting.polish); the certificate goes into the OptSummary. Derivatives computed
    at the end of the optimiser (calc_derivs) are reused; where theta moves they are recomputed.
    ``run`` is any optimiser outcome with ``summary`` and ``derivs`` (glmer's last stage: its
    GlmerOpt, ``control`` its GlmerControl); ``mirrors``: the columns of theta's covariance factors
    (default: the objective design's, LambdaMap.factor_columns)."""
    from .polish import polish

    derivs = _derivs_at(run.derivs, run.summary.par)
    if not control.polish and derivs is None:
        return run
    # an optimiser stopped by its evaluation budget (lme4's convergence code 5) keeps the user's
    # budget: its end is certified (and reported not to be the optimum), not finished
    within_budget = run.summary.conv != 5
    theta, fval, new_derivs, cert = polish(objective, run.summary.par, run.summary.fval, derivs,
                                           control.polish and within_budget,
                                           mirrors=objective.design.lam.factor_columns() if mirrors is None else mirrors)
    if cert.moved == 0.0:
        return replace(run, summary=replace(run.summary, certificate=cert))
    summary = replace(run.summary, par=theta, fval=fval, certificate=cert)
    return replace(run, summary=summary, derivs=new_derivs if control.calc_derivs else None)


def _derivs_at(derivs: Derivs | None, theta: np.ndarray) -> Derivs | None:
    """``derivs`` if they were computed at theta, else None."""
    return derivs if derivs is not None and derivs.at is not None and np.array_equal(derivs.at, theta) else None


def _no_optimization(devfun: Objective) -> OptResult:
    """lme4's ``optimizer = NULL``: the fit at the starting theta, convergence code 1000."""
    start = np.asarray(devfun.start, dtype=float)
    summary = OptSummary("none", {}, start.copy(), devfun.lower, par=start, fval=devfun(start), feval=1,
                         status=1000, message="no optimization")
    return OptResult(summary, [summary], None, [])


def _optwrap(devfun: Objective, start: np.ndarray, control: LmerControl, verbose: int, progress=None,
             keep_log: bool = True) -> OptResult:
    """lme4's optwrap: optimise, warn on a bad return code, compute derivatives at the end
    (L-BFGS-B: the analytic gradient and central differences of it, else lme4's deriv12).
    ``progress`` (a pylme.rbase.progress bar) counts the evaluations of a large fit on a terminal;
    ``keep_log=False`` keeps no log of the evaluations (refit)."""
    if control.optimizer == "L-BFGS-B":
        summary = lbfgsb(devfun.criterion_and_gradient, start, devfun.lower, control.optCtrl, keep_log=keep_log)
        derivs = derivs_from_gradient(devfun.criterion_and_gradient, summary.par) if control.calc_derivs else None
    else:
        summary = optwrap(devfun, start, devfun.lower, control.optCtrl, verbose=verbose, keep_log=keep_log,
                          progress=progress)
        derivs = deriv12(devfun.many, summary.par, fx=summary.fval) if control.calc_derivs else None
    msgs = []
    if summary.conv != 0:
        msgs.append(f"convergence code {summary.conv} from {summary.optimizer}: {summary.message}")
    return OptResult(summary, [summary], derivs, msgs, devfun)


def _check_boundary(devfun: Objective, run: OptResult, tol: float) -> OptResult:
    par = run.summary.par
    lower = devfun.lower
    diff = par - lower
    edge = (diff > 0) & (diff < tol)
    if not edge.any():
        return run
    new = par.copy()
    for i in np.flatnonzero(edge):
        trial = new.copy()
        trial[i] = lower[i]
        if devfun(trial) < run.summary.fval:
            new[i] = lower[i]
    summary = replace(run.summary, par=new, fval=devfun(new))
    return replace(run, summary=summary)


def checkConv(opt: OptResult, devfun: Objective, control: LmerControl | None = None) -> ConvCheck:
    control = control or LmerControl()
    return check_conv(
        opt.derivs, opt.par, devfun.lower,
        grad_tol=control.check_conv_grad_tol,
        hess_tol=control.check_conv_hess_tol,
        singular_tol=control.check_conv_singular_tol,
    )


def make_model(model_class: type, lmod: LmerFormula, devfun: Objective, opt: OptResult, conv: ConvCheck,
               control: LmerControl):
    """lme4's mkMerMod: the fitted model (of ``model_class``) at theta-hat, solved by the objective
    that was optimised (``devfun`` where nothing was): blocked on its own factor, dense by its
    CHOLMOD objective."""
    objective = devfun if opt.objective is None else opt.objective
    return model_class(lmod=lmod, objective=objective, opt=opt, conv=conv, control=control,
                       state=objective.pls_state(opt.par))


def fit_formula(model_class: type, formula: str, data: pd.DataFrame, REML: bool = True,
                weights: str | np.ndarray | None = None, offset: str | np.ndarray | None = None,
                start: np.ndarray | dict | None = None, control: LmerControl | None = None, verbose: int = 0,
                devFunOnly: bool = False):
    """lme4's lmer from the formula, as a ``model_class`` fit: lFormula -> mkLmerDevfun ->
    choose_objective -> ``fit_lmer``, the fit's messages emitted (lmer and update)."""
    control = control or LmerControl()
    lmod = lFormula(formula, data, REML=REML, weights=weights, offset=offset, memory_limit=control.memory_limit)
    devfun = mkLmerDevfun(lmod, start)
    if devFunOnly:
        return devfun
    objective = (choose_objective(devfun.design, devfun.resp, control.method, control.memory_limit,
                                  control.optimizer, devfun.start, devfun) if control.optimizer else None)
    fm = fit_lmer(model_class, lmod, devfun, control, verbose, objective)
    fm.emit_messages()
    return fm


def fit_lmer(model_class: type, lmod: LmerFormula, devfun: Objective, control: LmerControl, verbose: int = 0,
             objective: Objective | None = None, start: np.ndarray | None = None, edge_checks: bool = True,
             keep_log: bool = True):
    """The one fit driver (lme4's optimizeLmer -> checkConv -> mkMerMod), used by lmer and update
    (``fit_formula``), refit and refitML (``refit_lmer``; and through them profile, bootMer, drop1,
    ...) and pylme.scaleout.many's fits of many responses: optimise ``objective`` from ``start`` (its own
    start when None; see ``optimize``), check convergence and make the ``model_class`` fit, without
    emitting the fit's messages. Without an objective (``lmerControl(optimizer=None)``) the model
    is ``devfun`` evaluated at its start."""
    if objective is None:
        opt = _no_optimization(devfun)
    else:
        opt = optimize(objective, objective.start if start is None else start, control, verbose, edge_checks, keep_log)
    conv = checkConv(opt, objective or devfun, control)
    return make_model(model_class, lmod, devfun, opt, conv, control)


def refit_lmer(fm, lmod: LmerFormula, resp: LmerResp, keep_log: bool = True):
    """lme4's refit and refitML: the fit's model for the response ``resp`` (a new y, or the ML
    criterion), optimised from the fit's theta by the optimiser alone (lme4's optwrap: no
    restart_edge or boundary check), on the fit's objective for that response (or the one
    lmerControl selects, where the fit was not optimised); a fit of the same class as ``fm``."""
    control = fm.control
    if fm.opt.objective is None:
        objective = choose_objective(fm.objective.design, resp, control.method, control.memory_limit,
                                     control.optimizer or "nloptwrap")
    else:
        objective = fm.opt.objective.with_response(resp)
    return fit_lmer(type(fm), lmod, objective, control, objective=objective, start=fm.theta, edge_checks=False,
                    keep_log=keep_log)


def emit(messages: list[str], singular: list[str], data_warnings: list[str], conv_warnings: list[str]) -> None:
    """Report what lme4 would print: messages, the singular-fit message, warnings about the
    data (predictor scales) and convergence warnings, each with its own warning class."""
    for msg in messages:
        warnings.warn(msg, FitMessage, stacklevel=4)
    for msg in singular:
        warnings.warn(msg, SingularFitMessage, stacklevel=4)
    for msg in data_warnings:
        warnings.warn(msg, PylmeWarning, stacklevel=4)
    for msg in conv_warnings:
        warnings.warn(msg, ConvergenceWarning, stacklevel=4)
