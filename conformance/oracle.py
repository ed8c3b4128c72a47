"""A second oracle that needs no R: lme4's profiled criterion computed densely from the
marginal model.

pylme's objective (``pylme/objectives/pls.py``) follows lme4: a sparse Cholesky factor of
``Lambda'Z'WZ Lambda + I``, then penalized least squares. This module computes the same
number the textbook way, from the marginal distribution of y, so that the two can be held
against each other without R:

    y ~ N(X beta + offset, sigma^2 V),   V(theta) = Z Lambda Lambda' Z' + W^-1

(W the diagonal of prior weights, the identity without weights). With ``beta_hat`` the GLS
estimate and ``r = y - offset - X beta_hat``, sigma^2 profiled out:

    ML:    log|V|                + n     (1 + log(2 pi r'V^-1 r / n))
    REML:  log|V| + log|X'V^-1 X| + (n-p) (1 + log(2 pi r'V^-1 r / (n-p)))

The weights constant. lme4 (and pylme) compute ``ldL2 - ldW + ...`` where
``ldL2 = log|Lambda'Z'WZ Lambda + I|`` and ``ldW = sum(log w)``. Since
``V = W^-1/2 (I + W^1/2 Z Lambda Lambda' Z' W^1/2) W^-1/2``, Sylvester's determinant identity gives
``log|V| = ldL2 - sum(log w)``: lme4's subtraction of ``sum(log w)`` is exactly what makes its
criterion minus twice the Gaussian log-likelihood of the weighted marginal model. So the
dense criterion above, with ``W^-1`` inside V, needs no further weights term; likewise
``r'V^-1 r`` is lme4's ``pwrss`` and ``log|X'V^-1 X|`` its ``ldRX2`` (Woodbury).
tests/test_oracle.py checks this against lme4 on a weighted model.

Only Z, Lambda(theta), X, y, the weights and the offset are taken from pylme's model
structures (``pylme.lFormula``); everything else is dense numpy (Cholesky of the n x n
matrix V, a QR of the whitened X), so keep n to a few hundred.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg import cho_factor, qr, solve_triangular

import pylme


@dataclass
class DenseFit:
    """The marginal-model quantities at one theta (sigma^2 profiled out)."""

    criterion: float  # REML criterion (REML) or ML deviance
    beta: np.ndarray  # the GLS estimate
    rss: float  # r' V^-1 r (lme4's pwrss)
    logdet_V: float  # log|V| (lme4's ldL2 - ldW)
    logdet_XtVinvX: float  # log|X'V^-1 X| (lme4's ldRX2)
    sigma: float  # sqrt(rss / n) (ML) or sqrt(rss / (n - p)) (REML)
    u: np.ndarray  # spherical conditional modes (Z Lambda)' V^-1 r; b = Lambda u


def marginal_criterion(
    X: np.ndarray,
    y: np.ndarray,
    ZLambda: np.ndarray,
    REML: bool,
    weights: np.ndarray | None = None,
    offset: np.ndarray | None = None,
) -> DenseFit:
    """The profiled criterion of the marginal model ``y ~ N(X beta + offset, s^2 (ZL ZL' + W^-1))``.

    ``ZLambda`` is the dense n x q product ``Z Lambda(theta)``.
    """
    X = np.asarray(X, dtype=float).reshape(len(y), -1)
    y = np.asarray(y, dtype=float)
    n, p = X.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    resp = y if offset is None else y - np.asarray(offset, dtype=float)
    V = ZLambda @ ZLambda.T
    V[np.diag_indices(n)] += 1.0 / w
    C, _ = cho_factor(V, lower=True, check_finite=True)
    logdet_V = 2.0 * float(np.sum(np.log(np.diag(C))))
    ys = solve_triangular(C, resp, lower=True)  # C^-1 y: whitened response
    if p:
        Xs = solve_triangular(C, X, lower=True)
        Q, R = qr(Xs, mode="economic")
        beta = solve_triangular(R, Q.T @ ys, lower=False)
        rs = ys - Xs @ beta
        logdet_XVX = 2.0 * float(np.sum(np.log(np.abs(np.diag(R)))))
    else:
        beta, rs, logdet_XVX = np.zeros(0), ys, 0.0
    rss = float(rs @ rs)
    u = ZLambda.T @ solve_triangular(C, rs, lower=True, trans="T")  # (Z Lambda)' V^-1 r
    if REML:
        nmp = n - p
        crit = logdet_V + logdet_XVX + nmp * (1.0 + np.log(2.0 * np.pi * rss / nmp))
        sigma = np.sqrt(rss / nmp)
    else:
        crit = logdet_V + n * (1.0 + np.log(2.0 * np.pi * rss / n))
        sigma = np.sqrt(rss / n)
    return DenseFit(float(crit), beta, rss, logdet_V, logdet_XVX, float(sigma), u)


class DenseOracle:
    """theta -> lme4's criterion for a model, computed densely from the marginal model.

    Built from ``pylme.lFormula`` (for Z, Lambda's pattern, X, y, weights and offset only)::

        oracle = DenseOracle("Reaction ~ Days + (Days | Subject)", sleep, REML=True)
        oracle([1.0, 0.0, 0.5])
    """

    def __init__(
        self,
        formula: str,
        data: pd.DataFrame,
        REML: bool = True,
        weights: str | np.ndarray | None = None,
        offset: str | np.ndarray | None = None,
    ):
        lmod = pylme.lFormula(formula, data, REML=REML, weights=weights, offset=offset)
        self.lmod = lmod
        self.REML = bool(REML)
        self.X = np.asarray(lmod.X, dtype=float)
        self.y = np.asarray(lmod.y, dtype=float)
        self.Z = lmod.reTrms.Zt.T.toarray()
        self.weights = None if lmod.weights is None else np.asarray(lmod.weights, dtype=float)
        self.offset = None if lmod.offset is None else np.asarray(lmod.offset, dtype=float)
        self.ntheta = lmod.reTrms.theta0.size
        self.lower = np.asarray(lmod.reTrms.lower, dtype=float)

    @property
    def n(self) -> int:
        return len(self.y)

    def Lambda(self, theta: np.ndarray) -> np.ndarray:
        """Dense Lambda(theta) (the transpose of pylme's Lambdat)."""
        theta = np.asarray(theta, dtype=float)
        if theta.shape != (self.ntheta,):
            raise ValueError(f"theta has {theta.size} components; the model has {self.ntheta}")
        return self.lmod.reTrms.lam.Lambdat(theta).toarray().T

    def fit_at(self, theta: np.ndarray, REML: bool | None = None) -> DenseFit:
        REML = self.REML if REML is None else REML
        return marginal_criterion(self.X, self.y, self.Z @ self.Lambda(theta), REML, self.weights, self.offset)

    def __call__(self, theta: np.ndarray) -> float:
        return self.fit_at(theta).criterion
