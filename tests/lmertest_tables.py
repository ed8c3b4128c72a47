"""Comparing pylme's lmerTest-style tables with lmerTest's recorded ones (tests/test_satterthwaite.py,
tests/test_kenward_roger.py): the table check and the fits at pylme's own optimum or at R's theta."""
from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pandas as pd
import pytest

import pylme
from pylme.fitting.driver import LmerControl

T_COLS = ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
F_COLS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
WHERE = [pytest.param(False, id="own-fit"), pytest.param(True, id="at-lme4-theta")]


def assert_table(actual: pd.DataFrame, expected: dict, columns: list[str], tol: dict, what: str,
                 near_zero: bool = False) -> None:
    """Rows in order and by name; each column within its relative tolerance (NumDF exact). With
    ``near_zero``, NaN matches NaN and Estimate and t value also pass within tol * SE (resp. tol)
    of R's, for coefficients that are 0 up to rounding."""
    assert list(actual.index) == list(expected), what
    assert list(actual.columns) == columns, what
    for name, vals in expected.items():
        row = dict(zip(columns, vals))
        for col, want in row.items():
            got = float(actual.loc[name, col])
            if col == "NumDF":
                assert got == want or near_zero and np.isnan(got) and np.isnan(want), f"{what} {name} {col}"
                continue
            rel = tol.get(col, tol["default"])
            floor = {"Estimate": rel * row.get("Std. Error", 0.0), "t value": rel}.get(col, 0.0) if near_zero else 0
            assert got == pytest.approx(want, rel=rel, abs=floor, nan_ok=near_zero), \
                f"{what} {name} {col}: {got!r} vs R {want!r}"


def assert_row(actual: pd.DataFrame, want: list[float], columns: list[str], tol: dict, what: str,
               near_zero: bool = False) -> None:
    assert_table(actual.set_axis(["row"]), {"row": want}, columns, tol, what, near_zero)


def fitter(reference: dict):
    """``fitted(name, at_r_theta)``: the reference model fitted by pylme, or evaluated at R's theta
    (``start=theta, optimizer=None``); cached."""
    @cache
    def fitted(name: str, at_r_theta: bool):
        ref = reference[name]
        data = pylme.datasets.load(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if at_r_theta:
                return pylme.lmer(ref["formula"], data, start=np.array(ref["theta"]), control=LmerControl(optimizer=None))
            return pylme.lmer(ref["formula"], data)
    return fitted
