"""pylme.lmer on a dask DataFrame (pylme.scaleout.distributed): the fit from per-partition statistics
equals the in-memory fit (criterion 1e-10 relative, theta 1e-6, beta 1e-6 standard errors), the
scaled-residual quantiles are exact, fitted values and residuals are lazy dask Series, and bad
partitions fail with errors naming the partition and column."""
from __future__ import annotations

import warnings

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

import pylme
import pylme.scaleout.distributed
from pylme import datasets
from pylme.scaleout.distributed import exact_quantiles
from pylme.errors import DataError, ModelError


@pytest.fixture(autouse=True)
def _synchronous():
    """Partitions computed in this process, one at a time (the machine is shared)."""
    with dask.config.set(scheduler="synchronous"):
        yield


def fit_both(formula: str, data: pd.DataFrame, npartitions: int, **kwargs):
    """The in-memory fit and the fit from ``npartitions`` partitions of the same rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm0 = pylme.lmer(formula, data, **kwargs)
        fm = pylme.lmer(formula, dd.from_pandas(data, npartitions=npartitions, sort=False), **kwargs)
    return fm0, fm


def assert_same_fit(fm0, fm) -> None:
    """The conformance tolerances of the issue: criterion 1e-10 relative, theta 1e-6, beta 1e-6 SE."""
    crit0 = fm0.REMLcrit() if fm0.REML else fm0.deviance(REML=False)
    crit = fm.REMLcrit() if fm.REML else fm.deviance(REML=False)
    assert abs(crit / crit0 - 1) < 1e-10
    np.testing.assert_allclose(fm.theta, fm0.theta, atol=1e-6, rtol=0)
    se = np.sqrt(np.diag(fm0.vcov().to_numpy()))
    assert np.all(np.abs(fm.fixef().to_numpy() - fm0.fixef().to_numpy()) <= 1e-6 * se)
    assert list(fm.fixef().index) == list(fm0.fixef().index)
    np.testing.assert_allclose(fm.vcov().to_numpy(), fm0.vcov().to_numpy(), rtol=1e-5)
    assert fm.sigma() == pytest.approx(fm0.sigma(), rel=1e-7)
    assert fm.nobs() == fm0.nobs()
    for name, re0 in fm0.ranef(condVar=False).items():
        re = fm.ranef(condVar=False)[name]
        assert list(re.index) == list(re0.index)
        np.testing.assert_allclose(re.to_numpy(), re0.to_numpy(), atol=1e-5 * max(1.0, np.abs(re0.to_numpy()).max()))


def test_sleepstudy_correlated_slopes_equal_in_memory():
    d = datasets.load("sleepstudy")
    fm0, fm = fit_both("Reaction ~ Days + (Days | Subject)", d, 5)
    assert_same_fit(fm0, fm)
    r0, r = fm0.ranef(), fm.ranef()
    np.testing.assert_allclose(r.condVar["Subject"], r0.condVar["Subject"], rtol=1e-5)
    assert str(fm.summary()) == str(fm0.summary())


def test_penicillin_crossed_and_ml():
    d = datasets.load("Penicillin")
    fm0, fm = fit_both("diameter ~ 1 + (1 | plate) + (1 | sample)", d, 4, REML=False)
    assert_same_fit(fm0, fm)
    r0, r = fm0.ranef(), fm.ranef()
    for k in ("plate", "sample"):
        np.testing.assert_allclose(r.condVar[k], r0.condVar[k], rtol=1e-5)


def test_classroom_nested_with_factors_and_string_columns():
    d = datasets.load("classroom")
    d = d.assign(minority=d["minority"].astype(str), schoolid=d["schoolid"].astype(int))
    formula = "mathgain ~ mathkind + minority + sex + ses + housepov + (1 | schoolid/classid)"
    fm0, fm = fit_both(formula, d, 6)
    assert_same_fit(fm0, fm)
    assert str(fm.summary()) == str(fm0.summary())


def test_insteval_subset_blocked_in_memory_too():
    """A subset large enough for the in-memory fit to take the blocked objective itself."""
    d = datasets.load("InstEval").iloc[:20_000]
    fm0, fm = fit_both("y ~ service + lectage + (1 | s) + (1 | d) + (1 | dept:service)", d, 7)
    assert_same_fit(fm0, fm)


def test_missing_values_levels_in_some_partitions_weights_offset():
    d = datasets.load("sleepstudy").copy()
    rng = np.random.default_rng(3)
    d.loc[rng.choice(len(d), 12, replace=False), "Reaction"] = np.nan
    d.loc[[5, 77], "Days"] = np.nan
    d["w"] = rng.uniform(0.5, 2.0, len(d))
    d["off"] = rng.normal(0, 3, len(d))
    d = d.sort_values("Subject", kind="stable").reset_index(drop=True)  # each partition: a few subjects only
    d["Subject"] = d["Subject"].astype(str)
    fm0, fm = fit_both("Reaction ~ Days + (Days | Subject)", d, 6, weights="w", offset="off")
    assert_same_fit(fm0, fm)
    assert list(fm.na_action) == list(fm0.na_action)
    assert fm.na_message == fm0.na_message
    assert str(fm.summary()) == str(fm0.summary())
    fitted = fm.fitted()
    assert isinstance(fitted, dd.Series)
    pd.testing.assert_series_equal(fitted.compute(), fm0.fitted(), check_names=False, rtol=1e-6)
    pd.testing.assert_series_equal(fm.residuals(type="pearson", scaled=True).compute(),
                                   fm0.residuals(type="pearson", scaled=True), check_names=False, rtol=1e-5)


def test_rank_deficient_fixed_effects_dropped_as_in_memory():
    d = datasets.load("sleepstudy").assign(Days2=lambda f: 2 * f["Days"])
    fm0, fm = fit_both("Reaction ~ Days + Days2 + (1 | Subject)", d, 3)
    assert fm.lmod.col_dropped == fm0.lmod.col_dropped == ["Days2"]
    assert_same_fit(fm0, fm)


def test_exact_quantiles_are_numpys():
    rng = np.random.default_rng(7)
    x = np.round(rng.standard_t(3, 10_001), 2)  # ties
    ddf = dd.from_pandas(pd.DataFrame({"x": x}), npartitions=9)
    probs = [0, 0.1, 0.25, 0.5, 0.75, 0.999, 1]
    got = exact_quantiles(ddf, lambda part: part["x"].to_numpy(), probs)
    np.testing.assert_array_equal(got, np.quantile(x, probs))


# ---------------------------------------------------------------- bad input
def sleep_parts(n: int = 4) -> list[pd.DataFrame]:
    d = datasets.load("sleepstudy").assign(Subject=lambda f: f["Subject"].astype(str))
    return [d.iloc[k::n].copy() for k in range(n)]


def from_parts(parts: list[pd.DataFrame]):
    return dd.from_delayed([dask.delayed(p) for p in parts], meta=parts[0].iloc[:0], verify_meta=False)


def test_column_missing_from_a_partition_is_named():
    parts = sleep_parts()
    parts[2] = parts[2].drop(columns="Days")
    with pytest.raises(DataError, match=r"partition 2 has no column\(s\) 'Days'"):
        pylme.lmer("Reaction ~ Days + (1 | Subject)", from_parts(parts))


def test_types_differing_between_partitions_are_named():
    parts = sleep_parts()
    parts[3]["Days"] = parts[3]["Days"].astype(str)
    with pytest.raises(DataError, match=r"column 'Days' is numeric in partition 0 but character in partition 3"):
        pylme.lmer("Reaction ~ Days + (1 | Subject)", from_parts(parts))


def test_level_spelled_two_ways_is_named():
    parts = [p.assign(g=np.where(np.arange(len(p)) % 2, "north", "south")) for p in sleep_parts()]
    parts[1]["g"] = parts[1]["g"].str.replace("north", "North")
    with pytest.raises(DataError, match=r"factor 'g' has level 'north' in partition 0 and 'North' in partition 1, never together"):
        pylme.lmer("Reaction ~ Days + g + (1 | Subject)", from_parts(parts))


def test_empty_partition_is_no_error():
    parts = sleep_parts()
    d = pd.concat(parts)
    parts.insert(2, parts[0].iloc[:0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm0 = pylme.lmer("Reaction ~ Days + (1 | Subject)", d)
        fm = pylme.lmer("Reaction ~ Days + (1 | Subject)", from_parts(parts))
    assert_same_fit(fm0, fm)


def _unreadable(k: int) -> pd.DataFrame:
    raise OSError(f"cannot open part.{k}.parquet")


def test_partition_that_fails_to_read_is_named():
    parts = sleep_parts()
    tasks = [dask.delayed(p) for p in parts[:3]] + [dask.delayed(_unreadable)(3)]
    ddf = dd.from_delayed(tasks, meta=parts[0].iloc[:0], verify_meta=False)
    with pytest.raises(DataError, match=r"partition 3 of 4 could not be read: OSError: cannot open part.3.parquet"):
        pylme.lmer("Reaction ~ Days + (1 | Subject)", ddf)


def test_what_needs_the_rows_says_so():
    d = datasets.load("sleepstudy")
    fm = pylme.lmer("Reaction ~ Days + (1 | Subject)", dd.from_pandas(d, npartitions=2))
    with pytest.raises(ModelError, match="rows stay in the partitions"):
        fm.getME("X")
    with pytest.raises(ModelError, match="rows stay in the partitions"):
        fm.refit(d["Reaction"])
    with pytest.raises(DataError, match="weights must be the name of a column"):
        pylme.lmer("Reaction ~ Days + (1 | Subject)", dd.from_pandas(d, npartitions=2), weights=np.ones(180))


# ---------------------------------------------------------------- statistics per group of block-1 levels
@pytest.fixture
def grouped(monkeypatch):
    """Every scalar-intercept block 1 reduced per group of levels, however few its levels."""
    monkeypatch.setattr(pylme.scaleout.distributed, "GROUPED_MIN_LEVELS", 1)


def test_grouped_statistics_equal_in_memory_with_a_shuffle(grouped):
    d = datasets.load("InstEval").iloc[:20_000].copy()
    d.loc[d.index[::97], "y"] = np.nan
    d = d.sample(frac=1.0, random_state=1)  # each student's rows in several partitions: shuffled by s first
    fm0, fm = fit_both("y ~ service + lectage + (1 | s) + (1 | d) + (1 | dept:service)", d, 5)
    assert isinstance(fm.objective, pylme.scaleout.distributed.GroupedObjective)
    assert_same_fit(fm0, fm)
    r0, r = fm0.ranef(), fm.ranef()  # block 1's conditional variances from a pass, block 2's from the factor
    assert set(r.condVar) == set(r0.condVar) == {"s", "d", "dept:service"}
    for name in r0.condVar:
        np.testing.assert_allclose(r.condVar[name], r0.condVar[name], rtol=1e-5)


def test_grouped_statistics_penicillin_and_one_factor(grouped):
    fm0, fm = fit_both("diameter ~ 1 + (1 | plate) + (1 | sample)", datasets.load("Penicillin"), 4)
    assert isinstance(fm.objective, pylme.scaleout.distributed.GroupedObjective)
    assert_same_fit(fm0, fm)
    fm0, fm = fit_both("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy"), 3)
    assert_same_fit(fm0, fm)
    assert str(fm.summary()) == str(fm0.summary())


def test_crossed_ratings_from_parquet_and_the_cross_maps_bound(grouped, tmp_path):
    """A MovieLens-shaped crossed design (conformance.large_designs.ratings_chunks, users x items),
    written chunk by chunk to Parquet: the fit per group of users equals the in-memory fit; before
    the groups' sums are made, a pass bounds the cross map's entries (per group of users with equal
    counts, the pairs of items its users rated, at most the triangle of block 2), and a design whose
    bound does not fit fails there, naming the cross map."""
    from conformance.large_designs import RATINGS_FORMULA, ratings_chunks

    frames = []
    for k, (frame, truth) in enumerate(ratings_chunks(n=6_000, n_users=300, n_items=120, nchunks=3)):
        frame.to_parquet(tmp_path / f"part.{k}.parquet", index=False)
        frames.append(frame)
    whole = pd.concat(frames, ignore_index=True)
    assert not whole.duplicated(["user", "item"]).any() and whole["user"].nunique() == 300
    ratings = dd.read_parquet(str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm0, fm = pylme.lmer(RATINGS_FORMULA, whole), pylme.lmer(RATINGS_FORMULA, ratings)
    assert isinstance(fm.objective, pylme.scaleout.distributed.GroupedObjective)
    assert_same_fit(fm0, fm)
    r0, r = fm0.ranef(), fm.ranef()
    for name in ("user", "item"):
        np.testing.assert_allclose(r.condVar[name], r0.condVar[name], rtol=1e-5)
    objective = fm.objective  # S^-1 by solves where block 2 is factored by CHOLMOD: LAPACK's dpotri's
    Q = objective._block2_inverse(fm.theta)
    assert objective.fill.kind == "dense"
    with pytest.MonkeyPatch.context() as mp:  # a dense block 2 above DENSE_TILE: by solves, not dpotri
        mp.setattr(pylme.scaleout.distributed, "DENSE_TILE", 1)
        np.testing.assert_allclose(objective._block2_inverse(fm.theta), Q, rtol=1e-9, atol=1e-12)
    objective.fill = pylme.objectives.blocked.SparseFill(objective._pattern())
    np.testing.assert_allclose(objective._block2_inverse(fm.theta), Q, rtol=1e-9, atol=1e-12)

    count = whole.groupby("user").size()  # each user's items are distinct: k = the count
    q2 = whole["item"].nunique()
    per_group = (count * (count + 1) // 2).groupby(count).sum()
    bound = int(np.minimum(per_group, q2 * (q2 + 1) // 2).sum())
    assert 0 < bound < int(per_group.sum())  # the small counts' groups are capped by the triangle
    made = []
    monkey = pytest.MonkeyPatch()
    monkey.setattr(pylme.scaleout.distributed.PartitionModel, "grouped_stats", lambda *a: made.append(a))
    with monkey.context():  # room for neither the map nor block 2 formed from A21 (its dense block alone)
        assert 8.0 * q2 * q2 < 40.0 * bound
        with pytest.raises(ModelError, match=rf"the largest block is cross map A21 V A12 \(sparse map, at most "
                                             rf"{bound:,} entries, 1 \| user, 1 \| item; order {q2}\): "):
            pylme.lmer(RATINGS_FORMULA, ratings, control=pylme.lmerControl(memory_limit=8.0 * q2 * q2))
    monkey.undo()
    assert not made


def test_crossed_ratings_without_the_cross_map(grouped, tmp_path):
    """The ratings design with room for A21 and block 2 dense but not for the cross map: the
    partitions send A21 and block 1's row counts instead of the groups' sums of A21_l A12_l, block
    2 is formed from A21 each evaluation (pylme.objectives.rankupdate), and the fit equals the
    in-memory fit and the cross map's (criterion 1e-10 relative, theta 1e-6, beta 1e-6 standard
    errors), conditional variances included."""
    from conformance.large_designs import RATINGS_FORMULA, ratings_chunks

    for k, (frame, truth) in enumerate(ratings_chunks(n=6_000, n_users=300, n_items=120, nchunks=3)):
        frame.to_parquet(tmp_path / f"part.{k}.parquet", index=False)
    whole = pd.read_parquet(tmp_path)
    ratings = dd.read_parquet(str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm0, mapped = pylme.lmer(RATINGS_FORMULA, whole), pylme.lmer(RATINGS_FORMULA, ratings)
        cross = next(p for p in mapped.objective.plan if p.name == "cross map A21 V A12")
        limit = 0.75 * sum(p.bytes for p in mapped.objective.plan)  # the map's 40 bytes an entry do not fit
        fm = pylme.lmer(RATINGS_FORMULA, ratings, control=pylme.lmerControl(memory_limit=limit))
    assert cross.bytes > sum(p.bytes for p in mapped.objective.plan) - limit
    objective = fm.objective
    assert isinstance(objective, pylme.scaleout.distributed.GroupedObjective) and objective.cross is None
    assert [p.name for p in objective.plan] == ["block 1", "[X y]", "A21 (block 2 x block 1)", "block 2"]
    assert objective.plan[-1].kind == "dense, formed from A21 each evaluation (no cross map)"
    assert objective.fill.C.nnz == len(whole)  # each (user, item) pair once
    for other in (fm0, mapped):
        assert_same_fit(other, fm)
    r0, r = fm0.ranef(), fm.ranef()
    for name in ("user", "item"):
        np.testing.assert_allclose(r.condVar[name], r0.condVar[name], rtol=1e-5)


def test_cond_var_with_correlated_slopes_in_block_2(monkeypatch):
    """Block 1's conditional variances where block 2's Lambda is not diagonal, (service | dept): the
    factor's ``B = Lambda2' Z2'Z1 Lambda1`` (pylme gave 1.9% off with Lambda2 for Lambda2'), from
    the level-wise statistics and from those per group of students, equal to the in-memory fit's."""
    d = datasets.load("InstEval").iloc[:20_000].copy()
    formula = "y ~ service + (1 | s) + (service | dept)"
    fm0, fm = fit_both(formula, d, 4)
    assert fm.objective.terms1 == ["1 | s"] and not fm.objective.diag2
    r0 = fm0.ranef()
    monkeypatch.setattr(pylme.scaleout.distributed, "GROUPED_MIN_LEVELS", 1)
    grouped = pylme.lmer(formula, dd.from_pandas(d, npartitions=4, sort=False))
    assert isinstance(grouped.objective, pylme.scaleout.distributed.GroupedObjective)
    for r in (fm.ranef(), grouped.ranef()):
        for name, v0 in r0.condVar.items():
            np.testing.assert_allclose(r.condVar[name], v0, rtol=0, atol=1e-6 * np.abs(v0).max())


def test_scale_learned_over_all_partitions():
    """scale(x) learns x's mean and sd from all rows (R's model.frame: before rows with missing
    values are dropped) by passes over the partitions: the fit equals the in-memory fit, with its
    column names; poly() (orthogonal polynomials of all rows at once) is still refused by name."""
    d = datasets.load("sleepstudy").copy()
    d["Reaction"] = d["Reaction"].astype(float)
    d.loc[d.index[::7], "Reaction"] = np.nan  # dropped from the fit, counted in scale(Days)'s mean and sd
    d.loc[d.index[3], "Days"] = np.nan
    for formula in ("Reaction ~ scale(Days) + (scale(Days) | Subject)",
                    "Reaction ~ scale(Days, center = FALSE) + (1 | Subject)",
                    "Reaction ~ scale(log(Days + 1), center = 2, scale = TRUE) + (1 | Subject)"):
        fm0, fm = fit_both(formula, d, 4)
        assert_same_fit(fm0, fm)
        assert fm.lmod.model.states.keys() == fm0.lmod.frame.states.keys()
        for key, want in fm0.lmod.frame.states.items():  # (center or None, scale or None)
            got = fm.lmod.model.states[key]
            assert [v is None for v in got] == [v is None for v in want]
            assert [v for v in got if v is not None] == pytest.approx([v for v in want if v is not None], rel=1e-13)


def assert_same_states(fm0, fm, rel: float = 1e-12) -> None:
    """The dask fit's learned states (poly's recurrence, the splines' knots, scale's centre and
    scale) equal the in-memory fit's."""
    states0, states = fm0.lmod.frame.states, fm.lmod.model.states
    assert states.keys() == states0.keys()
    for key, want in states0.items():
        got = states[key]
        if isinstance(want, tuple):
            assert [v is None for v in got] == [v is None for v in want]
            assert [v for v in got if v is not None] == pytest.approx([v for v in want if v is not None], rel=rel)
            continue
        assert type(got) is type(want)
        for name, value in vars(want).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_allclose(getattr(got, name), value, rtol=rel, atol=0)
            else:
                assert getattr(got, name) == pytest.approx(value, rel=rel), (key, name)


def test_poly_bs_ns_learned_over_all_partitions():
    """poly() (its recurrence: one pass per degree), bs() and ns() (the range, then the knots as
    exact quantiles) learn from all partitions' rows, as in memory (before rows with missing
    values are dropped): the states equal the in-memory ones to 1e-12, the fits to the issue's
    tolerances; x far from 0 (around 2000) tests the recurrence's centring."""
    d = datasets.load("sleepstudy").copy()
    d["Reaction"] = d["Reaction"].astype(float)
    d.loc[d.index[::7], "Reaction"] = np.nan
    d.loc[d.index[3], "Days"] = np.nan
    d["x"] = d["Days"] * 3.1 + 2000 + np.sin(np.arange(len(d)))
    for formula in ("Reaction ~ poly(Days, 2) + (Days | Subject)",
                    "Reaction ~ poly(x, 3) + (1 | Subject)",
                    "Reaction ~ bs(x, df = 5) + (1 | Subject)",
                    "Reaction ~ ns(x, df = 4) + (1 | Subject)",
                    "Reaction ~ bs(Days, knots = c(3, 6), Boundary.knots = c(0, 10)) + (1 | Subject)",
                    "Reaction ~ poly(Days, 3, raw = TRUE) + scale(x) + (1 | Subject)",
                    "Reaction ~ ns(log(x), df = 3, intercept = TRUE) - 1 + (1 | Subject)"):
        fm0, fm = fit_both(formula, d, 5)
        assert_same_fit(fm0, fm)
        assert_same_states(fm0, fm)
        assert list(fm.fixef().index) == list(fm0.fixef().index)


def test_stateful_calls_refused_where_in_memory_differs_and_checked_as_in_memory():
    d = datasets.load("sleepstudy")
    ddf = dd.from_pandas(d, npartitions=3)
    with pytest.raises(ModelError, match=r"poly\(\) inside scale\(\) learns from all rows at once"):
        pylme.lmer("Reaction ~ scale(poly(Days, 2)) + (1 | Subject)", ddf)
    with pytest.raises(ModelError, match=r"scale\(\) in the response learns from all rows at once"):
        pylme.lmer("scale(Reaction) ~ Days + (1 | Subject)", ddf)
    want = r"poly\(\): 'degree' \(10\) must be less than the number of unique points \(10\)"
    for data in (d, ddf):  # Days has 10 values, each partition fewer: the count is over all of them
        with pytest.raises(DataError, match=want):
            pylme.lmer("Reaction ~ poly(Days, 10) + (1 | Subject)", data)
