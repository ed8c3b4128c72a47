"""Penalized least squares: lme4's profiled deviance and REML criterion as functions of theta.

For a given theta, with ``LtZt = Lambdat Zt`` (weights applied):
``L L' = P (LtZt LtZt' + I) P'`` by CHOLMOD (symbolic analysis once, numeric
refactorisation in place per theta), ``RZX = L^-1 P Lambdat Zt X``,
``RX' RX = X'X - RZX' RZX``, then beta and the spherical random effects u solve the
penalized least-squares problem, ``pwrss = |W^1/2 (y - offset - X beta - Z Lambda u)|^2 + |u|^2``, and

    ML:    ldL2 - ldW         + n   (1 + log(2 pi pwrss / n))
    REML:  ldL2 - ldW + ldRX2 + n-p (1 + log(2 pi pwrss / (n-p)))

exactly as lme4's ``lmer_dev``/``lmerResp::Laplace`` compute them. No dense n x q or
q x q matrix is formed.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solve_triangular
from sksparse.cholmod import analyze_AAt

from .errors import ModelError
from .reterms import ReTrms


@dataclass
class PLSState:
    """The solution of the penalized least-squares problem at one theta."""

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    b: np.ndarray  # Lambda u: the random effects on their own scale
    eta: np.ndarray  # X beta + Z b (no offset)
    wrss: float
    ussq: float
    ldL2: float
    ldRX2: float
    RX: np.ndarray  # upper triangular, RX'RX = X'X - RZX'RZX
    RZX: np.ndarray

    @property
    def pwrss(self) -> float:
        return self.wrss + self.ussq


class LmerDevfun:
    """The objective lme4's ``mkLmerDevfun`` returns: theta -> REML criterion or ML deviance."""

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        reTrms: ReTrms,
        REML: bool = True,
        weights: np.ndarray | None = None,
        offset: np.ndarray | None = None,
    ):
        n = len(y)
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
        self.sqrtw = np.sqrt(w)
        self.ldW = float(np.sum(np.log(w)))
        self.offset = np.zeros(n) if offset is None else np.asarray(offset, dtype=float)
        self.X, self.y, self.reTrms, self.REML = X, y, reTrms, REML
        self.n, self.p = X.shape
        self.Xw = X * self.sqrtw[:, None]
        self.yw = (y - self.offset) * self.sqrtw
        self.Ztw = (reTrms.Zt @ sp.diags(self.sqrtw)).tocsc()
        self.ZtX = np.asarray(self.Ztw @ self.Xw)
        self.Zty = self.Ztw @ self.yw
        self.XtX = self.Xw.T @ self.Xw
        self.Xty = self.Xw.T @ self.yw
        self.LtZt, self.theta_map = lambdat_zt_map(reTrms.Lambdat, reTrms.Lind, self.Ztw)
        self.LtZt.data = self.theta_map @ reTrms.theta0
        self.factor = analyze_AAt(self.LtZt)
        self.nevals = 0

    def with_response(self, y: np.ndarray) -> "LmerDevfun":
        """The same objective for a new response: only y's cross-products are recomputed;
        X'X, Z'X, the structure of Lambdat Zt and CHOLMOD's symbolic analysis are reused."""
        new = copy.copy(self)
        new.y = np.asarray(y, dtype=float)
        new.yw = (new.y - self.offset) * self.sqrtw
        new.Zty = self.Ztw @ new.yw
        new.Xty = self.Xw.T @ new.yw
        new.LtZt = self.LtZt.copy()
        new.factor = self.factor.copy()
        new.nevals = 0
        return new

    @property
    def lower(self) -> np.ndarray:
        return self.reTrms.lower

    def __call__(self, theta: np.ndarray) -> float:
        return self.criterion(self.solve(theta))

    def criterion(self, st: PLSState) -> float:
        """REML criterion (REML fits) or deviance (ML fits) from a PLS solution."""
        return self.deviance_from(st, self.REML)

    def deviance_from(self, st: PLSState, REML: bool) -> float:
        """lme4's ``Laplace``: either criterion from the same PLS solution (devCrit)."""
        lnum = np.log(2.0 * np.pi * st.pwrss)
        if not REML:
            return st.ldL2 - self.ldW + self.n * (1.0 + lnum - np.log(self.n))
        nmp = self.n - self.p
        return st.ldL2 - self.ldW + st.ldRX2 + nmp * (1.0 + lnum - np.log(nmp))

    def update_factor(self, theta: np.ndarray) -> None:
        """Numeric refactorisation of L at theta (the symbolic analysis is reused)."""
        theta = np.asarray(theta, dtype=float)
        self.LtZt.data = self.theta_map @ theta
        self.factor.cholesky_AAt_inplace(self.LtZt, beta=1.0)

    def solve(self, theta: np.ndarray) -> PLSState:
        """Solve the penalized least-squares problem at theta."""
        theta = np.array(theta, dtype=float)
        self.nevals += 1
        self.update_factor(theta)
        F = self.factor
        Lambdat = self.reTrms.Lambdat_at(theta)
        cu = F.solve_L(F.apply_P(Lambdat @ self.Zty), use_LDLt_decomposition=False)
        if self.p:
            RZX = F.solve_L(F.apply_P(np.asarray(Lambdat @ self.ZtX)), use_LDLt_decomposition=False)
            RZX = RZX.reshape(-1, self.p)
        else:  # no fixed effects
            RZX = np.zeros((len(cu), 0))
        VtV = self.XtX - RZX.T @ RZX
        try:
            RX = np.linalg.cholesky(VtV).T if self.p else np.zeros((0, 0))
        except np.linalg.LinAlgError as exc:
            raise ModelError("Downdated VtV is not positive definite") from exc
        rhs = self.Xty - RZX.T @ cu
        beta = _backsolve(RX, _forwardsolve(RX.T, rhs)) if self.p else np.zeros(0)
        u = F.apply_Pt(F.solve_Lt(cu - RZX @ beta, use_LDLt_decomposition=False))
        b = Lambdat.T @ u
        eta = self.X @ beta + self.reTrms.Zt.T @ b
        wres = self.sqrtw * (self.y - self.offset - eta)
        return PLSState(
            theta=theta,
            beta=beta,
            u=u,
            b=b,
            eta=eta,
            wrss=float(wres @ wres),
            ussq=float(u @ u),
            ldL2=float(F.logdet()),
            ldRX2=float(2.0 * np.sum(np.log(np.diag(RX)))) if self.p else 0.0,
            RX=RX,
            RZX=RZX,
        )

    def cond_var_blocks(self, theta: np.ndarray, columns: list[np.ndarray], chunk: int = 2048) -> np.ndarray:
        """Blocks of ``Lambda (Lambda'Z'ZLambda + I)^-1 Lambda'`` for groups of random effects.

        ``columns`` lists, per level, the indices into b whose joint block is wanted (all
        of the same length k); returns an array (levels, k, k). Unscaled (multiply by sigma^2).
        """
        self.update_factor(theta)
        F = self.factor
        Lambdat = self.reTrms.Lambdat_at(theta).tocsc()
        idx = np.asarray(columns)
        nlev, k = idx.shape
        out = np.empty((nlev, k, k))
        per = max(1, chunk // max(k, 1))
        for start in range(0, nlev, per):
            block = idx[start : start + per]
            rhs = Lambdat[:, block.ravel()].toarray()
            Y = F.solve_L(F.apply_P(rhs), use_LDLt_decomposition=False).reshape(-1, len(block), k)
            out[start : start + len(block)] = np.einsum("qli,qlj->lij", Y, Y)
        return out


def lambdat_zt_map(Lambdat: sp.csc_matrix, Lind: np.ndarray, Zt: sp.csc_matrix) -> tuple[sp.csc_matrix, sp.csr_matrix]:
    """The structure of ``Lambdat Zt`` and the linear map theta -> its stored values.

    The structure is fixed whatever theta is (no entry is dropped when a theta is 0),
    which is what lets CHOLMOD's symbolic analysis be done once.
    """
    q, n = Zt.shape
    lam = Lambdat.tocoo()
    zr = Zt.tocsr()
    counts = np.diff(zr.indptr)[lam.col]
    rep = np.repeat(np.arange(lam.nnz), counts)
    starts = np.repeat(zr.indptr[lam.col], counts)
    within = np.arange(rep.size) - np.repeat(np.cumsum(counts) - counts, counts)
    zidx = starts + within
    rows, cols = lam.row[rep], zr.indices[zidx]
    k = Lind[rep]  # tocoo() of a CSC matrix keeps the storage order Lind refers to
    key = cols.astype(np.int64) * q + rows
    uniq, out_idx = np.unique(key, return_inverse=True)
    theta_map = sp.csr_matrix((zr.data[zidx], (out_idx, k)), shape=(uniq.size, int(Lind.max()) + 1))
    indptr = np.searchsorted(uniq // q, np.arange(n + 1))
    LtZt = sp.csc_matrix((np.zeros(uniq.size), (uniq % q).astype(np.int32), indptr), shape=(q, n))
    return LtZt, theta_map


def _forwardsolve(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    return solve_triangular(L, b, lower=True)


def _backsolve(R: np.ndarray, b: np.ndarray) -> np.ndarray:
    return solve_triangular(R, b, lower=False)
