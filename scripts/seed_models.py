"""Fit the models printed in the seed documents with pylme, print lme4's summary layout for
each, and compare each criterion with lme4 1.1-31's recorded value.

Run through ``bash scripts/run.sh`` (installs first) or ``.venv/bin/python scripts/seed_models.py``.
Exits 1 when a criterion differs from lme4's by more than 1e-6 relative.
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pylme

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference" / "lme4_reference.json"
sys.path.insert(0, str(ROOT / "scripts"))

# (recorded case id, the seed that prints it)
SEED_CASES = [
    ("dyestuff_reml", "001 Dyestuff fm1"), ("dyestuff_ml", "001 Dyestuff fm1M"), ("dyestuff2_ml", "001 Dyestuff2 fm1A"),
    ("penicillin_reml", "001 Penicillin fm2"), ("pastes_batch_sample_reml", "001 Pastes fm3"),
    ("pastes_sample_reml", "001 Pastes fm4"), ("pastes_batch_sample_ml", "001 Pastes fm3M"),
    ("pastes_sample_ml", "001 Pastes fm4M"), ("classroom_null_reml", "001 classroom fm5"),
    ("classroom_full_reml", "001 classroom, all covariates"), ("classroom_nosex_reml", "001 classroom, no sex"),
    ("classroom_3cov_reml", "001 classroom fm8"), ("classroom_school_ml", "001 classroom fm9M"),
    ("classroom_3cov_ml", "001 classroom fm8M"), ("sleepstudy_corr_reml", "002 sleepstudy (Days|Subject)"),
    ("sleepstudy_uncorr_reml", "002 sleepstudy (Days||Subject)"),
    ("seed_random_regression_reml", "000 random regression, simulated in numpy"),
]


def data_for(entry: dict):
    if entry["dataset"] == "seed_random_regression":
        import seed_random_regression

        return seed_random_regression.load()
    return pylme.datasets.load(entry["dataset"])


def main() -> int:
    fits = json.loads(REFERENCE.read_text())["fits"]
    rows, worst = [], 0.0
    for case_id, title in SEED_CASES:
        entry = fits[case_id]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fm = pylme.lmer(entry["formula"], data_for(entry), REML=entry["REML"])
        print(f"==== {title} ({case_id})\n{fm.summary()}\n")
        crit = fm.REMLcrit() if fm.REML else fm.deviance(REML=False)
        ref = entry["record"]["criterion"]
        rel = abs(crit - ref) / abs(ref)
        worst = max(worst, rel)
        rows.append((case_id, crit, ref, rel))
    print(f"{'case':30s} {'pylme criterion':>18s} {'lme4 1.1-31':>18s} {'rel. diff':>10s}")
    for case_id, crit, ref, rel in rows:
        print(f"{case_id:30s} {crit:18.8f} {ref:18.8f} {rel:10.1e}")
    print(f"\nlargest relative difference: {worst:.1e} ({'OK' if worst <= 1e-6 else 'FAIL'}, tolerance 1e-6)")
    return 0 if worst <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
