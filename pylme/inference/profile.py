"""Likelihood profiles of a fitted model and their confidence intervals (lme4's profile.merMod,
confint.thpr).

The profile is of the ML deviance (a REML fit is refitted by ML first, as lme4's devfun2 does),
on the scale of ``.sig01, ...`` (standard deviations and correlations of the random effects),
``.sigma`` and the fixed effects. For each parameter in turn the parameter is held at a
sequence of values moving away from its estimate, the deviance is minimised over the others,
and ``zeta = sign(value - estimate) sqrt(deviance - deviance at the optimum)`` is recorded.
Steps follow lme4: the first is 1% of the estimate (0.001 for a zero estimate) or ``delta``
standard errors for a fixed effect, then each step aims at a zeta change of ``delta``
(``sqrt(qchisq(1 - alphamax, npar)) / 8``) by linear extrapolation, until |zeta| passes that
cutoff, a bound, or ``maxpts`` rows. Variance parameters are profiled with the deviance as a
function of (sd/cor, sigma) and BOBYQA over the others; a fixed effect by moving its column
into the offset and optimising theta with the profiled ML deviance.

A glmer fit (lme4's profile of a GLMM) is profiled on the deviance it optimised (Laplace, or
adaptive quadrature for nAGQ > 1) as a function of (sd/cor, beta): every parameter, fixed
effects included, is held in turn and the deviance minimised over all the others, with lme4's
first step (1% of the estimate) for fixed effects too. As lme4, families with a dispersion
(Gamma, inverse Gaussian, gaussian with a link) are refused.

Confidence intervals interpolate each profile as R does (``interpSpline`` of zeta against the
parameter, inverted by ``backSpline``) at the normal quantiles; a quantile beyond the profiled
range gives the parameter's bound (0 for a standard deviation, -1 or 1 for a correlation).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ModelError, PylmeWarning
from ..fitting.optimizer import optwrap
from ..fitting.polish import polish
from ..objectives.pirls import PirlsError
from ..objectives.pls import CholmodObjective
from ..rbase.parallel import run_tasks
from ..rbase.splines import PolySpline, back_spline, interp_spline
from .varcorr import sdcor_to_theta, theta_to_sdcor


def profile_names(fm) -> list[str]:
    """lme4's profile names: ``.sig01`` ... for the random-effect parameters, then ``.sigma``
    (not for a glmer family without a dispersion: binomial, Poisson, negative binomial)."""
    family = fm.family
    sigma = [".sigma"] if family is None or family.has_scale else []
    return [f".sig{k + 1:02d}" for k in range(len(fm.theta))] + sigma


class Devfun2:
    """The ML deviance as a function of (sd/cor parameters, sigma), lme4's devfun2: beta is
    profiled out, sigma is not. Keeps beta of the last evaluation (lme4 records it)."""

    def __init__(self, fm_ml):
        self.objective = fm_ml.objective
        self.ncs = [t.nc for t in fm_ml.lmod.reTrms.terms]
        self.beta = fm_ml.state.beta

    def __call__(self, pars: np.ndarray) -> float:
        sigma = pars[-1]
        st = self.objective.pls_state(sdcor_to_theta(pars[:-1], self.ncs, sigma))
        self.beta = st.beta
        resp = self.objective.resp
        return st.ldL2 - resp.ldW + st.pwrss / sigma**2 + resp.n * np.log(2 * np.pi * sigma**2)

    def tail(self) -> np.ndarray:
        """What follows the variance parameters in a profile row: beta at the last evaluation."""
        return self.beta


class GlmmDevfun2:
    """lme4's devfun2 of a glmer fit: the deviance the fit optimised as a function of (sd/cor
    parameters, beta); no sigma (lme4 profiles only families without a dispersion)."""

    def __init__(self, fm):
        self.devfun = fm.devfun
        self.ncs = [t.nc for t in fm.lmod.reTrms.terms]
        self.ntheta = len(fm.theta)

    def __call__(self, pars: np.ndarray) -> float:
        theta = sdcor_to_theta(pars[: self.ntheta], self.ncs, 1.0)
        return self.devfun(np.concatenate([theta, pars[self.ntheta:]]))

    def tail(self) -> np.ndarray:
        """Nothing follows the parameters in a profile row: beta is among them."""
        return np.zeros(0)


@dataclass
class _Setup:
    """What a profile walks on: the (ML) fit, its deviance function ``dd`` of the first
    ``len(lower)`` parameters (the variance parameters of an lmer fit, all of a glmer fit's),
    the parameter names, the estimates ``opt``, the deviance there, bounds, and the inner
    optimiser's nlopt settings and polish."""

    fit: object
    dd: object
    names: list[str]
    nvp: int
    opt: np.ndarray
    base: float
    lower: np.ndarray
    upper: np.ndarray
    opt_ctrl: dict
    polish: bool


#: nlopt's settings for a glmer profile point's inner fit (BOBYQA over theta and beta): lme4's
#: Nelder-Mead stops at a deviance change of 1e-5 absolute; pylme goes further so that zeta does
#: not depend on where an inner fit stopped
GLMM_INNER_CTRL = {"ftol_abs": 1e-10, "xtol_rel": 1e-7}


def _lmm_setup(fm) -> _Setup:
    """lme4's devfun2 of an lmer fit: the ML refit's deviance of (sd/cor, sigma), beta profiled out."""
    from .anova import refit_ml

    fm_ml = refit_ml(fm)
    dd = Devfun2(fm_ml)
    vp_names = profile_names(fm_ml)
    lower, upper = _bounds(fm_ml.lmod.reTrms.lower)
    opt = np.concatenate([theta_to_sdcor(fm_ml.theta, dd.ncs, fm_ml.sigma()), fm_ml.state.beta])
    return _Setup(fm_ml, dd, vp_names + list(fm_ml.lmod.fixef_names), len(vp_names), opt,
                  -2 * float(fm_ml.logLik()), lower, upper, fm.control.optCtrl, fm.control.polish)


def _glmm_setup(fm) -> _Setup:
    """lme4's devfun2 of a glmer fit (``GlmmDevfun2``), bounds -inf/inf on the fixed effects."""
    if fm.family.has_scale:
        raise ModelError(f"can't (yet) profile GLMMs with non-fixed scale parameters (the {fm.family.family} "
                         "family has a dispersion): use confint(method='Wald') or confint(method='boot')")
    if fm.nAGQ == 0:
        raise ModelError("profile of a glmer fit with nAGQ = 0 is not available: its deviance function takes theta "
                         "alone (lme4 stops with 'theta size mismatch'); refit with nAGQ = 1")
    dd = GlmmDevfun2(fm)
    vp_names = profile_names(fm)
    lower, upper = _bounds(fm.lmod.reTrms.lower)
    p = fm.p
    lower = np.concatenate([lower[:-1], np.full(p, -np.inf)])  # no sigma
    upper = np.concatenate([upper[:-1], np.full(p, np.inf)])
    opt = np.concatenate([theta_to_sdcor(fm.theta, dd.ncs, 1.0)[: len(fm.theta)], fm.fixef().to_numpy()])
    return _Setup(fm, dd, vp_names + list(fm.lmod.fixef_names), len(vp_names), opt, float(fm.opt.fval),
                  lower, upper, GLMM_INNER_CTRL, False)


@dataclass
class LmerProfile:
    """lme4's profile object: ``frame`` is ``as.data.frame(profile(fm))`` (``.zeta``, every
    parameter, ``.par`` naming the profiled one, ``.focal`` its value); the splines per
    parameter interpolate it."""

    frame: pd.DataFrame
    forward: dict[str, PolySpline | None]
    backward: dict[str, PolySpline | None]
    lower: dict[str, float]
    upper: dict[str, float]

    def confint(self, parm=None, level: float = 0.95) -> pd.DataFrame:
        """lme4's ``confint(profile)``: the back spline of zeta at the normal quantiles."""
        from .bootstrap import perc_labels

        names = list(self.backward) if parm is None else select_parameters(parm, list(self.backward), self._nvp)
        a = (1 - level) / 2
        zeta = stats.norm.ppf([a, 1 - a])
        rows = [self._interval(nm, zeta) for nm in names]
        return pd.DataFrame(rows, index=names, columns=perc_labels(level))

    @property
    def _nvp(self) -> int:
        return len(self.lower)

    def _interval(self, name: str, zeta: np.ndarray) -> np.ndarray:
        b = self.backward[name]
        if b is not None:
            p = b.predict(zeta)
        else:
            rows = self.frame[self.frame[".par"] == name]
            z, v = rows[".zeta"].to_numpy(), rows[name].to_numpy()
            if np.all(np.isnan(z)) or np.all(np.diff(z) < -0.01):
                warnings.warn(f"bad profile for {name}", PylmeWarning, stacklevel=4)
                return np.full(2, np.nan)
            warnings.warn(f"bad spline fit for {name}: falling back to linear interpolation", PylmeWarning,
                          stacklevel=4)
            ok = np.isfinite(z)
            order = np.argsort(z[ok])
            zs, vs = z[ok][order], v[ok][order]
            p = np.where((zeta >= zs[0]) & (zeta <= zs[-1]), np.interp(zeta, zs, vs), np.nan)
        p = p.copy()
        if np.isnan(p[0]):
            p[0] = self.lower.get(name, np.nan)
        if np.isnan(p[1]):
            p[1] = self.upper.get(name, np.nan)
        return p


def select_parameters(parm, names: list[str], nvp: int) -> list[str]:
    """Parameter names from lme4's ``parm``/``which``: names, ``"theta_"`` (the variance
    parameters, sigma included), ``"beta_"`` (the fixed effects), or positions counted from 1
    in ``names`` (kept in the order given, as lme4's get.which)."""
    wanted = [parm] if isinstance(parm, (str, int, np.integer)) else list(parm)
    if wanted and all(isinstance(w, (int, np.integer)) and not isinstance(w, bool) for w in wanted):
        bad = [int(w) for w in wanted if not 1 <= w <= len(names)]
        if bad:
            raise ValueError(f"parameter position(s) {bad} out of range: parm counts 1 to {len(names)} in "
                             f"{', '.join(names)}")
        return [names[int(w) - 1] for w in wanted]
    out: list[str] = []
    for w in wanted:
        if w == "theta_":
            out += names[:nvp]
        elif w == "beta_":
            out += names[nvp:]
        elif w in names:
            out.append(w)
        else:
            raise ValueError(f"unknown parameter {w!r}: parameters are {', '.join(names)} (or 'theta_', 'beta_')")
    return [n for n in names if n in set(out)]


def profile(
    fm,
    which=None,
    alphamax: float = 0.01,
    maxpts: int = 100,
    delta: float | None = None,
    delta_cutoff: float = 1 / 8,
    devtol: float = 1e-9,
    maxmult: float = 10,
    progress: bool | None = None,
    n_jobs: int = 1,
    client=None,
) -> LmerProfile:
    """``profile(fm)``: the likelihood profile of each parameter (all by default). The parameters
    are profiled independently: ``n_jobs > 1`` in forked processes, ``client`` (a
    ``dask.distributed.Client``; lmer fits) on its workers (pylme.rbase.parallel); the profile does not
    depend on either, and warnings raised while profiling are raised here as they would be."""
    if fm.family is not None and client is not None:
        raise ModelError("profile of a glmer fit runs here or in forked processes (n_jobs): its deviance "
                         "function does not travel to dask workers")
    setup = _glmm_setup(fm) if fm.family is not None else _lmm_setup(fm)
    names, nvp, lower, upper = setup.names, setup.nvp, setup.lower, setup.upper
    if not np.isclose(setup.dd(setup.opt[: len(lower)]), setup.base, rtol=1e-5, atol=0):
        raise ModelError("Profiling over both the residual variance and fixed effects is not numerically "
                         "consistent with profiling over the fixed effects only")
    chosen = names if which is None else select_parameters(which, names, nvp)
    cutoff = float(np.sqrt(stats.chi2.ppf(1 - alphamax, len(names))))
    walk = _Walk(maxpts, cutoff, delta if delta is not None else cutoff * delta_cutoff, maxmult)
    done = {}
    try:
        for name, frame, caught in run_tasks(_profile_one, (setup, walk, devtol), chosen, client=client,
                                             n_jobs=n_jobs, progress=progress, desc="profile"):
            done[name] = frame
            for category, message in caught:
                warnings.warn(message, category, stacklevel=3)
    finally:
        _restore(fm)
    forward, backward = {}, {}
    for name in chosen:
        forward[name], backward[name] = _splines(done[name], name)
    frame = pd.concat([done[name] for name in chosen], ignore_index=True)
    return LmerProfile(
        frame=frame,
        forward=forward,
        backward=backward,
        lower={n: lower[i] for i, n in enumerate(names[:nvp]) if n in chosen},
        upper={n: upper[i] for i, n in enumerate(names[:nvp]) if n in chosen},
    )


def _restore(fm) -> None:
    """A glmer fit's deviance function left at the fit's estimates (its factor is lme4's L)."""
    if fm.family is not None:
        fm.devfun(fm.opt.par)


def _profile_one(shared: tuple, name: str) -> tuple[str, pd.DataFrame, list]:
    """The profile of one parameter (its frame) and the warnings raised making it (category, text)."""
    setup, walk, devtol = shared
    w = setup.names.index(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if w < len(setup.lower):
            rows = _profile_section(setup, w, walk, devtol)
        else:
            rows = _profile_fixed(setup.fit, w - setup.nvp, setup.opt, setup.base, walk)
    return name, _tidy(rows, setup.names, w), [(c.category, str(c.message)) for c in caught]


def _bounds(theta_lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on the sd/cor scale: sd >= 0, -1 <= cor <= 1, sigma >= 0."""
    lower = np.append(np.maximum(theta_lower, -1.0), 0.0)
    upper = np.append(np.where(theta_lower == 0, np.inf, 1.0), np.inf)
    return lower, upper


@dataclass
class _Walk:
    """lme4's stepping rule along one parameter (fillmat and nextpar)."""

    maxpts: int
    cutoff: float
    delta: float
    maxmult: float

    def fill(self, mat: np.ndarray, col: int, lowcut: float, upcut: float, zetafun) -> np.ndarray:
        """Extend rows 0-1 of ``mat`` (the estimate and a first step, in either order) until
        |zeta| passes the cutoff, a bound is reached, or the matrix is full."""
        i = 1
        while (i + 1 < len(mat) and lowcut < mat[i, col] < upcut
               and (np.isnan(mat[i, 0]) or abs(mat[i, 0]) <= self.cutoff)):
            mat[i + 1] = zetafun(self.next_value(mat, col, i, lowcut, upcut), mat[i])
            i += 1
        return mat

    def next_value(self, mat: np.ndarray, col: int, r: int, lowcut: float, upcut: float,
                   minstep: float = 1e-6) -> float:
        num = mat[r, col] - mat[r - 1, col]
        denom = mat[r, 0] - mat[r - 1, 0]
        if np.isnan(denom) or denom == 0:
            warnings.warn("Last two rows have identical or NA .zeta values: using minstep", PylmeWarning,
                          stacklevel=5)
            step = minstep
        else:
            step = self.delta * num / denom
            if step < 0:
                warnings.warn("unexpected decrease in profile: using minstep", PylmeWarning, stacklevel=5)
                step = minstep
            elif abs(step) > abs(self.maxmult * num):
                step = np.sign(step) * abs(self.maxmult * num)
        return float(min(upcut, max(lowcut, mat[r, col] + np.sign(num) * step)))


def _start_rows(walk: _Walk, opt: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """lme4's two walks: upward (estimate, then the first step) and downward (the reverse)."""
    res = np.tile(np.concatenate([[0.0], opt]), (walk.maxpts, 1))
    up, down = res.copy(), res.copy()
    up[1] = down[0] = first
    return up, down


def _profile_section(setup: _Setup, w: int, walk: _Walk, devtol: float) -> np.ndarray:
    """Rows (zeta, parameters) along parameter ``w`` of ``setup.dd`` (a variance parameter: sd,
    correlation or sigma; for a glmer fit also a fixed effect), minimising over the others."""
    dd, opt, base, lower, upper = setup.dd, setup.opt, setup.base, setup.lower, setup.upper
    nvp = len(lower)
    others = np.arange(nvp) != w
    pw = opt[w]

    def zeta(value: float, prev_row: np.ndarray) -> np.ndarray:
        fn = _Section(dd, w, value)
        start = prev_row[1 : nvp + 1][others]
        try:
            res = optwrap(fn, start, lower[others], setup.opt_ctrl, keep_log=False, upper=upper[others])
            par, fval = _finished(fn, res.par, res.fval, lower[others], upper[others], setup.polish)
            if setup.polish:
                fval = fn(par)  # dd.beta (in the row) is set by the last evaluation
            devdiff = fval - base
        except (ValueError, ArithmeticError, np.linalg.LinAlgError, PirlsError):  # R's tryCatch: an NA row
            devdiff, par = np.nan, np.full(nvp - 1, np.nan)
        if np.isnan(devdiff):
            warnings.warn("NAs detected in profiling", PylmeWarning, stacklevel=4)
        elif devdiff < -devtol:
            raise ModelError("profiling detected new, lower deviance: the fit is not at the optimum; "
                             "refit with a stricter optimiser tolerance")
        elif devdiff < 0:
            warnings.warn(f"slightly lower deviances (diff={devdiff:g}) detected", PylmeWarning, stacklevel=4)
        pars = np.empty(nvp)
        pars[w], pars[others] = value, par
        return np.concatenate([[np.sign(value - pw) * np.sqrt(max(0.0, devdiff))], pars, dd.tail()])

    first = zeta(0.001 if pw == 0 else pw * 1.01, np.concatenate([[0.0], opt]))
    up, down = _start_rows(walk, opt, first)
    up = walk.fill(up, w + 1, lower[w], upper[w], zeta)
    down = walk.fill(down, w + 1, lower[w], upper[w], zeta) if pw > lower[w] else down
    return np.vstack([up, down])


def _profile_fixed(fm_ml, j: int, opt: np.ndarray, base: float, walk: _Walk) -> np.ndarray:
    """Rows (zeta, parameters) along fixed effect ``j``: its column moved into the offset."""
    lmod, objective = fm_ml.lmod, fm_ml.objective
    X = lmod.X
    Xj = X[:, j]
    dropped = CholmodObjective(objective.design.with_X(np.delete(X, j, axis=1)), objective.resp.with_REML(False))
    ncs = [t.nc for t in lmod.reTrms.terms]
    est = opt[len(fm_ml.theta) + 1 + j]
    std = float(np.sqrt(fm_ml.vcov().to_numpy()[j, j]))

    def zeta(value: float, prev_row: np.ndarray | None = None) -> np.ndarray:
        fixed = dropped.with_response(dropped.resp.with_y(lmod.y - Xj * value))
        res = optwrap(fixed, fm_ml.theta, lmod.reTrms.lower, fm_ml.control.optCtrl, keep_log=False)
        par, fval = _finished(fixed, res.par, res.fval, lmod.reTrms.lower, None, fm_ml.control.polish)
        st = fixed.pls_state(par)
        sigma = np.sqrt(st.pwrss / fixed.design.n)
        with np.errstate(invalid="ignore"):
            z = np.sign(value - est) * np.sqrt(fval - base)
        return np.concatenate([[z], theta_to_sdcor(par, ncs, sigma), np.insert(st.beta, j, value)])

    up, down = _start_rows(walk, opt, zeta(est + walk.delta * std))
    col = len(fm_ml.theta) + 2 + j
    return np.vstack([walk.fill(up, col, -np.inf, np.inf, zeta), walk.fill(down, col, -np.inf, np.inf, zeta)])


class _Section:
    """The ML deviance with parameter ``w`` held at ``value``, as a function of the others: what a
    profile point's inner fit minimises (with the calls pylme.fitting.polish reads of an objective)."""

    has_gradient = False

    def __init__(self, dd: Devfun2, w: int, value: float):
        self.dd, self.w, self.value = dd, w, value

    def __call__(self, x: np.ndarray) -> float:
        pars = np.insert(np.asarray(x, dtype=float), self.w, self.value)
        return self.dd(pars)

    def many(self, points: np.ndarray) -> np.ndarray:
        """The deviance at each row of ``points``, one by one."""
        return np.array([self(x) for x in points])


def _finished(fn, par: np.ndarray, fval: float, lower: np.ndarray, upper: np.ndarray | None,
              finish: bool) -> tuple[np.ndarray, float]:
    """A profile point's inner fit finished at its optimum (pylme.fitting.polish), unless
    ``lmerControl(polish=False)``: an inner fit that stops early moves zeta up."""
    if not finish:
        return par, fval
    theta, f, _, _ = polish(fn, par, fval, lower=lower, upper=upper)
    return theta, f


def _tidy(rows: np.ndarray, names: list[str], w: int) -> pd.DataFrame:
    """Distinct rows sorted by the profiled parameter, with ``.par`` and ``.focal`` columns."""
    _, first = np.unique(rows, axis=0, return_index=True)
    rows = rows[np.sort(first)]
    rows = rows[np.argsort(rows[:, w + 1], kind="stable")]
    frame = pd.DataFrame(rows, columns=[".zeta"] + names)
    frame[".par"] = names[w]
    frame[".focal"] = frame[names[w]]
    return frame


def _splines(frame: pd.DataFrame, name: str) -> tuple[PolySpline | None, PolySpline | None]:
    """The forward spline (zeta of the parameter) and its inverse; None where R's fails."""
    ok = frame[".zeta"].notna()
    try:
        fwd = interp_spline(frame.loc[ok, name].to_numpy(), frame.loc[ok, ".zeta"].to_numpy())
    except ValueError:
        warnings.warn(f"non-monotonic profile for {name}", PylmeWarning, stacklevel=3)
        return None, None
    try:
        return fwd, back_spline(fwd)
    except ValueError:
        warnings.warn(f"non-monotonic profile for {name}", PylmeWarning, stacklevel=3)
        return fwd, None
