"""lme4's anova: likelihood-ratio tables (the seed's printed tables and lme4 1.1-31's own numbers,
R 4.2.2, recorded with Rscript), the single-model F table, the boundary mixture, bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import chi2

import pylme


def fit(formula, name, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylme.lmer(formula, pylme.datasets.load(name), **kw)


def test_pastes_lrt_refits_reml_fits_with_ml():
    fm3 = fit("strength ~ 1 + (1 | batch) + (1 | sample)", "Pastes")
    fm4 = fit("strength ~ 1 + (1 | sample)", "Pastes")
    with pytest.warns(pylme.FitMessage, match=r"refitting model\(s\) with ML \(instead of REML\)"):
        tab = pylme.anova(fm3, fm4, names=["fm3", "fm4"])
    # lme4: anova(fm4, fm3) rows fm4, fm3 (ordered by npar); seed 001 prints Chisq 0.4072, Pr 0.5234
    assert list(tab.index) == ["fm4", "fm3"]
    assert list(tab["npar"]) == [3, 4]
    np.testing.assert_allclose(tab["AIC"], [254.401699804319, 255.994465862425], rtol=1e-8)
    np.testing.assert_allclose(tab["BIC"], [260.684733490985, 264.371844111313], rtol=1e-8)
    np.testing.assert_allclose(tab["deviance"], [248.401699804319, 247.994465862425], rtol=1e-8)
    assert tab["Chisq"].iloc[1] == pytest.approx(0.407233941893935, rel=1e-5)
    assert tab["Df"].iloc[1] == 1
    assert tab["Pr(>Chisq)"].iloc[1] == pytest.approx(0.523376796461217, rel=1e-5)
    assert np.isnan(tab["Chisq"].iloc[0])
    assert str(tab).splitlines()[:3] == ["Data: Pastes", "Models:", "fm4: strength ~ 1 + (1 | sample)"]


def test_classroom_lrt_and_boundary_mixture():
    f8 = "mathgain ~ mathkind + minority + ses + (1 | classid) + (1 | schoolid)"
    fm8 = fit(f8, "classroom")
    fm9 = fit("mathgain ~ mathkind + minority + ses + (1 | schoolid)", "classroom")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tab = fm9.anova(fm8, names=["fm9M", "fm8M"])
        mix = fm9.anova(fm8, names=["fm9M", "fm8M"], boundary=True)
    # lme4 1.1-31: Chisq 11.9669970261384, Pr 0.000541511411715361 (seed 001: 11.967, 0.0005415)
    assert tab["Chisq"].iloc[1] == pytest.approx(11.9669970261384, rel=1e-6)
    assert tab["Pr(>Chisq)"].iloc[1] == pytest.approx(0.000541511411715361, rel=1e-5)
    np.testing.assert_allclose(tab["AIC"], [11415.4989902861, 11405.5319932600], rtol=1e-9)
    # one variance component on its boundary: 0.5 chi2(0) + 0.5 chi2(1), half the naive p
    assert mix["Pr(>Chisq) mixture"].iloc[1] == pytest.approx(0.5 * chi2.sf(tab["Chisq"].iloc[1], 1), rel=1e-12)


def test_single_model_f_table():
    fm = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    tab = fm.anova()
    # lme4: anova(fm): Days npar 1, Sum Sq 30030.9390201377, F 45.8529615558586
    assert list(tab.index) == ["Days"]
    assert tab.loc["Days", "npar"] == 1
    assert tab.loc["Days", "Sum Sq"] == pytest.approx(30030.9390201377, rel=1e-8)
    assert tab.loc["Days", "F value"] == pytest.approx(45.8529615558586, rel=1e-8)
    cake = fit("angle ~ recipe * temperature + (1 | recipe:replicate)", "cake").anova()
    # lme4: recipe 2 10.185860461355 0.24879; temperature 5 2100.3 20.51986; recipe:temperature 10 205.977777777777 1.00620
    assert list(cake.index) == ["recipe", "temperature", "recipe:temperature"]
    assert list(cake["npar"]) == [2, 5, 10]
    np.testing.assert_allclose(cake["Sum Sq"], [10.185860461355, 2100.300000000005, 205.977777777777], rtol=1e-8)
    np.testing.assert_allclose(cake["F value"], [0.24879, 20.51986, 1.00620], rtol=1e-4)


def test_models_on_different_data_are_refused():
    a = fit("Reaction ~ Days + (1 | Subject)", "sleepstudy")
    sub = pylme.datasets.load("sleepstudy").iloc[:170]
    b = pylme.lmer("Reaction ~ Days + (Days | Subject)", sub)
    with pytest.raises(pylme.DataError, match="not all fitted to the same size of dataset"):
        pylme.anova(a, b)
    c = pylme.lmer("log(Reaction) ~ Days + (1 | Subject)", pylme.datasets.load("sleepstudy"))
    with pytest.raises(pylme.DataError, match="responses differ"):
        pylme.anova(a, c)


def test_tables_print_as_r_prints_them():
    """print.anova's layout (printCoefmat, digits 5, zapsmall, format.pval, stars), recorded from
    R 4.2.2 / lme4 1.1-31 / lmerTest 3.1-3 with LC_ALL=C:
    anova(fm4M, fm3M) on Pastes, anova(fm9M, fm8M) on classroom, and lmerTest's
    anova(lmer(angle ~ recipe * temperature + (1|recipe:replicate), cake))."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pastes = pylme.datasets.load("Pastes")
        fm3M = pylme.lmer("strength ~ 1 + (1 | batch) + (1 | sample)", pastes, REML=False)
        fm4M = pylme.lmer("strength ~ 1 + (1 | sample)", pastes, REML=False)
        cake = pylme.lmer("angle ~ recipe * temperature + (1|recipe:replicate)", pylme.datasets.load("cake"))
    lrt = str(pylme.anova(fm4M, fm3M, names=["fm4M", "fm3M"])).splitlines()[-3:]
    assert lrt == [
        "     npar    AIC    BIC logLik deviance  Chisq Df Pr(>Chisq)",
        "fm4M    3 254.40 260.69 -124.2   248.40                     ",
        "fm3M    4 255.99 264.37 -124.0   247.99 0.4072  1     0.5234",
    ]
    assert str(cake.anova(type=3)).splitlines() == [
        "Type III Analysis of Variance Table with Satterthwaite's method",
        "                    Sum Sq Mean Sq NumDF DenDF F value Pr(>F)    ",
        "recipe               10.19    5.09     2    42  0.2488 0.7809    ",
        "temperature        2100.30  420.06     5   210 20.5199 <2e-16 ***",
        "recipe:temperature  205.98   20.60    10   210  1.0062 0.4393    ",
        "---",
        "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1",
    ]


def _sleep_models():
    sleep = pylme.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (pylme.lmer("Reaction ~ Days + (Days | Subject)", sleep, REML=False),
                pylme.lmer("Reaction ~ 1 + (Days | Subject)", sleep, REML=False))


def test_rows_are_labelled_by_the_callers_names():
    # R: anova(fm0, fm) labels the rows and the Models: lines "fm0" and "fm", whichever way it is called
    fm, fm0 = _sleep_models()
    for table in (pylme.anova(fm0, fm), fm.anova(fm0), fm0.anova(fm)):
        assert list(table.index) == ["fm0", "fm"]
        assert str(table).splitlines()[1:4] == ["Models:", "fm0: Reaction ~ 1 + (Days | Subject)",
                                                "fm: Reaction ~ Days + (Days | Subject)"]


def test_rows_are_labelled_by_keywords_or_by_position_when_a_name_is_ambiguous():
    fm, fm0 = _sleep_models()
    assert list(pylme.anova(small=fm0, large=fm).index) == ["small", "large"]
    assert list(fm.anova(small=fm0).index) == ["small", "fm"]
    assert list(pylme.anova(fm0, fm, names=["a", "b"]).index) == ["a", "b"]
    same = fm  # two local names for one model: Python cannot know which was meant
    assert list(pylme.anova(fm0, same).index) == ["fm0", "model2"]
    with pytest.raises(TypeError, match="'bogus'"):
        pylme.anova(fm0, fm, bogus=1)
