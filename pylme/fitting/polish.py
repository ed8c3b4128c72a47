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
point that is already the optimum does not move. Only the objective's public calls are used (those
of pylme.objectives.objective.Objective): the criterion at theta, ``lower``, a batch of criteria (``many``)
where it has one, and ``criterion_and_gradient`` where ``has_gradient`` is true; glmer's deviance
function of (theta, beta) is certified and finished through the same calls (pylme.fitting.driver.finish).
Two optional attributes serve a criterion computed by an inner iteration (glmer's PIRLS):
``extrapolate_gradient`` (Richardson-extrapolate deriv12's gradient: ``richardson_gradient``) and
``resolution(f)``, the smallest change of the criterion its iteration resolves; a predicted
decrease below it that no step achieves is an optimum to that resolution.

A variance at 0 is a bound of the parameters, not of the covariance matrices: where a diagonal
entry of a term's factor is 0, negating the entries below it in its column (the mirror) gives the
same covariance matrix, and the derivative in that diagonal entry changes sign. A boundary end whose
gradient there is positive is therefore no optimum: the criterion decreases from its mirror, into
a basin that the bound hides from a local search (lme4's path may end there, pylme's in the
other, when the two paths part at the rounding level). The certificate checks the mirrors of the
factor's columns (``mirrors``: pylme.description.reterms.LambdaMap.factor_columns) and the finish continues from
a mirror where the criterion decreases, accepted where it ends lower by more than rounding.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .convergence import Derivs, deriv12, derivs_from_gradient
from .optimizer import optwrap

#: the columns of theta's covariance factors: each diagonal entry's theta index and those of the
#: entries below it (pylme.description.reterms.LambdaMap.factor_columns)
Mirrors = Sequence[tuple[int, np.ndarray]]

#: settings of the finishing steps: BOBYQA's restart tolerances, the Newton steps allowed
RESTART_CTRL = {"xtol_rel": 1e-10, "xtol_abs": 0.0, "ftol_abs": 0.0, "maxeval": 2_000}
MAX_NEWTON = 6
#: mirrors tried one after another (each accepted only where it ends lower)
MAX_MIRRORS = 3
#: a diagonal theta this close to its bound (0) is mirrored as if on it (lme4's isSingular tolerance)
MIRROR_NEAR = 1e-4
#: the criterion's rounding: decreases smaller than this many units in the last place are noise
ROUNDING_ULPS = 64
#: a point is certified when the quadratic model predicts a decrease below
#: max(CERTIFY_ABS, CERTIFY_REL * |criterion|): BOBYQA's own ftol_abs scale, far below the
#: conformance tolerance on the criterion (1e-6)
CERTIFY_ABS = 1e-8
CERTIFY_REL = 1e-13
#: a finish that has moved goes on while the predicted decrease is above this, where its steps are
#: cheap (_Counted.refines)
REFINE_ABS = 1e-10
#: curvature below HESS_REL times the largest eigenvalue (or below HESS_ABS) is no curvature
HESS_REL = 1e-9
HESS_ABS = 1e-8
#: the verdict where the Newton decrement is above the tolerance
PREDICTED = "not certified: the quadratic model predicts a further decrease of "
#: deriv12's step (lme4's), which richardson_gradient halves
DERIV_STEP = 1e-4
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
            f"  criterion at the optimiser's end {self.criterion_path:.12g}, at the end {self.criterion:.12g} "
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


def certify_tol(f: float) -> float:
    """The decrease the quadratic model may still predict at a certified point."""
    return max(CERTIFY_ABS, CERTIFY_REL * abs(f))


def _grad_tol(f: float) -> float:
    return GRAD_TOL * max(1.0, abs(f) / 1e3)


class _Counted:
    """The objective with its evaluations counted (derivatives included)."""

    def __init__(self, objective, lower: np.ndarray | None = None):
        self.objective = objective
        self.lower = np.asarray(objective.lower if lower is None else lower, dtype=float)
        self.count = 0
        self.has_gradient = getattr(objective, "has_gradient", False)
        self.correction: tuple[np.ndarray, np.ndarray] | None = None  # (where, Richardson's correction there)

    def __call__(self, theta: np.ndarray) -> float:
        self.count += 1
        return float(self.objective(np.asarray(theta, dtype=float)))

    def many(self, thetas: np.ndarray) -> np.ndarray:
        """The criterion at each row (one by one where the objective has no ``many``: glmer's)."""
        self.count += len(thetas)
        many = getattr(self.objective, "many", None)
        return many(thetas) if many is not None else np.array([float(self.objective(t)) for t in thetas])

    def criterion_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        self.count += 1
        return self.objective.criterion_and_gradient(np.asarray(theta, dtype=float))

    def derivs(self, theta: np.ndarray, f: float) -> Derivs:
        """Gradient and Hessian at theta: central differences of the analytic gradient, else deriv12's
        (with the gradient extrapolated where the objective asks for it: see ``refined``)."""
        if self.has_gradient:
            return derivs_from_gradient(self.criterion_and_gradient, theta)
        return self.refined(deriv12(self.many, theta, fx=f))

    def refined(self, derivs: Derivs) -> Derivs:
        """``derivs`` (deriv12's, step DERIV_STEP) with the gradient Richardson-extrapolated where the
        objective's ``extrapolate_gradient`` is true (glmer's deviance; see richardson_gradient). The
        extrapolation's correction is kept for ``derivs_after_step``."""
        if derivs.at is None:
            return derivs
        if not getattr(self.objective, "extrapolate_gradient", False):
            self.correction = (np.asarray(derivs.at), np.zeros(np.size(derivs.gradient)))
            return derivs
        out = richardson_gradient(self.many, derivs)
        self.correction = (np.asarray(derivs.at), np.asarray(out.gradient) - np.asarray(derivs.gradient, dtype=float))
        return out

    def derivs_after_step(self, theta: np.ndarray, f: float, before: Derivs) -> tuple[Derivs, str]:
        """The derivatives at theta after a finishing step from where ``before`` were taken, and a note
        for the certificate's steps. Where the objective is a deviance whose Hessian may be reused
        (its ``hessian_reuse_se``: see ``hessian_distance``) and theta is that close to where
        ``before``'s Hessian was taken, that Hessian with deriv12's central-difference gradient at theta
        (2 n evaluations instead of 2 n^2 + 2 n), plus the Richardson correction measured with the
        Hessian (the truncation error, a third derivative, is the same so near); else all anew."""
        limit = getattr(self.objective, "hessian_reuse_se", None)
        where = before.at if before.hessian_at is None else before.hessian_at
        if limit is None or self.has_gradient or self.correction is None \
                or not np.array_equal(self.correction[0], where):
            return self.derivs(theta, f), ""
        distance = hessian_distance(before.Hessian, theta - where)
        if not distance <= limit:
            return self.derivs(theta, f), ""
        gradient = central_gradient(self.many, theta, DERIV_STEP) + self.correction[1]
        note = f" (Hessian reused from {distance:.2g} SE away)"
        return Derivs(gradient, before.Hessian, theta.copy(), where.copy()), note

    def refines(self, theta: np.ndarray, derivs: Derivs, info: "_Analysis") -> bool:
        """Whether a finish that has moved takes one more Newton step from a certified point: where the
        Hessian is reused (``derivs_after_step``: 2 n + 1 evaluations a step) and the quadratic model still
        predicts a decrease above REFINE_ABS. A certified end is within CERTIFY_ABS of the optimum; this
        takes a finish from a far start (a deviance 1e-6 above, whose first Newton step leaves ~1e-9, as a
        non-quadratic deviance does) on to the optimum as closely as one from a near start."""
        limit = getattr(self.objective, "hessian_reuse_se", None)
        if limit is None or not info.decrement > REFINE_ABS:
            return False
        where = derivs.at if derivs.hessian_at is None else derivs.hessian_at
        return hessian_distance(derivs.Hessian, theta + info.step - where) <= limit


def hessian_distance(H: np.ndarray, step: np.ndarray) -> float:
    """How far ``step`` goes in standard errors, for a criterion that is a deviance (-2 log-likelihood,
    whose Hessian H is twice the inverse of the estimates' covariance): sqrt(step' H step / 2), the
    Mahalanobis length of the step (inf where H is not positive along it)."""
    quad = float(step @ (np.asarray(H, dtype=float) @ step))
    return np.sqrt(quad / 2) if quad >= 0 and np.isfinite(quad) else np.inf


def richardson_gradient(many, derivs: Derivs, delta: float = DERIV_STEP) -> Derivs:
    """deriv12's derivatives at ``derivs.at`` with the gradient extrapolated: central differences
    at delta / 2 (2 n more evaluations) combined with deriv12's at delta as (4 g(delta/2) - g(delta)) / 3,
    which cancels the delta^2 term of their truncation error. glmer's deviance needs it: on a badly
    scaled parameter (the coefficient of Contraception's I(age^2), a slope's theta over grouseticks'
    cHEIGHT) the third derivative is so large that deriv12's gradient at delta = 1e-4 is off by up to 1
    (it shrinks as delta^2: 98, 8.8, 0.98, 0.089 at delta 1e-3, 3e-4, 1e-4, 3e-5), and the Newton decrement
    it gives (1e-7) is that error, not a decrease. Smaller steps alone would meet PIRLS's noise: its
    deviance is smooth to ~1e-11 absolute within 1e-4 of the optimum (measured on the corpus), which the
    half step turns into ~2e-7 in the gradient, far below the certificate's tolerances."""
    half = central_gradient(many, np.asarray(derivs.at, dtype=float), delta / 2)
    return Derivs((4 * half - np.asarray(derivs.gradient, dtype=float)) / 3, derivs.Hessian, derivs.at)


def central_gradient(many, x: np.ndarray, h: float) -> np.ndarray:
    """The gradient at x by central differences of step h (2 n evaluations, in one batch)."""
    eye = np.eye(x.size) * h
    values = np.asarray(many(np.array([x + s * eye[j] for j in range(x.size) for s in (1, -1)])))
    return (values[0::2] - values[1::2]) / (2 * h)


@dataclass
class _Analysis:
    """The first- and second-order conditions at one point."""

    gradient: np.ndarray  # projected
    active: np.ndarray
    released: np.ndarray  # on a bound, but the criterion decreases off it
    min_eigenvalue: float
    decrement: float
    step: np.ndarray  # the projected Newton step (or a negative-curvature direction), zero on active bounds
    verdict: str  # on the neighbourhood of theta (the mirror aside)
    mirror: int | None = None  # a diagonal theta at 0 whose mirror lowers the criterion (see analyse)

    @property
    def locally_certified(self) -> bool:
        return not self.verdict.startswith("not certified")

    @property
    def certified(self) -> bool:
        return self.locally_certified and self.mirror is None

    @property
    def summary(self) -> str:
        """The verdict, the mirror included."""
        if self.locally_certified and self.mirror is not None:
            return (f"not certified: theta {self.mirror + 1} is at 0 and the criterion decreases from the mirrored "
                    "factor (the entries below it negated: the same covariance matrix)")
        return self.verdict


def analyse(theta: np.ndarray, f: float, derivs: Derivs, lower: np.ndarray,
            upper: np.ndarray | None = None, mirrors: Mirrors = ()) -> _Analysis:
    """The KKT conditions, the Hessian's smallest eigenvalue on the free parameters and the Newton
    decrement at theta, with a verdict and the step the finish would take; ``mirrors`` (the factor's
    columns: diagonal theta index, indices below it) are checked as the module's docstring says."""
    info = _analyse_locally(theta, f, derivs, lower, upper)
    g = np.asarray(derivs.gradient, dtype=float)
    info.mirror = _mirror_candidate(theta, g, lower, _grad_tol(f), mirrors)
    return info


def _mirror_candidate(theta: np.ndarray, g: np.ndarray, lower: np.ndarray, gtol: float,
                      mirrors: Mirrors) -> int | None:
    """The diagonal theta on its bound (0; or within MIRROR_NEAR of it) with entries below it not
    all 0 and the largest gradient above ``gtol``: its mirror has the negated derivative there, a
    descent (None: no such theta). The central differences at 0 compare theta with its mirror: a
    positive derivative says the mirror's side is lower."""
    best, largest = None, gtol
    for diag, below in mirrors:
        if theta[diag] - lower[diag] <= MIRROR_NEAR and g[diag] > largest and np.any(theta[below] != 0):
            best, largest = diag, float(g[diag])
    return best


def _mirrored(theta: np.ndarray, diag: int, lower: np.ndarray, mirrors: Mirrors) -> np.ndarray:
    """theta with diagonal ``diag`` on its bound (0) and the entries below it negated: the same
    covariance matrix where it was at 0."""
    out = theta.copy()
    below = dict((d, b) for d, b in mirrors)[diag]
    out[diag] = lower[diag]
    out[below] = -out[below]
    return out


def _analyse_locally(theta: np.ndarray, f: float, derivs: Derivs, lower: np.ndarray,
                     upper: np.ndarray | None) -> _Analysis:
    """analyse on theta's neighbourhood (no mirror)."""
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
    elif decrement > certify_tol(f):
        verdict = f"{PREDICTED}{decrement:.3g}"
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
           lower: np.ndarray | None = None, upper: np.ndarray | None = None, mirrors: Mirrors = ()
           ) -> tuple[np.ndarray, float, Derivs, Certificate]:
    """Certify theta (the optimiser's end, criterion ``f``) and, with ``finish``, move it to the
    optimum where it is not one. ``derivs`` are the derivatives at theta when already computed
    (lme4's checkConv computes them); ``lower`` (default: the objective's) and ``upper`` bound theta;
    ``mirrors``: the columns of theta's covariance factors (LambdaMap.factor_columns; none: theta is
    not a factor's, e.g. a profile's inner fit). Returns theta, the criterion, the derivatives there
    and the certificate."""
    fn = _Counted(objective, lower)
    theta0, f0 = np.array(theta, dtype=float), float(f)
    theta, f = theta0.copy(), f0
    derivs = fn.refined(derivs) if derivs is not None else fn.derivs(theta, f)
    info = analyse(theta, f, derivs, fn.lower, upper, mirrors)
    steps: list[str] = []
    if finish and not info.certified:
        theta, f, derivs, info = _finish(fn, theta, f, derivs, info, upper, steps, mirrors)
    cert = Certificate(f0, f, theta0, theta.copy(), info.gradient, info.active, info.min_eigenvalue,
                       info.decrement, _resolved(info, objective, f), steps, fn.count)
    return theta, f, derivs, cert


def _below_resolution(info: _Analysis, objective, f: float) -> bool:
    """Whether the only reason against the point is a predicted decrease below what the criterion
    resolves (the objective's ``resolution(f)``; glmer's deviance: PIRLS's tolPwrss times the deviance).
    The finish's Newton steps have then found no step that lowers it, and a BOBYQA restart would
    chase the criterion's noise (sleepstudy's Gamma fit: 80 to 144 evaluations for nothing)."""
    resolution = getattr(objective, "resolution", None)
    return resolution is not None and info.verdict.startswith(PREDICTED) and info.decrement <= resolution(f)


def _resolved(info: _Analysis, objective, f: float) -> str:
    """The verdict, where the only reason against the point is a predicted decrease below what the
    criterion resolves (``_below_resolution``), an optimum to that resolution: the derivatives cannot
    tell such a decrease from the criterion's own noise, and the finish (where it ran) found no step
    that lowers it."""
    if info.certified or not _below_resolution(info, objective, f):
        return info.summary
    kind = "boundary optimum" if info.active.any() else "optimum"
    return (f"{kind} to the criterion's resolution (the quadratic model predicts a further decrease of "
            f"{info.decrement:.3g}, below {objective.resolution(f):.3g})")


def _finish(fn: _Counted, theta, f, derivs, info, upper, steps, mirrors):
    """The local finish, then, where a mirror lowers the criterion, the local finish from the mirror,
    kept where it ends lower by more than rounding."""
    theta, f, derivs, info = _finish_locally(fn, theta, f, derivs, info, upper, steps, mirrors)
    for _ in range(MAX_MIRRORS):
        if info.mirror is None:
            break
        start = _mirrored(theta, info.mirror, fn.lower, mirrors)
        f_start = fn(start)
        trial_steps = [f"mirror of theta {info.mirror + 1}"]
        trial = _finish_locally(fn, start, f_start, fn.derivs(start, f_start), None, upper, trial_steps, mirrors)
        if not trial[1] < f - rounding(f):
            break
        theta, f, derivs, info = trial
        steps += trial_steps
    return theta, f, derivs, info


def _finish_locally(fn: _Counted, theta, f, derivs, info, upper, steps, mirrors):
    """Newton steps (or a negative-curvature step), then a BOBYQA restart if still not certified
    on theta's neighbourhood. ``info``: the analysis at theta (None: not done yet)."""
    info = info or analyse(theta, f, derivs, fn.lower, upper, mirrors)
    moved_here = False
    for _ in range(MAX_NEWTON):
        if info.locally_certified and not (moved_here and fn.refines(theta, derivs, info)):
            break
        saddle = np.isnan(info.decrement)
        step = _scaled_curvature_step(info.step, theta) if saddle else info.step
        moved = _line_search(fn, theta, f, step, upper)
        if moved is None and saddle:
            moved = _line_search(fn, theta, f, -step, upper)
        if moved is None:
            break
        theta, f = moved
        moved_here = True
        derivs, note = (fn.derivs(theta, f), "") if saddle else fn.derivs_after_step(theta, f, derivs)
        steps.append(("saddle escape" if saddle else "Newton") + note)
        info = analyse(theta, f, derivs, fn.lower, upper, mirrors)
    if not (info.locally_certified or _below_resolution(info, fn.objective, f)):
        res = optwrap(fn, theta, fn.lower, RESTART_CTRL, keep_log=False, upper=upper)
        if res.fval < f - rounding(f):
            theta, f = np.asarray(res.par, dtype=float), float(res.fval)
            steps.append(f"BOBYQA restart ({res.feval} evaluations)")
            derivs = fn.derivs(theta, f)
            info = analyse(theta, f, derivs, fn.lower, upper, mirrors)
            if not info.locally_certified and not np.isnan(info.decrement):
                moved = _line_search(fn, theta, f, info.step, upper)
                if moved is not None:
                    theta, f = moved
                    steps.append("Newton")
                    derivs = fn.derivs(theta, f)
                    info = analyse(theta, f, derivs, fn.lower, upper, mirrors)
    return theta, f, derivs, info


