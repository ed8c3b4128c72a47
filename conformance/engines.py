"""Engines the harness can score, each behind a small adapter that turns a fit into a FitRecord.

- ``pylme``: also exposes its objective, so layers 1 and 2 apply;
- ``lme4``: the reference, live through rpy2 (r_reference);
- ``golden``: lme4's recorded records (conformance/golden), for machines without R;
- ``statsmodels`` and ``mixedlm``: when installed (see conformance/external_engines.py).

An engine that cannot express a case's model raises ``Unsupported``; the harness reports it.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import pylme
from pylme.fitted.extract import inference_record
from pylme.fitted.record import FitRecord

from . import external_engines
from .cases import Case
from .outcomes import error_record

GOLDEN_DIR = Path(__file__).parent / "golden"


#: inference judged on the engine's own fit; the rest (intervals and tables that are functions of
#: the fit at theta-hat) is judged with lme4's theta installed, as layer 2 is
OWN_FIT_INFERENCE = ("profile",)


def _with_inference(rec: FitRecord, fm, kinds: list[str]) -> FitRecord:
    if kinds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec.inference = inference_record(fm, kinds)
    return rec


class PylmeEngine:
    name = "pylme"
    exposes_objective = True

    def _fit(self, case: Case, data: pd.DataFrame, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if case.is_nb and not kwargs:
                return pylme.glmer_nb(case.formula, data, nAGQ=case.nAGQ, weights=case.weights, offset=case.offset)
            if case.is_glmer:
                return pylme.glmer(case.formula, data, family=_family(case), nAGQ=case.nAGQ, weights=case.weights,
                                   offset=case.offset, **kwargs)
            return pylme.lmer(case.formula, data, REML=case.REML, weights=case.weights, **kwargs)

    def fit(self, case: Case, data: pd.DataFrame) -> FitRecord:
        try:
            fm = self._fit(case, data)
            return _with_inference(fm.record(), fm, [k for k in case.inference if k in OWN_FIT_INFERENCE])
        except pylme.PylmeError as exc:
            return error_record(self.name, pylme.__version__, case, exc)

    def objective(self, case: Case, data: pd.DataFrame, thetas: list[list[float]]) -> list[float]:
        """pylme's criterion at each theta (lme4's devFunOnly counterpart; glmer: at each (theta, beta);
        glmer.nb: at each (theta, beta, shape))."""
        if case.is_nb:
            return [self._nb_devfun(case, data, t[-1])(np.asarray(t[:-1], dtype=float)) for t in thetas]
        if case.is_glmer:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                devfun = pylme.glmer(case.formula, data, family=_family(case), nAGQ=case.nAGQ, weights=case.weights,
                                     offset=case.offset, devFunOnly=True)
            return [float(devfun(np.asarray(t, dtype=float))) for t in thetas]
        devfun = pylme.lmer(case.formula, data, REML=case.REML, weights=case.weights, devFunOnly=True)
        return [float(devfun(np.asarray(t, dtype=float))) for t in thetas]

    def evidence(self, case: Case, data: pd.DataFrame, theta: list[float], own: list[float]) -> dict:
        """pylme's certificate at lme4's theta-hat (pylme.fitting.polish, no finishing step): the criterion,
        the projected gradient and the verdict there, ``distance``: half the squared norm of
        own - theta in the Hessian there (the criterion change the quadratic model gives the move),
        and ``own_verdict``: the certificate's verdict at pylme's own theta-hat. For a glmer case
        ``theta`` and ``own`` are the last stage's (theta, beta), on the deviance function of that
        stage (glmer's devFunOnly: after pylme's stage 1)."""
        from pylme.fitting.driver import choose_objective

        if case.is_glmer:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                objective = pylme.glmer(case.formula, data, family=_family(case), nAGQ=case.nAGQ,
                                        weights=case.weights, offset=case.offset, devFunOnly=True)
            mirrors = objective.reTrms.lam.factor_columns()
        else:
            devfun = pylme.lmer(case.formula, data, REML=case.REML, weights=case.weights, devFunOnly=True)
            objective = choose_objective(devfun.design, devfun.resp, start=devfun.start, cholmod=devfun)
            mirrors = objective.design.lam.factor_columns()
        return _certified_at(objective, np.asarray(theta, dtype=float), np.asarray(own, dtype=float), mirrors)

    @staticmethod
    def _nb_devfun(case: Case, data: pd.DataFrame, shape: float):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pylme.glmer(case.formula, data, family=pylme.negative_binomial(shape), nAGQ=case.nAGQ,
                               weights=case.weights, offset=case.offset, devFunOnly=True)

    def at_theta(self, case: Case, data: pd.DataFrame, theta: list[float], beta: list[float] | None = None,
                 family_theta: float | None = None) -> FitRecord:
        """pylme's fit with the given theta (glmer: and beta; glmer.nb: and the shape) installed (no optimisation)."""
        if case.is_glmer:
            start = {"theta": theta} if case.nAGQ == 0 else {"theta": theta, "fixef": beta}
            fam = pylme.negative_binomial(family_theta) if case.is_nb else _family(case)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return pylme.glmer(case.formula, data, family=fam, nAGQ=case.nAGQ, weights=case.weights,
                                   offset=case.offset, start=start,
                                   control=pylme.glmerControl(optimizer=None)).record()
        fm = self._fit(case, data, start=theta, control=pylme.lmerControl(optimizer=None))
        return _with_inference(fm.record(), fm, [k for k in case.inference if k not in OWN_FIT_INFERENCE])


def _certified_at(objective, at: np.ndarray, mine: np.ndarray, mirrors) -> dict:
    """PylmeEngine.evidence's figures: the certificates at lme4's point ``at`` and at pylme's ``mine``."""
    from pylme.fitting.polish import polish

    _, value, derivs, cert = polish(objective, at, float(objective(at)), finish=False, mirrors=mirrors)
    own_cert = polish(objective, mine, float(objective(mine)), finish=False, mirrors=mirrors)[3]
    d = mine - at
    return {"criterion": value, "gradient": cert.gradient.tolist(), "verdict": cert.verdict,
            "decrement": cert.newton_decrement, "distance": float(abs(d @ derivs.Hessian @ d) / 2),
            "own_verdict": own_cert.verdict}


def _family(case: Case):
    """The case's family object (R's name and link)."""
    return pylme.family.make_family(case.family, case.link)


class Lme4Engine:
    """lme4 run live through rpy2; its deviance function is also evaluated away from the optimum
    (at 0.5 theta-hat and 1.5 theta-hat + 0.1) for layer 1."""

    name = "lme4"
    exposes_objective = False

    def fit(self, case: Case, data: pd.DataFrame) -> FitRecord:
        import r_reference

        if case.is_glmer:
            return self._fit_glmer(case, data)
        rec = r_reference.fit(case.formula, data, REML=case.REML, weights=case.weights)
        if rec.error is None:
            theta = np.asarray(rec.theta)
            extra = [list(0.5 * theta), list(1.5 * theta + 0.1)]
            rec.devfun_at = r_reference.devfun_values(case.formula, data, extra, REML=case.REML,
                                                      weights=case.weights) + rec.devfun_at
            if case.inference:
                rec.inference = r_reference.inference(case.formula, data, case.REML, list(case.inference))
        return rec


    @staticmethod
    def _fit_glmer(case: Case, data: pd.DataFrame) -> FitRecord:
        """lme4's glmer fit; its deviance function also at (0.5 theta-hat, beta-hat) and
        (1.5 theta-hat + 0.1, beta-hat) (nAGQ = 0: of theta alone) for layer 1."""
        import r_reference

        kw = dict(family=case.family, link=case.link, nAGQ=case.nAGQ, weights=case.weights, offset=case.offset)
        rec = r_reference.fit_glmer(case.formula, data, **kw)
        if rec.error is None:
            par = np.asarray(rec.devfun_at[-1]["theta"])
            k = len(rec.theta)
            extra = [np.concatenate([f * par[:k] + s, par[k:]]).tolist() for f, s in ((0.5, 0.0), (1.5, 0.1))]
            rec.devfun_at = r_reference.glmer_devfun_values(case.formula, data, extra, **kw) + rec.devfun_at
        return rec


class GoldenEngine:
    """lme4's records written by ``python -m conformance record``."""

    name = "golden"
    exposes_objective = False

    def path(self, case: Case) -> Path:
        return GOLDEN_DIR / f"{case.id}.json"

    def fit(self, case: Case, data: pd.DataFrame | None = None) -> FitRecord:
        path = self.path(case)
        if not path.exists():
            raise FileNotFoundError(f"no golden record {path.name}: run python -m conformance record")
        return FitRecord.from_dict(json.loads(path.read_text())["record"])

    def write(self, case: Case, rec: FitRecord) -> None:
        payload = {"case": case.id, "dataset": case.dataset, "data": case.data, "formula": case.formula,
                   "REML": case.REML, "weights": case.weights,
                   **({"family": case.family, "link": case.link, "nAGQ": case.nAGQ, "offset": case.offset}
                      if case.is_glmer else {}), "R": rec.r_version, "lme4": rec.engine_version,
                   "record": rec.to_dict()}
        GOLDEN_DIR.mkdir(exist_ok=True)
        self.path(case).write_text(json.dumps(payload, indent=1, allow_nan=True) + "\n")


def r_available() -> tuple[bool, str]:
    """Whether R with lme4 can be reached, and if not, why (one line)."""
    import r_reference

    try:
        versions = r_reference.r_versions()
    except RuntimeError as exc:
        return False, str(exc).splitlines()[0]
    return True, f"{versions['R']}, lme4 {versions['lme4']}"


def make_engine(name: str):
    """An engine adapter by name."""
    if name == "pylme":
        return PylmeEngine()
    if name == "lme4":
        return Lme4Engine()
    if name == "golden":
        return GoldenEngine()
    if name in ("statsmodels", "mixedlm"):
        return external_engines.make(name)
    raise ValueError(f"unknown engine {name!r}: use pylme, lme4, golden, statsmodels or mixedlm")
