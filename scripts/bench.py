"""Benchmark: pylme and lme4 side by side, in one process run, on the same data.

For each model: pylme's time (formula to fitted object), lme4's time (only the ``lmer`` call in
R, timed inside R), their ratio, the difference of the criteria, pylme's objective evaluations
and pylme's peak memory (tracemalloc, Python allocations). Small models report medians of
several runs. Writes ``reports/bench/bench.json`` and ``bench.png`` (time against n).

    .venv/bin/python scripts/bench.py                 # all models
    .venv/bin/python scripts/bench.py --models sleepstudy,instevalsub --repeat 5
    .venv/bin/python scripts/bench.py --method blocked  # pylme's blocked-Cholesky objective
    .venv/bin/python scripts/bench.py --models insteval_reml,insteval_ml --optimizer L-BFGS-B  # analytic gradients
    .venv/bin/python scripts/bench.py --models sleepstudy,refit --repeat 21  # and refit(fm, simulated y)

The glmer rows (``glmer_*``) time ``pylme.glmer`` against lme4's ``glmer`` and, where it parses the
formula (not ``cbind`` or ``I()``), mixedlm's ``glmer``; ``--glmer-baseline REV`` also times
pylme's glmer as of git revision REV (its ``pylme`` extracted to a temporary folder, run in a
subprocess) in the same run, for a before/after pair under the same load:
    .venv/bin/python scripts/bench.py --models glmer_cbpp,glmer_grouseticks,glmer_contraception,glmer_verbagg --glmer-baseline main

Where installed, mixedlm (``mixedlm.lmer`` on the same formula) and statsmodels (``MixedLM`` with
the same random effects, crossed factors as variance components of one group; not classroom or
InstEval, which take minutes)
are timed as further columns. The ``refit`` row times ``refit(fm, y)`` on sleepstudy for
simulated responses y, in pylme and in lme4 (inside R). Small models report medians; lme4's
small-model times are means of 10 consecutive fits (R's clock ticks in milliseconds).
    .venv/bin/python scripts/bench.py --polish-cost     # the certified optimum's cost: polish on / off, same run
    .venv/bin/python scripts/bench.py --large           # the simulated grades and state-test designs
    .venv/bin/python scripts/bench.py --large grades --large-lme4   # and lme4 on them (may take an hour)
    .venv/bin/python scripts/bench.py --large crossed_binomial      # glmer: 1M binary responses, 50,000 x 2,000 crossed
    .venv/bin/python scripts/bench.py --many            # 20,000 responses of one model (scripts/bench_many.py)
    .venv/bin/python scripts/bench.py --potrf 8000,12000,20000 --repeat 1   # block 2's dense Cholesky by tiles (scripts/bench_potrf.py)

``--large`` fits the designs of ``conformance.large_designs`` (generated from a seed), each in its
own process, with the blocked objective; it prints the fit time, the peak resident memory of the
process, the memory the blocks were estimated to need, the criterion and the estimated standard
deviations against the simulation's truth, and writes ``large.json``.

``--bigdata state|state10|movielens|movielens2m`` fits partitioned Parquet data sets through Dask
(scripts/bench_bigdata.py): the Dask fit against the in-memory fit, client and worker memory.

No timing is asserted anywhere in the test suite; this script is the record.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
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


#: glmer rows (issue 16): data set, formula, family; pylme.glmer against lme4's glmer (Laplace)
GLMER_MODELS = {
    "glmer_cbpp": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial"),
    "glmer_grouseticks": ("grouseticks", "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
                          "poisson"),
    "glmer_contraception": ("Contraception", "use ~ age + I(age^2) + urban + livch + (1 | district)", "binomial"),
    "glmer_verbagg": ("VerbAgg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "binomial"),
}


def time_pylme_glmer(data, formula: str, family: str, repeat: int, pirls: str | None = None) -> dict:
    """pylme.glmer's median time (with ``glmerControl(pirls_factor=pirls)`` when given)."""
    control = None if pirls is None else pylme.glmerControl(pirls_factor=pirls)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm = pylme.glmer(formula, data, family=family, control=control)
        times.append(time.perf_counter() - t0)
    return {"time": statistics.median(times), "criterion": gm.opt.fval,
            # every evaluation of the deviance (stages, checkConv, the finish); a revision before the counter: the stages'
            "evals": getattr(gm.objective, "nevals", sum(r.feval for r in gm.opt.runs)), "peak_mb": float("nan")}


def time_pylme_glmer_at(rev: str, name: str, repeat: int) -> dict:
    """``time_pylme_glmer`` for the glmer row ``name`` with pylme as of git revision ``rev``, in a
    subprocess whose path starts at that revision's ``pylme`` package."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "archive", rev, "pylme"], cwd=root, capture_output=True, check=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        tarfile.open(fileobj=io.BytesIO(archive)).extractall(tmp, filter="data")
        cmd = [sys.executable, __file__, "--glmer-one", name, "--repeat", str(repeat)]
        out = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": tmp}, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_mixedlm_glmer(formula: str, data, family: str, repeat: int) -> dict | None:
    """The mixedlm package's glmer on the same formula and data; None when it is not installed or
    cannot fit the formula (its parser takes neither ``cbind`` nor ``I()``)."""
    try:
        import mixedlm
    except ImportError:
        return None
    fam = {"binomial": mixedlm.families.Binomial, "poisson": mixedlm.families.Poisson}[family]()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = mixedlm.glmer(formula, data, family=fam)
        except ValueError:
            return None
        times.append(time.perf_counter() - t0)
    return {"time": statistics.median(times), "criterion": float(res.deviance)}


def time_lme4_glmer(data, formula: str, family: str, repeat: int) -> dict:
    """lme4's glmer call timed inside R (data conversion excluded), median over ``repeat`` runs;
    the criterion is -2 logLik (the optimised deviance)."""
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
            fm <- suppressWarnings(suppressMessages(glmer(bench_formula, bench_data, family = {family})))
            times[i] <- proc.time()[["elapsed"]] - t0
        }}
        c(median(times), -2 * as.numeric(logLik(fm)))
    }})""")
    return {"time": float(out[0]), "criterion": float(out[1])}


def time_pylme(data, formula: str, REML: bool, repeat: int, method: str, optimizer: str = "nloptwrap") -> dict:
    control = pylme.lmerControl(method=method, optimizer=optimizer)
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


#: the models whose polish cost ``--polish-cost`` reports (issue 14): lmer's and glmer's
POLISH_MODELS = ("sleepstudy", "penicillin", "classroom", "insteval_reml", "glmer_cbpp", "glmer_grouseticks",
                 "glmer_contraception", "glmer_verbagg")


def _polish_fit(name: str, data, on: bool):
    """The model ``name`` (MODELS' lmer rows, GLMER_MODELS' glmer rows) fitted with the finish on or off."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name in GLMER_MODELS:
            _, formula, family = GLMER_MODELS[name]
            return pylme.glmer(formula, data, family=family, control=pylme.glmerControl(polish=on))
        _, formula, REML = MODELS[name]
        return pylme.lmer(formula, data, REML=REML, control=pylme.lmerControl(polish=on))


def polish_cost(names: list[str], repeat: int, out: Path) -> None:
    """pylme's fit time with the finish and certificate (pylme.fitting.polish) and without
    (``lmerControl(polish=False)``, ``glmerControl(polish=False)``), interleaved in one run; medians,
    their ratio, the certificate's verdict and the evaluations it cost, beside the optimisers'. A glmer
    fit certifies its end with polish off too (the extrapolated gradient: 2 n evaluations), so its
    ratio is the finish's cost alone. Writes ``polish.json``."""
    rows = []
    for name in names:
        data = pylme.datasets.load((GLMER_MODELS[name] if name in GLMER_MODELS else MODELS[name])[0])
        runs = repeat if len(data) < 10_000 else max(1, repeat // 3)
        times: dict[bool, list[float]] = {True: [], False: []}
        fits = {}
        for _ in range(runs):
            for on in (False, True):
                t0 = time.perf_counter()
                fits[on] = _polish_fit(name, data, on)
                times[on].append(time.perf_counter() - t0)
        cert = fits[True].optinfo.certificate
        row = {"model": name, "n": len(data), "runs": runs, "off": statistics.median(times[False]),
               "on": statistics.median(times[True]), "verdict": cert.verdict, "evaluations": cert.evaluations,
               "steps": cert.steps, "d_criterion": cert.criterion - cert.criterion_path, "theta_moved": cert.moved,
               "optimiser_evaluations": sum(r.feval for r in fits[True].opt.runs)}
        row["ratio"] = row["on"] / row["off"]
        rows.append(row)
        print(f"{name:15s} n={row['n']:7d} off {row['off']:8.4f} s  on {row['on']:8.4f} s  ratio {row['ratio']:.3f}  "
              f"{cert.verdict}; {cert.evaluations} evaluations (the optimisers': {row['optimiser_evaluations']}); "
              f"criterion {row['d_criterion']:+.2e}; theta moved {cert.moved:.1e}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "polish.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"written {out / 'polish.json'}")


def time_lme4(data, formula: str, REML: bool, repeat: int, inner: int = 1) -> dict:
    """lme4's lmer call timed inside R (data conversion excluded): the median over ``repeat``
    runs of the mean time of ``inner`` consecutive fits (R's clock ticks in milliseconds)."""
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
            for (k in seq_len({inner}))
                fm <- suppressWarnings(suppressMessages(lmer(bench_formula, bench_data, REML = {str(REML).upper()})))
            times[i] <- (proc.time()[["elapsed"]] - t0) / {inner}
        }}
        c(median(times), if ({str(REML).upper()}) REMLcrit(fm) else deviance(fm))
    }})""")
    return {"time": float(out[0]), "criterion": float(out[1])}


def simulated_responses(fm, k: int, seed: int = 1) -> list:
    """k responses simulated from a fit: fitted values plus normal noise with its sigma."""
    import numpy as np

    rng = np.random.default_rng(seed)
    mu = fm.fitted().to_numpy()
    return [mu + rng.normal(0.0, fm.sigma(), mu.size) for _ in range(k)]


def time_refit(data, formula: str, REML: bool, repeat: int, inner: int) -> dict:
    """``refit(fm, y)`` for simulated responses y: pylme's median over ``repeat`` responses, lme4's
    median over the same responses of the mean of ``inner`` refits (timed inside R)."""
    import rpy2.robjects as ro
    import r_reference

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(formula, data, REML=REML)
        ys = simulated_responses(fm, repeat)
        times = []
        for y in ys:
            t0 = time.perf_counter()
            fm.refit(y)
            times.append(time.perf_counter() - t0)
    r_reference._bridge()
    ro.globalenv["bench_data"] = r_reference._frame_to_r(data)
    ro.globalenv["bench_formula"] = ro.r["as.formula"](formula)
    ro.globalenv["bench_ys"] = ro.r["matrix"](ro.FloatVector([v for y in ys for v in y]), nrow=len(ys[0]))
    r_time = ro.r(f"""local({{
        suppressMessages(library(lme4))
        fm <- lmer(bench_formula, bench_data, REML = {str(REML).upper()})
        times <- numeric(ncol(bench_ys))
        for (i in seq_len(ncol(bench_ys))) {{
            t0 <- proc.time()[["elapsed"]]
            for (k in seq_len({inner})) fit <- suppressWarnings(suppressMessages(refit(fm, bench_ys[, i])))
            times[i] <- (proc.time()[["elapsed"]] - t0) / {inner}
        }}
        median(times)
    }})""")
    return {"pylme": statistics.median(times), "lme4": float(r_time[0])}


#: statsmodels' MixedLM for the models it can express: (fixed formula, groups, re_formula, vc_formula).
#: Not run: classroom (classid as a variance component within schoolid: 230 s for one fit here) and
#: InstEval (crossed factors with thousands of levels: no fit in 10 minutes, see the speed issue).
STATSMODELS = {
    "dyestuff": ("Yield ~ 1", "Batch", None, None),
    "sleepstudy": ("Reaction ~ Days", "Subject", "~Days", None),
    "penicillin": ("diameter ~ 1", None, "0", {"plate": "0 + C(plate)", "sample": "0 + C(sample)"}),
}


def time_statsmodels(name: str, data, REML: bool, repeat: int) -> dict | None:
    """statsmodels' MixedLM on the same model (a single group for crossed factors), or None."""
    try:
        import numpy as np
        import statsmodels.formula.api as smf
    except ImportError:
        return None
    if name not in STATSMODELS:
        return None
    fixed, groups, re_formula, vc = STATSMODELS[name]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = np.ones(len(data)) if groups is None else data[groups]
            res = smf.mixedlm(fixed, data, groups=g, re_formula=re_formula, vc_formula=vc).fit(reml=REML)
        times.append(time.perf_counter() - t0)
    return {"time": statistics.median(times), "criterion": -2.0 * float(res.llf)}


def time_mixedlm(formula: str, data, REML: bool, repeat: int) -> dict | None:
    """The mixedlm package's lmer on the same formula and data, or None when not installed."""
    try:
        import mixedlm
    except ImportError:
        return None
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = mixedlm.lmer(formula, data, REML=REML)
        times.append(time.perf_counter() - t0)
    return {"time": statistics.median(times), "criterion": float(res.deviance)}


LARGE = ("grades", "state_test")


def large_one(name: str, method: str, with_lme4: bool) -> dict:
    """Fit one large design in this process: times, peak RSS, estimated memory, estimates vs truth."""
    from conformance import large_designs

    t0 = time.perf_counter()
    des = getattr(large_designs, name)()
    generated = time.perf_counter() - t0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if "family" in des.truth:
        return large_glmer_one(des, generated, rss0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(des.formula, des.data, REML=des.REML, control=pylme.lmerControl(method=method))
    fit = time.perf_counter() - t0
    plan = fm.objective.memory_plan()
    sd = dict(zip([t.group for t in fm.lmod.reTrms.terms], (fm.theta * fm.sigma()).tolist()))
    row = {"model": name, "formula": des.formula, "n": len(des.data), "generate_s": generated, "fit_s": fit,
           "evals": fm.opt.summary.feval, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
           "rss_before_fit_gb": rss0,
           "estimated_blocks_gb": fm.objective.planned_bytes() / 2**30 if plan else None,
           "memory_plan": plan or None,
           "criterion": fm.REMLcrit() if des.REML else fm.deviance(REML=False),
           "sd": sd, "sigma": fm.sigma(), "truth": {"sd": des.truth["sd"], "sigma": des.truth["sigma"]}}
    if with_lme4:
        row["lme4"] = time_lme4(des.data, des.formula, des.REML, 1)
    return row


def large_glmer_one(des, generated: float, rss0: float) -> dict:
    """A large glmer design (``crossed_binomial``): pylme.glmer with PIRLS's two-block factor; time,
    evaluations per stage, peak RSS, estimates against the simulation's truth."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = pylme.glmer(des.formula, des.data, family=des.truth["family"],
                         control=pylme.glmerControl(pirls_factor="auto"))
    fit = time.perf_counter() - t0
    return {"model": des.name, "formula": des.formula, "n": len(des.data), "generate_s": generated, "fit_s": fit,
            "evals": [r.feval for r in gm.opt.runs], "deviance_evals": gm.objective.nevals, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "rss_before_fit_gb": rss0, "criterion": gm.opt.fval,
            "sd": dict(zip([t.group for t in gm.lmod.reTrms.terms], gm.theta.tolist())),
            "beta": dict(zip(gm.fixef().index, gm.fixef().tolist())), "truth": des.truth}


def run_large(names: list[str], method: str, with_lme4: bool, out: Path) -> None:
    """Each large design in a child process (its own peak memory)."""
    rows = []
    for name in names:
        cmd = [sys.executable, __file__, "--large-one", name, "--method", method] + (["--large-lme4"] if with_lme4 else [])
        done = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if done.returncode:
            print(f"{name}: failed\n{done.stderr[-2000:]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        if "beta" in row:  # a glmer design
            print(f"{name}: n={row['n']} fit {row['fit_s']:.1f} s (evaluations per stage {row['evals']}, "
                  f"{row['deviance_evals']} in all), peak RSS "
                  f"{row['peak_rss_gb']:.2f} GB, deviance {row['criterion']:.4f}; sd {row['sd']}, beta {row['beta']} "
                  f"(truth {row['truth']})")
            continue
        print(f"{name}: n={row['n']} fit {row['fit_s']:.1f} s ({row['evals']} evaluations), peak RSS "
              f"{row['peak_rss_gb']:.2f} GB (data {row['rss_before_fit_gb']:.2f} GB; blocks estimated "
              f"{row['estimated_blocks_gb'] or 0:.2f} GB), criterion {row['criterion']:.4f}")
        print("  sd " + ", ".join(f"{g} {v:.4f} (truth {row['truth']['sd'][g]})" for g, v in row["sd"].items())
              + f", sigma {row['sigma']:.4f} (truth {row['truth']['sigma']})")
        if "lme4" in row:
            print(f"  lme4 {row['lme4']['time']:.1f} s, criterion {row['lme4']['criterion']:.4f}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "large.json").write_text(json.dumps({"method": method, "rows": rows}, indent=1) + "\n")
    print(f"written {out / 'large.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join([*MODELS, "refit", *GLMER_MODELS]))
    parser.add_argument("--repeat", type=int, default=5, help="runs per small model (large ones run once)")
    parser.add_argument("--method", default=None, choices=["cholmod", "dense", "blocked", "auto"],
                        help="pylme's objective (default: auto, pylme's default; blocked with --large)")
    parser.add_argument("--optimizer", default="nloptwrap", choices=["nloptwrap", "L-BFGS-B"],
                        help="pylme's optimiser (default: nloptwrap, lme4's BOBYQA and path)")
    parser.add_argument("--out", default="reports/bench")
    parser.add_argument("--large", nargs="?", const=",".join(LARGE), default=None,
                        help="fit the large simulated designs (comma-separated, default all) instead of --models")
    parser.add_argument("--large-lme4", action="store_true", help="also fit the large designs with lme4")
    parser.add_argument("--large-one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--glmer-one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--glmer-pirls", default=None, choices=["cholmod", "blocked", "auto"],
                        help="glmer rows: glmerControl(pirls_factor=...) for pylme (default: pylme's default)")
    parser.add_argument("--glmer-baseline", default=None, metavar="REV",
                        help="glmer rows: also time pylme as of this git revision, in the same run")
    parser.add_argument("--polish-cost", nargs="?", const=",".join(POLISH_MODELS), default=None,
                        help="time fits with and without the finish and certificate (pylme.fitting.polish)")
    parser.add_argument("--many", nargs="?", type=int, const=20_000, default=None,
                        help="lmer_many on this many simulated responses (default 20,000) against loops of lme4, "
                             "refit and mixedlm (scripts/bench_many.py), instead of --models")
    parser.add_argument("--subset", type=int, default=500, help="--many: responses the lme4 and pylme loops fit")
    parser.add_argument("--subset-mixedlm", type=int, default=100, help="--many: responses the mixedlm loop fits")
    parser.add_argument("--bigdata", default=None, choices=["state", "state10", "movielens", "movielens2m"],
                        help="fit a partitioned Parquet data set through Dask (scripts/bench_bigdata.py)")
    parser.add_argument("--data", default="reports/bigdata", help="where --bigdata writes its Parquet data sets")
    parser.add_argument("--memory-limit", type=float, default=None, metavar="BYTES",
                        help="--bigdata: lmerControl(memory_limit=) of the fits (1.5e9 makes movielens2m form block 2 "
                             "from A21 each evaluation: its cross map does not fit)")
    parser.add_argument("--potrf", default=None, metavar="ORDERS",
                        help="time block 2's dense Cholesky by tiles against one dpotrf at these orders "
                             "(scripts/bench_potrf.py), e.g. 8000,12000,20000")
    args = parser.parse_args()
    if args.potrf:
        import bench_potrf

        bench_potrf.run([int(n) for n in args.potrf.split(",")], args.repeat, Path(args.out))
        return
    if args.bigdata:
        import bench_bigdata

        bench_bigdata.run(args.bigdata, Path(args.data), Path(args.out), args.memory_limit)
        return
    if args.many:
        import bench_many

        bench_many.run(args.many, args.subset, args.subset_mixedlm, Path(args.out))
        return
    if args.glmer_one:
        dataset, formula, family = GLMER_MODELS[args.glmer_one]
        print(json.dumps(time_pylme_glmer(pylme.datasets.load(dataset), formula, family, min(args.repeat, 3))))
        return
    if args.large_one:
        print(json.dumps(large_one(args.large_one, args.method or "blocked", args.large_lme4)))
        return
    if args.polish_cost:
        polish_cost(args.polish_cost.split(","), args.repeat, Path(args.out))
        return
    if args.large:
        run_large(args.large.split(","), args.method or "blocked", args.large_lme4, Path(args.out))
        return
    args.method = args.method or "auto"
    rows = []
    for name in args.models.split(","):
        if name == "refit":
            dataset, formula, REML = MODELS["sleepstudy"]
            t = time_refit(pylme.datasets.load(dataset), formula, REML, args.repeat, inner=10)
            rows.append({"model": "refit", "dataset": dataset, "formula": formula, "REML": REML, **t,
                         "ratio": t["lme4"] / t["pylme"]})
            continue
        if name in GLMER_MODELS:
            dataset, formula, family = GLMER_MODELS[name]
            data = pylme.datasets.load(dataset)
            repeat = min(args.repeat, 3)
            py, r = time_pylme_glmer(data, formula, family, repeat, args.glmer_pirls), time_lme4_glmer(data, formula, family, repeat)
            row = {"model": name, "dataset": dataset, "formula": formula, "REML": False, "n": len(data),
                   "pylme": py, "lme4": r, "ratio": r["time"] / py["time"], "glmer": True,
                   "d_criterion_rel": (py["criterion"] - r["criterion"]) / abs(r["criterion"])}
            if args.glmer_baseline:
                before = time_pylme_glmer_at(args.glmer_baseline, name, repeat)
                row["baseline"] = {"rev": args.glmer_baseline, **before, "ratio": r["time"] / before["time"]}
            rows.append(row)
            continue
        dataset, formula, REML = MODELS[name]
        data = pylme.datasets.load(dataset)
        small = len(data) < 10_000
        repeat = args.repeat if small else 1
        py = time_pylme(data, formula, REML, repeat, args.method, args.optimizer)
        r = time_lme4(data, formula, REML, repeat, inner=10 if small else 1)
        rows.append({"model": name, "dataset": dataset, "formula": formula, "REML": REML, "n": len(data),
                     "pylme": py, "lme4": r, "ratio": r["time"] / py["time"],
                     "d_criterion_rel": (py["criterion"] - r["criterion"]) / abs(r["criterion"])})
    # the other engines last: right after a mixedlm fit pylme's timings double here (mixedlm's worker
    # threads stay busy for a while), so they must not run between pylme's and lme4's
    for row in rows:
        if row.get("glmer"):
            dataset, formula, family = GLMER_MODELS[row["model"]]
            row["mixedlm"] = time_mixedlm_glmer(formula, pylme.datasets.load(dataset), family, min(args.repeat, 3))
        elif row["model"] != "refit":
            data, repeat = pylme.datasets.load(row["dataset"]), args.repeat if row["n"] < 10_000 else 1
            row["mixedlm"] = time_mixedlm(row["formula"], data, row["REML"], repeat)
            row["statsmodels"] = time_statsmodels(row["model"], data, row["REML"], repeat)
    _print_table(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps({"method": args.method, "optimizer": args.optimizer, "rows": rows}, indent=1) + "\n")
    _plot([r for r in rows if "n" in r], out / "bench.png")
    print(f"written {out / 'bench.json'} and {out / 'bench.png'}")


def _print_table(rows: list[dict]) -> None:
    print(f"{'model':20s} {'n':>7s} {'pylme s':>9s} {'lme4 s':>9s} {'ratio':>7s} {'mixedlm s':>10s} "
          f"{'statsm. s':>10s} {'d crit':>9s} {'evals':>6s} {'peak MB':>8s}")
    for row in rows:
        if row["model"] == "refit":
            print(f"{'refit (sleepstudy)':20s} {'':7s} {row['pylme']:9.4f} {row['lme4']:9.4f} {row['ratio']:7.2f}")
            continue
        py, r = row["pylme"], row["lme4"]
        cols = [f"{row[e]['time']:10.4f}" if row.get(e) else f"{'n/a':>10s}" for e in ("mixedlm", "statsmodels")]
        print(f"{row['model']:20s} {row['n']:7d} {py['time']:9.4f} {r['time']:9.4f} {row['ratio']:7.2f} {cols[0]} "
              f"{cols[1]} {row['d_criterion_rel']:9.1e} {py['evals']:6d} {py['peak_mb']:8.1f}")
        if row.get("baseline"):
            b = row["baseline"]
            print(f"{'  at ' + b['rev']:20s} {'':7s} {b['time']:9.4f} {r['time']:9.4f} {b['ratio']:7.2f}")


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    n = [r["n"] for r in rows]
    ax.loglog(n, [r["pylme"]["time"] for r in rows], "o", label="pylme")
    ax.loglog(n, [r["lme4"]["time"] for r in rows], "s", label="lme4 1.1-31")
    for engine, marker in (("mixedlm", "^"), ("statsmodels", "v")):
        pts = [(r["n"], r[engine]["time"]) for r in rows if r.get(engine)]
        if pts:
            ax.loglog(*zip(*pts), marker, label=engine)
    for r in rows:
        ax.annotate(r["model"], (r["n"], r["pylme"]["time"]), fontsize=7)
    ax.set_xlabel("observations")
    ax.set_ylabel("seconds per fit")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
