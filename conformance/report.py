"""The run's report: a terminal table, report.json and a self-contained report.html."""
from __future__ import annotations

import html
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

import pylme

from . import tolerances
from .compare import CaseResult

LAYERS = ("objective", "at_lme4_theta", "full_fit", "inference")
OK_VERDICTS = {"pass", "pylme better", "known difference", "lme4 unreliable", "unsupported"}


def failed(results: list[CaseResult]) -> list[CaseResult]:
    """Results that make the run fail: a failed layer or an error (for the pylme engine, or any)."""
    return [r for r in results if r.verdict not in OK_VERDICTS]


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.1e}"


def rows(results: list[CaseResult]) -> list[dict[str, str]]:
    """One row per case and engine: the table's columns."""
    out = []
    for r in results:
        out.append({
            "case": r.case_id,
            "engine": r.engine,
            "|d objective|": _fmt(r.metric("objective", "max_rel")),
            "max |d beta|/SE": _fmt(r.metric("full_fit", "max_d_beta_se")),
            "max |d theta|": _fmt(r.metric("full_fit", "max_d_theta")),
            **{layer: (r.layers[layer].verdict if layer in r.layers else "n/a") for layer in LAYERS},
            "verdict": r.verdict,
        })
    return out


def table(results: list[CaseResult]) -> str:
    """The terminal table."""
    body = rows(results)
    if not body:
        return "no cases"
    cols = list(body[0])
    widths = {c: max(len(c), *(len(r[c]) for r in body)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in cols) for r in body]
    return "\n".join(lines)


def summary_line(results: list[CaseResult]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + f" ({len(results)} results)"


def provenance(reference: str, reference_versions: str) -> dict:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pylme": pylme.__version__,
        "python": platform.python_version(),
        "reference": reference,
        "reference_versions": reference_versions,
        "tolerances": {k: {"value": t.value, "reason": t.reason} for k, t in tolerances.ALL.items()},
    }


def write(results: list[CaseResult], directory: Path, meta: dict) -> tuple[Path, Path]:
    """report.json and report.html in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    jpath, hpath = directory / "report.json", directory / "report.html"
    jpath.write_text(json.dumps({"provenance": meta, "summary": summary_line(results),
                                 "results": [r.to_dict() for r in results]}, indent=1, default=str) + "\n")
    hpath.write_text(_html(results, meta))
    return jpath, hpath


def _html(results: list[CaseResult], meta: dict) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in rows(results[:1])[0]) if results else ""
    trs = []
    for r, row in zip(results, rows(results)):
        cls = "ok" if r.verdict in OK_VERDICTS else "bad"
        cells = "".join(f"<td>{esc(v)}</td>" for v in row.values())
        trs.append(f'<tr class="{cls}">{cells}</tr>')
    details = "\n".join(_details(r) for r in results)
    tol_rows = "".join(f"<tr><td>{esc(k)}</td><td>{v['value']:g}</td><td>{esc(v['reason'])}</td></tr>"
                       for k, v in meta["tolerances"].items())
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>pylme conformance report</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; font-size: 13px; text-align: left; }}
tr.ok td:last-child {{ background: #dfd; }} tr.bad td:last-child {{ background: #fbb; }}
pre {{ background: #f6f6f6; padding: 6px; }} details {{ margin: 4px 0; }}
</style></head><body>
<h1>pylme conformance report</h1>
<p>{esc(summary_line(results))}. Reference: {esc(meta['reference'])} ({esc(meta['reference_versions'])});
pylme {esc(meta['pylme'])}, Python {esc(meta['python'])}; {esc(meta['date'])}.</p>
<table><tr>{head}</tr>
{''.join(trs)}
</table>
<h2>Tolerances</h2><table><tr><th>name</th><th>value</th><th>reason</th></tr>{tol_rows}</table>
<h2>Cases</h2>
{details}
</body></html>
"""


def _details(r: CaseResult) -> str:
    esc = html.escape
    layers = "".join(
        f"<li>{esc(name)}: <b>{esc(lay.verdict)}</b> {esc(json.dumps(lay.metrics))}"
        + "".join(f"<br>{esc(f)}" for f in lay.failures) + "</li>"
        for name, lay in r.layers.items()
    )
    notes = "".join(f"<li>{esc(n)}</li>" for n in r.notes)
    side = ""
    if r.reference and r.candidate:
        keys = [k for k in r.reference if k != "error"]
        side = "<table><tr><th></th><th>lme4</th><th>" + esc(r.engine) + "</th></tr>" + "".join(
            f"<tr><td>{esc(k)}</td><td><pre>{esc(json.dumps(r.reference[k], indent=1))}</pre></td>"
            f"<td><pre>{esc(json.dumps(r.candidate[k], indent=1))}</pre></td></tr>" for k in keys) + "</table>"
    return (f"<details><summary>{esc(r.case_id)} [{esc(r.engine)}]: {esc(r.verdict)}</summary>"
            f"<ul>{layers}{notes}</ul>{side}</details>")
