"""Fixed-effects model matrices and term expansion against R's own (live, R 4.2.2):
``attr(terms(f), "term.labels")``, ``model.matrix`` column names and values, and the columns
lme4 keeps for a rank-deficient X (``qr(X, LAPACK = FALSE)$pivot``)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pylme.description.factors import contr_poly
from pylme.description.formula import expand_terms, parse
from pylme.description.model_matrix import design, dqrdc2_rank

pytestmark = pytest.mark.usefixtures("require_r")


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 40
    return pd.DataFrame({
        "a": pd.Categorical(rng.choice(["x", "y", "z"], n), categories=["z", "x", "y"]),  # non-alphabetical order
        "b": rng.choice(["p", "q"], n),  # strings: sorted levels
        "o": pd.Categorical(rng.choice(["lo", "mid", "hi", "top"], n), categories=["lo", "mid", "hi", "top"], ordered=True),
        "flag": rng.random(n) > 0.5,
        "x": rng.normal(size=n),
        "z": rng.uniform(1, 3, n),
    })


FORMULAS = [
    "~ a*b", "~ a:b", "~ 0 + a:b", "~ a + a:x", "~ a:x", "~ x + a/b", "~ o", "~ a*x - 1",
    "~ (a + b + x)^2", "~ b:a + a + b", "~ (a + b):(x + z)", "~ I(x^2) + log(z) + poly(x, 2)",
    "~ flag + x:flag", "~ 0 + a + b", "~ o:x + b", "~ exp(x/2) + sqrt(z) + x*z",
]


def r_model_matrix(formula: str, data: pd.DataFrame) -> tuple[list[str], list[str], np.ndarray]:
    import rpy2.robjects as ro
    from rpy2.robjects import pandas2ri
    from rpy2.robjects.conversion import localconverter

    with localconverter(ro.default_converter + pandas2ri.converter) as converter:
        rdf = converter.py2rpy(data)
    ro.globalenv["d"] = rdf
    ro.r('d$b <- factor(d$b); d$flag <- as.logical(d$flag)')
    labels = list(ro.r(f'attr(terms({formula}), "term.labels")'))
    mm = ro.r(f"model.matrix({formula}, d)")
    return labels, list(ro.r("colnames")(mm)), np.asarray(mm)


@pytest.mark.parametrize("formula", FORMULAS)
def test_terms_and_model_matrix_as_r(formula):
    data = frame()
    labels, names, X = r_model_matrix(formula, data)
    terms = expand_terms(parse(formula).args[0])
    assert terms.labels == labels
    spec, Xp = design(terms, data)
    assert spec.column_names == names
    np.testing.assert_allclose(Xp, X, rtol=1e-12, atol=1e-12)


def test_polynomial_contrasts_as_r():
    import rpy2.robjects as ro

    for n in (2, 3, 4, 6):
        z, names = contr_poly(n)
        rz = np.asarray(ro.r(f"contr.poly({n})"))
        np.testing.assert_allclose(z, rz, atol=1e-14)
        assert names == list(ro.r(f"colnames(contr.poly({n}))"))


def test_rank_deficient_pivot_as_linpack():
    import rpy2.robjects as ro

    rng = np.random.default_rng(3)
    base = rng.normal(size=(30, 4))
    X = np.column_stack([np.ones(30), base[:, 0], 2 * base[:, 0], base[:, 1], base[:, 1] - base[:, 0], base[:, 2],
                         np.zeros(30), base[:, 3]])
    ro.globalenv["X"] = ro.r.matrix(ro.FloatVector(X.ravel(order="F")), nrow=30)
    qr = ro.r("qr(X, tol = 1e-7, LAPACK = FALSE)")
    rank, pivot = dqrdc2_rank(X, 1e-7)
    assert rank == int(qr.rx2("rank")[0]) == 5
    assert [p + 1 for p in pivot] == list(qr.rx2("pivot"))
