"""After a glmer fit, against lme4 1.1-31 live (tests/postfit_r.py's r_glmer_postfit): update,
the single-model anova, drop1, hatvalues, cooks.distance, influence, allFit and the profile
intervals (confint), on cbpp (binomial,
``cbind(incidence, size - incidence) ~ period + (1 | herd)``), grouseticks (Poisson, two
random-effects terms), sleepstudy (Gamma with the log link, a fit with a dispersion) and cbpp's
counts as Poisson with an offset (``incidence ~ period + offset(log(size)) + (1 | herd)``).

* anova, hatvalues and cooks.distance are functions of the fit: pylme is evaluated at lme4's
  (theta, beta) (``glmer_at``); PIRLS's stopping rule (tolPwrss 1e-7) leaves the conditional
  modes within ~1e-7 of lme4's, so they agree to 1e-5 relative (Cook's distances, which divide
  by (1 - h)^2 and square residuals near zero, to 1e-4 relative or 1e-9 absolute);
* drop1 and influence refit models: each engine's optimiser stops within lme4's glmer
  tolerances (conformance/tolerances.py's GLMM_*), so AIC and LRT agree to 1e-4 absolute and
  deletion estimates to 1e-3 of their standard errors (the Gamma fit: see its case);
* profile intervals: pylme's inner fits go further than lme4's Nelder-Mead (1e-5 in deviance),
  which moves lme4's zeta by ~1e-6: the limits agree to 1e-5 (cbpp: 4e-7).
Needs R: fails (not skips) when PYLME_REQUIRE_R=1 and R is missing."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from postfit_r import assert_close, glmer_at, printed, r_eval, r_glmer_postfit

import pylme
from pylme.inference.influence import cooks_distance, hatvalues

pytestmark = pytest.mark.usefixtures("require_r")

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
GROUSE = "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)"
SLEEP = "Reaction ~ Days + (1 | Subject)"
#: (dataset, formula, R's family, pylme's family)
DESIGNS = {
    "cbpp": ("cbpp", CBPP, "binomial", pylme.binomial()),
    "grouseticks": ("grouseticks", GROUSE, "poisson", pylme.poisson()),
    "sleepstudy_gamma": ("sleepstudy", SLEEP, 'Gamma(link = "log")', pylme.Gamma(link="log")),
    "cbpp_poisson": ("cbpp", "incidence ~ period + offset(log(size)) + (1 | herd)", "poisson", pylme.poisson()),
    "contraception": ("Contraception", "use ~ age + urban + (urban | district)", "binomial", pylme.binomial()),
}
#: lme4's glmer.nb estimate of the shape on grouseticks (TICKS ~ YEAR + (1 | BROOD)), as a fixed family
NB_THETA = 3.303224058
PROFILED = {**DESIGNS, "grouseticks_nb": ("grouseticks", "TICKS ~ YEAR + (1 | BROOD)",
                                          f"MASS::negative.binomial(theta = {NB_THETA})",
                                          pylme.negative_binomial(NB_THETA))}


def quiet(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args, **kwargs)


def _design(name):
    dataset, formula, rfam, fam = DESIGNS[name]
    return pylme.datasets.load(dataset), formula, rfam, fam


@pytest.mark.parametrize("name", list(DESIGNS))
def test_single_model_anova_hatvalues_and_cooks_distance(name) -> None:
    """lme4's anova(gm) (Sum Sq from the fit's RX, F = Mean Sq / sigma^2), hatvalues(gm) (the
    fit's L with the prior weights) and cooks.distance(gm), at lme4's estimates."""
    data, formula, rfam, fam = _design(name)
    theta, beta, (tab, h, d) = r_glmer_postfit(formula, data, rfam, ["anova(fm)", "hatvalues(fm)", "cooks.distance(fm)"])
    gm = glmer_at(formula, data, fam, theta, beta)
    out = gm.anova()
    assert list(out.index) == list(tab.table.index)
    assert_close(out.to_numpy(), tab.table.to_numpy(), 1e-5, "anova")
    # R's layout (heading, columns); the digits sit at a rounding edge on cbpp_poisson (7.37275)
    assert printed(out).splitlines()[:2] == tab.text.splitlines()[:2]
    with pytest.warns(pylme.PylmeWarning, match="the hat matrix may not make sense for GLMMs"):
        hat = gm.hatvalues()
    assert_close(hat, h.table["value"], 1e-5, "hatvalues")
    assert_close(quiet(cooks_distance, gm), d.table["value"], 1e-4, "cooks.distance", abs_=1e-9)
    assert_close(quiet(gm.cooks_distance), d.table["value"], 1e-4, "gm.cooks_distance()", abs_=1e-9)


def test_hatvalues_of_cbpp_are_lme4s_not_a_projection() -> None:
    """lme4 weights the hat matrix by the prior weights (the herd sizes) while L carries PIRLS's
    working weights: cbpp's hat values exceed 1 (lme4: 1.923769 for the first row, sum 163.5344)."""
    data, formula, rfam, fam = _design("cbpp")
    gm = quiet(pylme.glmer, formula, data, family=fam)
    hat = quiet(hatvalues, gm)
    assert hat.iloc[0] == pytest.approx(1.923769, rel=1e-4)
    assert hat.sum() == pytest.approx(163.5344, rel=1e-4)


@pytest.mark.parametrize("name", list(DESIGNS))
def test_drop1_refits_without_each_term(name) -> None:
    """lme4's drop1(gm, test = "Chisq"): each marginal fixed term dropped by update() and the
    reduced glmer refitted; npar, AIC, LRT and Pr(Chi), and the printed table."""
    data, formula, rfam, fam = _design(name)
    _, _, (res,) = r_glmer_postfit(formula, data, rfam, ['drop1(fm, test = "Chisq")'])
    gm = quiet(pylme.glmer, formula, data, family=fam)
    out = quiet(gm.drop1, test="Chisq")
    assert list(out.index) == list(res.table.index)
    assert_close(out["npar"], res.table["npar"], 0.0, "npar")
    assert_close(out[["AIC", "LRT"]].to_numpy(), res.table[["AIC", "LRT"]].to_numpy(), 0.0, "AIC, LRT", abs_=1e-4)
    assert_close(out["Pr(Chi)"], res.table["Pr(Chi)"], 1e-3, "Pr(Chi)")
    assert printed(out) == res.text


def test_drop1_of_a_glmer_nb_fit_holds_its_theta() -> None:
    """lme4's glmer.nb fit is a glmer call with negative.binomial(theta-hat): drop1 refits with
    that theta held (grouseticks, lme4: AIC 1842.4 and 1883.3, LRT 44.908). The shape is
    estimated to GLMM_NB_THETA_REL (1e-3), which moves AIC by ~1e-3."""
    data = pylme.datasets.load("grouseticks")
    nb = quiet(pylme.glmer_nb, "TICKS ~ YEAR + (1 | BROOD)", data)
    out = quiet(nb.drop1, test="Chisq")
    reduced = quiet(nb.update, ". ~ . - YEAR")
    assert reduced.family.theta == nb.family.theta
    r = r_eval("d <- drop1(glmer.nb(TICKS ~ YEAR + (1 | BROOD), g), test = 'Chisq'); c(d$npar[2], d$AIC, d$LRT[2])",
               g=data)
    assert out["npar"].iloc[1] == r[0]
    assert_close(out["AIC"], r[1:3], 0.0, "AIC", abs_=5e-3)
    assert out["LRT"].iloc[1] == pytest.approx(r[3], abs=5e-3)


def test_update_is_glmer_with_the_same_arguments() -> None:
    """update(gm, . ~ . - period) and update(gm, nAGQ = 0): glmer with the fit's family, weights
    and control, the changed ones replaced."""
    data, formula, _, fam = _design("cbpp")
    gm = quiet(pylme.glmer, formula, data, family=fam)
    _, _, (r0, ragq) = r_glmer_postfit(formula, data, "binomial", [
        "fm0 <- update(fm, . ~ . - period); c(-2 * logLik(fm0), getME(fm0, 'theta'), fixef(fm0))",
        "fa <- update(fm, nAGQ = 0); c(-2 * logLik(fa), getME(fa, 'theta'), fixef(fa))"])
    gm0 = quiet(gm.update, ". ~ . - period")
    assert gm0.formula == "cbind(incidence, size - incidence) ~ (1 | herd)"
    assert isinstance(gm0, pylme.GlmerMod) and gm0.family.family == "binomial"
    got0 = np.concatenate([[-2 * float(gm0.logLik())], gm0.theta, gm0.fixef()])
    assert_close(got0[:1], r0.table["value"][:1], 1e-6, "deviance")
    assert_close(got0[1:], r0.table["value"][1:], 0.0, "theta, beta", abs_=2e-3)
    ga = quiet(gm.update, nAGQ=0)
    assert ga.nAGQ == 0
    got = np.concatenate([[-2 * float(ga.logLik())], ga.theta, ga.fixef()])
    assert_close(got, ragq.table["value"], 0.0, "nAGQ = 0 fit", abs_=2e-3)


@pytest.mark.parametrize("name, groups, fe_se, cook_abs", [
    ("cbpp", "herd", 1e-3, 5e-4),
    ("cbpp_poisson", "herd", 1e-3, 5e-4),
    # Gamma(log): both engines stop in a flat direction, lme4's deletion fits up to 1.3e-4 lower in
    # deviance (8e-8 relative, inside GLMM conformance's 1e-6) and pylme's intercept 0.01 SE off
    ("sleepstudy_gamma", "Subject", 2e-2, 1e-2),
])
def test_influence_deletes_each_group_and_refits(name, groups, fe_se, cook_abs) -> None:
    """lme4's influence(gm, groups): each group deleted and glmer refitted from (theta, beta)
    with maxfun 1000; the deleted fixed effects (within ``fe_se`` of their standard errors),
    variance components (sigma^2 1 without a dispersion; 5e-3 relative) and the Cook's
    distances of the deletions (within ``cook_abs`` of the largest)."""
    data, formula, rfam, fam = _design(name)
    call = f'influence(fm, groups = "{groups}")'
    _, _, (fe, vc, cd) = r_glmer_postfit(formula, data, rfam, [
        f'i <- {call}; i[["fixed.effects[-{groups}]"]]', f'i[["var.cov.comps[-{groups}]"]]', "cooks.distance(i)"])
    gm = quiet(pylme.glmer, formula, data, family=fam)
    inf = gm.influence(groups=groups)
    assert [str(d) for d in inf.deleted] == list(fe.table.index)
    assert list(inf.var_cov_comps.index) == list(vc.table.columns)
    assert inf.converged.all()
    se = np.sqrt(np.diag(gm.vcov().to_numpy()))
    assert_close(inf.dfbeta().to_numpy() / se, fe.table.to_numpy() / se - gm.fixef().to_numpy() / se, 0.0,
                 "deleted fixed effects / SE", abs_=fe_se)
    assert_close(inf.var_cov_comps_deleted.to_numpy(), vc.table.to_numpy(), 5e-3, "variance components")
    want = cd.table["value"].to_numpy()
    assert_close(inf.cooks_distance(), want, 0.0, "Cook's distances", abs_=cook_abs * want.max())


def test_analyses_lme4_refuses_or_pylme_has_not_verified_for_glmer() -> None:
    """lmerTest's F tables (anova type/ddf, drop1 ddf) are for lmer fits; drop1's test must be
    lme4's ("none" or "Chisq")."""
    data, formula, _, fam = _design("cbpp")
    gm = quiet(pylme.glmer, formula, data, family=fam)
    with pytest.raises(pylme.ModelError, match="drop1 with ddf"):
        gm.drop1(ddf="Satterthwaite")
    with pytest.raises(pylme.ModelError, match="anova with type or ddf"):
        gm.anova(type=3)
    with pytest.raises(ValueError, match="test must be 'none' or 'Chisq'"):
        gm.drop1(test="F")


# ---------------------------------------------------------------- allFit
NLOPT_ROWS = ('m <- lme4:::meth.tab.0[lme4:::meth.tab.0[, "optimizer"] == "nloptwrap", , drop = FALSE]; '
              "s <- summary(allFit(fm, meth.tab = m, verbose = FALSE)); ")
SHARED = ["nloptwrap.NLOPT_LN_NELDERMEAD", "nloptwrap.NLOPT_LN_BOBYQA"]


@pytest.mark.parametrize("name", ["cbpp", "grouseticks", "sleepstudy_gamma"])
def test_allFit_of_a_glmer_fit_runs_lme4s_nloptwrap_in_both_stages(name) -> None:
    """lme4's allFit refits a glmer with glmerControl(optimizer = "nloptwrap") and the algorithm:
    both stages run nloptr with lme4's defaults. pylme's nlopt takes lme4's very path with
    Nelder-Mead (the same evaluations, log-likelihood and theta) and with BOBYQA on cbpp and
    grouseticks; on the Gamma model BOBYQA's stage 2 goes its own way, to a higher
    log-likelihood than lme4's (-870.40436 against -870.40448)."""
    data, formula, rfam, fam = _design(name)
    _, _, (res, msgs) = r_glmer_postfit(formula, data, rfam, [
        NLOPT_ROWS + "data.frame(llik = s$llik, s$theta, feval = s$feval)",
        "data.frame(msg = vapply(s$msgs, function(m) if (is.null(m)) '' else m[[1]], ''))"])
    gm = quiet(pylme.glmer, formula, data, family=fam)
    s = gm.allFit(SHARED, verbose=False).summary()
    r = res.table.loc[SHARED]
    nm = SHARED[0]
    assert s.feval[nm] == r.loc[nm, "feval"]
    assert s.llik[nm] == pytest.approx(r.loc[nm, "llik"], abs=1e-8)
    assert_close(s.theta.loc[nm], r.loc[nm].to_numpy()[1:-1], 0.0, "Nelder-Mead's theta", abs_=1e-7)
    bobyqa = SHARED[1]
    if name == "sleepstudy_gamma":
        assert s.llik[bobyqa] > r.loc[bobyqa, "llik"]
    else:
        assert s.feval[bobyqa] == r.loc[bobyqa, "feval"]
        assert s.llik[bobyqa] == pytest.approx(r.loc[bobyqa, "llik"], abs=1e-8)
        assert_close(s.theta.loc[bobyqa], r.loc[bobyqa].to_numpy()[1:-1], 0.0, "BOBYQA's theta", abs_=1e-6)
    for opt in SHARED[: 1 if name == "sleepstudy_gamma" else 2]:  # checkConv's words to the gradient's 5th digit
        want = msgs.table.loc[opt, "msg"]
        assert [m[:50] for m in s.msgs[opt]] == ([want[:50]] if want else [])


def test_allFit_of_a_glmer_fit_records_what_cannot_run() -> None:
    """cbpp's stage 1 has one parameter: nlopt's NEWUOA cannot take it and its PRAXIS never
    stops on it; both are recorded as failed (lme4's catch.errs), L-BFGS-B needs lmer's gradient."""
    data, formula, _, fam = _design("cbpp")
    gm = quiet(pylme.glmer, formula, data, family=fam)
    af = gm.allFit(verbose=False)
    assert list(af) == ["nloptwrap.NLOPT_LN_BOBYQA", "nloptwrap.NLOPT_LN_NELDERMEAD", "nloptwrap.NLOPT_LN_SBPLX",
                        "nloptwrap.NLOPT_LN_COBYLA", "nloptwrap.NLOPT_LN_NEWUOA_BOUND", "nloptwrap.NLOPT_LN_PRAXIS"]
    assert "2 optimizer(s) failed" in str(af)
    assert "needs at least two parameters" in str(af["nloptwrap.NLOPT_LN_NEWUOA_BOUND"])
    assert "does not stop on a single parameter" in str(af["nloptwrap.NLOPT_LN_PRAXIS"])
    lbfgsb = gm.allFit(["L-BFGS-B"], verbose=False)["L-BFGS-B"]
    assert isinstance(lbfgsb, pylme.ModelError) and "glmer fits take the nloptwrap optimizers" in str(lbfgsb)
    s = af.summary()
    assert s.which_OK.sum() == 4 and list(s.sdcor.columns) == ["herd.(Intercept)"]
    assert np.ptp(s.llik.to_numpy()) < 1e-6


# ---------------------------------------------------------------- profile and its intervals
@pytest.mark.parametrize("name, parm, nAGQ, tol", [
    ("cbpp", None, 1, 1e-5),  # lme4: .sig01 0.3460732 1.0999746, period2 -1.6167833 -0.4077631
    ("cbpp", [".sig01", "period2"], 25, 1e-5),  # adaptive quadrature's deviance
    ("grouseticks", ["YEAR96", ".sig02"], 1, 2e-5),  # .sig02's lower limit is its bound, 0
    # the correlation of a vector term; its profile is not monotonic in lme4 either (linear interpolation)
    ("contraception", [".sig02"], 1, 1e-5),
    # a negative binomial family with lme4's glmer.nb shape held (lme4's profile of the glmer.nb
    # fit itself evaluates the deviance at another shape than its base: see the README)
    ("grouseticks_nb", [".sig01", "YEAR96"], 1, 2e-5),
])
def test_profile_intervals_of_a_glmer_fit_are_lme4s(name, parm, nAGQ, tol) -> None:
    """lme4's confint(gm) (profile.merMod of a GLMM: the deviance the fit optimised, minimised
    over every other parameter, fixed effects profiled the same way): the intervals, and the
    profile's points per parameter (lme4's steps)."""
    dataset, formula, rfam, fam = PROFILED[name]
    data = pylme.datasets.load(dataset)
    which = "NULL" if parm is None else "c(" + ", ".join(f"'{p}'" for p in parm) + ")"
    _, _, (ci, npts) = r_glmer_postfit(formula, data, rfam, [
        f"pr <- profile(fm, which = {which}); confint(pr)", "as.data.frame(table(as.data.frame(pr)$.par))"],
        nAGQ=nAGQ)
    gm = quiet(pylme.glmer, formula, data, family=fam, nAGQ=nAGQ)
    pr = quiet(gm.profile, which=parm)
    got = quiet(pr.confint)
    assert list(got.index) == list(ci.table.index)
    assert_close(got.to_numpy(), ci.table.to_numpy(), 0.0, "profile intervals", abs_=tol)
    sizes = pr.frame.groupby(".par").size()
    assert dict(zip(npts.table["Var1"], npts.table["Freq"])) == {k: float(v) for k, v in sizes.items()}
    # the fit's deviance function is left at the fit's estimates (its factor is getME(gm, "L"))
    assert gm.devfun.factor.logdet() == pytest.approx(gm.state.ldL2, rel=1e-12)


def test_confint_of_a_glmer_fit_profiles_by_default() -> None:
    """confint(gm) is confint(profile(gm)), as lme4's default method."""
    data, formula, _, fam = _design("cbpp")
    gm = quiet(pylme.glmer, formula, data, family=fam)
    want = quiet(gm.profile, which=".sig01").confint(level=0.9)
    pd.testing.assert_frame_equal(quiet(gm.confint, parm=".sig01", level=0.9), want)


def test_profile_refuses_what_lme4_refuses() -> None:
    """lme4: "can't (yet) profile GLMMs with non-fixed scale parameters" (a Gamma fit); an nAGQ = 0
    fit's deviance takes theta alone (lme4 stops with "theta size mismatch"): a clear error."""
    data, formula, _, fam = _design("sleepstudy_gamma")
    gm = quiet(pylme.glmer, formula, data, family=fam)
    with pytest.raises(pylme.ModelError, match=r"can't \(yet\) profile GLMMs with non-fixed scale parameters"):
        gm.confint()
    data, formula, _, fam = _design("cbpp")
    g0 = quiet(pylme.glmer, formula, data, family=fam, nAGQ=0)  # lme4 fails: "theta size mismatch"
    with pytest.raises(pylme.ModelError, match="profile of a glmer fit with nAGQ = 0 is not available"):
        g0.profile()
