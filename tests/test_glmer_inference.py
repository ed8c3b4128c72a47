"""After a glmer fit, against lme4 1.1-31 live through rpy2: anova (the LRT of anova.merMod),
Wald intervals, refit on a new response, simulate and bootMer (profiles, drop1, influence and
allFit: tests/test_glmer_postfit.py). Needs R: fails (not skips)
when PYLME_REQUIRE_R=1 and R is missing."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from postfit_r import r_eval

import pylme

pytestmark = pytest.mark.usefixtures("require_r")

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
CBPP0 = "cbind(incidence, size - incidence) ~ 1 + (1 | herd)"


def quiet(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args, **kwargs)


@pytest.fixture(scope="module")
def cbpp():
    d = pylme.datasets.load("cbpp")
    return d.assign(prop=d["incidence"] / d["size"])


@pytest.fixture(scope="module")
def gm(cbpp):
    return quiet(pylme.glmer, CBPP, cbpp, family="binomial")


def test_anova_is_lme4s_lrt(cbpp, gm) -> None:
    gm0 = quiet(pylme.glmer, CBPP0, cbpp, family="binomial")
    tab = pylme.anova(gm0, gm)
    r = r_eval(f'gm <- glmer({CBPP}, d, binomial); gm0 <- glmer({CBPP0}, d, binomial); '
               'a <- anova(gm0, gm); c(a$npar, a$AIC, a$logLik, a$deviance, a$Chisq[2], a$Df[2], a[["Pr(>Chisq)"]][2])',
               d=cbpp)
    assert list(tab["npar"]) == [2, 5] == list(r[:2])
    np.testing.assert_allclose(tab["AIC"], r[2:4], rtol=1e-6)
    np.testing.assert_allclose(tab["logLik"], r[4:6], rtol=1e-6)
    np.testing.assert_allclose(tab["deviance"], r[6:8], rtol=1e-6)
    assert tab["Chisq"].iloc[1] == pytest.approx(r[8], rel=1e-5)  # 25.60994 (lme4)
    assert tab["Df"].iloc[1] == r[9]
    assert tab["Pr(>Chisq)"].iloc[1] == pytest.approx(r[10], rel=1e-4)


def test_wald_intervals_are_lme4s(gm, cbpp) -> None:
    ci = gm.confint(method="Wald")
    assert list(ci.index) == [".sig01", "(Intercept)", "period2", "period3", "period4"]  # no .sigma (binomial)
    assert ci.loc[".sig01"].isna().all()
    r = r_eval(f"ci <- confint(glmer({CBPP}, d, binomial), method = 'Wald'); c(ci[-1, ])", d=cbpp)
    # lme4: (Intercept) -1.851514 -0.945172; SEs from the Hessian agree to 2e-3 (conformance's GLMM_VCOV_REL)
    se = np.sqrt(np.diag(gm.vcov().to_numpy()))
    np.testing.assert_allclose(ci.iloc[1:].to_numpy().ravel(order="F"), r, atol=2e-3 * 1.96 * se.max())


def test_refit_is_lme4s_fit_of_the_new_response(gm, cbpp) -> None:
    """refit(gm, newresp) on a proportion (weights kept) equals lme4's glmer on that response."""
    rng = np.random.default_rng(3)
    succ = rng.binomial(cbpp["size"].to_numpy().astype(int), 0.15)
    new = cbpp.assign(s=succ.astype(float), f=(cbpp["size"] - succ).astype(float))
    fm = quiet(gm.refit, succ / cbpp["size"].to_numpy())
    r = r_eval("fm <- glmer(cbind(s, f) ~ period + (1 | herd), d, binomial); "
               "c(-2 * logLik(fm), getME(fm, 'theta'), fixef(fm))", d=new)
    assert fm.opt.fval <= r[0] * (1 + 1e-6)
    assert fm.opt.fval == pytest.approx(r[0], rel=1e-6)
    np.testing.assert_allclose(fm.theta, r[1:2], atol=2e-3)
    np.testing.assert_allclose(fm.fixef().to_numpy(), r[2:], atol=5e-3)
    # and the same numbers as a fresh pylme fit of the counts
    fresh = quiet(pylme.glmer, "cbind(s, f) ~ period + (1 | herd)", new, family="binomial")
    assert fm.opt.fval == pytest.approx(fresh.opt.fval, rel=1e-8)


def test_simulate_draws_around_the_fitted_model(gm) -> None:
    sim = gm.simulate(nsim=400, seed=7)
    assert sim.shape == (56, 400)
    size = gm.lmod.prior_weights
    counts = sim.to_numpy() * size[:, None]
    np.testing.assert_allclose(counts, np.rint(counts), atol=1e-9)  # proportions of the herd sizes
    # marginal mean over herds: E[linkinv(X beta + b)], b ~ N(0, sd^2), by quadrature
    x, w = np.polynomial.hermite_e.hermegauss(40)
    eta = gm.predict(re_form="~0").to_numpy()
    sd = float(gm.theta[0])
    expect = (pylme.binomial().linkinv(eta[:, None] + sd * x[None, :]) @ w) / w.sum()
    assert sim.to_numpy().mean() == pytest.approx(expect.mean(), abs=0.01)
    pd.testing.assert_frame_equal(gm.simulate(nsim=3, seed=11), gm.simulate(nsim=3, seed=11))


@pytest.mark.parametrize("family, formula, data", [
    ("poisson", "TICKS ~ YEAR + cHEIGHT + (1 | BROOD)", "grouseticks"),
    (pylme.Gamma(link="log"), "Reaction ~ Days + (1 | Subject)", "sleepstudy"),
])
def test_simulate_other_families_have_the_fitted_mean(family, formula, data) -> None:
    d = pylme.datasets.load(data)
    fm = quiet(pylme.glmer, formula, d, family=family)
    sim = fm.simulate(nsim=200, seed=1, re_form=None)  # random effects at their modes: mean mu
    ratio = sim.to_numpy().mean(axis=1).sum() / fm.fitted().sum()
    assert ratio == pytest.approx(1.0, abs=0.03)


def test_bootmer_refits_each_simulated_response(gm) -> None:
    boot = quiet(pylme.bootMer, gm, lambda m: m.fixef(), nsim=3, seed=5)
    sims = gm.simulate(nsim=3, seed=5)
    assert boot.n_fail == 0
    for k in range(3):
        fm = quiet(gm.refit, sims.iloc[:, k].to_numpy())
        np.testing.assert_allclose(boot.t.iloc[k].to_numpy(), fm.fixef().to_numpy(), rtol=1e-10)
    pd.testing.assert_series_equal(boot.t0, gm.fixef().astype(float), check_names=False)


def test_glmer_nb_simulate_and_confint_boot() -> None:
    d = pylme.datasets.load("grouseticks")
    nb = quiet(pylme.glmer_nb, "TICKS ~ YEAR + (1 | BROOD)", d)
    sim = nb.simulate(nsim=300, seed=2, re_form=None)
    # negative binomial variance mu + mu^2 / theta around the fitted means
    mu = nb.fitted().to_numpy()
    var = sim.to_numpy().var(axis=1)
    assert var.sum() / (mu + mu**2 / nb.family.theta).sum() == pytest.approx(1.0, abs=0.1)
    ci = quiet(nb.confint, method="boot", nsim=4, seed=1)
    assert list(ci.index) == [".sig01", "(Intercept)", "YEAR96", "YEAR97"]
    assert np.all(ci.iloc[:, 0] <= ci.iloc[:, 1])


@pytest.mark.parametrize("what, py, rcode", [
    ("link", lambda e: e.summary(), 'summary(e)'),
    ("response", lambda e: e.summary(type="response"), 'summary(e, type = "response")'),
    ("pairs", lambda e: pylme.pairs(e).summary(type="response"), 'summary(pairs(e), type = "response")'),
])
def test_emmeans_of_a_glmer_fit_is_emmeans(gm, cbpp, what, py, rcode) -> None:
    """emmeans 1.8 on a glmerMod: asymptotic df, the link scale, back-transformed means with
    intervals back-transformed from the logit scale, odds ratios for pairs (cbpp)."""
    out = py(pylme.emmeans(gm, "period"))
    cols = [c for c in out.columns if c not in ("period", "contrast", "df", "null")]
    r = r_eval(f'library(emmeans); e <- emmeans(glmer({CBPP}, d, binomial), "period"); s <- {rcode}; '
               f'as.matrix(as.data.frame(s)[, c({", ".join(repr(c) for c in cols)})])', d=cbpp)
    np.testing.assert_allclose(out[cols].to_numpy(dtype=float), r.reshape(len(out), len(cols), order="F"),
                               rtol=3e-3)
    assert np.all(np.isinf(out["df"].to_numpy(dtype=float)))
    text = str(out)
    assert "Degrees-of-freedom method" not in text
    assert ("Results are given on the logit (not the response) scale." in text) == (what == "link")


def test_predict_se_fit_and_intervals_on_both_scales(gm, cbpp) -> None:
    """Population-level predictions with SEs from lme4's vcov (lme4 1.1-31's predict ignores
    se.fit; the reference is X vcov(gm) X' in R) and Wald limits back-transformed by plogis."""
    nd = pd.DataFrame({"period": pd.Categorical(["1", "2", "3", "4"])})
    link = gm.predict(nd, re_form="~0", se_fit=True, interval="confidence")
    resp = gm.predict(nd, re_form="~0", type="response", se_fit=True, interval="confidence")
    r = r_eval(f"gm <- glmer({CBPP}, d, binomial); X <- model.matrix(~ period, data.frame(period = factor(1:4))); "
               "eta <- drop(X %*% fixef(gm)); se <- sqrt(diag(X %*% as.matrix(vcov(gm)) %*% t(X))); "
               "c(eta, se, plogis(eta - qnorm(0.975) * se), plogis(eta + qnorm(0.975) * se), "
               "binomial()$mu.eta(eta) * se)", d=cbpp).reshape(5, 4)
    np.testing.assert_allclose(link["fit"], r[0], rtol=1e-3)
    np.testing.assert_allclose(link["se.fit"], r[1], rtol=2e-3)
    np.testing.assert_allclose(resp[["lwr", "upr"]].to_numpy().T, r[2:4], rtol=3e-3)
    np.testing.assert_allclose(resp["se.fit"], r[4], rtol=3e-3)
    np.testing.assert_allclose(resp["fit"], 1 / (1 + np.exp(-link["fit"])), rtol=1e-12)
