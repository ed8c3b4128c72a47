"""Profiles and confidence intervals (pylme.profile, pylme.confint) against lme4's.

Recorded values (``DYESTUFF_PROFILE_CI``, ``SLEEPSTUDY_PROFILE_CI``): R 4.2.2, lme4 1.1-31,
``confint(lmer(Yield ~ 1 + (1|Batch), Dyestuff))`` and
``confint(lmer(Reaction ~ Days + (Days|Subject), sleepstudy))``, printed with digits = 10.
Live tests run lme4's ``confint(fm, method = "profile" | "Wald")`` and
``as.data.frame(profile(fm))`` through rpy2 on the same data.

Acceptance: profile intervals within 1e-3 relative of lme4's (measured: Dyestuff 1e-10,
sleepstudy 5e-6, the rest below 1e-4); Wald intervals are lme4's (1e-6 relative, the
agreement of the two fits' estimates and standard errors).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pylme
import r_reference
from pylme.rbase.splines import back_spline, interp_spline

DYESTUFF_PROFILE_CI = {
    ".sig01": (12.19853521, 84.06304671),
    ".sigma": (38.22998488, 67.65769624),
    "(Intercept)": (1486.45149997, 1568.54849437),
}
SLEEPSTUDY_PROFILE_CI = {
    ".sig01": (14.3814181608, 37.7159953183),
    ".sig02": (-0.4815007583, 0.6849862733),
    ".sig03": (3.8011640533, 8.7533807531),
    ".sigma": (22.8982668821, 28.8579965114),
    "(Intercept)": (237.6806955052, 265.1295146802),
    "Days": (7.3586532751, 13.5759187517),
}


def _fit(name: str, formula: str, REML: bool = True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylme.lmer(formula, pylme.datasets.load(name), REML=REML)


@pytest.fixture(scope="module")
def sleep_fit():
    return _fit("sleepstudy", "Reaction ~ Days + (Days | Subject)")


@pytest.mark.parametrize(
    "name,formula,expected",
    [("Dyestuff", "Yield ~ 1 + (1 | Batch)", DYESTUFF_PROFILE_CI),
     ("sleepstudy", "Reaction ~ Days + (Days | Subject)", SLEEPSTUDY_PROFILE_CI)],
)
def test_profile_intervals_recorded(name, formula, expected):
    ci = _fit(name, formula).confint()
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    assert list(ci.index) == list(expected)
    np.testing.assert_allclose(ci.to_numpy(), np.array(list(expected.values())), rtol=1e-4)


def test_singular_fit_lower_bound_is_zero():
    """lme4's behaviour on a singular fit (Dyestuff2): the profile starts at sd 0, so the
    lower limit is the bound 0; the other limits are ordinary (lme4: 2.084043489, 2.892831020,
    4.815832552, 4.312100217, 7.019092347)."""
    ci = _fit("Dyestuff2", "Yield ~ 1 + (1 | Batch)").confint()
    assert ci.loc[".sig01", "2.5 %"] == 0.0
    np.testing.assert_allclose(
        [ci.loc[".sig01", "97.5 %"], *ci.loc[".sigma"], *ci.loc["(Intercept)"]],
        [2.084043489, 2.892831020, 4.815832552, 4.312100217, 7.019092347], rtol=1e-6)


def test_parm_level_and_wald(sleep_fit):
    ci = sleep_fit.confint(parm=["Days", ".sigma"], level=0.9, method="Wald")
    assert list(ci.index) == [".sigma", "Days"]  # lme4 keeps the parameters' order
    assert list(ci.columns) == ["5 %", "95 %"]
    assert ci.loc[".sigma"].isna().all()
    se = np.sqrt(sleep_fit.vcov().loc["Days", "Days"])
    np.testing.assert_allclose(ci.loc["Days"], sleep_fit.fixef()["Days"] + np.array([-1, 1]) * 1.6448536269514722 * se,
                               rtol=1e-14)
    assert list(sleep_fit.confint(parm="beta_", method="Wald").index) == ["(Intercept)", "Days"]


def test_profile_frame_layout(sleep_fit):
    pr = sleep_fit.profile(which=".sig02")
    f = pr.frame
    assert list(f.columns) == [".zeta", ".sig01", ".sig02", ".sig03", ".sigma", "(Intercept)", "Days", ".par", ".focal"]
    assert set(f[".par"]) == {".sig02"}
    assert np.all(np.diff(f[".sig02"]) > 0) and np.all(np.diff(f[".zeta"]) > 0)  # monotone profile
    assert (f[".zeta"] == 0).sum() == 1  # the estimate itself
    assert f[".zeta"].min() < -1.96 and f[".zeta"].max() > 1.96
    assert f[".sig02"].between(-1, 1).all()


@pytest.mark.parametrize("method,level", [("bogus", 0.95), ("Wald", 1.5)])
def test_bad_arguments(sleep_fit, method, level):
    with pytest.raises(ValueError, match="method must be|level must be"):
        sleep_fit.confint(method=method, level=level)


def test_unknown_parameter(sleep_fit):
    with pytest.raises(ValueError, match=r"unknown parameter 'Dayz'.*\.sig01"):
        sleep_fit.confint(parm="Dayz", method="Wald")


def test_back_spline_inverts_forward_spline():
    """R's splines::backSpline of interpSpline (values from R 4.2.2:
    predict(backSpline(interpSpline(x, y)), c(-3, -1.96, -1.5, 0.3, 2.2, 2.5)))."""
    x, y = [0, 0.5, 1.2, 2, 3.1], [-1.5, -0.8, 0, 0.9, 2.2]
    b = back_spline(interp_spline(x, y))
    got = b.predict([-3, -1.96, -1.5, 0.3, 2.2, 2.5])
    np.testing.assert_allclose(got[2:5], [0.0, 1.47228318804781, 3.1], rtol=1e-13, atol=1e-15)
    assert np.isnan(got[[0, 1, 5]]).all()  # outside the knots, as R's NA
    np.testing.assert_allclose(interp_spline(x, y).predict([0.1, 1.9]), [-1.354616398041488, 0.784658494557671],
                               rtol=1e-13)


LIVE = [
    ("Dyestuff", "Yield ~ 1 + (1 | Batch)", True),
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)", False),
    ("sleepstudy", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", True),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", True),
    ("Pastes", "strength ~ 1 + (1 | batch/cask)", True),
    ("cake", "angle ~ recipe + temperature + (1 | recipe:replicate)", True),
]


@pytest.mark.usefixtures("require_r")
@pytest.mark.parametrize("name,formula,REML", LIVE)
def test_live_profile_intervals(name, formula, REML):
    data = pylme.datasets.load(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(formula, data, REML=REML)
        mine = fm.confint()
    theirs = r_reference.confint(formula, data, REML)
    assert list(mine.index) == list(theirs.index) and list(mine.columns) == list(theirs.columns)
    rel = np.abs(mine.to_numpy() - theirs.to_numpy()) / np.maximum(np.abs(theirs.to_numpy()), 1e-3)
    assert np.nanmax(rel) < 1e-3, pd.DataFrame(rel, index=mine.index)
    np.testing.assert_array_equal(np.isnan(mine.to_numpy()), np.isnan(theirs.to_numpy()))


@pytest.mark.usefixtures("require_r")
@pytest.mark.parametrize("name,formula,REML", LIVE[:2])
def test_live_wald(name, formula, REML):
    """On lme4's path (polish=False): on sleepstudy ML lme4 stops 1e-7 above the optimum, and the
    default (finished) fit's fixed-effect SEs differ from lme4's by 1e-6 relative."""
    data = pylme.datasets.load(name)
    mine = pylme.lmer(formula, data, REML=REML, control=pylme.lmerControl(polish=False)).confint(
        method="Wald", level=0.9)
    theirs = r_reference.confint(formula, data, REML, method="Wald", level=0.9)
    assert list(mine.columns) == list(theirs.columns) == ["5 %", "95 %"]
    np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=1e-6)


@pytest.mark.usefixtures("require_r")
def test_live_profile_frame_dyestuff():
    """The profile itself: same rows (parameter values visited) and zeta as lme4's."""
    data = pylme.datasets.load("Dyestuff")
    mine = pylme.lmer("Yield ~ 1 + (1 | Batch)", data).profile().frame
    theirs = r_reference.profile("Yield ~ 1 + (1 | Batch)", data)
    assert len(mine) == len(theirs) == 60
    assert list(mine[".par"]) == list(theirs[".par"])
    cols = [".zeta", ".sig01", ".sigma", "(Intercept)"]
    np.testing.assert_allclose(mine[cols].to_numpy(), theirs[cols].to_numpy(), rtol=1e-5, atol=1e-7)
