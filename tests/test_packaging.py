"""What a library user's ``pip install`` gets: the wheel holds pylme (with its bundled data sets)
and nothing else, and building it prints no warnings.

The wheel is built as pip builds it for a user (an isolated build with the build requirements of
pyproject.toml), from a copy of the files the build reads, so the checkout is left as it was.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _from_the_build(line: str) -> bool:
    """A warning of the build backend (setuptools) about pylme's packaging, as pip relays it:
    indented, naming a *Warning class. pip's own notes about the machine (its index configuration,
    a retried download) start with 'WARNING:' and are not about pylme."""
    return line.startswith(" ") and "Warning" in line


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("pylme", "datasets"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
                           "-w", str(out), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = out.glob("pylme-*.whl")
    return built, done.stdout + done.stderr


def test_the_wheel_holds_pylme_only(wheel):
    built, _ = wheel
    names = zipfile.ZipFile(built).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"pylme", built.name.split("-py3")[0] + ".dist-info"}
    # Every module of pylme, in every stage's folder, is in it, with the data sets and their manifest.
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pylme").rglob("*.py")}
    assert modules <= set(names)
    assert "pylme/_data/manifest.json" in names and "pylme/_data/sleepstudy.csv" in names
    entry_points = zipfile.ZipFile(built).read(f"{built.name.split('-py3')[0]}.dist-info/entry_points.txt").decode()
    assert "pylme = pylme.io.cli:main" in entry_points


def test_building_the_wheel_prints_no_warnings(wheel):
    _, output = wheel
    warnings = [line for line in output.splitlines() if _from_the_build(line)]
    assert not warnings, output


def test_import_loads_what_a_fit_needs_and_no_more():
    """``import pylme`` leaves plotting (matplotlib, scipy.stats), R files (rdata), the data sets,
    splines, scipy's optimisers, scipy.special (the GLMM links), scipy's graph routines,
    multiprocessing, and the API an lmer fit does not use (glmer, emmeans, the bootstrap, many fits)
    to their first use (scripts/bench_import.py times it)."""
    probe = ("import sys, pylme; print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
             "{'matplotlib', 'rdata', 'pylme', 'scipy', 'multiprocessing'})))")
    loaded = set(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                check=True).stdout.split())
    for heavy in ("matplotlib", "rdata", "scipy.stats", "scipy.optimize", "scipy.interpolate", "scipy.special",
                  "scipy.sparse.csgraph", "multiprocessing", "pylme.io.plotting", "pylme.io.datasets",
                  "pylme.api.glmer", "pylme.inference.emmeans", "pylme.inference.bootstrap", "pylme.scaleout.many"):
        assert heavy not in loaded, f"import pylme loads {heavy}"
    assert {"pylme.api.lmer", "pylme.fitted.model", "pylme.objectives.pls"} <= loaded
    # and they come when asked for
    probe = "import sys, pylme; pylme.plotting; pylme.datasets.load('Dyestuff'); print('scipy.stats' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split() == ["True"]
    probe = ("import pylme; from pylme import emmeans; import pylme.api.glmer as g; "
             "print(pylme.glmer is g.glmer, all(hasattr(pylme, n) for n in pylme.__all__), 'lmer_many' in dir(pylme))")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.split() == ["True", "True", "True"]
