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


def _lmer(samples, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylme.lmer(FORMULA, samples.assign(expr=y), **kwargs)


def _check_against_lmer(res, samples, Y, **kwargs):
    """Each response's row against a separate lmer fit, or against lmer's error."""
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
