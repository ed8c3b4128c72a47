"""lmer_many: each row of the table is what a separate ``pylme.lmer`` on that response gives
(criterion to 1e-10 relative, theta to 1e-6; here to the last bit, as the steps are lmer's own),
whatever the chunking or the processes; missing values drop rows for their response only; a
failing response gets its error and the others go on. No R needed (lmer is compared with lme4
elsewhere); the Dask cluster tests are in tests/test_many_cluster.py."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pylme
from pylme.errors import DataError, FormulaError

FORMULA = "expr ~ tissue + age + (1 | individual) + (1 | batch)"


@pytest.fixture(scope="module")
def study():
    """A small simulated study (15 individuals x 4 tissues), with awkward responses added: missing
    values in a few rows, a constant, all missing, text, an infinite value."""
    samples, Y = pylme.datasets.simulate_expression(12, n_individuals=15, seed=3)
    Y.iloc[:4, 2] = np.nan  # 4 rows dropped for this response only
    Y.iloc[[7, 30], 5] = np.nan
    Y.iloc[:4, 8] = np.nan  # the same rows as gene3: shares its design
    Y["constant"] = 2.5
    Y["all_missing"] = np.nan
    Y["text"] = "high"
    Y["infinite"] = Y["gene1"].where(Y.index != 3, np.inf)
    return samples, Y


def _lmer(samples, y, formula=FORMULA, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylme.lmer(formula, samples.assign(expr=y), **kwargs)


def _fits_or_errors(res, samples, Y, **kwargs):
    """Each response's row with its separate lmer fit and that fit's criterion; where lmer fails,
    the row is checked to hold lmer's error (and is not yielded)."""
    for name in Y.columns:
        row = res.table.loc[name]
        try:
            fm = _lmer(samples, Y[name], **kwargs)
        except pylme.PylmeError as exc:
            assert row["error"] == f"{type(exc).__name__}: {exc}"
            continue
        assert pd.isna(row["error"])
        crit = fm.REMLcrit() if fm.REML else fm.deviance(REML=False)
        assert row["criterion"] == pytest.approx(crit, rel=1e-10)
        yield name, row, fm, crit


def _check_against_lmer(res, samples, Y, **kwargs):
    """Each response's row against a separate lmer fit, or against lmer's error."""
    for _, row, fm, _ in _fits_or_errors(res, samples, Y, **kwargs):
        theta = row[[f"theta.{k}" for k in fm.getME("theta").index]].to_numpy(float)
        np.testing.assert_allclose(theta, fm.theta, rtol=0, atol=1e-6)
        np.testing.assert_allclose(row[[f"beta.{k}" for k in fm.fixef().index]].to_numpy(float), fm.fixef(), rtol=1e-8)
        se = np.sqrt(np.diag(fm.vcov()))
        np.testing.assert_allclose(row[[f"se.{k}" for k in fm.fixef().index]].to_numpy(float), se, rtol=1e-8)
        assert row["sigma"] == pytest.approx(fm.sigma(), rel=1e-8)
        assert row["nobs"] == fm.nobs()
        assert row["singular"] == fm.isSingular()
        assert row["messages"] == "; ".join(fm.messages + fm.warnings)


def test_table_equals_a_loop_of_lmer(study):
    samples, Y = study
    res = pylme.lmer_many(FORMULA, samples, Y)
    assert list(res.table.index) == list(Y.columns)
    _check_against_lmer(res, samples, Y)
    assert res.table.loc["gene3", "nobs"] == 56 and res.table.loc["gene6", "nobs"] == 58
    assert set(res.errors.index) == {"all_missing", "text", "infinite"}
    assert "must be numeric" in res.errors["text"] and "Inf" in res.errors["infinite"]


def test_chunks_and_processes_do_not_change_the_table(study):
    samples, Y = study
    serial = pylme.lmer_many(FORMULA, samples, Y)
    for kwargs in ({"chunk_size": 1}, {"chunk_size": 4, "n_jobs": 2}):
        pd.testing.assert_frame_equal(pylme.lmer_many(FORMULA, samples, Y, **kwargs).table, serial.table)


def test_ml_fits_and_satterthwaite_columns(study):
    samples, Y = study
    names = ["gene1", "gene3"]
    res = pylme.lmer_many(FORMULA, samples, Y[names], REML=False, ddf="Satterthwaite")
    _check_against_lmer(res, samples, Y[names], REML=False)
    for name in names:
        coefs = _lmer(samples, Y[name], REML=False).summary(ddf="Satterthwaite").coefficients
        np.testing.assert_allclose(res.table.loc[name, [f"df.{k}" for k in coefs.index]].to_numpy(float),
                                   coefs["df"], rtol=1e-6)
        np.testing.assert_allclose(res.table.loc[name, [f"p.{k}" for k in coefs.index]].to_numpy(float),
                                   coefs["Pr(>|t|)"], rtol=1e-6)


def test_fit_of_one_response_is_lmers(study):
    samples, Y = study
    res = pylme.lmer_many(FORMULA, samples, Y)
    for name in ("gene1", "gene3"):  # all rows; 4 rows dropped
        fm, ref = res.fit(name), _lmer(samples, Y[name])
        assert str(fm.summary()) == str(ref.summary())
        pd.testing.assert_index_equal(fm.na_action, ref.na_action)
        pd.testing.assert_series_equal(fm.fitted(), ref.fitted())
        assert fm.anova(ref.update(REML=False)).shape[0] == 2  # the same data: anova accepts the pair
    with pytest.raises(DataError, match="must be numeric"):
        res.fit("text")
    with pytest.raises(KeyError, match="no response named 'gene99'"):
        res.fit("gene99")


def test_response_forms_and_bad_arguments(study):
    samples, Y = study
    names = ["gene1", "gene2"]
    by_frame = pylme.lmer_many(FORMULA, samples, Y[names]).table
    by_array = pylme.lmer_many(FORMULA, samples, Y[names].to_numpy()).table
    np.testing.assert_array_equal(by_array.to_numpy(), by_frame.to_numpy())
    assert list(by_array.index) == [0, 1]
    by_name = pylme.lmer_many(FORMULA.replace("expr", "gene1", 1), pd.concat([samples, Y[names]], axis=1), names)
    pd.testing.assert_frame_equal(by_name.table, by_frame)
    with pytest.raises(FormulaError, match="plain column name"):
        pylme.lmer_many(FORMULA.replace("expr", "log(expr)", 1), samples, Y[names])
    with pytest.raises(DataError, match="one row per row of the data"):
        pylme.lmer_many(FORMULA, samples, Y[names].iloc[:-1])
    with pytest.raises(DataError, match="not in the data: 'nope'"):
        pylme.lmer_many(FORMULA, samples, ["nope"])
    with pytest.raises(DataError, match="2-D array"):
        pylme.lmer_many(FORMULA, samples, Y["gene1"].to_numpy())


def test_a_row_set_that_cannot_be_fitted_fails_only_its_responses(study):
    samples, Y = study
    Y = Y[["gene1", "gene2"]].copy()
    Y.iloc[2:, 1] = np.nan  # two rows left: fewer than the grouping factors' levels
    res = pylme.lmer_many(FORMULA, samples, Y)
    assert pd.isna(res.table.loc["gene1", "error"])
    assert res.table.loc["gene2", "error"].startswith("ModelError: ")


# ---------------------------------------------------------------- the lockstep engine
def _check_lockstep_against_lmer(res, samples, Y, **kwargs):
    """Each lockstep row against a separate lmer fit: the criterion within 1e-10 relative and never
    above lmer's (beyond rounding); theta within lmer's own stopping tolerance (BOBYQA's end is
    certified by pylme.polish within 1e-4 of the optimum, which the lockstep engine reaches);
    the same flags and messages; the estimates at the lockstep theta equal to lmer's fit refitted
    there (``lmerControl(optimizer=None)`` at that theta)."""
    for name, row, fm, crit in _fits_or_errors(res, samples, Y, **kwargs):
        assert row["criterion"] <= crit + 1e-12 * abs(crit)
        names = [f"theta.{k}" for k in fm.getME("theta").index]
        theta = row[names].to_numpy(float)
        np.testing.assert_allclose(theta, fm.theta, rtol=0, atol=1e-4)
        assert np.all(theta[fm.theta == 0] == 0)  # lmer's variances on the boundary are there too
        at = _lmer(samples, Y[name], control=pylme.lmerControl(optimizer=None), start={"theta": theta}, **kwargs)
        assert row["criterion"] == pytest.approx(at.REMLcrit() if at.REML else at.deviance(REML=False), rel=1e-12)
        np.testing.assert_allclose(row[[f"beta.{k}" for k in at.fixef().index]].to_numpy(float), at.fixef(), rtol=1e-9)
        se = np.sqrt(np.diag(at.vcov()))
        np.testing.assert_allclose(row[[f"se.{k}" for k in at.fixef().index]].to_numpy(float), se, rtol=1e-9)
        assert row["sigma"] == pytest.approx(at.sigma(), rel=1e-10)
        assert row["nobs"] == fm.nobs()
        assert row["singular"] == fm.isSingular()
        assert row["conv"] == 0 and fm.conv.code == 0
        assert row["messages"] == "; ".join(fm.messages + fm.warnings)


@pytest.fixture(scope="module")
def boundary_study():
    """Responses with no batch (or no individual) variation at all: lmer's fits are singular, theta
    exactly 0 for that term (lme4's boundary check)."""
    samples, Y = pylme.datasets.simulate_expression(6, n_individuals=15, seed=11)
    rng = np.random.default_rng(2)
    tissue = samples["tissue"].cat.codes.to_numpy()
    for j in range(4):
        Y[f"flat{j}"] = 3.0 + 0.4 * tissue + rng.normal(size=len(samples))
    return samples, Y


def test_lockstep_table_equals_a_loop_of_lmer(study):
    samples, Y = study
    res = pylme.lmer_many(FORMULA, samples, Y, engine="lockstep")
    lmer_engine = pylme.lmer_many(FORMULA, samples, Y)
    assert list(res.table.columns) == list(lmer_engine.table.columns)
    assert list(res.table.index) == list(Y.columns)
    _check_lockstep_against_lmer(res, samples, Y)  # the constant response goes through lmer's steps
    assert res.table.loc["gene3", "nobs"] == 56 and res.table.loc["gene6", "nobs"] == 58
    pd.testing.assert_series_equal(res.errors, lmer_engine.errors)


def test_lockstep_singular_responses_on_the_boundary(boundary_study):
    samples, Y = boundary_study
    res = pylme.lmer_many(FORMULA, samples, Y, engine="lockstep")
    _check_lockstep_against_lmer(res, samples, Y)
    assert res.table["singular"].sum() >= 4
    ml = pylme.lmer_many(FORMULA, samples, Y[["gene1", "flat0"]], REML=False, engine="lockstep")
    _check_lockstep_against_lmer(ml, samples, Y[["gene1", "flat0"]], REML=False)


def test_lockstep_one_term_weights_offset(study):
    samples, Y = study
    samples = samples.assign(shift=np.linspace(-1.0, 1.0, len(samples)))
    names = ["gene1", "gene2", "gene3", "gene4", "gene5"]
    one_term = "expr ~ tissue + age + (1 | individual)"
    for kwargs in ({"weights": "age"}, {"offset": "shift", "REML": False}):
        res = pylme.lmer_many(one_term, samples, Y[names], engine="lockstep", **kwargs)
        _check_lockstep_against_lmer(res, samples, Y[names], formula=one_term, **kwargs)


def test_lockstep_satterthwaite_columns(study, boundary_study):
    """lmerTest's df and p computed for all responses together equal lmerTest's (pylme.satterthwaite)
    on the fit at the same theta (lmer's own end differs from the optimum, and its df with it)."""
    samples, Y = study
    Y = pd.concat([Y[["gene1", "gene3", "gene5"]], boundary_study[1][["flat0"]]], axis=1)
    for REML in (True, False):
        res = pylme.lmer_many(FORMULA, samples, Y, REML=REML, ddf="Satterthwaite", engine="lockstep")
        assert list(res.table.columns) == list(pylme.lmer_many(FORMULA, samples, Y[["gene1"]], REML=REML,
                                                               ddf="Satterthwaite").table.columns)
        for name in Y.columns:
            row = res.table.loc[name]
            theta = row[[c for c in row.index if c.startswith("theta.")]].to_numpy(float)
            at = _lmer(samples, Y[name], REML=REML, control=pylme.lmerControl(optimizer=None), start={"theta": theta})
            coefs = at.summary(ddf="Satterthwaite").coefficients
            for short, column in (("df", "df"), ("p", "Pr(>|t|)"), ("t", "t value")):
                np.testing.assert_allclose(row[[f"{short}.{k}" for k in coefs.index]].to_numpy(float),
                                           coefs[column], rtol=1e-6)


def test_lockstep_chunks_and_processes_do_not_change_the_table(study):
    samples, Y = study
    serial = pylme.lmer_many(FORMULA, samples, Y, engine="lockstep")
    for kwargs in ({"chunk_size": 1}, {"chunk_size": 4, "n_jobs": 2}):
        pd.testing.assert_frame_equal(pylme.lmer_many(FORMULA, samples, Y, engine="lockstep", **kwargs).table,
                                      serial.table)


def test_lockstep_falls_back_to_lmer_where_it_does_not_serve(study):
    samples, Y = study
    names = ["gene1", "gene3"]
    slopes = "expr ~ tissue + age + (age | individual) + (1 | batch)"  # a vector term: lmer's steps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pd.testing.assert_frame_equal(pylme.lmer_many(slopes, samples, Y[names], engine="lockstep").table,
                                      pylme.lmer_many(slopes, samples, Y[names]).table)
    kr = pylme.lmer_many(FORMULA, samples, Y[names], ddf="Kenward-Roger", engine="lockstep")  # lmer's steps
    pd.testing.assert_frame_equal(kr.table, pylme.lmer_many(FORMULA, samples, Y[names], ddf="Kenward-Roger").table)
    with pytest.raises(ValueError, match="engine must be one of 'lmer', 'lockstep'"):
        pylme.lmer_many(FORMULA, samples, Y[names], engine="fast")
