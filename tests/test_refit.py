"""refit(newresp) reuses the fitted model's structures (X'X, Z'X, the pattern of Lambdat Zt,
CHOLMOD's symbolic analysis) and recomputes only the response's cross-products: its objective is
the objective of a fresh lmer() on the new response, to the last bit, and it reaches the same
optimum. No R needed; lme4's own refit is compared in tests/test_extractors.py."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import pylme

MODELS = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)", True),
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)", False),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", True),
    ("cbpp", "incidence ~ period + offset(log(size)) + (1 | herd)", False),
]


def _fits(dataset: str, formula: str, REML: bool):
    """A fit, its refit to a response simulated from it (seeded), and a fresh fit to that response."""
    data = pylme.datasets.load(dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(formula, data, REML=REML)
        rng = np.random.default_rng(20241122)
        y = np.round(fm.fitted().to_numpy() + rng.normal(0.0, fm.sigma(), fm.n), 6)
        refitted = fm.refit(y)
        response = fm.lmod.formula.response_label
        fresh = pylme.lmer(formula.replace(response, "ynew", 1), data.assign(ynew=y), REML=REML)
    return fm, refitted, fresh


@pytest.mark.parametrize("dataset,formula,REML", MODELS, ids=lambda v: str(v))
def test_refit_objective_is_fresh_objective(dataset, formula, REML):
    fm, refitted, fresh = _fits(dataset, formula, REML)
    rng = np.random.default_rng(1)
    lower = fresh.lmod.reTrms.lower
    for _ in range(5):
        theta = np.where(lower == 0, rng.uniform(0, 2, lower.size), rng.uniform(-1, 1, lower.size))
        assert refitted.devfun(theta) == fresh.devfun(theta)
        a, b = refitted.devfun.solve(theta), fresh.devfun.solve(theta)
        for name in ("beta", "u", "b", "eta", "RX", "RZX"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    # the original fit is untouched by its refit (nothing shared is overwritten)
    assert fm.devfun(fm.theta) == fm.opt.fval


@pytest.mark.parametrize("dataset,formula,REML", MODELS, ids=lambda v: str(v))
def test_refit_reaches_fresh_fit(dataset, formula, REML):
    """refit starts BOBYQA at the old theta, a fresh fit at lme4's start, so they stop at points
    within the optimiser's tolerances of each other: criteria to 1e-9, theta to 1e-4, fitted values
    to 2e-5 (relative)."""
    _, refitted, fresh = _fits(dataset, formula, REML)
    crit = (lambda f: f.REMLcrit()) if REML else (lambda f: f.deviance(REML=False))
    assert crit(refitted) == pytest.approx(crit(fresh), rel=1e-9)
    np.testing.assert_allclose(refitted.theta, fresh.theta, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(refitted.fixef(), fresh.fixef(), rtol=1e-6)
    assert refitted.sigma() == pytest.approx(fresh.sigma(), rel=1e-5)
    np.testing.assert_allclose(refitted.fitted(), fresh.fitted(), rtol=2e-5)
