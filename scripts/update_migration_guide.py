"""Rewrite the output blocks of docs/migration.md from fresh runs of its code blocks.

Run it after a deliberate change of pylme's (or R's) printout, when tests/test_migration_guide.py
reports a difference, then read the diff of the guide before committing it:

    .venv/bin/python scripts/update_migration_guide.py

Each ```python and ```r block is run (pylme in this process, R by one Rscript, as the test runs
them); the ```text block after it is replaced by what it printed, added when missing, removed
when it printed nothing.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_migration_guide as guide  # the test's block parser and runners

CODE_LANGUAGES = ("python", "r")


def outputs() -> dict[str, list[str]]:
    """What each code block prints, per language, in the guide's order."""
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "datasets").symlink_to(ROOT / "datasets")
        return {
            "python": guide.run_python([code for code, _ in guide.blocks("python")], cwd),
            "r": guide.run_r([code for code, _ in guide.blocks("r")], cwd),
        }


def text_block(printed: str) -> str:
    body = guide.normalised(printed)
    return f"```text\n{body}\n```" if body else ""


def rewritten(text: str, printed: dict[str, list[str]]) -> str:
    """The guide with each code block followed by its output block."""
    pending = {lang: iter(values) for lang, values in printed.items()}
    pieces, pos, waiting, code_end = [], 0, None, 0
    for match in guide.FENCE.finditer(text):
        lang = match.group(1)
        if lang == "text" and waiting is not None:
            pieces += [text[pos:match.start()], text_block(waiting)]
            pos, waiting = match.end(), None
            continue
        if waiting:  # the previous code block printed but had no output block
            pieces += [text[pos:code_end], "\n\n" + text_block(waiting)]
            pos = code_end
        waiting = next(pending[lang]) if lang in CODE_LANGUAGES else None
        code_end = match.end()
    if waiting:
        pieces += [text[pos:code_end], "\n\n" + text_block(waiting)]
        pos = code_end
    pieces.append(text[pos:])
    return "".join(pieces)


def main() -> int:
    text = guide.GUIDE.read_text(encoding="utf-8")
    new = rewritten(text, outputs())
    guide.GUIDE.write_text(new, encoding="utf-8")
    print(f"{guide.GUIDE.relative_to(ROOT)}: {'updated' if new != text else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
