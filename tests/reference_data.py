"""Loading the recorded lme4 1.1-31 fits (tests/reference/lme4_reference.json) and their data."""
from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

import pandas as pd

import pylme

REFERENCE = Path(__file__).parent / "reference" / "lme4_reference.json"
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@lru_cache(maxsize=1)
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


def fits() -> dict:
    return reference()["fits"]


def case_data(entry: dict) -> pd.DataFrame:
    """The data a recorded case was fitted to, built as the recording script built it."""
    if entry["dataset"] == "seed_random_regression":
        sys.path.insert(0, str(SCRIPTS))
        import seed_random_regression

        return seed_random_regression.load()
    data = pylme.datasets.load(entry["dataset"])
    if "Days2" in entry["formula"]:
        data = data.assign(Days2=2 * data["Days"])
    return data
