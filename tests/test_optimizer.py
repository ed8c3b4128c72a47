"""The optimiser wrapper and its record (OptSummary), checked against lme4 1.1-31 (R 4.2.2):
the starting values of mkLmerDevfun, the number of evaluations and nloptr's return message."""
from __future__ import annotations

import numpy as np
import pytest

import pylme
from pylme.fitting.optimizer import DEFAULT_OPT_CTRL


def test_variance_ratio_start_and_evaluations_as_lme4():
    # R: environment(lmer(Yield ~ (1|Batch), Dyestuff, devFunOnly=TRUE))$pp$theta
    dev = pylme.lmer("Yield ~ (1 | Batch)", pylme.datasets.load("Dyestuff"), devFunOnly=True)
    assert dev.start == pytest.approx([0.97876050342587007], rel=1e-14)
    pen = pylme.lmer("diameter ~ (1 | plate) + (1 | sample)", pylme.datasets.load("Penicillin"), devFunOnly=True)
    assert pen.start == pytest.approx([1.7449150221442946, 3.5940134817983642], rel=1e-14)
    # R: fm@optinfo$feval and $message for the Dyestuff and sleepstudy fits
    fm = pylme.lmer("Yield ~ (1 | Batch)", pylme.datasets.load("Dyestuff"))
    opt = fm.opt.summary
    assert opt.feval == 17
    assert opt.conv == 0
    assert opt.message == "NLOPT_XTOL_REACHED: Optimization stopped because xtol_rel or xtol_abs (above) was reached."
    fm2 = pylme.lmer("Reaction ~ Days + (Days | Subject)", pylme.datasets.load("sleepstudy"))
    assert fm2.opt.summary.feval == 43
    np.testing.assert_array_equal(fm2.opt.summary.initial, [1.0, 0.0, 1.0])  # lme4: 1 on the diagonal, 0 off it
    np.testing.assert_array_equal(fm2.opt.summary.lower, [0.0, -np.inf, 0.0])


def test_opt_summary_records_settings_and_every_evaluation():
    fm = pylme.lmer("Reaction ~ Days + (Days | Subject)", pylme.datasets.load("sleepstudy"))
    opt = fm.opt.summary
    assert opt.control == DEFAULT_OPT_CTRL == {
        "algorithm": "NLOPT_LN_BOBYQA", "xtol_abs": 1e-8, "ftol_abs": 1e-8, "xtol_rel": 1e-4, "maxeval": 100_000,
    }
    assert len(opt.log) == opt.feval
    best = min(opt.log, key=lambda e: e[1])
    assert best[1] == opt.fval
    np.testing.assert_array_equal(best[0], opt.par)


def test_start_and_maxeval_are_passed_on():
    sleep = pylme.datasets.load("sleepstudy")
    fm = pylme.lmer("Reaction ~ Days + (Days | Subject)", sleep, start=[0.9, 0.0, 0.2],
                    control=pylme.lmerControl(optCtrl={"maxeval": 7}, calc_derivs=False))
    np.testing.assert_array_equal(fm.opt.summary.initial, [0.9, 0.0, 0.2])
    assert fm.opt.summary.feval == 7
    assert fm.opt.summary.conv == 5
    assert fm.warnings[0].startswith("convergence code 5 from nloptwrap: NLOPT_MAXEVAL_REACHED")
    with pytest.raises(pylme.ModelError, match=r"incorrect number of theta components \(!=3\)"):
        pylme.lmer("Reaction ~ Days + (Days | Subject)", sleep, start=[1.0])


def test_verbose_prints_each_evaluation_and_the_return_code(capsys):
    fm = pylme.lmer("Yield ~ (1 | Batch)", pylme.datasets.load("Dyestuff"), verbose=1)
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["iteration: 1", "\tf(x) = 319.758685", "\ttheta = 0.978761"]  # lme4 prints f(x) = 319.758685 first
    assert sum(line.startswith("iteration:") for line in out) == fm.opt.summary.feval == 17
    assert out[-1] == "return code 4: " + fm.opt.summary.message


def test_no_optimization_installs_the_given_theta():
    # R: lmer(Reaction ~ Days + (Days|Subject), sleepstudy, start = c(0.9, 0.01, 0.2),
    #         control = lmerControl(optimizer = NULL)): REMLcrit, fixef, sigma, conv 1000
    fm = pylme.lmer("Reaction ~ Days + (Days | Subject)", pylme.datasets.load("sleepstudy"),
                    start=[0.9, 0.01, 0.2], control=pylme.lmerControl(optimizer=None))
    np.testing.assert_array_equal(fm.theta, [0.9, 0.01, 0.2])
    assert fm.REMLcrit() == pytest.approx(1744.1859171533154, rel=1e-12)
    np.testing.assert_allclose(fm.fixef(), [251.40510484848255, 10.46728595959588], rtol=1e-12)
    assert fm.sigma() == pytest.approx(26.060735883194873, rel=1e-12)
    assert fm.opt.summary.status == 1000


def test_large_fits_count_evaluations_on_a_progress_bar(monkeypatch):
    """A fit on the blocked path (large data) reports each evaluation to a progress bar, shown
    on a terminal only; a small fit on the CHOLMOD path gets a silent one."""
    import sys

    from pylme.rbase.progress import _Silent, progress_bar

    L = sys.modules["pylme.fitting.driver"]  # the module that runs the optimiser

    made = []

    class Recorder:
        def __init__(self, total, desc, show):
            self.show, self.n, self.closed = show, 0, False
            made.append(self)

        def update(self, n=1):
            self.n += n

        def set_postfix_str(self, text):
            self.text = text

        def close(self):
            self.closed = True

    monkeypatch.setattr(L, "progress_bar", Recorder)
    d = pylme.datasets.load("sleepstudy")
    fm = pylme.lmer("Reaction ~ Days + (Days | Subject)", d, control=pylme.lmerControl(method="blocked"))
    assert made[-1].show is None and made[-1].closed  # None: shown when stderr is a terminal
    assert made[-1].n == sum(r.feval for r in fm.opt.runs) and made[-1].text.startswith("criterion ")
    pylme.lmer("Reaction ~ Days + (Days | Subject)", d)
    assert made[-1].show is False
    assert isinstance(progress_bar(None, "x", show=False), _Silent)


def test_progress_bar_writes_to_stderr_when_asked(capsys):
    from pylme.rbase.progress import progress_bar

    bar = progress_bar(3, "profile", show=True)
    bar.update(3)
    bar.close()
    assert "profile" in capsys.readouterr().err
