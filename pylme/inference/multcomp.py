"""Multiplicity adjustments of t-tests and t-intervals, as emmeans 1.8 applies them
(``.adj.p.value``, ``.adj.critval``) to a family of estimates or contrasts.

* ``tukey``: the studentized range of the family's size k, ``P(Q_k,df > sqrt(2) |t|)``
  (R's ``ptukey``; here scipy's ``studentized_range``), critical value ``q_k,df(level) / sqrt(2)``;
* ``dunnettx``: emmeans' approximation to Dunnett's test, a weighted mean of the Tukey and Sidak
  probabilities for k comparisons with one control; its quantile by R's ``uniroot`` (Brent's
  zeroin, tolerance 5e-4, as emmeans asks);
* ``sidak``, ``scheffe`` (rank r of the family: ``F_r,df(t^2 / r)``), ``bonferroni``;
* R's ``p.adjust`` methods ``holm``, ``hochberg``, ``BH`` (``fdr``), ``BY`` and ``none``
  (intervals with these use Bonferroni's critical value, as emmeans does).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ModelError

P_ADJUST = ("holm", "hochberg", "bonferroni", "BH", "BY", "fdr", "none")
SINGLE_STEP = ("tukey", "dunnettx", "sidak", "scheffe")
METHODS = SINGLE_STEP + P_ADJUST
_EPS = float(np.finfo(float).eps)



def _stats():
    """scipy.stats, imported on first use: it is slower to import than the rest of pylme together."""
    from scipy import stats

    return stats

def check_method(adjust: str) -> str:
    """The adjustment's canonical name (emmeans lower-cases all but BH and BY); a clear error
    for one pylme does not have."""
    name = adjust.lower()
    name = name.upper() if name in ("bh", "by") else name
    if name not in METHODS:
        raise ModelError(f"p-value adjustment {adjust!r} is not available: use one of {', '.join(METHODS)}")
    return name


def ptukey_upper(q: np.ndarray, k: float, df: np.ndarray) -> np.ndarray:
    """R's ``ptukey(q, k, df, lower.tail = FALSE)``: the upper tail of the studentized range."""
    q, df = np.broadcast_arrays(np.asarray(q, dtype=float), np.asarray(df, dtype=float))
    return np.array([_stats().studentized_range.sf(a, k, d) for a, d in zip(q.ravel(), df.ravel())]).reshape(q.shape)


def qtukey(p: float, k: float, df: float) -> float:
    """R's ``qtukey(p, k, df)``."""
    return float(_stats().studentized_range.ppf(p, k, df))


def pdunnx(x: float, k: int, df: float) -> float:
    """emmeans' ``.pdunnx``: the approximate Dunnett probability P(max |t_i| <= x) for k tests."""
    twt = (k - 1) / k
    tukey = 1.0 - ptukey_upper(math.sqrt(2.0) * x, (1 + math.sqrt(1 + 8 * k)) / 2, df).item()
    sidak = _stats().f.cdf(x * x, 1, df) ** k
    return twt * tukey + (1 - twt) * sidak


def qdunnx(p: float, k: int, df: float) -> float:
    """emmeans' ``.qdunnx``: the root of ``pdunnx(x) = p`` between the Tukey and Sidak quantiles."""
    if k < 1.005:
        return float(_stats().t.ppf(1 - 0.5 * (1 - p), df))
    xtuk = qtukey(p, (1 + math.sqrt(1 + 8 * k)) / 2, df) / math.sqrt(2.0)
    xsid = math.sqrt(_stats().f.ppf(p ** (1 / k), 1, df))
    if abs(xtuk - xsid) < 5e-4:
        return xtuk
    f_lo, f_hi = pdunnx(xtuk, k, df) - p, pdunnx(xsid, k, df) - p
    if not xtuk < xsid or f_lo * f_hi > 0:  # where R's uniroot stops, emmeans takes the Tukey value
        return xtuk
    return zeroin(lambda x: pdunnx(x, k, df) - p, xtuk, xsid, f_lo, f_hi, tol=5e-4)


def zeroin(f, a: float, b: float, fa: float, fb: float, tol: float, maxit: int = 1000) -> float:
    """R's ``uniroot`` (``R_zeroin2``, Brent's method) step for step, so that a loose tolerance
    stops at the same point as R."""
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(maxit + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * _EPS * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p, q = cb * t1, 1.0 - t1
            else:
                q, t1, t2 = fa / fc, fb / fc, fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < 0.75 * cb * q - abs(tol_act * q) / 2 and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b


def p_adjust(p: np.ndarray, method: str, n: int | None = None) -> np.ndarray:
    """R's ``p.adjust(p, method, n)`` for holm, hochberg, bonferroni, BH/fdr, BY and none."""
    p = np.asarray(p, dtype=float)
    n = p.size if n is None else n
    if method == "none" or n <= 1:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(1.0, n * p)
    if method == "holm":
        o = np.argsort(p, kind="stable")
        adj = np.minimum(1.0, np.maximum.accumulate((n - np.arange(p.size)) * p[o]))
    else:  # step-up methods: cumulative minimum from the largest p down
        o = np.argsort(-p, kind="stable")
        i = np.arange(p.size, 0, -1)
        factor = {"hochberg": (n - i + 1.0), "BH": n / i, "fdr": n / i,
                  "BY": n / i * np.sum(1.0 / np.arange(1, n + 1))}[method]
        adj = np.minimum(1.0, np.minimum.accumulate(factor * p[o]))
    out = np.empty_like(p)
    out[o] = adj
    return out


def adjusted_p(t: np.ndarray, df: np.ndarray, method: str, fam_size: int, n_contr: int, rank: int) -> np.ndarray:
    """Two-sided p-values of one family of t-ratios: ``fam_size`` estimates compared (Tukey),
    ``n_contr`` tests, Scheffe's ``rank``."""
    df = np.where(np.isnan(df), np.inf, df)
    unadj = 2 * _stats().t.sf(np.abs(t), df)
    if method in P_ADJUST:
        return p_adjust(unadj, method, n_contr)
    if method == "sidak":
        return 1 - (1 - unadj) ** n_contr
    if method == "tukey":
        from ..rbase.printing import zapsmall

        return ptukey_upper(math.sqrt(2.0) * np.abs(t), fam_size, zapsmall(df))
    if method == "scheffe":
        return _stats().f.sf(t * t / rank, rank, df)
    return np.array([1 - pdunnx(abs(a), n_contr, d) for a, d in zip(t, df)])


def critical_value(level: float, df: np.ndarray, method: str, fam_size: int, n_contr: int, rank: int) -> np.ndarray:
    """Half-widths in SE units of the two-sided intervals of one family (emmeans' .adj.critval);
    the p.adjust methods other than none have Bonferroni's."""
    df = np.where(np.isnan(df), np.inf, np.asarray(df, dtype=float))
    if method == "none":
        return -_stats().t.ppf((1 - level) / 2, df)
    if method == "sidak":
        return -_stats().t.ppf((1 - level ** (1 / n_contr)) / 2, df)
    if method == "tukey":
        return np.array([qtukey(level, fam_size, d) for d in df]) / math.sqrt(2.0)
    if method == "scheffe":
        return np.sqrt(rank * _stats().f.ppf(level, rank, df))
    if method == "dunnettx":
        return np.array([qdunnx(level, n_contr, d) for d in df])
    return -_stats().t.ppf((1 - level) / n_contr / 2, df)


def interval_method(method: str) -> str:
    """The adjustment emmeans applies to intervals for a p-value adjustment (.adj.critval)."""
    return method if method in SINGLE_STEP + ("bonferroni", "none") else "bonferroni"
