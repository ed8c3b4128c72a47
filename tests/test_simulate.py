"""R's random stream (pylme.rbase.rng) and simulate() against lme4's simulate.merMod.

Recorded values: R 4.2.2 (default RNGkind Mersenne-Twister / Inversion):
``set.seed(1); runif(3)`` and ``set.seed(42); rnorm(4)``, printed with digits = 17.
Live tests compare ``fm.simulate(nsim, seed, ...)`` with lme4 1.1-31's
``simulate(lmer(...), nsim, seed, use.u)`` on the same data.
"""
from __future__ import annotations

import numpy as np
import pytest

import pylme
import r_reference
from pylme.rbase.rng import RRandom

RUNIF_SEED1 = [0.26550866314209998, 0.37212389963679016, 0.57285336335189641]
RNORM_SEED42 = [1.37095844714666848, -0.56469817139608869, 0.36312841133733920, 0.63286260496104041]


def test_runif_is_r_stream():
    np.testing.assert_array_equal(RRandom(1).runif(3), RUNIF_SEED1)


def test_rnorm_is_r_stream():
    np.testing.assert_allclose(RRandom(42).rnorm(4), RNORM_SEED42, rtol=1e-15)


def test_seed_must_be_integer():
    with pytest.raises(TypeError, match="seed must be an integer"):
        RRandom(1.5)


@pytest.mark.usefixtures("require_r")
class TestLiveSimulate:
    CASES = [
        ("sleepstudy", "Reaction ~ Days + (Days | Subject)", True),
        ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", True),
        ("Pastes", "strength ~ 1 + (1 | batch/cask)", False),
    ]

    @pytest.mark.parametrize("name,formula,REML", CASES)
    @pytest.mark.parametrize("use_u", [False, True])
    def test_matches_lme4(self, name, formula, REML, use_u):
        data = pylme.datasets.load(name)
        fm = pylme.lmer(formula, data, REML=REML)
        mine = fm.simulate(nsim=3, seed=101, use_u=use_u)
        theirs = r_reference.simulate(formula, data, REML, nsim=3, seed=101, use_u=use_u)
        assert list(mine.columns) == ["sim_1", "sim_2", "sim_3"]
        np.testing.assert_allclose(mine.to_numpy(), theirs, rtol=1e-6)


def test_re_form_semantics():
    """use_u=True is re_form=None (conditional modes kept, residual noise only); keeping a
    term conditions on it and draws the others."""
    data = pylme.datasets.load("Penicillin")
    fm = pylme.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", data)
    a = fm.simulate(2, seed=7, use_u=True)
    b = fm.simulate(2, seed=7, re_form=None)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    # residual noise only: y* - fitted is sigma times R's first 2n normal deviates
    z = RRandom(7).rnorm(2 * fm.n).reshape(2, fm.n).T
    np.testing.assert_allclose(a.to_numpy() - fm.fitted().to_numpy()[:, None], fm.sigma() * z, rtol=1e-10)
    # keeping (1|plate): plate's modes are kept, sample's effects drawn first from the stream
    c = fm.simulate(1, seed=7, re_form="~(1|plate)")
    u = RRandom(7).rnorm(6 + fm.n)
    sample_codes = fm.lmod.reTrms.terms[1].factor.codes
    expected = (fm.predict(re_form="~(1|plate)").to_numpy()
                + fm.sigma() * (fm.theta[1] * u[:6][sample_codes] + u[6:]))
    np.testing.assert_allclose(c["sim_1"].to_numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("nsim", [0, -1, 2.5, True])
def test_bad_nsim(nsim):
    fm = pylme.lmer("Yield ~ 1 + (1 | Batch)", pylme.datasets.load("Dyestuff"))
    with pytest.raises(ValueError, match="nsim must be a positive integer"):
        fm.simulate(nsim=nsim)


def test_partial_term_refused():
    fm = pylme.lmer("Reaction ~ Days + (Days | Subject)", pylme.datasets.load("sleepstudy"))
    with pytest.raises(pylme.FormulaError, match=r"keeps part of \(Days \| Subject\)"):
        fm.simulate(re_form="~(1|Subject)")
