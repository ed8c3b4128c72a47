"""PIRLS's two-block factorisation (pylme.objectives.pirls_blocked, ``glmerControl(pirls_factor=
"blocked")``) against CHOLMOD's: the same deviance function, modes and fit, to
rounding, on lme4's data sets (cbpp, grouseticks, VerbAgg; mlmRev's Contraception)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import pylme
from pylme.api.glmer import GlmerDevfun, glFormula, glmerControl

# (data set, formula, family): block 2 empty (cbpp, Contraception), one term (VerbAgg), two (grouseticks)
MODELS = [
    ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial"),
    ("Contraception", "use ~ age + I(age^2) + urban + livch + (1 | district)", "binomial"),
    ("VerbAgg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "binomial"),
    ("grouseticks", "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", "poisson"),
]


def devfuns(name: str, formula: str, family: str) -> tuple[GlmerDevfun, GlmerDevfun]:
    glmod = glFormula(formula, pylme.datasets.load(name), family)
    return tuple(GlmerDevfun(glmod, glmerControl(pirls_factor=m)) for m in ("cholmod", "blocked"))


@pytest.mark.parametrize("name, formula, family", MODELS)
def test_blocked_deviance_function_is_cholmods(name, formula, family) -> None:
    """Stage 1 (beta inside PIRLS) and stage 2 (Laplace in (theta, beta)) at points near and away
    from the optimum: the deviances to 1e-11 relative, u and beta to 1e-8, ldL2 and RX to 1e-10."""
    old, new = devfuns(name, formula, family)
    ntheta = old.ntheta
    for theta in (np.full(ntheta, 0.5), np.full(ntheta, 1.3)):
        a, b = old.evaluate(theta), new.evaluate(theta)
        assert b.value == pytest.approx(a.value, rel=1e-11)
        np.testing.assert_allclose(b.u, a.u, rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(b.beta, a.beta, rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(np.abs(new.pls.RX), np.abs(old.pls.RX), rtol=1e-10, atol=1e-12)
    beta = old.pirls.beta.copy()
    old.update(1), new.update(1)
    for scale in (1.0, 0.7):
        pars = np.concatenate([np.full(ntheta, 0.8), scale * beta])
        a, b = old.evaluate(pars), new.evaluate(pars)
        assert b.value == pytest.approx(a.value, rel=1e-11)
        assert b.ldL2 == pytest.approx(a.ldL2, rel=1e-10)
        np.testing.assert_allclose(b.u, a.u, rtol=1e-8, atol=1e-9)
    # CHOLMOD's factor, made when asked for, is the one of the last evaluation
    np.testing.assert_allclose(np.abs(b.RZX), np.abs(a.RZX), rtol=1e-8, atol=1e-10)
    assert float(new.factor.logdet()) == pytest.approx(a.ldL2, rel=1e-10)


def test_sparse_cross_block_is_the_dense_one(monkeypatch) -> None:
    """VerbAgg with Z2'WZ1 held sparse (the path of designs with many levels in both blocks, its
    Schur complement by pairs of entries per level) against the dense one and CHOLMOD: 1e-12."""
    import pylme.objectives.pirls_blocked as pb

    old, dense = devfuns(*MODELS[2])
    monkeypatch.setattr(pb, "DENSE_CROSS", 0)
    sparse = devfuns(*MODELS[2])[1]
    assert not sparse.pls.cross_dense and dense.pls.cross_dense
    theta = np.array([1.1, 0.6])
    a, b, c = old.evaluate(theta), dense.evaluate(theta), sparse.evaluate(theta)
    assert c.value == pytest.approx(b.value, rel=1e-12) and c.value == pytest.approx(a.value, rel=1e-11)
    np.testing.assert_allclose(c.u, b.u, rtol=1e-10, atol=1e-12)


def test_block2_factor_by_tiles_is_one_dpotrf() -> None:
    """grouseticks' block 2 (BROOD and LOCATION, order 181) factored by tiles of 16, the path of
    orders above DENSE_TILE (OpenBLAS's one-call dpotrf overruns its buffer from order ~15,500):
    stage 1 and stage 2 deviances and modes equal to one dpotrf's to 1e-12."""
    one, tiles = devfuns(*MODELS[3])[1], devfuns(*MODELS[3])[1]
    tiles.pls.tile = 16
    assert tiles.pls.q2 == 181
    for theta in (np.full(3, 0.5), np.full(3, 1.3)):
        a, b = one.evaluate(theta), tiles.evaluate(theta)
        assert b.value == pytest.approx(a.value, rel=1e-12)
        np.testing.assert_allclose(b.u, a.u, rtol=1e-10, atol=1e-12)
    beta = one.pirls.beta.copy()
    one.update(1), tiles.update(1)
    pars = np.concatenate([np.full(3, 0.8), beta])
    a, b = one.evaluate(pars), tiles.evaluate(pars)
    assert b.value == pytest.approx(a.value, rel=1e-12) and b.ldL2 == pytest.approx(a.ldL2, rel=1e-12)


@pytest.mark.parametrize("name, formula, family", [MODELS[0], MODELS[3]])
def test_blocked_fit_is_cholmods(name, formula, family) -> None:
    """Whole fits: deviance to 1e-9 relative, estimates and SEs to 1e-5, condVar to 1e-6."""
    d = pylme.datasets.load(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [pylme.glmer(formula, d, family=family, control=glmerControl(pirls_factor=m)) for m in ("cholmod", "blocked")]
    a, b = fits
    assert b.opt.fval == pytest.approx(a.opt.fval, rel=1e-9)
    np.testing.assert_allclose(b.opt.par, a.opt.par, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.sqrt(np.diag(b.vcov())), np.sqrt(np.diag(a.vcov())), rtol=1e-5)
    g = next(iter(a.ranef(condVar=True)))
    np.testing.assert_allclose(b.ranef(condVar=True)[g].to_numpy(), a.ranef(condVar=True)[g].to_numpy(), atol=1e-5)


def test_blocked_refused_where_it_does_not_apply() -> None:
    """A vector-valued first term cannot be block 1 (diagonal): asking for the blocked factor is an
    error naming why; ``auto`` (the default) falls back to CHOLMOD there and where block 2 is large
    in a small data set (grouseticks' 181 random effects in 403 rows), and takes the blocked factor
    for VerbAgg (block 2 of 24 items); an unknown name is refused."""
    d = pylme.datasets.load("grouseticks")
    f = "TICKS ~ YEAR + (cHEIGHT | BROOD)"
    with pytest.raises(pylme.ModelError, match="scalar first random-effects term"):
        pylme.glmer(f, d, family="poisson", control=glmerControl(pirls_factor="blocked"))
    with pytest.raises(pylme.ModelError, match="PIRLS factorisation 'dense'"):
        pylme.glmer(f, d, family="poisson", control=glmerControl(pirls_factor="dense"))
    glmod = glFormula(f, d, "poisson")
    assert type(GlmerDevfun(glmod, glmerControl(pirls_factor="auto")).pls).__name__ == "WeightedPLS"
    grouse = glFormula(MODELS[3][1], d, "poisson")
    assert type(GlmerDevfun(grouse, glmerControl()).pls).__name__ == "WeightedPLS"
    verbagg = glFormula(MODELS[2][1], pylme.datasets.load("VerbAgg"), "binomial")
    assert type(GlmerDevfun(verbagg, glmerControl()).pls).__name__ == "BlockedWeightedPLS"
