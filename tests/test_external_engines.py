"""The optional external engines of the conformance harness (conformance/external_engines.py):
statsmodels' MixedLM and the ``mixedlm`` package. Their tests skip when the package is missing.

What is asserted is the adapters' mapping (R's names, lme4's theta parametrisation and term
order, level labels, shapes) and, on sleepstudy's well-posed models, agreement with lme4 to the
engines' optimiser precision, not that the engines equal lme4. Found with statsmodels 0.15 and
mixedlm 1.3 against the recorded lme4 1.1-31 fits: the criteria agree within 1.1e-7 (absolute,
on ~1750), theta within 8e-5, sigma within 6e-6 relative, standard errors within 5e-5 relative,
conditional modes within 1e-4 conditional SDs.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

import pylme
from conformance import run
from conformance.cases import Case
from conformance.engines import make_engine
from conformance.outcomes import Unsupported
from pylme.fitted.record import FitRecord
from tests.reference_data import fits

ENGINES = ["statsmodels", "mixedlm"]
SLEEP = {
    "sleepstudy_corr": "Reaction ~ Days + (Days | Subject)",
    "sleepstudy_intercept": "Reaction ~ Days + (1 | Subject)",
}


def case(model: str, dataset: str, formula: str, REML: bool, **kw) -> Case:
    return Case(id=f"{model}_{'reml' if REML else 'ml'}", model=model, dataset=dataset, formula=formula,
                REML=REML, **kw)


def engine_or_skip(name: str):
    try:
        return make_engine(name)
    except Unsupported as exc:  # an optional engine that is not installed
        pytest.skip(str(exc))


@pytest.fixture(params=ENGINES)
def engine(request):
    return engine_or_skip(request.param)


def vector(rec: FitRecord, field: str, grp: str, col: str) -> np.ndarray:
    return np.array(list(getattr(rec, field)[grp][col].values()))


def assert_same_shape(rec: FitRecord, ref: FitRecord) -> None:
    """The record is laid out as lme4's: names, orders, lengths, level labels."""
    assert rec.error is None, rec.error
    assert rec.n == ref.n
    assert list(rec.beta) == list(ref.beta)
    assert list(rec.beta_se) == list(ref.beta_se)
    assert np.shape(rec.vcov) == np.shape(ref.vcov)
    assert len(rec.theta) == len(ref.theta)
    assert [(r["grp"], r["var1"], r["var2"]) for r in rec.varcorr] == \
        [(r["grp"], r["var1"], r["var2"]) for r in ref.varcorr]
    assert list(rec.ranef) == list(ref.ranef)
    for grp, cols in ref.ranef.items():
        assert list(rec.ranef[grp]) == list(cols)
        assert list(rec.condvar_sd[grp]) == list(cols)
        for col, levels in cols.items():
            assert list(rec.ranef[grp][col]) == list(levels)
            assert list(rec.condvar_sd[grp][col]) == list(levels)
    assert len(rec.fitted) == len(rec.residuals) == ref.n


def assert_close_fit(rec: FitRecord, ref: FitRecord, crit_rel: float = 1e-6) -> None:
    """Agreement to the engine's optimiser precision (far looser than the harness's tolerances,
    far tighter than any mis-mapping would give)."""
    assert abs(rec.criterion - ref.criterion) <= crit_rel * abs(ref.criterion)
    assert rec.logLik == pytest.approx(-rec.criterion / 2)
    npar = len(ref.beta) + len(ref.theta) + 1
    assert rec.AIC == pytest.approx(rec.criterion + 2 * npar)
    assert rec.BIC == pytest.approx(rec.criterion + np.log(rec.n) * npar)
    assert rec.AIC - ref.AIC == pytest.approx(rec.criterion - ref.criterion, abs=1e-9)
    np.testing.assert_allclose(rec.theta, ref.theta, atol=1e-3)
    se = np.array(list(ref.beta_se.values()))
    assert np.max(np.abs(np.subtract(list(rec.beta.values()), list(ref.beta.values()))) / se) < 1e-3
    np.testing.assert_allclose(list(rec.beta_se.values()), se, rtol=1e-3)
    np.testing.assert_allclose(rec.vcov, ref.vcov, rtol=2e-3, atol=1e-6 * np.max(np.abs(ref.vcov)))
    assert rec.sigma == pytest.approx(ref.sigma, rel=1e-4)
    np.testing.assert_allclose([r["vcov"] for r in rec.varcorr], [r["vcov"] for r in ref.varcorr], rtol=2e-3)
    for grp, cols in ref.ranef.items():
        for col in cols:
            sd = vector(ref, "condvar_sd", grp, col)
            d = np.abs(vector(rec, "ranef", grp, col) - vector(ref, "ranef", grp, col))
            assert np.max(d / sd) < 1e-2, (grp, col)
            np.testing.assert_allclose(vector(rec, "condvar_sd", grp, col), sd, rtol=1e-3)
    np.testing.assert_allclose(rec.fitted, ref.fitted, atol=1e-3)
    np.testing.assert_allclose(np.add(rec.fitted, rec.residuals), np.add(ref.fitted, ref.residuals), atol=1e-9)
    assert rec.is_singular == ref.is_singular


@pytest.mark.parametrize("REML", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("model", list(SLEEP))
def test_sleepstudy_against_recorded_lme4(engine, model, REML):
    c = case(model, "sleepstudy", SLEEP[model], REML)
    ref = FitRecord.from_dict(fits()[c.id]["record"])
    rec = engine.fit(c, c.load_data())
    assert rec.engine == engine.name and rec.engine_version
    assert rec.REML is REML and rec.formula == c.formula
    assert_same_shape(rec, ref)
    assert_close_fit(rec, ref)
    assert rec.warnings == [] and rec.messages == []


@pytest.mark.parametrize("REML", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("model", list(SLEEP))
def test_statsmodels_criterion_has_lme4_constants(model, REML):
    """-2 x MixedLM's log-likelihood at lme4's optimum is lme4's criterion (REML and ML): the
    adapter's criterion needs no conversion."""
    engine_or_skip("statsmodels")
    from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams

    c = case(model, "sleepstudy", SLEEP[model], REML)
    ref = fits()[c.id]["record"]
    lmod = pylme.lFormula(c.formula, c.load_data(), REML=REML)
    term = lmod.reTrms.terms[0]
    m = MixedLM(lmod.y, lmod.X, term.factor.codes, term.Xi)
    m.fit(reml=REML)  # sets the model's REML/ML switch and penalties
    k = term.nc
    L = np.zeros((k, k))
    L.T[np.triu_indices(k)] = ref["theta"]
    params = MixedLMParams.from_components(fe_params=np.array(list(ref["beta"].values())), cov_re=L @ L.T,
                                           vcomp=np.array([]))
    assert -2 * m.loglike(params, profile_fe=True) == pytest.approx(ref["criterion"], rel=1e-12)


def test_statsmodels_uncorrelated_terms_as_variance_component():
    """(Days || Subject): the second term becomes a variance component, mapped back as lme4's
    second term (theta order, VarCorr's "Subject.1", one ranef table per factor)."""
    eng = engine_or_skip("statsmodels")
    for REML in (True, False):
        c = case("sleepstudy_uncorr", "sleepstudy", "Reaction ~ Days + (Days || Subject)", REML)
        ref = FitRecord.from_dict(fits()[c.id]["record"])
        rec = eng.fit(c, c.load_data())
        assert_same_shape(rec, ref)
        assert_close_fit(rec, ref)


def test_crossed_is_unsupported_by_statsmodels():
    eng = engine_or_skip("statsmodels")
    c = case("penicillin", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", True)
    with pytest.raises(Unsupported, match="crossed"):
        eng.fit(c, c.load_data())
    ref = FitRecord.from_dict(fits()[c.id]["record"])
    result = run._judge(c, c.load_data(), ref, "statsmodels")
    assert result.verdict == "unsupported"
    assert "crossed" in result.notes[0]


def test_weights_are_unsupported_by_statsmodels():
    eng = engine_or_skip("statsmodels")
    c = case("cbpp_prop_weighted", "cbpp", "prop ~ period + (1 | herd)", True, data="cbpp_prop", weights="size")
    with pytest.raises(Unsupported, match="weights"):
        eng.fit(c, c.load_data())


def test_mixedlm_unreadable_formula_is_unsupported():
    eng = engine_or_skip("mixedlm")
    c = case("sleepstudy_log", "sleepstudy", "log(Reaction) ~ Days + (Days | Subject)", True)
    with pytest.raises(Unsupported, match="parser"):
        eng.fit(c, c.load_data())


@pytest.mark.parametrize("name", ENGINES)
def test_missing_package_is_unsupported_for_every_case(monkeypatch, name):
    """Without the package, make_engine raises Unsupported and the harness reports the case
    "unsupported" (run._judge catches it) instead of crashing."""
    for mod in list(sys.modules):
        if mod == name or mod.startswith(name + "."):
            monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, name, None)  # import fails with ImportError
    with pytest.raises(Unsupported, match=f"{name} is not installed"):
        make_engine(name)
    c = case("dyestuff", "Dyestuff", "Yield ~ 1 + (1 | Batch)", True)
    ref = FitRecord.from_dict(fits()[c.id]["record"])
    result = run._judge(c, c.load_data(), ref, name)
    assert result.verdict == "unsupported"
    assert f"pip install {name}" in result.notes[0]


@pytest.mark.usefixtures("require_r")
@pytest.mark.parametrize("formula", ["strength ~ 1 + (1 | batch/cask)", "strength ~ 1 + (1 | batch) + (1 | cask:batch)"])
def test_nested_against_live_lme4(engine, formula):
    """Nested grouping: statsmodels as a variance component within batch, mixedlm's
    "batch:cask" blocks matched to lme4's "cask:batch" term (its name, level labels, order)."""
    import r_reference

    for REML in (True, False):
        c = case("pastes_nested", "Pastes", formula, REML)
        data = c.load_data()
        ref = r_reference.fit(c.formula, data, REML=REML)
        rec = engine.fit(c, data)
        assert_same_shape(rec, ref)
        assert list(rec.ranef) == ["cask:batch", "batch"]
        assert_close_fit(rec, ref)
