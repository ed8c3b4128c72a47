"""The blocked-Cholesky objective (pylme.blocked) against the CHOLMOD path: the same function of
theta on every corpus case (1e-10 relative at lme4's thetas and at the start), and a fit with
method="blocked" reaching lme4's optimum (lme4 1.1-31 values recorded in the golden records)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import pylme
from conformance.cases import select
from conformance.engines import GoldenEngine
from pylme.blocked import BlockedDevfun, blocked_size, choose

CASES = [c for c in select() if not c.id.startswith("prop_") and c.model != "classroom_childid_level_per_row"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_blocked_objective_equals_cholmod(case):
    ref = GoldenEngine().fit(case)
    if ref.error:  # a deliberate error case: lme4 refuses the model
        with pytest.raises(pylme.PylmeError):
            pylme.lmer(case.formula, case.load_data(), REML=case.REML, weights=case.weights, devFunOnly=True)
        return
    dev = pylme.lmer(case.formula, case.load_data(), REML=case.REML, weights=case.weights, devFunOnly=True)
    blocked = BlockedDevfun(dev)
    for theta in [p["theta"] for p in ref.devfun_at] + [list(dev.start)]:
        assert blocked(np.array(theta)) == pytest.approx(dev(np.array(theta)), rel=1e-10)


def test_blocked_fit_reaches_lme4s_optimum():
    case = next(c for c in select() if c.id == "classroom_3cov_ml")
    ref = GoldenEngine().fit(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(case.formula, case.load_data(), REML=False, control=pylme.lmerControl(method="blocked"))
    assert fm.deviance(REML=False) == pytest.approx(ref.criterion, rel=1e-9)
    np.testing.assert_allclose(fm.theta, ref.theta, atol=1e-4)


def test_auto_chooses_blocked_for_large_models_only():
    big = pylme.lmer("y ~ service + (1 | s) + (1 | d) + (1 | dept:service)", pylme.datasets.load("InstEval"),
                     devFunOnly=True)
    assert blocked_size(big) == 1128 + 28 + 2 + 1  # d, dept:service, X (p = 2), y: the dense Schur complement
    assert isinstance(choose(big, "auto"), BlockedDevfun)
    small = pylme.lmer("Reaction ~ Days + (Days | Subject)", pylme.datasets.load("sleepstudy"), devFunOnly=True)
    assert choose(small, "auto") is small
    with pytest.raises(ValueError, match="method must be"):
        choose(small, "dense")
