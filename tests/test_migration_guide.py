"""docs/migration.md cannot go stale: its ```python blocks run in order as one script and each
prints exactly the ```text block that follows it in the guide; its ```r blocks, run by Rscript
(R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, emmeans 1.8.4), print exactly theirs. A code block with no output
block after it must print nothing. Trailing spaces are ignored (R pads some lines)."""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "migration.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
R_MARK = "#<<pylme-guide-block>>"
STALE = "docs/migration.md quotes another output (scripts/update_migration_guide.py rewrites it)"


def blocks(language: str) -> list[tuple[str, str]]:
    """(code, expected output) of each ```language block of the guide, in order."""
    out: list[list[str]] = []
    last = None
    for lang, body in FENCE.findall(GUIDE.read_text(encoding="utf-8")):
        if lang == "text":
            if last == language:
                out[-1][1] = body
            last = None
        else:
            if lang == language:
                out.append([body, ""])
            last = lang
    return [(code, expected) for code, expected in out]


def normalised(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def run_python(codes: list[str], cwd: Path) -> list[str]:
    """What each block prints, run in order in one namespace with ``cwd`` as working directory."""
    namespace: dict = {"__name__": "__guide__"}
    printed = []
    here = Path.cwd()
    os.chdir(cwd)
    try:
        for code in codes:
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                exec(compile(code, str(GUIDE), "exec"), namespace)
            printed.append(buffer.getvalue())
    finally:
        os.chdir(here)
    return printed


def run_r(codes: list[str], cwd: Path) -> list[str]:
    """What each block prints, run in order by one Rscript in ``cwd``."""
    script = f'\ncat("{R_MARK}\\n")\n'.join(codes)
    rscript = shutil.which("Rscript")
    assert rscript, "Rscript is not on PATH"
    env = {**os.environ, "LC_ALL": "C.UTF-8"}  # R's quotes and number formats as the guide shows them
    done = subprocess.run([rscript, "-e", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split(f"{R_MARK}\n")


def test_the_guide_has_a_worked_example_in_both_languages():
    python, r = blocks("python"), blocks("r")
    assert len(python) == len(r) >= 11
    for py_call, r_call, printed in (("anova(fm9M, fm8M", "anova(fm9M, fm8M)", "11.967"),
                                     ('emmeans(fm8, "pairwise ~ minority")', "emmeans(fm8, pairwise ~ minority)", "3.519"),
                                     ("fm8.ranova()", "ranova(", "11.928"),
                                     ('fm8.drop1(test="Chisq")', 'drop1(fm8, test = "Chisq")', "379.41")):
        k = next(i for i, (code, _) in enumerate(python) if py_call in code)
        assert r_call in r[k][0], r_call
        assert printed in python[k][1] and printed in r[k][1], printed


def test_pylme_blocks_print_what_the_guide_quotes(tmp_path):
    python = blocks("python")
    printed = run_python([code for code, _ in python], tmp_path)
    for (code, expected), got in zip(python, printed):
        assert normalised(got) == normalised(expected), f"{STALE}\nblock:\n{code}"


@pytest.mark.usefixtures("require_r")
def test_r_blocks_print_what_the_guide_quotes(tmp_path):
    (tmp_path / "datasets").symlink_to(ROOT / "datasets")  # the R code reads datasets/classroom.csv
    r = blocks("r")
    printed = run_r([code for code, _ in r], tmp_path)
    assert len(printed) == len(r)
    for (code, expected), got in zip(r, printed):
        assert normalised(got) == normalised(expected), f"{STALE}\nblock:\n{code}"
