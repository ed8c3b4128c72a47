"""The blocked-Cholesky objective (pylme.objectives.blocked) against the CHOLMOD path: the same function of
theta on every corpus case (1e-10 relative at lme4's thetas and at the start) with a dense and
with a sparse (CHOLMOD) fill block, the same PLS solution, a fit with method="blocked" reaching
lme4's optimum (lme4 1.1-31 values recorded in the golden records), the memory check, and the
large simulated designs (conformance.large_designs)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pylme
from conformance.cases import select
from conformance.engines import GoldenEngine
from conformance.large_designs import grades, state_test
from pylme.objectives.blocked import BlockedDevfun, BlockedObjective, blocked_size, unique_keys
from pylme.objectives.dense import DenseObjective
from pylme.fitting.driver import choose_objective as _choose_objective

def choose_objective(devfun, method):
    """The objective lmerControl(method=) selects for devfun's design and response."""
    return _choose_objective(devfun.design, devfun.resp, method, cholmod=devfun)


CASES = [c for c in select() if not c.id.startswith("prop_") and c.model != "classroom_childid_level_per_row"
         and not c.is_glmer]  # the blocked objective is lmer's; glmer's are tested in test_glmer.py


@pytest.mark.parametrize("fill", ["dense", "sparse", "tiled"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_blocked_objective_equals_cholmod(case, fill):
    ref = GoldenEngine().fit(case)
    if ref.error:  # a deliberate error case: lme4 refuses the model
        with pytest.raises(pylme.PylmeError):
            pylme.lmer(case.formula, case.load_data(), REML=case.REML, weights=case.weights, devFunOnly=True)
        return
    dev = pylme.lmer(case.formula, case.load_data(), REML=case.REML, weights=case.weights, devFunOnly=True)
    blocked = BlockedDevfun(dev, fill=fill)
    for theta in [p["theta"] for p in ref.devfun_at] + [list(dev.start)]:
        assert blocked(np.array(theta)) == pytest.approx(dev(np.array(theta)), rel=1e-10)
    if ref.devfun_at:  # the PLS solution (beta, b, pwrss) read off the blocked factor
        theta = np.array(ref.devfun_at[-1]["theta"])
        st, st0 = blocked.pls_state(theta), dev.pls_state(theta)
        scale = max(1.0, np.max(np.abs(st0.b), initial=0.0))
        np.testing.assert_allclose(st.beta, st0.beta, rtol=1e-8, atol=1e-10 * max(1.0, np.max(np.abs(st0.beta), initial=0)))
        np.testing.assert_allclose(st.b, st0.b, rtol=0, atol=1e-8 * scale)
        assert st.pwrss == pytest.approx(st0.pwrss, rel=1e-9)
        assert st.ldL2 + st.ldRX2 == pytest.approx(st0.ldL2 + st0.ldRX2, rel=1e-10, abs=1e-8)


def test_blocked_fit_reaches_lme4s_optimum():
    case = next(c for c in select() if c.id == "classroom_3cov_ml")
    ref = GoldenEngine().fit(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(case.formula, case.load_data(), REML=False, control=pylme.lmerControl(method="blocked"))
    assert fm.deviance(REML=False) == pytest.approx(ref.criterion, rel=1e-9)
    np.testing.assert_allclose(fm.theta, ref.theta, atol=1e-4)


def test_auto_chooses_blocked_for_large_models_dense_for_small_ones():
    big = pylme.lmer("y ~ service + (1 | s) + (1 | d) + (1 | dept:service)", pylme.datasets.load("InstEval"),
                     devFunOnly=True)
    assert blocked_size(big.design) == 1128 + 28 + 2 + 1  # d, dept:service, X (p = 2), y: the dense Schur complement
    assert isinstance(choose_objective(big, "auto"), BlockedObjective)
    assert choose_objective(big, "cholmod") is big
    with pytest.raises(pylme.ModelError, match=r"method='dense' is for small models .* q \+ p \+ 1 = 4131 and 4128 entries in Lambda"):
        choose_objective(big, "dense")
    small = pylme.lmer("Reaction ~ Days + (Days | Subject)", pylme.datasets.load("sleepstudy"), devFunOnly=True)
    assert isinstance(choose_objective(small, "auto"), DenseObjective)  # q + p + 1 = 36 + 2 + 1
    assert choose_objective(small, "cholmod") is small
    assert isinstance(choose_objective(small, "blocked"), BlockedObjective)
    # between the two: fewer than 10,000 rows but q + p + 1 > 300 (1,190 rows, 312 + 107 random effects)
    middle = pylme.lmer("mathgain ~ mathkind + (1 | classid) + (1 | schoolid)", pylme.datasets.load("classroom"),
                        devFunOnly=True)
    assert choose_objective(middle, "auto") is middle
    # many rows but few random effects: dense (its cost does not grow with the rows)
    rng = np.random.default_rng(9)
    many = pd.DataFrame({"g": pd.Categorical(rng.integers(0, 50, 20_000)), "x": rng.normal(size=20_000)})
    many["y"] = many["x"] + rng.normal(size=50)[many["g"].cat.codes] + rng.normal(size=20_000)
    tall = pylme.lmer("y ~ x + (x | g)", many, devFunOnly=True)
    assert isinstance(choose_objective(tall, "auto"), DenseObjective)
    with pytest.raises(ValueError, match="method must be one of 'auto', 'cholmod', 'dense', 'blocked', not 'qr'"):
        choose_objective(small, "qr")


def test_fill_block_is_the_fastest_that_fits():
    """A grades-like design (2,600 instructors, 40 departments): the three ways to factor block 2,
    fastest predicted first among those that fit in the room left (dense 8 q2^2 bytes; CHOLMOD's
    predicted factor at 12 bytes an entry; the stored tiles; plus scatter indices); 'auto' takes the
    first."""
    des = grades(n=150_000, n_students=6_000, n_instr=2_600, n_dept=40)
    dev = pylme.lmer(des.formula, des.data, devFunOnly=True)
    blocked = BlockedDevfun(dev, memory_limit=1e12)
    q2 = blocked.q2
    assert q2 == 2_640
    everything = blocked._fill_options("auto", 1e12)
    assert sorted(o[0] for o in everything) == ["dense", "sparse", "tiled"]
    seconds = [o[1] for o in everything]
    assert seconds == sorted(seconds)
    assert blocked.fill.kind == everything[0][0]
    sizes = {o[0]: o[2] for o in everything}
    assert sizes["dense"] == 8.0 * q2 * q2 + 8.0 * blocked.rows.size  # the matrix and its scatter index
    room = (sizes["dense"] + max(sizes["sparse"], sizes["tiled"])) / 2  # dense no longer fits
    assert [o[0] for o in blocked._fill_options("auto", room)][-1] == "dense"
    assert [o[0] for o in blocked._fill_options("sparse", 1e12)] == ["sparse"]
    # where not even the factor's entries fit, the tiles are not planned; the smallest comes first
    nothing = blocked._fill_options("auto", 1e3)
    assert [o[0] for o in nothing] == sorted(["dense", "sparse"], key=lambda k: sizes[k])
    with pytest.raises(ValueError, match="fill must be 'auto', 'dense', 'sparse', 'tiled' or 'direct', not 'qr'"):
        blocked._fill_options("qr", 1e12)


def test_memory_check_names_the_block():
    """A fill block of 20,000 teachers would be 2.98 GB dense: refused early under a 1 GB limit,
    naming the block; the sparse block CHOLMOD predicts fits."""
    des = state_test(n=60_000, n_students=24_000, n_teachers=20_000, n_schools=1_000)
    dev = pylme.lmer(des.formula, des.data, devFunOnly=True)
    with pytest.raises(pylme.ModelError, match=r"more than the 1 GB allowed \(memory_limit\); the largest block is "
                                               r"block 2 \(dense, 1 \| teacher; order 20000\): 2.98 GB"):
        BlockedDevfun(dev, fill="dense", memory_limit=2**30)
    fit = BlockedDevfun(dev, memory_limit=2**30)
    assert fit.fill.kind == "sparse"
    assert fit(dev.start) == pytest.approx(dev(dev.start), rel=1e-10)


def test_grades_design_has_the_lectures_shape():
    des = grades()
    assert len(des.data) == 1_700_000
    assert [des.data[g].nunique() for g in ("id", "instr", "dept")] == [54_711, 7_915, 102]
    assert des.formula == "gr.pt ~ (1 | id) + (1 | instr) + (1 | dept)"


def test_small_state_test_design_fits_by_blocks_as_by_cholmod():
    """A scaled-down state-test design: the blocked fit (sparse teacher block) reaches the
    CHOLMOD path's optimum, and the estimates are near the simulation's truth."""
    des = state_test(n=60_000, n_students=24_000, n_teachers=900, n_schools=60)
    fits = {}
    for method in ("cholmod", "blocked"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits[method] = pylme.lmer(des.formula, des.data, control=pylme.lmerControl(method=method))
    a, b = fits["cholmod"], fits["blocked"]
    assert b.REMLcrit() == pytest.approx(a.REMLcrit(), rel=1e-9)
    np.testing.assert_allclose(b.fixef().to_numpy(), a.fixef().to_numpy(), rtol=1e-5, atol=1e-6)
    assert b.sigma() == pytest.approx(des.truth["sigma"], rel=0.05)
    assert b.fixef()["x10"] == pytest.approx(des.truth["beta"]["x10"], abs=0.03)


@pytest.mark.parametrize("fill", ["dense", "sparse", "tiled"])
def test_vector_term_in_the_fill_block(fill):
    """A correlated random slope in block 2 (Lambda2 not diagonal: the pattern is closed under its
    2 x 2 blocks): the same criterion and solution as the CHOLMOD path at several thetas."""
    des = state_test(n=20_000, n_students=8_000, n_teachers=300, n_schools=30)
    dev = pylme.lmer("score ~ x1 + x12 + (1 | student) + (x12 | teacher)", des.data, devFunOnly=True)
    blocked = BlockedDevfun(dev, fill=fill)
    assert not blocked.diag2 and blocked.fill.kind == fill
    for theta in ([1.0, 1.0, 0.0, 1.0], [1.3, 0.6, -0.4, 0.2], [0.0, 0.5, 0.3, 0.0]):
        theta = np.array(theta)
        assert blocked(theta) == pytest.approx(dev(theta), rel=1e-10)
    st, st0 = blocked.pls_state(theta), dev.pls_state(theta)
    np.testing.assert_allclose(st.beta, st0.beta, rtol=1e-9)
    np.testing.assert_allclose(st.b, st0.b, rtol=0, atol=1e-9)


def test_cholmod_predicts_the_factor_it_computes():
    """pylme.objectives.memory reads CHOLMOD's symbolic analysis: the predicted factor holds at least the
    nonzeros of the factor scikit-sparse computes; a dense pattern is one supernode stored as a
    q x q block, with the work of a dense factorisation."""
    import scipy.sparse as sp
    from sksparse.cholmod import cholesky

    from pylme.objectives.memory import available_bytes, predicted_factor

    A = sp.random(3000, 3000, density=0.002, random_state=1)
    A = sp.tril(A @ A.T + sp.identity(3000)).tocsc()
    size = predicted_factor(A)
    assert size.entries >= cholesky(A).L().nnz
    dense = predicted_factor(sp.tril(np.ones((400, 400))).tocsc())
    assert dense.entries == 400 * 400
    assert dense.flops == pytest.approx(np.sum(np.arange(1, 401.0) ** 2))
    assert available_bytes() > 0


@pytest.mark.parametrize("case", select("insteval_full", include_slow=True), ids=lambda c: c.id)
def test_blocked_insteval_fit_conforms_to_lme4(case):
    """InstEval (73,421 rows, crossed s and d): the blocked fit passes the conformance full-fit
    layer against lme4 1.1-31's recorded fit (criterion, theta, beta, SEs, sigma, conditional
    modes, messages, warnings)."""
    from conformance.compare import fit_layer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(case.formula, case.load_data(), REML=case.REML, control=pylme.lmerControl(method="blocked"))
    assert fit_layer(GoldenEngine().fit(case), fm.record()).failures == []


@pytest.mark.parametrize("case", select("grades_small", include_slow=True), ids=lambda c: c.id)
def test_tiled_fill_fit_conforms_to_lme4(case):
    """The smaller grades design (150,000 rows; block 2 of order 2,640, factored tiled): the fit
    passes the conformance full-fit layer against lme4 1.1-31's recorded fit."""
    from conformance.compare import fit_layer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(case.formula, case.load_data(), REML=case.REML)
    assert fm.opt.objective.fill.kind == "tiled"
    assert fit_layer(GoldenEngine().fit(case), fm.record()).failures == []


@pytest.mark.parametrize("bound", [1_000, 1 << 25])
def test_unique_keys_is_numpys_unique(bound):
    """By the table of keys present (small bound) and by sorting (large one): np.unique's answer."""
    keys = np.random.default_rng(3).integers(0, bound, 5_000)
    uniq, inverse = unique_keys(keys, bound)
    ref, ref_inverse = np.unique(keys, return_inverse=True)
    np.testing.assert_array_equal(uniq, ref)
    np.testing.assert_array_equal(inverse, ref_inverse)
    np.testing.assert_array_equal(uniq[inverse], keys)


def test_levels_with_equal_gram_blocks_share_a_cross_map_column():
    """Block 1's levels are grouped by their Gram blocks (InstEval's students by their number of
    ratings; with weights, by their weighted sums): one map column per group, the same criterion as
    the CHOLMOD path."""
    data = pylme.datasets.load("InstEval")
    formula = "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)"
    dev = pylme.lmer(formula, data, devFunOnly=True)
    blocked = BlockedDevfun(dev)
    counts = data["s"].value_counts(sort=False).sort_index().to_numpy()
    assert blocked.cross.map.shape[1] == np.unique(counts).size == 86
    np.testing.assert_array_equal(blocked.block1.A11[:, 0, 0][blocked.block1.rep[blocked.block1.group]],
                                  blocked.block1.A11[:, 0, 0])
    w = np.random.default_rng(2).uniform(0.5, 2.0, len(data))
    devw = pylme.lmer(formula, data, weights=w, devFunOnly=True)
    blockedw = BlockedDevfun(devw)
    assert blockedw.cross.map.shape[1] == blockedw.block1.nl  # unequal weighted sums: no two levels share
    for theta in ([0.3, 0.4, 0.1], [1.0, 1.0, 1.0]):
        theta = np.array(theta)
        assert blocked(theta) == pytest.approx(dev(theta), rel=1e-10)
        assert blockedw(theta) == pytest.approx(devw(theta), rel=1e-10)


def test_threaded_cross_map_is_the_single_product(monkeypatch):
    """A cross map large enough for two threads (threshold lowered here) gives the one-product sums
    bit for bit, also in a forked child (whose worker thread is made again)."""
    import os

    import pylme.objectives.blocked as blocked_module

    monkeypatch.setattr(blocked_module, "THREADED_MAP", 0)
    des = grades(n=20_000, n_students=1_500, n_instr=400, n_dept=20)
    dev = pylme.lmer(des.formula, des.data, devFunOnly=True)
    cross = BlockedDevfun(dev).cross
    assert len(cross._parts) == 2 and sum(p.nnz for p in cross._parts) == cross.map.nnz
    V = np.random.default_rng(5).random(cross.map.shape[1])  # one V entry per group of levels
    assert np.array_equal(cross(V), cross.map @ V)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one threaded product, its result through the pipe; never back to pytest
        try:
            os.write(write, cross(V).tobytes())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        child = np.frombuffer(fh.read(), dtype=float)
    assert os.waitpid(pid, 0)[1] == 0
    assert np.array_equal(child, cross.map @ V)
