"""pylme.glmer against lme4 1.1-31's glmer run live through rpy2 (r_reference): the deviance
function at lme4's (theta, beta), full fits, extractors and the summary layout, on binomial
(cbind, 0/1 factor, proportion with weights; logit, probit, cloglog) and Poisson models with
nAGQ 0, 1 and 25. Needs R: fails (not skips) when PYLME_REQUIRE_R=1 and R is missing."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pylme

pytestmark = pytest.mark.usefixtures("require_r")

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def data(name: str) -> pd.DataFrame:
    d = pylme.datasets.load(name)
    if name == "cbpp":
        d = d.assign(prop=d["incidence"] / d["size"], obs=pd.Categorical([str(i + 1) for i in range(len(d))]))
    return d


def fit(formula, d, family="binomial", link=None, **kw):
    fam = pylme.family.make_family(family, link)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylme.glmer(formula, d, family=fam, **kw)


# (data set, formula, family, link, nAGQ, weights)
MODELS = [
    ("cbpp", CBPP, "binomial", None, 1, None),
    ("cbpp", CBPP, "binomial", None, 0, None),
    ("cbpp", CBPP, "binomial", None, 25, None),
    ("cbpp", CBPP, "binomial", "probit", 1, None),
    ("cbpp", CBPP, "binomial", "cloglog", 5, None),
    ("cbpp", "prop ~ period + (1 | herd)", "binomial", None, 1, "size"),
    ("cbpp", "incidence ~ period + offset(log(size)) + (1 | herd)", "poisson", None, 1, None),
    ("grouseticks", "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", "poisson", None, 1, None),
    ("Contraception", "use ~ age + I(age^2) + urban + livch + (1 | district)", "binomial", None, 1, None),
]


@pytest.mark.parametrize("name, formula, family, link, nAGQ, weights", MODELS)
def test_deviance_function_and_fit_match_lme4(name, formula, family, link, nAGQ, weights) -> None:
    import r_reference

    d = data(name)
    rec = r_reference.fit_glmer(formula, d, family, link, nAGQ, weights)
    assert rec.error is None
    par = np.array(rec.devfun_at[-1]["theta"])
    ntheta = len(rec.theta)
    away = par.copy()
    away[:ntheta] = 0.5 * par[:ntheta] + 0.1
    r_away = r_reference.glmer_devfun_values(formula, d, [list(away)], family, link, nAGQ, weights)[0]["value"]
    fam = pylme.family.make_family(family, link)
    devfun = pylme.glmer(formula, d, family=fam, nAGQ=nAGQ, weights=weights, devFunOnly=True)
    # layer 1: the deviance at lme4's estimates and away from them, PIRLS-converged (1e-8 relative)
    assert devfun(par) == pytest.approx(rec.devfun_at[-1]["value"], rel=1e-8)
    assert devfun(away) == pytest.approx(r_away, rel=1e-8)
    gm = fit(formula, d, family, link, nAGQ=nAGQ, weights=weights)
    # the full fit: never worse than lme4's optimum by more than 1e-6 relative
    assert gm.opt.fval <= rec.criterion * (1 + 1e-6)
    np.testing.assert_allclose(gm.theta, rec.theta, atol=2e-3)
    se = np.array(list(rec.beta_se.values()))
    np.testing.assert_allclose(gm.fixef().to_numpy(), list(rec.beta.values()), atol=5e-3 * se.max())
    assert float(gm.logLik()) == pytest.approx(rec.logLik, rel=1e-6)
    assert gm.AIC() == pytest.approx(rec.AIC, rel=1e-6)
    assert gm.isSingular() == rec.is_singular


def test_cbpp_at_lme4_estimates_gives_lme4s_extractors() -> None:
    """With lme4's (theta, beta) installed: conditional modes, fitted, residuals and deviance()
    to PIRLS's convergence; condVar (from the factor of PIRLS's last iteration, whose weights are
    those of the mean before the last update: they depend on where each PIRLS started) to 1e-4;
    vcov from the finite-difference Hessian to 1e-4."""
    import r_reference

    d = data("cbpp")
    rec = r_reference.fit_glmer(CBPP, d, "binomial")
    gm = fit(CBPP, d, start={"theta": rec.theta, "fixef": list(rec.beta.values())},
             control=pylme.glmerControl(optimizer=None))
    re = gm.ranef(condVar=True)
    herd = re["herd"]["(Intercept)"]
    np.testing.assert_allclose(herd.to_numpy(), list(rec.ranef["herd"]["(Intercept)"].values()), rtol=1e-6, atol=1e-8)
    sd = np.sqrt(re.condVar["herd"][:, 0, 0])
    np.testing.assert_allclose(sd, list(rec.condvar_sd["herd"]["(Intercept)"].values()), rtol=1e-4)
    np.testing.assert_allclose(gm.fitted().to_numpy(), rec.fitted, rtol=1e-7)
    np.testing.assert_allclose(gm.residuals(type="response").to_numpy(), rec.residuals, atol=1e-8)
    np.testing.assert_allclose(gm.vcov().to_numpy(), rec.vcov, rtol=1e-4)
    assert gm.deviance() == pytest.approx(73.47428357425720, rel=1e-7)  # deviance(gm) in R
    assert gm.sigma() == 1.0


def test_cbpp_summary_layout_and_numbers() -> None:
    gm = fit(CBPP, data("cbpp"))
    gm.lmod.data_name = "cbpp"
    text = str(gm.summary())
    lines = text.splitlines()
    assert lines[:4] == ["Generalized linear mixed model fit by maximum likelihood (Laplace",
                         "  Approximation) [glmerMod]", " Family: binomial  ( logit )",
                         "Formula: cbind(incidence, size - incidence) ~ period + (1 | herd)"]
    assert "   194.1    204.2    -92.0    184.1       51 " in lines
    assert " herd   (Intercept) 0.4123   0.6421  " in lines or " herd   (Intercept) 0.4122   0.6421  " in lines
    assert any(line.startswith("(Intercept)  -1.3983     0.2312  -6.048 1.47e-09 ***") for line in lines)
    assert "Residual" not in text
    assert "Number of obs: 56, groups:  herd, 15" in lines


def test_cbpp_nagq25_loglik_is_lme4s_quadrature_constant() -> None:
    """lme4's AGQ deviance uses deviance residuals, not the aic: logLik -50.005 (not -91.98)."""
    gm = fit(CBPP, data("cbpp"), nAGQ=25)
    assert float(gm.logLik()) == pytest.approx(-50.00502, abs=1e-4)
    assert gm.method_title().endswith("(Adaptive Gauss-Hermite Quadrature, nAGQ = 25)")


def test_response_forms_agree() -> None:
    """cbind(successes, failures) and a proportion with weights are the same binomial model;
    a two-level factor and its 0/1 coding too."""
    d = data("cbpp")
    a = fit(CBPP, d)
    b = fit("prop ~ period + (1 | herd)", d, weights="size")
    assert a.opt.fval == pytest.approx(b.opt.fval, rel=1e-9)
    np.testing.assert_allclose(a.fixef(), b.fixef(), rtol=1e-6)
    c = pylme.datasets.load("Contraception")
    f = fit("use ~ age + urban + (1 | district)", c)
    g = fit("y ~ age + urban + (1 | district)", c.assign(y=(c["use"] == "Y").astype(float)))
    assert f.opt.fval == pytest.approx(g.opt.fval, rel=1e-12)


def test_predict_types_and_new_levels() -> None:
    d = data("cbpp")
    gm = fit(CBPP, d)
    np.testing.assert_allclose(gm.predict(type="response"), gm.fitted(), rtol=1e-12)
    link = gm.predict(re_form="~0")
    assert np.allclose(link, gm.getME("X").to_numpy() @ gm.fixef().to_numpy())
    nd = pd.DataFrame({"period": pd.Categorical(["1", "2"], categories=["1", "2", "3", "4"]),
                       "herd": pd.Categorical(["1", "new"])})
    out = gm.predict(nd, type="response", allow_new_levels=True)
    b1 = gm.ranef(condVar=False)["herd"].loc["1", "(Intercept)"]
    beta = gm.fixef()
    assert out.iloc[0] == pytest.approx(1 / (1 + np.exp(-(beta["(Intercept)"] + b1))))
    assert out.iloc[1] == pytest.approx(1 / (1 + np.exp(-(beta["(Intercept)"] + beta["period2"]))))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("frame, formula, family, match", [
    (lambda d: d.assign(y=d["incidence"] / d["size"] * 2), "y ~ period + (1 | herd)", "binomial",
     "y values must be 0 <= y <= 1"),
    (lambda d: d.assign(f=d["incidence"] - 5), "cbind(f, size - f) ~ period + (1 | herd)", "binomial",
     "negative counts"),
    (lambda d: d.assign(y=d["incidence"] - 3), "y ~ period + (1 | herd)", "poisson",
     "negative values not allowed for the 'Poisson' family"),
    (lambda d: d.assign(y=1.0), "y ~ period + (1 | herd)", "poisson", "Response is constant"),
    (lambda d: d, "period ~ size + (1 | herd)", "binomial", "factor with 4 levels"),
    (lambda d: d, "period ~ size + (1 | herd)", "poisson", "must be numeric for the poisson family"),
    (lambda d: d.assign(y=d["incidence"] - 1), "y ~ period + (1 | herd)", "Gamma",
     "non-positive values not allowed for the 'Gamma' family"),
])
def test_bad_responses_are_refused_with_lme4s_words(frame, formula, family, match) -> None:
    with pytest.raises(pylme.DataError, match=match):
        pylme.glmer(formula, frame(pylme.datasets.load("cbpp")), family=family)


def test_unknown_family_and_link() -> None:
    d = pylme.datasets.load("cbpp")
    with pytest.raises(pylme.ModelError, match="unknown family 'binomal'"):
        pylme.glmer(CBPP, d, family="binomal")
    with pytest.raises(pylme.ModelError, match='link "sqrt" not available for binomial family'):
        pylme.binomial(link="sqrt")
    with pytest.raises(pylme.ModelError, match='link "logit" not available for poisson family'):
        pylme.poisson(link="logit")


def test_negative_weights_and_agq_with_two_terms() -> None:
    d = data("cbpp")
    with pytest.raises(pylme.DataError, match="weights must be >= 0"):
        pylme.glmer("prop ~ period + (1 | herd)", d.assign(w=-d["size"]), family="binomial", weights="w")
    with pytest.raises(pylme.ModelError, match="nAGQ > 1 is only available for models with a single, scalar"):
        pylme.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)", d, family="binomial",
                    nAGQ=5)


def test_pirls_failure_is_lme4s_message_not_a_traceback() -> None:
    """A Poisson model with an identity link whose mean goes negative: PIRLS cannot reduce the
    deviance, and glmer says so in lme4's words."""
    d = pylme.datasets.load("grouseticks")
    with pytest.raises(pylme.ModelError, match="PIRLS|pwrssUpdate"):
        pylme.glmer("TICKS ~ cHEIGHT + (1 | BROOD)", d.assign(cHEIGHT=d["cHEIGHT"] * 50), family=pylme.poisson("identity"))
