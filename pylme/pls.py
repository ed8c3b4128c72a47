"""Penalized least squares: lme4's profiled deviance and REML criterion as functions of theta.

For a given theta, with ``LtZt = Lambdat Zt`` (weights applied):
``L L' = P (LtZt LtZt' + I) P'`` by CHOLMOD (symbolic analysis once, numeric
refactorisation in place per theta), ``RZX = L^-1 P Lambdat Zt X``,
``RX' RX = X'X - RZX' RZX``, then beta and the spherical random effects u solve the
penalized least-squares problem, ``pwrss = |W^1/2 (y - offset - X beta - Z Lambda u)|^2 + |u|^2``, and

    ML:    ldL2 - ldW         + n   (1 + log(2 pi pwrss / n))
    REML:  ldL2 - ldW + ldRX2 + n-p (1 + log(2 pi pwrss / (n-p)))

exactly as lme4's ``lmer_dev``/``lmerResp::Laplace`` compute them. No dense n x q or
q x q matrix is formed. An evaluation makes the same floating-point operations, in the same
order, as those scipy expressions (sparse products summed in storage order by ``np.bincount``,
LAPACK's trtrs called directly), so BOBYQA's path is lme4's, at a third of scipy's per-call cost.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from sksparse.cholmod import analyze_AAt

from .errors import ModelError
from .reterms import ReTrms


class CriterionTerms(NamedTuple):
    """What ``LmerDevfun.deviance_from`` reads from a factorisation (floats, or arrays of them)."""

    ldL2: float | np.ndarray
    ldRX2: float | np.ndarray
    pwrss: float | np.ndarray


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
        self.Ztw = reTrms.Zt if weights is None else _scale_columns(reTrms.Zt, self.sqrtw)
        self.ZtX = np.asarray(self.Ztw @ self.Xw)
        self.Zty = self.Ztw @ self.yw
        self.XtX = self.Xw.T @ self.Xw
        self.Xty = self.Xw.T @ self.yw
        self.lambdat = SparseProduct.of_csc(reTrms.Lambdat)
        self.zt = SparseProduct.of_csc(reTrms.Zt)
        self._cholmod: tuple | None = None  # (LtZt, its values as a product with theta, factor)
        self.start = reTrms.theta0.copy()  # where the optimiser starts (mkLmerDevfun sets lme4's)
        self.nevals = 0

    def with_response(self, y: np.ndarray) -> "LmerDevfun":
        """The same objective for a new response: only y's cross-products are recomputed;
        X'X, Z'X, the structure of Lambdat Zt and CHOLMOD's symbolic analysis are reused."""
        new = copy.copy(self)
        new.y = np.asarray(y, dtype=float)
        new.yw = (new.y - self.offset) * self.sqrtw
        new.Zty = self.Ztw @ new.yw
        new.Xty = self.Xw.T @ new.yw
        if self._cholmod is not None:
            LtZt, values, factor = self._cholmod
            new._cholmod = (LtZt.copy(), values, factor.copy())
        new.nevals = 0
        return new

    def __getstate__(self) -> dict:
        """Pickled without CHOLMOD's factor (which cannot be), redone on first use where unpickled:
        a design sent to other processes (pylme.many, pylme.parallel)."""
        return {**self.__dict__, "_cholmod": None}

    @property
    def factor(self):
        """CHOLMOD's factor (symbolic analysis done on first use)."""
        return self._cholmod_parts()[2]

    def _cholmod_parts(self) -> tuple:
        if self._cholmod is None:
            LtZt, values = lambdat_zt_map(self.reTrms.Lambdat, self.reTrms.Lind, self.Ztw)
            LtZt.data = values(self.reTrms.theta0)
            self._cholmod = (LtZt, values, analyze_AAt(LtZt))
        return self._cholmod

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
        LtZt, values, factor = self._cholmod_parts()
        LtZt.data = values(np.asarray(theta, dtype=float))
        factor.cholesky_AAt_inplace(LtZt, beta=1.0)

    def solve(self, theta: np.ndarray) -> PLSState:
        """Solve the penalized least-squares problem at theta.

        The sparse products go through ``SparseProduct``, which sums in scipy's order, and the
        triangular solves through LAPACK's trtrs as scipy calls it: the arithmetic is that of
        the plain scipy expressions (and lme4's), without their per-call overhead."""
        theta = np.array(theta, dtype=float)
        self.nevals += 1
        LtZt, values, F = self._cholmod_parts()
        LtZt.data = values(theta)
        F.cholesky_AAt_inplace(LtZt, beta=1.0)
        lam = theta[self.reTrms.Lind]  # Lambdat's values
        cu = F.solve_L(F.apply_P(self.lambdat(self.Zty, lam)), use_LDLt_decomposition=False)
        if self.p:
            RZX = F.solve_L(F.apply_P(self.lambdat(self.ZtX, lam)), use_LDLt_decomposition=False)
            RZX = RZX.reshape(-1, self.p)
        else:  # no fixed effects
            RZX = np.zeros((len(cu), 0))
        VtV = self.XtX - RZX.T @ RZX
        try:
            RX = np.linalg.cholesky(VtV).T if self.p else np.zeros((0, 0))
        except np.linalg.LinAlgError as exc:
            raise ModelError("Downdated VtV is not positive definite") from exc
        rhs = self.Xty - RZX.T @ cu
        beta = _triangular_solve(RX, _triangular_solve(RX.T, rhs, lower=True), lower=False) if self.p else np.zeros(0)
        u = F.apply_Pt(F.solve_Lt(cu - RZX @ beta, use_LDLt_decomposition=False))
        b = self.lambdat.transposed(u, lam)
        eta = self.X @ beta + self.zt.transposed(b)
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
            ldRX2=float(2.0 * np.log(RX.diagonal()).sum()) if self.p else 0.0,
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


def lambdat_zt_map(Lambdat: sp.csc_matrix, Lind: np.ndarray, Zt: sp.csc_matrix) -> tuple[sp.csc_matrix, "SparseProduct"]:
    """The structure of ``Lambdat Zt`` and the linear map theta -> its stored values.

    The structure is fixed whatever theta is (no entry is dropped when a theta is 0),
    which is what lets CHOLMOD's symbolic analysis be done once. The map's entries are in
    row order, by theta index within a row (the canonical order of a CSR matrix).
    """
    q, n = Zt.shape
    lam_row, lam_col = Lambdat.indices, np.repeat(np.arange(q), np.diff(Lambdat.indptr))  # storage order
    # Zt by rows (a stable sort of its CSC entries by row keeps the columns in order)
    zt_cols = np.repeat(np.arange(n), np.diff(Zt.indptr))
    by_row = np.argsort(Zt.indices, kind="stable")
    zr_indptr = np.concatenate([[0], np.cumsum(np.bincount(Zt.indices, minlength=q))])
    counts = np.diff(zr_indptr)[lam_col]
    rep = np.repeat(np.arange(lam_row.size), counts)
    starts = np.repeat(zr_indptr[lam_col], counts)
    within = np.arange(rep.size) - np.repeat(np.cumsum(counts) - counts, counts)
    zidx = by_row[starts + within]  # the Zt entries (CSC positions) multiplying each Lambdat entry
    rows, cols = lam_row[rep], zt_cols[zidx]
    k = Lind[rep]
    key = cols.astype(np.int64) * q + rows
    uniq, out_idx = np.unique(key, return_inverse=True)
    order = np.lexsort((k, out_idx))
    values = SparseProduct(out_idx[order], k[order], Zt.data[zidx][order], (uniq.size, int(Lind.max()) + 1))
    indptr = np.searchsorted(uniq // q, np.arange(n + 1))
    LtZt = sp.csc_matrix((np.zeros(uniq.size), (uniq % q).astype(np.int32), indptr), shape=(q, n))
    return LtZt, values


def _scale_columns(A: sp.csc_matrix, s: np.ndarray) -> sp.csc_matrix:
    """``A diag(s)`` for a CSC matrix."""
    out = A.copy()
    out.data *= np.repeat(s, np.diff(A.indptr))
    return out


class SparseProduct:
    """``A @ x`` and ``A.T @ x`` for a sparse matrix of fixed structure, whose values may be
    given per call, summed entry by entry in storage order (``np.bincount`` adds its weights
    in order): the same sums, in the same order, as scipy's csr/csc matvec, without scipy's
    per-call checks."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, data: np.ndarray, shape: tuple[int, int]):
        self.rows, self.cols, self.data, self.shape = rows, cols, data, shape

    @classmethod
    def of_csc(cls, A: sp.csc_matrix) -> "SparseProduct":
        return cls(A.indices, np.repeat(np.arange(A.shape[1]), np.diff(A.indptr)), A.data, A.shape)

    def __call__(self, x: np.ndarray, data: np.ndarray | None = None) -> np.ndarray:
        """``A @ x`` (x a vector, or a matrix by columns), with ``data`` as A's values if given."""
        data = self.data if data is None else data
        m = self.shape[0]
        if x.ndim == 1:
            return np.bincount(self.rows, weights=data * x[self.cols], minlength=m)
        k = x.shape[1]  # column j of the result at j*m + rows, each column in storage order
        index = (np.arange(k)[:, None] * m + self.rows).ravel()
        flat = np.bincount(index, weights=(x[self.cols].T * data).ravel(), minlength=k * m)
        return np.ascontiguousarray(flat.reshape(k, m).T)

    def transposed(self, x: np.ndarray, data: np.ndarray | None = None) -> np.ndarray:
        """``A.T @ x`` for a vector x."""
        data = self.data if data is None else data
        return np.bincount(self.cols, weights=data * x[self.rows], minlength=self.shape[1])


def _triangular_solve(a: np.ndarray, b: np.ndarray, lower: bool) -> np.ndarray:
    """``scipy.linalg.solve_triangular(a, b, lower=lower)``: the same LAPACK call (trtrs on a, or
    on its transpose when a is not Fortran-ordered), without the input checks."""
    if a.flags.f_contiguous:
        x, info = lapack.dtrtrs(a, b, lower=lower, trans=0)
    else:
        x, info = lapack.dtrtrs(a.T, b, lower=not lower, trans=1)
    if info > 0:
        raise np.linalg.LinAlgError(f"singular matrix: resolution failed at diagonal {info - 1}")
    return x
