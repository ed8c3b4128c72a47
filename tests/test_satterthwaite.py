"""Satterthwaite's degrees of freedom (pylme.inference.satterthwaite) against R's lmerTest.

Recorded values (``REFERENCE`` below; no R needed): written with full round-trip precision
(Python ``repr`` of the doubles R returned) from R 4.2.2 Patched (2022-11-10 r83330),
lme4 1.1-31, lmerTest 3.1-3, by running ``R_RECORD`` (below, through rpy2 on the data of
``pylme.datasets.load(name)``, so R and pylme see identical data) for

* sleepstudy  ``Reaction ~ Days + (Days|Subject)``: summary, anova type 3, contest1D(c(0, 1)),
  contestMD(diag(2))
* classroom   ``mathgain ~ mathkind + minority + ses + (1|classid) + (1|schoolid)``: summary,
  anova types 1 and 3, contestMD of the three slopes
* cake        ``angle ~ recipe * temperature + (1|recipe:replicate)`` (temperature is an ordered
  factor, so lmerTest builds its type III contrasts in treatment coding and maps them back):
  summary, anova types 1, 2, 3
* Penicillin  ``diameter ~ 1 + (1|plate) + (1|sample)``: summary

Each is checked twice: at pylme's own optimum, with the acceptance tolerances (df 1e-4
relative; estimates, SEs, t and F values and p-values 1e-6 relative), and at lme4's theta
(``start=theta, optimizer=None``), which isolates the Satterthwaite computation from the
optimiser (df 1e-6, statistics 1e-9, p-values 1e-6: p-values as small as 1e-118 move by
~|t| * |d log p / d df| times the df's noise).

Measured agreement at pylme's own optimum (max relative difference over all rows):
sleepstudy df 2e-9, t 6e-12, p 1e-7; classroom df 1e-8, t 3e-11, p 3.5e-7; cake df 5e-10,
t 9e-12, F 2e-11, p 2e-8; Penicillin df 1e-8, p 1.1e-7.

Live tests (``TestLiveLmerTest``; need R with lmerTest through rpy2, skipped otherwise) run
more designs through ``R_RECORD``: numeric x factor interactions, missing cells (a
rank-deficient X), no intercept, prior weights, ML, a polynomial term.

Known divergence (``test_degenerate_eigenvalues_give_the_wald_F``): when ``L C L'`` has equal
eigenvalues and R's rounding makes it fail ``isSymmetric``, R's ``eigen`` returns
non-orthogonal eigenvectors and lmerTest's multi-df F is not the Wald F; pylme always uses a
symmetric eigensolver and gives the Wald F (type I of ``poly(Days, 2) + Dcat`` in sleepstudy:
lmerTest 88.95, pylme and ``beta'L'(LCL')^-1 L beta / 2`` 84.79).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from lmertest_tables import F_COLS, T_COLS, WHERE, assert_row, assert_table, fitter

import pylme
from pylme import ModelError
from pylme.inference import satterthwaite as S
from pylme.fitting.driver import LmerControl

# The R function that produced REFERENCE (and that the live tests call through rpy2).
R_RECORD = r"""
function(formula, data, REML, types, Ls, weights) {
  suppressMessages(library(lmerTest))
  f <- stats::as.formula(formula, env = new.env(parent = globalenv()))
  fm <- if (is.null(weights)) lmerTest::lmer(f, data = data, REML = REML) else {
    data$.w <- data[[weights]]; lmerTest::lmer(f, data = data, REML = REML, weights = .w) }
  tab <- function(x) list(rows = rownames(x), vals = unname(as.matrix(x)))
  an <- lapply(types, function(ty) tab(anova(fm, type = ty)))
  ct <- lapply(Ls, function(L) { L <- matrix(L, ncol = length(fixef(fm)), byrow = TRUE)
      tab(if (nrow(L) == 1) contest1D(fm, drop(L)) else contestMD(fm, L)) })
  list(theta = unname(getME(fm, "theta")), coef = tab(summary(fm)$coefficients), anova = an,
       contest = ct)
}
"""

REFERENCE = {
    'sleepstudy': {
        "formula": 'Reaction ~ Days + (Days|Subject)',
        "theta": [0.9667417739674123, 0.015169058896036137, 0.23090995320779453],
        "coef": {
            '(Intercept)': [251.40510484848497, 6.824596694954906, 16.99972628849272, 36.83808964628439, 1.1715581112082594e-17],
            'Days': [10.467285959595987, 1.545789643905981, 16.999983725591733, 6.771481488999181, 3.2638244699273775e-06],
        },
        "anova": {
            3: {
                'Days': [30030.939020137677, 30030.939020137677, 1.0, 16.999983725591733, 45.85296155585857, 3.2638244699273775e-06],
            },
        },
        "contest": [
            ([0, 1], [10.467285959595987, 1.545789643905981, 16.999983725591733, 6.771481488999181, 3.2638244699273775e-06]),
            ([1, 0, 0, 1], [982345.112942736, 491172.556471368, 2.0, 16.99984604934991, 749.9504538992986, 2.6350970937880524e-17]),
        ],
    },
    'classroom': {
        "formula": 'mathgain ~ mathkind + minority + ses + (1|classid) + (1|schoolid)',
        "theta": [0.3358078897474019, 0.31959985704261246],
        "coef": {
            '(Intercept)': [282.4193167659639, 10.840611294819768, 1166.7029206131601, 26.05197336988913, 2.63568792354716e-118],
            'mathkind': [-0.47031619238048333, 0.02225119757639903, 1173.874155435019, -21.136668746284883, 2.739312994303126e-84],
            'minorityY': [-8.290861046233468, 2.3388758892329817, 585.4231678716503, -3.5448058977393617, 0.0004242835729600323],
            'ses': [5.364617331625079, 1.2406679921319697, 1171.948326493267, 4.32397495997821, 1.6626365233902105e-05],
        },
        "anova": {
            1: {
                'mathkind': [272173.7100685191, 272173.7100685191, 1.0, 1082.0186315141452, 370.5021430999844, 3.103384692132605e-71],
                'minority': [14529.689704746605, 14529.689704746605, 1.0, 544.1140507372065, 19.778843345417776, 1.0545084874582661e-05],
                'ses': [13734.782596444293, 13734.782596444293, 1.0, 1171.948326493267, 18.69675945451856, 1.6626365233902105e-05],
            },
            3: {
                'mathkind': [328192.40867579373, 328192.40867579373, 1.0, 1173.874155435019, 446.7587656901762, 2.739312994303126e-84],
                'minority': [9230.821822049309, 9230.821822049309, 1.0, 585.4231678716503, 12.565648852647762, 0.0004242835729600323],
                'ses': [13734.782596444293, 13734.782596444293, 1.0, 1171.948326493267, 18.69675945451856, 1.6626365233902105e-05],
            },
        },
        "contest": [
            ([0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], [328692.33268149494, 109564.11089383165, 3.0, 885.2754289111894, 149.14643255878605, 3.171987571039903e-78]),
        ],
    },
    'cake': {
        "formula": 'angle ~ recipe * temperature + (1|recipe:replicate)',
        "theta": [1.4295916335740888],
        "coef": {
            '(Intercept)': [33.12222222222393, 1.7368333974217856, 41.99999981017909, 19.070465982167136, 2.6708478494990167e-22],
            'recipeB': [-1.477777777779405, 2.456253346216402, 41.999999812237064, -0.6016389881181292, 0.5506484361709985],
            'recipeC': [-1.5222222222238815, 2.456253346216402, 41.99999981165443, -0.6197333937758104, 0.5387811526296007],
            'temperature.L': [6.430329918219078, 1.1682151473705336, 210.00000007080692, 5.504405530687329, 1.0738575448145993e-07],
            'temperature.Q': [-0.7128451081042411, 1.1682151473705307, 210.0000000708047, -0.6102001927545142, 0.5423889605067602],
            'temperature.C': [-2.325510696599778, 1.1682151473705307, 210.0000000708047, -1.9906527507661052, 0.047815672086184785],
            'temperature^4': [-3.351284994015147, 1.1682151473705311, 210.00000007277973, -2.868722428020526, 0.004542150277059975],
            'temperature^5': [-0.1511857892036931, 1.1682151473705331, 210.00000007081655, -0.12941604938438636, 0.8971523178516853],
            'recipeB:temperature.L': [0.4541868715470302, 1.6521057051810906, 210.00000007080584, 0.27491392961278216, 0.7836526442221727],
            'recipeC:temperature.L': [0.08765009801781756, 1.6521057051810906, 210.00000007080584, 0.05305356536385186, 0.9577396628777763],
            'recipeB:temperature.Q': [-0.232765749585061, 1.6521057051810883, 210.0000000727794, -0.14089034911936665, 0.888091619397257],
            'recipeC:temperature.Q': [1.2147462556470219, 1.6521057051810883, 210.0000000708047, 0.7352715094666856, 0.46299451153524007],
            'recipeB:temperature.C': [2.6932196528997414, 1.6521057051810883, 210.0000000727794, 1.6301739316398862, 0.10456369399150159],
            'recipeC:temperature.C': [2.638560213449748, 1.6521057051810883, 210.0000000708047, 1.5970892208501477, 0.11174946266905894],
            'recipeB:temperature^4': [3.0237157840738162, 1.6521057051810883, 210.0000000727794, 1.8302193222814305, 0.06863464612713262],
            'recipeC:temperature^4': [3.1371051259765843, 1.6521057051810883, 210.0000000708047, 1.8988525468669841, 0.058954778796490116],
            'recipeB:temperature^5': [-0.6635376303939751, 1.6521057051810903, 210.00000007278032, -0.40163146238953484, 0.6883636960873192],
            'recipeC:temperature^5': [-1.6252472339396757, 1.6521057051810903, 210.00000007278032, -0.9837428857262673, 0.3263739728824503],
        },
        "anova": {
            1: {
                'recipe': [10.185860461355244, 5.092930230677622, 2.0, 41.99999981223475, 0.24878878630026313, 0.780885605001373],
                'temperature': [2100.3000000000034, 420.0600000000007, 5.0, 210.00000007098225, 20.519860441792073, 1.1531621208225236e-16],
                'recipe:temperature': [205.97777777777713, 20.597777777777715, 10.0, 210.0000000717698, 1.006197984599924, 0.43926943669405855],
            },
            2: {
                'recipe': [10.185860461355244, 5.092930230677622, 2.0, 41.99999981223475, 0.24878878630026313, 0.780885605001373],
                'temperature': [2100.3000000000034, 420.0600000000007, 5.0, 210.00000007098225, 20.519860441792073, 1.1531621208225236e-16],
                'recipe:temperature': [205.97777777777725, 20.597777777777726, 10.0, 210.0000000717696, 1.0061979845999245, 0.439269436694058],
            },
            3: {
                'recipe': [10.185861526428049, 5.092930763214024, 2.0, 41.99999981223647, 0.24878881231457697, 0.7808855849250164],
                'temperature': [2100.3000168666313, 420.06000337332625, 5.0, 210.00000007098225, 20.51986060657846, 1.1531618107474293e-16],
                'recipe:temperature': [205.97777777777713, 20.597777777777715, 10.0, 210.00000007176976, 1.006197984599924, 0.43926943669405866],
            },
        },
        "contest": [
        ],
    },
    'Penicillin': {
        "formula": 'diameter ~ 1 + (1|plate) + (1|sample)',
        "theta": [1.539675554152165, 3.5125188600064563],
        "coef": {
            '(Intercept)': [22.972222222213748, 0.8085953614206511, 5.486592424773719, 28.410034633210113, 3.6235197706619397e-07],
        },
        "anova": {
        },
        "contest": [
        ],
    },
}


# acceptance tolerances (pylme's own fit) and tighter ones at lme4's theta
OWN = {"df": 1e-4, "DenDF": 1e-4, "default": 1e-6}
AT_R = {"df": 1e-6, "DenDF": 1e-6, "Pr(>|t|)": 1e-6, "Pr(>F)": 1e-6, "default": 1e-9}


fitted = fitter(REFERENCE)


MODELS = list(REFERENCE)


@pytest.mark.parametrize("at_r", WHERE)
@pytest.mark.parametrize("name", MODELS)
def test_summary_coefficients(name, at_r):
    fm = fitted(name, at_r)
    tab = S.satterthwaite_table(fm)
    assert_table(tab, REFERENCE[name]["coef"], T_COLS, AT_R if at_r else OWN, f"{name} summary")


ANOVA_CASES = [(name, ty) for name in MODELS for ty in REFERENCE[name]["anova"]]


@pytest.mark.parametrize("at_r", WHERE)
@pytest.mark.parametrize("name,type_", ANOVA_CASES)
def test_anova(name, type_, at_r):
    fm = fitted(name, at_r)
    tab = S.anova_table(fm, type=type_)
    assert_table(tab, REFERENCE[name]["anova"][type_], F_COLS, AT_R if at_r else OWN, f"{name} anova type {type_}")
    roman = {1: "I", 2: "II", 3: "III"}[type_]
    assert tab.attrs["heading"] == f"Type {roman} Analysis of Variance Table with Satterthwaite's method"


CONTEST_CASES = [(name, k) for name in MODELS for k in range(len(REFERENCE[name]["contest"]))]


@pytest.mark.parametrize("at_r", WHERE)
@pytest.mark.parametrize("name,k", CONTEST_CASES)
def test_contest(name, k, at_r):
    fm = fitted(name, at_r)
    flat, want = REFERENCE[name]["contest"][k]
    L = np.array(flat, dtype=float).reshape(-1, fm.p)
    tol = AT_R if at_r else OWN
    if L.shape[0] == 1:
        assert_row(S.contest(fm, L[0]), want, T_COLS, tol, f"{name} contest1D")
        assert_row(S.contest1D(fm, L[0]), want, T_COLS, tol, f"{name} contest1D")
    else:
        assert_row(S.contest(fm, L), want, F_COLS, tol, f"{name} contestMD")
        assert_row(S.contestMD(fm, L), want, F_COLS, tol, f"{name} contestMD")


def test_anova_type3_is_the_default_table():
    fm = fitted("cake", False)
    pd.testing.assert_frame_equal(S.anova_type3(fm), S.anova_table(fm, "III"))


def test_intercept_only_model_has_an_empty_anova():
    tab = S.anova_table(fitted("Penicillin", False), type=3)
    assert tab.empty and list(tab.columns) == F_COLS


def test_cake_type3_hypotheses_are_lmerTests():
    """lmerTest's type III hypothesis for recipe (recorded with
    ``attr(anova(fm, type = 3), "hypotheses")$recipe``): the recipe columns, plus the
    interaction columns at R's zapsmall()ed coefficients (1.195e-07, ...)."""
    H = S.hypothesis_matrices(fitted("cake", False), 3)
    assert [k for k in H] == ["recipe", "temperature", "recipe:temperature"]
    assert [h.shape for h in H.values()] == [(2, 18), (5, 18), (10, 18)]
    recipe = H["recipe"]
    np.testing.assert_array_equal(recipe[:, :8], np.eye(3, 8, 1)[:2])
    np.testing.assert_allclose(recipe[0, 8::2], [1.195e-07, -1.424e-07, 7.45e-08, -7.11e-08, 1.26e-08], atol=1e-10)
    np.testing.assert_array_equal(recipe[0, 9::2], 0.0)


def test_missing_cells_message():
    """lmerTest 3.1-3, cake without recipe C at 225 degrees: the message of get_rdX, and the
    type III table still has all three terms (recipe:temperature with 9 df)."""
    data = _cake_missing_cell()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(REFERENCE["cake"]["formula"], data)
    with pytest.warns(pylme.FitMessage) as rec:
        tab = S.anova_table(fm, 3)
    assert [str(w.message) for w in rec] == [
        "Missing cells for: recipeC:temperature225.  \nInterpret type III hypotheses with care."
    ]
    assert list(tab.index) == ["recipe", "temperature", "recipe:temperature"]
    assert list(tab["NumDF"]) == [2, 5, 9]

# ---------------------------------------------------------------- behaviour
def test_contest_shapes_and_options():
    fm = fitted("sleepstudy", False)
    t = S.contest(fm, [0, 1])
    assert list(t.columns) == T_COLS and len(t) == 1
    # a 1 x p matrix is a t-test too; joint=True turns it into lmerTest's 1-df F-test
    pd.testing.assert_frame_equal(S.contest(fm, [[0, 1]]), t)
    F = S.contest(fm, [[0, 1]], joint=True)
    assert list(F.columns) == F_COLS
    assert F["F value"].iloc[0] == pytest.approx(t["t value"].iloc[0] ** 2, rel=1e-12)
    assert F["DenDF"].iloc[0] == t["df"].iloc[0]
    # joint=False: one t-test per row (lmerTest's contest(joint = FALSE)), with Wald intervals
    rows = S.contest(fm, np.eye(2), joint=False, confint=True)
    assert list(rows.columns) == ["Estimate", "Std. Error", "df", "t value", "lower", "upper", "Pr(>|t|)"]
    summ = S.satterthwaite_table(fm)
    np.testing.assert_allclose(rows[T_COLS].to_numpy(), summ.to_numpy(), rtol=1e-14)


def test_contest_rhs_matches_lmerTest():
    """Recorded: contest(fm, c(0, 1), rhs = 10, joint = FALSE) and
    contest(fm, rbind(c(1, 0), c(2, 0)), rhs = c(1, 2)) for sleepstudy (lmerTest 3.1-3; the
    second warns that the contrast is rank deficient)."""
    fm = fitted("sleepstudy", True)
    t = S.contest(fm, [0, 1], rhs=10)
    assert t["t value"].iloc[0] == pytest.approx(0.3022959569, rel=1e-9)
    assert t["Pr(>|t|)"].iloc[0] == pytest.approx(0.7660937235, rel=1e-9)
    with pytest.warns(pylme.PylmeWarning, match="Contrast is rank deficient"):
        F = S.contest(fm, [[1, 0], [2, 0]], rhs=[1, 2])
    assert F["NumDF"].iloc[0] == 1
    assert F["F value"].iloc[0] == pytest.approx(1352.221167, rel=1e-9)
    assert F["DenDF"].iloc[0] == pytest.approx(16.99972629, rel=1e-8)


def test_wrong_width_names_the_expected_width():
    fm = fitted("sleepstudy", False)
    for bad in ([1, 2, 3], np.ones((2, 3)), [1.0]):
        with pytest.raises(ModelError, match=r"expecting 2 \(one per fixed-effect coefficient: \(Intercept\), Days\)"):
            S.contest(fm, bad)
    with pytest.raises(ModelError, match="expecting 2"):
        S.contestMD(fm, np.ones((3, 1)))
    with pytest.raises(ModelError, match="expecting 2"):
        S.contest1D(fm, [1, 2, 3])


def test_missing_contrast_gives_missing_row():
    fm = fitted("sleepstudy", False)
    assert S.contest(fm, [np.nan, 1]).drop(columns=[]).isna().all(axis=None)
    assert S.contest(fm, [[np.nan, 1], [1, 0]]).isna().all(axis=None)


def test_zero_hypothesis_gives_empty_table():
    fm = fitted("sleepstudy", False)
    out = S.contestMD(fm, np.zeros((2, 2)))
    assert out.empty and list(out.columns) == F_COLS


def test_computed_once_per_fit():
    fm = fitted("classroom", False)
    info = S.satterthwaite_info(fm)
    before = fm.devfun.nevals
    assert S.satterthwaite_info(fm) is info
    S.satterthwaite_table(fm)
    S.anova_table(fm, 1)
    assert fm.devfun.nevals == before
    # vcov(beta) at the estimates is the fit's
    np.testing.assert_allclose(info.vcov_beta, fm.vcov().to_numpy(), rtol=1e-12)
    assert info.varpar[-1] == fm.sigma()


def test_degenerate_eigenvalues_give_the_wald_F():
    """L C L' with (numerically) equal eigenvalues: the multi-df F is the Wald statistic /q
    whatever eigenvectors are chosen (lmerTest gives 88.95 here; see the module docstring)."""
    d = pylme.datasets.load("sleepstudy")
    d["Dcat"] = pd.Categorical(np.where(d.Days < 3, "a", np.where(d.Days < 6, "b", "c")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer("Reaction ~ poly(Days, 2) + Dcat + (1|Subject)", d)
    L = S.hypothesis_matrices(fm, 1)["poly(Days, 2)"]
    info = S.satterthwaite_info(fm)
    VL = L @ info.vcov_beta @ L.T
    assert np.ptp(np.linalg.eigvalsh(VL)) < 1e-9 * VL[0, 0]
    Lb = L @ info.beta
    wald = float(Lb @ np.linalg.solve(VL, Lb)) / 2
    F = S.anova_table(fm, 1).loc["poly(Days, 2)", "F value"]
    assert F == pytest.approx(wald, rel=1e-10)
    assert F == pytest.approx(84.789, rel=1e-4)


def test_singular_fit_hessian():
    """Dyestuff2 (theta = 0): lmerTest 3.1-3 gives df 5 for the intercept, without warnings;
    the theta direction's curvature at 0 is step-noise dominated (~1e-5) in R and here."""
    d = pylme.datasets.load("Dyestuff2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer("Yield ~ 1 + (1|Batch)", d)
    with warnings.catch_warnings():
        warnings.simplefilter("error", S.SatterthwaiteWarning)
        tab = S.satterthwaite_table(fm)
    assert tab.loc["(Intercept)", "df"] == pytest.approx(29.0, rel=1e-6)
    np.testing.assert_allclose(S.satterthwaite_info(fm).hessian, [[19.81, 0], [0, 8.40195556]], rtol=1e-4, atol=1e-6)


def test_eigen_warnings_text():
    msgs = S.eigen_warnings(np.array([3.0, 1e-10, -2e-3]), 1e-8)
    assert msgs == [
        "Model failed to converge with 1 negative eigenvalue: -2.0e-03",
        "Model may not have converged with 1 eigenvalue close to zero: 1.0e-10",
    ]


# ---------------------------------------------------------------- the numerical pieces
def test_numeric_hessian_and_jacobian_on_smooth_functions():
    def f(x):
        return math.exp(x[0]) * math.sin(x[1]) + x[0] ** 2 * x[2] ** 3 + math.log(x[2])

    x = np.array([0.3, 1.1, 2.0])
    a, b, c = x
    H = np.array([
        [math.exp(a) * math.sin(b) + 2 * c**3, math.exp(a) * math.cos(b), 6 * a * c**2],
        [math.exp(a) * math.cos(b), -math.exp(a) * math.sin(b), 0.0],
        [6 * a * c**2, 0.0, 6 * a**2 * c - 1 / c**2],
    ])
    np.testing.assert_allclose(S.numeric_hessian(f, x), H, rtol=1e-8, atol=1e-8)
    J = S.numeric_jacobian(lambda v: np.array([[v[0] * v[1], np.exp(v[2])], [v[1] ** 3, 1.0]]), x)
    Jexact = np.array([[b, a, 0], [0, 0, math.exp(c)], [0, 3 * b**2, 0], [0, 0, 0]])
    np.testing.assert_allclose(J, Jexact, rtol=1e-9, atol=1e-10)
    # at 0 the step is absolute (1e-4), as numDeriv's zero.tol rule
    assert S.numeric_hessian(lambda v: v[0] ** 2 + v[0] ** 4, np.array([0.0]))[0, 0] == pytest.approx(2.0, rel=1e-9)


def test_zapsmall_is_r42s():
    """R 4.2.2: zapsmall(c(3.16227766, 0.123456789)) keeps 7 decimals (7 - log10(3.16) = 6.5000001
    rounds up), zapsmall(c(3.17, 0.123456789)) keeps 6."""
    from pylme.rbase.printing import zapsmall

    np.testing.assert_array_equal(zapsmall(np.array([3.16227766, 0.123456789])), [3.1622777, 0.1234568])
    np.testing.assert_array_equal(zapsmall(np.array([3.17, 0.123456789])), [3.17, 0.123457])
    np.testing.assert_array_equal(zapsmall(np.array([1.0, 1e-9])), [1.0, 0.0])
    np.testing.assert_array_equal(zapsmall(np.zeros(3)), np.zeros(3))


def test_doolittle_factor():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(6, 4))
    M = A.T @ A
    L = S._doolittle_L(M)
    U = np.linalg.solve(L, M)
    np.testing.assert_allclose(np.tril(U, -1), 0, atol=1e-10)
    np.testing.assert_allclose(np.diag(L), 1.0)
    np.testing.assert_allclose(np.triu(L, 1), 0.0)


def test_combined_denominator_df():
    assert S._combine_df(np.array([7.5])) == 7.5
    assert S._combine_df(np.array([10.0, 10.0 + 1e-10])) == pytest.approx(10.0)
    assert S._combine_df(np.array([1.5, 30.0])) == 2.0
    nu = np.array([10.0, 20.0, 40.0])
    E = np.sum(nu / (nu - 2))
    assert S._combine_df(nu) == pytest.approx(2 * E / (E - 3))


# ---------------------------------------------------------------- live lmerTest
def _sleep_extra():
    d = pylme.datasets.load("sleepstudy")
    d["Dcat"] = pd.Categorical(np.where(d.Days < 3, "a", np.where(d.Days < 6, "b", "c")))
    d["w"] = 1.0 + (np.arange(len(d)) % 3)
    return d


def _cake_missing_cell():
    d = pylme.datasets.load("cake")
    return d[~((d.recipe == "C") & (d.temperature == "225"))].reset_index(drop=True)


LIVE = [
    ("cake", "angle ~ recipe * temp + (1|recipe:replicate)", True, None, (1, 2, 3)),
    ("cake-missing-cell", "angle ~ recipe * temperature + (1|recipe:replicate)", True, None, (1, 2, 3)),
    ("sleep", "Reaction ~ Days * Dcat + (1|Subject)", True, None, (1, 2, 3)),
    ("sleep", "Reaction ~ 0 + Dcat + Days:Dcat + (Days||Subject)", True, None, (1, 2, 3)),
    ("sleep", "Reaction ~ poly(Days, 2) + Dcat + (1|Subject)", True, None, (2, 3)),
    ("sleep", "Reaction ~ Days + (Days|Subject)", True, "w", (3,)),
    ("sleep", "Reaction ~ Days + (Days|Subject)", False, None, (3,)),
    ("classroom", "mathgain ~ mathkind * minority + sex:ses + (1|schoolid/classid)", True, None, (1, 2, 3)),
    ("classroom", "mathgain ~ mathkind * minority + sex:ses + (1|schoolid/classid)", False, None, (1, 2, 3)),
]

# lmerTest's own df carries numerical-derivative noise (~1e-7 relative on the classroom
# interaction model, whose X is badly scaled); on p-values near 1e-80 that is ~3e-6 relative.
LIVE_TOL = {"df": 1e-6, "DenDF": 1e-6, "Pr(>|t|)": 1e-5, "Pr(>F)": 1e-5, "default": 1e-9}


def _live_data(name):
    if name == "sleep":
        return _sleep_extra()
    if name == "cake-missing-cell":
        return _cake_missing_cell()
    return pylme.datasets.load(name)


def _r_lmertest(formula, data, REML, types, weights):
    import r_reference as rr

    rr._bridge()
    ro = rr._state["ro"]
    if not ro.r('isTRUE(requireNamespace("lmerTest", quietly = TRUE))')[0]:
        pytest.skip("R package lmerTest is not installed")
    fn = ro.r(R_RECORD)
    out = fn(formula, rr._frame_to_r(data), bool(REML), ro.IntVector(list(types)), ro.ListVector([]),
             ro.NULL if weights is None else weights)

    def table(x):
        rows = rr._strings(rr._get(x, "rows"))
        vals = rr._matrix(rr._get(x, "vals"))
        return dict(zip(rows, vals))

    return {
        "theta": rr._floats(rr._get(out, "theta")),
        "coef": table(rr._get(out, "coef")),
        "anova": {t: table(a) for t, a in zip(types, rr._get(out, "anova"))},
    }


@pytest.mark.usefixtures("require_r")
@pytest.mark.parametrize("dataset,formula,REML,weights,types", LIVE)
def test_live_lmerTest_at_its_theta(dataset, formula, REML, weights, types):
    data = _live_data(dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _r_lmertest(formula, data, REML, types, weights)
        fm = pylme.lmer(formula, data, REML=REML, weights=weights, start=np.array(ref["theta"]),
                        control=LmerControl(optimizer=None))
        assert_table(S.satterthwaite_table(fm), ref["coef"], T_COLS, LIVE_TOL, f"{formula} summary")
        for ty in types:
            assert_table(S.anova_table(fm, ty), ref["anova"][ty], F_COLS, LIVE_TOL, f"{formula} anova {ty}")


def test_summary_and_anova_wiring():
    """fm.summary(ddf="Satterthwaite"), fm.anova(ddf=...) and fm.contest reach lmerTest's numbers
    (sleepstudy: df 17 for both coefficients; lmerTest 3.1-3 prints 17.000, p 3.26e-06)."""
    import pylme

    fm = pylme.lmer("Reaction ~ Days + (Days | Subject)", pylme.datasets.load("sleepstudy"))
    s = fm.summary(ddf="Satterthwaite")
    assert s.coefficients["df"].to_numpy() == pytest.approx([17.0, 17.0], rel=1e-4)
    text = str(s)
    assert text.splitlines()[:2] == ["Linear mixed model fit by REML. t-tests use Satterthwaite's method [",
                                     "lmerModLmerTest]"]
    days = next(line for line in text.splitlines() if line.startswith("Days "))
    assert days.split() == ["Days", "10.467", "1.546", "17.000", "6.771", "3.26e-06", "***"]
    assert fm.anova(ddf="Satterthwaite").loc["Days", "DenDF"] == pytest.approx(17.0, rel=1e-4)
    assert fm.contest([0, 1])["df"].iloc[0] == pytest.approx(17.0, rel=1e-4)
    with pytest.raises(ValueError, match="ddf must be"):
        fm.summary(ddf="Kenward")
