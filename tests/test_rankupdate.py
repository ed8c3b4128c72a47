"""Block 2 formed from A21 each evaluation, without the cross map (pylme.objectives.rankupdate):
the same criterion and PLS solution as the cross-map path and the CHOLMOD path, chosen by the
memory plan where the cross map does not fit, the same fit as lme4 1.1-31's (live R) on a small
MovieLens-shaped ratings design; the Dask path (tests/test_distributed.py has the cross-map one)
in test_distributed.py."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pylme
from conformance.large_designs import RATINGS_FORMULA, ratings_chunks
from pylme.objectives.blocked import BlockedDevfun
from pylme.objectives.rankupdate import TILE, RankUpdateFill
from pylme.objectives.tiled import DENSE_TILE, DenseFill

INSTEVAL = "y ~ service + lectage + (1 | s) + (1 | d) + (1 | dept:service)"


def ratings(n: int = 20_000, n_users: int = 1_000, n_items: int = 300) -> pd.DataFrame:
    """A small design of the simulator of ``--bigdata movielens`` (users x items crossed)."""
    return pd.concat([f for f, _ in ratings_chunks(n=n, n_users=n_users, n_items=n_items, nchunks=2)],
                     ignore_index=True)


def quiet_lmer(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylme.lmer(*args, **kwargs)


@pytest.mark.parametrize("tile", [TILE, 100])
def test_direct_block_2_equals_the_cross_map_and_cholmod(monkeypatch, tile):
    """An InstEval subset (students block 1; d and dept:service, two scalar terms, block 2): at
    thetas inside and on the boundary, the criterion without the cross map equals the cross map's
    and CHOLMOD's to 1e-10 relative, and the PLS solution read off the factor is the same; with
    tiles of 100 effects (many sparse products) as with one tile."""
    import pylme.objectives.rankupdate as rankupdate

    monkeypatch.setattr(rankupdate, "TILE", tile)
    data = pylme.datasets.load("InstEval").iloc[:30_000]
    dev = pylme.lmer(INSTEVAL, data, devFunOnly=True)
    mapped, direct = BlockedDevfun(dev, fill="dense"), BlockedDevfun(dev, fill="direct")
    assert mapped.cross is not None and direct.cross is None and isinstance(direct.fill, RankUpdateFill)
    assert len(direct.fill.tiles) == (1 if tile == TILE else -(-direct.q2 // tile)) and direct.q2 < TILE
    assert direct.memory_plan().splitlines()[-1].startswith(
        "block 2 (dense, formed from A21 each evaluation (no cross map), 1 | d, 1 | dept:service; order ")
    for theta in ([0.3, 0.4, 0.1], [1.0, 1.0, 1.0], [0.0, 0.5, 0.2], [0.7, 0.0, 0.0], [2.0, 0.05, 3.0]):
        theta = np.array(theta)
        assert direct(theta) == pytest.approx(mapped(theta), rel=1e-10)
        assert direct(theta) == pytest.approx(dev(theta), rel=1e-10)
    theta = np.array([0.5, 0.4, 0.3])
    st, st0 = direct.pls_state(theta), mapped.pls_state(theta)
    np.testing.assert_allclose(st.beta, st0.beta, rtol=1e-9)
    np.testing.assert_allclose(st.b, st0.b, rtol=0, atol=1e-9 * np.abs(st0.b).max())
    assert st.pwrss == pytest.approx(st0.pwrss, rel=1e-10)


def test_memory_plan_chooses_no_cross_map_where_the_map_does_not_fit():
    """A ratings design (1,000 users, 300 items): with room for A21 and the dense block but not for
    the cross map, 'auto' forms block 2 from A21 and the fit equals the cross map's (criterion
    1e-10 relative, theta 1e-6, beta 1e-6 standard errors); with room for neither, the refusal
    names the cross map; 'direct' is refused where block 1 is not a scalar term."""
    data = ratings()
    dev = pylme.lmer(RATINGS_FORMULA, data, devFunOnly=True)
    mapped = BlockedDevfun(dev)
    cross = next(p for p in mapped.plan if p.name == "cross map A21 V A12")
    direct_bytes = sum(p.bytes for p in mapped.plan if p.name != "block 2" and p is not cross) + sum(
        p.bytes for p in mapped.direct_plans(mapped.A21))
    planned_cross = 64.0 * cross.bytes / 12.0  # while it is built
    assert direct_bytes < planned_cross
    limit = (direct_bytes + planned_cross) / 2
    chosen = BlockedDevfun(dev, memory_limit=limit)
    assert chosen.cross is None and "formed from A21" in chosen.memory_plan()
    fm0 = quiet_lmer(RATINGS_FORMULA, data)
    fm = quiet_lmer(RATINGS_FORMULA, data, control=pylme.lmerControl(memory_limit=limit))
    assert fm0.opt.objective.cross is not None and fm.opt.objective.cross is None
    assert fm.REMLcrit() == pytest.approx(fm0.REMLcrit(), rel=1e-10)
    np.testing.assert_allclose(fm.theta, fm0.theta, rtol=0, atol=1e-6)
    se = np.sqrt(np.diag(fm0.vcov().to_numpy()))
    assert np.all(np.abs(fm.fixef().to_numpy() - fm0.fixef().to_numpy()) <= 1e-6 * se)
    with pytest.raises(pylme.ModelError, match=r"the largest block is cross map A21 V A12 \(sparse map, 1 \| user, "
                                               r"1 \| item; order 300\)"):
        BlockedDevfun(dev, memory_limit=direct_bytes / 2)
    slopes = pylme.lmer("y ~ service + (service | s) + (1 | d)", pylme.datasets.load("InstEval").iloc[:20_000],
                        devFunOnly=True)
    with pytest.raises(pylme.ModelError, match=r"block 2 is formed from A21 \(fill='direct'\) only where block 1 is "
                                               r"a scalar term .* here block 1 is service \| s"):
        BlockedDevfun(slopes, fill="direct")


def test_fit_without_the_cross_map_is_lme4s():
    """Live R (lme4 1.1-31): the ratings design (20,000 ratings, 1,000 users x 300 items) fitted
    with block 2 formed from A21 gives lme4's REML criterion (1e-8 relative), theta (1e-4),
    fixed effects (1e-4 standard errors) and sigma."""
    from postfit_r import r_postfit

    data = ratings()
    dev = pylme.lmer(RATINGS_FORMULA, data, devFunOnly=True)
    mapped = BlockedDevfun(dev)
    limit = sum(p.bytes for p in mapped.plan if p.name != "block 2" and not p.name.startswith("cross")) + sum(
        p.bytes for p in mapped.direct_plans(mapped.A21)) + 1.0
    fm = quiet_lmer(RATINGS_FORMULA, data, control=pylme.lmerControl(memory_limit=limit))
    assert fm.opt.objective.cross is None
    theta, out = r_postfit(RATINGS_FORMULA, data, ["REMLcrit(fm)", "fixef(fm)", "sqrt(diag(as.matrix(vcov(fm))))",
                                                   "sigma(fm)"])
    crit, beta, se, sigma = (r.table["value"].to_numpy() for r in out)
    assert fm.REMLcrit() == pytest.approx(crit[0], rel=1e-8)
    np.testing.assert_allclose(fm.theta, theta, rtol=0, atol=1e-4)
    assert np.all(np.abs(fm.fixef().to_numpy() - beta) <= 1e-4 * se)
    assert fm.sigma() == pytest.approx(sigma[0], rel=1e-6)


def direct_limit(dev) -> float:
    """A memory limit with room for block 2 formed from A21 but not for the cross map."""
    mapped = BlockedDevfun(dev)
    return sum(p.bytes for p in mapped.plan if p.name != "block 2" and not p.name.startswith("cross")) + sum(
        p.bytes for p in mapped.direct_plans(mapped.A21)) + 1.0


def test_block_2_by_tiles_is_one_dpotrfs_fit(monkeypatch):
    """The ratings design (300 items) with block 2 factored by tiles of 64 effects
    (pylme.objectives.tiled.dense_cholesky, as for orders above DENSE_TILE) instead of one dpotrf:
    the same fit (REML criterion 1e-10 relative, theta 1e-6, beta 1e-6 standard errors); and where
    a later tile is not positive definite, the same outcome as one dpotrf's: an infinite
    criterion, and pls_state's ModelError."""
    data = ratings()
    dev = pylme.lmer(RATINGS_FORMULA, data, devFunOnly=True)
    control = pylme.lmerControl(memory_limit=direct_limit(dev))
    fm0 = quiet_lmer(RATINGS_FORMULA, data, control=control)
    monkeypatch.setattr(DenseFill, "tile", 64)
    fm = quiet_lmer(RATINGS_FORMULA, data, control=control)
    assert fm.opt.objective.cross is None and fm.opt.objective.fill.tile == 64 < fm.opt.objective.q2
    assert fm.REMLcrit() == pytest.approx(fm0.REMLcrit(), rel=1e-10)
    np.testing.assert_allclose(fm.theta, fm0.theta, rtol=0, atol=1e-6)
    se = np.sqrt(np.diag(fm0.vcov().to_numpy()))
    assert np.all(np.abs(fm.fixef().to_numpy() - fm0.fixef().to_numpy()) <= 1e-6 * se)
    theta = np.array([1.0, 1.0])
    for tile in (64, DENSE_TILE):  # by tiles, and in one dpotrf
        direct = BlockedDevfun(dev, fill="direct")
        direct.fill.tile = tile
        fill = direct.fill
        fill.data22 = fill.data22.copy()
        fill.data22[(fill.rows22 == 200) & (fill.cols22 == 200)] = -1e6  # item 200: the fourth tile of 64
        assert direct(theta) == np.inf
        with pytest.raises(pylme.ModelError, match="the blocked factor is not positive definite at theta"):
            direct.pls_state(theta)
