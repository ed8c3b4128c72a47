"""Passes over the partitions of a dask DataFrame: tasks run on every partition (summed by a
tree of tasks, or gathered), a partition that fails named, and exact quantiles of values computed
per partition (two passes)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import DataError, PylmeError


def compute(tasks: list, client=None) -> list:
    """Compute dask delayed objects (on ``client`` if given, else dask's default scheduler)."""
    import dask

    if client is not None:
        return client.gather(client.compute(tasks))
    return list(dask.compute(*tasks))


def over_partitions(ddf, fn, args: tuple, client=None, combine=None) -> list:
    """``fn(partition, index, *args)`` for every partition, or their sum by a tree of
    ``combine`` tasks (one result); a partition that fails to read or to compute is named."""
    import dask

    parts = ddf.to_delayed()
    shared = [dask.delayed(a, pure=True) for a in args]  # sent once, not once per partition
    tasks = [dask.delayed(fn)(p, i, *shared) for i, p in enumerate(parts)]
    if combine is not None:
        while len(tasks) > 1:
            tasks = [dask.delayed(combine)(*tasks[k : k + 2]) if k + 1 < len(tasks) else tasks[k]
                     for k in range(0, len(tasks), 2)]
    try:
        return compute(tasks, client)
    except PylmeError:  # the data's problem, already named
        raise
    except Exception as exc:  # which partition? each one alone, until one fails
        raise _failing_partition(ddf, parts, client, exc) from exc


def _failing_partition(ddf, parts: list, client, exc: Exception) -> DataError:
    """A DataError naming the first partition that cannot be read (or the error as it is)."""
    for i, p in enumerate(parts):
        try:
            compute([p], client)
        except Exception as inner:  # noqa: BLE001 (the partition's reader's error, whatever it is)
            return DataError(f"partition {i} of {ddf.npartitions} could not be read: {type(inner).__name__}: {inner}")
    return DataError(f"a pass over the partitions failed: {type(exc).__name__}: {exc}")


#: order statistics each partition reports to bracket a quantile (the bracket then holds about
#: 2 n / SAMPLES values, gathered in a second pass)
SAMPLES = 1025


def _sample_task(part: pd.DataFrame, index: int, values_of) -> tuple[int, np.ndarray, np.ndarray]:
    """A partition's size and evenly spaced order statistics (values and their ranks)."""
    x = np.sort(values_of(part))
    if x.size == 0:
        return 0, x, np.zeros(0, dtype=np.int64)
    ranks = np.unique(np.round(np.linspace(0, x.size - 1, min(x.size, SAMPLES))).astype(np.int64))
    return x.size, x[ranks], ranks


def _bracket_task(part: pd.DataFrame, index: int, values_of, brackets: list) -> list:
    """Per bracket [a, b]: how many values are below a, and the values within it."""
    x = values_of(part)
    return [(int(np.sum(x < a)), x[(x >= a) & (x <= b)]) for a, b in brackets]


def exact_quantiles(ddf, values_of, probs: list[float], client=None) -> np.ndarray:
    """Quantiles (numpy's default, R's type 7) of the values ``values_of(partition)`` over all
    partitions, exactly: each partition's order statistics bound the ranks of any value, which
    brackets each needed order statistic; a second pass gathers the values in the brackets."""
    samples = [s for s in over_partitions(ddf, _sample_task, (values_of,), client) if s[0]]
    n = sum(s[0] for s in samples)
    cands = np.unique(np.concatenate([s[1] for s in samples]))

    below = np.zeros(cands.size, dtype=np.int64)  # upper bounds of #{x < c}
    upto = np.zeros(cands.size, dtype=np.int64)  # lower bounds of #{x <= c}
    for m, v, r in samples:
        i = np.searchsorted(v, cands, "left")
        below += np.where(i < v.size, r[np.minimum(i, v.size - 1)], m)
        i = np.searchsorted(v, cands, "right")
        upto += np.where(i > 0, r[np.maximum(i - 1, 0)] + 1, 0)
    ranks = sorted({k for p in probs for k in _order_ranks(n, p)})
    brackets = []
    for k in ranks:
        i = np.searchsorted(below, k, "right") - 1  # the last candidate with at most k values below it
        j = np.searchsorted(upto, k + 1, "left")  # the first with at least k + 1 values up to it
        brackets.append((cands[i] if i >= 0 else -np.inf, cands[j] if j < cands.size else np.inf))
    found = over_partitions(ddf, _bracket_task, (values_of, brackets), client)
    value = {}
    for j, k in enumerate(ranks):
        below = sum(f[j][0] for f in found)
        inside = np.sort(np.concatenate([f[j][1] for f in found]))
        value[k] = inside[k - below]
    out = []
    for p in probs:
        h = (n - 1) * p
        k = int(math.floor(h))
        a, b = value[k], value[min(k + 1, n - 1)]
        t = h - k
        out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)  # numpy's lerp
    return np.array(out)


def _order_ranks(n: int, p: float) -> list[int]:
    """The 0-based order statistics a type-7 quantile interpolates between."""
    k = int(math.floor((n - 1) * p))
    return [k, min(k + 1, n - 1)]


def add(a, b=0.0):
    """The combine of ``over_partitions`` for sums (numbers or numpy arrays)."""
    return a + b
