"""Influence diagnostics (pylme.influence), rePCA (pylme.inference.repca), allFit (pylme.inference.allfit) and
predictions with standard errors (pylme.inference.predict.predict_se) against R live (tests/postfit_r.py:
lme4 1.1-31 on the same data).

* hatvalues and cooks.distance are functions of the fit at theta-hat: at lme4's theta they
  agree to 1e-9 relative (crossed factors, prior weights, a nested model);
* influence() refits each deletion from theta-hat with each engine's optimiser (at most 1000
  evaluations): deleted-fit estimates to 1e-5 relative, Cook's distances to 1e-4;
* rePCA at lme4's theta: sdev to 1e-10, the rotation up to each column's sign, and R's prints;
* allFit: the optimisers pylme shares with lme4 (nlopt's BOBYQA and Nelder-Mead) reach lme4's
  criterion within 1e-6, Nelder-Mead on sleepstudy takes R's very path (139 evaluations);
* predict(se_fit=True): sqrt(diag(X V X')) as R computes it from vcov(fm).
"""
from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from postfit_r import assert_close, fit_at, printed, r_postfit

import pylme
from pylme import DataError, FormulaError
from pylme.inference.influence import cooks_distance, hatvalues, influence
from pylme.io.plotting import plot_influence
from pylme.inference.repca import print_importance

pytestmark = pytest.mark.usefixtures("require_r")

SLEEP = "Reaction ~ Days + (Days | Subject)"


def _fit(formula, data, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylme.lmer(formula, data, **kwargs)


def _cbpp_prop():
    cbpp = pylme.datasets.load("cbpp")
    return cbpp.assign(prop=cbpp["incidence"] / cbpp["size"])


@pytest.mark.parametrize("dataset, formula, weights", [
    ("sleepstudy", SLEEP, None),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", None),
    ("cbpp_prop", "prop ~ period + (1 | herd)", "size"),
    ("Pastes", "strength ~ 1 + (1 | batch/cask)", None),
])
def test_hatvalues_and_cooks_distance(dataset, formula, weights):
    data = _cbpp_prop() if dataset == "cbpp_prop" else pylme.datasets.load(dataset)
    theta, (h, d) = r_postfit(formula, data, ["hatvalues(fm)", "cooks.distance(fm)"], weights=weights)
    fm = fit_at(formula, data, theta, weights=weights)
    assert_close(hatvalues(fm), h.table["value"], 1e-9, "hatvalues")
    assert_close(cooks_distance(fm), d.table["value"], 1e-9, "cooks.distance")
    assert_close(fm.cooks_distance(), d.table["value"], 1e-9, "fm.cooks_distance()")


def test_influence_of_each_subject():
    data = pylme.datasets.load("sleepstudy")
    exprs = ['influence(fm, groups = "Subject")[["fixed.effects[-Subject]"]]',
             'influence(fm, groups = "Subject")[["var.cov.comps[-Subject]"]]',
             'cooks.distance(influence(fm, groups = "Subject"))', 'dfbetas(influence(fm, groups = "Subject"))']
    _, (fixed, vc, cook, dfbs) = r_postfit(SLEEP, data, exprs)
    # lme4's path (polish=False): lme4's deletion refits stop up to 2e-4 relative short of the optimum
    inf = influence(_fit(SLEEP, data, control=pylme.lmerControl(polish=False)), groups="Subject")
    assert list(inf.fixed_effects_deleted.index) == list(fixed.table.index)
    assert list(inf.var_cov_comps_deleted.columns) == list(vc.table.columns)
    for got, want in ((inf.fixed_effects_deleted, fixed.table), (inf.dfbetas(), dfbs.table)):
        for col in want.columns:
            assert_close(got[col], want[col], 1e-4, col, abs_=1e-6)
    # a covariance near 0 moves with each optimiser's stopping point: 1e-4 of the largest component
    scale = np.abs(vc.table.to_numpy()).max()
    for col in vc.table.columns:
        assert_close(inf.var_cov_comps_deleted[col], vc.table[col], 0.0, col, abs_=1e-4 * scale)
    assert_close(inf.cooks_distance(), cook.table["value"], 1e-4, "cooks.distance(influence)")
    assert inf.converged.all()


def test_influence_of_each_observation_and_two_grouping_columns():
    """Observations deleted one at a time; two grouping columns pasted together (batch.cask is
    Pastes' sample, so R's groups = "sample" deletes the same rows; lme4 1.1-31 itself pastes
    every column of a row for several groups, which deletes single rows)."""
    data = pylme.datasets.load("Pastes")
    formula = "strength ~ 1 + (1 | batch) + (1 | sample)"
    exprs = ['influence(fm)[["fixed.effects[-case]"]]', 'influence(fm, groups = "sample")[["fixed.effects[-sample]"]]']
    _, (cases, samples) = r_postfit(formula, data, exprs)
    fm = _fit(formula, data)
    by_case = influence(fm)
    assert len(by_case.deleted) == 60 and by_case.groups == "case"
    assert_close(by_case.fixed_effects_deleted["(Intercept)"], cases.table["(Intercept)"], 1e-6, "by case")
    by_pair = influence(fm, groups=["batch", "cask"])
    assert by_pair.groups == "batch.cask" and len(by_pair.deleted) == 30
    assert [d.replace(".", ":") for d in by_pair.deleted] == list(samples.table.index)
    assert_close(by_pair.fixed_effects_deleted["(Intercept)"], samples.table["(Intercept)"], 1e-6, "by batch.cask")


def test_influence_bad_groups():
    fm = _fit(SLEEP, pylme.datasets.load("sleepstudy"))
    with pytest.raises(DataError, match=r"groups column\(s\) \['Subjects'\] not in the data"):
        influence(fm, groups="Subjects")


def test_plot_influence_draws_the_numbers():
    fm = _fit(SLEEP, pylme.datasets.load("sleepstudy"))
    inf = influence(fm, groups="Subject")
    fig = plot_influence(inf)
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == ["Cook's distance", "dfbetas: (Intercept)", "dfbetas: Days"]
    np.testing.assert_allclose(axes[0].lines[0].get_ydata(), inf.cooks_distance().to_numpy())
    np.testing.assert_allclose(axes[2].lines[0].get_ydata(), inf.dfbetas()["Days"].to_numpy())
    plt.close(fig)
    fig = plot_influence(fm)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), fm.hatvalues().to_numpy())
    plt.close(fig)


# ---------------------------------------------------------------- rePCA
@pytest.mark.parametrize("dataset, formula", [
    ("sleepstudy", SLEEP),
    ("cake", "angle ~ recipe + temp + (recipe | replicate)"),  # singular: a zero component
    ("sleepstudy", "Reaction ~ Days + (Days || Subject)"),    # two terms of one factor, block-diagonal
])
def test_rePCA(dataset, formula):
    data = pylme.datasets.load(dataset)
    exprs = ["do.call(rbind, lapply(rePCA(fm), function(p) data.frame(sdev = p$sdev)))",
             "do.call(rbind, lapply(rePCA(fm), function(p) as.data.frame(p$rotation)))",
             "rePCA(fm)", "summary(rePCA(fm))"]
    theta, (sdev, rot, pr, summ) = r_postfit(formula, data, exprs)
    fm = fit_at(formula, data, theta)
    pcs = fm.rePCA()
    assert_close(np.concatenate([p.sdev for p in pcs.values()]), sdev.table["sdev"], 1e-10, "sdev", abs_=1e-12)
    got = np.vstack([p.rotation for p in pcs.values()])
    want = rot.table.to_numpy()
    signs = np.sign(np.sum(got * want, axis=0))
    np.testing.assert_allclose(got * signs, want, atol=1e-8)
    if pcs.summary() and all(np.all(p.sdev > 1e-6) for p in pcs.values()):
        assert printed(pcs) == pr.text
    assert printed(print_importance(pcs.summary())) == summ.text


# ---------------------------------------------------------------- allFit
def test_allFit_against_lme4():
    data = pylme.datasets.load("sleepstudy")
    exprs = ['s <- summary(allFit(fm, verbose = FALSE)); data.frame(llik = s$llik, s$theta, feval = s$feval)']
    _, (res,) = r_postfit(SLEEP, data, exprs)
    fm = _fit(SLEEP, data)
    af = fm.allFit(verbose=False)
    s = af.summary()
    assert s.which_OK.all()
    best = res.table["llik"].max()
    assert np.all(s.llik.to_numpy() > best - 2e-4)  # COBYLA stops 1e-4 short (and says so in its messages)
    for name in ("nloptwrap.NLOPT_LN_BOBYQA", "nloptwrap.NLOPT_LN_NELDERMEAD"):
        assert s.llik[name] == pytest.approx(res.table.loc[name, "llik"], abs=1e-6), name
        np.testing.assert_allclose(s.theta.loc[name].to_numpy(), res.table.loc[name].to_numpy()[1:4], atol=1e-4)
    assert s.feval["nloptwrap.NLOPT_LN_NELDERMEAD"] == res.table.loc["nloptwrap.NLOPT_LN_NELDERMEAD", "feval"]
    assert list(s.sdcor.columns) == ["Subject.(Intercept)", "Subject.Days", "Subject.Days.(Intercept)", "sigma"]
    assert s.msgs["nloptwrap.NLOPT_LN_COBYLA"][0].startswith("Model failed to converge with max|grad|")
    text = str(af)
    assert text.startswith("original model:\nReaction ~ Days + (Days | Subject)\ndata:  sleepstudy\noptimizers (7):")
    assert "$which.OK" in str(s) and "$theta" in str(s)


def test_allFit_records_a_failing_optimizer():
    """An optimiser that cannot run on the model keeps its error, as lme4's catch.errs."""
    fm = _fit("diameter ~ 1 + (1 | plate) + (1 | sample)", pylme.datasets.load("Penicillin"),
              control=pylme.lmerControl(method="cholmod"))
    af = fm.allFit(["nloptwrap.NLOPT_LN_BOBYQA", "L-BFGS-B"], verbose=False)
    assert isinstance(af["L-BFGS-B"], pylme.ModelError)
    assert "1 optimizer(s) failed" in str(af)
    with pytest.raises(ValueError, match="unknown optimizer"):
        fm.allFit(["bobyqa"], verbose=False)


# ---------------------------------------------------------------- predictions with standard errors
def test_predict_se_fit_and_confidence_interval():
    data = pylme.datasets.load("cake")
    formula = "angle ~ recipe + temp + (1 | recipe:replicate)"
    new = pd.DataFrame({"recipe": pd.Categorical(["A", "C", "B"], categories=["A", "B", "C"]),
                        "temp": [175.0, 215.0, np.nan]})
    expr = ('nd <- data.frame(recipe = factor(c("A", "C"), levels = c("A", "B", "C")), temp = c(175, 215)); '
            'X <- model.matrix(~ recipe + temp, nd); '
            'data.frame(fit = drop(X %*% fixef(fm)), se = sqrt(diag(X %*% as.matrix(vcov(fm)) %*% t(X))))')
    theta, (res,) = r_postfit(formula, data, [expr])
    fm = fit_at(formula, data, theta)
    got = fm.predict(new, re_form="~0", se_fit=True, interval="confidence")
    assert list(got.columns) == ["fit", "lwr", "upr", "se.fit"]
    assert_close(got["fit"].iloc[:2], res.table["fit"], 1e-10, "fit")
    assert_close(got["se.fit"].iloc[:2], res.table["se"], 1e-10, "se.fit")
    assert_close(got["upr"].iloc[:2], res.table["fit"] + 1.959963984540054 * res.table["se"], 1e-10, "upr")
    assert got.iloc[2].isna().all()
    with pytest.raises(FormulaError, match="fixed-effects part of a prediction only: use re_form='~0'"):
        fm.predict(new, se_fit=True)
    with pytest.raises(ValueError, match="interval must be"):
        fm.predict(new, re_form="~0", interval="prediction")
