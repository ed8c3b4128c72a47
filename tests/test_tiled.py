"""The tiled Cholesky factorisation of a fixed-pattern block (pylme.objectives.tiled) against dense LAPACK."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

from pylme.objectives.tiled import DenseFill, TiledFill, TilePlan, dense_cholesky, plan_tiles


def crossed(n_obs: int, levels: tuple[int, int], seed: int) -> sp.csc_matrix:
    """I + 0.5 Z'Z for two crossed grouping factors: the lower triangle, CSC, sorted indices."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, levels[0], n_obs)
    b = levels[0] + (a * levels[1] // levels[0] + rng.integers(0, levels[1] // 4, n_obs)) % levels[1]
    rows = np.repeat(np.arange(n_obs), 2)
    Z = sp.csr_matrix((np.ones(2 * n_obs), (rows, np.c_[a, b].ravel())), shape=(n_obs, sum(levels)))
    S = (0.5 * (Z.T @ Z) + sp.eye(sum(levels))).tocsc()
    low = sp.tril(S).tocsc()
    low.sort_indices()
    return low


def pattern_of(low: sp.csc_matrix) -> sp.csc_matrix:
    pat = low.copy()
    pat.data = np.ones(pat.nnz)
    return pat


def dense(low: sp.csc_matrix) -> np.ndarray:
    return (low + sp.tril(low, -1).T).toarray()


@pytest.fixture(scope="module")
def block() -> sp.csc_matrix:
    return crossed(3000, (500, 300), seed=1)


@pytest.mark.parametrize("tile", [64, 96, 128, 799, 1000])
def test_factor_and_solves_match_dense(block: sp.csc_matrix, tile: int) -> None:
    n = block.shape[0]  # 800: a short last tile for 96, 128 and 799 (of order 1); one tile for 1000
    plan = plan_tiles(pattern_of(block), sizes=(tile,))
    f = TiledFill(pattern_of(block), plan)
    S = dense(block)
    logdet = f.factor(block.data)
    assert logdet == pytest.approx(np.linalg.slogdet(S)[1], rel=1e-12)
    L = np.linalg.cholesky(S[np.ix_(plan.perm, plan.perm)])
    np.testing.assert_allclose(f.lower_factor(), L, atol=1e-12)
    rng = np.random.default_rng(tile)
    B = rng.standard_normal((n, 3))
    X = f.solve_L(B)
    np.testing.assert_allclose(X, np.linalg.solve(L, B[plan.perm]), atol=1e-10)
    np.testing.assert_allclose(f.solve_L(B[:, 1]), X[:, 1], atol=1e-14)
    y = np.linalg.solve(L.T, B[:, 0])
    expected = np.empty(n)
    expected[plan.perm] = y
    np.testing.assert_allclose(f.solve_Lt(B[:, 0]), expected, atol=1e-10)
    np.testing.assert_allclose(f.solve_Lt(f.solve_L(B)), np.linalg.solve(S, B), atol=1e-10)


def test_skipped_tiles_are_zero_in_the_dense_factor(block: sp.csc_matrix) -> None:
    plan = plan_tiles(pattern_of(block), sizes=(64,))
    f = TiledFill(pattern_of(block), plan)
    assert np.triu(~f.stored).sum() >= 20  # tiles above the diagonal really are skipped
    L = np.linalg.cholesky(dense(block)[np.ix_(plan.perm, plan.perm)])
    b = f.bounds
    for k, j in zip(*np.nonzero(~f.stored)):
        if j > k:  # tile U[k, j] = L[j, k]'
            assert np.abs(L[b[j]:b[j + 1], b[k]:b[k + 1]]).max() < 1e-14


def test_refactor_with_new_values(block: sp.csc_matrix) -> None:
    f = TiledFill(pattern_of(block), plan_tiles(pattern_of(block), sizes=(96,)))
    f.factor(block.data)
    vals = 2.0 * block.data
    assert f.factor(vals) == pytest.approx(np.linalg.slogdet(dense(block))[1] + block.shape[0] * np.log(2.0),
                                           rel=1e-12)


def test_not_positive_definite_returns_none(block: sp.csc_matrix) -> None:
    f = TiledFill(pattern_of(block), plan_tiles(pattern_of(block), sizes=(128,)))
    vals = block.data.copy()
    last_diag = block.indptr[-2]  # the diagonal entry of the last column
    vals[last_diag] = -1.0
    assert f.factor(vals) is None
    assert f.factor(block.data) is not None  # usable again afterwards


def test_plan_is_cheaper_than_dense_and_counts_stored_tiles(block: sp.csc_matrix) -> None:
    n = block.shape[0]
    plan = plan_tiles(pattern_of(block), sizes=(64, 128, 256))
    assert isinstance(plan, TilePlan) and plan.tile in (64, 128, 256)
    assert plan.flops < 0.5 * n**3 / 3
    assert plan.seconds == min(plan_tiles(pattern_of(block), sizes=(t,), perm=plan.perm).seconds for t in (64, 128, 256))
    f = TiledFill(pattern_of(block), plan)
    b = f.bounds
    sizes = np.diff(b)
    stored = sum(sizes[k] * sizes[j] for k, j in zip(*np.nonzero(f.stored)))
    assert plan.bytes == 8.0 * stored == 8.0 * f.buf.size
    assert sorted(plan.perm) == list(range(n))


def test_sparse_random_b_t_b(tile: int = 50) -> None:
    B = sp.random(900, 400, density=0.005, random_state=3, format="csc")
    low = sp.tril((B.T @ B + sp.eye(400)).tocsc()).tocsc()
    low.sort_indices()
    f = TiledFill(pattern_of(low), plan_tiles(pattern_of(low), sizes=(tile,)))
    assert f.factor(low.data) == pytest.approx(np.linalg.slogdet(dense(low))[1], rel=1e-12)


def test_fill_order_without_metis_is_cholmods_default(block: sp.csc_matrix, monkeypatch) -> None:
    """Where CHOLMOD has no METIS, the order is CHOLMOD's default one (still a permutation)."""
    import pylme.objectives.tiled as tiled
    from sksparse.cholmod import CholmodError, analyze

    def no_metis(A, mode="auto", ordering_method="default"):
        if ordering_method == "metis":
            raise CholmodError("METIS not installed")
        return analyze(A, mode=mode, ordering_method=ordering_method)

    monkeypatch.setattr(tiled, "analyze", no_metis)
    pat = pattern_of(block)
    perm = tiled.fill_order(pat)
    assert sorted(perm) == list(range(pat.shape[0]))
    np.testing.assert_array_equal(perm, analyze((pat + pat.T).tocsc(), mode="supernodal").P())


def spd(n: int, seed: int) -> np.ndarray:
    """A random symmetric positive definite matrix of order n (Fortran order)."""
    X = np.random.default_rng(seed).standard_normal((n, n + 5))
    return np.asfortranarray(X @ X.T / n + 0.1 * np.eye(n))


@pytest.mark.parametrize(("n", "tile"), [(500, 64), (501, 64), (65, 64), (64, 64), (1000, 333)])
def test_dense_cholesky_by_tiles_equals_lapack(n: int, tile: int) -> None:
    """By tiles (order above the tile) or in one dpotrf: scipy's Cholesky factor to 1e-12
    relative, the strict upper triangle untouched, as LAPACK leaves it."""
    A = spd(n, seed=n)
    S = A.copy(order="F")
    S[np.triu_indices(n, 1)] = 7.0
    assert dense_cholesky(S, tile) == 0
    ref = scipy.linalg.cholesky(A, lower=True)
    assert np.abs(np.tril(S) - ref).max() <= 1e-12 * np.abs(ref).max()
    assert np.all(S[np.triu_indices(n, 1)] == 7.0)


@pytest.mark.parametrize("tile", [64, 1000])
def test_dense_cholesky_not_positive_definite_gives_lapacks_info(tile: int) -> None:
    """A leading minor that is not positive definite in a later tile: dpotrf's info (the order of
    that minor), and DenseFill's factor is None, as with one dpotrf."""
    A = spd(500, seed=3)
    A[300, 300] = -1.0
    info = scipy.linalg.lapack.dpotrf(A.copy(order="F"), lower=1)[1]
    assert info == 301
    assert dense_cholesky(A.copy(order="F"), tile) == info
    fill = DenseFill(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 500)
    fill.tile = tile
    assert fill.factor_formed(A.copy(order="F")) is None
    assert fill.factor_formed(spd(500, seed=3)) is not None  # usable again afterwards


def test_dense_cholesky_refuses_c_order() -> None:
    with pytest.raises(ValueError, match="Fortran-ordered float64"):
        dense_cholesky(np.eye(3), 2)


def test_inverse_by_solves_equals_dpotri(monkeypatch) -> None:
    """The inverse of a factored system above DENSE_TILE (forced here at order 300 by a tile of 64):
    by chunks of solves, not LAPACK's one-call dpotri (OpenBLAS's buffer), the same to 1e-12."""
    from pylme.objectives import gradient

    rng = np.random.default_rng(5)
    A = rng.standard_normal((300, 300))
    L = np.asfortranarray(np.linalg.cholesky(A @ A.T + 300.0 * np.eye(300)))
    one = gradient.trailing_inverse(L.copy(order="F"))
    monkeypatch.setattr(gradient, "DENSE_TILE", 64)
    by_solves = gradient.trailing_inverse(L.copy(order="F"))
    lower = np.tril_indices(300)
    np.testing.assert_allclose(by_solves[lower], one[lower], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(by_solves, by_solves.T, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(by_solves @ (L @ L.T), np.eye(300), atol=1e-12)
