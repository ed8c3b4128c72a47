"""Variance components (lme4's VarCorr): per term sigma^2 Lambda Lambda', with R's print layout
and the rows of ``as.data.frame(VarCorr(fm))``."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..description.reterms import lambda_block, theta_positions
from ..rbase.printing import format_numbers, render_table


@dataclass
class VarCorrTerm:
    group: str  # unique name, as lme4's VarCorr list names (``Subject``, ``Subject.1``)
    names: list[str]
    cov: np.ndarray

    @property
    def stddev(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))

    @property
    def correlation(self) -> np.ndarray:
        sd = self.stddev
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.cov / np.outer(sd, sd)


class VarCorr:
    """The estimated variances, standard deviations and correlations of the random effects."""

    def __init__(self, terms: list[VarCorrTerm], sigma: float | None):
        self.terms = terms
        self.sigma = sigma  # None: no residual row (a GLMM without a scale parameter)

    def __getitem__(self, group: str) -> pd.DataFrame:
        for t in self.terms:
            if t.group == group:
                return pd.DataFrame(t.cov, index=t.names, columns=t.names)
        raise KeyError(group)

    def keys(self) -> list[str]:
        return [t.group for t in self.terms]

    def as_data_frame(self) -> pd.DataFrame:
        """Rows of R's ``as.data.frame(VarCorr(fm))``: grp, var1, var2, vcov, sdcor."""
        rows = []
        for t in self.terms:
            grp = t.group
            sd, corr = t.stddev, t.correlation
            rows += [(grp, nm, None, t.cov[i, i], sd[i]) for i, nm in enumerate(t.names)]
            k = len(t.names)
            rows += [
                (grp, t.names[j], t.names[i], t.cov[i, j], corr[i, j]) for j in range(k) for i in range(j + 1, k)
            ]
        if self.sigma is not None:
            rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])

    def format(self, comp: tuple[str, ...] = ("Std.Dev.",), digits: int = 4) -> str:
        """lme4's formatVC table (Groups, Name, Variance and/or Std.Dev., Corr)."""
        resid = [] if self.sigma is None else [self.sigma]
        sds = [t.stddev for t in self.terms] + [np.array(resid)]
        groups = [t.group for t in self.terms] + ["Residual"] * len(resid)
        names = [t.names for t in self.terms] + [[""]] * len(resid)
        all_sd = np.concatenate(sds)
        cols: dict[str, list[str]] = {"Groups": [], "Name": []}
        for g, nms in zip(groups, names):
            cols["Groups"] += [g] + [""] * (len(nms) - 1)
            cols["Name"] += nms
        if "Variance" in comp:
            cols["Variance"] = format_numbers(all_sd**2, digits)
        if "Std.Dev." in comp:
            cols["Std.Dev."] = format_numbers(all_sd, digits)
        maxlen = max(len(n) for n in names)
        if maxlen > 1:
            dig = max(2, digits - 2)
            corr_cols = [[] for _ in range(maxlen - 1)]
            for t in self.terms:
                k = len(t.names)
                for i in range(k):
                    for j in range(maxlen - 1):
                        corr_cols[j].append(f"{t.correlation[i, j]:.{dig}f}" if j < i else "")
            for j in range(maxlen - 1):
                corr_cols[j] += [""] * len(resid)
                cols["Corr" if j == 0 else " " * j] = _align_right(corr_cols[j])
        return render_table(cols, left=("Groups", "Name"))

    def __str__(self) -> str:
        return self.format()

    __repr__ = __str__


def _align_right(values: list[str]) -> list[str]:
    width = max((len(v) for v in values), default=0)
    return [v.rjust(width) if v else "" for v in values]


def unique_names(names: list[str]) -> list[str]:
    """R's make.unique: repeated names get .1, .2, ..."""
    seen: dict[str, int] = {}
    out = []
    for nm in names:
        if nm in seen:
            seen[nm] += 1
            out.append(f"{nm}.{seen[nm]}")
        else:
            seen[nm] = 0
            out.append(nm)
    return out


# ---------------------------------------------------------------- theta <-> standard deviations and correlations
def theta_to_sdcor(theta: np.ndarray, ncs: list[int], sigma: float) -> np.ndarray:
    """lme4's Cv_to_Sv: per term the standard deviations (diagonal) and correlations (below it)
    of sigma^2 Lambda Lambda', in theta's order, then sigma: the ``.sig01, ..., .sigma`` scale."""
    out, start = [], 0
    for nc in ncs:
        r, c = theta_positions(nc)
        L = lambda_block(theta[start : start + r.size], nc)
        cov = sigma**2 * (L @ L.T)
        sd = np.sqrt(np.diag(cov))
        with np.errstate(invalid="ignore", divide="ignore"):
            m = cov / np.outer(sd, sd)
        m[np.diag_indices(nc)] = sd
        out.append(m[r, c])
        start += r.size
    return np.concatenate(out + [[sigma]])


def sdcor_to_theta(sdcor: np.ndarray, ncs: list[int], sigma: float) -> np.ndarray:
    """lme4's Sv_to_Cv: theta from the standard deviations and correlations (sigma excluded)."""
    out, start = [], 0
    for nc in ncs:
        r, c = theta_positions(nc)
        m = np.zeros((nc, nc))
        m[r, c] = m[c, r] = sdcor[start : start + r.size]
        sd = np.diag(m).copy()
        m[np.diag_indices(nc)] = 1.0
        L = _safe_chol(m * np.outer(sd, sd) / sigma**2)
        out.append(L[r, c])
        start += r.size
    return np.concatenate(out) if out else np.zeros(0)


def _safe_chol(m: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor as lme4's safe_chol, and a valid one for a semidefinite matrix
    (a correlation of exactly -1 or 1, where profiles end): pivots that round to zero or below
    are set to zero. lme4 falls back to a pivoted factor there, whose lower triangle (all that
    theta keeps) no longer reproduces the matrix, so its profile at the bound depends on
    whether rounding lets the plain factorisation through; pylme's does not."""
    if np.any(np.isnan(m)) or np.all(m == 0):
        return m
    if m.shape[0] == 1 or np.count_nonzero(m - np.diag(np.diag(m))) == 0:
        return np.diag(np.sqrt(np.diag(m)))
    try:
        return np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        return _semidefinite_chol(m)


def _semidefinite_chol(m: np.ndarray) -> np.ndarray:
    n = m.shape[0]
    L = np.zeros_like(m)
    for j in range(n):
        d = m[j, j] - L[j, :j] @ L[j, :j]
        L[j, j] = np.sqrt(d) if d > 0 else 0.0
        if L[j, j] > 0:
            L[j + 1 :, j] = (m[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L
