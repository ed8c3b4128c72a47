"""Running the corpus: each case through the reference (live lme4 or its golden records) and
each engine, judged by conformance.compare; in parallel with --jobs."""
from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from .cases import Case
from .compare import CaseResult, compare
from .engines import make_engine
from .outcomes import Unsupported


@dataclass(frozen=True)
class RunSpec:
    reference: str  # "lme4" (live) or "golden"
    engines: tuple[str, ...]


def run_case(case: Case, spec: RunSpec) -> list[CaseResult]:
    """One case: the reference record, then each engine's record compared with it."""
    try:
        data = case.load_data()
        ref = make_engine(spec.reference).fit(case, data)
    except Exception as exc:  # a broken case is reported as that case's result, never ends the run
        return [CaseResult(case.id, name, "error", notes=[f"reference failed: {type(exc).__name__}: {exc}"])
                for name in spec.engines]
    return [_judge(case, data, ref, name) for name in spec.engines]


def _judge(case: Case, data, ref, name: str) -> CaseResult:
    try:
        engine = make_engine(name)
        cand = engine.fit(case, data)
        values = at = evidence = None
        if engine.exposes_objective and not ref.error and not cand.error:
            values = engine.objective(case, data, [p["theta"] for p in ref.devfun_at])
            at = (engine.at_theta(case, data, ref.theta, list(ref.beta.values()), ref.family_theta) if case.is_glmer
                  else engine.at_theta(case, data, ref.theta))
            if not case.is_glmer and len(ref.theta) == len(cand.theta):
                evidence = engine.evidence(case, data, ref.theta, cand.theta)
            elif case.is_glmer and not case.is_nb and case.nAGQ > 0 and list(ref.beta) == list(cand.beta):
                evidence = engine.evidence(case, data, list(ref.theta) + list(ref.beta.values()),
                                           list(cand.theta) + list(cand.beta.values()))
        return compare(case.id, name, ref, cand, values, at, case.lme4_unreliable, case.known_difference,
                       glmm=case.is_glmer, evidence=evidence)
    except Unsupported as exc:
        return CaseResult(case.id, name, "unsupported", notes=[str(exc)])
    except Exception as exc:
        return CaseResult(case.id, name, "error", notes=[f"{type(exc).__name__}: {exc}"])


def run_all(cases: list[Case], spec: RunSpec, jobs: int = 1, progress: bool = True) -> list[CaseResult]:
    """Every case, in corpus order, with a progress bar on a terminal."""
    from tqdm import tqdm

    bar = tqdm(total=len(cases), desc="conformance", unit="case", disable=not (progress and sys.stderr.isatty()))
    results: list[CaseResult] = []
    if jobs <= 1:
        for case in cases:
            bar.set_postfix_str(case.id)
            results += run_case(case, spec)
            bar.update()
    else:
        # spawned, not forked, workers: a fork of a process that has started R (rpy2) can deadlock
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for out in pool.map(run_case, cases, [spec] * len(cases)):
                results += out
                bar.update()
    bar.close()
    return results
