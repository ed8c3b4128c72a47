"""The parametric bootstrap (pylme.bootMer, confint(method="boot")) against lme4's bootMer.

Because ``seed`` drives R's own generator (pylme.rbase.rng), pylme simulates the responses lme4
simulates after ``set.seed(seed)``; the replicates then agree to the optimisers' tolerance:
lme4's bootMer where lme4's ``refit`` is right (ML fits, REML fits with one fixed effect),
and a fresh ``lmer`` of each simulated response in R where it is not (lme4 1.1-31's refit of a
REML fit with p > 1 optimises the REML criterion for p = 1). With different seeds the check is
statistical: the distribution-free 95% intervals of each quantile from pylme's and from lme4's
replicates overlap.
"""
from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import pylme
import r_reference
from pylme.inference.bootstrap import norm_inter
from pylme.inference.confint import sdcor_and_fixef
from pylme.inference.profile import profile_names


def _stat(fm):
    return sdcor_and_fixef(fm, profile_names(fm))


def _fit(name, formula, REML=True, **control):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylme.lmer(formula, pylme.datasets.load(name), REML=REML, control=pylme.lmerControl(**control))


def test_result_shape_and_reproducible():
    fm = _fit("Dyestuff", "Yield ~ 1 + (1 | Batch)")
    a = pylme.bootMer(fm, _stat, nsim=20, seed=11)
    b = pylme.bootMer(fm, _stat, nsim=20, seed=11)
    assert a.R == 20 and list(a.t.columns) == [".sig01", ".sigma", "(Intercept)"]
    np.testing.assert_array_equal(a.t.to_numpy(), b.t.to_numpy())
    np.testing.assert_allclose(a.t0.to_numpy(), _stat(fm).to_numpy())
    c = pylme.bootMer(fm, _stat, nsim=20, seed=12)
    assert not np.allclose(a.t.to_numpy(), c.t.to_numpy())


def test_func_returning_prediction():
    """The tutorial's use: a population-level prediction per replicate (a plain number)."""
    fm = _fit("sleepstudy", "Reaction ~ Days + (Days | Subject)")
    nd = pylme.datasets.load("sleepstudy").iloc[:1].assign(Days=5)
    b = pylme.bootMer(fm, lambda m: float(m.predict(nd, re_form="~0").iloc[0]), nsim=30, seed=1)
    assert list(b.t.columns) == ["t1"] and b.t["t1"].notna().all()
    assert abs(b.t["t1"].mean() - fm.fixef() @ [1, 5]) < 4 * b.t["t1"].std() / np.sqrt(30)


def test_n_jobs_gives_the_same_replicates():
    """Forked workers (no R loaded in that process) give the serial result."""
    code = (
        "import pylme, numpy as np, warnings; warnings.simplefilter('ignore');"
        "fm = pylme.lmer('Yield ~ 1 + (1 | Batch)', pylme.datasets.load('Dyestuff'));"
        "f = lambda m: [m.sigma(), m.theta[0]];"
        "a = pylme.bootMer(fm, f, nsim=16, seed=3).t.to_numpy();"
        "b = pylme.bootMer(fm, f, nsim=16, seed=3, n_jobs=2).t.to_numpy();"
        "assert np.array_equal(a, b), (a, b); print('same')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "same" in out.stdout, out.stderr


@pytest.mark.parametrize("nsim", [0, -5])
def test_bad_nsim(nsim):
    fm = _fit("Dyestuff", "Yield ~ 1 + (1 | Batch)")
    with pytest.raises(ValueError, match="nsim must be a positive integer"):
        pylme.bootMer(fm, _stat, nsim=nsim)
    with pytest.raises(ValueError, match="nsim must be a positive integer"):
        fm.confint(method="boot", nsim=nsim)


def test_norm_inter_matches_boot():
    """boot's norm.inter (R 4.2.2, boot 1.3-28.1): norm.inter(1:19 / 2, c(0.025, 0.975)) gives the
    order statistics 0.5 and 9.5 exactly ((R+1) alpha = 0.5 and 19.5 are extreme), and
    norm.inter((1:99)^2, c(0.1, 0.9)) = 100 and 8100 ((R+1) alpha whole)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(norm_inter(np.arange(1, 20) / 2, np.array([0.025, 0.975])), [0.5, 9.5])
    np.testing.assert_allclose(norm_inter(np.arange(1, 100.0) ** 2, np.array([0.1, 0.9])), [100, 8100])


def _same_replicates(mine, theirs, median: float = 1e-5) -> None:
    """Replicates from the same simulated responses: fixed effects to 1e-5; the variance
    parameters as two BOBYQA runs stopping within xtol_rel 1e-4 in theta on a flat optimum
    allow (2e-3), and most replicates far closer (median 1e-5 from the same start; 1e-4 when
    R's fresh lmer starts from lme4's default start instead of the fit's theta)."""
    variance = [c for c in theirs.columns if c.startswith(".")]
    fixed = [c for c in theirs.columns if c not in variance]
    np.testing.assert_allclose(mine[fixed].to_numpy(), theirs[fixed].to_numpy(), rtol=1e-5)
    rel = np.abs(mine[variance].to_numpy() / theirs[variance].to_numpy() - 1)
    assert rel.max() < 2e-3 and np.median(rel) < median, rel


@pytest.mark.usefixtures("require_r")
class TestLiveBootstrap:
    @pytest.mark.parametrize(
        "name,formula,REML",
        [("Dyestuff", "Yield ~ 1 + (1 | Batch)", True), ("sleepstudy", "Reaction ~ Days + (Days | Subject)", False)],
    )
    def test_replicates_equal_lme4_bootmer(self, name, formula, REML):
        """Replicate by replicate on lme4's path (polish=False, carried into the refits): on
        sleepstudy ML lme4 stops 1e-7 above the optimum, and the default fit's (finished) SD
        differs from lme4's by 3.4e-5 relative, which moves every simulated response."""
        fm = _fit(name, formula, REML, polish=False)
        mine = pylme.bootMer(fm, _stat, nsim=15, seed=4)
        t0, theirs = r_reference.bootmer(formula, pylme.datasets.load(name), REML, nsim=15, seed=4)
        assert list(mine.t.columns) == list(theirs.columns)
        np.testing.assert_allclose(mine.t0.to_numpy(), t0.to_numpy(), rtol=1e-5)
        _same_replicates(mine.t, theirs)

    def test_reml_p2_equals_fresh_lmer_fits(self):
        formula = "Reaction ~ Days + (Days | Subject)"
        fm = _fit("sleepstudy", formula)
        mine = pylme.bootMer(fm, _stat, nsim=10, seed=9)
        _, theirs = r_reference.bootmer(formula, pylme.datasets.load("sleepstudy"), True, nsim=10, seed=9,
                                        refit=False)
        _same_replicates(mine.t, theirs, median=1e-4)

    def test_consistent_with_lme4_bootmer_other_seed(self):
        """Independent bootstrap samples (seeds 20 and 21, nsim 200, sleepstudy ML): for the
        2.5%, 50% and 97.5% quantiles of each statistic, the distribution-free 95% intervals
        (order statistics n q -+ 1.96 sqrt(n q (1-q))) of pylme's and lme4's replicates overlap."""
        formula, n = "Reaction ~ Days + (Days | Subject)", 200
        fm = _fit("sleepstudy", formula, REML=False)
        mine = pylme.bootMer(fm, _stat, nsim=n, seed=20).t
        _, theirs = r_reference.bootmer(formula, pylme.datasets.load("sleepstudy"), False, nsim=n, seed=21)
        for q in (0.025, 0.5, 0.975):
            half = 1.96 * np.sqrt(n * q * (1 - q))
            lo, hi = max(int(np.floor(n * q - half)), 0), min(int(np.ceil(n * q + half)), n - 1)
            for col in theirs.columns:
                a, b = np.sort(mine[col].to_numpy()), np.sort(theirs[col].to_numpy())
                assert a[lo] <= b[hi] and b[lo] <= a[hi], (col, q, a[[lo, hi]], b[[lo, hi]])

    @pytest.mark.parametrize("boot_type", ["perc", "basic", "norm"])
    def test_confint_boot_equals_lme4(self, boot_type):
        data = pylme.datasets.load("Dyestuff")
        fm = _fit("Dyestuff", "Yield ~ 1 + (1 | Batch)")
        mine = fm.confint(method="boot", nsim=40, seed=2, boot_type=boot_type)
        theirs = r_reference.confint("Yield ~ 1 + (1 | Batch)", data, True, method="boot", nsim=40, seed=2,
                                     boot_type=boot_type)
        assert list(mine.index) == list(theirs.index) and list(mine.columns) == list(theirs.columns)
        np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=1e-5)
