"""README.md's examples run as written.

The Python blocks run in order in one namespace, as a reader would type them into one session
(the Quick start's ``fm`` is used by the later sections). The shell blocks' ``pylme`` commands run
with this environment's ``pylme`` command; the scripts, files and folders the README names exist.
Everything runs in a scratch folder that sees the repository's ``datasets`` and ``tests`` folders,
so the files the examples write (plots, JSON) go there.
"""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
# A path the README names in backticks, inside one of the repository's folders.
NAMED_PATH = re.compile(r"`(?:\.venv/bin/python )?((?:scripts|docs|tests|conformance|pylme|datasets)/[\w./-]*)")


def code_blocks(language: str) -> list[tuple[int, str]]:
    """(line number, code) of each block fenced as ```language in README.md."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(text)
            if m.group(1) == language]


@pytest.fixture()
def scratch(tmp_path, monkeypatch) -> Path:
    """A working folder with the repository's data folders linked in."""
    for name in ("datasets", "tests"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_has_the_sections_a_newcomer_needs():
    """What pylme is, how to install it and a quick start come first, in that order."""
    headings = [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("## ")]
    assert headings[:3] == ["## Install", "## Quick start", "## From lme4 to pylme"]
    assert code_blocks("python") and code_blocks("sh")


def test_python_blocks_run_in_order(scratch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict = {"__name__": "__readme__"}
    try:
        for line, code in code_blocks("python"):
            try:
                exec(compile(code, f"README.md:{line}", "exec"), namespace)  # the README's own examples
            except Exception as exc:  # noqa: BLE001 - name the block that failed
                raise AssertionError(f"README.md's Python block at line {line} failed: {exc!r}") from exc
    finally:
        plt.close("all")
    # The Quick start's objects are what it says they are.
    fm, newdata = namespace["fm"], namespace["newdata"]
    assert list(fm.fixef().index) == ["(Intercept)", "Days"]
    population = fm.fixef()["(Intercept)"] + fm.fixef()["Days"] * newdata["Days"].to_numpy()
    np.testing.assert_allclose(np.asarray(fm.predict(newdata, re_form="~0")), population, rtol=1e-12)
    # The plots section wrote its files.
    assert (scratch / "caterpillar.png").stat().st_size > 0
    assert (scratch / "subjects.svg").stat().st_size > 0


def test_shell_blocks_pylme_commands_run(scratch):
    """Each ``pylme ...`` line of a shell block runs and succeeds, as typed after activating
    the environment (its ``pylme`` is the one beside this Python)."""
    pylme_command = Path(sys.executable).with_name("pylme")
    ran = 0
    for line, code in code_blocks("sh"):
        for command in code.splitlines():
            words = shlex.split(command, comments=True)
            if not words or words[0] != "pylme":
                continue
            done = subprocess.run([str(pylme_command), *words[1:]], capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, f"README.md:{line}: {command!r} failed:\n{done.stderr}"
            ran += 1
    assert ran >= 3
    assert (scratch / "fit.json").stat().st_size > 0
    assert any((scratch / "plots").iterdir())


def test_shell_blocks_name_existing_scripts():
    """``bash scripts/...`` and ``pip install -c FILE`` name files the repository has."""
    for line, code in code_blocks("sh"):
        for command in code.splitlines():
            words = shlex.split(command, comments=True)
            if words[:1] == ["bash"]:
                assert (ROOT / words[1]).is_file(), f"README.md:{line}: no {words[1]}"


def test_files_the_readme_names_exist():
    text = README.read_text(encoding="utf-8")
    named = {m.group(1).rstrip(".") for m in NAMED_PATH.finditer(text)}
    assert "scripts/run.sh" in named and "scripts/test.sh" in named
    missing = sorted(path for path in named if "*" not in path and not (ROOT / path).exists())
    assert not missing, f"README.md names files that do not exist: {missing}"
    assert (ROOT / "constraints.txt").is_file()
