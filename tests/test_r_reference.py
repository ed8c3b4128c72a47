"""Tests of the R bridge (r_reference) itself.

Expected numbers came from R 4.2.2 / lme4 1.1-31 run directly with Rscript on lme4's own
data sets, e.g. ``print(lmer(Yield ~ 1 + (1|Batch), Dyestuff))``, to the printed digits.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import r_reference
from pylme import datasets
from pylme.fitted.record import FitRecord

pytestmark = pytest.mark.usefixtures("require_r")

DYESTUFF = "Yield ~ 1 + (1|Batch)"


@pytest.fixture(scope="module")
def dyestuff_reml() -> FitRecord:
    return r_reference.fit(DYESTUFF, datasets.load("Dyestuff"))


def test_dyestuff_reml_matches_direct_r(dyestuff_reml: FitRecord) -> None:
    rec = dyestuff_reml
    assert rec.error is None and rec.engine == "lme4" and rec.engine_version == "1.1-31"
    assert rec.r_version.startswith("R version 4.2.2")
    # From Rscript: print(fm), getME(fm, "theta"), logLik, AIC, BIC, sigma, vcov, ranef.
    assert rec.criterion == pytest.approx(319.6543, abs=5e-5)
    assert rec.theta == pytest.approx([0.8483238], abs=5e-8)
    assert rec.logLik == pytest.approx(-159.8271, abs=5e-5)
    assert rec.AIC == pytest.approx(325.6543, abs=5e-5)
    assert rec.BIC == pytest.approx(329.8579, abs=5e-5)
    assert rec.sigma == pytest.approx(49.5101, abs=5e-5)
    assert rec.beta == pytest.approx({"(Intercept)": 1527.5}, abs=1e-8)
    assert rec.beta_se == pytest.approx({"(Intercept)": 19.38341}, abs=5e-6)
    assert rec.ranef["Batch"]["(Intercept)"]["E"] == pytest.approx(56.7331877, abs=5e-8)
    assert [r["sdcor"] for r in rec.varcorr] == pytest.approx([42.00, 49.51], abs=5e-3)
    assert rec.varcorr[0]["var2"] is None and rec.varcorr[1]["var1"] is None
    assert rec.n == 30 and len(rec.fitted) == len(rec.residuals) == 30
    assert rec.is_singular is False and rec.messages == [] and rec.warnings == []
    assert rec.devfun_at[-1]["theta"] == rec.theta
    assert rec.devfun_at[-1]["value"] == pytest.approx(rec.criterion, rel=1e-12)


def test_record_round_trips_through_json(dyestuff_reml: FitRecord) -> None:
    assert FitRecord.from_json(dyestuff_reml.to_json()) == dyestuff_reml


def test_ml_fit_and_devfun_away_from_optimum() -> None:
    # Rscript: deviance 327.3271, theta 0.7525807 (Dyestuff ML); for sleepstudy
    # (Days|Subject) ML, theta 0.92919061 0.01816575 0.22264321 and dd(0.5 * theta) 1770.716.
    rec = r_reference.fit(DYESTUFF, datasets.load("Dyestuff"), REML=False)
    assert rec.criterion == pytest.approx(327.3271, abs=5e-5)
    assert rec.theta == pytest.approx([0.7525807], abs=5e-8)
    sleep = datasets.load("sleepstudy")
    rec = r_reference.fit("Reaction ~ Days + (Days|Subject)", sleep, REML=False,
                          devfun_thetas=[[0.5 * 0.92919061, 0.5 * 0.01816575, 0.5 * 0.22264321]])
    assert rec.theta == pytest.approx([0.92919061, 0.01816575, 0.22264321], abs=5e-6)
    assert rec.devfun_at[0]["value"] == pytest.approx(1770.716, abs=5e-4)
    assert rec.devfun_at[1]["value"] == pytest.approx(rec.criterion, rel=1e-12)


def test_factor_level_order_is_carried_into_r() -> None:
    # Rscript with levels c, b, a: fixef (Intercept) 60.720, caskb -0.575, caska -1.425.
    pastes = datasets.load("Pastes")
    pastes["cask"] = pastes["cask"].cat.reorder_categories(["c", "b", "a"])
    rec = r_reference.fit("strength ~ cask + (1|batch)", pastes)
    assert list(rec.beta) == ["(Intercept)", "caskb", "caska"]
    assert list(rec.beta.values()) == pytest.approx([60.720, -0.575, -1.425], abs=5e-4)


def test_ordered_string_and_missing_columns() -> None:
    rng = np.random.default_rng(1)
    n = 60
    data = pd.DataFrame({
        "y": rng.standard_normal(n),
        "dose": pd.Categorical(rng.choice(["hi", "lo", "mid"], n),
                               categories=["lo", "mid", "hi"], ordered=True),
        "g": pd.Series([f"g{i % 6}" for i in range(n)], dtype="string"),
        "k": pd.array([i % 3 for i in range(n)], dtype="Int64"),
    })
    data.loc[[3, 7], "y"] = np.nan
    data.loc[11, "g"] = None
    data.loc[12, "k"] = pd.NA
    rec = r_reference.fit("y ~ dose + k + (1|g)", data)
    assert rec.error is None
    assert list(rec.beta) == ["(Intercept)", "dose.L", "dose.Q", "k"]
    assert rec.n == n - 4
    assert sorted(rec.ranef["g"]["(Intercept)"]) == [f"g{i}" for i in range(6)]


def test_r_error_comes_back_as_record() -> None:
    rec = r_reference.fit("Yield ~ 1 + (1|Nope)", datasets.load("Dyestuff"))
    assert rec.error is not None and "object 'Nope' not found" in rec.error
    assert rec.criterion is None and rec.theta == []


def test_singular_fit_message() -> None:
    rec = r_reference.fit(DYESTUFF, datasets.load("Dyestuff2"), REML=False)
    assert rec.is_singular is True
    assert rec.theta == [0.0]
    assert "boundary (singular) fit: see help('isSingular')" in rec.messages


def test_rank_deficiency_message_and_dropped_column() -> None:
    sleep = datasets.load("sleepstudy")
    sleep["Days2"] = 2 * sleep["Days"]
    rec, extras = r_reference.fit_with_extras("Reaction ~ Days + Days2 + (1|Subject)", sleep)
    assert any("rank deficient so dropping 1 column" in m for m in rec.messages)
    assert extras["col_dropped"] == ["Days2"] and list(rec.beta) == ["(Intercept)", "Days"]


def test_control_is_passed_to_lmercontrol() -> None:
    rec = r_reference.fit(DYESTUFF, datasets.load("Dyestuff"), optimizer="bobyqa",
                          optCtrl={"maxfun": 3})
    assert any("maximum number of function evaluations" in w for w in rec.warnings)


def test_import_is_lazy() -> None:
    code = "import sys, r_reference; assert 'rpy2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
