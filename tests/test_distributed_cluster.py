"""pylme.lmer on a dask DataFrame with a dask.distributed Client (a LocalCluster of 2 worker
processes): the partitions' statistics are computed on the workers, the fit equals the
in-memory fit, and the lazy residuals are computed there too."""
from __future__ import annotations

import logging
import warnings

import dask.dataframe as dd
import distributed  # the 'cluster' extra, which scripts/setup.sh installs
import numpy as np

import pylme
from pylme import datasets
from test_distributed import assert_same_fit


def test_penicillin_on_a_local_cluster_equals_in_memory():
    d = datasets.load("Penicillin")
    formula = "diameter ~ 1 + (1 | plate) + (1 | sample)"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as cluster, distributed.Client(cluster) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fm0 = pylme.lmer(formula, d)
            fm = pylme.lmer(formula, dd.from_pandas(d, npartitions=6, sort=False), client=client)
        assert_same_fit(fm0, fm)
        assert str(fm.summary()) == str(fm0.summary())
        res = client.compute(fm.residuals()).result()
        np.testing.assert_allclose(res.sort_index().to_numpy(), fm0.residuals().to_numpy(), rtol=1e-6, atol=1e-9)
