"""Running independent tasks that share one large input: here, in forked local processes, or on a
``dask.distributed`` Client (many fits, the parametric bootstrap).

``run_tasks(fn, shared, tasks)`` yields ``fn(shared, task)`` for each task as it completes (in
any order; the tasks say which part of the work they are). The shared input is sent once: forked
processes inherit it, a Dask cluster gets it scattered to every worker (``broadcast``), so a task
carries only its own part. On a cluster, a task whose worker dies is run again elsewhere (Dask
reschedules it; ``retries`` reruns tasks that raised), so no task is lost.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from .progress import progress_bar

#: reruns of a task that raised on a cluster (a worker's lost connection, say): the fits themselves
#: catch their own errors, so a task that raises is a failure of the machinery, not of the data
RETRIES = 2

_SHARED: tuple = ()  # (fn, shared) for forked workers, which inherit it (fn may be a closure)


def run_tasks(fn: Callable[[Any, Any], Any], shared: Any, tasks: Sequence, client=None, n_jobs: int = 1,
              progress: bool | None = None, desc: str = "tasks", sizes: Sequence[int] | None = None) -> Iterator:
    """``fn(shared, task)`` for each task, yielded as each completes: on ``client`` (a
    ``dask.distributed.Client``), in ``n_jobs`` forked processes, or here in order. ``sizes``:
    what each task counts for on the progress bar (default 1); ``progress=None``: a bar on a
    terminal only."""
    sizes = list(sizes) if sizes is not None else [1] * len(tasks)
    bar = progress_bar(sum(sizes), desc, progress)
    try:
        if client is not None:
            results = _on_client(client, fn, shared, tasks)
        elif n_jobs > 1 and len(tasks) > 1:
            results = _forked(fn, shared, tasks, n_jobs)
        else:
            results = ((k, fn(shared, task)) for k, task in enumerate(tasks))
        for k, result in results:
            bar.update(sizes[k])
            yield result
    finally:
        bar.close()


def _call(indexed: tuple[int, Any]) -> tuple[int, Any]:
    fn, shared = _SHARED
    k, task = indexed
    return k, fn(shared, task)


def _forked(fn, shared, tasks: Sequence, n_jobs: int) -> Iterator:
    import multiprocessing  # imported on first use: most fits run in one process

    global _SHARED
    _SHARED = (fn, shared)
    try:
        with multiprocessing.get_context("fork").Pool(min(n_jobs, len(tasks))) as pool:
            yield from pool.imap_unordered(_call, enumerate(tasks))
    finally:
        _SHARED = ()


def _indexed(fn, shared, k: int, task) -> tuple[int, Any]:
    return k, fn(shared, task)


def _on_client(client, fn, shared, tasks: Sequence) -> Iterator:
    """The tasks on a Dask cluster, the shared input scattered to every worker once."""
    from distributed import as_completed

    [handle] = client.scatter([shared], broadcast=True, hash=False)  # one object, not its parts
    futures = [client.submit(_indexed, fn, handle, k, task, pure=False, retries=RETRIES)
               for k, task in enumerate(tasks)]
    try:
        for future in as_completed(futures):
            yield future.result()
            future.release()
    finally:
        client.cancel(futures)
        client.cancel([handle])
