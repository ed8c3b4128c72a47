"""pylme.read_r on R data files written by R 4.2.2 (scripts/write_rdata_fixtures.R, files and
their md5 in tests/reference/rdata/provenance.json), and lmer on data read that way against
live lme4 on the same file."""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pylme
from pylme.errors import DataError

RDATA = Path(__file__).parent / "reference" / "rdata"


def read(file: str, **kwargs) -> pd.DataFrame:
    return pylme.read_r(RDATA / file, **kwargs)


def test_fixtures_are_the_files_the_script_wrote():
    provenance = json.loads((RDATA / "provenance.json").read_text())
    assert provenance["R"].startswith("R version 4.2.2") and provenance["lme4"] == "1.1.31"
    for name, entry in provenance["files"].items():
        assert hashlib.md5((RDATA / name).read_bytes()).hexdigest() == entry["md5"], name


def test_factor_levels_keep_r_order_and_unused_levels():
    dose = read("types.rds")["dose"]
    assert isinstance(dose.dtype, pd.CategoricalDtype) and not dose.cat.ordered
    assert list(dose.cat.categories) == ["none", "low", "high", "unused"]
    assert dose.tolist()[:4] == ["high", "low", "none", "low"] and pd.isna(dose.iloc[4])
    assert list(dose.cat.codes) == [2, 1, 0, 1, -1, 2]


def test_ordered_factor():
    grade = read("types.rds")["grade"]
    assert grade.cat.ordered and list(grade.cat.categories) == ["C", "B", "A"]
    assert list(grade.cat.codes) == [1, 2, 0, -1, 2, 1]
    assert (grade > "C").tolist() == [True, True, False, False, True, True]  # R's order, not "A" < "B"


def test_numeric_logical_character_and_date_columns():
    d = read("types.rds")
    assert list(d.columns) == ["dose", "grade", "count", "value", "flag", "label", "day"]
    assert list(d.index) == [1, 2, 3, 4, 5, 6]  # R's automatic row names
    # integer with NA -> float64 (as pylme.datasets.load); 2147483647 is R's largest integer
    assert d["count"].dtype == np.float64
    np.testing.assert_array_equal(d["count"], [3, np.nan, 0, -2, 2147483647, 7])
    assert d["value"].dtype == np.float64
    np.testing.assert_array_equal(d["value"], [0.1, -2.5e-300, np.nan, 1e300, np.pi, 0.0])
    assert np.signbit(d["value"].iloc[5])  # R's -0 stays negative zero
    assert d["flag"].tolist()[:2] == [True, False] and pd.isna(d["flag"].iloc[2])
    assert d["flag"].iloc[3] is True
    assert pd.api.types.is_string_dtype(d["label"])
    assert d["label"].iloc[1] == "b\u00e9" and pd.isna(d["label"].iloc[2]) and d["label"].iloc[3] == ""
    assert pd.api.types.is_datetime64_any_dtype(d["day"])
    assert str(d["day"].iloc[0].date()) == "2020-02-29" and pd.isna(d["day"].iloc[1])
    assert str(d["day"].iloc[2].date()) == "1969-12-31"


def test_columns_without_missing_values_get_plain_dtypes():
    cake = read("cake.rds")
    assert cake["angle"].dtype == np.int64 and cake["temp"].dtype == np.float64
    assert cake["temperature"].cat.ordered
    assert list(cake["temperature"].cat.categories) == ["175", "185", "195", "205", "215", "225"]


def test_character_row_names_become_the_index():
    assert list(read("named.rds").index) == ["first", "second"]


def test_rds_from_lme4_equals_the_bundled_data_set():
    for name in ("sleepstudy", "cake"):
        got = read(f"{name}.rds").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, pylme.datasets.load(name), check_dtype=True)


def test_rdata_with_one_object_needs_no_name():
    pd.testing.assert_frame_equal(read("single.rda"), read("types.rds"))
    pd.testing.assert_frame_equal(read("single.rda", name="types"), read("types.rds"))


def test_rdata_name_picks_one_object():
    sleep = read("objects.RData", name="sleep")
    assert len(sleep) == 20 and list(sleep.columns) == ["Reaction", "Days", "Subject"]
    assert len(sleep["Subject"].cat.categories) == 18  # head() keeps all levels
    pd.testing.assert_frame_equal(read("objects.RData", name="types"), read("types.rds"))


def test_ambiguous_rdata_lists_its_objects():
    with pytest.raises(DataError, match=r"holds 4 objects; choose one by its name: "
                       r"types \(data frame\), sleep \(data frame\), m \(matrix\), fit \(list\)"):
        read("objects.RData")


def test_unknown_object_name_lists_the_objects():
    with pytest.raises(DataError, match=r"has no object 'sleepstudy'; its objects: types \(data frame\)"):
        read("objects.RData", name="sleepstudy")


@pytest.mark.parametrize("file,kwargs,message", [
    ("objects.RData", {"name": "m"}, r"object 'm' is not a data frame \(it is an R matrix\)"),
    ("objects.RData", {"name": "fit"}, r"object 'fit' is not a data frame \(it is an R list\)"),
    ("vector.rds", {}, r"vector.rds is not a data frame \(it is an R vector\)"),
    ("types.rds", {"name": "types"}, r"an .rds file holds one object; name= is for .RData files"),
    ("absent.rds", {}, r"no such file: .*absent.rds"),
    ("provenance.json", {}, r"not an R data file \(expected .rds, .RData or .rda\)"),
])
def test_bad_input_is_a_data_error(file, kwargs, message):
    with pytest.raises(DataError, match=message):
        read(file, **kwargs)


def test_damaged_file_is_a_data_error(tmp_path):
    damaged = tmp_path / "damaged.rds"
    damaged.write_bytes((RDATA / "types.rds").read_bytes()[:40])
    with pytest.raises(DataError, match=r"cannot read .*damaged.rds as an R data file"):
        pylme.read_r(damaged)


@pytest.mark.usefixtures("require_r")
@pytest.mark.parametrize("file,formula", [
    ("sleepstudy.rds", "Reaction ~ Days + (Days | Subject)"),
    ("cake.rds", "angle ~ recipe * temperature + (1 | recipe:replicate)"),
])
def test_lmer_on_read_r_data_matches_lme4_on_the_same_file(file, formula):
    import rpy2.robjects as ro

    import r_reference

    r_reference.r_versions()  # loads R and lme4
    fit_in_r = ro.r("function(path, f) lme4::fixef(lme4::lmer(stats::as.formula(f), data = readRDS(path)))")
    ref = fit_in_r(str(RDATA / file), formula)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(formula, read(file))
    beta = fm.fixef()
    assert list(beta.index) == list(ref.names)
    if file == "cake.rds":  # the ordered factor's polynomial contrasts, as R names them
        assert "temperature.L" in beta.index and "recipeC:temperature^5" in beta.index
    se = np.sqrt(np.diag(fm.vcov()))
    np.testing.assert_array_less(np.abs(beta.to_numpy() - np.array(ref)), 1e-4 * se)
