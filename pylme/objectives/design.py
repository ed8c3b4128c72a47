"""The design of a linear mixed model (lme4's ``merPredD``): X, Z and theta -> Lambda, with the
weighted cross-products every objective starts from.

The design knows nothing of the response: a new response (pylme.objectives.response) needs only its own
cross-products (``cross``), and new weights (glmer's PIRLS) a ``reweighted`` design, whose
structure (Z's pattern, Lambda's map) is the same. With ``W^1/2`` the square roots of the weights:

    Xw = W^1/2 X,   Ztw = Zt W^1/2,   ZtX = Ztw Xw,   XtX = Xw' Xw
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..description.reterms import LambdaMap, ReTrms
from .response import LmerResp


class SparseProduct:
    """``A @ x`` and ``A.T @ x`` for a sparse matrix of fixed structure, whose values may be
    given per call, summed entry by entry in storage order (``np.bincount`` adds its weights
    in order): the same sums, in the same order, as scipy's csr/csc matvec, without scipy's
    per-call checks.

    Where every column holds the same number k of entries, stored column by column (Z' of
    scalar terms: one entry per observation and term), ``A.T @ x`` is k gathers added in storage
    order instead of a ``bincount``, and ``A @ x`` skips the gather; where A's values are all 1
    (indicator columns) the products by them are skipped. The same sums in the same order."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, data: np.ndarray, shape: tuple[int, int]):
        self.rows, self.cols, self.data, self.shape = rows, cols, data, shape
        self.per_col = _entries_per_column(cols, shape[1])
        self.unit = bool(self.per_col) and bool(np.all(data == 1.0))
        k = self.per_col
        self._row_parts = [np.ascontiguousarray(rows[j::k]) for j in range(k)]  # entry j of each column

    @classmethod
    def of_csc(cls, A: sp.csc_matrix) -> "SparseProduct":
        return cls(A.indices, np.repeat(np.arange(A.shape[1]), np.diff(A.indptr)), A.data, A.shape)

    def __call__(self, x: np.ndarray, data: np.ndarray | None = None) -> np.ndarray:
        """``A @ x`` (x a vector, or a matrix by columns), with ``data`` as A's values if given."""
        m = self.shape[0]
        if x.ndim == 1 and self.per_col:
            xs = x if self.per_col == 1 else np.repeat(x, self.per_col)
            if data is None and self.unit:
                return np.bincount(self.rows, weights=xs, minlength=m)
            return np.bincount(self.rows, weights=(self.data if data is None else data) * xs, minlength=m)
        if self.per_col and data is None:  # a matrix: scipy's CSR product, one pass (sums in storage order)
            return np.asarray(self._csr @ x)
        data = self.data if data is None else data
        if x.ndim == 1:
            return np.bincount(self.rows, weights=data * x[self.cols], minlength=m)
        k = x.shape[1]  # column j of the result at j*m + rows, each column in storage order
        index = (np.arange(k)[:, None] * m + self.rows).ravel()
        flat = np.bincount(index, weights=(x[self.cols].T * data).ravel(), minlength=k * m)
        return np.ascontiguousarray(flat.reshape(k, m).T)

    @functools.cached_property
    def _csr(self) -> sp.csr_matrix:
        """A with its own values as a CSR matrix (made on first use, for products with matrices)."""
        return sp.csr_matrix((self.data, (self.rows, self.cols)), shape=self.shape)

    def transposed(self, x: np.ndarray, data: np.ndarray | None = None) -> np.ndarray:
        """``A.T @ x`` for a vector x."""
        if self.per_col:
            unit = data is None and self.unit
            data = self.data if data is None else data
            k, out = self.per_col, None
            for j, rows in enumerate(self._row_parts):
                term = x[rows] if unit else data[j::k] * x[rows]
                out = term if out is None else np.add(out, term, out=out)
            return out
        data = self.data if data is None else data
        return np.bincount(self.cols, weights=data * x[self.rows], minlength=self.shape[1])


def _entries_per_column(cols: np.ndarray, ncol: int) -> int:
    """k where the entries are stored column by column, k in each of the ``ncol`` columns; else 0."""
    if ncol == 0 or cols.size == 0 or cols.size % ncol:
        return 0
    k = cols.size // ncol
    return k if np.array_equal(cols, np.repeat(np.arange(ncol), k)) else 0


@dataclass
class LmmDesign:
    """X (n x p), the random-effects terms (Zt, theta -> Lambda) and the weights' square roots
    (None: unweighted), with the weighted cross-products built once."""

    X: np.ndarray
    reTrms: ReTrms
    sqrtw: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.X.shape[0]
        s = np.ones(n) if self.sqrtw is None else self.sqrtw
        self.Xw = self.X * s[:, None]
        self.Ztw = self.Zt if self.sqrtw is None else _scale_columns(self.Zt, s)
        self.ZtX = np.asarray(self.Ztw @ self.Xw)
        self.XtX = self.Xw.T @ self.Xw
        self.zt = SparseProduct.of_csc(self.Zt)
        self.lambdat = SparseProduct.of_csc(self.lam.pattern)

    @property
    def Zt(self) -> sp.csc_matrix:
        return self.reTrms.Zt

    @property
    def lam(self) -> LambdaMap:
        return self.reTrms.lam

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def q(self) -> int:
        return self.Zt.shape[0]

    @property
    def lower(self) -> np.ndarray:
        return self.reTrms.lower

    def cross(self, yw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The weighted response's cross-products ``Ztw yw`` and ``Xw' yw``."""
        return self.Ztw @ yw, self.Xw.T @ yw

    def eta(self, beta: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The linear predictor ``X beta + Z b`` (no offset)."""
        return self.X @ beta + self.zt.transposed(b)

    def reweighted(self, sqrtw: np.ndarray | None) -> "LmmDesign":
        """The same design with other weights (the terms and Lambda's map are shared)."""
        return LmmDesign(self.X, self.reTrms, sqrtw)

    def with_X(self, X: np.ndarray) -> "LmmDesign":
        """The same random effects and weights with another X (the profile's fixed-effect steps)."""
        return LmmDesign(X, self.reTrms, self.sqrtw)


def lmm_design(X: np.ndarray, reTrms: ReTrms, resp: LmerResp) -> LmmDesign:
    """The design of a fit, weighted by the response's prior weights when it has any."""
    return LmmDesign(X, reTrms, resp.sqrtw if resp.weighted else None)


def _scale_columns(A: sp.csc_matrix, s: np.ndarray) -> sp.csc_matrix:
    """``A diag(s)`` for a CSC matrix."""
    out = A.copy()
    out.data *= np.repeat(s, np.diff(A.indptr))
    return out
