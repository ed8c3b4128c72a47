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

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from sksparse.cholmod import analyze_AAt

from ..description.reterms import LambdaMap
from ..errors import ModelError
from .design import LmmDesign, SparseProduct
from .objective import Objective, PLSState
from .response import LmerResp


class CholmodObjective(Objective):
    """The objective lme4's ``mkLmerDevfun`` returns: theta -> REML criterion or ML deviance."""

    def __init__(self, design: LmmDesign, resp: LmerResp, start: np.ndarray | None = None):
        self.design, self.resp = design, resp
        self.Zty, self.Xty = design.cross(resp.yw)
        self._cholmod: tuple | None = None  # (LtZt, its values as a product with theta, factor)
        self.start = design.reTrms.theta0.copy() if start is None else start  # mkLmerDevfun sets lme4's
        self.nevals = 0

    def with_response(self, resp: LmerResp) -> "CholmodObjective":
        """The same objective for a new response: only its cross-products are recomputed;
        X'X, Z'X, the structure of Lambdat Zt and CHOLMOD's symbolic analysis are reused."""
        new = copy.copy(self)
        new.resp = resp
        new.Zty, new.Xty = self.design.cross(resp.yw)
        if self._cholmod is not None:
            LtZt, values, factor = self._cholmod
            new._cholmod = (LtZt.copy(), values, factor.copy())
        new.nevals = 0
        return new

    def __getstate__(self) -> dict:
        """Pickled without CHOLMOD's factor (which cannot be), redone on first use where unpickled:
        a design sent to other processes (pylme.scaleout.many, pylme.rbase.parallel)."""
        return {**self.__dict__, "_cholmod": None}

    def __getstate__(self) -> dict:
        """Pickled without CHOLMOD's factor (which cannot be), redone on first use where unpickled:
        a design sent to other processes (pylme.scaleout.many, pylme.rbase.parallel)."""
        return {**self.__dict__, "_cholmod": None}

    @property
    def factor(self):
        """CHOLMOD's factor (symbolic analysis done on first use)."""
        return self._cholmod_parts()[2]

    def prepare(self) -> None:
        self._cholmod_parts()

    def _cholmod_parts(self) -> tuple:
        if self._cholmod is None:
            rt = self.design.reTrms
            LtZt, values = lambdat_zt_map(rt.lam, self.design.Ztw)
            LtZt.data = values(rt.theta0)
            self._cholmod = (LtZt, values, analyze_AAt(LtZt))
        return self._cholmod

    def criterion(self, theta: np.ndarray) -> float:
        self.nevals += 1
        return self.deviance(self.pls_state(theta))

    def update_factor(self, theta: np.ndarray) -> None:
        """Numeric refactorisation of L at theta (the symbolic analysis is reused)."""
        LtZt, values, factor = self._cholmod_parts()
        LtZt.data = values(np.asarray(theta, dtype=float))
        factor.cholesky_AAt_inplace(LtZt, beta=1.0)

    def pls_state(self, theta: np.ndarray) -> PLSState:
        """Solve the penalized least-squares problem at theta.

        The sparse products go through ``SparseProduct``, which sums in scipy's order, and the
        triangular solves through LAPACK's trtrs as scipy calls it: the arithmetic is that of
        the plain scipy expressions (and lme4's), without their per-call overhead."""
        theta = np.array(theta, dtype=float)
        d = self.design
        p = d.p
        LtZt, values, F = self._cholmod_parts()
        LtZt.data = values(theta)
        F.cholesky_AAt_inplace(LtZt, beta=1.0)
        lam = d.lam.values(theta)  # Lambdat's values
        cu = F.solve_L(F.apply_P(d.lambdat(self.Zty, lam)), use_LDLt_decomposition=False)
        if p:
            RZX = F.solve_L(F.apply_P(d.lambdat(d.ZtX, lam)), use_LDLt_decomposition=False)
            RZX = RZX.reshape(-1, p)
        else:  # no fixed effects
            RZX = np.zeros((len(cu), 0))
        VtV = d.XtX - RZX.T @ RZX
        try:
            RX = np.linalg.cholesky(VtV).T if p else np.zeros((0, 0))
        except np.linalg.LinAlgError as exc:
            raise ModelError("Downdated VtV is not positive definite") from exc
        rhs = self.Xty - RZX.T @ cu
        beta = _triangular_solve(RX, _triangular_solve(RX.T, rhs, lower=True), lower=False) if p else np.zeros(0)
        u = F.apply_Pt(F.solve_Lt(cu - RZX @ beta, use_LDLt_decomposition=False))
        b = d.lambdat.transposed(u, lam)
        eta = d.eta(beta, b)
        return PLSState(
            theta=theta,
            beta=beta,
            u=u,
            b=b,
            eta=eta,
            wrss=self.resp.wrss(eta),
            ussq=float(u @ u),
            ldL2=float(F.logdet()),
            ldRX2=float(2.0 * np.log(RX.diagonal()).sum()) if p else 0.0,
            RX=RX,
            RZX=RZX,
        )

    def cond_var_blocks(self, theta: np.ndarray, columns: list[np.ndarray], chunk: int = 2048) -> np.ndarray:
        """Blocks of ``Lambda (Lambda'Z'ZLambda + I)^-1 Lambda'`` for groups of random effects
        (see ``Objective.cond_var_blocks``), by solves with CHOLMOD's factor at theta."""
        self.update_factor(theta)
        return cond_var_blocks(self.factor, self.design.lam.Lambdat(theta).tocsc(), columns, chunk)


def cond_var_blocks(F, Lambdat: sp.csc_matrix, columns: list[np.ndarray], chunk: int = 2048) -> np.ndarray:
    """Blocks of ``Lambda (L L')^-1 Lambda'`` for CHOLMOD's factor F (``P (L L') P'``) and Lambdat,
    for groups of random effects (``columns``: per level, the indices into b, all of one length
    k): (levels, k, k), in chunks of about ``chunk`` right-hand sides."""
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


def lambdat_zt_map(lam: LambdaMap, Zt: sp.csc_matrix) -> tuple[sp.csc_matrix, SparseProduct]:
    """The structure of ``Lambdat Zt`` and the linear map theta -> its stored values.

    The structure is fixed whatever theta is (no entry is dropped when a theta is 0),
    which is what lets CHOLMOD's symbolic analysis be done once. The map's entries are in
    row order, by theta index within a row (the canonical order of a CSR matrix).
    """
    Lambdat, Lind = lam.pattern, lam.Lind
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
