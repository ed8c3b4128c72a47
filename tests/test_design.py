"""The design, the response and the objectives' one interface (issue 15): theta -> Lambda has one
owner (reterms.LambdaMap), a design takes new weights without a new formula, every objective
implements pylme.objectives.objective.Objective and gives the same numbers through it, the one fit driver
keeps the fitted model's class, and the package's modules import one another without circles."""
from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pytest

import pylme
from pylme.inference.anova import refit_ml
from pylme.objectives.blocked import BlockedObjective
from pylme.objectives.dense import DenseObjective
from pylme.fitting.driver import choose_objective
from pylme.fitted.model import LmerMod, MerMod
from pylme.objectives.objective import Objective
from pylme.objectives.pls import CholmodObjective
from pylme.objectives.response import lmer_resp
from pylme.description.reterms import lambda_block

ROOT = Path(__file__).resolve().parents[1]
SLEEP = "Reaction ~ Days + (Days | Subject)"
#: lme4 1.1-31 (R 4.2.2) on sleepstudy, Reaction ~ Days + (Days | Subject) (conformance/golden/sleepstudy_corr_*.json):
#: theta-hat and the REML criterion of the REML fit, the deviance of the ML fit
LME4_THETA = [0.9667417739674123, 0.015169058896036137, 0.23090995320779453]
LME4_REML, LME4_ML = 1743.628271959952, 1751.9393444889909
PENICILLIN = "diameter ~ 1 + (1 | plate) + (1 | sample)"


def _devfun(formula=SLEEP, dataset="sleepstudy", **kwargs):
    return pylme.lmer(formula, pylme.datasets.load(dataset), devFunOnly=True, **kwargs)


def test_lambda_map_is_lambdat_at_theta():
    dev = _devfun()
    lam, theta = dev.design.lam, np.array([0.9, -0.2, 0.3])
    Lt = lam.Lambdat(theta).toarray()
    assert Lt.shape == (36, 36) and lam.ntheta == 3 and lam.nnz == 54
    np.testing.assert_array_equal(Lt[:2, :2], lambda_block(theta, 2).T)  # the first level's block
    np.testing.assert_array_equal(Lt[34:, 34:], lam.block(theta, 0).T)  # and the last's
    assert np.count_nonzero(Lt) == 18 * 3


def test_lambda_map_of_some_terms_is_their_rows_and_columns():
    dev = _devfun(PENICILLIN, "Penicillin")
    lam, theta = dev.design.lam, np.array([1.5, 3.25])
    Gp = lam.Gp
    np.testing.assert_array_equal(Gp, [0, 24, 30])
    sub = lam.sub([1])  # the sample term alone: 6 levels, its theta index 1
    np.testing.assert_array_equal(sub.Lind, np.ones(6, dtype=int))
    np.testing.assert_array_equal(sub.Lambdat(theta).toarray(), 3.25 * np.eye(6))
    np.testing.assert_array_equal(lam.Lambdat(theta).toarray()[Gp[1]:, Gp[1]:], sub.Lambdat(theta).toarray())


def test_reweighted_design_is_the_weighted_fits():
    """New weights through the design give the objective that lmer(weights=) builds, bit for bit."""
    data = pylme.datasets.load("sleepstudy")
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(data))
    plain, weighted = _devfun(), pylme.lmer(SLEEP, data, weights=w, devFunOnly=True)
    design = plain.design.reweighted(np.sqrt(w))
    resp = lmer_resp(plain.resp.y, w, None, True)
    again = CholmodObjective(design, resp)
    for theta in ([1.0, 0.0, 1.0], [0.9, 0.02, 0.23]):
        assert again(np.array(theta)) == weighted(np.array(theta))
    assert design.lam is plain.design.lam and design.Zt is plain.design.Zt  # the structure is shared


@pytest.mark.parametrize("method", ["cholmod", "dense", "blocked"])
def test_every_objective_gives_the_same_numbers_through_the_protocol(method):
    dev = _devfun()
    obj = choose_objective(dev.design, dev.resp, method, start=dev.start, cholmod=dev)
    assert Objective in type(obj).__mro__ and isinstance(obj, {"cholmod": CholmodObjective, "dense": DenseObjective,
                                                           "blocked": BlockedObjective}[method])
    thetas = np.array([LME4_THETA, [0.5, -0.1, 0.4], [1.2, 0.3, 0.0]])
    values = obj.many(thetas)
    np.testing.assert_allclose(values, [dev(t) for t in thetas], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(values, [obj.criterion(t) for t in thetas])
    st, st0 = obj.pls_state(thetas[0]), dev.pls_state(thetas[0])
    np.testing.assert_allclose(st.beta, st0.beta, rtol=1e-10)
    assert obj.deviance(st) == pytest.approx(LME4_REML, rel=1e-12)
    y = dev.resp.y[::-1].copy()
    new, fresh = obj.with_response(dev.resp.with_y(y)), dev.with_response(dev.resp.with_y(y))
    assert new(thetas[1]) == pytest.approx(fresh(thetas[1]), rel=1e-12, abs=0)
    assert obj(thetas[1]) == values[1]  # the original is untouched
    pos = [np.array([2 * k, 2 * k + 1]) for k in range(18)]
    np.testing.assert_allclose(obj.cond_var_blocks(thetas[0], pos), dev.cond_var_blocks(thetas[0], pos), rtol=1e-12)
    assert obj.has_gradient == (method == "blocked") and np.all(obj.lower == [0.0, -np.inf, 0.0])


def test_the_fit_driver_keeps_the_fitted_models_class():
    """refit, refitML and update go through the one driver with the class of the fit they start from."""

    class Subclassed(LmerMod):
        pass

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(SLEEP, pylme.datasets.load("sleepstudy"))
        mine = Subclassed(**{k: getattr(fm, k) for k in ("lmod", "objective", "opt", "conv", "control", "state")})
        refit, ml, updated = mine.refit(fm.lmod.y + 1.0), refit_ml(mine), mine.update(REML=False)
    assert all(type(f) is Subclassed for f in (refit, ml, updated))
    assert isinstance(fm, MerMod) and issubclass(pylme.GlmerMod, MerMod) and not issubclass(pylme.GlmerMod, LmerMod)
    assert refit.fixef()["(Intercept)"] == pytest.approx(fm.fixef()["(Intercept)"] + 1.0, rel=1e-6)
    assert ml.deviance(REML=False) == pytest.approx(LME4_ML, rel=1e-9)
    assert updated.theta == pytest.approx(ml.theta, abs=1e-4)


def _imports(path: Path, package: str) -> set[str]:
    """The modules of ``package`` that a file imports, at its top or inside functions."""
    tree, found = ast.parse(path.read_text()), set()
    own = path.with_suffix("").relative_to(ROOT).parts
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = own[: len(own) - node.level]
            parts = base + tuple(node.module.split(".")) if node.module else base
            names = [parts] if node.module else [base + (a.name,) for a in node.names]
            found.update(".".join(p) for p in names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package + "."):
            found.add(node.module)
    return {m for m in found if m.split(".")[0] == package}


@pytest.mark.parametrize("package", ["pylme", "conformance"])
def test_no_import_circles(package):
    modules = {".".join(p.with_suffix("").relative_to(ROOT).parts): p for p in (ROOT / package).rglob("*.py")}
    modules = {m.removesuffix(".__init__"): p for m, p in modules.items()}
    graph = {m: {i for i in _imports(p, package) if i in modules and i != m and i != package}
             for m, p in modules.items() if not m.endswith("__main__") and m != package}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            assert state.get(n) != 1, f"import circle: {' -> '.join(path + [m, n])}"
            if n not in state:
                visit(n, path + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert len(graph) > (40 if package == "pylme" else 8)
