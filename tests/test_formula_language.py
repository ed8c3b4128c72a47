"""The formula language against R itself (live, R 4.2.2 through rpy2): every function of the
evaluator's table gives R's column names and R's numbers (``model.matrix``), the data-dependent
ones (poly, scale, bs, ns) transform new data as R's ``predict`` does, and the inputs R reads
in its own way (``.``, backticked names, dates, object columns of numbers, float and string
levels, a column named like a function) give lme4's fits."""
from __future__ import annotations

import datetime as dt
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import pylme
from pylme.rbase.collation import set_collation
from pylme.description.formula import expand_terms, parse
from pylme.description.model_matrix import design

pytestmark = pytest.mark.usefixtures("require_r")


@pytest.fixture(scope="module")
def ro():
    import r_reference
    import rpy2.robjects

    r_reference.r_versions()  # starts R through the bridge
    rpy2.robjects.r('suppressMessages(library(lme4)); suppressMessages(library(splines))')
    return rpy2.robjects


@pytest.fixture
def utf8_collation(ro):
    """R's default order in a UTF-8 locale (ICU), whatever the locale of this process."""
    old = ro.r('Sys.getlocale("LC_COLLATE")')[0]
    ro.r('invisible(Sys.setlocale("LC_COLLATE", "C.UTF-8"))')
    yield
    ro.r(f'invisible(Sys.setlocale("LC_COLLATE", "{old}"))')


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 48
    return pd.DataFrame({
        "x": np.round(rng.normal(size=n), 3), "z": np.round(rng.uniform(1, 3, n), 3), "k": rng.integers(1, 6, n),
        "s": rng.choice(["apple", "Banana", "cherry", "_other", "Apple"], n),
        "f": pd.Categorical(rng.choice(["lo", "mid", "hi"], n), categories=["lo", "mid", "hi"]),
        "my col": np.round(rng.normal(size=n), 3), "log": rng.uniform(0, 1, n),
    })


def to_r(ro, data: pd.DataFrame, name: str = "d") -> None:
    from rpy2.robjects import pandas2ri
    from rpy2.robjects.conversion import localconverter

    with localconverter(ro.default_converter + pandas2ri.converter) as converter:
        ro.globalenv[name] = converter.py2rpy(data)


EXPRESSIONS = [
    "poly(x, 3)", "poly(x, degree = 2)", "poly(x, 2, raw = TRUE)", "poly(x, 1)", "scale(x)", "scale(z, center = FALSE)",
    "scale(x, scale = FALSE)", "scale(z, center = 2, scale = 0.5)", "bs(x, df = 5)", "bs(x, knots = c(-0.5, 0.5))",
    "bs(z, df = 4, degree = 2, intercept = TRUE)", "ns(x, df = 3)", "ns(z, knots = 2, intercept = TRUE)",
    "log(z)", "log(z, base = 2)", "log(z, 10)", "log(z, base = 3)", "log2(z)", "log10(z)", "log1p(z)", "exp(x/2)",
    "expm1(x)", "sqrt(z)", "abs(x)", "sin(x)", "cos(x)", "tan(x)", "sign(x)", "floor(z)", "ceiling(z)", "trunc(x)",
    "I(x^2)", "I(x**3)", "I(-x)", "I(x %% 0.5)", "I(z %/% 0.7)", "I(2 * x + 1/z)", "I((x + 1)^-2)", "pmin(x, 0)",
    "pmax(x, z, 1.5)", "x > 0", "I(x > 0 & z < 2)", "I(!(x > 0) | k == 3)", "I(k %in% c(1, 3))", "s == \"apple\"",
    "as.numeric(f)", "as.numeric(k > 2)", "factor(k)", "factor(k, levels = c(5, 3, 1, 2, 4))", "as.factor(s)",
    "factor(s, labels = c(\"A\", \"B\", \"C\", \"D\", \"E\"))", "ordered(k)", "as.ordered(f)", "relevel(f, \"mid\")",
    "relevel(factor(k), ref = 3)", "cut(x, 3)", "cut(z, breaks = c(1, 1.5, 2.5, 3))", "cut(x, 4, right = FALSE)",
    "cut(z, c(1, 2, 3), include.lowest = TRUE)", "cut(x, 2, dig.lab = 5)", "cut(x, 3, ordered_result = TRUE)",
    "cut(x, 3, labels = FALSE)", "`my col`", "log(`my col` + 10)", "log(log + 1)", "x:k", "poly(x, 2):f",
    "ns(x, 3):s", "I(pi * x)", "I(T + x)",
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_expression_as_r_model_matrix(ro, utf8_collation, expression):
    data = frame()
    to_r(ro, data)
    ro.r("d$s <- factor(d$s)")
    names = list(ro.r(f"colnames(model.matrix(~ {expression}, d))"))
    X = np.asarray(ro.r(f"model.matrix(~ {expression}, d)"))
    spec, Xp = design(expand_terms(parse(f"~ {expression}").args[0]), data)
    assert spec.column_names == names
    np.testing.assert_allclose(Xp, X, rtol=1e-12, atol=1e-13)


def test_a_column_named_like_a_function(ro):
    """Functions and columns live apart: a column `log` leaves log() alone, as in R."""
    sleep = pylme.datasets.load("sleepstudy").assign(log=lambda d: d["Days"] * 0 + 7)
    fm = pylme.lmer("Reaction ~ log(Days + 1) + log + (1 | Subject)", sleep)
    ro.r("d <- sleepstudy; d$log <- d$Days * 0 + 7")
    ro.r("fm <- suppressWarnings(suppressMessages(lmer(Reaction ~ log(Days + 1) + log + (1 | Subject), d)))")
    ref = dict(zip(ro.r("names(fixef(fm))"), ro.r("fixef(fm)")))
    fe = fm.fixef()
    assert list(fe.index) == list(ref) == ["(Intercept)", "log(Days + 1)"]  # the constant `log` dropped
    np.testing.assert_allclose(fe.to_numpy(), list(ref.values()), rtol=1e-6)


def test_backticked_names(ro):
    """R's backticks: ``Reaction ~ `my col` + (1|Subject)`` (lme4: fixef `my col` 10.46729)."""
    import r_reference

    sleep = pylme.datasets.load("sleepstudy").rename(columns={"Days": "my col"})
    fm = pylme.lmer("Reaction ~ `my col` + (1 | Subject)", sleep)
    ref = r_reference.fit("Reaction ~ `my col` + (1 | Subject)", sleep)
    assert list(fm.fixef().index) == list(ref.beta) == ["(Intercept)", "`my col`"]
    np.testing.assert_allclose(fm.fixef().to_numpy(), list(ref.beta.values()), rtol=1e-6)


@pytest.mark.parametrize("formula,names", [
    # lme4 1.1-31 takes every column but the response, the grouping one included: Subject's 17
    # dummies make the random intercepts unidentifiable (lme4 warns of a degenerate Hessian)
    ("Reaction ~ . + (1 | Subject)", ["(Intercept)", "Days"] + [f"Subject{s}" for s in (
        309, 310, 330, 331, 332, 333, 334, 335, 337, 349, 350, 351, 352, 369, 370, 371, 372)] + ["extra"]),
    ("Reaction ~ . - Subject + (Days | Subject)", ["(Intercept)", "Days", "extra"]),
    ("Reaction ~ Days:extra + . - Subject + (1 | Subject)", ["(Intercept)", "Days", "extra", "Days:extra"]),
    ("Reaction ~ .^2 - Subject - Subject:. + (1 | Subject)", ["(Intercept)", "Days", "extra", "Days:extra"]),
])
def test_dot_is_every_other_column(ro, formula, names):
    import r_reference

    sleep = pylme.datasets.load("sleepstudy")
    sleep = sleep.assign(extra=np.round(np.sin(np.arange(len(sleep))), 3))
    ref = r_reference.fit(formula, sleep)
    assert ref.error is None, ref.error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(formula, sleep)
    assert list(fm.fixef().index) == list(ref.beta) == names
    assert fm.record().criterion == pytest.approx(ref.criterion, rel=1e-6)
    assert fm.formula == formula  # kept as written, as lme4 keeps it


@pytest.mark.parametrize("formula,expression,lme4", [
    ("log(Reaction) ~ . + (1 | Subject)", "log(Reaction)", "error: not a positive definite matrix"),
    ("Reaction ~ . + I(Days^2) + (1 | Subject)", "I(Days^2)", "fixef `I(Days^2)`"),
    ("Reaction ~ . + (log(Days + 1) | Subject)", "log(Days + 1)", "fixef `log(Days + 1)`"),
])
def test_dot_beside_an_expression_is_refused(ro, formula, expression, lme4):
    """lme4 expands '.' over its model frame, whose columns include the formula's expressions:
    log(Reaction) becomes a predictor of log(Reaction) (an error), I(Days^2) a second column
    `I(Days^2)`. pylme refuses and says why."""
    import r_reference

    ref = r_reference.fit(formula, pylme.datasets.load("sleepstudy"))
    if lme4.startswith("error: "):
        assert lme4[7:] in ref.error
    else:
        assert ref.error is None and lme4[6:] in ref.beta
    with pytest.raises(pylme.FormulaError, match=re.escape(f"'.' beside the expression '{expression}'")):
        pylme.lmer(formula, pylme.datasets.load("sleepstudy"))


def test_float_group_labels_are_r_levels(ro):
    """0.1 + 0.2 and 0.3 are one level "0.3" (R's 15 significant digits): subjects 308 and 309
    become one group of 17 (pylme had 18, two labelled '0.3'), labels unique, as lme4's."""
    import r_reference

    sleep = pylme.datasets.load("sleepstudy")
    codes = sleep["Subject"].cat.codes.to_numpy()
    g = np.where(codes == 0, 0.1 + 0.2, (codes + 2) / 10.0)  # subject 308 -> 0.30000000000000004; 309 -> 0.3
    d = sleep.assign(g=g)
    fm = pylme.lmer("Reaction ~ Days + (1 | g)", d)
    ref = r_reference.fit("Reaction ~ Days + (1 | g)", d)
    assert fm.ngrps()["g"] == 17 and fm.ranef()["g"].index.is_unique
    assert list(fm.ranef()["g"].index) == list(ref.ranef["g"]["(Intercept)"])
    assert fm.record().criterion == pytest.approx(ref.criterion, rel=1e-8)
    pred = fm.predict(pd.DataFrame({"Days": [0.0, 0.0], "g": [0.1 + 0.2, 0.3]}))
    assert pred.iloc[0] == pred.iloc[1]


def test_string_levels_in_r_default_order(ro, utf8_collation):
    """R in a UTF-8 locale takes ``apple`` as the reference of apple, Banana, cherry (C order: Banana)."""
    import r_reference

    sleep = pylme.datasets.load("sleepstudy")
    d = sleep.assign(fruit=np.array(["apple", "Banana", "cherry"])[np.arange(len(sleep)) % 3])
    fm = pylme.lmer("Reaction ~ Days + fruit + (1 | Subject)", d)
    ref = r_reference.fit("Reaction ~ Days + fruit + (1 | Subject)", d)
    assert list(fm.fixef().index) == list(ref.beta) == ["(Intercept)", "Days", "fruitBanana", "fruitcherry"]
    np.testing.assert_allclose(fm.fixef().to_numpy(), list(ref.beta.values()), rtol=1e-6)


def test_c_collation_on_request(ro):
    """``set_collation("C")`` gives R's order under LC_COLLATE=C: Banana, apple, cherry."""
    import r_reference

    sleep = pylme.datasets.load("sleepstudy")
    d = sleep.assign(fruit=np.array(["apple", "Banana", "cherry"])[np.arange(len(sleep)) % 3])
    old_r = ro.r('Sys.getlocale("LC_COLLATE")')[0]
    ro.r('invisible(Sys.setlocale("LC_COLLATE", "C"))')
    old = set_collation("C")
    try:
        fm = pylme.lmer("Reaction ~ Days + fruit + (1 | Subject)", d)
        ref = r_reference.fit("Reaction ~ Days + fruit + (1 | Subject)", d)
    finally:
        set_collation(old)
        ro.r(f'invisible(Sys.setlocale("LC_COLLATE", "{old_r}"))')
    assert list(fm.fixef().index) == list(ref.beta) == ["(Intercept)", "Days", "fruitapple", "fruitcherry"]
    assert pylme.lmer("Reaction ~ Days + fruit + (1 | Subject)", d).fixef().index[2] == "fruitBanana"


def test_dates_are_numbers(ro):
    """A datetime column is a number (seconds, R's POSIXct), said in a warning; lme4 fits the same."""
    sleep = pylme.datasets.load("sleepstudy")
    d = sleep.assign(when=pd.Timestamp("2020-01-01") + pd.to_timedelta(sleep["Days"], unit="D"))
    with pytest.warns(pylme.PylmeWarning, match=r"column 'when' \(datetime64\[\w+\]\) enters the model as a number: "
                                               r"seconds since 1970-01-01"):
        fm = pylme.lmer("Reaction ~ when + (1 | Subject)", d)
    ro.r('d <- sleepstudy; d$when <- as.POSIXct("2020-01-01", tz = "UTC") + d$Days * 86400')
    ro.r("fm <- suppressWarnings(lmer(Reaction ~ when + (1 | Subject), d))")
    assert list(fm.fixef().index) == list(ro.r("names(fixef(fm))")) == ["(Intercept)", "when"]
    np.testing.assert_allclose(fm.fixef().to_numpy(), np.asarray(ro.r("fixef(fm)")), rtol=1e-5)
    assert fm.sigma() == pytest.approx(ro.r("sigma(fm)")[0], rel=1e-6)


def test_dates_as_date_objects_are_days(ro):
    """``datetime.date`` objects (an object column) are days since 1970-01-01, as R's Date."""
    sleep = pylme.datasets.load("sleepstudy")
    d = sleep.assign(day=[dt.date(2020, 1, 1) + dt.timedelta(days=int(k)) for k in sleep["Days"]])
    with pytest.warns(pylme.PylmeWarning, match="holding dates: used as days since 1970-01-01, as R's Date"):
        fm = pylme.lmer("Reaction ~ day + (1 | Subject)", d)
    ro.r('d <- sleepstudy; d$day <- as.Date("2020-01-01") + d$Days')
    ro.r("fm <- lmer(Reaction ~ day + (1 | Subject), d)")
    np.testing.assert_allclose(fm.fixef().to_numpy(), np.asarray(ro.r("fixef(fm)")), rtol=1e-6)


def test_object_column_of_numbers_is_numeric(ro):
    """An object column holding numbers is numeric, as R reads numbers (lme4: sigma 30.99), not a
    factor of 10 levels (sigma 31.43)."""
    import r_reference

    sleep = pylme.datasets.load("sleepstudy")
    d = sleep.assign(Days=sleep["Days"].astype(object))
    with pytest.warns(pylme.PylmeWarning, match="column 'Days' has dtype object holding numbers: used as numeric"):
        fm = pylme.lmer("Reaction ~ Days + (1 | Subject)", d)
    ref = r_reference.fit("Reaction ~ Days + (1 | Subject)", sleep)
    assert list(fm.fixef().index) == ["(Intercept)", "Days"]
    assert fm.sigma() == pytest.approx(ref.sigma, rel=1e-6) and round(ref.sigma, 2) == 30.99


def test_states_are_learned_on_all_rows_as_model_frame(ro):
    """R's model.frame evaluates poly() and scale() on all rows before na.omit: with missing
    responses the bases are those of all the rows, and lme4's fit is matched."""
    import r_reference

    sleep = pylme.datasets.load("sleepstudy").copy()
    sleep.loc[sleep.index[::7], "Reaction"] = np.nan
    formula = "Reaction ~ poly(Days, 2) + scale(Days) + ns(Days, 3) + (1 | Subject)"
    ref = r_reference.fit(formula, sleep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(formula, sleep)
    assert list(fm.fixef().index) == list(ref.beta)
    assert fm.record().criterion == pytest.approx(ref.criterion, rel=1e-8)
    nz = [k for k, v in ref.beta.items() if abs(v) > 1e-6]  # scale(Days) is collinear: dropped by both
    np.testing.assert_allclose(fm.fixef()[nz].to_numpy(), [ref.beta[k] for k in nz], rtol=1e-5)


def test_predict_new_data_with_learned_transforms(ro):
    """New data go through the fitted poly, scale, bs and ns (R's makepredictcall), also beyond
    the fitted range, as lme4's predict does."""
    sleep = pylme.datasets.load("sleepstudy")
    formula = "Reaction ~ poly(Days, 2) + bs(Days, df = 4) + scale(Days, center = 3) + (ns(Days, 2) | Subject)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(formula, sleep)
    nd = pd.DataFrame({"Days": [-2.0, 0.5, 4.0, 12.0], "Subject": pd.Categorical(["308", "309", "330", "372"])})
    ro.r(f"fm <- suppressWarnings(suppressMessages(lmer({formula}, sleepstudy)))")
    to_r(ro, nd, "nd")
    ro.r("nd$Subject <- factor(nd$Subject, levels = levels(sleepstudy$Subject))")
    want = np.asarray(ro.r("suppressWarnings(predict(fm, nd))"))
    np.testing.assert_allclose(fm.predict(nd).to_numpy(), want, rtol=1e-4)
    want0 = np.asarray(ro.r("suppressWarnings(predict(fm, nd, re.form = NA))"))
    np.testing.assert_allclose(fm.predict(nd, re_form="~0").to_numpy(), want0, rtol=1e-4)
