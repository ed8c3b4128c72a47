"""The conformance harness itself: the layered comparison judges what it should, the report
shows it, and the CLI's exit status follows the verdicts. lme4's numbers come from the
recorded lme4 1.1-31 fits (tests/reference/lme4_reference.json)."""
from __future__ import annotations

import copy
import json

import numpy as np

from conformance import report
from conformance.cases import Case, load_corpus, write_inline, _read_inline
from conformance.compare import compare
from conformance.engines import PylmeEngine
from pylme.fitted.record import FitRecord
from reference_data import case_data, fits


def lme4_record(case_id: str) -> FitRecord:
    return FitRecord.from_dict(fits()[case_id]["record"])


def pylme_parts(case_id: str):
    e = fits()[case_id]
    case = Case(id=case_id, model=case_id, dataset=e["dataset"], formula=e["formula"], REML=e["REML"])
    data = case_data(e)
    ref = lme4_record(case_id)
    eng = PylmeEngine()
    return ref, eng.fit(case, data), eng.objective(case, data, [p["theta"] for p in ref.devfun_at]), \
        eng.at_theta(case, data, ref.theta)


def test_all_layers_pass_on_a_conforming_fit():
    ref, cand, values, at = pylme_parts("sleepstudy_corr_reml")
    res = compare("sleepstudy_corr_reml", "pylme", ref, cand, values, at)
    assert res.verdict == "pass"
    assert [res.layers[k].verdict for k in ("objective", "at_lme4_theta", "full_fit")] == ["pass"] * 3
    assert res.metric("objective", "max_rel") < 1e-12
    assert res.metric("full_fit", "max_d_beta_se") < 1e-9


def test_each_layer_fails_where_the_numbers_part():
    ref, cand, values, at = pylme_parts("sleepstudy_corr_reml")
    bad_values = [v * (1 + 1e-8) for v in values]  # objective off by 1e-8 relative
    res = compare("c", "pylme", ref, cand, bad_values, at)
    assert res.verdict == "fail" and res.layers["objective"].verdict == "fail"
    assert res.layers["full_fit"].verdict == "pass"
    bad_at = copy.deepcopy(at)
    bad_at.sigma *= 1 + 1e-6
    res = compare("c", "pylme", ref, cand, values, bad_at)
    assert res.layers["at_lme4_theta"].verdict == "fail" and "sigma" in res.layers["at_lme4_theta"].failures[0]
    bad = copy.deepcopy(cand)
    bad.theta = [t + 2e-4 for t in bad.theta]
    bad.beta = {k: v + 0.01 * ref.beta_se[k] for k, v in bad.beta.items()}
    lay = compare("c", "pylme", ref, bad, values, at).layers["full_fit"]
    assert lay.verdict == "fail"
    assert any("d theta" in f for f in lay.failures) and any("d beta" in f for f in lay.failures)


def test_a_lower_criterion_is_reported_not_hidden():
    ref, cand, values, at = pylme_parts("dyestuff_reml")
    better = copy.deepcopy(cand)
    better.criterion -= 1e-3
    res = compare("c", "pylme", ref, better, values, at)
    assert res.verdict == "pass"
    assert any("pylme found a better optimum" in n for n in res.notes)
    worse = copy.deepcopy(cand)
    worse.criterion += 1e-5
    assert compare("c", "pylme", ref, worse, values, at).verdict == "fail"


def test_messages_must_match():
    ref, cand, values, at = pylme_parts("dyestuff2_ml")
    assert ref.messages == ["boundary (singular) fit: see help('isSingular')"]
    silent = copy.deepcopy(cand)
    silent.messages = []
    lay = compare("c", "pylme", ref, silent, values, at).layers["full_fit"]
    assert lay.verdict == "fail" and "messages" in lay.failures[0]


def test_lme4_unreliable_and_known_difference_verdicts():
    ref, cand, values, at = pylme_parts("dyestuff_reml")
    off = copy.deepcopy(cand)
    off.theta = [t + 1e-2 for t in off.theta]
    res = compare("c", "pylme", ref, off, values, at, lme4_unreliable="lme4 warned: failed to converge")
    assert res.verdict == "lme4 unreliable" and "full_fit" in res.layers and res.layers["full_fit"].verdict == "n/a"
    res = compare("c", "pylme", ref, off, values, at, known_difference="flat surface")
    assert res.verdict == "known difference"
    assert report.failed([res]) == []
    res = compare("c", "pylme", ref, off, values, at)
    assert report.failed([res]) == [res]


def test_errors_are_case_results():
    ref = lme4_record("dyestuff_reml")
    broken = FitRecord(engine="pylme", engine_version="0", formula="f", REML=True, error="DataError: boom")
    res = compare("c", "pylme", ref, broken)
    assert res.verdict == "fail" and "boom" in res.notes[0]
    refused = FitRecord(engine="lme4", engine_version="1.1-31", formula="f", REML=True, error="0 (non-NA) cases")
    assert compare("c", "pylme", refused, broken).verdict == "pass"  # both refuse


def test_report_json_and_html(tmp_path):
    ref, cand, values, at = pylme_parts("penicillin_ml")
    results = [compare("penicillin_ml", "pylme", ref, cand, values, at)]
    jpath, hpath = report.write(results, tmp_path, report.provenance("golden", "lme4 1.1-31"))
    data = json.loads(jpath.read_text())
    assert data["summary"] == "1 pass (1 results)"
    assert data["provenance"]["tolerances"]["theta_abs"]["value"] == 1e-4
    row = report.rows(results)[0]
    assert row["case"] == "penicillin_ml" and row["verdict"] == "pass" and row["full_fit"] == "pass"
    page = hpath.read_text()
    assert "<table>" in page and page.count("<details>") == 1
    assert json.dumps(ref.criterion) in page  # lme4's number shown beside pylme's


def test_corpus_loads_and_inline_data_round_trips():
    cases = load_corpus()
    assert len({c.model for c in cases}) >= 15
    assert all(c.id.endswith(("_reml", "_ml")) for c in cases if not c.is_glmer)
    glmer = [c for c in cases if c.is_glmer]  # issue 16: one maximum-likelihood case per glmer model
    assert len(glmer) >= 40 and all(not c.REML and c.id.startswith("glmer_") for c in glmer)
    d = next(c for c in cases if c.id == "dyestuff_reml").load_data()
    back = _read_inline(write_inline(d))
    assert list(back.columns) == list(d.columns)
    np.testing.assert_array_equal(back.select_dtypes("number"), d.select_dtypes("number"))
    assert list(back["Batch"].cat.categories) == list(d["Batch"].cat.categories)


def test_cli_run_exit_status_and_report(tmp_path, monkeypatch):
    from conformance.__main__ import main

    code = main(["run", "--reference", "golden", "--cases", "dyestuff_reml", "--report", str(tmp_path)])
    assert code == 0
    assert (tmp_path / "report.html").exists()
    assert main(["run", "--reference", "golden", "--cases", "no_such_case"]) == 2


# ---------------------------------------------------------------- layer 4: inference
def _golden_with_inference(case_id: str) -> FitRecord:
    from conformance.engines import GoldenEngine

    return GoldenEngine().fit(next(c for c in load_corpus() if c.id == case_id))


def test_inference_cases_and_kenward_roger_only_for_reml():
    cases = {c.id: c for c in load_corpus()}
    assert "kenward_roger" in cases["sleepstudy_corr_reml"].inference
    assert cases["sleepstudy_corr_ml"].inference == ("wald", "profile", "satterthwaite", "anova_satterthwaite")
    ref = _golden_with_inference("sleepstudy_corr_reml")
    assert set(ref.inference) == set(cases["sleepstudy_corr_reml"].inference)
    assert ref.inference["profile"]["rows"] == [".sig01", ".sig02", ".sig03", ".sigma", "(Intercept)", "Days"]


def test_inference_layer_judges_each_column():
    from conformance.compare import inference_layer

    ref = _golden_with_inference("sleepstudy_corr_reml")
    same = inference_layer(ref.inference, copy.deepcopy(ref.inference), ref.beta_se)
    assert same.verdict == "pass" and same.metrics["satterthwaite:df"] == 0.0
    worse = copy.deepcopy(ref.inference)
    worse["satterthwaite"]["values"][1][2] *= 1 + 2e-4  # Days' df, 2e-4 relative
    worse["profile"]["values"][0][0] *= 1 + 5e-4  # within the profile tolerance
    layer = inference_layer(ref.inference, worse, ref.beta_se)
    assert layer.verdict == "fail"
    assert any("satterthwaite df" in f for f in layer.failures)
    assert not any("profile" in f for f in layer.failures)
    missing = inference_layer(ref.inference, {k: v for k, v in ref.inference.items() if k != "wald"}, ref.beta_se)
    assert missing.failures == ["wald: not computed"]


def test_inference_layer_p_values_below_the_floor():
    """p-values are relative to max(p, 1e-9): 1e-20 vs 2e-20 passes, 1e-3 vs 1.00001e-3 fails."""
    from conformance.compare import inference_layer

    table = {"rows": ["x"], "cols": ["Pr(>|t|)"], "values": [[1e-20]]}
    ok = inference_layer({"satterthwaite": table}, {"satterthwaite": {**table, "values": [[2e-20]]}}, {"x": 1.0})
    assert ok.verdict == "pass"
    t2 = {"rows": ["x"], "cols": ["Pr(>|t|)"], "values": [[1e-3]]}
    bad = inference_layer({"satterthwaite": t2}, {"satterthwaite": {**t2, "values": [[1.00001e-3]]}}, {"x": 1.0})
    assert bad.verdict == "fail"


def test_report_html_puts_failures_first_coloured_with_tables_and_plots(tmp_path):
    ref, cand, values, at = pylme_parts("penicillin_ml")
    good = compare("penicillin_ml", "pylme", ref, cand, values, at)
    moved = FitRecord.from_dict({**cand.to_dict(), "sigma": cand.sigma * 1.01})
    bad = compare("penicillin_ml_moved", "pylme", ref, moved, values, at)
    assert good.verdict == "pass" and bad.verdict == "fail"
    # every checked metric carries its tolerance, for the plot
    assert bad.layers["full_fit"].limits["sigma_rel"] == 1e-5
    _, hpath = report.write([good, bad], tmp_path, report.provenance("golden", "lme4 1.1-31"))
    page = hpath.read_text()
    cases = page[page.index("<h2>Each case"):]
    assert cases.index("penicillin_ml_moved") < cases.index("penicillin_ml [")            # failures first
    table = page[page.index("<h2>Cases"):page.index("<h2>Tolerances")]
    assert table.index("penicillin_ml_moved") < table.index("penicillin_ml<")
    fail_class = f'class="v{list(report.COLOURS).index("fail")}"'
    pass_class = f'class="v{list(report.COLOURS).index("pass")}"'
    assert f"<td {fail_class}>fail</td>" in table and f"<td {pass_class}>pass</td>" in table
    assert page.count("<svg") == 3                                                        # overview + one per case
    # lme4's and pylme's numbers side by side, with their difference
    assert f"<td class=num>{json.dumps(ref.sigma)}</td><td class=num>{json.dumps(moved.sigma)}</td>" in page
    assert "sigma (rel.)" in page and "<th>tolerance</th>" in page
