"""Benchmark of fits from partitioned Parquet data sets through Dask (``scripts/bench.py --bigdata``).

    .venv/bin/python scripts/bench.py --bigdata state      # 5.2M rows, 64 partitions: Dask fit vs in-memory fit
    .venv/bin/python scripts/bench.py --bigdata state10    # 52M rows written chunk by chunk, LocalCluster of 2 workers
    .venv/bin/python scripts/bench.py --bigdata movielens  # 10M ratings, 100k users x 20k items crossed
    .venv/bin/python scripts/bench.py --bigdata movielens2m  # 2M ratings, 100k users x 5k items
    .venv/bin/python scripts/bench.py --bigdata movielens2m --memory-limit 1.5e9  # without the cross map

Data sets are written once under ``--data`` (default ``reports/bigdata``) and reused. Each fit
runs in its own process, which reports its wall time, its peak resident memory (the client's;
with a LocalCluster also each worker's) and the estimates; rows go to ``bigdata.json``.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

STATE_FORMULA = ("score ~ year + grade + " + " + ".join(f"x{k}" for k in range(1, 21))
                 + " + (1 | student) + (1 | teacher)")


def _as_stored(frame: pd.DataFrame) -> pd.DataFrame:
    """A simulated frame as it is stored: factors of numbers as integers (grouping) or strings."""
    out = frame.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            codes = np.asarray(out[c].cat.categories)[out[c].cat.codes]
            out[c] = codes.astype(np.int64) if c in ("student", "teacher", "user", "item") else codes.astype(str)
    return out


def write_partitions(frames, path: Path) -> dict:
    """Write each frame of ``frames`` (an iterable) as one Parquet file; returns rows and files."""
    path.mkdir(parents=True, exist_ok=True)
    rows, files, truth = 0, 0, None
    for k, (frame, t) in enumerate(frames):
        _as_stored(frame).to_parquet(path / f"part.{k:04d}.parquet", index=False)
        rows, files, truth = rows + len(frame), files + 1, t
    (path / "_truth.json").write_text(json.dumps({"rows": rows, "files": files, "truth": truth}, default=float))
    return {"rows": rows, "files": files}


def state_frames(npartitions: int):
    """The state-test design cut into ``npartitions`` row ranges (generated whole: 5.2M rows)."""
    from conformance.large_designs import state_test

    des = state_test()
    bounds = np.linspace(0, len(des.data), npartitions + 1).astype(int)
    for a, b in zip(bounds[:-1], bounds[1:]):
        yield des.data.iloc[a:b], des.truth


def state10_frames(nchunks: int):
    from conformance.large_designs import state_test_chunks

    return state_test_chunks(10, nchunks)


def movielens_frames(nchunks: int):
    from conformance.large_designs import ratings_chunks

    return ratings_chunks(nchunks=nchunks)


def movielens2m_frames(nchunks: int):
    """The same shape with 2 million ratings of 5,000 items (block 2 small enough to factor here)."""
    from conformance.large_designs import ratings_chunks

    return ratings_chunks(n=2_000_000, n_items=5_000, nchunks=nchunks)


def fit_one(kind: str, path: str, formula: str, workers: int, memory_limit: float | None = None) -> dict:
    """One fit in this process: 'memory' (the whole Parquet data set read into pandas) or 'dask'
    (dd.read_parquet; a LocalCluster of ``workers`` worker processes, or dask's default scheduler
    for 0); ``memory_limit``: lmerControl's."""
    import pylme

    t0 = time.perf_counter()
    client = cluster = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "memory":
            data = pd.read_parquet(path)
            read = time.perf_counter() - t0
        else:
            import dask.dataframe as dd

            if workers:
                import logging

                import distributed

                cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                   dashboard_address=None, silence_logs=logging.CRITICAL,
                                                   memory_limit=0)
                client = distributed.Client(cluster)
            data = dd.read_parquet(path)
            read = 0.0
        t1 = time.perf_counter()
        error = None
        try:
            fm = pylme.lmer(formula, data, control=pylme.lmerControl(memory_limit=memory_limit),
                            **({"client": client} if client else {}))
        except Exception as exc:  # the in-memory refusal of a design too large is a result
            error = f"{type(exc).__name__}: {exc}"
        fit = time.perf_counter() - t1
    row = {"kind": kind, "workers": workers, "read_s": read, "fit_s": fit,
           "client_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if client is not None:
        peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
        row["worker_peak_rss_gb"] = sorted(peaks.values())
        client.close()
        cluster.close()
    if error:
        row["error"] = error
        return row
    row.update({"n": fm.nobs(), "evals": fm.opt.summary.feval, "criterion": fm.REMLcrit(), "theta": fm.theta.tolist(),
                "names": fm.fixef().index.tolist(), "beta": fm.fixef().tolist(), "se": np.sqrt(np.diag(fm.vcov().to_numpy())).tolist(),
                "sigma": fm.sigma(), "sd": dict(zip([t.group for t in fm.lmod.reTrms.terms],
                                                    (fm.theta * fm.sigma()).tolist())),
                "memory_plan": fm.objective.memory_plan()})
    return row


def _child(kind: str, path: Path, formula: str, workers: int, memory_limit: float | None) -> dict:
    cmd = [sys.executable, __file__, "--one", kind, str(path), formula, str(workers), str(memory_limit or "")]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if done.returncode:
        return {"kind": kind, "error": done.stderr[-3000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(a: dict, b: dict) -> dict:
    """The Dask fit against the in-memory fit, in the issue's units."""
    se = np.array(b["se"])
    return {"criterion_rel": abs(a["criterion"] / b["criterion"] - 1),
            "theta_max_abs": float(np.max(np.abs(np.array(a["theta"]) - b["theta"]))),
            "beta_max_se": float(np.max(np.abs(np.array(a["beta"]) - b["beta"]) / se))}


def run(which: str, data_root: Path, out: Path, memory_limit: float | None = None) -> None:
    """Write the data set if needed, fit it (with lmerControl's ``memory_limit``), print and record
    the figures."""
    from conformance.large_designs import RATINGS_FORMULA

    setups = {
        "state": (state_frames, 64, STATE_FORMULA, ["memory", "dask"], 0),
        "state10": (state10_frames, 60, STATE_FORMULA, ["dask"], 2),
        "movielens": (movielens_frames, 50, RATINGS_FORMULA, ["dask"], 0),
        "movielens2m": (movielens2m_frames, 50, RATINGS_FORMULA, ["dask", "memory"], 0),
    }
    frames, parts, formula, kinds, workers = setups[which]
    path = data_root / which
    if not (path / "_truth.json").exists():
        t0 = time.perf_counter()
        info = write_partitions(frames(parts), path)
        print(f"{which}: wrote {info['rows']} rows in {info['files']} Parquet files in {time.perf_counter() - t0:.0f} s")
    truth = json.loads((path / "_truth.json").read_text())
    rows = {}
    for kind in kinds:
        rows[kind] = row = _child(kind, path, formula, workers if kind == "dask" else 0, memory_limit)
        if "error" in row:
            print(f"{which} {kind}: {row['error'].strip().splitlines()[-1]} (client peak "
                  f"{row.get('client_peak_rss_gb', float('nan')):.2f} GB)")
            continue
        print(f"{which} {kind}: n={row['n']} fit {row['fit_s']:.1f} s (+ read {row['read_s']:.1f} s), "
              f"{row['evals']} evaluations, client peak RSS {row['client_peak_rss_gb']:.2f} GB"
              + (f", workers {row['worker_peak_rss_gb']}" if "worker_peak_rss_gb" in row else ""))
        print(f"  criterion {row['criterion']:.6f}; sd " + ", ".join(f"{g} {v:.4f} (truth {truth['truth']['sd'][g]})"
              for g, v in row["sd"].items()) + f", sigma {row['sigma']:.4f} (truth {truth['truth']['sigma']})")
        print("  beta " + ", ".join(f"{nm} {b:.4f} (se {se:.4f}, truth {truth['truth']['beta'].get(nm, float('nan')):.4f})"
                                    for nm, b, se in zip(row["names"], row["beta"], row["se"])))
        print("  " + row["memory_plan"].replace("\n", "\n  "))
    if "memory" in rows and "dask" in rows and "error" not in rows["memory"] and "error" not in rows["dask"]:
        rows["equality"] = compare(rows["dask"], rows["memory"])
        print(f"  Dask vs in-memory: {rows['equality']}")
    out.mkdir(parents=True, exist_ok=True)
    record = out / "bigdata.json"
    old = json.loads(record.read_text()) if record.exists() else {}
    old[which if memory_limit is None else f"{which} memory_limit={memory_limit:g}"] = rows
    record.write_text(json.dumps(old, indent=1, default=float) + "\n")
    print(f"written {record}")


if __name__ == "__main__":
    if sys.argv[1] == "--one":
        limit = float(sys.argv[6]) if sys.argv[6] else None
        print(json.dumps(fit_one(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), limit), default=float))
