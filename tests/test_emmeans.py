"""Estimated marginal means (pylme.emmeans, emm_contrast, emm_summary, multcomp) against R's
emmeans 1.8.4 live (tests/postfit_r.py: R 4.2.2, lme4 1.1-31, pbkrtest 0.5.2, lmerTest 3.1-3,
on the same data), with pylme evaluated at lme4's theta-hat so that the comparison measures
emmeans' computation: estimates, SEs and limits to 1e-8 relative, Kenward-Roger and
Satterthwaite df to 1e-7, Tukey p-values to 1e-8 absolute (R's ptukey against scipy's
studentized range), and every printed table (print.summary_emm) to the character.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from postfit_r import assert_close, fit_at, printed, r_postfit

import pylme
from pylme import DataError, ModelError
from pylme.inference.emmeans import emmeans, ref_grid
from pylme.inference.multcomp import p_adjust, qdunnx

pytestmark = pytest.mark.usefixtures("require_r")

CAKE = "angle ~ recipe + temperature + (1 | recipe:replicate)"
CLASSROOM = "mathgain ~ mathkind + minority*sex + ses + (1 | classid) + (1 | schoolid)"
SLEEP = "Reaction ~ Days + (Days | Subject)"

# (R expression on the R fit fm, the same on the pylme fit at lme4's theta)
CAKE_CALLS = [
    ('emmeans(fm, "recipe")', lambda fm: emmeans(fm, "recipe")),
    ('pairs(emmeans(fm, "recipe"))', lambda fm: emmeans(fm, "recipe").pairs()),
    ('emmeans(fm, pairwise ~ recipe)', lambda fm: emmeans(fm, "pairwise ~ recipe")),
    ('emmeans(fm, ~ recipe | temperature)', lambda fm: emmeans(fm, "~ recipe | temperature")),
    ('pairs(emmeans(fm, ~ recipe | temperature))', lambda fm: emmeans(fm, "~ recipe | temperature").pairs()),
    ('emmeans(fm, c("recipe", "temperature"))', lambda fm: emmeans(fm, ["recipe", "temperature"])),
    ('contrast(emmeans(fm, "temperature"), "poly")', lambda fm: emmeans(fm, "temperature").contrast("poly")),
    ('contrast(emmeans(fm, "recipe"), list(AvsB = c(1, -1, 0), AvsBC = c(1, -0.5, -0.5)))',
     lambda fm: emmeans(fm, "recipe").contrast({"AvsB": [1, -1, 0], "AvsBC": [1, -0.5, -0.5]})),
    ('summary(contrast(emmeans(fm, "recipe"), "trt.vs.ctrl", ref = 2), infer = TRUE)',
     lambda fm: emmeans(fm, "recipe").contrast("trt.vs.ctrl", ref=2).summary(infer=True)),
    ('summary(contrast(emmeans(fm, "temperature"), "trt.vs.ctrl"), infer = TRUE)',
     lambda fm: emmeans(fm, "temperature").contrast("trt.vs.ctrl").summary(infer=True)),
    ('contrast(emmeans(fm, "recipe"), "eff")', lambda fm: emmeans(fm, "recipe").contrast("eff")),
    ('pairs(emmeans(fm, "temperature"), reverse = TRUE)', lambda fm: emmeans(fm, "temperature").pairs(reverse=True)),
    ('confint(pairs(emmeans(fm, "temperature")))', lambda fm: emmeans(fm, "temperature").pairs().confint()),
    ('confint(pairs(emmeans(fm, "recipe")), adjust = "holm", level = 0.9)',
     lambda fm: emmeans(fm, "recipe").pairs().confint(adjust="holm", level=0.9)),
    ('summary(pairs(emmeans(fm, "recipe")), adjust = "scheffe", infer = TRUE)',
     lambda fm: emmeans(fm, "recipe").pairs().summary(adjust="scheffe", infer=True)),
    ('summary(pairs(emmeans(fm, "temperature")), adjust = "sidak", infer = TRUE)',
     lambda fm: emmeans(fm, "temperature").pairs().summary(adjust="sidak", infer=True)),
    ('emmeans(fm, "recipe", lmer.df = "satterthwaite")', lambda fm: emmeans(fm, "recipe", lmer_df="satterthwaite")),
    ('emmeans(fm, "recipe", lmer.df = "asymptotic")', lambda fm: emmeans(fm, "recipe", lmer_df="asymptotic")),
    ('pairs(emmeans(fm, "recipe", lmer.df = "asymptotic"))',
     lambda fm: emmeans(fm, "recipe", lmer_df="asymptotic").pairs()),
    ('summary(emmeans(fm, "recipe", tran = "log"), type = "response")',
     lambda fm: emmeans(fm, "recipe", tran="log").summary(type="response")),
    ('summary(pairs(emmeans(fm, "recipe", tran = "log")), type = "response", infer = TRUE)',
     lambda fm: emmeans(fm, "recipe", tran="log").pairs().summary(type="response", infer=True)),
    ('emmeans(fm, "recipe", tran = "log")', lambda fm: emmeans(fm, "recipe", tran="log")),
    ('pairs(emmeans(fm, "recipe", tran = "log"), type = "response")',
     lambda fm: emmeans(fm, "recipe", tran="log").pairs().summary(type="response")),
    ('ref_grid(fm)', lambda fm: ref_grid(fm)),
]


def _check(result, got, what: str, tukey: bool = False) -> None:
    """pylme's summary against R's table (numbers) and print (characters)."""
    assert printed(got) == result.text, f"{what}: print differs\npylme:\n{printed(got)}\nR:\n{result.text}"
    if result.table is None:
        return
    table = got.summary() if hasattr(got, "summary") else got
    for col in result.table.columns:
        want = result.table[col]
        if isinstance(want.iloc[0], str):
            assert [str(v) for v in table[col]] == list(want), f"{what} {col}"
            continue
        if col == "df":
            assert_close(table[col], want, 1e-7, f"{what} df")
        elif col == "p.value":
            assert_close(table[col], want, 1e-8 if not tukey else 0.0, f"{what} p", abs_=1e-8 if tukey else 0.0)
        elif tukey and col.endswith("CL"):  # R's qtukey iterates to about 1e-8
            assert_close(table[col], want, 1e-6, f"{what} {col}")
        else:
            assert_close(table[col], want, 1e-8, f"{what} {col}", abs_=1e-12)


@pytest.fixture(scope="module")
def cake_live():
    data = pylme.datasets.load("cake")
    theta, results = r_postfit(CAKE, data, [r for r, _ in CAKE_CALLS])
    return fit_at(CAKE, data, theta), results


@pytest.mark.parametrize("k", range(len(CAKE_CALLS)), ids=[r for r, _ in CAKE_CALLS])
def test_cake_as_emmeans(cake_live, k):
    fm, results = cake_live
    r_expr, call = CAKE_CALLS[k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = call(fm)
    if isinstance(got, dict):  # emm_list
        assert printed(got) == results[k].text, f"{r_expr}\npylme:\n{printed(got)}\nR:\n{results[k].text}"
        return
    _check(results[k], got, r_expr, tukey=got.adjust == "tukey" if hasattr(got, "adjust") else True)


def test_classroom_covariates_interaction_and_at():
    """Covariates at their means or at given values, an averaged-over factor, emmeans' note on
    interactions, a 2-level pairs (no adjustment), Satterthwaite's df on a larger model."""
    data = pylme.datasets.load("classroom")
    exprs = ['emmeans(fm, "minority")', 'pairs(emmeans(fm, "minority"))',
             'emmeans(fm, ~ ses, at = list(ses = c(-1, 0, 1)))', 'emmeans(fm, ~ sex | minority)',
             'emmeans(fm, "minority", lmer.df = "satterthwaite")', 'pairs(emmeans(fm, ~ ses, at = list(ses = c(-1, 0, 1))))']
    theta, results = r_postfit(CLASSROOM, data, exprs)
    fm = fit_at(CLASSROOM, data, theta)
    with pytest.warns(pylme.FitMessage, match="misleading due to involvement in interactions"):
        em = emmeans(fm, "minority")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = [em, em.pairs(), emmeans(fm, "~ ses", at={"ses": [-1, 0, 1]}), emmeans(fm, "~ sex | minority"),
               emmeans(fm, "minority", lmer_df="satterthwaite"),
               emmeans(fm, "~ ses", at={"ses": [-1, 0, 1]}).pairs()]
        for r, g, e in zip(results, got, exprs):
            _check(r, g, e, tukey=True)


def test_ml_fit_uses_the_REML_refit_for_kenward_roger():
    """pbkrtest's vcovAdj refits an ML fit by REML; emmeans then takes the ML fit's vcov as the
    unadjusted one for Lb_ddf. pylme's REML refit is its own optimum: 1e-5 here."""
    data = pylme.datasets.load("cake")
    theta, results = r_postfit(CAKE, data, ['emmeans(fm, "recipe")'], REML=False)
    fm = fit_at(CAKE, data, theta, REML=False)
    got = emmeans(fm, "recipe").summary()
    for col in ("emmean", "SE", "df", "lower.CL", "upper.CL"):
        assert_close(got[col], results[0].table[col], 1e-5, col)


def _cake_missing_cell() -> pd.DataFrame:
    cake = pylme.datasets.load("cake")
    return cake[~((cake["recipe"] == "C") & (cake["temperature"] == "225"))].reset_index(drop=True)


def test_rank_deficient_model_marks_nonestimable_means():
    """A missing recipe x temperature cell: lme4 drops a column, emmeans prints nonEst for the
    means that need it."""
    data = _cake_missing_cell()
    formula = "angle ~ recipe * temperature + (1 | replicate)"
    exprs = ['emmeans(fm, "recipe")', 'summary(emmeans(fm, ~ recipe | temperature))']
    theta, results = r_postfit(formula, data, exprs)
    fm = fit_at(formula, data, theta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = emmeans(fm, "recipe")
        by = emmeans(fm, "~ recipe | temperature").summary()
    _check(results[0], em, exprs[0])
    want = results[1].table
    assert_close(by["emmean"], want["emmean"], 1e-8, "emmean by temperature")
    assert np.isnan(by["emmean"].iloc[-1]) and np.isnan(by["SE"].iloc[-1])


def test_weighted_and_offset_models():
    """Prior weights (cbpp proportions) and a formula offset (emmeans adds the offset's mean)."""
    cbpp = pylme.datasets.load("cbpp")
    prop = cbpp.assign(prop=cbpp["incidence"] / cbpp["size"])
    for formula, data, weights in (("prop ~ period + (1 | herd)", prop, "size"),
                                   ("incidence ~ period + offset(log(size)) + (1 | herd)", cbpp, None)):
        theta, results = r_postfit(formula, data, ['emmeans(fm, "period")', 'pairs(emmeans(fm, "period"))'],
                                   weights=weights)
        fm = fit_at(formula, data, theta, weights=weights)
        _check(results[0], emmeans(fm, "period"), formula)
        _check(results[1], emmeans(fm, "period").pairs(), formula, tukey=True)


# ---------------------------------------------------------------- adjustments
def test_p_adjust_matches_R():
    """R 4.2.2: p.adjust(c(0.01, 0.04, 0.03, 0.2, 0.04), method) for each method (n = 5, and n = 8 for holm)."""
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.04])
    want = {
        "holm": [0.05, 0.12, 0.12, 0.2, 0.12],
        "hochberg": [0.05, 0.08, 0.08, 0.2, 0.08],
        "bonferroni": [0.05, 0.2, 0.15, 1.0, 0.2],
        "BH": [0.05, 0.05, 0.05, 0.2, 0.05],
        "BY": [0.11416666666666667, 0.11416666666666667, 0.11416666666666667, 0.45666666666666667,
               0.11416666666666667],
    }
    for method, w in want.items():
        assert p_adjust(p, method) == pytest.approx(w, rel=1e-12), method
    assert p_adjust(p, "holm", n=8) == pytest.approx([0.08, 0.24, 0.21, 0.8, 0.24], rel=1e-12)


def test_dunnettx_quantile_follows_R_uniroot():
    """emmeans:::.qdunnx(0.95, k, df) in R 4.2.2 (uniroot's tolerance 5e-4 makes it a stopping point)."""
    assert qdunnx(0.95, 2, 42) == pytest.approx(2.3008277155985719, abs=1e-9)
    assert qdunnx(0.95, 5, 10.5) == pytest.approx(2.9911453413403448, abs=1e-9)


# ---------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def cake_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylme.lmer(CAKE, pylme.datasets.load("cake"))


@pytest.mark.parametrize("call, error, match", [
    (lambda fm: emmeans(fm, "recipes"), DataError, "'recipes' is not a factor of the fixed-effects formula; its "
     "factors: recipe, temperature"),
    (lambda fm: emmeans(fm, "temp"), DataError, "not a factor"),
    (lambda fm: emmeans(fm, "recipe", at={"temperature": ["999"]}), DataError, "not among the levels of 'temperature'"),
    (lambda fm: emmeans(fm, "recipe", at={"nothing": [1]}), DataError, "'nothing' is not a variable"),
    (lambda fm: emmeans(fm, "recipe").pairs(adjust="hommel"), ModelError, "adjustment 'hommel' is not available"),
    (lambda fm: emmeans(fm, "recipe").contrast("consec"), ModelError, "contrast method 'consec' is not available"),
    (lambda fm: emmeans(fm, "recipe").contrast("trt.vs.ctrl", ref=4), DataError, "out of range"),
    (lambda fm: emmeans(fm, "recipe").contrast({"x": [1, -1]}), DataError, "has 2 coefficients; the grid has 3"),
    (lambda fm: emmeans(fm, "recipe", lmer_df="kr"), ModelError, "lmer_df must be one of"),
    (lambda fm: emmeans(fm, "recipe", tran="sqrt"), ModelError, "tran must be one of"),
    (lambda fm: emmeans(fm, "recipe").summary(type="resp"), ValueError, "type must be"),
    (lambda fm: emmeans(fm, "recipe").contrast("pairwise", by="temperature"), DataError, "not in the grid"),
    (lambda fm: emmeans(fm, "~ recipe + log(x)"), ModelError, "give variable names"),
])
def test_bad_input_is_named(cake_fit, call, error, match):
    with pytest.raises(error, match=match):
        call(cake_fit)


def test_numeric_covariate_as_specs_needs_values():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(SLEEP, pylme.datasets.load("sleepstudy"))
    with pytest.raises(DataError, match="'Days' is a numeric covariate, not a factor; give the values at which"):
        emmeans(fm, "Days")
    assert len(emmeans(fm, "Days", at={"Days": [0, 9]})) == 2
