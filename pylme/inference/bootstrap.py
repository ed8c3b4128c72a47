"""Parametric bootstrap (lme4's bootMer) and its intervals (boot's percentile, basic, normal).

All responses are simulated first with ``pylme.simulate`` (so a seed gives lme4's simulated
responses after ``set.seed(seed)``), each is refitted with ``fm.refit`` (starting from the
fit's theta, as lme4's refit), and ``func`` is applied to each refit. Refits that fail give a
row of NaN and are counted; warnings and messages of the refits are collected and reported
once, as lme4 tabulates them.

lme4 1.1-31's ``refit`` of a REML fit with more than one fixed effect optimises the REML
criterion for p = 1 (its ``resp$REML`` is reset to 1); pylme's refit is the REML fit of the new
response, so on such models pylme's replicates are those of ``lmer`` on each simulated
response, not those of lme4's bootMer.
"""
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import PylmeError, PylmeWarning
from ..rbase.parallel import run_tasks
from .simulate import check_nsim, new_seed, simulate


@dataclass
class BootMer:
    """lme4's bootMer object: the statistic on the fit (``t0``) and on each replicate (``t``)."""

    t0: pd.Series
    t: pd.DataFrame
    seed: int
    n_fail: int = 0
    messages: Counter = field(default_factory=Counter)

    @property
    def R(self) -> int:
        return len(self.t)

    def confint(self, level: float = 0.95, type: str = "perc") -> pd.DataFrame:
        """lme4's confint.bootMer: boot.ci's 'perc', 'basic' or 'norm' interval per statistic."""
        if type not in _INTERVALS:
            raise ValueError(f"type must be one of {', '.join(_INTERVALS)}, not {type!r}")
        rows = [_INTERVALS[type](self.t[c].to_numpy(), float(self.t0[c]), level) for c in self.t.columns]
        return pd.DataFrame(rows, index=self.t.columns, columns=perc_labels(level))


def bootMer(
    fm,
    func: Callable,
    nsim: int = 1,
    seed: int | None = None,
    re_form="~0",
    use_u: bool | None = None,
    n_jobs: int = 1,
    progress: bool | None = None,
    client=None,
) -> BootMer:
    """``bootMer(fm, FUN, nsim, seed)``: ``func(refit)`` on ``nsim`` parametric bootstrap samples.

    ``func`` returns a number, a sequence or a pandas Series (whose index names the
    statistics). ``n_jobs > 1`` refits in forked worker processes, ``client`` (a
    ``dask.distributed.Client``) on its cluster's workers; the result does not depend on either.
    ``progress=None`` shows a progress bar on a terminal only.
    """
    nsim = check_nsim(nsim)
    seed = new_seed() if seed is None else seed
    t0 = _as_series(func(fm))
    ys = simulate(fm, nsim, seed, re_form=re_form, use_u=use_u).to_numpy()
    rows, notes = _refit_all(fm, func, ys, n_jobs, progress, client)
    values = np.full((nsim, len(t0)), np.nan)
    for k, row in enumerate(rows):
        if row is not None:
            values[k] = row
    n_fail = sum(row is None for row in rows)
    t = pd.DataFrame(values, columns=t0.index)
    counts = Counter(notes)
    _report(counts, n_fail, nsim)
    return BootMer(t0=t0, t=t, seed=seed, n_fail=n_fail, messages=counts)


def _as_series(value) -> pd.Series:
    if isinstance(value, pd.Series):
        return value.astype(float)
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.ndim != 1:
        raise PylmeError("bootMer: func must return a number or a vector of numbers")
    return pd.Series(arr, index=[f"t{k + 1}" for k in range(arr.size)] if arr.size > 1 else ["t1"])


def _refit_one(fm, func: Callable, y: np.ndarray):
    """One replicate: func of the refit, or None when the refit fails; and its warnings' texts."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = _as_series(func(fm.refit(y))).to_numpy()
        except (PylmeError, ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
            return None, [f"error: {exc}"]
    return value, [str(w.message) for w in caught]


def _refit_chunk(shared: tuple, task: tuple[int, np.ndarray]) -> tuple[int, list]:
    """A chunk of replicates (responses by column), from the first one's number: their results."""
    fm, func = shared
    first, ys = task
    return first, [_refit_one(fm, func, y) for y in ys.T]


def _refit_all(fm, func: Callable, ys: np.ndarray, n_jobs: int, progress: bool | None, client=None):
    """Every replicate's result, in order: here, in ``n_jobs`` forked processes or on a Dask
    ``client`` (pylme.rbase.parallel: the fit and func sent once, each task a chunk of responses)."""
    nsim = ys.shape[1]
    if client is None and n_jobs <= 1:
        pieces = nsim  # here: one replicate a task, for the progress bar
    else:  # a few tasks per worker, so that a slow one does not hold up the end
        pieces = 4 * (len(client.scheduler_info()["workers"]) if client is not None else n_jobs)
    edges = np.linspace(0, nsim, min(nsim, max(pieces, 1)) + 1).astype(int)
    tasks = [(a, ys[:, a:b]) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    results: list = [None] * nsim
    for first, part in run_tasks(_refit_chunk, (fm, func), tasks, client=client, n_jobs=n_jobs, progress=progress,
                                 desc="bootMer", sizes=[t[1].shape[1] for t in tasks]):
        results[first : first + len(part)] = part
    return [r[0] for r in results], [m for r in results for m in r[1]]


def _report(counts: Counter, n_fail: int, nsim: int) -> None:
    if n_fail:
        warnings.warn(f"some bootstrap runs failed ({n_fail}/{nsim})", PylmeWarning, stacklevel=3)
    notes = [f"{n} x {msg}" for msg, n in counts.items() if not msg.startswith("error: ")]
    if notes:
        warnings.warn("bootMer refits: " + "; ".join(notes), PylmeWarning, stacklevel=3)


# ---------------------------------------------------------------- boot.ci's intervals
def perc_labels(level: float) -> list[str]:
    """R's column names for a two-sided interval, ``format(100 * a, digits = 3)`` with a
    common number of decimals: '2.5 %', '97.5 %'; '0.05 %', '99.95 %'."""
    a = (1 - level) / 2
    pcts = [100 * a, 100 * (1 - a)]
    decimals = max(len(f"{x:.3g}".partition(".")[2]) for x in pcts)
    return [f"{x:.{decimals}f} %" for x in pcts]


def norm_inter(t: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """boot's norm.inter: quantiles of the replicates, interpolated on the normal scale
    between order statistics when (R+1) alpha is not a whole number."""
    from scipy.stats import norm  # imported on first use, as scipy.stats is slow to import

    t = np.sort(t[np.isfinite(t)])
    R = t.size
    if R == 0:
        return np.full(len(alpha), np.nan)
    rk = (R + 1) * np.asarray(alpha, dtype=float)
    if not np.all((rk > 1) & (rk < R)):
        warnings.warn("extreme order statistics used as endpoints", PylmeWarning, stacklevel=4)
    out = np.empty(rk.size)
    for i, (r, a) in enumerate(zip(rk, alpha)):
        k = int(np.trunc(r))
        if k == r and 0 < k <= R:
            out[i] = t[k - 1]
        elif k <= 0:
            out[i] = t[0]
        elif k >= R:
            out[i] = t[-1]
        else:
            z, z1, z2 = norm.ppf([a, k / (R + 1), (k + 1) / (R + 1)])
            out[i] = t[k - 1] + (z - z1) / (z2 - z1) * (t[k] - t[k - 1])
    return out


def _perc(t: np.ndarray, t0: float, level: float) -> np.ndarray:
    return norm_inter(t, np.array([(1 - level) / 2, (1 + level) / 2]))


def _basic(t: np.ndarray, t0: float, level: float) -> np.ndarray:
    return 2 * t0 - norm_inter(t, np.array([(1 + level) / 2, (1 - level) / 2]))


def _norm(t: np.ndarray, t0: float, level: float) -> np.ndarray:
    t = t[np.isfinite(t)]
    bias = t.mean() - t0
    from scipy.stats import norm  # imported on first use, as scipy.stats is slow to import

    half = norm.ppf((1 + level) / 2) * np.sqrt(np.var(t, ddof=1))
    return np.array([t0 - bias - half, t0 - bias + half])


_INTERVALS = {"perc": _perc, "basic": _basic, "norm": _norm}
