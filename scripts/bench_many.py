"""The many-fits benchmark (``scripts/bench.py --many``): one model, thousands of responses.

A simulated RNA-seq-shaped study (``pylme.datasets.simulate_expression``: 240 samples = 60
individuals x 4 tissues, 6 batches, 20,000 responses), ``expr ~ tissue + age + (1 | individual) +
(1 | batch)``, REML. Timed in one run:

- pylme's ``lmer_many(engine="lockstep")`` on all responses, here (one process), and on a
  LocalCluster of 1 and of 2 worker processes (the speed-up of 2 workers over 1 is reported);
- lme4's ``lmer`` in an R loop and lme4's ``refit`` in an R loop (variancePartition's way), timed
  inside R on the first ``--subset`` responses and scaled to all of them (said so in the output);
- pylme's ``lmer_many`` (both engines: lockstep, and lmer's steps per response), its own ``lmer``
  loop and its ``refit`` loop on the same subset, scaled (run just before lme4's loop, so that
  their ratio to it is least exposed to a change of load);
- the mixedlm package's ``lmer`` in a Python loop on the first ``--subset-mixedlm`` responses,
  scaled, where it is installed.

The lockstep criteria are checked against the separate pylme ``lmer`` fits of the subset and
against lme4's: the largest relative difference, and the largest amount by which they are above
(worse than) the other's. Peak resident memory of the process is read after lmer_many's serial
run (before R is loaded). Writes ``many.json`` to the output folder.
"""
from __future__ import annotations

import json
import resource
import time
import warnings
from pathlib import Path

import numpy as np

import pylme

FORMULA = "expr ~ tissue + age + (1 | individual) + (1 | batch)"


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


LOCKSTEP = {"engine": "lockstep"}


def time_many(samples, Y, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    res = _quiet(pylme.lmer_many, FORMULA, samples, Y, **kwargs)
    return time.perf_counter() - t0, res


def time_cluster(samples, Y, workers: int) -> tuple[float, object]:
    """lmer_many on a fresh LocalCluster of ``workers`` processes (one thread each); the cluster's
    start is not timed."""
    import logging

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("pylme"))  # workers import pylme before the clock starts
        return time_many(samples, Y, client=client, **LOCKSTEP)


def time_pylme_loops(samples, Y) -> dict:
    """pylme's lmer and refit, one response at a time (the subset): times and criteria."""
    t0 = time.perf_counter()
    fits = [_quiet(pylme.lmer, FORMULA, samples.assign(expr=Y[c])) for c in Y.columns]
    lmer_s = time.perf_counter() - t0
    first = fits[0]
    t0 = time.perf_counter()
    for c in Y.columns:
        _quiet(first.refit, Y[c].to_numpy())
    refit_s = time.perf_counter() - t0
    crit = np.array([fm.REMLcrit() for fm in fits])
    return {"lmer_s": lmer_s, "refit_s": refit_s, "criterion": crit}


def time_lme4_loops(samples, Y) -> dict:
    """lme4's lmer and refit loops over the columns of Y, timed inside R."""
    import rpy2.robjects as ro

    import r_reference

    r_reference._bridge()
    ro.globalenv["many_samples"] = r_reference._frame_to_r(samples)
    ro.globalenv["many_Y"] = ro.r["matrix"](ro.FloatVector(Y.to_numpy().ravel(order="F")), nrow=len(Y))
    out = ro.r(f"""local({{
        suppressMessages(library(lme4))
        d <- many_samples
        k <- ncol(many_Y)
        crit <- numeric(k)
        t0 <- proc.time()[["elapsed"]]
        for (j in seq_len(k)) {{
            d$expr <- many_Y[, j]
            fm <- suppressWarnings(suppressMessages(lmer({FORMULA}, d)))
            crit[j] <- REMLcrit(fm)
        }}
        t_lmer <- proc.time()[["elapsed"]] - t0
        d$expr <- many_Y[, 1]
        fm0 <- suppressWarnings(suppressMessages(lmer({FORMULA}, d)))
        t0 <- proc.time()[["elapsed"]]
        for (j in seq_len(k)) fm <- suppressWarnings(suppressMessages(refit(fm0, many_Y[, j])))
        t_refit <- proc.time()[["elapsed"]] - t0
        c(t_lmer, t_refit, crit)
    }})""")
    values = np.asarray(out)
    return {"lmer_s": float(values[0]), "refit_s": float(values[1]), "criterion": values[2:]}


def time_mixedlm_loop(samples, Y) -> float | None:
    """The mixedlm package's lmer over the columns of Y, or None when it is not installed."""
    try:
        import mixedlm
    except ImportError:
        return None
    t0 = time.perf_counter()
    for c in Y.columns:
        _quiet(mixedlm.lmer, FORMULA, samples.assign(expr=Y[c]), REML=True)
    return time.perf_counter() - t0


def _compare(crit: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """The largest relative difference of the criteria from the reference's, and the largest
    relative amount by which they are above it (negative: below it everywhere)."""
    rel = (crit - ref) / np.abs(ref)
    return float(np.max(np.abs(rel))), float(np.max(rel))


def run(n_responses: int, subset: int, subset_mixedlm: int, out: Path) -> dict:
    samples, Y = pylme.datasets.simulate_expression(n_responses, seed=1)
    k = n_responses
    serial_s, res = time_many(samples, Y, **LOCKSTEP)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    table = res.table
    print(f"lmer_many(engine='lockstep'), {k} responses, one process: {serial_s:.1f} s ({1e3 * serial_s / k:.3f} ms "
          f"a response), {int(table['error'].notna().sum())} failed, peak RSS {peak_gb:.2f} GB")
    cluster = {}
    for workers in (1, 2):
        cluster[workers], res_c = time_cluster(samples, Y, workers)
        same = res_c.table.equals(table)
        print(f"lmer_many on a LocalCluster of {workers} worker process(es): {cluster[workers]:.1f} s "
              f"(table equal to the serial one: {same})")
    print(f"  speed-up of 2 workers over 1: {cluster[1] / cluster[2]:.2f}")
    sub = Y.iloc[:, :subset]
    scale = k / subset
    # beside lme4's loop in time: ratios less exposed to the machine's load
    sub_lockstep_s, _ = time_many(samples, sub, **LOCKSTEP)
    sub_many_s, _ = time_many(samples, sub)
    py = time_pylme_loops(samples, sub)
    crit = table["criterion"].to_numpy()[:subset]
    d_pylme, worse_pylme = _compare(crit, py["criterion"])
    r = time_lme4_loops(samples, sub)
    d_lme4, worse_lme4 = _compare(crit, r["criterion"])
    ml_s = time_mixedlm_loop(samples, Y.iloc[:, :subset_mixedlm])
    rows = {
        "pylme lmer_many lockstep (1 process)": serial_s,
        "pylme lmer_many lockstep (LocalCluster, 1 worker)": cluster[1],
        "pylme lmer_many lockstep (LocalCluster, 2 workers)": cluster[2],
        f"pylme lmer_many lockstep (x{scale:g} of {subset})": sub_lockstep_s * scale,
        f"pylme lmer_many engine=lmer (x{scale:g} of {subset})": sub_many_s * scale,
        f"pylme lmer loop (x{scale:g} of {subset})": py["lmer_s"] * scale,
        f"pylme refit loop (x{scale:g} of {subset})": py["refit_s"] * scale,
        f"lme4 lmer loop (x{scale:g} of {subset})": r["lmer_s"] * scale,
        f"lme4 refit loop (x{scale:g} of {subset})": r["refit_s"] * scale,
    }
    if ml_s is not None:
        rows[f"mixedlm lmer loop (x{k / subset_mixedlm:g} of {subset_mixedlm})"] = ml_s * k / subset_mixedlm
    print(f"\n{'engine':48s} {'s for ' + str(k):>12s} {'lme4 loop / this':>17s}")
    lme4_total = r["lmer_s"] * scale
    for name, secs in rows.items():
        print(f"{name:48s} {secs:12.1f} {lme4_total / secs:17.1f}")
    ratios = {"lme4_loop_over_many": lme4_total / serial_s,
              "lme4_loop_over_many_same_subset": r["lmer_s"] / sub_lockstep_s,
              "lme4_loop_over_many_lmer_engine_same_subset": r["lmer_s"] / sub_many_s,
              "lme4_loop_over_many_2_workers": lme4_total / cluster[2],
              "mixedlm_loop_over_many": None if ml_s is None else ml_s * k / subset_mixedlm / serial_s}
    if ratios["mixedlm_loop_over_many"] is not None:
        print(f"\nmixedlm loop / lockstep lmer_many (1 process): {ratios['mixedlm_loop_over_many']:.1f}")
    print(f"\nlockstep criteria against separate pylme lmer fits ({subset}): max relative difference {d_pylme:.1e}, "
          f"most above them {worse_pylme:.1e}; against lme4's: {d_lme4:.1e}, most above them {worse_lme4:.1e}")
    record = {"formula": FORMULA, "n_responses": k, "n_samples": len(samples), "subset": subset,
              "subset_mixedlm": subset_mixedlm, "seconds": rows, "ratios": ratios, "peak_rss_gb": peak_gb,
              "max_rel_criterion_vs_pylme_lmer": d_pylme, "max_rel_criterion_vs_lme4": d_lme4,
              "max_rel_criterion_above_pylme_lmer": worse_pylme, "max_rel_criterion_above_lme4": worse_lme4,
              "failed": int(table["error"].notna().sum())}
    out.mkdir(parents=True, exist_ok=True)
    (out / "many.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"written {out / 'many.json'}")
    return record
