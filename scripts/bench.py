"""Benchmark: pylme and lme4 side by side, in one process run, on the same data.

For each model: pylme's time (formula to fitted object), lme4's time (only the ``lmer`` call in
R, timed inside R), their ratio, the difference of the criteria, pylme's objective evaluations
and pylme's peak memory (tracemalloc, Python allocations). Small models report medians of
several runs. Writes ``reports/bench/bench.json`` and ``bench.png`` (time against n).

    .venv/bin/python scripts/bench.py                 # all models
    .venv/bin/python scripts/bench.py --models sleepstudy,instevalsub --repeat 5
    .venv/bin/python scripts/bench.py --method blocked  # pylme's blocked-Cholesky objective

No timing is asserted anywhere in the test suite; this script is the record.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc
import warnings
from pathlib import Path

import pylme

MODELS = {
    "dyestuff": ("Dyestuff", "Yield ~ 1 + (1 | Batch)", True),
    "sleepstudy": ("sleepstudy", "Reaction ~ Days + (Days | Subject)", True),
    "penicillin": ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", True),
    "classroom": ("classroom", "mathgain ~ mathkind + minority + ses + (1 | classid) + (1 | schoolid)", True),
    "insteval_reml": ("InstEval", "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)", True),
    "insteval_ml": ("InstEval", "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)", False),
    "insteval_slopes_ml": ("InstEval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept) + (0 + service | dept)", False),
}


def time_pylme(data, formula: str, REML: bool, repeat: int, method: str) -> dict:
    control = pylme.lmerControl(method=method)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fm = pylme.lmer(formula, data, REML=REML, control=control)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pylme.lmer(formula, data, REML=REML, control=control)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    crit = fm.REMLcrit() if REML else fm.deviance(REML=False)
    return {"time": statistics.median(times), "criterion": crit, "evals": fm.opt.summary.feval,
            "peak_mb": peak / 2**20}


def time_lme4(data, formula: str, REML: bool, repeat: int) -> dict:
    """lme4's lmer call timed inside R (data conversion excluded)."""
    import rpy2.robjects as ro
    import r_reference

    r_reference._bridge()
    ro.globalenv["bench_data"] = r_reference._frame_to_r(data)
    ro.globalenv["bench_formula"] = ro.r["as.formula"](formula)
    out = ro.r(f"""local({{
        suppressMessages(library(lme4))
        times <- numeric({repeat})
        for (i in seq_len({repeat})) {{
            t0 <- proc.time()[["elapsed"]]
            fm <- suppressWarnings(suppressMessages(lmer(bench_formula, bench_data, REML = {str(REML).upper()})))
            times[i] <- proc.time()[["elapsed"]] - t0
        }}
        c(median(times), if ({str(REML).upper()}) REMLcrit(fm) else deviance(fm))
    }})""")
    return {"time": float(out[0]), "criterion": float(out[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--repeat", type=int, default=5, help="runs per small model (large ones run once)")
    parser.add_argument("--method", default="cholmod", choices=["cholmod", "blocked", "auto"])
    parser.add_argument("--out", default="reports/bench")
    args = parser.parse_args()
    rows = []
    print(f"{'model':20s} {'n':>7s} {'pylme s':>9s} {'lme4 s':>9s} {'ratio':>7s} {'d crit':>9s} {'evals':>6s} {'peak MB':>8s}")
    for name in args.models.split(","):
        dataset, formula, REML = MODELS[name]
        data = pylme.datasets.load(dataset)
        repeat = args.repeat if len(data) < 10_000 else 1
        py = time_pylme(data, formula, REML, repeat, args.method)
        r = time_lme4(data, formula, REML, repeat)
        row = {"model": name, "dataset": dataset, "formula": formula, "REML": REML, "n": len(data),
               "pylme": py, "lme4": r, "ratio": r["time"] / py["time"],
               "d_criterion_rel": (py["criterion"] - r["criterion"]) / abs(r["criterion"])}
        rows.append(row)
        print(f"{name:20s} {len(data):7d} {py['time']:9.4f} {r['time']:9.4f} {row['ratio']:7.2f} "
              f"{row['d_criterion_rel']:9.1e} {py['evals']:6d} {py['peak_mb']:8.1f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps({"method": args.method, "rows": rows}, indent=1) + "\n")
    _plot(rows, out / "bench.png")
    print(f"written {out / 'bench.json'} and {out / 'bench.png'}")


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    n = [r["n"] for r in rows]
    ax.loglog(n, [r["pylme"]["time"] for r in rows], "o", label="pylme")
    ax.loglog(n, [r["lme4"]["time"] for r in rows], "s", label="lme4 1.1-31")
    for r in rows:
        ax.annotate(r["model"], (r["n"], r["pylme"]["time"]), fontsize=7)
    ax.set_xlabel("observations")
    ax.set_ylabel("seconds per fit")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
