"""A deep property sweep in resumable chunks: ``python -m conformance.sweep --designs 3000``.

The same designs as tests/test_property_designs.py's ``deep`` profile (conformance/designs.py's
strategy), drawn by hypothesis in chunks of ``--chunk`` designs, chunk k under ``@seed(k)`` (the
generation phase only, no example database: the same designs on every run of a chunk), each design
judged by conformance/property.py and written as one JSON line to ``--out`` (a failure is recorded,
never raised or shrunk, so a long run is not stopped by one design). A run skips the chunks already
complete in ``--out``, so it can be stopped and resumed; a partial chunk is redrawn from its start.
Each line: the chunk, the design's key (its hash), formula, REML, weights, the two criteria and
(pylme - lme4) / |lme4| (``excess``), the verdict, lme4's non-convergence warning, ``conforms``
(the test's assertion, conformance.property.engine_conforms), the seconds taken, and for a design
that does not conform its data inline (conformance.cases.write_inline) to reproduce it. The summary
(``--summary``, also printed at the end) counts designs, distinct designs, verdicts, and the largest
excess with and without lme4's non-convergence warnings.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

from .cases import write_inline
from .designs import Design, designs
from .property import criterion_excess, engine_conforms, judge


def design_record(design: Design, chunk: int) -> dict:
    """Judge one design; its JSON line (an exception is recorded, with the data)."""
    t0 = time.perf_counter()
    row: dict = {"chunk": chunk, "key": design.key(), "formula": design.formula, "REML": design.REML,
                 "weights": design.weights, "n": len(design.data)}
    try:
        result, unreliable = judge(design)
        excess = criterion_excess(result)
        row.update(verdict=result.verdict, lme4_warned=unreliable, excess=excess,
                   lme4=(result.reference or {}).get("criterion"), pylme=(result.candidate or {}).get("criterion"),
                   conforms=engine_conforms(result),
                   failures=[f for lay in result.layers.values() for f in lay.failures] + result.notes[:3])
    except Exception:  # recorded, not raised: one design does not stop the sweep
        row.update(verdict="exception", conforms=False, failures=[traceback.format_exc(limit=5)])
    row["seconds"] = time.perf_counter() - t0
    if not row["conforms"] or (row.get("excess") or 0.0) > 0.0:
        row["description"] = design.description
        row["data_csv"] = write_inline(design.data)
    return row


def run_chunk(chunk: int, size: int, out) -> None:
    """Draw ``size`` designs under ``@seed(chunk)`` and write each one's record to ``out``."""

    @seed(chunk)
    @settings(max_examples=size, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(design=designs())
    def sweep(design: Design) -> None:
        out.write(json.dumps(design_record(design, chunk)) + "\n")
        out.flush()

    sweep()


def read_records(path: Path) -> list[dict]:
    """The JSON lines written so far (a torn last line, from a stopped run, is ignored)."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def summary(rows: list[dict]) -> dict:
    """Counts and the largest criterion excess (pylme above lme4, relative), overall and where
    lme4 did not warn that its fit failed."""
    excess = [(r["excess"], r) for r in rows if r.get("excess") is not None]
    quiet = [(e, r) for e, r in excess if not r.get("lme4_warned")]
    worst = max(excess, key=lambda p: p[0], default=(None, {}))
    worst_quiet = max(quiet, key=lambda p: p[0], default=(None, {}))
    return {"designs": len(rows), "distinct": len({r["key"] for r in rows}),
            "chunks": len({r["chunk"] for r in rows}), "verdicts": dict(Counter(r["verdict"] for r in rows)),
            "not_conforming": [r["key"] for r in rows if not r["conforms"]],
            "lme4_warned": sum(1 for r in rows if r.get("lme4_warned")),
            "max_excess": worst[0], "max_excess_key": worst[1].get("key"),
            "max_excess_lme4_quiet": worst_quiet[0], "max_excess_lme4_quiet_key": worst_quiet[1].get("key"),
            "above_1e-8": sorted({r["key"] for e, r in excess if e > 1e-8}),
            "seconds": sum(r.get("seconds", 0.0) for r in rows)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m conformance.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--designs", type=int, default=3000, help="designs in all (the deep profile's 3000)")
    p.add_argument("--chunk", type=int, default=100, help="designs per chunk (one hypothesis seed each)")
    p.add_argument("--first-chunk", type=int, default=0, help="the seed of the first chunk")
    p.add_argument("--out", default="reports/sweep/deep.jsonl", help="the JSON-lines record")
    p.add_argument("--summary", action="store_true", help="only summarise --out")
    args = p.parse_args(argv)
    path = Path(args.out)
    if not args.summary:
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = read_records(path)
        done = {c for c, k in Counter(r["chunk"] for r in rows).items() if k >= args.chunk}
        path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["chunk"] in done))  # drop partial chunks
        chunks = range(args.first_chunk, args.first_chunk + -(-args.designs // args.chunk))
        with path.open("a") as out:
            for chunk in chunks:
                if chunk not in done:
                    run_chunk(chunk, args.chunk, out)
                    print(f"chunk {chunk} done", flush=True)
    print(json.dumps(summary(read_records(path)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
