"""The dense objective (pylme.objectives.dense, what lmer and refit optimise for small models) is the CHOLMOD
objective (pylme.objectives.pls, lme4's arithmetic) to rounding: over every corpus case small enough for it, at
theta-hat, half of it and 1.5 theta-hat + 0.1, the two criteria agree to 1e-12 relative; so do they
after ``with_response``.
No R needed (the CHOLMOD objective is itself checked against lme4 by the conformance harness)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import pylme
from conformance.cases import load_corpus
from pylme.objectives.dense import DenseObjective, is_small
from pylme.errors import PylmeError

REL = 1e-12


def _abs_tol(devfun, theta, n: int) -> float:
    """The criterion is a sum of terms (the log-determinant ldL2, n log(2 pi pwrss / n), ...) that
    the two objectives round differently; where the sum nearly cancels (the property designs
    prop_0411c664d2 and prop_3ede460496: -5.8 and -39.0 from ldL2 about 100, n 17 and 26, theta up
    to 546) their agreement is a few roundings of those terms, 1e-12 of |ldL2| + n, not of the sum."""
    return 4 * REL * (abs(devfun.pls_state(theta).ldL2) + n)


def _small_cases():
    cases = []
    for case in load_corpus():
        try:
            devfun = pylme.lmer(case.formula, case.load_data(), REML=case.REML, weights=case.weights, devFunOnly=True)
        except PylmeError:  # the corpus's bad-input cases
            continue
        if is_small(devfun.design):
            cases.append(case)
    return cases


CASES = _small_cases()


def _ids(case) -> str:
    return f"{case.formula} REML={case.REML}" + (f" w={case.weights}" if case.weights else "")


def test_corpus_has_small_cases():
    assert len(CASES) >= 60  # sleepstudy, Dyestuff, Penicillin, Pastes, cbpp, cake, simulated designs


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_dense_criterion_is_cholmod_criterion(case):
    data = case.load_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(case.formula, data, REML=case.REML, weights=case.weights)
    devfun = pylme.lmer(case.formula, data, REML=case.REML, weights=case.weights, devFunOnly=True)
    dense = DenseObjective(devfun.design, devfun.resp, devfun.start, devfun)
    thetas = [fm.theta, 0.5 * fm.theta, 1.5 * fm.theta + 0.1]
    tol = max(_abs_tol(devfun, theta, fm.n) for theta in thetas)
    for theta in thetas:
        assert dense(theta) == pytest.approx(devfun(theta), rel=REL, abs=tol)
    np.testing.assert_allclose(dense.many(np.array(thetas)), [devfun(t) for t in thetas], rtol=REL, atol=tol)
    y = fm.fitted().to_numpy() + np.random.default_rng(7).normal(0.0, fm.sigma(), fm.n)
    new, new_cholmod = dense.with_response(devfun.resp.with_y(y)), devfun.with_response(devfun.resp.with_y(y))
    for theta in thetas:
        assert new(theta) == pytest.approx(new_cholmod(theta), rel=REL, abs=tol)
    assert dense(fm.theta) == pytest.approx(devfun(fm.theta), rel=REL, abs=tol)  # the original is untouched


def test_large_models_keep_cholmod():
    data = pylme.datasets.load("classroom")
    devfun = pylme.lmer("mathgain ~ 1 + (1 | classid) + (1 | schoolid)", data, devFunOnly=True)
    assert devfun.design.q + devfun.design.p + 1 > 300
    assert not is_small(devfun.design)
