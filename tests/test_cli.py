"""The pylme command line, run as a subprocess on the bundled data files: the printed summary is
pylme's summary of the same model (whose numbers the reference tests check against lme4), the
JSON is the fit's FitRecord, messages go to stderr, bad input exits 2 with one line."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import pylme
from pylme.fitted.record import FitRecord

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "datasets"
RDATA = ROOT / "tests" / "reference" / "rdata"
SLEEP = "Reaction ~ Days + (Days | Subject)"
CAKE = "angle ~ recipe + temperature + (1 | recipe:replicate)"
# the environment before any test starts R in this process: rpy2 sets LD_LIBRARY_PATH to R's
# libraries, with which a Python subprocess can load the wrong shared libraries
ENV = dict(os.environ)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pylme", *map(str, args)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300, check=False)


def pylme_fit(formula: str, dataset: str, **kwargs) -> pylme.LmerMod:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylme.lmer(formula, pylme.datasets.load(dataset), **kwargs)


def test_fit_prints_the_summary_and_writes_the_record(tmp_path):
    out = run("fit", DATASETS / "sleepstudy.csv", SLEEP, "--json", tmp_path / "fit.json")
    assert out.returncode == 0, out.stderr
    fm = pylme_fit(SLEEP, "sleepstudy")
    assert out.stdout == f"{fm.summary()}\n"
    # lme4 1.1-31's printout of this model (tests/test_seeds.py holds it to more digits)
    for printed in ("REML criterion at convergence: 1743.6", "(Intercept)  251.405      6.825  36.838",
                    "Days          10.467      1.546   6.771", " Subject  (Intercept) 612.10   24.741"):
        assert printed in out.stdout
    rec = FitRecord.from_json((tmp_path / "fit.json").read_text())
    ref = fm.record()
    assert (rec.engine, rec.formula, rec.REML, rec.n) == ("pylme", SLEEP, True, 180)
    assert rec.criterion == pytest.approx(ref.criterion, rel=1e-12)
    np.testing.assert_allclose(rec.theta, ref.theta, rtol=1e-10)
    assert rec.beta == pytest.approx(ref.beta, rel=1e-10) and list(rec.beta) == ["(Intercept)", "Days"]
    assert rec.sigma == pytest.approx(ref.sigma, rel=1e-10)
    assert f"wrote {tmp_path / 'fit.json'}" in out.stderr


def test_ml_and_satterthwaite():
    out = run("fit", DATASETS / "sleepstudy.csv", SLEEP, "--ml", "--ddf", "Satterthwaite")
    assert out.returncode == 0, out.stderr
    fm = pylme_fit(SLEEP, "sleepstudy", REML=False)
    assert out.stdout == f"{fm.summary(ddf='Satterthwaite')}\n"
    assert "Linear mixed model fit by maximum likelihood . t-tests use Satterthwaite's method" in out.stdout
    assert "deviance" in out.stdout and "Pr(>|t|)" in out.stdout


def test_kenward_roger():
    out = run("fit", DATASETS / "sleepstudy.csv", SLEEP, "--ddf", "Kenward-Roger")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{pylme_fit(SLEEP, 'sleepstudy').summary(ddf='Kenward-Roger')}\n"
    assert "t-tests use Kenward-Roger's method" in out.stdout


def test_parquet(tmp_path):
    path = tmp_path / "cake.parquet"
    pylme.datasets.load("cake").to_parquet(path)
    out = run("fit", path, CAKE)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{pylme_fit(CAKE, 'cake').summary()}\n"
    assert "temperature.L   6.6109     0.6746   9.800" in out.stdout


@pytest.mark.parametrize("args", [
    [RDATA / "cake.rds", CAKE],
    [RDATA / "objects.RData", "Reaction ~ Days + (Days | Subject)", "--name", "sleep"],
])
def test_r_data_files(args):
    out = run("fit", *args)
    assert out.returncode == 0, out.stderr
    if args[0].suffix == ".rds":
        assert out.stdout == f"{pylme_fit(CAKE, 'cake').summary()}\n"  # the ordered factor kept
    else:
        sleep = pylme.read_r(RDATA / "objects.RData", name="sleep")
        sleep.attrs["name"] = "objects"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert out.stdout == f"{pylme.lmer(args[1], sleep).summary()}\n"


def test_messages_of_the_fit_go_to_stderr():
    out = run("fit", DATASETS / "Dyestuff2.csv", "Yield ~ 1 + (1 | Batch)")
    assert out.returncode == 0
    assert out.stderr == "boundary (singular) fit: see help('isSingular')\n"  # the fit's message
    assert out.stdout == f"{pylme_fit('Yield ~ 1 + (1 | Batch)', 'Dyestuff2').summary()}\n"
    assert " Batch    (Intercept)  0.00    0.000   " in out.stdout


@pytest.mark.parametrize("args,message", [
    (["fit", "absent.csv", SLEEP], "no such file: absent.csv"),
    (["fit", "README.md", SLEEP], "README.md: unknown data file type (expected .csv, .csv.gz, .parquet"),
    (["fit", DATASETS / "sleepstudy.csv", "Reaction ~ Days + (Days | Subject"], "cannot parse formula"),
    (["fit", DATASETS / "sleepstudy.csv", "Reaction ~ Dayz + (1 | Subject)"], "column(s) 'Dayz' named in the formula"),
    (["fit", RDATA / "objects.RData", SLEEP], "holds 4 objects; choose one by its name: types (data frame)"),
    (["fit", DATASETS / "sleepstudy.csv", SLEEP, "--name", "x"], "--name is for .RData/.rda files"),
    (["fit", RDATA / "vector.rds", SLEEP], "is not a data frame (it is an R vector)"),
])
def test_bad_input_prints_one_line_and_exits_2(args, message):
    out = run(*args)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("pylme: error: ") and out.stderr.count("\n") == 1, out.stderr
    assert message in out.stderr


def test_version():
    out = run("--version")
    assert (out.returncode, out.stdout) == (0, f"pylme {pylme.__version__}\n")


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "pylme"
    out = subprocess.run([script, "--version"], env=ENV, capture_output=True, text=True, timeout=60, check=False)
    assert out.stdout == f"pylme {pylme.__version__}\n"


def test_plot_saves_diagnostic_pngs(tmp_path):
    out = run("fit", DATASETS / "sleepstudy.csv", SLEEP, "--plot", tmp_path / "plots")
    assert out.returncode == 0, out.stderr
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert pngs
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {png}" in out.stderr


def test_csv_numbers_are_the_nearest_doubles_without_a_pandas_warning(tmp_path):
    """Each number of a CSV is parsed to the nearest double, as R's read.csv does, and pandas
    prints no warning (pylme used to pass pandas 3.1's deprecated float_precision)."""
    from pylme.io.cli import read_data

    values = ["0.1", "2.2250738585072014e-308", "1.7976931348623157e308", "0.30000000000000004",
              "9007199254740993", "1.0000000000000002", "123456.78901234567"]
    path = tmp_path / "numbers.csv"
    path.write_text("x\n" + "\n".join(values) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = read_data(path)
    assert frame["x"].tolist() == [float(v) for v in values]
    out = run("fit", DATASETS / "sleepstudy.csv", SLEEP)
    assert out.returncode == 0 and out.stderr == ""
