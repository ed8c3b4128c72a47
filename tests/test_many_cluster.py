"""Many fits, the bootstrap and profiles on a real Dask cluster (a LocalCluster of 2 worker processes): the
results equal the serial ones, bad input on one response does not stop the others, and a worker
killed in the middle of a run loses no response (Dask runs its tasks again elsewhere)."""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
import warnings

import numpy as np
import distributed  # the 'cluster' extra, which scripts/setup.sh installs
import pandas as pd
import pytest

import pylme


FORMULA = "expr ~ tissue + age + (1 | individual) + (1 | batch)"


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def study():
    samples, Y = pylme.datasets.simulate_expression(40, n_individuals=15, seed=5)
    Y.iloc[:4, 1] = np.nan
    Y["constant"] = 1.0
    Y["all_missing"] = np.nan
    Y["text"] = "x"
    return samples, Y


def test_cluster_table_equals_serial(client, study):
    samples, Y = study
    serial = pylme.lmer_many(FORMULA, samples, Y)
    on_cluster = pylme.lmer_many(FORMULA, samples, Y, client=client, chunk_size=3)
    pd.testing.assert_frame_equal(on_cluster.table, serial.table)
    assert set(on_cluster.errors.index) == {"all_missing", "text"}
    assert on_cluster.table["error"].isna().sum() == 41  # the others all fitted
    lockstep = pylme.lmer_many(FORMULA, samples, Y, engine="lockstep")  # responses optimised together, per task
    pd.testing.assert_frame_equal(pylme.lmer_many(FORMULA, samples, Y, client=client, chunk_size=7,
                                                  engine="lockstep").table, lockstep.table)


def test_bootstrap_on_cluster_equals_serial(client):
    sleep = pylme.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        serial = pylme.bootMer(fm, lambda m: m.fixef(), nsim=12, seed=42)
        on_cluster = pylme.bootMer(fm, lambda m: m.fixef(), nsim=12, seed=42, client=client)
        pd.testing.assert_frame_equal(on_cluster.t, serial.t)
        ci = fm.confint(method="boot", nsim=12, seed=7, client=client)
        pd.testing.assert_frame_equal(ci, fm.confint(method="boot", nsim=12, seed=7))


def test_profile_across_parameters_equals_serial(client):
    fm = pylme.lmer("Yield ~ 1 + (1 | Batch)", pylme.datasets.load("Dyestuff"))
    serial = fm.profile()
    for kwargs in ({"client": client}, {"n_jobs": 2}):
        pd.testing.assert_frame_equal(fm.profile(**kwargs).frame, serial.frame)
    pd.testing.assert_frame_equal(fm.confint(client=client), serial.confint())


def _finished(dask_scheduler) -> int:
    """Tasks of pylme.parallel that have finished on the cluster (run on the scheduler)."""
    return sum(1 for key, ts in dask_scheduler.tasks.items() if str(key).startswith("_indexed") and ts.state == "memory")


def test_a_worker_killed_mid_run_loses_no_response(client, study):
    samples, Y = study
    serial = pylme.lmer_many(FORMULA, samples, Y)
    victim = next(iter(client.run(os.getpid).values()))
    out, ntasks = {}, len(Y.columns)  # chunk_size=1: one task per response
    run = threading.Thread(target=lambda: out.setdefault("res", pylme.lmer_many(FORMULA, samples, Y, client=client,
                                                                                 chunk_size=1)))
    run.start()
    deadline = time.monotonic() + 120
    while client.run_on_scheduler(_finished) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    done_at_kill = client.run_on_scheduler(_finished)
    os.kill(victim, signal.SIGKILL)
    run.join(timeout=300)
    assert 3 <= done_at_kill < ntasks  # killed in the middle of the run
    pd.testing.assert_frame_equal(out["res"].table, serial.table)
    assert victim not in client.run(os.getpid).values()  # the worker was killed (its nanny started another)
