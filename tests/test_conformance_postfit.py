"""Conformance layer 4 after the fit (conformance.compare._postfit_diff, pylme.fitted.extract.POSTFIT_KINDS):
pylme's tables at lme4's theta against lme4's golden records (emmeans 1.8.4, lme4 1.1-31,
lmerTest 3.1-3; written by ``python -m conformance record``), passing as recorded and failing
where a number moves beyond its tolerance. No R needed."""
from __future__ import annotations

import copy

import pytest

from conformance.cases import load_corpus
from conformance.compare import compare
from conformance.engines import GoldenEngine, PylmeEngine
from pylme.fitted.extract import POSTFIT_KINDS


def _parts(case_id: str):
    case = next(c for c in load_corpus() if c.id == case_id)
    ref = GoldenEngine().fit(case)
    data = case.load_data()
    eng = PylmeEngine()
    return case, ref, eng.fit(case, data), eng.at_theta(case, data, ref.theta)


@pytest.fixture(scope="module")
def sleepstudy():
    return _parts("sleepstudy_uncorr_reml")


def test_the_golden_records_carry_the_after_the_fit_tables(sleepstudy):
    case, ref, _, _ = sleepstudy
    assert {"drop1", "ranova", "hatvalues", "cooks_distance", "rePCA"} <= set(ref.inference)
    assert set(case.inference) & set(POSTFIT_KINDS) == {"drop1", "ranova", "hatvalues", "cooks_distance", "rePCA"}
    assert ref.inference["ranova"]["rows"] == ["<none>", "(1 | Subject)", "Days in (0 + Days | Subject)"]


def test_pylme_passes_and_each_moved_number_fails(sleepstudy):
    case, ref, cand, at = sleepstudy
    result = compare(case.id, "pylme", ref, cand, at_theta=at)
    assert result.layers["inference"].verdict == "pass", result.layers["inference"].failures
    metrics = result.layers["inference"].metrics
    assert metrics["ranova:LRT"] < 1e-6 and metrics["hatvalues:hat"] < 1e-10
    for kind, col, shift in (("ranova", "LRT", 1e-4), ("drop1", "AIC", 1e-4), ("hatvalues", "hat", 1e-5),
                             ("rePCA", "sdev", 1e-5)):
        moved = copy.deepcopy(at)
        table = moved.inference[kind]
        j = table["cols"].index(col)
        row = next(i for i, r in enumerate(table["values"]) if r[j] is not None)
        table["values"][row][j] *= 1 + shift
        lay = compare(case.id, "pylme", ref, cand, at_theta=moved).layers["inference"]
        assert lay.verdict == "fail" and any(f.startswith(f"{kind} {col}") for f in lay.failures), (kind, col)


def test_tukey_pairs_on_a_ten_level_factor():
    case, ref, cand, at = _parts("sleepstudy_factor_days_reml")
    lay = compare(case.id, "pylme", ref, cand, at_theta=at).layers["inference"]
    assert lay.verdict == "pass", lay.failures
    assert len(ref.inference["emmeans_pairs_kenward_roger"]["rows"]) == 45
    assert lay.metrics["emmeans_pairs_kenward_roger:p.value"] < 1e-8
