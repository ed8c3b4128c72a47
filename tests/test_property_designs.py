"""Property-based conformance: random designs (conformance/designs.py) fitted by lme4 and pylme,
judged by the layered comparison (conformance/compare.py).

Hypothesis profiles (chosen by the environment variable PYLME_HYPOTHESIS_PROFILE), registered
here through ``conformance.designs.hypothesis_profile``:

- ``ci`` (default): 200 designs, derandomized (the same designs on every run), no database;
- ``deep``: 3000 designs, random, with the example database (failures are replayed first).

The same designs in resumable, seeded chunks, each recorded as a JSON line and none stopping the
run: ``python -m conformance.sweep --designs 3000`` (conformance/sweep.py).

Every design must pass layers 1 and 2, and pylme's full-fit criterion may not exceed lme4's by
more than 1e-8 relative (pylme finishes and certifies its optimum, pylme.fitting.polish); the rest of
layer 3, where each engine's optimiser stops, is recorded as statistics (see conformance.property.engine_conforms, with judge and never_worse; run
pytest with --hypothesis-show-statistics to see them). When lme4 refuses the design, pylme must refuse it too. A failing design, once shrunk, is saved as a regression case in
conformance/cases/regressions/prop_<hash>.json (data inline) and the test fails with the
comparison's failures. A failure in the full fit alone (layers 1 and 2 pass) on a design where
lme4 itself does not reproduce its answer when y is perturbed by 1e-14 (relative) is judged as
lme4-unreliable: pylme's criterion may then not exceed the worse of lme4's two by more than
CRITERION_ABS (see rounding_sensitive).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis.control import current_build_context
from hypothesis.errors import InvalidArgument

from conformance.cases import REGRESSIONS_DIR, _read_inline, write_inline
from conformance.compare import FAIL, fit_layer
from conformance.designs import Design, designs, hypothesis_profile
from conformance.property import engine_conforms, judge, two_local_optima
from conformance.tolerances import CRITERION_ABS

pytestmark = pytest.mark.usefixtures("require_r")

# the profiles "ci" and "deep" are registered here, through conformance.designs
PROFILE = hypothesis_profile()

PERTURBATION = 1e-14  # relative perturbation of y for lme4's self-consistency check


def lme4_self_check(design: Design):
    """lme4 against itself with y perturbed by PERTURBATION (relative): the full-fit layer of
    that comparison (FAIL: lme4's own optimum moves beyond the tolerances), or None if the
    perturbed fit failed."""
    import r_reference

    data = _read_inline(write_inline(design.data))
    ref = r_reference.fit(design.formula, data, REML=design.REML, weights=design.weights)
    y = data["y"].to_numpy()
    rng = np.random.default_rng(0)
    data["y"] = y * (1.0 + PERTURBATION * rng.standard_normal(len(y)))
    other = r_reference.fit(design.formula, data, REML=design.REML, weights=design.weights)
    if ref.error or other.error:
        return None
    return fit_layer(ref, other)


def rounding_sensitive(result, design: Design) -> str | None:
    """A failure in the full fit alone, on a design where lme4 does not reproduce its own answer
    when y is perturbed by 1e-14: lme4's optimum is then not defined to the layer-3 tolerances,
    and the design is judged as lme4-unreliable: layers 1 and 2 must pass (pylme's objective is
    lme4's), where each engine's BOBYQA stops is not judged. Returns the
    explanation, or None when that does not hold (a real failure)."""
    layers = result.layers
    if any(layers[n].verdict == FAIL for n in ("objective", "at_lme4_theta") if n in layers):
        return None
    if "full_fit" not in layers or layers["full_fit"].verdict != FAIL:
        return None
    self_layer = lme4_self_check(design)
    if self_layer is None or self_layer.verdict != FAIL:
        return None
    d_self = self_layer.metrics.get("d_criterion", 0.0)
    d_pylme = layers["full_fit"].metrics["d_criterion"]
    m = self_layer.metrics
    return (f"optimiser path sensitive to rounding: lme4 refitted with y perturbed by {PERTURBATION:g} (relative) "
            f"moves its criterion by {d_self:.3g} and theta by {m.get('max_d_theta', float('nan')):.3g} "
            f"(fails: {'; '.join(self_layer.failures)}); pylme's criterion differs from lme4's by {d_pylme:.3g}")


def failure_message(design: Design, result, sensitivity: str | None = None) -> str:
    lines = [f"verdict {result.verdict!r} for {design.formula} ({'REML' if design.REML else 'ML'}"
             + (f", weights={design.weights}" if design.weights else "") + ")", f"design: {design.description}"]
    for name, layer in result.layers.items():
        lines += [f"  {name}: {layer.verdict}"] + [f"    - {f}" for f in layer.failures]
        if layer.metrics:
            lines.append("    metrics: " + ", ".join(f"{k}={v:.3g}" for k, v in layer.metrics.items()))
    lines += [f"  note: {n}" for n in result.notes]
    if result.reference and result.candidate:
        for key in ("criterion", "theta", "warnings", "messages", "error"):
            lines.append(f"  {key}: lme4 {result.reference[key]!r} / pylme {result.candidate[key]!r}")
    if sensitivity:
        lines.append(f"  {sensitivity}")
    return "\n".join(lines)


def save_regression(design: Design, result, sensitivity: str | None = None) -> str:
    """Write the design as conformance/cases/regressions/prop_<hash>.json; returns the path."""
    REGRESSIONS_DIR.mkdir(parents=True, exist_ok=True)
    key = design.key()
    path = REGRESSIONS_DIR / f"prop_{key}.json"
    fails = [f for lay in result.layers.values() for f in lay.failures] + [n for n in result.notes if "fail" in n]
    model = {
        "id": f"prop_{key}",
        "dataset": "hypothesis",
        "formula": design.formula,
        "source": f"tests/test_property_designs.py (hypothesis, shrunk): {design.description}; "
                  f"failed: {'; '.join(fails) or result.verdict}",
        "REML": design.REML,
    }
    if design.weights:
        model["weights"] = design.weights
    if sensitivity:
        model["lme4_unreliable"] = sensitivity
    if path.exists():  # the same data and model failed for the other criterion too
        old = json.loads(path.read_text())
        fits = old["REML"] if isinstance(old["REML"], list) else [old["REML"]]
        if design.REML not in fits:
            model["REML"] = sorted(fits + [design.REML], reverse=True)
    model["data_csv"] = write_inline(design.data)
    path.write_text(json.dumps(model, indent=1) + "\n")
    return str(path)


def _is_final() -> bool:
    """True while hypothesis replays the final (shrunk) failing example."""
    try:
        return bool(current_build_context().is_final)
    except InvalidArgument:  # no build context: called outside a hypothesis test
        return False


@PROFILE
@given(design=designs())
def test_random_design_matches_lme4(design: Design) -> None:
    result, _ = judge(design)
    full = result.layers.get("full_fit")
    event(f"full fit: {full.verdict if full else result.verdict}")
    if two_local_optima(result):
        event("pylme at a certified local optimum, lme4's point lower")
    if full is not None and "d_criterion" in full.metrics:
        event("pylme's criterion lower" if full.metrics["d_criterion"] < -CRITERION_ABS.value else
              "pylme's criterion higher" if full.metrics["d_criterion"] > CRITERION_ABS.value else "criteria agree")
    if not engine_conforms(result):
        msg = f"verdict {result.verdict!r}"
        if _is_final():  # only the final, shrunk example: diagnose and save it
            sensitivity = rounding_sensitive(result, design)
            msg = failure_message(design, result, sensitivity)
            msg += f"\nsaved as {save_regression(design, result, sensitivity)}"
        pytest.fail(msg)
