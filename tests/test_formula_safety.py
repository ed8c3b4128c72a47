"""A formula is data, never code: no text a user passes (formula, through the API or the
``pylme fit`` command line) reaches Python's eval, exec, open or import.

Each injection the issue reported (code inside a string argument of I(), the response,
offset(), a random-effects term) is refused with a FormulaError naming the function and runs
nothing: no file appears, no command runs. A property test feeds random strings and random
formula fragments to the parser and the evaluator with Python's dangerous builtins replaced
by tripwires. lme4 would evaluate these calls in R (``exec``, ``open`` are not R functions,
so R fails with "could not find function"); pylme never looks them up at all.
"""
from __future__ import annotations

import builtins
import contextlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pylme
from pylme import FormulaError, PylmeError
from pylme.description.evaluate import FUNCTIONS, Evaluator
from pylme.description.formula import expand_terms, parse_mixed
from pylme.description.model_matrix import design

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ)  # before R is started in this process (see tests/test_cli.py)

PAYLOAD = "import os; os.system('echo PWNED > pwned.txt')"
# each injection, and what the message names: the unknown function, or the syntax R would refuse too
INJECTIONS = [
    (f'Reaction ~ Days + I(exec("{PAYLOAD}")) + (1|Subject)', "unknown function exec()"),
    ("Reaction ~ Days + I(open('marker','w')) + (1|Subject)", "unknown function open()"),
    ("Reaction ~ Days + I(open('marker','w').write('x')) + (1|Subject)", "unexpected '.write'"),
    (f'I(Reaction + len(str(exec("{PAYLOAD}")))*0) ~ Days + (1|Subject)', "unknown function len()"),
    (f'Reaction ~ Days + offset(eval("{PAYLOAD}")) + (1|Subject)', "unknown function eval()"),
    (f'Reaction ~ Days + (I(Days + eval("{PAYLOAD}")) | Subject)', "unknown function eval()"),
    ("Reaction ~ Days + I(__import__('os').system('echo PWNED > pwned.txt')) + (1|Subject)",
     "unexpected character at '__import__'"),
    ("Reaction ~ Days + I(os.system('echo PWNED > pwned.txt')) + (1|Subject)", "unknown function os.system()"),
    ("Reaction ~ Days + I(getattr(Days, '__class__')) + (1|Subject)", "unknown function getattr()"),
    ("Reaction ~ Days + I(compile('1', 'f', 'exec')) + (1|Subject)", "unknown function compile()"),
    ("Reaction ~ Days + system('echo PWNED > pwned.txt') + (1|Subject)", "unknown function system()"),
]


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return pylme.datasets.load("sleepstudy")


@pytest.mark.parametrize("formula,message", INJECTIONS)
def test_injection_through_the_api_runs_nothing(sleep, formula, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FormulaError) as exc:
        pylme.lmer(formula, sleep)
    assert message in str(exc.value)
    if message.startswith("unknown function"):  # with the functions a formula may call
        assert "a formula may call only" in str(exc.value) and "poly()" in str(exc.value)
    assert list(tmp_path.iterdir()) == []  # no marker, no pwned.txt


@pytest.mark.parametrize("formula,message", INJECTIONS)
def test_injection_through_the_command_line_runs_nothing(formula, message, tmp_path):
    data = ROOT / "datasets" / "sleepstudy.csv"
    out = subprocess.run([sys.executable, "-m", "pylme", "fit", str(data), formula], cwd=tmp_path, env=ENV,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("pylme: error: ") and message in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_strings_are_data_where_a_function_takes_them(sleep, tmp_path, monkeypatch):
    """A string argument is only ever a value: relevel's reference level here."""
    monkeypatch.chdir(tmp_path)
    d = sleep.assign(g=np.where(sleep["Days"] < 5, "import os", "open('marker','w')"))
    fm = pylme.lmer("Reaction ~ relevel(factor(g), \"open('marker','w')\") + (1|Subject)", d)
    assert list(fm.fixef().index) == ["(Intercept)", "relevel(factor(g), \"open('marker','w')\")import os"]
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the property
class Tripwire(Exception):
    """Raised when parsing or evaluating a formula reached a builtin that runs code or opens files."""


#: modules whose import while a formula is parsed or evaluated means code could run
DENIED_MODULES = {"os", "subprocess", "sys", "shutil", "socket", "importlib", "ctypes", "builtins", "pty", "posix",
                  "runpy", "code", "codeop", "pickle", "marshal", "multiprocessing", "webbrowser", "http", "urllib"}


@contextlib.contextmanager
def tripwires():
    """Python's eval, exec, compile, open, os.system and subprocess replaced by tripwires while
    the block runs, and imports of DENIED_MODULES; yields the list of the names reached."""
    calls: list[str] = []

    def wire(name):
        def tripped(*args, **kwargs):
            calls.append(name)
            raise Tripwire(name)

        return tripped

    original_import = builtins.__import__

    def guarded_import(name, *args, **kwargs):
        if name.partition(".")[0] in DENIED_MODULES:
            calls.append(f"import {name}")
            raise Tripwire(name)
        return original_import(name, *args, **kwargs)  # numpy's and pandas' own lazy imports

    targets = [(builtins, name) for name in ("eval", "exec", "compile", "open", "breakpoint", "input")]
    targets += [(os, "system"), (os, "popen"), (subprocess, "Popen")]
    saved = [(obj, name, getattr(obj, name)) for obj, name in targets + [(builtins, "__import__")]]
    try:
        for obj, name in targets:
            setattr(obj, name, wire(name))
        builtins.__import__ = guarded_import
        yield calls
    finally:
        for obj, name, original in saved:
            setattr(obj, name, original)


FRAME = pd.DataFrame({
    "y": np.linspace(1.0, 3.0, 12), "x": np.tile([1.0, 2.0, 3.0, 4.0], 3), "g": np.repeat(["a", "b", "c"], 4),
    "log": np.arange(12.0), "my col": np.arange(12.0) % 5,
})
FRAGMENTS = [
    "y", "x", "g", "log", "`my col`", "1", "0", "2", "1.5e3", "-", "+", "*", "/", "^", ":", "|", "||", "&", "!",
    "==", "<", "%%", "%in%", "(", ")", ",", "~", ".", "=", '"a"', "'b'", "TRUE", "NA", "Inf", "pi",
    "I(", "log(", "poly(", "exec(", "eval(", "open(", "__import__(", "os.system(", "lambda", "import", ";", "$",
    "[", "]", "{", "}", "\\", "#", "@", "::", "<-", "`", "\n", " ", "getattr(", "x.__class__", "_",
] + [f"{name}(" for name in FUNCTIONS]


def _reach(formula: str) -> None:
    """Parse, expand, and evaluate every variable of ``formula`` on FRAME."""
    pf = parse_mixed(formula)
    ev = Evaluator(FRAME, {})
    for rhs in [pf.fixed] + [b.lhs for b in pf.bars]:
        if rhs is not None:
            design(expand_terms(rhs), FRAME)
    if pf.response is not None:
        ev.value(pf.response)


def _attempt(formula: str) -> None:
    """Parse and evaluate ``formula`` with the tripwires set: a PylmeError is a fine answer,
    reaching a tripwire (or any other exception) fails."""
    parse_mixed.cache_clear()
    expand_terms.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tripwires() as calls:
            try:
                _reach(formula)
            except PylmeError:
                pass  # refused with a message
            except Tripwire:
                pass  # reported below
    assert calls == [], f"formula {formula!r} reached {calls}"


@settings(max_examples=400, derandomize=True, deadline=None, database=None)
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=14).map("".join))
def test_random_formula_fragments_never_run_code(formula):
    _attempt(formula)
    _attempt(f"y ~ {formula} + (1 | g)")


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(st.text(max_size=60))
def test_random_text_never_runs_code(text):
    _attempt(text)
    _attempt(f"y ~ I({text}) + (1 | g)")


def test_tripwires_trip():
    """The property tests would notice: the tripwires fire when reached, and are removed after."""
    with tripwires() as calls:
        with pytest.raises(Tripwire):
            eval("1")  # noqa: S307 - the tripwire, not Python's eval
        with pytest.raises(Tripwire):
            __import__("os")
    assert calls == ["eval", "import os"]
    assert eval("1 + 1") == 2  # noqa: S307


def test_readme_lists_the_function_table():
    """README's "Bad input" table names exactly the functions a formula may call."""
    import re

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Bad input"):text.index("## Data sets")]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    named = {m for row in rows for m in re.findall(r"`([\w.]+)(?:\(|`)", row.split("|")[1])}
    assert named == set(FUNCTIONS)
