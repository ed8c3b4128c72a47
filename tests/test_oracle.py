"""The dense marginal-model oracle (conformance/oracle.py) against pylme's PLS objective.

The two compute lme4's profiled criterion by different routes (dense Cholesky of the n x n
marginal covariance vs. sparse Cholesky of the q x q penalized system), so agreement to
1e-10 relative at arbitrary thetas checks pylme's objective without R. One test also checks
the oracle itself, on a weighted model, against lme4's devFunOnly objective (needs R).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pylme
from conformance.cases import DERIVATIONS
from conformance.designs import designs, hypothesis_profile
from conformance.oracle import DenseOracle

REL = 1e-10

# the profiles "ci" and "deep" are registered here, through conformance.designs
PROFILE = hypothesis_profile()


def _data(name: str):
    if name == "cbpp_prop":
        return DERIVATIONS["cbpp_prop"](pylme.datasets.load("cbpp"))
    return pylme.datasets.load(name)


# (id, data set, formula, weights)
BUNDLED = [
    ("dyestuff", "Dyestuff", "Yield ~ 1 + (1 | Batch)", None),
    ("sleepstudy", "sleepstudy", "Reaction ~ Days + (Days | Subject)", None),
    ("sleepstudy_uncorrelated", "sleepstudy", "Reaction ~ Days + (Days || Subject)", None),
    ("penicillin", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", None),
    ("pastes_nested", "Pastes", "strength ~ 1 + (1 | batch/cask)", None),
    ("cbpp_weighted", "cbpp_prop", "prop ~ period + (1 | herd)", "size"),
    ("cbpp_offset", "cbpp", "incidence ~ period + offset(log(size)) + (1 | herd)", None),
]


def _thetas(lower: np.ndarray, start: np.ndarray, k: int = 6, seed: int = 1) -> list[np.ndarray]:
    """The start, theta = 0 (every variance zero) and random thetas (diagonal in [0, 3],
    off-diagonal in [-2, 2]), one with a diagonal element on its bound."""
    rng = np.random.default_rng(seed)
    diag = lower == 0
    out = [np.asarray(start, dtype=float), np.zeros_like(lower)]
    for j in range(k):
        th = np.where(diag, rng.uniform(0, 3, lower.size), rng.uniform(-2, 2, lower.size))
        if j == 0:
            th[np.flatnonzero(diag)[0]] = 0.0
        out.append(th)
    return out


def _rel(a: float, b: float) -> float:
    """|a - b| relative to |b| (to 1 when |b| < 1: a criterion near 0 has no relative scale)."""
    return abs(a - b) / max(abs(b), 1.0)


@pytest.mark.parametrize("REML", [True, False], ids=["reml", "ml"])
@pytest.mark.parametrize("name,dataset,formula,weights", BUNDLED, ids=[b[0] for b in BUNDLED])
def test_oracle_equals_pylme_objective_bundled(name, dataset, formula, weights, REML):
    data = _data(dataset)
    oracle = DenseOracle(formula, data, REML=REML, weights=weights)
    devfun = pylme.lmer(formula, data, REML=REML, weights=weights, devFunOnly=True)
    for theta in _thetas(np.asarray(devfun.lower), devfun.start):
        dense, pls = oracle.fit_at(theta), devfun.pls_state(theta)
        crit = devfun.deviance(pls)
        assert _rel(dense.criterion, crit) <= REL, (theta, dense.criterion, crit)
        # the by-products agree too: beta (GLS = PLS), r'V^-1 r = pwrss, log|V| = ldL2 - ldW
        assert np.allclose(dense.beta, pls.beta, rtol=1e-8, atol=1e-8 * np.max(np.abs(pls.beta))), theta
        assert _rel(dense.rss, pls.pwrss) <= 1e-9
        assert _rel(dense.logdet_V, pls.ldL2 - devfun.resp.ldW) <= 1e-9
        if REML:
            assert _rel(dense.logdet_XtVinvX, pls.ldRX2) <= 1e-9
        b = oracle.Lambda(theta) @ dense.u
        assert np.allclose(b, pls.b, rtol=1e-7, atol=1e-8 * max(np.max(np.abs(pls.b)), 1e-300)), theta


def test_oracle_at_pylme_optimum_sleepstudy():
    """At the optimum too (REML), and the oracle's sigma is lme4's."""
    sleep = pylme.datasets.load("sleepstudy")
    fm = pylme.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    oracle = DenseOracle("Reaction ~ Days + (Days | Subject)", sleep, REML=True)
    fit = oracle.fit_at(fm.opt.par)
    assert _rel(fit.criterion, fm.REMLcrit()) <= REL
    assert abs(fit.sigma / fm.sigma() - 1) <= 1e-9


@pytest.mark.usefixtures("require_r")
@pytest.mark.parametrize("REML", [True, False], ids=["reml", "ml"])
@pytest.mark.parametrize("name,dataset,formula,weights",
                         [b for b in BUNDLED if b[0] in ("cbpp_weighted", "cbpp_offset", "sleepstudy")],
                         ids=["sleepstudy", "cbpp_weighted", "cbpp_offset"])
def test_oracle_equals_lme4_devfun(name, dataset, formula, weights, REML):
    """The oracle's definition is lme4's, the prior-weights constant included (needs R)."""
    import r_reference

    data = _data(dataset)
    oracle = DenseOracle(formula, data, REML=REML, weights=weights)
    thetas = _thetas(oracle.lower, np.ones(oracle.ntheta), k=3, seed=7)
    ref = r_reference.devfun_values(formula, data, [list(t) for t in thetas], REML=REML, weights=weights)
    for theta, point in zip(thetas, ref):
        assert _rel(oracle(theta), point["value"]) <= REL, (theta, oracle(theta), point["value"])


@st.composite
def _design_and_thetas(draw):
    design = draw(designs())
    lmod = pylme.lFormula(design.formula, design.data, REML=design.REML, weights=design.weights)
    lower = lmod.reTrms.lower
    thetas = []
    for _ in range(3):
        th = [draw(st.one_of(st.just(0.0), st.floats(0.0, 3.0)) if lo == 0 else st.floats(-2.0, 2.0), label="theta")
              for lo in lower]
        thetas.append(np.array(th))
    return design, thetas


@PROFILE
@given(_design_and_thetas())
def test_oracle_equals_pylme_objective_drawn(case):
    """For drawn designs (conformance/designs.py) at drawn thetas; no R needed."""
    design, thetas = case
    oracle = DenseOracle(design.formula, design.data, REML=design.REML, weights=design.weights)
    devfun = pylme.lmer(design.formula, design.data, REML=design.REML, weights=design.weights, devFunOnly=True)
    for theta in thetas + [np.asarray(devfun.start, dtype=float)]:
        dense, pls = oracle(theta), devfun(theta)
        assert _rel(pls, dense) <= REL, (
            f"{design.formula} ({'REML' if design.REML else 'ML'}) at theta {theta.tolist()}: "
            f"pylme {pls!r} vs dense {dense!r} (rel. {_rel(pls, dense):.3g}); design: {design.description}")
