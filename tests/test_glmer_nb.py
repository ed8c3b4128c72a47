"""pylme.glmer_nb against lme4 1.1-31's glmer.nb run live through rpy2 (r_reference), and
pylme's theta_ml against MASS's theta.ml: the shape, the deviance at lme4's estimates, the full
fit and the summary's family line. Needs R: fails (not skips) when PYLME_REQUIRE_R=1 and R is missing."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import pylme
from pylme.api.glmer_nb import theta_ml

pytestmark = pytest.mark.usefixtures("require_r")

GROUSE = "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | LOCATION)"


@pytest.fixture(scope="module")
def grouse():
    return pylme.datasets.load("grouseticks")


@pytest.fixture(scope="module")
def nb_fit(grouse):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylme.glmer_nb(GROUSE, grouse)


def test_theta_ml_is_mass_theta_ml(grouse) -> None:
    """MASS::theta.ml(y, mu, limit = 20, eps = 1e-4) at a Poisson fit's means, to Newton's stopping rule."""
    import r_reference
    from rpy2 import robjects as ro

    r_reference.r_versions()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g0 = pylme.glmer(GROUSE, grouse, family="poisson")
    y, mu = g0.lmod.y, g0.fitted().to_numpy()
    mass = ro.r("function(y, mu) as.numeric(MASS::theta.ml(y, mu, limit = 20, eps = 1e-4))")
    r_theta = float(mass(ro.FloatVector(y), ro.FloatVector(mu))[0])
    theta, notes = theta_ml(y, mu, limit=20, eps=1e-4)
    assert notes == []
    assert theta == pytest.approx(r_theta, rel=1e-12)


def test_glmer_nb_matches_lme4_on_grouseticks(grouse, nb_fit) -> None:
    import r_reference

    rec = r_reference.fit_glmer(GROUSE, grouse, family="negative.binomial")
    assert rec.error is None
    # lme4's glmer.nb 1.1-31: shape 3.303395, -2 logLik 1777.6814 (pylme's optimum is as low or lower)
    assert rec.family_theta == pytest.approx(3.303395, rel=1e-6)
    assert nb_fit.opt.fval <= rec.criterion * (1 + 1e-6)
    assert nb_fit.family.theta == pytest.approx(rec.family_theta, rel=1e-3)
    np.testing.assert_allclose(nb_fit.theta, rec.theta, atol=2e-3)
    se = np.array(list(rec.beta_se.values()))
    np.testing.assert_allclose(nb_fit.fixef().to_numpy(), list(rec.beta.values()), atol=1e-2 * se.max())
    np.testing.assert_allclose(np.sqrt(np.diag(nb_fit.vcov().to_numpy())), se, rtol=2e-3)
    ll = nb_fit.logLik()
    assert ll.df == 7  # lme4's npar counts the shape
    assert float(ll) == pytest.approx(rec.logLik, rel=1e-6)
    assert nb_fit.AIC() == pytest.approx(rec.AIC, rel=1e-6)
    assert nb_fit.getME("glmer.nb.theta") == nb_fit.family.theta
    assert 5 <= nb_fit.nevals <= 20


def test_deviance_at_lme4s_estimates_with_its_shape(grouse) -> None:
    """Layer 1 for glmer.nb: the deviance function of negative.binomial(lme4's shape) at lme4's (theta, beta)."""
    import r_reference

    rec = r_reference.fit_glmer(GROUSE, grouse, family="negative.binomial")
    par = np.array(rec.devfun_at[-1]["theta"])
    devfun = pylme.glmer(GROUSE, grouse, family=pylme.negative_binomial(par[-1]), devFunOnly=True)
    assert devfun(par[:-1]) == pytest.approx(rec.devfun_at[-1]["value"], rel=1e-8)


def test_summary_family_line_and_layout(nb_fit) -> None:
    text = str(nb_fit.summary())
    assert " Family: Negative Binomial(3.3033)  ( log )" in text
    assert "Generalized linear mixed model fit by maximum likelihood (Laplace\n  Approximation) [glmerMod]" in text
    assert "  1791.7   1819.7   -888.8   1777.7      396 " in text  # lme4's AIC/BIC/logLik/deviance/df.resid


def test_glmer_nb_refuses_a_family(grouse) -> None:
    with pytest.raises(pylme.ModelError, match="leave 'family' out"):
        pylme.glmer_nb(GROUSE, grouse, family="poisson")


def test_initial_theta_skips_the_poisson_fit(grouse, nb_fit) -> None:
    """initCtrl={'theta': ...} starts the shape search there (lme4's initCtrl$theta): the same optimum."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.glmer_nb(GROUSE, grouse, initCtrl={"theta": 3.0})
    assert fm.family.theta == pytest.approx(nb_fit.family.theta, rel=1e-3)
    assert fm.opt.fval == pytest.approx(nb_fit.opt.fval, rel=1e-8)
