"""pylme's folders by stage: each stage imports only the stages below it (at the top of a module and
inside functions alike), and every documented ``pylme.<module>`` spelling still reaches its module.

The stages, lowest first, as README.md's "How a fit is computed" lists them.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pylme

PACKAGE = Path(pylme.__file__).parent
STAGES = ["rbase", "description", "objectives", "fitting", "inference", "fitted", "scaleout", "api", "io"]



def _stage(module: str) -> int:
    """The rank of a module's stage, ``pylme.errors`` (under them all) being -1."""
    parts = module.split(".")
    if parts[:2] == ["pylme", "errors"]:
        return -1
    return STAGES.index(parts[1])


def _imported(path: Path) -> set[str]:
    """The pylme modules that ``path`` imports, written as absolute dotted names."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
            found.update(n for n in names if n.startswith("pylme."))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pylme."))
    return found


def test_every_module_is_in_a_stage_folder():
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "errors.py"]
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} - {"_data"}  # the data sets
    assert folders == set(STAGES)


def test_no_stage_imports_a_stage_above_it():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent == PACKAGE:
            continue
        here = _stage(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        upward += [f"{path.relative_to(PACKAGE)} -> {m}" for m in _imported(path)
                   if m != "pylme.__version__" and _stage(m) > here]
    assert not upward, upward


def test_documented_module_spellings_reach_their_modules():
    """README.md and docs/ write pylme.datasets.load, pylme.plotting.*, ``from pylme import
    plotting``, pylme.kenward_roger.vcovAdj, pylme.blocked.BlockedDevfun and pylme.polish.polish;
    pylme.family is the families' module."""
    from pylme import plotting

    assert plotting.qqnorm_resid is pylme.plotting.qqnorm_resid
    assert pylme.datasets.load("sleepstudy").shape == (180, 3)
    assert callable(pylme.kenward_roger.vcovAdj) and callable(pylme.kenward_roger.Lb_ddf)
    assert pylme.family.binomial is pylme.binomial
    assert pylme.blocked.BlockedDevfun.__module__ == "pylme.objectives.blocked"
    assert pylme.polish.polish.__module__ == "pylme.fitting.polish"


def test_documented_modules_import_by_their_documented_names():
    """docs/migration.md writes ``import pylme.plotting``; the same holds for the other documented
    modules, in a fresh process (nothing imported before)."""
    probe = ("import pylme.plotting, pylme.datasets, pylme.kenward_roger; from pylme.datasets import load; "
             "import pylme; print(pylme.plotting.__name__, load is pylme.datasets.load, pylme.kenward_roger.__name__)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["pylme.io.plotting", "True", "pylme.inference.kenward_roger"]


def test_the_command_line_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "pylme", "--version"], capture_output=True, text=True, check=True)
    assert pylme.__version__ in done.stdout


def test_a_method_importing_its_analysis_leaves_the_r_style_function_in_place():
    """``fm.confint()`` imports pylme.inference.confint on first use; ``pylme.confint`` stays R's
    ``confint(fm)`` (in the flat layout the first import replaced it by the module)."""
    fm = pylme.lmer("Reaction ~ Days + (Days | Subject)", pylme.datasets.load("sleepstudy"))
    wald = fm.confint(method="Wald")
    assert callable(pylme.confint) and callable(pylme.profile) and callable(pylme.influence)
    assert pylme.confint(fm, method="Wald").equals(wald)
