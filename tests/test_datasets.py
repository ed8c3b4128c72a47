"""Tests of pylme.io.datasets: the bundled CSVs load with R's types, level orders and values."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from importlib.resources import files

import numpy as np
import pandas as pd
import pytest

from pylme import datasets
from pylme.errors import DataError

ALL = [
    "Dyestuff", "Dyestuff2", "Penicillin", "Pastes", "sleepstudy",
    "cake", "cbpp", "InstEval", "classroom", "VerbAgg", "grouseticks", "Arabidopsis", "Contraception",
]


def _manifest() -> dict:
    text = files("pylme._data").joinpath("manifest.json").read_text(encoding="utf-8")
    return {entry["name"]: entry for entry in json.loads(text)["datasets"]}


def _levels(series: pd.Series) -> list[str]:
    return list(series.cat.categories)


def test_list_datasets_names_every_bundled_set() -> None:
    assert sorted(datasets.list_datasets()) == sorted(ALL)


@pytest.mark.parametrize("name", ALL)
def test_manifest_rows_equal_loaded_rows(name: str) -> None:
    entry = _manifest()[name]
    frame = datasets.load(name)
    assert len(frame) == entry["rows"]
    assert list(frame.columns) == [col["name"] for col in entry["columns"]]


@pytest.mark.parametrize("name", ALL)
def test_columns_typed_per_manifest(name: str) -> None:
    frame = datasets.load(name)
    for col in _manifest()[name]["columns"]:
        series = frame[col["name"]]
        if col["type"] in ("factor", "ordered"):
            assert isinstance(series.dtype, pd.CategoricalDtype)
            assert series.cat.ordered == (col["type"] == "ordered")
            assert _levels(series) == col["levels"]
            assert all(isinstance(level, str) for level in _levels(series))
            assert not series.isna().any()
        elif col["type"] == "integer":
            assert series.dtype == np.int64
        else:
            assert series.dtype == np.float64


def test_dyestuff() -> None:
    frame = datasets.load("Dyestuff")
    assert frame.shape == (30, 2)
    assert _levels(frame["Batch"]) == ["A", "B", "C", "D", "E", "F"]
    assert not frame["Batch"].cat.ordered
    # mean(Dyestuff$Yield) in R 4.2.2, lme4 1.1-31
    assert frame["Yield"].mean() == 1527.5
    assert frame["Yield"].iloc[:3].tolist() == [1545.0, 1440.0, 1440.0]


def test_sleepstudy() -> None:
    frame = datasets.load("sleepstudy")
    assert frame.shape == (180, 3)
    subjects = _levels(frame["Subject"])
    assert len(subjects) == 18
    assert subjects[:3] == ["308", "309", "310"] and subjects[-1] == "372"
    assert frame["Days"].tolist() == list(range(10)) * 18
    # mean(sleepstudy$Reaction) from R 4.2.2, lme4 1.1-31: 298.50789166666664 (0x1.2a820530323e8p+8)
    r_mean = float.fromhex("0x1.2a820530323e8p+8")
    assert r_mean == 298.50789166666664
    # the exactly rounded mean of the loaded doubles equals R's mean bit for bit
    exact = sum(Fraction(value) for value in frame["Reaction"]) / len(frame)
    assert float(exact) == r_mean
    assert frame["Reaction"].mean() == pytest.approx(r_mean, rel=1e-15)
    assert frame["Reaction"].iloc[1] == 258.7047


def test_cake_temperature_is_ordered() -> None:
    frame = datasets.load("cake")
    assert frame.shape == (270, 5)
    assert frame["temperature"].cat.ordered
    assert _levels(frame["temperature"]) == ["175", "185", "195", "205", "215", "225"]
    assert _levels(frame["recipe"]) == ["A", "B", "C"]
    assert _levels(frame["replicate"]) == [str(i) for i in range(1, 16)]
    assert frame["angle"].dtype == np.int64
    assert frame["angle"].sum() == 8673  # sum(cake$angle) in R
    assert (frame["temperature"].astype(str).astype(float) == frame["temp"]).all()


def test_penicillin_pastes_cbpp() -> None:
    penicillin = datasets.load("Penicillin")
    assert penicillin.shape == (144, 3)
    assert _levels(penicillin["plate"]) == list("abcdefghijklmnopqrstuvwx")
    pastes = datasets.load("Pastes")
    assert pastes.shape == (60, 4)
    assert _levels(pastes["sample"])[:4] == ["A:a", "A:b", "A:c", "B:a"]
    assert len(_levels(pastes["sample"])) == 30
    cbpp = datasets.load("cbpp")
    assert cbpp.shape == (56, 4)
    # sum(cbpp$incidence), sum(cbpp$size) in R; both are doubles in lme4
    assert cbpp["incidence"].sum() == 99.0 and cbpp["size"].sum() == 842.0
    assert _levels(cbpp["period"]) == ["1", "2", "3", "4"]


def test_glmer_data_sets() -> None:
    """lme4's VerbAgg, grouseticks, Arabidopsis and mlmRev's Contraception (the glmer corpus);
    the sums are R's (sum(VerbAgg$Anger), sum(grouseticks$TICKS), sum(Arabidopsis$total.fruits))."""
    verb = datasets.load("VerbAgg")
    assert verb.shape == (7584, 9) and verb["Anger"].sum() == 151704
    assert len(_levels(verb["id"])) == 316 and len(_levels(verb["item"])) == 24
    assert _levels(verb["r2"]) == ["N", "Y"] and verb["resp"].cat.ordered
    grouse = datasets.load("grouseticks")
    assert grouse.shape == (403, 7) and grouse["TICKS"].sum() == 2567
    arab = datasets.load("Arabidopsis")
    assert arab.shape == (625, 8) and arab["total.fruits"].sum() == 18727
    contra = datasets.load("Contraception")
    assert contra.shape == (1934, 6) and len(_levels(contra["district"])) == 60
    assert _levels(contra["use"]) == ["N", "Y"] and (contra["use"] == "Y").sum() == 759


def test_insteval() -> None:
    frame = datasets.load("InstEval")
    assert frame.shape == (73421, 7)
    assert len(_levels(frame["s"])) == 2972
    assert len(_levels(frame["d"])) == 1128
    assert _levels(frame["d"])[:4] == ["1", "6", "7", "8"]
    # R's level order of dept is not sorted (levels(InstEval$dept) in lme4 1.1-31)
    assert _levels(frame["dept"]) == [
        "15", "5", "10", "12", "6", "7", "4", "8", "9", "14", "1", "3", "11", "2",
    ]
    assert frame["studage"].cat.ordered and _levels(frame["studage"]) == ["2", "4", "6", "8"]
    assert frame["lectage"].cat.ordered
    assert _levels(frame["service"]) == ["0", "1"]
    assert frame["y"].dtype == np.int64
    assert frame["y"].sum() == 235369  # sum(InstEval$y) in R


def test_classroom() -> None:
    frame = datasets.load("classroom")
    assert frame.shape == (1190, 12)
    assert len(_levels(frame["classid"])) == 312
    assert len(_levels(frame["schoolid"])) == 107
    assert len(_levels(frame["childid"])) == 1190
    assert _levels(frame["schoolid"])[:3] == ["1", "2", "3"]  # numeric, not "1", "10", ...
    assert _levels(frame["sex"]) == ["M", "F"]
    assert _levels(frame["minority"]) == ["N", "Y"]
    assert frame["mathknow"].isna().sum() == 109
    assert frame["mathknow"].dtype == np.float64
    assert frame["mathgain"].dtype == np.int64
    first = frame.iloc[0]
    assert (first["sex"], first["minority"], first["mathgain"]) == ("F", "Y", 32)
    assert (first["classid"], first["schoolid"], first["ses"]) == ("160", "1", 0.46)
    assert math.isnan(first["mathknow"])
    entry = _manifest()["classroom"]
    assert entry["rows"] == 1190 and "WWGbook" in entry["licence"]


def test_unknown_name_raises_data_error() -> None:
    with pytest.raises(DataError, match="no_such_data") as info:
        datasets.load("no_such_data")
    assert "sleepstudy" in str(info.value)


def test_loads_are_independent() -> None:
    first = datasets.load("Dyestuff")
    first.loc[0, "Yield"] = -1.0
    assert datasets.load("Dyestuff")["Yield"].iloc[0] == 1545.0


# ---- exact agreement with R (needs R with lme4 and rpy2) ----------------------------------

LME4_SETS = [name for name in ALL if name != "classroom"]
PACKAGE = {"Contraception": "mlmRev"}  # the package each R data set comes from (lme4 otherwise)


@pytest.fixture(scope="module")
def r():
    robjects = pytest.importorskip("rpy2.robjects")
    try:
        robjects.r("suppressPackageStartupMessages(library(lme4))")
    except Exception as exc:  # pragma: no cover - depends on the R installation
        pytest.skip(f"R package lme4 unavailable: {exc}")
    return robjects.r


@pytest.mark.parametrize("name", LME4_SETS)
def test_values_identical_to_r(r, name: str) -> None:
    frame = datasets.load(name)
    for column in frame.columns:
        expr = f"{PACKAGE.get(name, 'lme4')}::{name}[[{column!r}]]"
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            assert _levels(frame[column]) == list(r(f"levels({expr})"))
            codes = np.asarray(r(f"as.integer({expr})"), dtype=np.int64) - 1
            np.testing.assert_array_equal(frame[column].cat.codes.to_numpy(), codes)
        else:
            expected = np.asarray(r(f"as.double({expr})"), dtype=np.float64)
            # exact: same doubles bit for bit
            np.testing.assert_array_equal(frame[column].to_numpy(dtype=np.float64), expected)
