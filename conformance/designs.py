"""Hypothesis strategies for random linear-mixed-model designs, with y simulated from the model.

``designs()`` draws a :class:`Design`: a small data frame (about 20 to 300 rows), an lme4
formula and REML or ML. What is drawn:

- 1 to 3 grouping factors ``g1, g2, g3``; each one after the first is nested in an earlier one
  (labels unique, or reused within parents so that only ``g1/g2`` or ``g1:g2`` nests them),
  crossed with it (levels cycled within the parent's levels: fully crossed when balanced) or
  partially crossed (assigned at random, uniformly or very unevenly);
- group sizes balanced or very unbalanced (Dirichlet shares with singleton groups), then
  optionally thinned (rows dropped at random: unused levels are left in the categories);
- per grouping factor a random-effects term ``(1 | g)``, ``(x | g)``, ``(x || g)`` or
  ``(0 + f | g)``; nested intercepts may be written ``(1 | g1/g2)``;
- fixed effects: intercept, continuous ``x`` (several distributions, one far from 0) and
  ``z`` (possibly on a very different scale), a factor ``f``, the interaction ``x:f``;
- standard deviations of the random effects from 0 (singular fits) to 10 times the residual
  one, correlations up to +-1, the residual standard deviation from 0.01 to 100;
- missing values in a covariate (x, z or f), optional prior weights ``w``.

The structural choices are drawn from hypothesis (so they shrink); the numbers (covariates,
random effects, noise) come from a numpy generator seeded by a drawn integer. Filtered out
with ``assume``, counted on the complete cases: designs lme4 would refuse by its input checks
(a grouping factor with < 2 or >= n levels, a term with >= n random effects); models whose
fixed and random effects together span R^n (rank [X Z] = n: sigma -> 0 and theta -> infinity,
an unbounded likelihood on which every engine's numbers are rounding noise, and lme4 may stop
with "Downdated VtV is not positive definite"); two terms of the same kind on the same
partition of the rows (a non-identifiable model whose convergence warnings depend on rounding).
Factors are pandas Categoricals with string levels, in a non-lexical category order.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st

N_MIN, N_MAX = 20, 300
PROFILE_ENV = "PYLME_HYPOTHESIS_PROFILE"


def hypothesis_profile() -> settings:
    """Register the test profiles and return the one named by $PYLME_HYPOTHESIS_PROFILE.

    - ``ci`` (default): 200 examples, derandomized (the same designs on every run), no
      example database, no deadline;
    - ``deep``: 3000 random examples, with the example database (failures replayed first).
    """
    import os

    quiet = [HealthCheck.too_slow, HealthCheck.filter_too_much]
    settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, database=None,
                              print_blob=True, suppress_health_check=quiet)
    settings.register_profile("deep", max_examples=3000, deadline=None, print_blob=True, suppress_health_check=quiet)
    return settings.get_profile(os.environ.get(PROFILE_ENV, "ci"))

# random-effects term kinds, simplest first (hypothesis shrinks towards the first)
TERM_KINDS = ("1", "x", "x||", "0+f")
RELATIONS = ("nested", "crossed", "partial")
# random-effect standard deviations relative to the residual one
SD_RATIOS = (1.0, 0.0, 0.1, 10.0, 1e-3, 3.0)
SIGMAS = (1.0, 0.01, 100.0)


@dataclass
class Design:
    """A drawn model: the data, the lme4 formula, REML or ML, and what was drawn (in words)."""

    data: pd.DataFrame
    formula: str
    REML: bool
    description: str
    weights: str | None = None  # a column of prior weights, when drawn

    def key(self) -> str:
        """A short hash of the data and the model, for naming a regression case."""
        from .cases import write_inline

        h = hashlib.sha1()
        h.update(write_inline(self.data).encode())
        h.update(self.formula.encode())
        h.update(str(self.weights).encode())
        return h.hexdigest()[:10]


@dataclass
class _Factor:
    name: str
    codes: np.ndarray  # 0-based level of each row
    labels: list[str]  # the categories (all levels, used or not), in category order
    how: str  # in words
    parent: str | None = None  # the factor it is nested in with labels reused: only g1:g2 identifies a level
    nested_in: str | None = None  # the factor it is nested in (labels reused or not)


@dataclass
class _Term:
    kind: str  # one of TERM_KINDS, or "1/" (nested intercepts written with a slash)
    groups: list[str]  # the grouping expression's factors (several: an interaction g1:g2)
    text: str  # as written in the formula
    # grouping expressions of the terms lme4 makes of it, each with its kind
    parts: list[tuple[tuple[str, ...], str]] = field(default_factory=list)


# ------------------------------------------------------------------ group structure
def _sizes(draw, rng: np.random.Generator, nlev: int, label: str) -> tuple[np.ndarray, str]:
    """Rows per level: balanced, or very unbalanced with singletons (every level >= 1 row)."""
    if draw(st.booleans(), label=f"{label} unbalanced"):
        alpha = draw(st.sampled_from([0.5, 0.2, 1.0, 0.05]), label=f"{label} Dirichlet alpha")
        extra = draw(st.integers(1, 6 * nlev), label=f"{label} rows beyond one per level")
        shares = rng.dirichlet(np.full(nlev, alpha))
        sizes = 1 + rng.multinomial(extra, shares)
        return sizes, f"unbalanced (Dirichlet {alpha}, sizes {sizes.min()}..{sizes.max()}, {int(np.sum(sizes == 1))} singletons)"
    m = draw(st.integers(2, 10), label=f"{label} rows per level")
    return np.full(nlev, m), f"balanced ({m} per level)"


def _first_factor(draw, rng: np.random.Generator) -> _Factor:
    nlev = draw(st.integers(2, 30), label="g1 levels")
    sizes, how = _sizes(draw, rng, nlev, "g1")
    codes = np.repeat(np.arange(nlev), sizes)
    return _Factor("g1", codes, [f"a{i + 1}" for i in range(nlev)], f"g1: {nlev} levels, {how}")


def _rank_within(codes: np.ndarray) -> np.ndarray:
    """The position of each row among the rows of its level (0, 1, ...)."""
    order = np.argsort(codes, kind="stable")
    ranks = np.empty(len(codes), dtype=np.int64)
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ranks[order] = np.arange(len(codes)) - np.repeat(starts, counts)
    return ranks


def _next_factor(draw, rng: np.random.Generator, k: int, factors: list[_Factor]) -> _Factor:
    name = f"g{k}"
    prefix = "abc"[k - 1]
    rel = draw(st.sampled_from(RELATIONS), label=f"{name} relation")
    parent = factors[draw(st.integers(0, len(factors) - 1), label=f"{name} parent")] if len(factors) > 1 else factors[0]
    pc = parent.codes
    n = len(pc)
    if rel == "nested":
        nsub = draw(st.integers(1, 4), label=f"{name} max sublevels per {parent.name} level")
        per = rng.integers(1, nsub + 1, size=len(parent.labels)) if draw(st.booleans(), label=f"{name} varying") \
            else np.full(len(parent.labels), nsub)
        ranks = _rank_within(pc)
        if draw(st.booleans(), label=f"{name} random within parent"):
            sub = rng.integers(0, per[pc])
        else:
            sub = ranks % per[pc]
        reuse = draw(st.booleans(), label=f"{name} labels reused within {parent.name}")
        if reuse:  # labels b1, b2, ... in every parent level: only g1:g2 identifies the level
            labels = [f"{prefix}{i + 1}" for i in range(int(per.max()))]
            return _Factor(name, sub, labels, f"{name}: nested in {parent.name} ({nsub} max sublevels), labels reused",
                           parent=parent.name, nested_in=parent.name)
        start = np.concatenate([[0], np.cumsum(per)[:-1]])
        codes = start[pc] + sub
        labels = [f"{prefix}{i + 1}" for i in range(int(per.sum()))]
        return _Factor(name, codes, labels, f"{name}: nested in {parent.name} ({nsub} max sublevels), labels unique",
                       nested_in=parent.name)
    nlev = draw(st.integers(2, 12), label=f"{name} levels")
    labels = [f"{prefix}{i + 1}" for i in range(nlev)]
    if rel == "crossed":  # each parent level cycles through the levels (fully crossed when balanced)
        rotate = draw(st.booleans(), label=f"{name} rotated per parent level")
        shift = rng.integers(0, nlev, size=len(parent.labels)) if rotate else np.zeros(len(parent.labels), int)
        codes = (_rank_within(pc) + shift[pc]) % nlev
        return _Factor(name, codes, labels, f"{name}: {nlev} levels crossed with {parent.name}"
                       + (" (rotated)" if rotate else ""))
    if draw(st.booleans(), label=f"{name} uneven"):
        p = rng.dirichlet(np.full(nlev, 0.3))
        how = "uneven"
    else:
        p = np.full(nlev, 1.0 / nlev)
        how = "uniform"
    codes = rng.choice(nlev, size=n, p=p)
    return _Factor(name, codes, labels, f"{name}: {nlev} levels partially crossed ({how} at random)")


# ------------------------------------------------------------------ covariates and effects
def _x_values(draw, rng, n: int) -> tuple[np.ndarray, str]:
    kind = draw(st.sampled_from(["normal", "integers 0..9", "uniform", "far from 0", "skewed"]), label="x kind")
    if kind == "normal":
        return rng.normal(size=n), kind
    if kind == "integers 0..9":
        return rng.integers(0, 10, size=n).astype(float), kind
    if kind == "uniform":
        return rng.uniform(-1, 1, size=n), kind
    if kind == "far from 0":
        return 20.0 + rng.normal(size=n), kind
    return rng.exponential(size=n), kind


def _corr_cov(rng, sds: np.ndarray, rho: float | None) -> np.ndarray:
    """A covariance with the given SDs: correlation rho (2 x 2) or a random correlation."""
    k = len(sds)
    if k == 1:
        return np.diag(sds**2)
    if rho is not None and k == 2:
        R = np.array([[1.0, rho], [rho, 1.0]])
    else:
        A = rng.normal(size=(k, k + 1))
        S = A @ A.T
        d = np.sqrt(np.diag(S))
        R = S / np.outer(d, d)
    return R * np.outer(sds, sds)


def _mvn(rng, cov: np.ndarray, size: int) -> np.ndarray:
    """Draws from N(0, cov) for a positive semi-definite cov (eigendecomposition)."""
    vals, vecs = np.linalg.eigh(cov)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    return rng.normal(size=(size, len(vals))) @ root.T


# ------------------------------------------------------------------ the strategy
@st.composite
def designs(draw, n_max: int = N_MAX, allow_weights: bool = True) -> Design:
    """A random design, model and simulated response (see the module docstring)."""
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    nfac = draw(st.integers(1, 3), label="number of grouping factors")
    factors = [_first_factor(draw, rng)]
    for k in range(2, nfac + 1):
        factors.append(_next_factor(draw, rng, k, factors))
    n = len(factors[0].codes)
    # optionally drop rows at random (unbalances the design; unused levels stay in the categories),
    # then repeat a design with too few rows, or keep a random subset of one with too many
    keep = np.ones(n, dtype=bool)
    thin = draw(st.sampled_from([0.0, 0.2, 0.5]), label="fraction of rows dropped")
    if thin:
        keep &= rng.random(n) >= thin
        assume(keep.sum() >= 4)
    rows = np.flatnonzero(keep)
    if rows.size < N_MIN:
        rows = np.tile(rows, -(-N_MIN // rows.size))
    if rows.size > n_max:
        rows = np.sort(rng.choice(rows, size=n_max, replace=False))
    for f in factors:
        f.codes = f.codes[rows]
    n = rows.size

    # covariates
    x, x_kind = _x_values(draw, rng, n)
    z_scale = draw(st.sampled_from([1.0, 1e3, 1e-3, 1e5]), label="z scale")
    z = rng.normal(size=n) * z_scale
    nf = draw(st.integers(2, 4), label="f levels")
    f_labels = [chr(ord("A") + i) for i in range(nf)][::-1] if draw(st.booleans(), label="f levels reversed") \
        else [chr(ord("A") + i) for i in range(nf)]
    f_codes = rng.integers(0, nf, size=n)

    # fixed effects
    use_x = draw(st.booleans(), label="x fixed")
    use_z = draw(st.booleans(), label="z fixed")
    use_f = draw(st.booleans(), label="f fixed")
    use_xf = use_x and use_f and draw(st.booleans(), label="x:f fixed")
    fixed = ["1"] + (["x"] if use_x else []) + (["z"] if use_z else []) + (["f"] if use_f else []) \
        + (["x:f"] if use_xf else [])
    sigma = draw(st.sampled_from(SIGMAS), label="residual sd")
    beta_scale = draw(st.sampled_from([1.0, 0.0, 100.0]), label="fixed-effect scale")

    # random-effects terms, one per grouping factor (nested intercepts possibly with a slash)
    terms: list[_Term] = []
    by_name = {f.name: f for f in factors}
    slash_done: set[str] = set()
    for fac in factors:
        kind = draw(st.sampled_from(TERM_KINDS), label=f"{fac.name} term")
        groups = [fac.parent, fac.name] if fac.parent else [fac.name]
        gtext = ":".join(groups)
        ptext = fac.nested_in
        prev = next((t for t in terms if t.groups == [ptext] and t.kind == "1"), None) if ptext else None
        if prev is not None and kind == "1" and ptext not in slash_done \
                and draw(st.booleans(), label=f"{fac.name} slash"):
            # (1 | parent/g) replaces the parent's own intercept term
            terms.remove(prev)
            terms.append(_Term("1/", [ptext, fac.name], f"(1 | {ptext}/{fac.name})",
                               [((ptext,), "1"), ((ptext, fac.name), "1")]))
            slash_done.add(ptext)
            continue
        text = {"1": f"(1 | {gtext})", "x": f"(x | {gtext})", "x||": f"(x || {gtext})",
                "0+f": f"(0 + f | {gtext})"}[kind]
        parts = [(tuple(groups), "1"), (tuple(groups), "x0")] if kind == "x||" else [(tuple(groups), kind)]
        terms.append(_Term(kind, groups, text, parts))

    # missing values, weights
    miss_col = draw(st.sampled_from([None, "x", None, "z", "f"]), label="column with missing values")
    miss_frac = draw(st.sampled_from([0.05, 0.2]), label="fraction missing") if miss_col else 0.0
    use_w = allow_weights and draw(st.integers(0, 5), label="weights") == 5
    w = (rng.integers(1, 10, size=n).astype(float) if draw(st.booleans(), label="integer weights")
         else rng.uniform(0.2, 5.0, size=n)) if use_w else np.ones(n)

    # simulate y
    eta = np.zeros(n)
    F = np.eye(nf)[f_codes]  # indicators of f
    beta = rng.normal(size=4 + nf) * beta_scale
    eta += beta[0] + beta[1] * x + beta[2] * z / z_scale + F[:, 1:] @ beta[3:2 + nf] + beta[-1] * x * (f_codes == 1)
    re_desc = []
    for t in terms:
        for groups, kind in t.parts:
            codes, nlev = _group_codes([by_name[g] for g in groups])
            ncol = {"1": 1, "x0": 1, "x": 2, "0+f": nf}[kind]
            ratios = np.array([draw(st.sampled_from(SD_RATIOS), label=f"{t.text} sd ratio {j}") for j in range(ncol)])
            rho = None
            if kind == "x":
                rho = draw(st.sampled_from([0.0, 0.5, -0.9, 1.0, -1.0]), label=f"{t.text} correlation")
            cov = _corr_cov(rng, ratios * sigma, rho)
            b = _mvn(rng, cov, nlev)  # nlev x ncol
            cols = {"1": np.ones((n, 1)), "x0": x[:, None], "x": np.column_stack([np.ones(n), x]), "0+f": F}[kind]
            eta += np.sum(cols * b[codes], axis=1)
            re_desc.append(f"{':'.join(groups)}[{kind}] sd/sigma {ratios.tolist()}" + (f" rho {rho}" if rho is not None else ""))
    y = eta + sigma * rng.normal(size=n) / np.sqrt(w)

    data = pd.DataFrame({"y": y})
    for fac in factors:
        data[fac.name] = pd.Categorical.from_codes(fac.codes, categories=fac.labels)
    data["x"], data["z"] = x, z
    data["f"] = pd.Categorical.from_codes(f_codes, categories=f_labels)
    if use_w:
        data["w"] = w
    if miss_col:
        rows = rng.random(n) < miss_frac
        if miss_col == "f":
            data["f"] = pd.Categorical.from_codes(np.where(rows, -1, f_codes), categories=f_labels)
        else:
            data.loc[rows, miss_col] = np.nan
    if draw(st.booleans(), label="rows shuffled"):
        data = data.iloc[rng.permutation(n)].reset_index(drop=True)

    formula = "y ~ " + " + ".join(fixed[1:] or ["1"]) + " + " + " + ".join(t.text for t in terms)
    n_used = _check_lme4_accepts(data, formula, terms, fixed, use_w)
    REML = draw(st.booleans(), label="REML")
    desc = "; ".join(
        [f"n={n} ({n_used} complete cases)", *(f.how for f in factors), f"x {x_kind}", f"z scale {z_scale:g}", f"f {nf} levels",
         f"sigma {sigma:g}", f"beta scale {beta_scale:g}", *re_desc]
        + ([f"{miss_frac:.0%} of {miss_col} missing"] if miss_col else [])
        + (["prior weights w"] if use_w else []) + (["REML" if REML else "ML"])
    )
    return Design(data=data, formula=formula, REML=REML, description=desc, weights="w" if use_w else None)


def _group_codes(factors: list[_Factor]) -> tuple[np.ndarray, int]:
    """Codes of the interaction of factors (only combinations that occur)."""
    keys = np.stack([f.codes for f in factors], axis=1)
    uniq, codes = np.unique(keys, axis=0, return_inverse=True)
    return codes.ravel(), len(uniq)


def _check_lme4_accepts(data: pd.DataFrame, formula: str, terms: list[_Term], fixed: list[str], weights: bool) -> int:
    """Filter out (hypothesis.assume) what lme4's input checks refuse, on the complete cases,
    and models whose fixed and random effects together can reproduce y exactly; returns the
    number of complete cases."""
    used = {"y"} | {c for t in fixed[1:] for c in t.split(":")}
    for t in terms:
        used |= set(t.groups)
        used |= {"x"} if t.kind in ("x", "x||") else set()
        used |= {"f"} if t.kind == "0+f" else set()
    if weights:
        used.add("w")
    cc = data.loc[data[sorted(used)].notna().all(axis=1)]
    n = len(cc)
    assume(n >= 10)
    F = pd.get_dummies(cc["f"].cat.remove_unused_categories()).to_numpy(dtype=float)
    x = cc["x"].to_numpy(dtype=float)
    cols = [np.ones((n, 1))]
    for t in fixed[1:]:
        cols.append({"x": x[:, None], "z": cc[["z"]].to_numpy(dtype=float), "f": F, "x:f": x[:, None] * F}[t])
    seen: set[tuple] = set()  # (partition, columns spanned)
    for t in terms:
        for groups, kind in t.parts:
            codes, nlev = _group_codes([_Factor(g, cc[g].cat.codes.to_numpy(), [], "") for g in groups])
            assume(2 <= nlev < n)  # checkNlevels
            # two terms of the same kind on the same partition of the rows (g2 nested in g1 with
            # one sublevel each): the model is not identifiable, and lme4's Hessian check says so
            # or not by rounding
            # (also when the kinds differ but span a common column: (1|g1) and (x|g3) with g3
            # nested in g1 with one sublevel each alias their intercepts)
            partition = tuple(pd.factorize(codes)[0])
            spans = {"1": {"1"}, "x0": {"x"}, "x": {"1", "x"}, "0+f": {"1", "f"}}[kind]
            assume(not any(p == partition and spans & s for p, s in seen))
            seen.add((partition, frozenset(spans)))
            J = np.eye(nlev)[codes]
            lhs = {"1": np.ones((n, 1)), "x0": x[:, None], "x": np.column_stack([np.ones(n), x]), "0+f": F}[kind]
            assume(nlev * lhs.shape[1] < n)  # checkZdims
            cols.append((J[:, :, None] * lhs[:, None, :]).reshape(n, -1))
    # rank([X Z]) = n: the random effects can absorb every residual, sigma -> 0 and theta -> infinity
    # (an unbounded likelihood: lme4's check.nobs.vs.rankZ, off by default, warns of it)
    XZ = np.column_stack(cols)
    XZ = XZ / np.maximum(np.linalg.norm(XZ, axis=0), 1e-300)
    assume(np.linalg.matrix_rank(XZ) < n)
    return n
