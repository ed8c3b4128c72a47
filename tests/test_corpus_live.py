"""The whole default conformance corpus, live against R's lme4 (the main job's run, inside the
test suite so CI runs it): every case must pass, or carry its explained verdict (known
difference, lme4 unreliable) from the corpus."""
from __future__ import annotations

import pytest

from conformance import report
from conformance.cases import select
from conformance.run import RunSpec, run_all

pytestmark = pytest.mark.usefixtures("require_r")


def test_default_corpus_conforms_live():
    cases = select()
    assert len({c.model for c in cases}) >= 50
    results = run_all(cases, RunSpec(reference="lme4", engines=("pylme",)), jobs=2, progress=False)
    assert len(results) == len(cases)
    bad = report.failed(results)
    assert not bad, "\n".join(
        f"{r.case_id}: {r.verdict}: " + "; ".join(r.notes + [f for lay in r.layers.values() for f in lay.failures])
        for r in bad)
    passed = sum(r.verdict == "pass" for r in results)
    assert passed >= 0.85 * len(results)  # explained exceptions stay the exception
