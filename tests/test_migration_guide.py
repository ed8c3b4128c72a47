"""docs/migration.md cannot go stale: its ```python blocks run in order as one script and each
prints the ```text block that follows it in the guide; its ```r blocks, run by Rscript
(R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, emmeans 1.8.4), print theirs. A code block with no output
block after it must print nothing.

"Prints" means: the same text word for word, and the same numbers within the tolerances of what
they are (``same_output``). The guide's numbers come from full fits, their refits and numerical
derivatives, so their last digits move with the optimiser's stopping point and with the numpy,
scipy or BLAS a machine has; scripts/update_migration_guide.py rewrites the quoted outputs."""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conformance.tolerances import DDF_REL, REFIT_ABS

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


NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")


def normalised(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def last_digit(number: str) -> float:
    """One unit in the last digit printed: '1138.727' -> 0.001, '2.03e-116' -> 1e-118."""
    mantissa, _, exponent = number.lower().lstrip("+-").partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def same_number(got: str, quoted: str) -> bool:
    """Within the conformance run's loosest tolerances for what the guide prints: 1e-4 relative
    (DDF_REL: degrees of freedom by numerical derivatives; REFIT_P_REL), 2e-5 absolute (REFIT_ABS:
    log-likelihoods, AICs and LRT statistics of refitted models, and any p-value far below what a
    decision needs, such as 2e-116), or one unit in the last printed digit (a value that moved
    within those across a rounding boundary)."""
    g, q = float(got), float(quoted)
    return abs(g - q) <= max(DDF_REL.value * abs(q), REFIT_ABS.value, last_digit(quoted), last_digit(got))


def same_output(got: str, quoted: str) -> list[str]:
    """The differences between two printed outputs: words (with spacing collapsed) must be
    equal, numbers within ``same_number``."""
    got_lines, quoted_lines = normalised(got).splitlines(), normalised(quoted).splitlines()
    if len(got_lines) != len(quoted_lines):
        return [f"{len(got_lines)} lines printed, {len(quoted_lines)} quoted"]
    problems = []
    for i, (g, q) in enumerate(zip(got_lines, quoted_lines), start=1):
        words_g, words_q = (" ".join(NUMBER.sub("#", line).split()) for line in (g, q))
        numbers_g, numbers_q = NUMBER.findall(g), NUMBER.findall(q)
        if words_g != words_q or len(numbers_g) != len(numbers_q):
            problems.append(f"line {i}: printed {g!r}, quoted {q!r}")
        elif not all(same_number(a, b) for a, b in zip(numbers_g, numbers_q)):
            problems.append(f"line {i}: numbers differ beyond their tolerance: printed {g!r}, quoted {q!r}")
    return problems


def test_same_output_tells_moved_digits_from_changed_results():
    """What the comparison lets through and what it catches (the changes seen across numpy,
    scipy and pandas versions pass; a changed estimate, word or star does not)."""
    assert not same_output("denDF  1138.726848 p 2.025440e-116 ***", "denDF  1138.726813 p 2.025443e-116 ***")
    assert not same_output("logLik -5913.4   AIC 11837.8", "logLik -5913.4  AIC 11837.9")   # rounding
    assert same_output("Estimate 11.9672", "Estimate 11.9702")                         # a result moved
    assert same_output("p 0.0400 *", "p 0.0600 .")                                     # a decision changed
    assert same_output("minorityY -8.26", "minorityN -8.26")                           # a label changed


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
        problems = same_output(got, expected)
        assert not problems, f"{STALE}\nblock:\n{code}\n" + "\n".join(problems)


@pytest.mark.usefixtures("require_r")
def test_r_blocks_print_what_the_guide_quotes(tmp_path):
    (tmp_path / "datasets").symlink_to(ROOT / "datasets")  # the R code reads datasets/classroom.csv
    r = blocks("r")
    printed = run_r([code for code, _ in r], tmp_path)
    assert len(printed) == len(r)
    for (code, expected), got in zip(r, printed):
        problems = same_output(got, expected)
        assert not problems, f"{STALE}\nblock:\n{code}\n" + "\n".join(problems)
