"""``python -m conformance run|record|list``: the conformance run (the README's main job), the
recording of lme4's golden records, and the corpus listing."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import report
from .cases import select
from .engines import GoldenEngine, Lme4Engine, r_available
from .run import RunSpec, run_all


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="compare engines with lme4 on the corpus")
    run.add_argument("--reference", choices=["live", "golden", "auto"], default="live",
                     help="live: lme4 through rpy2; golden: recorded lme4 records; auto: live if R is there")
    run.add_argument("--engines", default="pylme", help="comma-separated: pylme,statsmodels,mixedlm")
    run.add_argument("--cases", default=None, help="glob pattern(s) over case ids, comma-separated")
    run.add_argument("--all", action="store_true", help="include the slow cases (InstEval)")
    run.add_argument("--report", default="reports/conformance", help="directory for report.json and report.html")
    run.add_argument("--jobs", type=int, default=1)
    rec = sub.add_parser("record", help="write lme4's golden records (needs R)")
    rec.add_argument("--cases", default=None)
    rec.add_argument("--all", action="store_true")
    lst = sub.add_parser("list", help="list the corpus")
    lst.add_argument("--cases", default=None)
    lst.add_argument("--all", action="store_true")
    return p


def _reference(choice: str) -> tuple[str, str] | None:
    ok, why = r_available()
    if choice == "golden" or (choice == "auto" and not ok):
        if choice == "auto":
            print(f"R with lme4 is not available ({why}); using the golden records")
        return "golden", "lme4 records in conformance/golden"
    if not ok:
        print(f"R with lme4 is not available ({why}): install it (scripts/setup.sh) or use --reference golden")
        return None
    return "lme4", why


def cmd_run(args) -> int:
    ref = _reference(args.reference)
    if ref is None:
        return 2
    cases = select(args.cases, args.all)
    if not cases:
        print(f"no case matches {args.cases!r}")
        return 2
    spec = RunSpec(reference=ref[0], engines=tuple(e.strip() for e in args.engines.split(",") if e.strip()))
    results = run_all(cases, spec, jobs=args.jobs)
    print(report.table(results))
    jpath, hpath = report.write(results, Path(args.report), report.provenance(*ref))
    bad = report.failed(results)
    print(f"\n{report.summary_line(results)}\nreport: {jpath} and {hpath}")
    for r in bad:
        print(f"FAILED {r.case_id} [{r.engine}]: " + "; ".join(
            r.notes + [f for lay in r.layers.values() for f in lay.failures]))
    return 1 if bad else 0


def cmd_record(args) -> int:
    ok, why = r_available()
    if not ok:
        print(f"R with lme4 is not available ({why}): cannot record")
        return 2
    golden, live = GoldenEngine(), Lme4Engine()
    cases = select(args.cases, args.all)
    for case in cases:
        rec = live.fit(case, case.load_data())
        golden.write(case, rec)
        print(f"{case.id}: {'error: ' + rec.error if rec.error else f'criterion {rec.criterion:.10g}'}")
    print(f"{len(cases)} golden records written ({why})")
    return 0


def cmd_list(args) -> int:
    for case in select(args.cases, args.all):
        flags = [f for f, on in (("slow", case.slow), ("lme4 unreliable", case.lme4_unreliable),
                                 ("known difference", case.known_difference)) if on]
        print(f"{case.id:40s} {case.dataset:12s} {case.formula}" + (f"  [{', '.join(flags)}]" if flags else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return {"run": cmd_run, "record": cmd_record, "list": cmd_list}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
