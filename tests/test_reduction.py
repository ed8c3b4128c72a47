"""Model reduction (pylme.inference.reduction) against R live (tests/postfit_r.py: lme4 1.1-31's
drop1.merMod, lmerTest 3.1-3's drop1, ranova and step, on the same data): every printed table
to the character, and the numbers: the reduced models are refitted by each engine's own
optimiser, so log-likelihoods, AICs and LRT statistics agree to 2e-5 absolute and p-values to
1e-4 relative (the conformance tolerances REFIT_ABS, REFIT_P_REL); the F-tests of lmerTest's
drop1 are functions of the fit at lme4's theta (1e-6).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from postfit_r import assert_close, fit_at, printed, r_postfit

import pylme
from pylme import DataError, ModelError
from pylme.inference.reduction import deparse_lines, drop1, ranova, step

pytestmark = pytest.mark.usefixtures("require_r")

SLEEP = "Reaction ~ Days + (Days | Subject)"
FM6 = "mathgain ~ 1 + mathkind + minority + sex + ses + housepov + (1 | classid) + (1 | schoolid)"
FM8 = "mathgain ~ mathkind + minority + ses + (1 | classid) + (1 | schoolid)"
REFIT_ABS, REFIT_P_REL = 2e-5, 1e-4


def _fit(formula, data, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylme.lmer(formula, data, **kwargs)


def _compare(table, want, what: str) -> None:
    assert list(table.index) == list(want.index), what
    assert list(table.columns) == list(want.columns), what
    for col in want.columns:
        if col.startswith("Pr("):
            assert_close(table[col], want[col], REFIT_P_REL, f"{what} {col}", abs_=1e-12)
        else:
            assert_close(table[col], want[col], 0.0, f"{what} {col}", abs_=REFIT_ABS)


# (dataset, formula, REML, R expression, pylme call)
CASES = [
    ("sleepstudy", SLEEP, True, 'lme4:::drop1.merMod(fm, test = "Chisq")', lambda fm: drop1(fm, test="Chisq")),
    ("sleepstudy", SLEEP, True, "lme4:::drop1.merMod(fm)", lambda fm: drop1(fm)),
    ("sleepstudy", SLEEP, True, "ranova(fm)", lambda fm: ranova(fm)),
    ("sleepstudy", SLEEP, True, "ranova(fm, reduce.terms = FALSE)", lambda fm: ranova(fm, reduce_terms=False)),
    ("sleepstudy", SLEEP, False, "ranova(fm)", lambda fm: ranova(fm)),
    ("sleepstudy", "Reaction ~ Days + (Days || Subject)", True, "ranova(fm)", lambda fm: ranova(fm)),
    ("sleepstudy", "Reaction ~ Days + (0 + Days | Subject)", True, "ranova(fm)", lambda fm: ranova(fm)),
    ("sleepstudy", "Reaction ~ Days + (1 | Subject)", True, "ranova(fm)", lambda fm: ranova(fm)),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", True, "ranova(fm)", lambda fm: ranova(fm)),
    ("Pastes", "strength ~ 1 + (1 | batch/cask)", False, "ranova(fm)", lambda fm: ranova(fm)),
    ("classroom", FM8, True, 'lme4:::drop1.merMod(fm, test = "Chisq")', lambda fm: drop1(fm, test="Chisq")),
    ("classroom", FM6, True, 'lme4:::drop1.merMod(fm, test = "Chisq")', lambda fm: drop1(fm, test="Chisq")),
    ("classroom", FM6, False, 'lme4:::drop1.merMod(fm, test = "Chisq", k = log(1190))',
     lambda fm: drop1(fm, test="Chisq", k=np.log(1190))),
    ("classroom", FM8, True, "ranova(fm)", lambda fm: ranova(fm)),
    ("classroom", "mathgain ~ mathkind + minority + ses + (1 | schoolid/classid)", True, "ranova(fm)",
     lambda fm: ranova(fm)),
    ("cake", "angle ~ recipe * temp + (1 | recipe:replicate)", True, 'lme4:::drop1.merMod(fm, test = "Chisq")',
     lambda fm: drop1(fm, test="Chisq")),
]


@pytest.mark.parametrize("dataset, formula, REML, r_expr, call", CASES,
                         ids=[f"{c[0]}-{c[3]}-{c[1]}-{'REML' if c[2] else 'ML'}" for c in CASES])
def test_table_as_R(dataset, formula, REML, r_expr, call):
    data = pylme.datasets.load(dataset)
    _, (result,) = r_postfit(formula, data, [r_expr], REML=REML)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = call(_fit(formula, data, REML=REML))
    assert printed(got) == result.text, f"pylme:\n{printed(got)}\nR:\n{result.text}"
    _compare(got, result.table, r_expr)


@pytest.mark.parametrize("ddf", ["Satterthwaite", "Kenward-Roger"])
def test_lmerTest_drop1_F_tests(ddf):
    """lmerTest's drop1 (marginal F-tests), at lme4's theta: functions of the fit only."""
    data = pylme.datasets.load("classroom")
    theta, (result,) = r_postfit(FM6, data, [f'drop1(fm, ddf = "{ddf}")'])
    got = drop1(fit_at(FM6, data, theta), ddf=ddf)
    assert printed(got) == result.text
    for col in result.table.columns:
        assert_close(got[col], result.table[col], 1e-6, col)


def _sleep_days_factor():
    sleep = pylme.datasets.load("sleepstudy")
    return sleep.assign(fDays=sleep["Days"].astype("category"))


@pytest.mark.parametrize("dataset, formula", [
    ("sleepstudy", SLEEP), ("classroom", FM6),
    ("cake", "angle ~ recipe + temp + (1 | replicate) + (1 | recipe:replicate)"),
    ("sleep_days_factor", "Reaction ~ Days + (Days | Subject) + (1 | fDays)"),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),  # no fixed term: an empty fixed table
])
def test_step_as_lmerTest(dataset, formula):
    """Backward elimination: the random table (terms with p > 0.1 eliminated, refitted), the fixed
    table (terms with p > 0.05), the model found; printed as lmerTest's print.step_list."""
    data = _sleep_days_factor() if dataset == "sleep_days_factor" else pylme.datasets.load(dataset)
    _, (result,) = r_postfit(formula, data, ["step(fm)"])
    got = step(_fit(formula, data))
    assert printed(got) == result.text, f"pylme:\n{printed(got)}\nR:\n{result.text}"


def test_step_keeps_terms_and_returns_the_model():
    data = pylme.datasets.load("classroom")
    fm = _fit(FM6, data)
    kept = step(fm, keep=["sex"])
    assert "sex" in kept.get_model().lmod.X_spec.terms.labels
    assert "housepov" not in kept.get_model().lmod.X_spec.terms.labels


def test_deparse_breaks_lines_as_R():
    """R 4.2.2: deparse(y ~ ...) with width.cutoff 60 (lme4's drop1 heading)."""
    assert deparse_lines(FM6) == ["mathgain ~ 1 + mathkind + minority + sex + ses + housepov + (1 | ",
                                  "    classid) + (1 | schoolid)"]
    assert deparse_lines(FM8) == [FM8]


# ---------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def penicillin():
    return _fit("diameter ~ 1 + (1 | plate) + (1 | sample)", pylme.datasets.load("Penicillin"))


def test_drop1_with_nothing_to_drop(penicillin):
    with pytest.raises(ModelError, match="drop1: the fixed-effects formula of 'diameter ~ 1 .*' has no term to "
                                         r"drop \(only the intercept\)"):
        penicillin.drop1(test="Chisq")


def test_drop1_scope_must_name_terms():
    fm = _fit(FM8, pylme.datasets.load("classroom"))
    with pytest.raises(ModelError, match=r"scope \['sex'\] is not a subset of the fixed-effect terms: mathkind, "
                                         "minority, ses"):
        fm.drop1(scope=["sex"])
    with pytest.raises(ValueError, match="test must be 'none' or 'Chisq'"):
        fm.drop1(test="F")


def test_ranova_of_a_single_term_compares_with_the_linear_model():
    """lmerTest tests the only random-effects term against lm (the logLik of lm, restricted
    for REML): no error, as in R."""
    fm = _fit("Reaction ~ Days + (1 | Subject)", pylme.datasets.load("sleepstudy"))
    table = fm.ranova()
    assert list(table.index) == ["<none>", "(1 | Subject)"] and table.fits == [None]


def test_step_that_removes_every_random_term_says_so():
    fm = _fit("Yield ~ 1 + (1 | Batch)", pylme.datasets.load("Dyestuff2"))
    with pytest.raises(ModelError, match=r"removed every random-effects term \(\(1 \| Batch\)\); the model left "
                                         "is a linear model"):
        fm.step()


def test_step_keep_must_name_terms():
    fm = _fit(FM8, pylme.datasets.load("classroom"))
    with pytest.raises(ModelError, match=r"keep \['sexF'\] names no fixed-effect term"):
        fm.step(keep=["sexF"])


def test_reduced_model_with_fewer_rows_is_refused():
    sleep = pylme.datasets.load("sleepstudy").copy()
    sleep["x"] = np.where(np.arange(len(sleep)) % 7 == 0, np.nan, np.sin(np.arange(len(sleep))))
    fm = _fit("Reaction ~ Days + x + (1 | Subject)", sleep)
    with pytest.raises(DataError, match="number of rows in use has changed"):
        fm.drop1(test="Chisq")
