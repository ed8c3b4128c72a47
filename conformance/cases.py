"""The conformance corpus: models over the bundled data sets, each fitted by REML and by ML.

Cases are declared in ``conformance/cases/*.toml`` (one ``[[model]]`` table per model; see the
README for the fields) and, for designs found by the property-based tests, in
``conformance/cases/regressions/*.json`` with their data inline. A model expands to the case
ids ``<id>_reml`` and ``<id>_ml``.
"""
from __future__ import annotations

import importlib.util
import io
import json
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

import pylme
from pylme.fitted.record import INFERENCE_KINDS

CASES_DIR = Path(__file__).parent / "cases"
REGRESSIONS_DIR = CASES_DIR / "regressions"
SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "scripts"


@dataclass(frozen=True)
class Case:
    """One model fitted one way (REML or ML)."""

    id: str
    model: str
    dataset: str
    formula: str
    REML: bool
    source: str = ""
    data: str | None = None  # a derivation of the data set (DERIVATIONS)
    weights: str | None = None  # a column holding prior weights
    slow: bool = False  # left out of the default run (--cases selects it)
    lme4_unreliable: str | None = None
    known_difference: str | None = None
    inference: tuple[str, ...] = ()  # inference tables compared too (pylme.fitted.record.INFERENCE_KINDS)
    data_csv: str | None = field(default=None, repr=False)  # regression cases carry their data
    family: str | None = None  # a glmer case: R's family name (binomial, poisson, Gamma, ...)
    link: str | None = None  # its link (the family's default when None)
    nAGQ: int = 1  # glmer's nAGQ
    offset: str | None = None  # a column holding an offset (glmer cases)

    @property
    def is_glmer(self) -> bool:
        return self.family is not None

    @property
    def is_nb(self) -> bool:
        """A glmer.nb case (family "negative.binomial": the shape theta is estimated)."""
        return self.family == "negative.binomial"

    def load_data(self) -> pd.DataFrame:
        if self.data_csv is not None:
            return _read_inline(self.data_csv)
        base = _base_data(self.dataset)
        return DERIVATIONS[self.data](base) if self.data else base


def _base_data(name: str) -> pd.DataFrame:
    if name == "seed_random_regression":
        return _seed_random_regression()
    if name == "grades_small":
        return _grades_small()
    return pylme.datasets.load(name)


@lru_cache(maxsize=1)
def _grades_small() -> pd.DataFrame:
    """A smaller grades design (conformance.large_designs, its seed): 150,000 grades of 6,000
    students, 2,600 instructors, 40 departments; its fill block (order 2,640) is factored tiled."""
    from .large_designs import grades

    return grades(n=150_000, n_students=6_000, n_instr=2_600, n_dept=40).data


@lru_cache(maxsize=1)
def _seed_random_regression() -> pd.DataFrame:
    """Seed 000's design simulated in numpy (scripts/seed_random_regression.py, seed 2345)."""
    spec = importlib.util.spec_from_file_location("seed_random_regression", SCRIPTS_DIR / "seed_random_regression.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.simulate(2345)


def _read_inline(text: str) -> pd.DataFrame:
    """Regression-case data: CSV text whose first row after the header gives each column's
    type (``factor:<levels separated by |>`` or ``numeric``)."""
    lines = text.splitlines()
    header, types, body = lines[0], lines[1], "\n".join([lines[0]] + lines[2:])
    frame = pd.read_csv(io.StringIO(body), dtype=str, keep_default_na=False, na_values=["NA"])
    for name, kind in zip(header.split(","), types.split(",")):
        if kind.startswith("factor:"):
            frame[name] = pd.Categorical(frame[name], categories=kind[len("factor:"):].split("|"))
        else:
            frame[name] = pd.to_numeric(frame[name])
    return frame


def write_inline(frame: pd.DataFrame) -> str:
    """The inverse of ``_read_inline``: CSV text with a type row, numbers at full precision."""
    types = []
    for name in frame.columns:
        col = frame[name]
        types.append("factor:" + "|".join(map(str, col.cat.categories)) if isinstance(col.dtype, pd.CategoricalDtype)
                     else "numeric")
    out = io.StringIO()
    frame.to_csv(out, index=False, float_format="%.17g", na_rep="NA")
    lines = out.getvalue().splitlines()
    return "\n".join([lines[0], ",".join(types)] + lines[1:]) + "\n"


# ------------------------------------------------------------------ derived data sets
def _with_missing(frame: pd.DataFrame, columns: list[str], fraction: float, seed: int) -> pd.DataFrame:
    """Set a fraction of the values of some columns to missing (rows chosen with a fixed seed)."""
    out = frame.copy()
    rng = np.random.default_rng(seed)
    for col in columns:
        rows = rng.choice(len(out), size=int(round(fraction * len(out))), replace=False)
        out.loc[out.index[rows], col] = np.nan
    return out


def _unbalanced(frame: pd.DataFrame, keep: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return frame.loc[rng.random(len(frame)) < keep].reset_index(drop=True)


def _sleep_factors(frame: pd.DataFrame) -> pd.DataFrame:
    """sleepstudy with Days also as a factor (fDays) and as an ordered factor (oDays), levels 0..9."""
    levels = [str(i) for i in range(10)]
    days = frame["Days"].astype(int).astype(str)
    return frame.assign(fDays=pd.Categorical(days, categories=levels),
                        oDays=pd.Categorical(days, categories=levels, ordered=True))


def _sleep_nested(frame: pd.DataFrame) -> pd.DataFrame:
    """sleepstudy with two added levels: week (days 0-4, 5-9) within Subject, and six groups of
    three subjects (in level order) above Subject: group / Subject / week."""
    subjects = list(frame["Subject"].cat.categories)
    group = {s: f"g{i // 3 + 1}" for i, s in enumerate(subjects)}
    return frame.assign(
        week=pd.Categorical(np.where(frame["Days"] < 5, "w1", "w2"), categories=["w1", "w2"]),
        group=pd.Categorical(frame["Subject"].astype(str).map(group), categories=sorted(set(group.values()))),
    )


def _noise_response(frame: pd.DataFrame, column: str, mean: float, sd: float, seed: int) -> pd.DataFrame:
    """The data set with a response of pure noise (no group effect: a singular fit)."""
    rng = np.random.default_rng(seed)
    return frame.assign(**{column: np.round(rng.normal(mean, sd, len(frame)), 3)})


def _keep_rows(frame: pd.DataFrame, mask) -> pd.DataFrame:
    """A subset of the rows; factors keep all their levels (unused ones included)."""
    return frame.loc[np.asarray(mask)].reset_index(drop=True)


def _cake_band(frame: pd.DataFrame) -> pd.DataFrame:
    """cake with the baking temperatures split into two bands (175-195, 205-225)."""
    return frame.assign(band=pd.Categorical(np.where(frame["temp"] <= 195, "low", "high"), categories=["low", "high"]))


DERIVATIONS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "days2": lambda d: d.assign(Days2=2 * d["Days"]),
    "sleep_missing": lambda d: _with_missing(d, ["Reaction", "Days"], 0.1, seed=11),
    "sleep_unbalanced": lambda d: _unbalanced(d, 0.6, seed=5),
    "cbpp_prop": lambda d: d.assign(prop=d["incidence"] / d["size"]),
    "instevalsub": lambda d: d.iloc[:6000].reset_index(drop=True),
    "classroom_collinear": lambda d: d.assign(ses2=d["ses"] * 2 + 1, housepov_pct=d["housepov"] * 100),
    "sleep_factors": _sleep_factors,
    "sleep_nested": _sleep_nested,
    "sleep_noise": lambda d: _noise_response(d, "Reaction", 300.0, 50.0, seed=17),
    "sleep_missing_group": lambda d: _with_missing(d, ["Subject"], 0.05, seed=23),
    "sleep_char": lambda d: d.assign(Subject=d["Subject"].astype(str).astype(object)),
    "dyestuff_one_batch": lambda d: _keep_rows(d, d["Batch"] == "A"),
    "dyestuff_numeric_batch": lambda d: d.assign(Batch=d["Batch"].cat.codes.astype("int64") + 1),
    "penicillin_no_F": lambda d: _keep_rows(d, d["sample"] != "F"),
    "cake_band": _cake_band,
    "classroom_scaled": lambda d: d.assign(mathkind100=d["mathkind"] / 100),
    "cbpp_glmm": lambda d: _cbpp_glmm(d),
    "grouse_glmm": lambda d: d.assign(log_h=np.log(d["HEIGHT"] / 100)),
    "verbagg_sub": lambda d: _keep_rows(d, d["id"].cat.codes < 100),
    "arabidopsis_glmm": lambda d: d.assign(gen=pd.Categorical(d["gen"].astype(str)),
                                           rack=pd.Categorical(d["rack"].astype(str)),
                                           nutrient=pd.Categorical(d["nutrient"].astype(str))),
    "separation": lambda d: _separation(d),
    "sleep_nb": lambda d: _sleep_nb(d),
}


def _sleep_nb(frame: pd.DataFrame) -> pd.DataFrame:
    """sleepstudy's design with a simulated negative binomial count (shape 2; log mean 1 + 0.15
    Days plus a subject intercept of SD 0.5 and a slope of SD 0.05), numpy's seed 16."""
    rng = np.random.default_rng(16)
    subj = frame["Subject"].cat.codes.to_numpy()
    k = frame["Subject"].cat.categories.size
    b0, b1 = rng.normal(0, 0.5, k), rng.normal(0, 0.05, k)
    mu = np.exp(1.0 + b0[subj] + (0.15 + b1[subj]) * frame["Days"].to_numpy())
    return frame.assign(count=rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(float))


def _cbpp_glmm(frame: pd.DataFrame) -> pd.DataFrame:
    """cbpp with the proportion of new cases, an observation-level factor (lme4's ?cbpp
    overdispersion model) and the log of the herd size (an offset)."""
    return frame.assign(prop=frame["incidence"] / frame["size"], log_size=np.log(frame["size"]),
                        obs=pd.Categorical([str(i + 1) for i in range(len(frame))],
                                           categories=[str(i + 1) for i in range(len(frame))]))


def _separation(frame: pd.DataFrame) -> pd.DataFrame:
    """cbpp with a 0/1 outcome per herd and period that period 4 separates (no cases there)."""
    y = (frame["incidence"] > 0).astype(float)
    return frame.assign(any_case=np.where(frame["period"] == "4", 0.0, y))


# ------------------------------------------------------------------ loading
def _expand(model: dict, source_file: str) -> list[Case]:
    known = {"id", "dataset", "formula", "source", "data", "weights", "slow", "lme4_unreliable",
             "known_difference", "REML", "data_csv", "inference", "family", "link", "nAGQ", "offset"}
    unknown = set(model) - known
    if unknown:
        raise ValueError(f"{source_file}: model {model.get('id')!r} has unknown fields {sorted(unknown)}")
    if model.get("data") and model["data"] not in DERIVATIONS:
        raise ValueError(f"{source_file}: model {model['id']!r} names unknown data derivation {model['data']!r}")
    bad = set(model.get("inference", [])) - set(INFERENCE_KINDS)
    if bad:
        raise ValueError(f"{source_file}: model {model['id']!r} names unknown inference {sorted(bad)}; "
                         f"known: {', '.join(INFERENCE_KINDS)}")
    if model.get("family"):  # a glmer case: maximum likelihood only, one case
        base = {k: v for k, v in model.items() if k not in ("id", "inference")}
        return [Case(id=model["id"], model=model["id"], REML=False, **base)]
    fits = model.get("REML", [True, False])
    fits = fits if isinstance(fits, list) else [fits]
    base = {k: v for k, v in model.items() if k not in ("id", "REML", "inference")}
    return [Case(id=f"{model['id']}_{'reml' if r else 'ml'}", model=model["id"], REML=r,
                 inference=_inference_for(model.get("inference", []), r), **base) for r in fits]


def _inference_for(kinds: list[str], REML: bool) -> tuple[str, ...]:
    """The inference a fit gets: Kenward-Roger is defined for REML fits only (as in pbkrtest)."""
    return tuple(k for k in kinds if REML or "kenward_roger" not in k)


@lru_cache(maxsize=1)
def load_corpus() -> tuple[Case, ...]:
    """Every case of the corpus, in file order (TOML files by name, then regression cases)."""
    cases: list[Case] = []
    for path in sorted(CASES_DIR.glob("*.toml")):
        for model in tomllib.loads(path.read_text())["model"]:
            cases += _expand(model, path.name)
    for path in sorted(REGRESSIONS_DIR.glob("*.json")):
        cases += _expand(json.loads(path.read_text()), path.name)
    ids = [c.id for c in cases]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ValueError(f"duplicate case ids: {sorted(dupes)}")
    return tuple(cases)


def select(pattern: str | None = None, include_slow: bool = False) -> list[Case]:
    """Cases whose id matches a glob pattern (comma-separated patterns allowed); slow cases only
    when asked for or matched by name."""
    cases = load_corpus()
    if not pattern:
        return [c for c in cases if include_slow or not c.slow]
    pats = [p.strip() for p in pattern.split(",") if p.strip()]
    return [c for c in cases if any(fnmatch(c.id, p) or fnmatch(c.model, p) for p in pats)]
