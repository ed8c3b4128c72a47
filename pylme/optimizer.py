"""The optimisers behind one small interface (lme4's optwrap), and their record (OptSummary).

lme4's default for lmer is nloptwrap: NLOPT_LN_BOBYQA with xtol_abs 1e-8, ftol_abs 1e-8,
maxeval 1e5 and nloptr's default xtol_rel 1e-4. Every setting, the start, the number
of evaluations, the return code and (optionally) each evaluation are kept. ``lbfgsb`` is
scipy's L-BFGS-B on an objective that also returns its gradient (pylme.gradient).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import nlopt
import numpy as np

from .errors import ModelError

#: lme4's nloptwrap defaults (lmerControl(optimizer = "nloptwrap"))
DEFAULT_OPT_CTRL = {"algorithm": "NLOPT_LN_BOBYQA", "xtol_abs": 1e-8, "ftol_abs": 1e-8, "xtol_rel": 1e-4, "maxeval": 100_000}

# nlopt's return codes with the texts R's nloptr gives them (lme4 quotes these in its warning)
_RESULT_MESSAGES = {
    1: "NLOPT_SUCCESS: Generic success return value.",
    2: "NLOPT_STOPVAL_REACHED: Optimization stopped because stopval (above) was reached.",
    3: "NLOPT_FTOL_REACHED: Optimization stopped because ftol_rel or ftol_abs (above) was reached.",
    4: "NLOPT_XTOL_REACHED: Optimization stopped because xtol_rel or xtol_abs (above) was reached.",
    5: "NLOPT_MAXEVAL_REACHED: Optimization stopped because maxeval (above) was reached.",
    6: "NLOPT_MAXTIME_REACHED: Optimization stopped because maxtime (above) was reached.",
    -1: "NLOPT_FAILURE: Generic failure code.",
    -2: "NLOPT_INVALID_ARGS: Invalid arguments (e.g. lower bounds are bigger than upper bounds, "
        "an unknown algorithm was specified, etcetera).",
    -3: "NLOPT_OUT_OF_MEMORY: Ran out of memory.",
    -4: "NLOPT_ROUNDOFF_LIMITED: Roundoff errors led to a breakdown of the optimization algorithm. "
        "In this case, the returned minimum may still be useful. (e.g. this error occurs in NEWUOA "
        "if one tries to achieve a tolerance too close to machine precision.)",
    -5: "NLOPT_FORCED_STOP: Halted because of a forced termination: the user called "
        "nlopt_force_stop(opt) on the optimization's nlopt_opt object opt from the user's objective function.",
}


@dataclass
class OptSummary:
    """What the optimiser was asked and what it did (MixedModels.jl's OptSummary)."""

    optimizer: str
    control: dict
    initial: np.ndarray
    lower: np.ndarray
    par: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fval: float = np.nan
    feval: int = 0
    status: int = 0
    message: str = ""
    log: list[tuple[np.ndarray, float]] = field(default_factory=list)
    certificate: object = None  # pylme.polish.Certificate: the evidence that par is the optimum

    def __str__(self) -> str:
        """The optimiser's record and, where computed, the certificate (``print(fm.optinfo)``)."""
        algorithm = self.control.get("algorithm", "")
        lines = [f"optimizer: {self.optimizer}" + (f" ({algorithm})" if algorithm else "")
                 + f", {self.feval} evaluations, return code {self.status}: {self.message}",
                 f"theta: {' '.join(f'{v:.8g}' for v in self.par)}",
                 f"criterion: {self.fval:.12g}"]
        if self.certificate is not None:
            lines.append(str(self.certificate))
        return "\n".join(lines)

    @property
    def conv(self) -> int:
        """lme4's convergence code: nlopt's status when negative or maxeval (5), else 0."""
        return self.status if self.status < 0 or self.status == 5 else 0


Objective = Callable[[np.ndarray], float]

#: L-BFGS-B's settings: ftol relative (1e-13 of a criterion of 2e5 is 2e-8, below lme4's ftol_abs
#: noise), gtol on the projected gradient of the scaled problem (below), maxiter; theta is optimised
#: as theta / scale, so that L-BFGS-B's first step, of unit length, moves theta (relative standard
#: deviations and correlations' factors, mostly below 1) by 0.1: unscaled it goes to the bounds
LBFGSB_CTRL = {"ftol": 1e-13, "gtol": 1e-6, "maxiter": 1000, "scale": 0.1}


#: nlopt algorithms that cannot minimise a function of one parameter, and why
_NEEDS_TWO = {"NLOPT_LN_NEWUOA_BOUND": "needs at least two parameters",
              "NLOPT_LN_PRAXIS": "does not stop on a single parameter (nlopt runs it to maxeval)"}


def optwrap(
    fn: Objective,
    start: np.ndarray,
    lower: np.ndarray,
    control: dict | None = None,
    verbose: int = 0,
    keep_log: bool = True,
    upper: np.ndarray | None = None,
    progress=None,
) -> OptSummary:
    """Minimise ``fn`` from ``start`` within ``lower`` (and ``upper``) bounds with nlopt (lme4's nloptwrap)."""
    ctrl = {**DEFAULT_OPT_CTRL, **(control or {})}
    x0 = np.array(start, dtype=float)
    if x0.size == 1 and ctrl["algorithm"] in _NEEDS_TWO:
        raise ModelError(f"nlopt's {ctrl['algorithm']} {_NEEDS_TWO[ctrl['algorithm']]}: this problem has one parameter")
    summary = OptSummary("nloptwrap", ctrl, x0.copy(), np.asarray(lower, dtype=float))
    algorithm = getattr(nlopt, ctrl["algorithm"].removeprefix("NLOPT_"))
    opt = nlopt.opt(algorithm, x0.size)
    opt.set_lower_bounds(np.where(np.isfinite(lower), lower, -np.inf))
    if upper is not None:
        opt.set_upper_bounds(np.where(np.isfinite(upper), upper, np.inf))
    opt.set_xtol_abs(ctrl["xtol_abs"])
    opt.set_ftol_abs(ctrl["ftol_abs"])
    opt.set_xtol_rel(ctrl["xtol_rel"])
    opt.set_maxeval(int(ctrl["maxeval"]))
    if "ftol_rel" in ctrl:
        opt.set_ftol_rel(ctrl["ftol_rel"])
    if "initial_step" in ctrl:  # nlopt's first step per parameter (glmer: minqa's rhobeg, Nelder-Mead's xst)
        opt.set_initial_step(ctrl["initial_step"])

    best: list = [x0.copy(), np.inf]

    def objective(x: np.ndarray, grad: np.ndarray) -> float:
        value = float(fn(x))
        summary.feval += 1
        if value < best[1]:
            best[:] = [x.copy(), value]
        if keep_log:
            summary.log.append((x.copy(), value))
        if progress is not None:  # a bar counting evaluations (pylme.progress)
            progress.update(1)
            progress.set_postfix_str(f"criterion {best[1]:.10g}")
        if verbose:  # nloptr's print_level output, with theta added
            print(f"iteration: {summary.feval}\n\tf(x) = {value:f}\n\ttheta = {' '.join(f'{v:f}' for v in x)}")
        return value

    opt.set_min_objective(objective)
    try:
        summary.par = np.asarray(opt.optimize(x0), dtype=float)
        summary.fval = float(opt.last_optimum_value())
        summary.status = int(opt.last_optimize_result())
    except nlopt.RoundoffLimited:  # nlopt raises for this status; keep the best point seen
        summary.par, summary.fval, summary.status = best[0], best[1], -4
    except nlopt.invalid_argument as exc:  # e.g. NEWUOA on a single parameter
        raise ModelError(f"nlopt's {ctrl['algorithm']} refused the problem ({x0.size} parameter(s), "
                         f"bounds {summary.lower.tolist()}): invalid argument ({exc})") from exc
    summary.message = _RESULT_MESSAGES.get(summary.status, str(summary.status))
    if verbose:
        print(f"return code {summary.status}: {summary.message}")
    return summary


def lbfgsb(
    fg: Callable[[np.ndarray], tuple[float, np.ndarray]],
    start: np.ndarray,
    lower: np.ndarray,
    control: dict | None = None,
    keep_log: bool = True,
) -> OptSummary:
    """Minimise ``fg`` (theta -> criterion, gradient) from ``start`` within ``lower`` by scipy's L-BFGS-B.
    Status 0 is success (convergence code 0); otherwise -1 with scipy's message."""
    ctrl = {**LBFGSB_CTRL, **(control or {})}
    x0 = np.array(start, dtype=float)
    summary = OptSummary("L-BFGS-B", ctrl, x0.copy(), np.asarray(lower, dtype=float))

    scale = float(ctrl["scale"])

    def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = fg(z * scale)
        summary.feval += 1
        if keep_log:
            summary.log.append((z * scale, float(value)))
        return value, grad * scale

    from scipy.optimize import minimize  # imported on first use: only L-BFGS-B needs it

    bounds = [(lo / scale if np.isfinite(lo) else None, None) for lo in summary.lower]
    res = minimize(objective, x0 / scale, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"ftol": ctrl["ftol"], "gtol": ctrl["gtol"], "maxiter": int(ctrl["maxiter"])})
    summary.par, summary.fval = np.asarray(res.x, dtype=float) * scale, float(res.fun)
    summary.status = 0 if res.success else -1
    summary.message = str(res.message)
    return summary
