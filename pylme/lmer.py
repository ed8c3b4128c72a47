"""Fitting a linear mixed model, as lme4's four visible steps:

``lFormula`` (formula + data -> frame, X, random-effects terms) ->
``mkLmerDevfun`` (-> the profiled criterion as a function of theta) ->
``optimizeLmer`` (-> theta-hat, with lme4's restart and boundary checks) ->
``mkMerMod`` (-> the fitted model), with ``checkConv`` between the last two.
``lmer`` runs them in order.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .convergence import ConvCheck, Derivs, check_conv, deriv12, derivs_from_gradient
from .errors import ConvergenceWarning, DataError, FitMessage, FormulaError, ModelError, PylmeWarning, SingularFitMessage
from .formula import ParsedFormula, expand_dot, expand_terms, parse_mixed
from .model_matrix import DesignSpec, check_scale_x, design, drop_rank_deficient, numeric_vector
from .memory import check_memory_limit
from .modelframe import ModelFrame, as_data_frame, model_frame
from .optimizer import OptSummary, lbfgsb, optwrap
from .blocked import MIN_ROWS, BlockedDevfun
from .dense import MAX_DIM, MAX_LAMBDA_NNZ, dense_devfun
from .pls import LmerDevfun
from .progress import progress_bar
from .reterms import ReTrms, mk_reterms


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
    # bytes the blocked factor may use (default: 80% of the memory available); more fails at once
    memory_limit: float | None = None
    restart_edge: bool = True
    boundary_tol: float = 1e-5
    calc_derivs: bool = True
    # finish the optimisation where the optimiser of record stopped short of the optimum, and certify
    # the end (pylme.polish); False keeps lme4's stopping point, evaluation for evaluation
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
class LmerFormula:
    """What lme4's lFormula returns: the model frame, response, X and the random-effects terms."""

    formula: ParsedFormula
    frame: ModelFrame
    y: np.ndarray
    X: np.ndarray
    X_spec: DesignSpec
    fixef_names: list[str]
    col_dropped: list[str]
    reTrms: ReTrms
    REML: bool
    weights: np.ndarray | None
    offset: np.ndarray | None
    data: pd.DataFrame
    weights_arg: str | np.ndarray | None = None
    offset_arg: str | np.ndarray | None = None
    data_name: str | None = None
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def lFormula(
    formula: str,
    data: pd.DataFrame,
    REML: bool = True,
    weights: str | np.ndarray | None = None,
    offset: str | np.ndarray | None = None,
) -> LmerFormula:
    """Parse the formula, build the model frame, X (rank-checked) and the random-effects terms."""
    data = as_data_frame(data)
    pf = expand_dot(parse_mixed(formula), data.columns)
    if pf.response is None:
        raise FormulaError(f"formula {formula!r} has no response: write it as 'response ~ terms'")
    if not pf.bars:
        raise ModelError("No random effects terms specified in formula")
    mf = model_frame(pf, data, weights, offset)
    messages = []
    frame = mf.data
    y = numeric_vector(frame, pf.response_label, pf.response, states=mf.states)
    reTrms = mk_reterms(pf.bars, frame, mf.states)
    check_nlevels(reTrms, len(y))
    check_zdims(reTrms, len(y))
    fixed = expand_terms(pf.fixed)
    spec, X = design(fixed, frame, mf.states)
    names = list(spec.column_names)
    X, keep = drop_rank_deficient(X)
    col_dropped = [nm for k, nm in enumerate(names) if k not in keep]
    if col_dropped:
        k = len(col_dropped)
        messages.append(
            f"fixed-effect model matrix is rank deficient so dropping {k} column{'s' if k > 1 else ''}"
            f" / coefficient{'s' if k > 1 else ''}"
        )
    off = _offset(fixed.offsets, frame, mf.offset, mf.states)
    w = mf.weights
    if w is not None and np.any(w <= 0):
        raise DataError(
            f"weights must be positive: {int(np.sum(w < 0))} negative and {int(np.sum(w == 0))} zero prior weights "
            "(lme4 gives an infinite criterion for zero weights; drop those rows instead)"
        )
    return LmerFormula(
        pf, mf, y, X, spec, [names[k] for k in keep], col_dropped, reTrms, REML, w, off,
        data=data, weights_arg=weights, offset_arg=offset, data_name=data.attrs.get("name"), messages=messages,
        warnings=mf.notes + check_scale_x(X),
    )


def _offset(offsets, frame: pd.DataFrame, argument: np.ndarray | None, states: dict) -> np.ndarray | None:
    """Sum of the formula's offset(...) terms and the offset argument (None if neither)."""
    parts = [numeric_vector(frame, v.label, v.node, what="offset", states=states) for v in offsets]
    if argument is not None:
        parts.append(argument)
    return np.sum(parts, axis=0) if parts else None


def check_nlevels(reTrms: ReTrms, n: int) -> None:
    """lme4's checkNlevels: each grouping factor needs > 1 and < n levels."""
    nlev = {name: f.nlevels for name, f in reTrms.flist.items()}
    if any(v < 2 for v in nlev.values()):
        bad = ", ".join(k for k, v in nlev.items() if v < 2)
        raise ModelError(f"grouping factors must have > 1 sampled level (problems: {bad})")
    bad = [k for k, v in nlev.items() if v >= n]
    if bad:
        raise ModelError(
            "number of levels of each grouping factor must be < number of observations "
            f"(problems: {', '.join(bad)})"
        )


def check_zdims(reTrms: ReTrms, n: int) -> None:
    """lme4's checkZdims: each term needs fewer random effects than observations."""
    for t in reTrms.terms:
        q = t.nl * t.nc
        if n <= q:
            raise ModelError(
                f"number of observations (={n}) <= number of random effects (={q}) for term ({t.label}); "
                "the random-effects parameters and the residual variance (or scale parameter) "
                "are probably unidentifiable"
            )


def mkLmerDevfun(lmod: LmerFormula, start: np.ndarray | None = None) -> LmerDevfun:
    """The profiled criterion as a function of theta, with lme4's starting value in ``start``."""
    devfun = LmerDevfun(lmod.X, lmod.y, lmod.reTrms, lmod.REML, lmod.weights, lmod.offset)
    devfun.start = _start(lmod, start)
    return devfun


def _start(lmod: LmerFormula, start: np.ndarray | dict | None) -> np.ndarray:
    """lme4's getStart, and mkLmerDevfun's variance-ratio start for scalar intercept terms."""
    rt = lmod.reTrms
    if isinstance(start, dict):
        start = start.get("theta")
    if start is not None:
        start = np.asarray(start, dtype=float)
        if start.shape != rt.theta0.shape:
            raise ModelError(f"incorrect number of theta components (!={rt.theta0.size})")
        return start
    theta = rt.theta0.copy()
    scalar = all(t.cnms == ["(Intercept)"] for t in rt.terms) and len(rt.flist) == len(rt.lower)
    if scalar:
        y = lmod.y
        v = np.array([np.var(_group_means(y, f.codes, f.nlevels), ddof=1) for f in rt.flist.values()])
        v_e = np.var(y, ddof=1) - v.sum()
        if np.isfinite(v_e) and v_e > 0:
            theta = np.sqrt(v / v_e)
    return theta


def _group_means(y: np.ndarray, codes: np.ndarray, nlevels: int) -> np.ndarray:
    """R's ave(y, f): each observation replaced by its group's mean."""
    sums = np.bincount(codes, weights=y, minlength=nlevels)
    counts = np.bincount(codes, minlength=nlevels)
    return (sums / counts)[codes]


@dataclass
class OptResult:
    """optimizeLmer's outcome: the final optimiser run, all runs, and derivatives at the end."""

    summary: OptSummary
    runs: list[OptSummary]
    derivs: Derivs | None
    warnings: list[str]
    objective: object = None  # what was optimised (choose_objective); None: nothing was

    @property
    def par(self) -> np.ndarray:
        return self.summary.par

    @property
    def fval(self) -> float:
        return self.summary.fval


METHODS = ("auto", "cholmod", "dense", "blocked")


OPTIMIZERS = ("nloptwrap", "L-BFGS-B")


def choose_objective(devfun: LmerDevfun, method: str = "auto", memory_limit: float | None = None,
                     optimizer: str = "nloptwrap"):
    """The function of theta that the optimiser minimises, all equal to lme4's criterion to rounding:
    'cholmod' (devfun itself, pylme.pls), 'dense' (one dense Cholesky of a small model, pylme.dense),
    'blocked' (pylme.blocked) or 'auto': dense where the model is small enough (q + p + 1 at most
    dense.MAX_DIM, Lambda with at most dense.MAX_LAMBDA_NNZ entries), else blocked from
    blocked.MIN_ROWS observations on, else CHOLMOD. ``optimizer='L-BFGS-B'`` needs the gradient,
    which the blocked objective with a dense block 2 has (pylme.gradient): 'auto' gives that one."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, not {method!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))} or None, not {optimizer!r}")
    if optimizer == "L-BFGS-B":
        return _gradient_objective(devfun, method, memory_limit)
    if method == "cholmod":
        return devfun
    if method == "blocked":
        return BlockedDevfun(devfun, memory_limit=memory_limit)
    dense = dense_devfun(devfun)
    if dense is not None:
        return dense
    if method == "dense":
        raise ModelError(f"method='dense' is for small models (q + p + 1 <= {MAX_DIM}, at most {MAX_LAMBDA_NNZ} "
                         f"entries in Lambda); this one has q + p + 1 = {devfun.Ztw.shape[0] + devfun.p + 1} and "
                         f"{devfun.reTrms.Lambdat.nnz} entries in Lambda: use 'auto', 'cholmod' or 'blocked'")
    return BlockedDevfun(devfun, memory_limit=memory_limit) if devfun.n >= MIN_ROWS else devfun


def _gradient_objective(devfun: LmerDevfun, method: str, memory_limit: float | None) -> BlockedDevfun:
    """The blocked objective with its gradient (a dense or no block 2), or a ModelError saying why not."""
    if method not in ("auto", "blocked"):
        raise ModelError(f"optimizer='L-BFGS-B' uses the gradient of the blocked objective; method={method!r} "
                         "has none: use method='auto' or 'blocked'")
    objective = BlockedDevfun(devfun, memory_limit=memory_limit)
    if not objective.has_gradient:
        raise ModelError(f"optimizer='L-BFGS-B' needs block 2 dense (its inverse gives the gradient); this model's "
                         f"block 2 ({', '.join(objective.terms2)}; order {objective.q2}) is factored "
                         f"{objective.fill.kind}: use the default optimizer 'nloptwrap'")
    return objective


def optimizeLmer(devfun: LmerDevfun, control: LmerControl | None = None, verbose: int = 0,
                 objective=None) -> OptResult:
    """The optimiser from the start on the objective ``lmerControl(method=, optimizer=)`` selects
    (choose_objective; or ``objective``, one built already, e.g. for a new response by
    pylme.many): BOBYQA (nloptwrap, lme4's default and path) with lme4's restart_edge when a
    boundary theta should move, or L-BFGS-B on the analytic gradient; then lme4's boundary check (a
    theta within boundary.tol of its bound is set to it if that is better)."""
    control = control or LmerControl()
    if objective is None:
        objective = choose_objective(devfun, control.method, control.memory_limit, control.optimizer)
    lower = objective.lower
    bar = progress_bar(None, "lmer evaluations", None if isinstance(objective, BlockedDevfun) else False)
    run = _optwrap(objective, objective.start, control, verbose, bar)
    runs = [run]
    if control.restart_edge and control.optimizer == "nloptwrap":
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
                run = _optwrap(objective, run.summary.par, control, verbose, bar)
                runs.append(run)
    bar.close()
    if control.boundary_tol > 0:
        run = _check_boundary(objective, run, control.boundary_tol)
    run = finish(objective, run, control)
    return OptResult(run.summary, [r.summary for r in runs], run.derivs, run.warnings, objective)


def finish(objective, run: OptResult, control: LmerControl) -> OptResult:
    """The optimiser's end certified and, unless ``lmerControl(polish=False)``, finished where it is
    not the optimum (pylme.polish); the certificate goes into the OptSummary. Derivatives computed
    at the end of the optimiser (calc_derivs) are reused; where theta moves they are recomputed."""
    from .polish import polish

    derivs = _derivs_at(run.derivs, run.summary.par)
    if not control.polish and derivs is None:
        return run
    theta, fval, new_derivs, cert = polish(objective, run.summary.par, run.summary.fval, derivs, control.polish)
    if cert.moved == 0.0:
        return replace(run, summary=replace(run.summary, certificate=cert))
    summary = replace(run.summary, par=theta, fval=fval, certificate=cert)
    return replace(run, summary=summary, derivs=new_derivs if control.calc_derivs else None)


def _derivs_at(derivs: Derivs | None, theta: np.ndarray) -> Derivs | None:
    """``derivs`` if they were computed at theta, else None."""
    return derivs if derivs is not None and derivs.at is not None and np.array_equal(derivs.at, theta) else None


def _no_optimization(devfun: LmerDevfun) -> OptResult:
    """lme4's ``optimizer = NULL``: the fit at the starting theta, convergence code 1000."""
    start = np.asarray(devfun.start, dtype=float)
    summary = OptSummary("none", {}, start.copy(), devfun.lower, par=start, fval=devfun(start), feval=1,
                         status=1000, message="no optimization")
    return OptResult(summary, [summary], None, [])


def _optwrap(devfun: LmerDevfun, start: np.ndarray, control: LmerControl, verbose: int, progress=None,
             keep_log: bool = True) -> OptResult:
    """lme4's optwrap: optimise, warn on a bad return code, compute derivatives at the end
    (L-BFGS-B: the analytic gradient and central differences of it, else lme4's deriv12).
    ``progress`` (a pylme.progress bar) counts the evaluations of a large fit on a terminal;
    ``keep_log=False`` keeps no log of the evaluations (refit)."""
    if control.optimizer == "L-BFGS-B":
        summary = lbfgsb(devfun.criterion_and_gradient, start, devfun.lower, control.optCtrl, keep_log=keep_log)
        derivs = derivs_from_gradient(devfun.criterion_and_gradient, summary.par) if control.calc_derivs else None
    else:
        summary = optwrap(devfun, start, devfun.lower, control.optCtrl, verbose=verbose, keep_log=keep_log,
                          progress=progress)
        derivs = deriv12(devfun, summary.par, fx=summary.fval) if control.calc_derivs else None
    msgs = []
    if summary.conv != 0:
        msgs.append(f"convergence code {summary.conv} from {summary.optimizer}: {summary.message}")
    return OptResult(summary, [summary], derivs, msgs, devfun)


def _check_boundary(devfun: LmerDevfun, run: OptResult, tol: float) -> OptResult:
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


def checkConv(opt: OptResult, devfun: LmerDevfun, control: LmerControl | None = None) -> ConvCheck:
    control = control or LmerControl()
    return check_conv(
        opt.derivs, opt.par, devfun.lower,
        grad_tol=control.check_conv_grad_tol,
        hess_tol=control.check_conv_hess_tol,
        singular_tol=control.check_conv_singular_tol,
    )


def mkMerMod(lmod: LmerFormula, devfun: LmerDevfun, opt: OptResult, conv: ConvCheck, control: LmerControl):
    """The fitted model at theta-hat."""
    from .model import LmerMod

    solver = devfun if opt.objective is None else opt.objective  # blocked: on its own factor; dense: by devfun
    return LmerMod(lmod=lmod, devfun=devfun, opt=opt, conv=conv, control=control, state=solver.solve(opt.par))


def lmer(
    formula: str,
    data: pd.DataFrame,
    REML: bool = True,
    weights: str | np.ndarray | None = None,
    offset: str | np.ndarray | None = None,
    start: np.ndarray | dict | None = None,
    control: LmerControl | None = None,
    verbose: int = 0,
    devFunOnly: bool = False,
):
    """Fit a linear mixed model as lme4's ``lmer`` does (REML by default)."""
    control = control or LmerControl()
    lmod = lFormula(formula, data, REML=REML, weights=weights, offset=offset)
    devfun = mkLmerDevfun(lmod, start)
    if devFunOnly:
        return devfun
    fm = fit_lmer(lmod, devfun, control, verbose)
    fm.emit_messages()
    return fm


def fit_lmer(lmod: LmerFormula, devfun: LmerDevfun, control: LmerControl, verbose: int = 0, objective=None):
    """lmer's steps after the objective: optimise (optimizeLmer; ``objective``: one built already),
    checkConv and mkMerMod, without emitting the fit's messages. lmer and pylme.many's fits of many
    responses go through here, so that they take the same steps."""
    opt = optimizeLmer(devfun, control, verbose, objective) if control.optimizer else _no_optimization(devfun)
    conv = checkConv(opt, devfun, control)
    return mkMerMod(lmod, devfun, opt, conv, control)


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
