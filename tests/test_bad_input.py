"""Bad input gives a pylme error of the right class whose message names the problem.

Each test feeds one bad input to pylme and checks the exception class and that the
message names the column, level or term at fault. Where lme4 has its own message,
pylme must use lme4's words. The comments quote lme4 1.1-31 (R 4.2.2), from running
the same input through Rscript.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import pylme
from pylme import DataError, FitMessage, FormulaError, ModelError, PylmeError


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return pylme.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def fm(sleep: pd.DataFrame):
    """lmer(Reaction ~ Days + (Days | Subject), sleepstudy)."""
    return pylme.lmer("Reaction ~ Days + (Days | Subject)", sleep)


def _copy(df: pd.DataFrame) -> pd.DataFrame:
    return df.copy(deep=True)


# ------------------------------------------------------------------ the formula
def test_no_random_effects_term(sleep):
    # lme4: "No random effects terms specified in formula"
    with pytest.raises(ModelError, match=r"^No random effects terms specified in formula"):
        pylme.lmer("Reaction ~ Days", sleep)


def test_unknown_column_in_fixed_part(sleep):
    # lme4: "object 'Dayz' not found" (from eval(predvars, data, env))
    with pytest.raises(DataError, match=r"'Dayz'.*not found in data"):
        pylme.lmer("Reaction ~ Dayz + (1 | Subject)", sleep)


def test_unknown_column_in_random_effects_lhs(sleep):
    # lme4: "object 'Dayz' not found"
    with pytest.raises(DataError, match=r"'Dayz'.*not found in data"):
        pylme.lmer("Reaction ~ Days + (Dayz | Subject)", sleep)


def test_unknown_grouping_variable(sleep):
    # lme4: "object 'Subjekt' not found"
    with pytest.raises(DataError, match=r"'Subjekt'.*not found in data") as exc:
        pylme.lmer("Reaction ~ Days + (1 | Subjekt)", sleep)
    # the existing columns are listed (and the unknown one is not among them)
    assert "available: Reaction, Days, Subject" in str(exc.value)


def test_unknown_response_column(sleep):
    # lme4: "object 'Reactio' not found"
    with pytest.raises(DataError, match=r"'Reactio'.*not found in data"):
        pylme.lmer("Reactio ~ Days + (1 | Subject)", sleep)


UNBALANCED = r"unbalanced parentheses"
UNOPENED = r"unexpected '\)' \(unbalanced parentheses\)"
MISSING_OPERATOR = r"unexpected 'Subject' after 'Days': an operator is missing .*\(x \| g\)"


@pytest.mark.parametrize(
    "formula,match",
    [
        # R: "<text>:2:0: unexpected end of input"
        ("Reaction ~ Days + (1 | Subject", UNBALANCED),
        ("Reaction ~ Days + ((1 | Subject)", UNBALANCED),
        # R: "<text>:1:28: unexpected ')'"
        ("Reaction ~ Days + 1 | Subject)", UNOPENED),
        ("Reaction ~ Days + (1 | Subject))", UNOPENED),
        # R: "unexpected symbol" (a missing operator; the bar forgotten in a random term)
        ("Reaction ~ Days + (Days  Subject)", MISSING_OPERATOR),
        ("Reaction ~ Days Subject + (1 | Subject)", MISSING_OPERATOR),
    ],
)
def test_formula_syntax_errors(sleep, formula, match):
    with pytest.raises(FormulaError, match=match) as exc:
        pylme.lmer(formula, sleep)
    assert formula in str(exc.value)


def test_bar_outside_parentheses(sleep):
    # R parses `Reaction ~ Days + 1|Subject` as `Reaction ~ (Days + 1 | Subject)` and lme4
    # fits it silently as a random-slope model with an intercept-only fixed part, which is
    # almost never what was meant: pylme refuses it and names the term.
    with pytest.raises(FormulaError, match=re.escape("random-effects term 'Days + 1 | Subject' must be enclosed "
                                                     "in parentheses, e.g. (Days + 1 | Subject)")):
        pylme.lmer("Reaction ~ Days + 1|Subject", sleep)


def test_formula_without_tilde(sleep):
    # lme4 (as.formula of the string): "attempt to set an attribute on NULL"
    with pytest.raises(FormulaError, match=re.escape("formula 'Reaction + Days + (1|Subject)' has no '~'")):
        pylme.lmer("Reaction + Days + (1|Subject)", sleep)


@pytest.mark.parametrize("formula", ["", "   ", None])
def test_empty_formula(sleep, formula):
    # R (as.formula("")): "parsing result not of length one, but 0"
    with pytest.raises(FormulaError, match=r"formula must be a non-empty string"):
        pylme.lmer(formula, sleep)


def test_invalid_grouping_expression(sleep):
    # lme4: "'log' not meaningful for factors" (Subject a factor); with a numeric Subject:
    # "couldn't evaluate grouping factor log(Subject) within model frame: ..."
    with pytest.raises(FormulaError, match=re.escape("invalid grouping factor 'log(Subject)'")):
        pylme.lmer("Reaction ~ Days + (1 | log(Subject))", sleep)


# ------------------------------------------------------------------ grouping factors and sizes
def test_grouping_factor_with_one_level(sleep):
    # lme4: "grouping factors must have > 1 sampled level"
    d = _copy(sleep)
    d["g"] = "a"
    with pytest.raises(ModelError, match=r"^grouping factors must have > 1 sampled level.*\bg\b"):
        pylme.lmer("Reaction ~ Days + (1 | g)", d)


def test_grouping_factor_with_a_level_per_observation(sleep):
    # lme4: "number of levels of each grouping factor must be < number of observations (problems: id)"
    d = _copy(sleep)
    d["id"] = [f"i{k}" for k in range(len(d))]
    with pytest.raises(
        ModelError,
        match=re.escape("number of levels of each grouping factor must be < number of observations (problems: id)"),
    ):
        pylme.lmer("Reaction ~ Days + (1 | id)", d)


def test_more_random_effects_than_observations(sleep):
    # lme4: "number of observations (=180) <= number of random effects (=180) for term (Days | g);
    #  the random-effects parameters and the residual variance (or scale parameter) are probably
    #  unidentifiable"
    d = _copy(sleep)
    d["g"] = pd.Categorical(np.tile(np.arange(90), 2).astype(str))  # 90 levels x 2 coefficients = 180
    msg = (
        "number of observations (=180) <= number of random effects (=180) for term (Days | g); "
        "the random-effects parameters and the residual variance (or scale parameter) are probably unidentifiable"
    )
    with pytest.raises(ModelError, match=re.escape(msg)):
        pylme.lmer("Reaction ~ Days + (Days | g)", d)


# ------------------------------------------------------------------ the response
def test_string_response(sleep):
    # lme4: "response must be numeric"
    d = _copy(sleep)
    d["y"] = d["Reaction"].astype(str)
    with pytest.raises(DataError, match=r"response 'y' must be numeric"):
        pylme.lmer("y ~ Days + (1 | Subject)", d)


def test_categorical_response(sleep):
    # lme4: "response must be numeric"
    d = _copy(sleep)
    d["f"] = pd.Categorical(np.tile(["a", "b"], len(d) // 2))
    with pytest.raises(DataError, match=r"response 'f' must be numeric"):
        pylme.lmer("f ~ Days + (1 | Subject)", d)


def test_infinite_response(sleep):
    # lme4: "NA/NaN/Inf in 'y'" (from mkRespMod)
    d = _copy(sleep)
    d.loc[d.index[2], "Reaction"] = np.inf
    with pytest.raises(DataError, match=r"Reaction") as exc:
        pylme.lmer("Reaction ~ Days + (1 | Subject)", d)
    assert "NA/NaN/Inf in 'y'" in str(exc.value), f"lme4's words missing from: {exc.value}"


# ------------------------------------------------------------------ the data
def test_empty_data(sleep):
    # lme4: "0 (non-NA) cases"
    with pytest.raises(DataError, match=r"0 \(non-NA\) cases") as exc:
        pylme.lmer("Reaction ~ Days + (1 | Subject)", sleep.iloc[:0])
    assert re.search(r"no rows|empty", str(exc.value)), str(exc.value)


@pytest.mark.parametrize("data", [5, "sleepstudy", None, [[1, 2, 3]]])
def test_data_not_a_dataframe(data):
    # R (list2env(data)): "first argument must be a named list"
    with pytest.raises(DataError, match=r"data must be a pandas DataFrame, not \w+"):
        pylme.lmer("Reaction ~ Days + (1 | Subject)", data)


def test_data_dict_not_a_dataframe(sleep):
    with pytest.raises(DataError, match=r"data must be a pandas DataFrame, not dict"):
        pylme.lmer("Reaction ~ Days + (1 | Subject)", sleep.to_dict("list"))


def test_all_rows_missing(sleep):
    # lme4: "0 (non-NA) cases"
    d = _copy(sleep)
    d["Reaction"] = np.nan
    with pytest.raises(DataError, match=r"^0 \(non-NA\) cases"):
        pylme.lmer("Reaction ~ Days + (1 | Subject)", d)


# ------------------------------------------------------------------ missing values
@pytest.mark.parametrize("column", ["Reaction", "Days", "Subject"])
def test_rows_with_missing_values_are_dropped_and_reported(sleep, column):
    # lme4 drops them silently (na.omit): nobs(fm) = 177, na.action(model.frame(fm)) = 1 5 9
    d = _copy(sleep)
    d.index = [f"row{k}" for k in range(len(d))]  # labels, not positions, must come back
    d.loc[["row0", "row4", "row8"], column] = np.nan
    with pytest.warns(FitMessage, match=r"\b3 rows with missing values dropped"):
        fit = pylme.lmer("Reaction ~ Days + (1 | Subject)", d)
    assert fit.nobs() == 177
    assert list(fit.na_action) == ["row0", "row4", "row8"]
    assert list(fit.fitted().index) == [f"row{k}" for k in range(180) if k not in (0, 4, 8)]


def test_missing_values_in_unused_column_are_kept(sleep):
    d = _copy(sleep)
    d["junk"] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = pylme.lmer("Reaction ~ Days + (1 | Subject)", d)
    assert fit.nobs() == 180
    assert len(fit.na_action) == 0
    assert not [w for w in caught if issubclass(w.category, FitMessage) and "missing" in str(w.message)]


def test_fixed_factor_with_one_level_after_na_removal(sleep):
    # R: "contrasts can be applied only to factors with 2 or more levels"
    d = _copy(sleep)
    d["trt"] = pd.Categorical(np.where(np.arange(len(d)) < 10, "b", "a"))
    d.loc[d.index[:10], "Reaction"] = np.nan  # every "b" row is dropped
    with pytest.raises(DataError, match=r"contrasts can be applied only to factors with 2 or more levels") as exc:
        pylme.lmer("Reaction ~ Days + trt + (1 | Subject)", d)
    assert "trt" in str(exc.value), f"message does not name the factor: {exc.value}"


def test_fixed_factor_with_one_level(sleep):
    # R: "contrasts can be applied only to factors with 2 or more levels"
    d = _copy(sleep)
    d["trt"] = "a"
    with pytest.raises(DataError, match=r"contrasts can be applied only to factors with 2 or more levels") as exc:
        pylme.lmer("Reaction ~ Days + trt + (1 | Subject)", d)
    assert "trt" in str(exc.value), f"message does not name the factor: {exc.value}"


def test_fixed_factor_level_emptied_by_na_removal_is_dropped(sleep):
    # R drops the unused level: fixef = (Intercept) 250.337981, Days 10.660690, trtb -1.362678
    d = _copy(sleep)
    d["trt"] = pd.Categorical(np.array(["a", "b", "c"])[np.arange(len(d)) % 3])
    d.loc[d["trt"] == "c", "Reaction"] = np.nan
    with pytest.warns(FitMessage, match=r"\b60 rows with missing values dropped"):
        fit = pylme.lmer("Reaction ~ Days + trt + (1 | Subject)", d)
    fe = fit.fixef()
    assert list(fe.index) == ["(Intercept)", "Days", "trtb"]
    np.testing.assert_allclose(fe.to_numpy(), [250.337981, 10.660690, -1.362678], rtol=1e-5)


def test_fixed_factor_with_unused_category(sleep):
    # factor(..., levels = c("a", "b", "z")) in R: the unused level is dropped;
    # fixef = (Intercept) 250.370052, Days 10.381032, trtb 2.846396
    d = _copy(sleep)
    d["trt"] = pd.Categorical(np.array(["a", "b"])[np.arange(len(d)) % 2], categories=["a", "b", "z"])
    fit = pylme.lmer("Reaction ~ Days + trt + (1 | Subject)", d)
    fe = fit.fixef()
    assert list(fe.index) == ["(Intercept)", "Days", "trtb"]
    np.testing.assert_allclose(fe.to_numpy(), [250.370052, 10.381032, 2.846396], rtol=1e-5)


# ------------------------------------------------------------------ weights
def test_negative_weights(sleep):
    # lme4: "all(weights >= 0) is not TRUE" (mkRespMod)
    w = np.ones(len(sleep))
    w[3] = -1.0
    with pytest.raises(DataError, match=r"weights.*negative|negative.*weights"):
        pylme.lmer("Reaction ~ Days + (1 | Subject)", sleep, weights=w)


def test_zero_weights_are_refused(sleep):
    # lme4 1.1-31 accepts a zero weight but then reports REMLcrit Inf (sum(log(weights)) is
    # -Inf) with fixef and sigma that match neither the full nor the reduced data: silently
    # wrong numbers. pylme refuses, naming the problem; drop those rows instead.
    w = np.ones(len(sleep))
    w[3] = 0.0
    with pytest.raises(DataError, match=r"weights must be positive.*1 zero"):
        pylme.lmer("Reaction ~ Days + (1 | Subject)", sleep, weights=w)


# ------------------------------------------------------------------ predict, refit, getME
def test_predict_new_level_not_allowed(fm):
    # lme4: "new levels detected in newdata: 999"
    nd = pd.DataFrame({"Days": [1.0, 2.0], "Subject": ["308", "999"]})
    with pytest.raises(DataError, match=r"new levels detected in newdata.*Subject.*999"):
        fm.predict(nd)


def test_predict_new_level_allowed_is_population_level(fm):
    # lme4: predict(fm, nd, allow.new.levels = TRUE) = 273.3299 272.3397
    nd = pd.DataFrame({"Days": [1.0, 2.0], "Subject": ["308", "999"]})
    p = fm.predict(nd, allow_new_levels=True)
    fe = fm.fixef()
    assert p.iloc[1] == pytest.approx(fe["(Intercept)"] + 2.0 * fe["Days"], rel=1e-12)
    # the known level keeps its random effects: the fitted value of Subject 308 on day 1
    assert p.iloc[0] == pytest.approx(fm.fitted().iloc[1], rel=1e-10)
    np.testing.assert_allclose(p.to_numpy(), [273.3299, 272.3397], atol=1e-3)


def test_predict_newdata_missing_column(fm):
    # lme4: "object 'Days' not found"
    with pytest.raises(DataError, match=r"'Days'.*not found in newdata"):
        fm.predict(pd.DataFrame({"Subject": ["308"]}))


def test_predict_re_form_term_not_in_model(fm):
    # lme4: "couldn't evaluate grouping factor Foo within model frame:error =Error in is.factor(x) :
    #  object 'Foo' not found  Try adding grouping factor to data frame explicitly if possible"
    with pytest.raises(FormulaError, match=re.escape("re_form term (1 | Foo) is not a random-effects term")):
        fm.predict(re_form="~(1|Foo)")


def test_predict_re_form_subset_of_a_term(fm):
    # lme4 accepts re.form = ~(1|Subject) for a (Days|Subject) fit and uses only the
    # intercept random effects: head(predict(fm, re.form = ~(1|Subject)), 3) = 253.6637 264.1309 274.5982
    p = fm.predict(re_form="~(1|Subject)")
    np.testing.assert_allclose(p.to_numpy()[:3], [253.6637, 264.1309, 274.5982], atol=1e-3)


def test_refit_wrong_length(fm):
    # lme4: "length(newresp <- as.numeric(as.vector(newresp))) == length(rr$y) is not TRUE"
    with pytest.raises(DataError, match=r"newresp must have 180 values.*got 10"):
        fm.refit(np.arange(10.0))


def test_getME_unknown_component(fm):
    # lme4: "'arg' should be one of "X", "Z", ..." (match.arg)
    with pytest.raises(KeyError, match=r"unknown component 'nonsense'"):
        fm.getME("nonsense")


# ------------------------------------------------------------------ the hierarchy
def test_errors_are_pylme_errors_and_value_errors():
    for cls in (FormulaError, DataError, ModelError):
        assert issubclass(cls, PylmeError)
        assert issubclass(cls, ValueError)


# ------------------------------------------------------------------ issue 13: inputs that got through
def test_anova_of_models_fitted_to_different_data(sleep, fm):
    # lme4: "all models must be fit to the same data object" (the same n and y are not enough:
    # pylme gave a likelihood-ratio table with p = 1.2e-6 for a predictor reversed)
    d = _copy(sleep)
    d["Days"] = d["Days"].to_numpy()[::-1]
    other = pylme.lmer("Reaction ~ Days + (1 | Subject)", d)
    with pytest.raises(DataError, match=r"all models must be fit to the same data object: fm and other .*'Days'"):
        pylme.anova(fm, other)
    same = pylme.lmer("Reaction ~ 1 + (1 | Subject)", _copy(sleep))  # an equal copy is the same data
    with pytest.warns(FitMessage, match="refitting model"):
        table = pylme.anova(fm, same)
    assert list(table["npar"]) == [3, 6]


@pytest.mark.parametrize("what", ["weights", "offset"])
def test_infinite_weight_or_offset(sleep, what):
    # lme4: "objective in x0 returns NA"; pylme gave NaN fixed effects and sigma
    values = np.ones(len(sleep)) if what == "weights" else np.zeros(len(sleep))
    values[3] = np.inf
    with pytest.raises(DataError, match=rf"{what} must be finite: 1 infinite value\(s\), in row\(s\) \[3\]"):
        pylme.lmer("Reaction ~ Days + (1 | Subject)", sleep, **{what: values})


def test_int64_response_beyond_double_precision_is_said(sleep):
    # R holds such a column as doubles too, rounded alike; pylme says so and how to keep it exact
    d = _copy(sleep)
    d["y"] = np.int64(2**62) + np.round(d["Reaction"] * 100).astype(np.int64)
    with pytest.warns(pylme.PylmeWarning, match=r"column 'y' \(int64\) has 180 value\(s\) beyond 2\*\*53 .*rounded "
                                                r"\(subtract a constant first"):
        pylme.lmer("y ~ Days + (1 | Subject)", d)
    d["y"] = d["y"] - d["y"].min()  # exact again: the fit of 100 * Reaction, shifted
    with warnings.catch_warnings():
        warnings.simplefilter("error", pylme.PylmeWarning)
        exact = pylme.lmer("y ~ Days + (1 | Subject)", d)
    ref = pylme.lmer("Reaction ~ Days + (1 | Subject)", sleep.assign(Reaction=np.round(sleep["Reaction"] * 100)))
    assert exact.sigma() == pytest.approx(ref.sigma(), rel=1e-9)


def test_duplicate_column_names(sleep, fm):
    # R takes the first of two columns named Days (fixef 10.46729); pylme fits when the duplicated
    # name is unused and names it when the formula uses it
    d = pd.concat([sleep, sleep[["Days"]].iloc[::-1].reset_index(drop=True)], axis=1)
    with pytest.raises(DataError, match=r"data has more than one column named 'Days', which the formula"):
        pylme.lmer("Reaction ~ Days + (1 | Subject)", d)
    d = pd.concat([sleep, sleep[["Reaction"]].rename(columns={"Reaction": "x"}),
                   sleep[["Reaction"]].rename(columns={"Reaction": "x"})], axis=1)
    fit = pylme.lmer("Reaction ~ Days + (Days | Subject)", d)
    assert fit.REMLcrit() == pytest.approx(fm.REMLcrit(), rel=1e-12)


def test_confint_parm_by_position(fm):
    # lme4: confint(fm, parm = 5, method = "Wald") is the row (Intercept) 238.0291 264.7811;
    # parm = c(6, 5) keeps that order (Days 7.437594 13.49698 first)
    ci = fm.confint(parm=5, method="Wald")
    assert list(ci.index) == ["(Intercept)"]
    np.testing.assert_allclose(ci.to_numpy(), [[238.0291, 264.7811]], atol=1e-4)
    ci = fm.confint(parm=[6, 5], method="Wald")
    assert list(ci.index) == ["Days", "(Intercept)"]
    np.testing.assert_allclose(ci.to_numpy()[0], [7.437594, 13.49698], atol=1e-5)
    with pytest.raises(ValueError, match=r"parameter position\(s\) \[7\] out of range: parm counts 1 to 6"):
        fm.confint(parm=7, method="Wald")


def test_refit_with_strings(fm):
    # lme4: "response must be numeric"
    with pytest.raises(DataError, match=r"newresp must be numbers, one per fitted row \(180\)"):
        fm.refit(["a"] * 180)


def test_formula_too_deeply_nested(sleep):
    # pylme crashed with RecursionError; R's parser stops too ("contextstack overflow" at 5,000)
    formula = "Reaction ~ " + "(" * 5000 + "Days" + ")" * 5000 + " + (1 | Subject)"
    with pytest.raises(FormulaError, match=r"formula too deeply nested \(more than 100 levels"):
        pylme.lmer(formula, sleep)


def test_many_terms_and_a_term_repeated_many_times(sleep, fm):
    # R accepts both; a term repeated is one term
    fit = pylme.lmer("Reaction ~ " + " + ".join(["Days"] * 20000) + " + (Days | Subject)", sleep)
    assert list(fit.fixef().index) == ["(Intercept)", "Days"]
    assert fit.REMLcrit() == pytest.approx(fm.REMLcrit(), rel=1e-12)
    pf = pylme.description.formula.parse_mixed("Reaction ~ " + " + ".join(f"x{k}" for k in range(1000)) + " + (1 | Subject)")
    assert pylme.description.formula.expand_terms(pf.fixed).labels == [f"x{k}" for k in range(1000)]


def test_python_words_are_a_syntax_error(sleep):
    # pylme said "column(s) 'or' not found"; R: "unexpected symbol"
    with pytest.raises(FormulaError, match=r"unexpected 'or' after 'Days': 'or' is Python, not R; in a formula "
                                           r"write '\|'"):
        pylme.lmer("Reaction ~ I(Days or 1) + (1 | Subject)", sleep)


def test_unknown_function_is_named_with_the_table(sleep):
    # R: could not find function "sqr"
    with pytest.raises(FormulaError, match=r"unknown function sqr\(\) in 'sqr\(Days\)': a formula may call only "
                                           r"abs\(\), as.factor\(\), as.numeric\(\),"):
        pylme.lmer("Reaction ~ sqr(Days) + (1 | Subject)", sleep)


def test_memory_limit_in_readable_units_and_validated():
    from pylme.objectives.memory import format_bytes

    assert [format_bytes(b) for b in (512, 1e6, 2.5 * 2**20, 3.2e9)] == ["512 bytes", "977 kB", "2.5 MB", "2.98 GB"]
    with pytest.raises(ValueError, match=r"memory_limit must be a positive number of bytes .* not -5"):
        pylme.lmerControl(memory_limit=-5)
    with pytest.raises(ValueError, match=r"memory_limit must be a positive number of bytes .* not '2GB'"):
        pylme.lmerControl(memory_limit="2GB")
    assert pylme.lmerControl(memory_limit=4e9).memory_limit == 4e9


def test_memory_limit_message_in_readable_units():
    # pylme said "about 0.00 GB, more than the 0.00 GB allowed"
    d = pylme.datasets.load("InstEval").iloc[:20000]
    with pytest.raises(ModelError, match=r"would need about [\d.]+ MB, more than the 977 kB allowed \(memory_limit\)"):
        pylme.lmer("y ~ service + (1 | s) + (1 | d)", d, control=pylme.lmerControl(method="blocked",
                                                                                   memory_limit=1e6))


def test_model_matrices_too_large_refused_before_they_are_made(monkeypatch):
    """lFormula checks the sizes of X (and its rank check's copy), Z, Z'X and the response's vectors
    before making any of them: a model that would not fit fails at once, naming its largest matrix
    (the path that refuses the 52-million-row state-test design in memory; README "Data larger
    than memory")."""
    from pylme.description.model_matrix import DesignSpec

    d = pylme.datasets.load("InstEval")  # 73,421 rows; X: intercept, service1, lectage.L ... lectage^5
    monkeypatch.setattr(DesignSpec, "matrix", lambda self, frame: pytest.fail("a model matrix was made"))
    n, p, q = 73421, 7, 2972 + 1128
    need = 8 * n * p * 2 + n * (20 * 2 + 8 * 2) + 8 * q * p + 40 * n  # X twice, Z, Z'X, the response
    assert f"{need / 2**20:.3g}" == "14.8"
    with pytest.raises(ModelError, match=r"^the model matrices \(lFormula and mkLmerDevfun\) would need about 14.8 MB, "
                                         r"more than the 4.77 MB allowed \(memory_limit\); the largest block is X "
                                         r"\(dense, 73,421 rows x 7 columns\): 3.92 MB$"):
        pylme.lmer("y ~ service + lectage + (1 | s) + (1 | d)", d, control=pylme.lmerControl(memory_limit=5e6))
    with pytest.raises(ModelError, match=r"would need about 14.8 MB, more than the 4.77 MB allowed"):
        pylme.lFormula("y ~ service + lectage + (1 | s) + (1 | d)", d, memory_limit=5e6)


def test_polars_and_pyarrow_frames_fit_as_pandas():
    """A polars DataFrame, a pyarrow Table and an interchange-protocol frame give the pandas fit."""
    import polars
    import pyarrow

    sleep = pylme.datasets.load("sleepstudy")
    want = pylme.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    plain = sleep.assign(Subject=sleep["Subject"].astype(str))
    for data in (polars.from_pandas(plain), pyarrow.Table.from_pandas(plain), polars.from_pandas(plain).to_arrow()):
        fm = pylme.lmer("Reaction ~ Days + (Days | Subject)", data)
        assert fm.REMLcrit() == pytest.approx(want.REMLcrit(), rel=1e-12)
        np.testing.assert_allclose(fm.fixef().to_numpy(), want.fixef().to_numpy(), rtol=1e-10)
        np.testing.assert_allclose(fm.predict(polars.from_pandas(plain.iloc[:5])).to_numpy(),
                                   want.fitted().to_numpy()[:5], rtol=1e-10)


def test_other_frames_are_named_fully():
    import polars

    lazy = polars.from_pandas(pylme.datasets.load("sleepstudy").astype({"Subject": str})).lazy()
    with pytest.raises(DataError, match=r"data must be a pandas DataFrame, not polars\.lazyframe\.frame\.LazyFrame "
                                        r"\(polars and pyarrow tables"):
        pylme.lmer("Reaction ~ Days + (1 | Subject)", lazy)
