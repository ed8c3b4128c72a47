"""The run's report: a terminal table, report.json and a self-contained report.html."""
from __future__ import annotations

import html
import json
import math
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


# Most serious first: the order of the report's table, and each verdict's colour.
VERDICT_ORDER = ("error", "fail", "known difference", "lme4 unreliable", "unsupported", "pylme better", "pass", "n/a")
COLOURS = {"error": "#f4a6a6", "fail": "#f4a6a6", "known difference": "#fde3a7", "lme4 unreliable": "#dde4f0",
           "unsupported": "#e6e6e6", "pylme better": "#b7e4c7", "pass": "#cdeccd", "n/a": "#ffffff"}
STYLE = """
body { font-family: sans-serif; margin: 1.5em; } table { border-collapse: collapse; margin: 4px 0; }
td, th { border: 1px solid #ccc; padding: 2px 6px; font-size: 13px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-family: monospace; } details { margin: 4px 0; } h3 { font-size: 14px; margin: 6px 0 2px; }
""" + "".join(f"td.v{i}, span.v{i} {{ background: {c}; }}\n" for i, c in enumerate(COLOURS.values()))


def _rank(verdict: str) -> int:
    return VERDICT_ORDER.index(verdict) if verdict in VERDICT_ORDER else 0


def _verdict_cell(verdict: str, tag: str = "td") -> str:
    cls = f"v{list(COLOURS).index(verdict)}" if verdict in COLOURS else "v0"
    return f'<{tag} class="{cls}">{html.escape(verdict)}</{tag}>'


def _html(results: list[CaseResult], meta: dict) -> str:
    """The page: the summary, a plot of every measured difference against its tolerance, the
    table of cases (most serious verdict first, coloured by verdict), the tolerances, and each
    case's layers and numbers."""
    esc = html.escape
    ordered = sorted(results, key=lambda r: (_rank(r.verdict), r.case_id, r.engine))
    all_rows = rows(ordered)
    head = "".join(f"<th>{esc(c)}</th>" for c in all_rows[0]) if all_rows else ""
    trs = []
    for row in all_rows:
        cells = "".join(_verdict_cell(v) if c in LAYERS or c == "verdict" else f"<td>{esc(v)}</td>"
                        for c, v in row.items())
        trs.append(f"<tr>{cells}</tr>")
    tol_rows = "".join(f"<tr><td>{esc(k)}</td><td>{v['value']:g}</td><td>{esc(v['reason'])}</td></tr>"
                       for k, v in meta["tolerances"].items())
    counts = {}
    for r in results:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    legend = " ".join(f'{_verdict_cell(v, "span")} {counts[v]}' for v in VERDICT_ORDER if v in counts)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>pylme conformance report</title>
<style>{STYLE}</style></head><body>
<h1>pylme conformance report</h1>
<p>{legend} ({len(results)} results). Reference: {esc(meta['reference'])} ({esc(meta['reference_versions'])});
pylme {esc(meta['pylme'])}, Python {esc(meta['python'])}; {esc(meta['date'])}.</p>
<h2>Differences against their tolerances</h2>
<p>Each dot is one case's largest difference in a layer divided by its tolerance (log scale):
left of the line passes, right of it fails. Colours are the case's verdict.</p>
{_overview_svg(ordered)}
<h2>Cases</h2>
<table><tr>{head}</tr>
{''.join(trs)}
</table>
<h2>Tolerances</h2><table><tr><th>name</th><th>value</th><th>reason</th></tr>{tol_rows}</table>
<h2>Each case</h2>
{chr(10).join(_details(r) for r in ordered)}
</body></html>
"""


def _ratios(layer) -> dict[str, float]:
    """Each checked metric of a layer as a multiple of its tolerance."""
    out = {}
    for name, limit in layer.limits.items():
        value = abs(layer.metrics.get(name, float("nan")))
        out[name] = value / limit if limit > 0 else float("inf")
    return out


def _x(ratio: float, width: float = 480.0) -> float:
    """Position of a ratio on the plots' log axis, 1e-12 to 1e4 (the tolerance, 1, at 3/4),
    right of the labels' 200 pixels."""
    if ratio != ratio:  # NaN: drawn at the far right, as it fails
        ratio = 1e4
    lg = min(max(math.log10(max(ratio, 1e-12)), -12.0), 4.0)
    return 200 + (lg + 12) / 16 * width


def _axis(height: float) -> str:
    ticks = "".join(f'<line x1="{_x(10.0 ** e):.1f}" y1="0" x2="{_x(10.0 ** e):.1f}" y2="{height}" stroke="#eee"/>'
                    f'<text x="{_x(10.0 ** e):.1f}" y="{height + 12}" font-size="10" text-anchor="middle">1e{e}</text>'
                    for e in range(-12, 5, 2))
    one = f'<line x1="{_x(1.0):.1f}" y1="0" x2="{_x(1.0):.1f}" y2="{height}" stroke="#c00" stroke-width="1.5"/>'
    return ticks + one


def _overview_svg(results: list[CaseResult]) -> str:
    height = 24 * len(LAYERS)
    dots = []
    for r in results:
        colour = COLOURS.get(r.verdict, "#999")
        for i, name in enumerate(LAYERS):
            layer = r.layers.get(name)
            ratios = _ratios(layer) if layer else {}
            if ratios:
                worst = max(ratios.values(), key=lambda v: v if v == v else math.inf)
                title = html.escape(f"{r.case_id} [{r.engine}]: {worst:.3g} of the tolerance")
                dots.append(f'<circle cx="{_x(worst):.1f}" cy="{24 * i + 12}" r="3.5" fill="{colour}" '
                            f'stroke="#555" stroke-width="0.5"><title>{title}</title></circle>')
    labels = "".join(f'<text x="4" y="{24 * i + 16}" font-size="12">{html.escape(n)}</text>' for i, n in enumerate(LAYERS))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="700" height="{height + 18}">'
            f"{_axis(height)}{labels}{''.join(dots)}</svg>")


def _case_svg(r: CaseResult) -> str:
    bars = [(f"{name}: {metric}", ratio) for name, layer in r.layers.items() for metric, ratio in _ratios(layer).items()]
    if not bars:
        return ""
    height = 14 * len(bars)
    items = []
    for i, (label, ratio) in enumerate(bars):
        colour = "#d9534f" if not ratio <= 1 else "#5cb85c"
        items.append(f'<rect x="{_x(1e-12):.1f}" y="{14 * i + 2}" width="{_x(ratio) - _x(1e-12):.1f}" height="10" '
                     f'fill="{colour}"><title>{html.escape(f"{label}: {ratio:.3g} of the tolerance")}</title></rect>'
                     f'<text x="{_x(1e-12) - 4:.1f}" y="{14 * i + 11}" font-size="9" text-anchor="end">'
                     f"{html.escape(label[:40])}</text>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="700" height="{height + 18}">'
            f"{_axis(height)}{''.join(items)}</svg>")


def _num(x) -> str:
    return html.escape(json.dumps(x) if isinstance(x, (int, float, bool)) or x is None else str(x))


def _layer_table(layer) -> str:
    esc = html.escape
    body = "".join(
        f"<tr><td>{esc(metric)}</td><td class=num>{value:.3g}</td>"
        f"<td class=num>{'' if metric not in layer.limits else format(layer.limits[metric], '.0e')}</td></tr>"
        for metric, value in layer.metrics.items())
    failures = "".join(f"<li>{esc(f)}</li>" for f in layer.failures)
    notes = "".join(f"<li>{esc(n)}</li>" for n in layer.notes)
    return (f"<h3>{esc(layer.name)}: {_verdict_cell(layer.verdict, 'span')}</h3>"
            + (f"<table><tr><th>measured</th><th>difference</th><th>tolerance</th></tr>{body}</table>" if body else "")
            + (f"<ul>{failures}{notes}</ul>" if failures or notes else ""))


def _flat(record: dict) -> dict[str, object]:
    """A record's numbers one per line: theta[1], beta[(Intercept)], ..."""
    out: dict[str, object] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update({f"{key}[{k}]": v for k, v in value.items()})
        elif isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
            out.update({f"{key}[{i + 1}]": v for i, v in enumerate(value)})
        else:
            out[key] = "; ".join(map(str, value)) if isinstance(value, list) else value
    return out


def _side_by_side(r: CaseResult) -> str:
    if not (r.reference and r.candidate):
        return ""
    ref, cand = _flat({k: v for k, v in r.reference.items() if k != "error"}), _flat(r.candidate)
    lines = []
    for key, a in ref.items():
        b = cand.get(key)
        diff = ""
        if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
            diff = f"{b - a:.3g}"
        lines.append(f"<tr><td>{html.escape(key)}</td><td class=num>{_num(a)}</td><td class=num>{_num(b)}</td>"
                     f"<td class=num>{diff}</td></tr>")
    return (f"<h3>lme4 and {html.escape(r.engine)}</h3><table><tr><th></th><th>lme4</th><th>{html.escape(r.engine)}</th>"
            f"<th>{html.escape(r.engine)} - lme4</th></tr>{''.join(lines)}</table>")


def _details(r: CaseResult) -> str:
    esc = html.escape
    notes = "".join(f"<li>{esc(n)}</li>" for n in r.notes)
    return (f"<details><summary>{_verdict_cell(r.verdict, 'span')} {esc(r.case_id)} [{esc(r.engine)}]</summary>"
            + (f"<ul>{notes}</ul>" if notes else "")
            + _case_svg(r)
            + "".join(_layer_table(layer) for layer in r.layers.values())
            + _side_by_side(r) + "</details>")
