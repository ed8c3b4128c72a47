"""refit(newresp) reuses the fitted model's structures (X'X, Z'X, the pattern of Lambdat Zt,
CHOLMOD's symbolic analysis; for a small model the dense Gram matrix of pylme.objectives.dense) and recomputes
only the response's cross-products. The refit's CHOLMOD objective is that of a fresh lmer() on the
new response to the last bit, and so is the dense objective it optimises (both built the same way);
and it reaches the fresh fit's optimum within the conformance tolerances. No R needed; lme4's own
refit is compared in tests/test_extractors.py."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import pylme
from conformance.tolerances import BETA_SE, CRITERION_ABS, SIGMA_REL, THETA_ABS
from pylme.objectives.dense import DenseObjective

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


def _thetas(lower: np.ndarray, k: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [np.where(lower == 0, rng.uniform(0, 2, lower.size), rng.uniform(-1, 1, lower.size)) for _ in range(k)]


@pytest.mark.parametrize("dataset,formula,REML", MODELS, ids=lambda v: str(v))
def test_refit_objective_is_fresh_objective(dataset, formula, REML):
    """The refit's objective and its PLS solution (by the CHOLMOD objective) are the fresh fit's, bit for bit."""
    fm, refitted, fresh = _fits(dataset, formula, REML)
    for theta in _thetas(fresh.lmod.reTrms.lower):
        assert refitted.devfun(theta) == fresh.devfun(theta)
        a, b = refitted.objective.pls_state(theta), fresh.objective.pls_state(theta)
        for name in ("beta", "u", "b", "eta", "RX", "RZX"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    # the original fit is untouched by its refit (nothing shared is overwritten)
    assert fm.opt.objective(fm.theta) == fm.opt.fval


@pytest.mark.parametrize("dataset,formula,REML", MODELS, ids=lambda v: str(v))
def test_refit_dense_objective_is_fresh_objective(dataset, formula, REML):
    """The dense objective refit optimises (the fit's, with the new response's cross-products) is the
    fresh fit's dense objective bit for bit, and its CHOLMOD criterion to 1e-12 relative; the fit's own
    dense objective is still the original's."""
    fm, refitted, fresh = _fits(dataset, formula, REML)
    new, own = refitted.opt.objective, fresh.opt.objective
    assert isinstance(new, DenseObjective) and isinstance(own, DenseObjective)
    for theta in _thetas(fresh.lmod.reTrms.lower) + [fresh.theta]:
        assert new(theta) == own(theta)
        assert new(theta) == pytest.approx(own.cholmod(theta), rel=1e-12, abs=0)
    assert fm.opt.objective(fm.theta) == fm.opt.fval
    # the reported fit is the CHOLMOD solution at the dense objective's optimum
    assert refitted.opt.fval == pytest.approx(new.cholmod(refitted.theta), rel=1e-12, abs=0)


@pytest.mark.parametrize("dataset,formula,REML", MODELS, ids=lambda v: str(v))
def test_refit_reaches_fresh_fit(dataset, formula, REML):
    """refit starts BOBYQA at the old theta, a fresh fit at lme4's start (both on the dense
    objective): they stop within the conformance tolerances of each other (criterion 1e-6
    absolute, theta 1e-4, fixed effects 1e-3 SE, sigma 1e-5 relative)."""
    _, refitted, fresh = _fits(dataset, formula, REML)
    crit = (lambda f: f.REMLcrit()) if REML else (lambda f: f.deviance(REML=False))
    assert abs(crit(refitted) - crit(fresh)) <= CRITERION_ABS.value
    np.testing.assert_allclose(refitted.theta, fresh.theta, rtol=0, atol=THETA_ABS.value)
    se = np.sqrt(np.diag(fresh.vcov()))
    assert np.all(np.abs(refitted.fixef().to_numpy() - fresh.fixef().to_numpy()) <= BETA_SE.value * se)
    assert refitted.sigma() == pytest.approx(fresh.sigma(), rel=SIGMA_REL.value, abs=0)


def test_refit_of_a_large_model_reuses_the_blocks():
    """A model fitted by blocks (n >= 10,000): refit reuses the fit's blocked objective with the new
    response's [X y] cross-products, which is a fresh fit's blocked objective bit for bit (cross map,
    fill block and its order reused), and reaches the fresh fit within the conformance tolerances."""
    from conformance.large_designs import grades
    from pylme.objectives.blocked import BlockedObjective

    des = grades(n=20_000, n_students=1_500, n_instr=400, n_dept=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(des.formula, des.data)
        y = np.round(fm.fitted().to_numpy() + np.random.default_rng(7).normal(0.0, fm.sigma(), fm.n), 6)
        refitted = fm.refit(y)
        fresh = pylme.lmer(des.formula.replace("gr.pt", "ynew", 1), des.data.assign(ynew=y))
    new, own = refitted.opt.objective, fresh.opt.objective
    assert isinstance(new, BlockedObjective) and isinstance(own, BlockedObjective)
    assert new.cross is fm.opt.objective.cross  # reused, not rebuilt
    for theta in _thetas(fresh.lmod.reTrms.lower) + [fresh.theta]:
        assert new(theta) == own(theta)
    assert fm.opt.objective(fm.theta) == fm.opt.fval  # the original is untouched
    assert abs(refitted.REMLcrit() - fresh.REMLcrit()) <= CRITERION_ABS.value
    np.testing.assert_allclose(refitted.theta, fresh.theta, rtol=0, atol=THETA_ABS.value)
    assert refitted.sigma() == pytest.approx(fresh.sigma(), rel=SIGMA_REL.value, abs=0)


@pytest.mark.parametrize("fill", ["dense", "sparse", "tiled"])
def test_blocked_objective_for_a_new_response_has_its_own_workspace(fill):
    """With each kind of fill block (and weights): the objective for a new response is a fresh
    one's bit for bit, shares the fill block's structure but not its workspace, so the fit's
    objective and the refit's give their own values when evaluated at once, each in its thread."""
    from concurrent.futures import ThreadPoolExecutor

    from conformance.large_designs import grades
    from pylme.objectives.blocked import BlockedDevfun

    des = grades(n=20_000, n_students=1_500, n_instr=400, n_dept=20)
    w = np.random.default_rng(8).uniform(0.5, 2.0, len(des.data))
    dev = pylme.lmer(des.formula, des.data, weights=w, devFunOnly=True)
    y = des.data["gr.pt"].to_numpy()[::-1].copy()
    fresh = BlockedDevfun(pylme.lmer(des.formula.replace("gr.pt", "ynew", 1), des.data.assign(ynew=y),
                                     weights=w, devFunOnly=True), fill=fill)
    fitted = BlockedDevfun(dev, fill=fill)
    new = fitted.with_response(fitted.resp.with_y(y))
    assert new.fill is not fitted.fill and new.fill.kind == fill
    thetas = _thetas(dev.lower, k=8)
    for theta in thetas:
        assert new(theta) == fresh(theta)
    serial = ([fitted(t) for t in thetas], [new(t) for t in thetas])
    with ThreadPoolExecutor(2) as pool:  # one thread per objective (an objective itself is not shared)
        for _ in range(5):
            a = pool.submit(lambda: [fitted(t) for t in thetas])
            b = pool.submit(lambda: [new(t) for t in thetas])
            assert (a.result(), b.result()) == serial
