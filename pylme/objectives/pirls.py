"""Penalized iteratively reweighted least squares (PIRLS): lme4's glmer deviance as a function
of (theta, beta), by the algorithm of lme4 1.1-31's ``pwrssUpdate``/``glmerLaplace``/``glmerAGQ``.

For the current mean mu, each iteration forms the working weights ``sqrtW = mu_eta sqrt(w / V(mu))``
and the weighted working response ``sqrtW ((eta - offset) + (y - mu) / mu_eta)``, refactors
``L L' = P (Lambdat Zt W Z Lambda + I) P'`` (CHOLMOD; the symbolic analysis of ``Lambdat Zt`` is
done once, as W only rescales its columns), solves the penalized weighted least-squares problem
for u (and beta when nAGQ = 0) and updates mu. It stops when the penalized deviance
``sum(dev.resids) + |u|^2`` changes by less than ``tolPwrss`` relative, halving the step (at most
20 times) when the deviance went up, and fails with lme4's messages otherwise. The Laplace
deviance is then ``ldL2 + |u|^2 + aic(y, n, mu, w, dev)``, with L the last factor (the weights of
the mean before the last update), and nAGQ > 1 adds lme4's adaptive Gauss-Hermite correction.

The evaluations carry state as lme4's do: each starts from the linear predictor ``lp0`` of the
last fit of the previous stage, and a step halving on the first iteration moves back towards the
previous evaluation's u.
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from sksparse.cholmod import analyze_AAt

from ..description.family import Family
from ..description.reterms import ReTrms
from ..errors import ModelError
from .design import SparseProduct
from .pls import cond_var_blocks, lambdat_zt_map

MAX_STEP_HALVINGS = 20


class PirlsError(ModelError):
    """PIRLS could not reduce the penalized deviance (lme4's pwrssUpdate errors)."""


@dataclass
class GlmResponse:
    """lme4's glmResp: the response, binomial totals, prior weights, offset and the current mean."""

    family: Family
    y: np.ndarray
    n: np.ndarray
    weights: np.ndarray
    offset: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    _aic: object = field(default=None, init=False, repr=False)  # family.aic_for(y, n, weights), made once
    _dev: object = field(default=None, init=False, repr=False)  # family.dev_for(y, weights), made once
    _cache: dict = field(default_factory=dict, init=False, repr=False)  # what depends on eta and mu alone

    def update_mu(self, gamma: np.ndarray) -> None:
        """eta = offset + gamma, mu = linkinv(eta) (and mu_eta with it where the link shares the work)."""
        self.eta = self.offset + gamma
        if self.family.link.inv_mu_eta is None:
            self.mu = self.family.linkinv(self.eta)
            self._cache = {}
        else:
            self.mu, mu_eta = self.family.link.inv_mu_eta(self.eta)
            self._cache = {"mu_eta": mu_eta}

    def snapshot(self) -> tuple:
        """eta, mu and what was and will be derived from them (``restore`` shares it)."""
        return self.eta, self.mu, self._cache

    def restore(self, snap: tuple) -> None:
        self.eta, self.mu, self._cache = snap

    def _cached(self, key: str, compute: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def mu_eta(self) -> np.ndarray:
        return self._cached("mu_eta", lambda: self.family.mu_eta(self.eta))

    def sqrt_wrk_wt(self) -> np.ndarray:
        """Square roots of the working weights, mu_eta sqrt(w / V(mu))."""
        return self._cached("sqrtW", lambda: self.mu_eta() * np.sqrt(self.weights / self.family.variance(self.mu)))

    def wrk_resids(self) -> np.ndarray:
        return (self.y - self.mu) / self.mu_eta()

    def wrk_resp(self) -> np.ndarray:
        return (self.eta - self.offset) + self.wrk_resids()

    def dev_resid(self) -> np.ndarray:
        if self._dev is None:
            self._dev = self.family.dev_for(self.y, self.weights)
        return self._dev(self.mu)

    def res_dev(self) -> float:
        """The sum of the deviance residuals at the current mean (kept until mu changes)."""
        return self._cached("dev", lambda: float(np.sum(self.dev_resid())))

    def aic(self) -> float:
        if self._aic is None:
            self._aic = self.family.aic_for(self.y, self.n, self.weights)
        return self._aic(self.mu, self.res_dev())

    def pearson(self, mu: np.ndarray | None = None) -> np.ndarray:
        """sqrt(w / V(mu)) (y - mu) at the current mean or ``mu``: lme4's wtres after updateWts."""
        mu = self.mu if mu is None else mu
        return np.sqrt(self.weights / self.family.variance(mu)) * (self.y - mu)


@dataclass
class PirlsState:
    """The solution at one (theta, beta): what lme4's merPredD holds after an evaluation."""

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    b: np.ndarray
    eta: np.ndarray  # the linear predictor without the model's offset
    mu: np.ndarray
    sqrtW: np.ndarray  # the working weights of the last factorisation
    ldL2: float
    _x_parts: Callable[[], tuple[np.ndarray, np.ndarray]] | tuple[np.ndarray, np.ndarray]  # (RZX, RX), see below
    _wrss: Callable[[], float] | float  # wrss, computed on first use
    ussq: float
    devresid: float
    value: float  # the deviance returned by the evaluation

    @property
    def wrss(self) -> float:
        """The sum of squared Pearson residuals (lme4's wrss after updateWts), computed on first use:
        only the fit's last evaluation is asked for it."""
        if callable(self._wrss):
            self._wrss = self._wrss()
        return self._wrss

    @property
    def pwrss(self) -> float:
        return self.wrss + self.ussq

    @property
    def RZX(self) -> np.ndarray:
        return self._x()[0]

    @property
    def RX(self) -> np.ndarray:
        return self._x()[1]

    @property
    def ldRX2(self) -> float:
        RX = self.RX
        return float(2.0 * np.log(np.abs(np.diag(RX))).sum()) if RX.size else 0.0

    def _x(self) -> tuple[np.ndarray, np.ndarray]:
        """RZX and RX, computed on first use: with beta outside PIRLS (nAGQ >= 1) no iteration
        needs them, and only the fit's last evaluation is ever asked for them."""
        if callable(self._x_parts):
            self._x_parts = self._x_parts()
        return self._x_parts


class WeightedPLS:
    """The weighted penalized least-squares system on lme4's design: ``Lambdat Zt`` with its
    structure and symbolic factorisation fixed, re-weighted per PIRLS iteration."""

    def __init__(self, X: np.ndarray, reTrms: ReTrms):
        self.X, self.reTrms = X, reTrms
        self.n, self.p = X.shape
        self.LtZt, self.values = lambdat_zt_map(reTrms.lam, reTrms.Zt)
        self.entry_col = np.repeat(np.arange(self.n), np.diff(self.LtZt.indptr))
        self._factor = None  # CHOLMOD's analysis of LtZt LtZt', made on first use (``factor``)
        self.lambdat = SparseProduct.of_csc(reTrms.Lambdat)
        self.zt = SparseProduct.of_csc(reTrms.Zt)
        self.lt = SparseProduct.of_csc(self.LtZt)
        self.theta = reTrms.theta0.copy()
        self._lam_values = reTrms.lam.values(self.theta)
        self._ltv: np.ndarray | None = None  # Lambdat Zt's values at theta (``lt_values``)
        self.sqrtW = np.ones(self.n)
        self.version = 0  # counts factorisations (x_parts_later knows whether L is still its own)
        self._x: tuple[np.ndarray, np.ndarray] | None = None  # RZX, RX of the current L

    @property
    def factor(self):
        """CHOLMOD's factor of ``Lambdat Zt W Z Lambda + I`` (symbolic analysis on first use: the
        pattern is fixed, as W only rescales the columns of ``Lambdat Zt``)."""
        if self._factor is None:
            pattern = self.LtZt.copy()
            pattern.data = np.ones_like(pattern.data)
            self._factor = analyze_AAt(pattern)
        return self._factor

    def set_theta(self, theta: np.ndarray) -> None:
        self.theta = np.array(theta, dtype=float)
        self._lam_values = self.reTrms.lam.values(self.theta)
        self._ltv = None

    @property
    def lt_values(self) -> np.ndarray:
        """``Lambdat Zt``'s values at theta (made when first asked for: the two-block factor needs
        them only for CHOLMOD's factor)."""
        if self._ltv is None:
            self._ltv = self.values(self.theta)
        return self._ltv

    def factorize(self, sqrtW: np.ndarray, with_x: bool = True) -> None:
        """L for ``Lambdat Zt W Z Lambda + I`` (lme4's updateDecomp), and with ``with_x`` the weighted
        X's RZX and RX (updateXwts); without it they are computed when first asked for."""
        self.LtZt.data = self.lt_values * sqrtW[self.entry_col]
        self.factor.cholesky_AAt_inplace(self.LtZt, beta=1.0)
        self.sqrtW = sqrtW
        self.version += 1
        self._x = None
        if with_x:
            self.x_parts()

    def x_parts(self) -> tuple[np.ndarray, np.ndarray]:
        """RZX = L^-1 P Lambdat Zt W^1/2 X and RX (RX'RX = X'WX - RZX'RZX) of the current L."""
        if self._x is None:
            V = self.X * self.sqrtW[:, None]
            if self.p:
                RZX = self.factor.solve_L(self.factor.apply_P(self.LtZt @ V), use_LDLt_decomposition=False)
                VtV = V.T @ V - RZX.T @ RZX
                try:
                    RX = np.linalg.cholesky(VtV).T
                except np.linalg.LinAlgError as exc:
                    raise ModelError("Downdated VtV is not positive definite") from exc
                self._x = (RZX, RX)
            else:
                self._x = (np.zeros((self.LtZt.shape[0], 0)), np.zeros((0, 0)))
        return self._x

    def x_parts_later(self) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        """``x_parts`` of the current L as a function to call later: while L is unchanged it reads
        it; after other factorisations it refactors at this one's theta and weights, and back."""
        version, theta, sqrtW = self.version, self.theta.copy(), self.sqrtW

        def parts() -> tuple[np.ndarray, np.ndarray]:
            if self.version == version:
                return self.x_parts()
            now = (self.theta, self.sqrtW, self._x)
            self.set_theta(theta)
            self.factorize(sqrtW)
            out = self._x
            self.set_theta(now[0])
            self.factorize(now[1], with_x=False)
            self._x = now[2]
            return out

        return parts

    @property
    def RZX(self) -> np.ndarray:
        return self.x_parts()[0]

    @property
    def RX(self) -> np.ndarray:
        return self.x_parts()[1]

    def solve(self, wz: np.ndarray, u_only: bool) -> tuple[np.ndarray, np.ndarray]:
        """(u, beta) of the weighted problem for the weighted working response ``wz``
        (beta = 0 when ``u_only``): lme4's solveU / solve with u0 = 0."""
        F = self.factor
        cu = F.solve_L(F.apply_P(self.lt(wz, self.LtZt.data)), use_LDLt_decomposition=False)
        cu, beta = self.beta_step(cu, wz, u_only, self.x_parts)
        u = F.apply_Pt(F.solve_Lt(cu, use_LDLt_decomposition=False))
        return u, beta

    def beta_step(self, cu: np.ndarray, wz: np.ndarray, u_only: bool,
                  parts: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """lme4's solve between the two triangular solves, for either factor (``parts`` gives its
        RZX and RX): beta from ``RX'RX beta = X'W^1/2 wz - RZX' cu`` and cu less ``RZX beta``;
        beta 0 and cu as it is with ``u_only`` (beta outside PIRLS) or no fixed effects."""
        if u_only or not self.p:
            return cu, np.zeros(self.p)
        RZX, RX = parts()
        rhs = (self.X * self.sqrtW[:, None]).T @ wz - RZX.T @ cu
        beta = np.linalg.solve(RX, np.linalg.solve(RX.T, rhs))
        return cu - RZX @ beta, beta

    def x_beta(self, beta: np.ndarray) -> np.ndarray | float:
        """X beta (0 without fixed effects), BLAS on one thread (``one_blas_thread``)."""
        if not beta.size:
            return 0.0
        with one_blas_thread():
            return self.X @ beta

    def b(self, u: np.ndarray) -> np.ndarray:
        return self.lambdat.transposed(u, self._lam_values)

    def lin_pred(self, u: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """X beta + Z Lambda u (X beta skipped when beta is 0, as inside PIRLS with beta outside)."""
        zb = self.zt.transposed(self.b(u))
        return self.X @ beta + zb if beta.any() else zb

    @property
    def ldL2(self) -> float:
        return float(self.factor.logdet())

    @property
    def ldRX2(self) -> float:
        return float(2.0 * np.log(np.abs(np.diag(self.RX))).sum()) if self.p else 0.0

    def diag_LLt(self) -> np.ndarray:
        """The diagonal of L L' in u's order (a single scalar term: L is diagonal)."""
        return 1.0 + np.asarray(self.LtZt.multiply(self.LtZt).sum(axis=1)).ravel()

    def cond_var_blocks(self, columns: list[np.ndarray], chunk: int = 2048) -> np.ndarray:
        """Blocks of ``Lambda (L L')^-1 Lambda'`` (the current factor) for groups of random effects,
        an array (levels, k, k); unscaled."""
        return cond_var_blocks(self.factor, self.reTrms.lam.Lambdat(self.theta).tocsc(), columns, chunk)


@functools.cache
def _blas_controller():
    """threadpoolctl's controller of the BLAS libraries loaded (numpy's, scipy's), found once; None
    in an environment made before threadpoolctl became a dependency (BLAS then runs as configured,
    e.g. by OPENBLAS_NUM_THREADS)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def one_blas_thread():
    """A context in which BLAS runs on one thread. PIRLS's dense products are small (n x p with p
    a handful, the two-block factor's block 2 of order q2), and OpenBLAS's threads on them cost
    more than they save; on a machine shared with other work they spin against it (VerbAgg's fit
    with the two-block factor 3.4 s against 1.9 s on one thread, grouseticks' 226 s against 2.5 s,
    2026-12-03, 2 cores at load 6-9). Entering and leaving costs about 15 microseconds."""
    controller = _blas_controller()
    return contextlib.nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


def gh_rule(k: int) -> np.ndarray:
    """lme4's GHrule(k): Gauss-Hermite knots z, weights w (summing to 1) for the standard normal,
    and log dnorm(z), as a (k, 3) array; (0, 3) for k = 0."""
    if k == 0:
        return np.zeros((0, 3))
    z, w = np.polynomial.hermite_e.hermegauss(k)
    if k % 2:
        z[k // 2] = 0.0
    return np.column_stack([z, w / np.sqrt(2.0 * np.pi), -0.5 * z * z - 0.5 * np.log(2.0 * np.pi)])


class Pirls:
    """PIRLS on one model: the response and the weighted system, with lme4's state between
    evaluations (u and beta of the last one, the starting linear predictor lp0)."""

    def __init__(self, pls: WeightedPLS, resp: GlmResponse, tol: float = 1e-7, maxit: int = 100):
        self.pls, self.resp, self.tol, self.maxit = pls, resp, tol, maxit
        self.base_offset = resp.offset.copy()
        self.u = np.zeros(pls.reTrms.Zt.shape[0])
        self.beta = np.zeros(pls.p)
        self.lp0 = resp.eta - resp.offset
        self._start: tuple | None = None  # (lp0, the response's snapshot at it)

    def start(self) -> None:
        """The mean at lp0 with the base offset, where each evaluation starts (lme4's
        ``updateMu(lp0)``): computed once per lp0 (which changes only between stages), with what
        PIRLS derives from it (the first working weights)."""
        resp = self.resp
        resp.offset = self.base_offset
        if self._start is not None and self._start[0] is self.lp0:
            resp.restore(self._start[1])
        else:
            resp.update_mu(self.lp0)
            self._start = (self.lp0, resp.snapshot())

    def _work_iteration(self, u_only: bool) -> float:
        sqrtW = self.resp.sqrt_wrk_wt()
        self.pls.factorize(sqrtW, with_x=not u_only)
        self.sqrtW = sqrtW
        self.u, self.beta = self.pls.solve(self.resp.wrk_resp() * sqrtW, u_only)
        self.resp.update_mu(self.pls.lin_pred(self.u, self.beta))
        return self.resp.res_dev() + float(self.u @ self.u)

    def update(self, u_only: bool) -> None:
        """lme4's pwrssUpdate: iterate to |d pdev / pdev| < tol, with step halving (BLAS on one
        thread, ``one_blas_thread``)."""
        with one_blas_thread():
            self._update(u_only)

    def _update(self, u_only: bool) -> None:
        oldpdev = np.finfo(float).max
        for _ in range(self.maxit):
            oldu, oldbeta = self.u.copy(), self.beta.copy()
            pdev = self._work_iteration(u_only)
            if abs((oldpdev - pdev) / pdev) < self.tol:
                return
            if np.isnan(pdev) or pdev > oldpdev:
                for _ in range(MAX_STEP_HALVINGS):
                    if not (np.isnan(pdev) or pdev > oldpdev):
                        break
                    self.u = (oldu + self.u) / 2.0
                    if not u_only:
                        self.beta = (oldbeta + self.beta) / 2.0
                    self.resp.update_mu(self.pls.lin_pred(self.u, self.beta))
                    pdev = self.resp.res_dev() + float(self.u @ self.u)
                if np.isnan(pdev):
                    raise PirlsError("PIRLS loop resulted in NaN value")
                if pdev - oldpdev > self.tol:
                    raise PirlsError("(maxstephalfit) PIRLS step-halvings failed to reduce deviance in pwrssUpdate")
            oldpdev = pdev
        raise PirlsError("pwrssUpdate did not converge in (maxit) iterations")

    def laplace(self) -> float:
        """lme4's glmResp::Laplace: ldL2 + |u|^2 + aic (the conditional -2 log-likelihood)."""
        return self.pls.ldL2 + float(self.u @ self.u) + self.resp.aic()

    def agq(self, rule: np.ndarray, codes: np.ndarray) -> float:
        """lme4's glmerAGQ for a single scalar term (after ``update(u_only=True)``): deviance
        residuals and |u|^2 per level, corrected by quadrature around the conditional modes."""
        q = self.u.size
        dev0 = self._devc(self.u, codes)
        sd = 1.0 / np.sqrt(self.pls.diag_LLt())
        mult = np.zeros(q)
        for z, w, ldnorm in rule:
            if z == 0:
                mult += w
                continue
            u = self.u + z * sd
            self.resp.update_mu(self.pls.lin_pred(u, self.beta))
            mult += np.exp(-0.5 * (self._devc(u, codes) - dev0) - ldnorm) * w / np.sqrt(2.0 * np.pi)
        self.resp.update_mu(self.pls.lin_pred(self.u, self.beta))
        return float(dev0.sum() + self.pls.ldL2 - 2.0 * np.log(np.prod(mult)))

    def _devc(self, u: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return u * u + np.bincount(codes, weights=self.resp.dev_resid(), minlength=u.size)

    def state(self, value: float) -> PirlsState:
        """The solution now (after an evaluation that returned ``value``). mu and sqrtW are the
        response's and the iteration's own arrays, not copies: PIRLS replaces them, never writes
        into them."""
        pls, resp = self.pls, self.resp
        mu = resp.mu

        def wrss() -> float:
            pearson = resp.pearson(mu)
            return float(pearson @ pearson)

        return PirlsState(
            theta=pls.theta.copy(), beta=self.beta.copy(), u=self.u.copy(), b=pls.b(self.u),
            eta=resp.eta - self.base_offset, mu=mu, sqrtW=self.sqrtW, ldL2=pls.ldL2,
            _x_parts=pls.x_parts_later(), _wrss=wrss,
            ussq=float(self.u @ self.u), devresid=resp.res_dev(), value=value)
