"""Fit the reference cases with R's lme4 and write tests/reference/lme4_reference.json.

Each case is fitted by REML and by ML (case ids ``<name>_reml`` / ``<name>_ml``).  Every
record also holds lme4's devFunOnly objective at 0.5 * theta, 1.5 * theta + 0.1 and at the
optimum theta.  Needs R with lme4 (through rpy2).  Run: ``python scripts/record_lme4_reference.py``.
"""
from __future__ import annotations

import datetime
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

import r_reference
from pylme import datasets

sys.path.insert(0, str(Path(__file__).resolve().parent))
import seed_random_regression  # noqa: E402  (a sibling script)

ROOT = Path(__file__).resolve().parents[1]
OUT_PATH = ROOT / "tests" / "reference" / "lme4_reference.json"


@dataclass(frozen=True)
class Case:
    """One model: a name, where its data comes from, and the lmer formula."""

    name: str
    dataset: str
    formula: str
    derive: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    note: str | None = None


def _with_days2(data: pd.DataFrame) -> pd.DataFrame:
    return data.assign(Days2=2 * data["Days"])


CLASSROOM_FULL = "mathgain ~ 1 + mathkind + minority + sex + ses + housepov"
CASES = [
    Case("dyestuff", "Dyestuff", "Yield ~ 1 + (1|Batch)"),
    Case("dyestuff2", "Dyestuff2", "Yield ~ 1 + (1|Batch)"),
    Case("penicillin", "Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)"),
    Case("pastes_batch_sample", "Pastes", "strength ~ 1 + (1|batch) + (1|sample)"),
    Case("pastes_sample", "Pastes", "strength ~ 1 + (1|sample)"),
    Case("pastes_nested", "Pastes", "strength ~ 1 + (1|batch/cask)"),
    Case("classroom_null", "classroom", "mathgain ~ 1 + (1|classid) + (1|schoolid)"),
    Case("classroom_full", "classroom", CLASSROOM_FULL + " + (1|classid) + (1|schoolid)"),
    Case("classroom_nosex", "classroom",
         "mathgain ~ 1 + mathkind + minority + ses + housepov + (1|classid) + (1|schoolid)"),
    Case("classroom_3cov", "classroom",
         "mathgain ~ mathkind + minority + ses + (1|classid) + (1|schoolid)"),
    Case("classroom_school", "classroom", "mathgain ~ mathkind + minority + ses + (1|schoolid)"),
    Case("classroom_mathknow", "classroom", "mathgain ~ mathkind + mathknow + (1|schoolid)",
         note="mathknow has missing values: lmer drops those rows (na.omit)"),
    Case("sleepstudy_corr", "sleepstudy", "Reaction ~ Days + (Days|Subject)"),
    Case("sleepstudy_uncorr", "sleepstudy", "Reaction ~ Days + (Days||Subject)"),
    Case("sleepstudy_intercept", "sleepstudy", "Reaction ~ Days + (1|Subject)"),
    Case("sleepstudy_slope", "sleepstudy", "Reaction ~ Days + (0+Days|Subject)"),
    Case("sleepstudy_quadratic", "sleepstudy",
         "Reaction ~ Days + I(Days^2) + (1|Subject) + (0+Days|Subject)"),
    Case("cake_interaction", "cake", "angle ~ recipe * temperature + (1|recipe:replicate)",
         note="temperature is an ordered factor: polynomial contrasts"),
    Case("cake_temp", "cake", "angle ~ recipe + temp + (1|replicate)"),
    Case("cbpp_proportion", "cbpp", "incidence/size ~ period + (1|herd)",
         note="Gaussian fit of the proportion; R evaluates the arithmetic response"),
    Case("cbpp_size", "cbpp", "size ~ period + (1|herd)"),
    Case("sleepstudy_rankdef", "sleepstudy", "Reaction ~ Days + Days2 + (1|Subject)",
         derive=_with_days2, note="added column Days2 = 2 * Days: rank-deficient X"),
    Case("pastes_cask_slope0", "Pastes", "strength ~ 1 + (0 + cask | batch)"),
    Case("pastes_cask_slope", "Pastes", "strength ~ 1 + (cask | batch)"),
    Case("seed_random_regression", "seed_random_regression", seed_random_regression.FORMULA,
         note="numpy simulation of seed 000's design (scripts/seed_random_regression.py)"),
]


def load_data(case: Case) -> tuple[pd.DataFrame, str]:
    """The case's data and a note of where it came from."""
    if case.dataset == "seed_random_regression":
        path = seed_random_regression.CSV_PATH
        data, source = seed_random_regression.load(path), str(path.relative_to(ROOT))
    else:
        data, source = datasets.load(case.dataset), f"pylme.datasets.load({case.dataset!r})"
    if case.derive is not None:
        data = case.derive(data)
    return data, source


def extra_thetas(theta: list[float]) -> list[list[float]]:
    """Thetas away from the optimum: 0.5 * theta and 1.5 * theta + 0.1."""
    return [[0.5 * t for t in theta], [1.5 * t + 0.1 for t in theta]]


def record_case(case: Case, REML: bool) -> dict[str, Any]:
    """Fit one case in lme4 and return its JSON entry."""
    data, source = load_data(case)
    rec, extras = r_reference.fit_with_extras(case.formula, data, REML=REML)
    if rec.error is None:
        away = r_reference.devfun_values(case.formula, data, extra_thetas(rec.theta), REML=REML)
        rec.devfun_at = away + rec.devfun_at
    entry: dict[str, Any] = {
        "dataset": case.dataset, "data_source": source, "formula": case.formula, "REML": REML,
        "n_rows_data": len(data),
        "rows_dropped": None if rec.n is None else len(data) - rec.n,
        "col_dropped": extras["col_dropped"],
    }
    if case.note:
        entry["note"] = case.note
    entry["record"] = rec.to_dict()
    return entry


def summary_line(case_id: str, rec: dict[str, Any]) -> str:
    """One line per fit for the console."""
    if rec["error"]:
        return f"{case_id:34s} ERROR {rec['error']}"
    flags = (["singular"] if rec["is_singular"] else []) + \
        [f"msg: {m}" for m in rec["messages"]] + [f"warn: {w}" for w in rec["warnings"]]
    return f"{case_id:34s} crit={rec['criterion']:.6f} theta={[round(t, 6) for t in rec['theta']]} " \
        + "; ".join(flags)


def main() -> None:
    versions = r_reference.r_versions()
    fits: dict[str, Any] = {}
    for case in CASES:
        for REML in (True, False):
            case_id = f"{case.name}_{'reml' if REML else 'ml'}"
            fits[case_id] = record_case(case, REML)
            print(summary_line(case_id, fits[case_id]["record"]), flush=True)
    doc = {
        "provenance": {
            "R": versions["R"], "lme4": versions["lme4"],
            "written_by": "scripts/record_lme4_reference.py",
            "date": datetime.date.today().isoformat(),
        },
        "fits": fits,
    }
    OUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    OUT_PATH.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(fits)} fits to {OUT_PATH.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
