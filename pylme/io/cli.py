"""The ``pylme`` command line: fit one model to a data file and print lme4's summary.

    pylme fit DATA "FORMULA" [--ml] [--ddf Satterthwaite|Kenward-Roger] [--name OBJ] [--json FILE] [--plot DIR]
    pylme --version

DATA is CSV (``.csv``, ``.csv.gz``), Parquet (``.parquet``) or R data (``.rds``, ``.RData``,
``.rda``; ``--name`` picks the object of an .RData file).  The summary goes to stdout; lme4's
messages and warnings from the fit, the files written and errors go to stderr.  Bad input
(a missing or unreadable file, an unknown suffix, a bad formula, an unknown column) prints one
line and exits with status 2.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .. import __version__
from ..api.lmer import lmer
from ..errors import DataError, FitMessage, PylmeError, SingularFitMessage
from .read_r import R_SUFFIXES, read_r

USAGE_ERROR = 2
# each number parsed to the nearest double, as R reads it: pandas 3.1 always does (and deprecates
# the option that asked for it before)
_PANDAS = tuple(int(part) for part in pd.__version__.split(".")[:2])
_CSV_OPTIONS = {} if _PANDAS >= (3, 1) else {"float_precision": "round_trip"}
_SUFFIXES = (".csv", ".csv.gz", ".parquet", *R_SUFFIXES)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pylme", description="Linear mixed models with lme4's answers.")
    parser.add_argument("--version", action="version", version=f"pylme {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fit = commands.add_parser("fit", help="fit lmer(FORMULA, DATA) and print its summary",
                              description="Fit lmer(FORMULA, DATA) and print summary(fm).")
    fit.add_argument("data", metavar="DATA", help="a .csv, .csv.gz, .parquet, .rds, .RData or .rda file")
    fit.add_argument("formula", metavar="FORMULA", help='an lme4 formula, e.g. "Reaction ~ Days + (Days | Subject)"')
    fit.add_argument("--ml", action="store_true", help="maximum likelihood (REML = FALSE); REML by default")
    fit.add_argument("--ddf", choices=["lme4", "Satterthwaite", "Kenward-Roger"], default="lme4",
                     help="Satterthwaite or Kenward-Roger: lmerTest's df and Pr(>|t|) columns")
    fit.add_argument("--name", metavar="OBJ", help="the data frame to use from an .RData/.rda file")
    fit.add_argument("--json", metavar="FILE", type=Path, help="write the fit's FitRecord as JSON to FILE")
    fit.add_argument("--plot", metavar="DIR", type=Path, help="save diagnostic plots (PNG) in DIR")
    return parser


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise DataError(f"{path}: unknown data file type (expected .csv, .csv.gz, .parquet, .rds, .RData or .rda)")


def read_data(path: Path, name: str | None = None) -> pd.DataFrame:
    """The data frame in ``path``; ``frame.attrs["name"]`` is the file's stem (summary's Data:)."""
    suffix = _suffix(path)
    if suffix in R_SUFFIXES:
        frame = read_r(path, name=name)
    elif name is not None:
        raise DataError("--name is for .RData/.rda files")
    elif not path.is_file():
        raise DataError(f"no such file: {path}")
    else:
        try:
            if suffix == ".parquet":
                frame = pd.read_parquet(path)
            else:
                frame = pd.read_csv(path, **_CSV_OPTIONS)
        except (ValueError, OSError) as exc:  # pandas' and pyarrow's parse errors are ValueErrors
            raise DataError(f"cannot read {path}: {exc}") from exc
    frame.attrs["name"] = path.name[: -len(suffix)]
    return frame


def _report(caught: list[warnings.WarningMessage]) -> None:
    """lme4's messages as R prints them, warnings with a "Warning:" prefix, to stderr."""
    for w in caught:
        plain = issubclass(w.category, (FitMessage, SingularFitMessage))
        print(str(w.message) if plain else f"Warning: {w.message}", file=sys.stderr)


def _save_plots(fm, directory: Path) -> None:
    try:
        from .plotting import save_diagnostics
    except ImportError as exc:  # matplotlib is not a dependency of the fit itself
        raise PylmeError(f"--plot needs pylme.io.plotting and matplotlib: {exc}") from exc

    for path in save_diagnostics(fm, directory, fmt="png"):
        print(f"wrote {path}", file=sys.stderr)


def fit(args: argparse.Namespace) -> None:
    """``pylme fit``: read, fit, print the summary, then write what was asked for."""
    data = read_data(Path(args.data), args.name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fm = lmer(args.formula, data, REML=not args.ml)
    _report(caught)
    print(fm.summary(ddf=args.ddf))
    if args.json is not None:
        args.json.write_text(fm.record().to_json(indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot is not None:
        _save_plots(fm, args.plot)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 for bad input)."""
    args = _parser().parse_args(argv)
    try:
        fit(args)
    except (PylmeError, OSError) as exc:  # OSError: --json or --plot could not be written
        print(f"pylme: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0
