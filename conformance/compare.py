"""The layered comparison of an engine's fit with lme4's, each layer reported on its own so a
failure says where the numbers part:

1. objective: the engine's criterion at lme4's thetas (including lme4's optimum);
2. at lme4's theta: everything derived with lme4's theta-hat installed in the engine;
3. full fit: the engine's own optimum against lme4's;
4. inference (cases that ask for it): confidence intervals (Wald, profile) and lmerTest's
   tables (Satterthwaite, Kenward-Roger): profiles on the engine's own fit (they re-optimise
   anyway), the rest with lme4's theta installed (as layer 2), so that the comparison measures
   the inference computation rather than the two optimisers' stopping points.

Layers 1 and 2 need an engine that exposes its objective (pylme); others are judged on layer 3.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np

from pylme.fitted.extract import POSTFIT_KINDS
from pylme.fitted.record import FitRecord

from . import tolerances as tol

PASS, FAIL, NA = "pass", "fail", "n/a"
BETTER = "pylme better"
#: full-fit metrics that measure where the optimum is (the rest: names, messages, warnings, singularity)
LOCATION_METRICS = ("max_d_theta", "max_d_beta_se", "se_rel", "sigma_rel", "max_d_ranef_condsd")


@dataclass
class Layer:
    """One layer's verdict, the measured differences and what failed."""

    name: str
    verdict: str = NA
    metrics: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed_metrics: list[str] = field(default_factory=list)
    limits: dict[str, float] = field(default_factory=dict)  # each checked metric's tolerance, for the report

    def check(self, metric: str, value: float, limit: float, what: str) -> None:
        """Record a metric and fail the layer when it exceeds its limit."""
        self.metrics[metric] = float(value)
        self.limits[metric] = float(limit)
        if not (value <= limit):  # NaN fails too
            self.failures.append(f"{what}: {value:.3g} > {limit:.0e}")
            self.failed_metrics.append(metric)

    def close(self) -> "Layer":
        self.verdict = FAIL if self.failures else PASS
        return self


@dataclass
class CaseResult:
    """The comparison of one case for one engine."""

    case_id: str
    engine: str
    verdict: str  # pass, fail, known difference, lme4 unreliable, unsupported, error
    layers: dict[str, Layer] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reference: dict | None = None  # lme4's numbers shown beside the engine's in the report
    candidate: dict | None = None

    @property
    def metric(self):
        def get(layer: str, name: str) -> float | None:
            lay = self.layers.get(layer)
            return lay.metrics.get(name) if lay else None

        return get

    def to_dict(self) -> dict:
        return asdict(self)


def _max_rel(a, b, floor: float = 0.0) -> float:
    """max |a - b| relative to the scale of b (its largest magnitude, or ``floor`` if larger)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return np.inf
    if a.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(b))), float(floor))
    return float(np.max(np.abs(a - b)) / scale) if scale > 0 else float(np.max(np.abs(a - b)))


def objective_layer(ref: FitRecord, values: list[float], glmm: bool = False) -> Layer:
    """Layer 1: the engine's objective at each theta (glmer: each (theta, beta)) where lme4
    evaluated its deviance function."""
    layer = Layer("objective")
    rel = [abs(v - p["value"]) / abs(p["value"]) for v, p in zip(values, ref.devfun_at)]
    limit = (tol.GLMM_OBJECTIVE_REL if glmm else tol.OBJECTIVE_REL).value
    layer.check("max_rel", max(rel) if rel else np.nan, limit, "objective at lme4's thetas (rel.)")
    return layer.close()


def derived_layer(ref: FitRecord, at: FitRecord, glmm: bool = False) -> Layer:
    """Layer 2: beta, sigma, ranef, condVar, vcov and fitted at lme4's theta (glmer: lme4's
    (theta, beta), with the GLMM tolerances for what PIRLS and the Hessian give)."""
    layer = Layer("at_lme4_theta")
    limit = tol.DERIVED_REL.value
    modes = tol.GLMM_MODES_REL.value if glmm else limit
    condvar = tol.GLMM_CONDVAR_REL.value if glmm else limit
    vcov = tol.GLMM_VCOV_REL.value if glmm else limit
    if list(at.beta) != list(ref.beta):
        layer.failures.append(f"fixed-effect names differ: {list(at.beta)} vs lme4's {list(ref.beta)}")
        return layer.close()
    layer.check("beta", _max_rel(list(at.beta.values()), list(ref.beta.values())), limit, "beta")
    layer.check("sigma", _max_rel(at.sigma, ref.sigma), limit, "sigma")
    layer.check("vcov", _max_rel(at.vcov, ref.vcov), vcov, "vcov")
    layer.check("fitted", _max_rel(at.fitted, ref.fitted), modes, "fitted")
    ranef, condvar_pairs = _ranef_vectors(at, ref)
    if ranef is None:
        layer.failures.append("random-effects names or levels differ from lme4's")
    else:
        # a column's modes are measured against their own size or their conditional SD,
        # whichever is larger: modes that are all rounding noise (~1e-13) have no size of their own
        rel = [_max_rel(a, b, floor=np.max(sd, initial=0.0)) for (a, b), (_, sd) in zip(ranef, condvar_pairs)]
        layer.check("ranef", max(rel, default=0.0), modes, "ranef")
        layer.check("condVar", max((_max_rel(a, b) for a, b in condvar_pairs), default=0.0), condvar, "condVar SDs")
    return layer.close()


def _ranef_vectors(cand: FitRecord, ref: FitRecord):
    """Pairs of (candidate, lme4) vectors per grouping factor and column, or None if the
    factors, columns or levels differ."""
    if cand.ranef.keys() != ref.ranef.keys():
        return None, None
    ranef, condvar = [], []
    for grp, cols in ref.ranef.items():
        if list(cand.ranef[grp]) != list(cols):
            return None, None
        for col, levels in cols.items():
            if list(cand.ranef[grp][col]) != list(levels):
                return None, None
            ranef.append((list(cand.ranef[grp][col].values()), list(levels.values())))
            condvar.append((list(cand.condvar_sd[grp][col].values()), list(ref.condvar_sd[grp][col].values())))
    return ranef, condvar


#: fit_layer's note where lme4 warned that it had not converged and the engine's optimum is as low or lower
_LME4_WARNED = "lme4 warned that it stopped short"


def fit_layer(ref: FitRecord, cand: FitRecord, engine: str = "pylme", glmm: bool = False) -> Layer:
    """Layer 3: the engine's own optimum against lme4's (glmer: the GLMM tolerances, the criterion
    relative, and lme4's gradient warning set aside where the engine's optimum is better)."""
    layer = Layer("full_fit")
    d_crit = cand.criterion - ref.criterion
    layer.metrics["d_criterion"] = d_crit
    crit_limit = tol.GLMM_CRITERION_REL.value * abs(ref.criterion) if glmm else tol.CRITERION_ABS.value
    layer.limits["d_criterion"] = crit_limit
    if d_crit > crit_limit:
        layer.failures.append(f"criterion worse than lme4's by {d_crit:.3g} > {crit_limit:.0e}")
    elif d_crit < -crit_limit:
        layer.notes.append(f"{engine} found a better optimum: criterion lower than lme4's by {-d_crit:.3g}")
    theta_limit, beta_limit, se_limit, ranef_limit = (
        (tol.GLMM_THETA_ABS, tol.GLMM_BETA_SE, tol.GLMM_SE_REL, tol.GLMM_RANEF_CONDSD) if glmm else
        (tol.THETA_ABS, tol.BETA_SE, tol.SE_REL, tol.RANEF_CONDSD))
    if len(cand.theta) == len(ref.theta):
        layer.check("max_d_theta", float(np.max(np.abs(np.subtract(cand.theta, ref.theta)), initial=0.0)),
                    theta_limit.value, "max |d theta|")
    else:
        layer.failures.append(f"{len(cand.theta)} thetas vs lme4's {len(ref.theta)}")
    if list(cand.beta) != list(ref.beta):
        layer.failures.append(f"fixed-effect names differ: {list(cand.beta)} vs lme4's {list(ref.beta)}")
    else:
        se = np.array(list(ref.beta_se.values()))
        d_beta = np.abs(np.subtract(list(cand.beta.values()), list(ref.beta.values())))
        layer.check("max_d_beta_se", float(np.max(d_beta / se, initial=0.0)), beta_limit.value, "max |d beta|/SE")
        layer.check("se_rel", float(np.max(np.abs(np.array(list(cand.beta_se.values())) / se - 1), initial=0.0)),
                    se_limit.value, "standard errors (rel.)")
    sigma_limit = tol.GLMM_SIGMA_REL if glmm else tol.SIGMA_REL
    layer.check("sigma_rel", abs(cand.sigma / ref.sigma - 1), sigma_limit.value, "sigma (rel.)")
    _check_ranef(layer, cand, ref, ranef_limit.value)
    if ref.family_theta is not None:
        layer.check("nb_theta_rel", abs((cand.family_theta or np.nan) / ref.family_theta - 1),
                    tol.GLMM_NB_THETA_REL.value, "negative binomial shape (rel.)")
    if cand.is_singular != ref.is_singular:
        layer.failures.append(f"isSingular {cand.is_singular} vs lme4's {ref.is_singular}")
    if _masked(cand.messages) != _masked(ref.messages):
        layer.failures.append(f"messages {cand.messages} vs lme4's {ref.messages}")
    ref_warnings, cand_warnings = ref.warnings, cand.warnings
    if glmm and d_crit <= 0 and any(w.startswith(_NOT_CONVERGED) for w in ref.warnings):
        # lme4 stopped short and the engine's optimum is as low or lower: the gradient warnings (each
        # engine's own) are not compared; the engine's stays in its record
        ref_warnings = [w for w in ref.warnings if not w.startswith(_NOT_CONVERGED)]
        cand_warnings = [w for w in cand.warnings if not w.startswith(_NOT_CONVERGED)]
        layer.notes.append(f"{_LME4_WARNED} (max|grad| above tol); the engine's optimum is as low or lower")
    if _masked(cand_warnings) != _masked(ref_warnings):
        layer.failures.append(f"warnings {cand.warnings} vs lme4's {ref.warnings}")
    return layer.close()


def inference_layer(ref: dict, cand: dict, beta_se: dict[str, float]) -> Layer:
    """Layer 4: each inference table of lme4/lmerTest against the engine's, column by column."""
    layer = Layer("inference")
    for kind, table in ref.items():
        mine = cand.get(kind)
        if mine is None:
            layer.failures.append(f"{kind}: not computed")
            continue
        if mine["rows"] != table["rows"] or mine["cols"] != table["cols"]:
            layer.failures.append(f"{kind}: rows/columns {mine['rows']}/{mine['cols']} vs lme4's "
                                  f"{table['rows']}/{table['cols']}")
            continue
        a, b = (np.array(t["values"], dtype=float).reshape(len(t["rows"]), len(t["cols"])) for t in (mine, table))
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            layer.failures.append(f"{kind}: missing values differ")
            continue
        for j, col in enumerate(table["cols"]):
            limit, value = _inference_diff(kind, col, a[:, j], b[:, j], table["rows"], beta_se)
            layer.check(f"{kind}:{col}", value, limit, f"{kind} {col}")
    return layer.close()


def _inference_diff(kind: str, col: str, a: np.ndarray, b: np.ndarray, rows: list[str], beta_se: dict[str, float]):
    """(limit, measured difference) for one column of an inference table."""
    ok = ~np.isnan(b)
    a, b = a[ok], b[ok]
    if kind in POSTFIT_KINDS:
        return _postfit_diff(kind, col, a, b)
    if kind == "wald":
        se = np.array([beta_se[r] for r, keep in zip(rows, ok) if keep])
        return tol.WALD_SE.value, float(np.max(np.abs(a - b) / se, initial=0.0))
    if kind == "profile":
        return tol.PROFILE_REL.value, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-3), initial=0.0))
    if col in ("df", "DenDF"):
        return tol.DDF_REL.value, float(np.max(np.abs(a / b - 1), initial=0.0))
    floor = tol.P_FLOOR.value if col.startswith("Pr(") else 0.0
    scale = np.maximum(np.abs(b), floor)
    diff = np.abs(a - b)
    return tol.STAT_REL.value, float(np.max(np.where(scale > 0, diff / np.where(scale > 0, scale, 1), diff),
                                            initial=0.0))


def _postfit_diff(kind: str, col: str, a: np.ndarray, b: np.ndarray):
    """(limit, measured difference) for a column of an after-the-fit table (pylme.fitted.extract.POSTFIT_KINDS):
    refitted reduced models within the optimisers' noise, functions of the fit at theta-hat relative to
    the column's scale, Tukey's p-values within R's ptukey accuracy."""
    diff = np.abs(a - b)
    if kind in ("drop1", "ranova") and col.startswith("Pr("):
        return tol.REFIT_P_REL.value, float(np.max(diff / np.maximum(np.abs(b), tol.P_FLOOR.value), initial=0.0))
    if kind in ("drop1", "ranova"):
        return tol.REFIT_ABS.value, float(np.max(diff, initial=0.0))
    if col == "df":
        return tol.DDF_REL.value, float(np.max(np.abs(a / b - 1), initial=0.0))
    if kind == "emmeans_pairs_kenward_roger" and col == "p.value":
        return tol.TUKEY_P_ABS.value, float(np.max(diff, initial=0.0))
    return tol.STAT_REL.value, _max_rel(a, b)


def _check_ranef(layer: Layer, cand: FitRecord, ref: FitRecord, limit: float = tol.RANEF_CONDSD.value) -> None:
    ranef, condvar = _ranef_vectors(cand, ref)
    if ranef is None:
        layer.failures.append("random-effects names or levels differ from lme4's")
        return
    worst = 0.0
    for (a, b), (_, sd) in zip(ranef, condvar):
        a, b, sd = (np.asarray(x, dtype=float) for x in (a, b, sd))
        scale = np.where(sd > 0, sd, np.inf)  # a zero conditional SD: singular, judged below
        worst = max(worst, float(np.max(np.abs(a - b) / scale, initial=0.0)))
        if np.any((sd == 0) & (np.abs(a - b) > 1e-8 * max(1.0, np.max(np.abs(b), initial=0.0)))):
            layer.failures.append("ranef with zero conditional SD differ")
    layer.check("max_d_ranef_condsd", worst, limit, "max |d ranef|/condSD")


_NOT_CONVERGED = "Model failed to converge"


def _masked(messages: list[str]) -> list[str]:
    """Messages with the numbers that depend on where the optimiser stopped masked."""
    return [re.sub(r"max\|grad\| = [0-9.e+-]+", "max|grad| = #", m) for m in messages]


def compare(
    case_id: str,
    engine: str,
    ref: FitRecord,
    cand: FitRecord,
    objective_values: list[float] | None = None,
    at_theta: FitRecord | None = None,
    lme4_unreliable: str | None = None,
    known_difference: str | None = None,
    glmm: bool = False,
    evidence: dict | None = None,
) -> CaseResult:
    """Judge one case: the layers that apply, and the verdict. ``known_difference`` notes an
    explained difference of pylme's, so it applies to the pylme engine only. ``evidence`` is the
    engine's analysis of lme4's theta-hat on its own objective (PylmeEngine.evidence): with it the
    full-fit layer is decided by the criterion (``optimizer_verdict``)."""
    if engine != "pylme":
        known_difference = None
    result = CaseResult(case_id, engine, verdict=PASS, reference=_shown(ref), candidate=_shown(cand))
    if ref.error:
        same = bool(cand.error)
        result.verdict = PASS if same else FAIL
        result.notes.append(f"lme4 refused: {ref.error}" + (f"; {engine} refused too: {cand.error}" if same else
                                                              f"; {engine} fitted it"))
        return result
    if cand.error:
        result.verdict = FAIL
        result.notes.append(f"{engine} failed: {cand.error}")
        return result
    if objective_values is not None:
        result.layers["objective"] = objective_layer(ref, objective_values, glmm)
    if at_theta is not None and not lme4_unreliable:
        result.layers["at_lme4_theta"] = derived_layer(ref, at_theta, glmm)
    if lme4_unreliable:
        result.layers["full_fit"] = Layer("full_fit", notes=[f"not judged: lme4 unreliable here ({lme4_unreliable})"])
    else:
        result.layers["full_fit"] = fit_layer(ref, cand, engine, glmm)
    tables = {**cand.inference, **(at_theta.inference if at_theta is not None else {})}
    if ref.inference and tables and not lme4_unreliable:
        result.layers["inference"] = inference_layer(ref.inference, tables, ref.beta_se)
    failed = [lay for lay in result.layers.values() if lay.verdict == FAIL]
    if evidence is not None and not lme4_unreliable:
        better = optimizer_verdict(result.layers["full_fit"], evidence)
        failed = [lay for lay in result.layers.values() if lay.verdict == FAIL]
        if better and not failed:
            result.verdict = BETTER
    if result.verdict == BETTER:
        pass
    elif failed and known_difference:
        result.verdict = "known difference"
        result.notes.append(f"known difference: {known_difference}")
    elif failed:
        result.verdict = FAIL
    elif lme4_unreliable:
        result.verdict = "lme4 unreliable"
        result.notes.append(f"lme4 unreliable here: {lme4_unreliable}; judged on the objective only")
    elif known_difference:
        result.notes.append(f"marked as a known difference ({known_difference}) but it passes now")
    for lay in result.layers.values():
        result.notes += lay.notes
    return result


def optimizer_verdict(full: Layer, evidence: dict) -> bool:
    """Decide the full-fit layer from the criterion and the evidence at lme4's theta-hat: True (pylme
    better) where pylme's criterion is lower than lme4's by more than CRITERION_ABS (glmer: the layer's
    GLMM_CRITERION_REL limit), whatever else
    differs (lme4 stopped early: the evidence is noted), or lower by less, where the full fits differ,
    lme4's theta-hat is not certified on pylme's objective and pylme's is; the layer passes where the criteria agree
    and only the location of the optimum differs, by less than the criterion resolves
    (``evidence['distance']``: half the Hessian norm of the theta difference, at most
    FLAT_SURFACE_ABS); otherwise the layer stands (a higher criterion fails it)."""
    d_crit = full.metrics.get("d_criterion", np.nan)
    limit = full.limits.get("d_criterion", tol.CRITERION_ABS.value)  # glmer: GLMM_CRITERION_REL of lme4's deviance
    gradient = " ".join(f"{g:.3g}" for g in evidence["gradient"])
    at_lme4 = (f"at lme4's theta pylme's objective gives {evidence['criterion']:.12g}, projected gradient "
               f"[{gradient}]: {evidence['verdict']}")
    lme4_short = evidence["verdict"].startswith("not certified")
    pylme_certified = not evidence["own_verdict"].startswith("not certified")
    full.metrics["lme4_certified"], full.metrics["pylme_certified"] = float(not lme4_short), float(pylme_certified)
    if any(n.startswith(_LME4_WARNED) for n in full.notes):
        full.notes.append(f"the evidence at lme4's point: {at_lme4}; pylme's own: {evidence['own_verdict']}")
    if d_crit > limit and pylme_certified:
        full.notes.append(f"another basin: pylme's theta-hat is a certified local optimum ({evidence['own_verdict']}); "
                          f"lme4's point is lower by {d_crit:.3g} ({at_lme4})")
    if d_crit < -limit or (d_crit < 0 and full.failures and lme4_short and pylme_certified):
        stopped = "lme4 stopped early" if lme4_short else "lme4 stopped at another local optimum"
        full.notes.append(f"pylme better: criterion lower than lme4's by {-d_crit:.3g}; {stopped} ({at_lme4}); "
                          f"pylme's own theta-hat: {evidence['own_verdict']}; "
                          f"the full-fit differences follow: {'; '.join(full.failures) or 'none'}")
        full.notes = [n for n in full.notes if "found a better optimum" not in n]
        full.verdict, full.failures, full.failed_metrics = BETTER, [], []
        return True
    location_only = full.failures and len(full.failures) == len(full.failed_metrics) and \
        all(m in LOCATION_METRICS for m in full.failed_metrics)
    if abs(d_crit) <= limit and location_only and \
            evidence["distance"] <= tol.FLAT_SURFACE_ABS.value:
        full.notes.append(f"flat surface: the optima differ by {'; '.join(full.failures)}, which changes the "
                          f"criterion's quadratic model by {evidence['distance']:.3g} (within "
                          f"{tol.FLAT_SURFACE_ABS.value:.0e}); criterion difference {d_crit:.3g}; {at_lme4}")
        full.failures, full.failed_metrics = [], []
        full.close()
    return False


def _shown(rec: FitRecord) -> dict:
    """The numbers the report shows side by side."""
    return {
        "criterion": rec.criterion, "theta": rec.theta, "beta": rec.beta, "beta_se": rec.beta_se,
        "sigma": rec.sigma, "messages": rec.messages, "warnings": rec.warnings, "is_singular": rec.is_singular,
        "error": rec.error,
    }
