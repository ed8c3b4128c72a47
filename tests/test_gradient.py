"""The analytic gradient of the blocked criterion (pylme.objectives.gradient) and lmerControl(optimizer="L-BFGS-B")."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import pylme
from conformance.cases import select
from conformance.engines import GoldenEngine
from conformance.large_designs import grades, state_test
from pylme.objectives.blocked import BlockedDevfun

INSTEVAL = "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)"
INSTEVAL_SLOPES = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept) + (0 + service | dept)"
STATE = "score ~ x1 + x12 + (1 | student) + (x12 | teacher)"


def _central_differences(B: BlockedDevfun, theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    return np.array([(B(theta + h * e) - B(theta - h * e)) / (2 * h) for e in np.eye(theta.size)])


def _state_data():
    return state_test(n=20_000, n_students=8_000, n_teachers=300, n_schools=30).data


@pytest.mark.parametrize(
    "dataset, formula, REML, theta, weighted",
    [
        ("InstEval", INSTEVAL, True, [0.3, 0.45, 0.12], False),  # scalar terms; block 2 with X (REML)
        ("InstEval", INSTEVAL, False, [0.3, 0.45, 0.12], False),  # ML: block 2 alone
        ("InstEval", INSTEVAL_SLOPES, False, [0.28, 0.43, 0.05, 0.05, -0.03, 0.11], False),  # 2 x 2 T in block 2
        ("InstEval", INSTEVAL_SLOPES, True, [0.28, 0.43, 0.05, 0.05, -0.03, 0.11], False),
        ("state", STATE, True, [1.3, 0.6, -0.4, 0.2], False),
        ("state", STATE, False, [1.3, 0.6, -0.4, 0.2], True),  # prior weights
        ("sleepstudy", "Reaction ~ Days + (Days | Subject)", True, [0.9, 0.1, 0.2], False),  # 2 x 2 block 1, no block 2
        ("sleepstudy", "Reaction ~ Days + (Days | Subject)", False, [0.9, 0.1, 0.2], False),
    ],
)
def test_gradient_is_the_criterions_derivative(dataset, formula, REML, theta, weighted):
    """At a theta away from the bounds the analytic gradient equals central differences of the
    criterion (step 1e-5) to 1e-6 of its largest component; the criterion is the objective's own."""
    data = _state_data() if dataset == "state" else pylme.datasets.load(dataset)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, len(data)) if weighted else None
    dev = pylme.lmer(formula, data, REML=REML, weights=weights, devFunOnly=True)
    B = BlockedDevfun(dev, fill="dense")
    theta = np.array(theta)
    value, grad = B.criterion_and_gradient(theta)
    assert value == B(theta) == pytest.approx(dev(theta), rel=1e-10)
    fd = _central_differences(B, theta)
    np.testing.assert_allclose(grad, fd, rtol=0, atol=1e-6 * np.max(np.abs(fd)))


def test_gradient_on_the_boundary_takes_one_sided_differences():
    """A theta with a zero diagonal (the teacher term's T singular): that term's components are the
    criterion's one-sided differences into the feasible side; the others stay analytic."""
    dev = pylme.lmer(STATE, _state_data(), devFunOnly=True)
    B = BlockedDevfun(dev, fill="dense")
    theta = np.array([0.5, 0.0, 0.3, 0.4])
    _, grad = B.criterion_and_gradient(theta)
    h = 1e-5
    up = theta + h * np.eye(4)[1]
    assert grad[1] == pytest.approx((B(up) - B(theta)) / h, rel=1e-12)
    assert grad[0] == pytest.approx(_central_differences(B, theta)[0], rel=1e-6)


@pytest.mark.parametrize("REML", [True, False])
def test_lbfgsb_fit_of_insteval_conforms_to_lme4(REML):
    """optimizer="L-BFGS-B" on InstEval: 12 evaluations where BOBYQA takes 68 (79 ML), and a fit
    that passes the conformance full-fit layer against lme4 1.1-31's recorded fit (criterion no
    worse than lme4's, theta within 1e-4, beta, SEs, sigma, modes, messages)."""
    from conformance.compare import fit_layer

    case = next(c for c in select("insteval_full", include_slow=True) if c.REML == REML)
    ref = GoldenEngine().fit(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(case.formula, case.load_data(), REML=REML, control=pylme.lmerControl(optimizer="L-BFGS-B"))
    assert fm.opt.summary.optimizer == "L-BFGS-B" and fm.opt.summary.conv == 0
    assert fm.opt.summary.feval < 20
    assert fit_layer(ref, fm.record()).failures == []
    assert fm.opt.derivs.gradient == pytest.approx(np.zeros(3), abs=0.05)


def test_lbfgsb_refit_reaches_the_bobyqa_fit():
    """refit of an L-BFGS-B fit reuses the blocked objective with its gradient and reaches the optimum
    a fresh (BOBYQA) fit of the new response finds."""
    des = grades(n=20_000, n_students=1_500, n_instr=400, n_dept=20)
    control = pylme.lmerControl(optimizer="L-BFGS-B")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(des.formula, des.data, control=control)
        y = fm.fitted().to_numpy() + np.random.default_rng(4).normal(0.0, fm.sigma(), fm.n)
        refitted = fm.refit(y)
        fresh = pylme.lmer(des.formula, des.data.assign(**{"gr.pt": y}))  # lme4's BOBYQA
    assert refitted.opt.summary.optimizer == "L-BFGS-B" and refitted.opt.summary.feval < 30
    assert refitted.REMLcrit() <= fresh.REMLcrit() + 1e-6
    np.testing.assert_allclose(refitted.theta, fresh.theta, atol=1e-4)


def test_lbfgsb_needs_the_gradient():
    """L-BFGS-B with an objective that has no gradient is refused with the reason; a bad name too."""
    sleep = pylme.datasets.load("sleepstudy")
    with pytest.raises(pylme.PylmeError, match="method='cholmod' has none"):
        pylme.lmer("Reaction ~ Days + (Days | Subject)", sleep,
                   control=pylme.lmerControl(optimizer="L-BFGS-B", method="cholmod"))
    with pytest.raises(ValueError, match="optimizer must be one of 'nloptwrap', 'L-BFGS-B'"):
        pylme.lmer("Reaction ~ Days + (Days | Subject)", sleep, control=pylme.lmerControl(optimizer="bfgs"))
    case = next(iter(select("grades_small", include_slow=True)))
    with pytest.raises(pylme.PylmeError, match="needs block 2 dense .* factored tiled"):
        pylme.lmer(case.formula, case.load_data(), control=pylme.lmerControl(optimizer="L-BFGS-B"))
