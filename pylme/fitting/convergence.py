"""lme4's convergence checks after the optimiser (checkConv): singular fit, gradient, Hessian.

Derivatives are lme4's ``deriv12``: central finite differences with step 1e-4. The
messages are lme4's own, word for word, so they can be compared with lme4's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

SINGULAR_MESSAGE = "boundary (singular) fit: see help('isSingular')"


@dataclass
class Derivs:
    gradient: np.ndarray
    Hessian: np.ndarray
    at: np.ndarray | None = None  # the theta they were computed at
    # where the Hessian was computed, when not at ``at`` (pylme.fitting.polish reuses a Hessian within a
    # small fraction of a standard error of the final point: Derivs.hessian_at records where)
    hessian_at: np.ndarray | None = None


@dataclass
class ConvCheck:
    """The outcome of checkConv: lme4's code and messages, and which are warnings."""

    code: int = 0
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def deriv12(many: Callable[[np.ndarray], np.ndarray], x: np.ndarray, delta: float = 1e-4,
            fx: float | None = None) -> Derivs:
    """Gradient and Hessian by central differences, as lme4's deriv12 (no bounds); ``many``
    evaluates the function at each row of an array of points (``Objective.many``)."""
    x = np.asarray(x, dtype=float)
    nx = x.size
    eye = np.eye(nx) * delta
    pairs = [(i, j) for j in range(nx) for i in range(j)]
    points = [x] if fx is None else []
    points += [x + s * eye[j] for j in range(nx) for s in (1, -1)]
    points += [x + si * eye[i] + sj * eye[j] for i, j in pairs for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
    values = np.asarray(many(np.array(points)))
    if fx is None:
        fx, values = values[0], values[1:]
    fadd, fsub = values[: 2 * nx : 2], values[1 : 2 * nx : 2]
    g = (fadd - fsub) / (2 * delta)
    H = np.diag((fadd - 2 * fx + fsub) / delta**2)
    for (i, j), (pp, pm, mp, mm) in zip(pairs, values[2 * nx :].reshape(-1, 4)):
        H[i, j] = H[j, i] = (pp - pm - mp + mm) / (2 * delta) ** 2
    return Derivs(g, H, x.copy())


def one_by_one(fun: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], np.ndarray]:
    """A function of one point as one of a batch of points (rows), evaluated in order (deriv12)."""
    return lambda points: np.array([fun(p) for p in points])


def derivs_from_gradient(fg: Callable[[np.ndarray], tuple[float, np.ndarray]], x: np.ndarray,
                         delta: float = 1e-4) -> Derivs:
    """The analytic gradient at x and the Hessian by central differences of it (step 1e-4, as
    deriv12's): 2n gradient evaluations where deriv12 needs 2n^2 criterion evaluations."""
    x = np.asarray(x, dtype=float)
    g = np.asarray(fg(x)[1], dtype=float)
    H = np.empty((x.size, x.size))
    for j in range(x.size):
        step = np.zeros(x.size)
        step[j] = delta
        H[:, j] = (fg(x + step)[1] - fg(x - step)[1]) / (2 * delta)
    return Derivs(g, (H + H.T) / 2, x.copy())


def is_singular(theta: np.ndarray, lower: np.ndarray, tol: float = 1e-4) -> bool:
    """lme4's isSingular: a theta with lower bound 0 (a diagonal element) below tol; for many fits
    (rows of ``theta``) a boolean array."""
    theta, lower = np.asarray(theta), np.asarray(lower)
    out = np.any(theta[..., lower == 0] < tol, axis=-1)
    return bool(out) if out.ndim == 0 else out


def check_conv(derivs: Derivs | None, theta: np.ndarray, lower: np.ndarray, grad_tol: float = 2e-3,
               hess_tol: float = 1e-6, singular_tol: float = 1e-4) -> ConvCheck:
    """lme4 1.1-31's checkConv with lmerControl's default actions."""
    res = ConvCheck()
    if is_singular(theta, lower, singular_tol):
        res.messages.append(SINGULAR_MESSAGE)
        return res
    if derivs is None:
        return res
    if np.any(np.isnan(derivs.gradient)):
        res.code = -5
        res.warnings.append("Gradient contains NAs")
        return res
    _check_gradient(derivs, grad_tol, res)
    _check_hessian(derivs.Hessian, hess_tol, res)
    return res


def quiet(gradient: np.ndarray, Hessian: np.ndarray, theta: np.ndarray, lower: np.ndarray, grad_tol: float = 2e-3,
          hess_tol: float = 1e-6, singular_tol: float = 1e-4) -> np.ndarray:
    """For many fits at once (rows of ``gradient`` and ``theta``, ``Hessian`` stacked): whether
    ``check_conv`` has nothing to say (code 0, no message): not singular, the scaled gradient
    within tolerance, the Hessian positive definite and well conditioned. The others are left to
    ``check_conv`` itself (pylme.scaleout.many's lockstep rows)."""
    theta, g = np.asarray(theta), np.asarray(gradient)
    H = np.asarray(Hessian)
    ok = ~is_singular(theta, lower, singular_tol) & np.all(np.isfinite(g), axis=1)
    ok &= np.all(np.isfinite(H), axis=(1, 2))
    if not ok.any():
        return ok
    rows = np.flatnonzero(ok)
    evd = np.linalg.eigvalsh(H[rows])
    good = np.all(evd >= hess_tol, axis=1)  # none negative, none |evd| < tol
    good &= (evd[:, -1] * hess_tol <= 1) & (evd[:, 0] / evd[:, -1] >= hess_tol)
    rows = rows[good]
    ok[:] = False
    if rows.size:
        try:
            R = np.linalg.cholesky(H[rows]).transpose(0, 2, 1)
        except np.linalg.LinAlgError:  # positive eigenvalues, yet a failed factor: check_conv's to say
            return ok
        scgrad = np.linalg.solve(R, g[rows][:, :, None])[:, :, 0]
        small = np.max(np.minimum(np.abs(scgrad), np.abs(g[rows])), axis=1) <= grad_tol
        ok[rows[small]] = True
    return ok


def _check_gradient(derivs: Derivs, tol: float, res: ConvCheck) -> None:
    try:
        R = np.linalg.cholesky(derivs.Hessian).T
        scgrad = np.linalg.solve(R, derivs.gradient)
        ok = not np.any(np.isnan(scgrad))
    except np.linalg.LinAlgError:
        ok = False
    if not ok:
        res.code = -1
        res.warnings.append("unable to evaluate scaled gradient")
        return
    maxmingrad = float(np.max(np.minimum(np.abs(scgrad), np.abs(derivs.gradient))))
    if maxmingrad > tol:
        res.code = -1
        # lme4 reports which.max() of the single maximum, i.e. always component 1
        res.warnings.append(f"Model failed to converge with max|grad| = {maxmingrad:g} (tol = {tol:g}, component 1)")


def _check_hessian(H: np.ndarray, tol: float, res: ConvCheck) -> None:
    """lme4's checkHess on the Hessian of the criterion with respect to theta."""
    try:
        evd = np.linalg.eigvalsh(H)
    except np.linalg.LinAlgError:
        res.code = -6
        res.warnings.append("Problem with Hessian check (infinite or missing values?)")
        return
    negative = int(np.sum(evd < -tol))
    if negative:
        res.code = -3
        res.warnings.append(f"Model failed to converge: degenerate  Hessian with {negative} negative eigenvalues")
        return
    try:
        np.linalg.cholesky(H)
        chol_ok = True
    except np.linalg.LinAlgError:
        chol_ok = False
    if np.any(np.abs(evd) < tol) or not chol_ok:
        res.code = -4
        res.warnings.append(" Hessian is numerically singular: parameters are not uniquely determined")
        return
    msgs = []
    if evd.max() * tol > 1:
        res.code = 2
        msgs.append("Model is nearly unidentifiable: very large eigenvalue\n - Rescale variables?")
    if evd.min() / evd.max() < tol:
        res.code = 3
        msgs.append("Model is nearly unidentifiable: large eigenvalue ratio\n - Rescale variables?")
    if msgs:
        res.warnings.append(";".join(msgs))
