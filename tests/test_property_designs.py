"""Property-based conformance: random designs (conformance/designs.py) fitted by lme4 and pylme,
judged by the layered comparison (conformance/compare.py).

Hypothesis profiles (chosen by the environment variable PYLME_HYPOTHESIS_PROFILE), registered
here through ``conformance.designs.hypothesis_profile``:

- ``ci`` (default): 200 designs, derandomized (the same designs on every run), no database;
- ``deep``: 3000 designs, random, with the example database (failures are replayed first).

A design passes when the verdict is "pass". When lme4 warns that it did not converge, only
layer 1 (pylme's objective at lme4's thetas) is judged. When lme4 refuses the design, pylme
must refuse it too. A failing design, once shrunk, is saved as a regression case in
conformance/cases/regressions/prop_<hash>.json (data inline) and the test fails with the
comparison's failures. For a failure in the full fit alone (layers 1 and 2 pass), the message
also says how far lme4 moves from its own answer when y is perturbed by 1e-14 (relative): the
optimiser's path is then at the mercy of rounding, and the saved case is marked
``lme4_unreliable`` with the numbers.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis.control import current_build_context

from conformance.cases import REGRESSIONS_DIR, Case, _read_inline, write_inline
from conformance.compare import FAIL, PASS, compare, fit_layer
from conformance.designs import Design, designs, hypothesis_profile
from conformance.engines import Lme4Engine, PylmeEngine

pytestmark = pytest.mark.usefixtures("require_r")

# the profiles "ci" and "deep" are registered here, through conformance.designs
PROFILE = hypothesis_profile()

# lme4's warnings that say its optimum cannot be trusted (checkConv, optwrap)
LME4_NOT_CONVERGED = re.compile(r"failed to converge|convergence code|unable to evaluate scaled gradient")
PERTURBATION = 1e-14  # relative perturbation of y for lme4's self-consistency check


def lme4_not_converged(warnings: list[str]) -> str | None:
    """lme4's own non-convergence warning, if it gave one."""
    bad = [w for w in warnings if LME4_NOT_CONVERGED.search(w)]
    return "lme4 warned: " + "; ".join(bad) if bad else None


def _case(design: Design, case_id: str = "property") -> Case:
    return Case(id=case_id, model=case_id, dataset="hypothesis", formula=design.formula, REML=design.REML,
                weights=design.weights)


def judge(design: Design, case_id: str = "property"):
    """Fit the design with lme4 and pylme and compare; returns (CaseResult, lme4's
    non-convergence warning or None)."""
    data = _read_inline(write_inline(design.data))  # exactly the data a saved regression case holds
    case = _case(design, case_id)
    ref = Lme4Engine().fit(case, data)
    pylme_engine = PylmeEngine()
    cand = pylme_engine.fit(case, data)
    values = at = None
    unreliable = None
    if not ref.error and not cand.error:
        unreliable = lme4_not_converged(ref.warnings)
        values = pylme_engine.objective(case, data, [p["theta"] for p in ref.devfun_at])
        at = pylme_engine.at_theta(case, data, ref.theta)
    return compare(case_id, "pylme", ref, cand, values, at, lme4_unreliable=unreliable), unreliable


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


def path_sensitivity(result, design: Design) -> str | None:
    """For a failure in the full fit alone: lme4's own sensitivity to rounding, in words (None
    if lme4 is stable, or the failure is elsewhere)."""
    layers = result.layers
    if any(layers[n].verdict == FAIL for n in ("objective", "at_lme4_theta") if n in layers):
        return None
    if "full_fit" not in layers or layers["full_fit"].verdict != FAIL:
        return None
    self_layer = lme4_self_check(design)
    if self_layer is None or self_layer.verdict != FAIL:
        return None
    m = self_layer.metrics
    return (f"optimiser path sensitive to rounding: lme4 refitted with y perturbed by {PERTURBATION:g} (relative) "
            f"moves its criterion by {m.get('d_criterion', float('nan')):.3g} and theta by "
            f"{m.get('max_d_theta', float('nan')):.3g} (fails: {'; '.join(self_layer.failures)})")


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
    except Exception:
        return False


@PROFILE
@given(design=designs())
def test_random_design_matches_lme4(design: Design) -> None:
    result, unreliable = judge(design)
    ok = result.verdict == PASS or (unreliable is not None and result.verdict == "lme4 unreliable")
    if not ok:
        msg = f"verdict {result.verdict!r}"
        if _is_final():  # only the final, shrunk example: diagnose and save it
            sensitivity = path_sensitivity(result, design)
            msg = failure_message(design, result, sensitivity)
            msg += f"\nsaved as {save_regression(design, result, sensitivity)}"
        pytest.fail(msg)
