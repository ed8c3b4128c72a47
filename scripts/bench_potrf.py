"""Benchmark (``scripts/bench.py --potrf ORDERS``): block 2's dense Cholesky factorisation by tiles
(pylme.objectives.tiled.dense_cholesky) against one LAPACK dpotrf of the whole block, on scipy's
OpenBLAS, at the orders given.

Each factorisation runs in a fresh process (a random diagonally dominant matrix, Fortran order,
one copy), so that one that crashes (scipy-openblas's threaded dpotrf above order ~15,000 with
the AVX-512 kernels: docs/performance.md) is reported as such instead of ending the run; the two
alternate, ``--repeat`` times each. Orders at most COMPARE_MAX are also factored both ways in
one process and the factors compared. Writes ``potrf.json`` in ``--out``.

    .venv/bin/python scripts/bench.py --potrf 8000,12000,16000,20000 --repeat 1
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.linalg import lapack

#: the largest order factored both ways in one process (two copies) to compare the factors
COMPARE_MAX = 12_000


def matrix(n: int, seed: int = 0) -> np.ndarray:
    """A random symmetric positive definite matrix's lower triangle (uniform entries, n added to
    the diagonal), Fortran order, made in place: one n x n copy."""
    S = np.asfortranarray(np.random.default_rng(seed).random((n, n)))
    S[np.diag_indices(n)] += n
    return S


def factor(S: np.ndarray, how: str) -> int:
    """Factor S in place one way; LAPACK's info."""
    from pylme.objectives.tiled import dense_cholesky

    if how == "dpotrf":
        return lapack.dpotrf(S, lower=1, clean=0, overwrite_a=1)[1]
    return dense_cholesky(S)


def one(n: int, how: str) -> dict:
    """Seconds of one factorisation of order n (this process): wall clock, and the CPU time of
    the process's threads (less affected by other processes on a loaded machine)."""
    S = matrix(n)
    factor(matrix(1000), "dpotrf")  # OpenBLAS's threads started before the clock starts
    t, cpu = time.perf_counter(), time.process_time()
    info = factor(S, how)
    return {"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - cpu, "info": int(info)}


def compare(n: int) -> float:
    """The largest difference of the two factors of order n, relative to the largest entry."""
    A = matrix(n)
    B = A.copy(order="F")
    factor(A, "dpotrf")
    factor(B, "tiled")
    low = np.tril_indices(n)
    return float(np.abs(A[low] - B[low]).max() / np.abs(A[low]).max())


def fresh(n: int, how: str) -> dict:
    """``one`` in a fresh process; a crash is reported with its signal."""
    proc = subprocess.run([sys.executable, __file__, str(n), how], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"crashed": proc.returncode, "stderr": proc.stderr.strip().splitlines()[:1]}
    return json.loads(proc.stdout)


def run(orders: list[int], repeat: int, out: Path) -> None:
    """Time both ways at each order, print the table and write potrf.json."""
    from pylme.objectives.tiled import DENSE_TILE

    rows = []
    for n in orders:
        runs = {"dpotrf": [], "tiled": []}
        for _ in range(repeat):
            for how in runs:
                runs[how].append(fresh(n, how))
        row = {"order": n, "tile": DENSE_TILE, **runs}
        times = {how: [r["seconds"] for r in rs if "seconds" in r] for how, rs in runs.items()}
        if times["dpotrf"] and times["tiled"]:
            row["ratio"] = statistics.median(times["tiled"]) / statistics.median(times["dpotrf"])
            cpu = {how: [r["cpu_seconds"] for r in rs if "seconds" in r] for how, rs in runs.items()}
            row["cpu_ratio"] = statistics.median(cpu["tiled"]) / statistics.median(cpu["dpotrf"])
        if n <= COMPARE_MAX:
            row["max_rel_diff"] = compare(n)
        rows.append(row)
        print(f"order {n:6d}: dpotrf {_cell(runs['dpotrf'])}; by tiles of {DENSE_TILE} {_cell(runs['tiled'])}"
              f"{'; tiles/dpotrf %.3f (CPU %.3f)' % (row['ratio'], row['cpu_ratio']) if 'ratio' in row else ''}"
              f"{'; factors differ by %.1e' % row['max_rel_diff'] if 'max_rel_diff' in row else ''}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "potrf.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"written {out / 'potrf.json'}")


def _cell(runs: list[dict]) -> str:
    return ", ".join(f"{r['seconds']:.1f} s ({r['cpu_seconds']:.1f} s CPU)" if "seconds" in r
                     else f"crashed (exit {r['crashed']})" for r in runs)


if __name__ == "__main__":
    print(json.dumps(one(int(sys.argv[1]), sys.argv[2])))
