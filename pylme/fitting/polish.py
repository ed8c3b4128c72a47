"""A certified optimum: after the optimiser of record, check the point it returned and, where it is
not the minimum, finish the optimisation.

lme4's BOBYQA stops on step-size and criterion-change tolerances (xtol_rel 1e-4, ftol_abs 1e-8). On
a flat surface the last steps are decided by rounding in the criterion, so two engines that agree
to 1e-14 at every theta can stop at different points, both above the minimum. The certificate is
the evidence that a point is the minimum of the profiled criterion within its bounds:

- the projected gradient: on the free parameters it should vanish; a parameter on its bound (a
  variance at 0) must have a gradient that points into the feasible set (the KKT conditions);
- the Hessian on the free parameters (finite differences of the analytic gradient where the
  objective has one, else lme4's deriv12): its smallest eigenvalue, positive at a minimum;
- the Newton decrement g' H^-1 g / 2: the decrease the quadratic model still predicts.

Where the point is not certified, ``polish`` finishes: projected Newton steps with a backtracking
line search, a step along a direction of negative curvature (a saddle), and a BOBYQA restart with
tight tolerances; a step is taken only where the criterion decreases by more than rounding, so a
point that is already the optimum does not move. Only the objective's public calls are used (those of
pylme.objectives.objective.Objective): the criterion at theta, a batch of them (``many``), ``lower``, and
``criterion_and_gradient`` where ``has_gradient`` is true.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np

from .convergence import Derivs, deriv12, derivs_from_gradient
from .optimizer import optwrap

#: settings of the finishing steps: BOBYQA's restart tolerances, the Newton steps allowed
RESTART_CTRL = {"xtol_rel": 1e-10, "xtol_abs": 0.0, "ftol_abs": 0.0, "maxeval": 2_000}
MAX_NEWTON = 6
#: the criterion's rounding: decreases smaller than this many units in the last place are noise
ROUNDING_ULPS = 64
#: a point is certified when the quadratic model predicts a decrease below
#: max(CERTIFY_ABS, CERTIFY_REL * |criterion|): BOBYQA's own ftol_abs scale, far below the
#: conformance tolerance on the criterion (1e-6)
CERTIFY_ABS = 1e-8
CERTIFY_REL = 1e-13
#: curvature below HESS_REL times the largest eigenvalue (or below HESS_ABS) is no curvature
HESS_REL = 1e-9
HESS_ABS = 1e-8
#: a gradient component below GRAD_TOL (times max(1, |criterion|) / 1e3) is zero to the precision
#: of finite differences
GRAD_TOL = 1e-5


@dataclass
class Certificate:
    """The evidence that the fit's theta minimises the criterion (see the module's docstring)."""

    criterion_path: float  # at the end of the optimiser of record (lme4's path)
    criterion: float  # at the end, after the finishing steps
    theta_path: np.ndarray
    theta: np.ndarray
    gradient: np.ndarray  # projected: zero on active bounds whose gradient points inward
    active: np.ndarray  # parameters on a bound (boolean)
    min_eigenvalue: float  # of the Hessian on the free parameters (nan: none free)
    newton_decrement: float  # g' H^-1 g / 2 on the free parameters (nan: H not positive definite)
    verdict: str
    steps: list[str] = field(default_factory=list)  # the finishing steps taken
    evaluations: int = 0  # criterion (or gradient) evaluations the certificate and the finish cost

    @property
    def certified(self) -> bool:
        return not self.verdict.startswith("not certified")

    @property
    def moved(self) -> float:
        """max |d theta| between the optimiser's end and the final theta."""
        return float(np.max(np.abs(self.theta - self.theta_path), initial=0.0))

    def __str__(self) -> str:
        fmt = lambda v: " ".join(f"{x:.4g}" for x in v)  # noqa: E731
        lines = [
            f"certificate: {self.verdict}",
            f"  criterion at the end of lme4's path {self.criterion_path:.12g}, at the end {self.criterion:.12g} "
            f"(change {self.criterion - self.criterion_path:.3g})",
            f"  theta moved by {self.moved:.3g}; projected gradient {fmt(self.gradient)}",
            f"  on a bound: {', '.join(str(i + 1) for i in np.flatnonzero(self.active)) or 'none'}; "
            f"smallest Hessian eigenvalue (free parameters) {self.min_eigenvalue:.4g}; "
            f"Newton decrement {self.newton_decrement:.3g}",
            f"  finishing steps: {', '.join(self.steps) or 'none'} ({self.evaluations} evaluations)",
        ]
        return "\n".join(lines)


def rounding(f: float) -> float:
    """The size of a change in the criterion that is rounding noise."""
    return ROUNDING_ULPS * np.finfo(float).eps * max(1.0, abs(f))


def _certify_tol(f: float) -> float:
    return max(CERTIFY_ABS, CERTIFY_REL * abs(f))


def _grad_tol(f: float) -> float:
    return GRAD_TOL * max(1.0, abs(f) / 1e3)


class _Counted:
    """The objective with its evaluations counted (derivatives included)."""

    def __init__(self, objective, lower: np.ndarray | None = None):
        self.objective = objective
        self.lower = np.asarray(objective.lower if lower is None else lower, dtype=float)
        self.count = 0
        self.has_gradient = objective.has_gradient

    def __call__(self, theta: np.ndarray) -> float:
        self.count += 1
        return float(self.objective(np.asarray(theta, dtype=float)))

    def many(self, thetas: np.ndarray) -> np.ndarray:
        self.count += len(thetas)
        return self.objective.many(thetas)

    def criterion_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        self.count += 1
        return self.objective.criterion_and_gradient(np.asarray(theta, dtype=float))

    def derivs(self, theta: np.ndarray, f: float) -> Derivs:
        """Gradient and Hessian at theta: central differences of the analytic gradient, else deriv12's."""
        if self.has_gradient:
            return derivs_from_gradient(self.criterion_and_gradient, theta)
        return deriv12(self.many, theta, fx=f)


@dataclass
class _Analysis:
    """The first- and second-order conditions at one point."""

    gradient: np.ndarray  # projected
    active: np.ndarray
    released: np.ndarray  # on a bound, but the criterion decreases off it
    min_eigenvalue: float
    decrement: float
    step: np.ndarray  # the projected Newton step (or a negative-curvature direction), zero on active bounds
    verdict: str

    @property
    def certified(self) -> bool:
        return not self.verdict.startswith("not certified")


def analyse(theta: np.ndarray, f: float, derivs: Derivs, lower: np.ndarray,
            upper: np.ndarray | None = None) -> _Analysis:
    """The KKT conditions, the Hessian's smallest eigenvalue on the free parameters and the Newton
    decrement at theta, with a verdict and the step the finish would take."""
    g = np.asarray(derivs.gradient, dtype=float)
    H = (np.asarray(derivs.Hessian, dtype=float) + np.asarray(derivs.Hessian, dtype=float).T) / 2
    gtol = _grad_tol(f)
    at_lower = np.isfinite(lower) & (theta <= lower)
    at_upper = np.zeros_like(at_lower) if upper is None else np.isfinite(upper) & (theta >= upper)
    released = (at_lower & (g < -gtol)) | (at_upper & (g > gtol))
    active = (at_lower | at_upper) & ~released
    free = ~active
    pg = np.where(active, 0.0, g)
    step = np.zeros_like(theta)
    if not np.all(np.isfinite(g)) or not np.all(np.isfinite(H)):
        return _Analysis(pg, active, released, np.nan, np.nan, step, "not certified: derivatives not finite")
    if not free.any():
        return _Analysis(pg, active, released, np.nan, 0.0, step, "boundary optimum")
    evals, evecs = np.linalg.eigh(H[np.ix_(free, free)])
    gf = g[free]
    lam_min = float(evals[0])
    floor = max(HESS_ABS, HESS_REL * abs(float(evals[-1])))
    coef = evecs.T @ gf
    if lam_min < -floor:
        v = evecs[:, 0] * (-1.0 if coef[0] > 0 else 1.0)  # downhill along the negative curvature
        step[free] = v
        return _Analysis(pg, active, released, lam_min, np.nan, step,
                         f"not certified: negative curvature (smallest Hessian eigenvalue {lam_min:.3g})")
    curved = evals > floor
    decrement = float(np.sum(coef[curved] ** 2 / evals[curved]) / 2)
    step[free] = -evecs[:, curved] @ (coef[curved] / evals[curved])
    flat_grad = float(np.max(np.abs(coef[~curved]), initial=0.0))
    if flat_grad > gtol:
        step[free] -= evecs[:, ~curved] @ coef[~curved]  # steepest descent along the flat directions
        verdict = f"not certified: gradient {flat_grad:.3g} along a direction without curvature"
    elif released.any():
        which = ", ".join(str(i + 1) for i in np.flatnonzero(released))
        verdict = f"not certified: the criterion decreases off the bound of theta {which}"
    elif decrement > _certify_tol(f):
        verdict = f"not certified: the quadratic model predicts a further decrease of {decrement:.3g}"
    elif not curved.all():
        verdict = "not certified: the Hessian is singular on the free parameters"
    else:
        verdict = "boundary optimum" if active.any() else "optimum"
    return _Analysis(pg, active, released, lam_min, decrement, step, verdict)


def _line_search(fn: _Counted, theta: np.ndarray, f: float, step: np.ndarray, upper: np.ndarray | None,
                 lengths=(1.0, 0.5, 0.25, 0.1, 0.03, 0.01, 1e-3)) -> tuple[np.ndarray, float] | None:
    """The first projected trial point along ``step`` that lowers the criterion by more than rounding."""
    for t in lengths:
        trial = _project(theta + t * step, fn.lower, upper)
        if np.array_equal(trial, theta):
            continue
        value = fn(trial)
        if np.isfinite(value) and value < f - rounding(f):
            return trial, value
    return None


def _project(theta: np.ndarray, lower: np.ndarray, upper: np.ndarray | None) -> np.ndarray:
    out = np.maximum(theta, np.where(np.isfinite(lower), lower, -np.inf))
    return out if upper is None else np.minimum(out, np.where(np.isfinite(upper), upper, np.inf))


def _scaled_curvature_step(step: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """A negative-curvature direction (unit length) scaled to a tenth of theta's size."""
    return step * 0.1 * max(1.0, float(np.max(np.abs(theta), initial=0.0)))


def polish(objective, theta: np.ndarray, f: float, derivs: Derivs | None = None, finish: bool = True,
           lower: np.ndarray | None = None, upper: np.ndarray | None = None
           ) -> tuple[np.ndarray, float, Derivs, Certificate]:
    """Certify theta (the optimiser's end, criterion ``f``) and, with ``finish``, move it to the
    optimum where it is not one. ``derivs`` are the derivatives at theta when already computed
    (lme4's checkConv computes them); ``lower`` (default: the objective's) and ``upper`` bound theta.
    Returns theta, the criterion, the derivatives there and the certificate."""
    fn = _Counted(objective, lower)
    theta0, f0 = np.array(theta, dtype=float), float(f)
    theta, f = theta0.copy(), f0
    derivs = derivs if derivs is not None else fn.derivs(theta, f)
    info = analyse(theta, f, derivs, fn.lower, upper)
    steps: list[str] = []
    if finish and not info.certified:
        theta, f, derivs, info = _finish(fn, theta, f, derivs, info, upper, steps)
    cert = Certificate(f0, f, theta0, theta.copy(), info.gradient, info.active, info.min_eigenvalue,
                       info.decrement, info.verdict, steps, fn.count)
    return theta, f, derivs, cert


def _finish(fn: _Counted, theta, f, derivs, info, upper, steps):
    """Newton steps (or a negative-curvature step), then a BOBYQA restart if still not certified."""
    for _ in range(MAX_NEWTON):
        if info.certified:
            break
        saddle = np.isnan(info.decrement)
        step = _scaled_curvature_step(info.step, theta) if saddle else info.step
        moved = _line_search(fn, theta, f, step, upper)
        if moved is None and saddle:
            moved = _line_search(fn, theta, f, -step, upper)
        if moved is None:
            break
        theta, f = moved
        steps.append("saddle escape" if saddle else "Newton")
        derivs = fn.derivs(theta, f)
        info = analyse(theta, f, derivs, fn.lower, upper)
    if not info.certified:
        res = optwrap(fn, theta, fn.lower, RESTART_CTRL, keep_log=False, upper=upper)
        if res.fval < f - rounding(f):
            theta, f = np.asarray(res.par, dtype=float), float(res.fval)
            steps.append(f"BOBYQA restart ({res.feval} evaluations)")
            derivs = fn.derivs(theta, f)
            info = analyse(theta, f, derivs, fn.lower, upper)
            if not info.certified and not np.isnan(info.decrement):
                moved = _line_search(fn, theta, f, info.step, upper)
                if moved is not None:
                    theta, f = moved
                    steps.append("Newton")
                    derivs = fn.derivs(theta, f)
                    info = analyse(theta, f, derivs, fn.lower, upper)
    return theta, f, derivs, info


