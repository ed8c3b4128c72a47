"""Kenward-Roger's method (pylme.inference.kenward_roger) against R's lmerTest 3.1-3 and pbkrtest 0.5.2.

Recorded values (``REFERENCE`` below; no R needed): written with full round-trip precision
(Python ``repr`` of the doubles R returned) from R 4.2.2 Patched (2022-11-10 r83330),
lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2, Matrix 1.5-3, by running ``R_KR`` (below, through
rpy2 on the data of ``pylme.datasets.load(name)``, so R and pylme see identical data) with
``ddf = "Kenward-Roger"`` for

* sleepstudy  ``Reaction ~ Days + (Days|Subject)``: summary, anova type 3, contest1D(c(0, 1)),
  contestMD(diag(2))
* classroom   ``mathgain ~ mathkind + minority + ses + (1|schoolid) + (1|schoolid:classid)``:
  summary, anova types 1, 2, 3, contestMD of the three slopes
* cake        ``angle ~ recipe * temperature + (1|recipe:replicate)`` (temperature an ordered
  factor): summary, anova types 1, 2, 3
* Penicillin  ``diameter ~ 1 + (1|plate) + (1|sample)``: summary

Each is checked at pylme's own optimum with the acceptance tolerances (df 1e-4 relative; SE,
t, F and p-values 1e-6) and at lme4's theta (``start=theta, optimizer=None``), which isolates
the Kenward-Roger computation from the optimiser: it is closed-form (no numerical
derivatives), so there everything agrees to rounding (1e-9; p-values 1e-8).

Live tests (need R with lmerTest and pbkrtest through rpy2; they fail rather than skip under
PYLME_REQUIRE_R=1) run ``R_KR`` on every REML case of the conformance corpus with fixed effects
(at lme4's theta: pbkrtest's vcovAdj, the summary table and anova types 1, 2, 3), the named
models again at pylme's own fit, the printed coefficient block, contrasts with a right-hand
side and rank-deficient contrasts, and lmerTest's refusal of ML fits.

Measured (R live, 78 REML corpus models with fixed effects, InstEval subsets aside): at lme4's
theta, vcovAdj within 1.2e-12 (relative to sqrt(v_ii v_jj)), Std. Error 6e-13, df and DenDF
5e-12, t and F values and Sum Sq 1.1e-11, p-values 1.4e-10 (estimates that are 0 up to rounding
aside: both sides are noise there); at pylme's own fit on the ``NAMED`` models, df 5.6e-9,
Std. Error 2.2e-9, F 8.4e-10, p 2.8e-7. At the own fit of other corpus models the differences
follow the optimisers' theta differences (sleepstudy_nested_slope: theta 1.9e-6 apart, p 2.5e-5).
InstEval's 6000-row subset (recorded; pbkrtest needs 12 minutes there): vcovAdj 6e-14, df 9e-14.

Known divergence (``test_zero_hypothesis_is_empty``): a contrast matrix of rank 0 (all zeros)
gives pylme an empty table, as Satterthwaite's method does; lmerTest hands it to pbkrtest,
whose ``force_full_rank`` then tests the first coefficient instead.
"""
from __future__ import annotations

import warnings
from functools import partial

import lmertest_tables as tables
import numpy as np
import pandas as pd
import pytest
from lmertest_tables import F_COLS, T_COLS, WHERE, fitter

import pylme
from pylme import ModelError
from pylme import kenward_roger as KR
from pylme.inference import satterthwaite as S
from pylme.fitting.driver import LmerControl

KRM = "Kenward-Roger"

# The R function that produced REFERENCE (and that the live tests call through rpy2).
R_KR = r"""
function(formula, data, REML, types, Ls, weights) {
  suppressMessages(library(lmerTest))
  f <- stats::as.formula(formula, env = new.env(parent = globalenv()))
  fm <- if (is.null(weights)) lmerTest::lmer(f, data = data, REML = REML) else {
    data$.w <- data[[weights]]; lmerTest::lmer(f, data = data, REML = REML, weights = .w) }
  tab <- function(x) list(rows = rownames(x), vals = unname(as.matrix(x)))
  kr <- "Kenward-Roger"
  an <- lapply(types, function(ty) tab(anova(fm, type = ty, ddf = kr)))
  ct <- lapply(Ls, function(L) { L <- matrix(L, ncol = length(fixef(fm)), byrow = TRUE)
      tab(if (nrow(L) == 1) contest1D(fm, drop(L), ddf = kr) else contestMD(fm, L, ddf = kr)) })
  list(theta = unname(getME(fm, "theta")), coef = tab(summary(fm, ddf = kr)$coefficients),
       anova = an, contest = ct, vcovAdj = unname(as.matrix(pbkrtest::vcovAdj(fm))),
       printed = utils::capture.output(print(summary(fm, ddf = kr))))
}
"""

REFERENCE = {
    'sleepstudy': {
        "formula": 'Reaction ~ Days + (Days|Subject)',
        "theta": [0.9667417739674123, 0.015169058896036137, 0.23090995320779453],
        "coef": {
            '(Intercept)': [251.40510484848497, 6.82459669495491, 16.999999999999996, 36.83808964628437, 1.1710033157107833e-17],
            'Days': [10.467285959595987, 1.5457896439059837, 17.000000000000497, 6.77148148899917, 3.2638080181476354e-06],
        },
        "anova": {
            3: {
                'Days': [30030.939020137568, 30030.939020137568, 1.0, 17.000000000000497, 45.85296155585841, 3.2638080181476354e-06],
            },
        },
        "contest": [
            ([0, 1], [10.467285959595987, 1.5457896439059837, 17.000000000000497, 6.77148148899917, 3.2638080181476354e-06]),
            ([1, 0, 0, 1], [982345.1129427347, 491172.55647136737, 2.0, 16.00000000000026, 705.8357213169866, 2.4884772865844806e-16]),
        ],
    },
    'classroom': {
        "formula": 'mathgain ~ mathkind + minority + ses + (1|schoolid) + (1|schoolid:classid)',
        "theta": [0.3358078897474019, 0.31959985704261246],
        "coef": {
            '(Intercept)': [282.4193167659639, 10.874891960492302, 1165.5623423860482, 25.969850348120506, 1.0747334740983993e-117],
            'mathkind': [-0.47031619238048333, 0.02232305081817808, 1173.3805828059594, -21.06863422079817, 7.864670485661392e-84],
            'minorityY': [-8.290861046233468, 2.355730209981968, 570.1703170486605, -3.519444209316707, 0.00046697182515311635],
            'ses': [5.364617331625079, 1.2445150723399117, 1171.9404366526023, 4.310608566225427, 1.7647149233700246e-05],
        },
        "anova": {
            1: {
                'mathkind': [269795.33805271494, 269795.33805271494, 1.0, 1076.1627143595124, 367.26453455681303, 1.1679858939214298e-70],
                'minority': [14314.407023967828, 14314.407023967828, 1.0, 528.9232321025967, 19.485785303255046, 1.2291878375553605e-05],
                'ses': [13649.999144565001, 13649.999144565001, 1.0, 1171.9404366526023, 18.581346211216026, 1.7647149233700246e-05],
            },
            2: {
                'mathkind': [326083.04321177094, 326083.04321177094, 1.0, 1173.3805828059594, 443.88734792978784, 7.864670485661392e-84],
                'minority': [9099.208552345699, 9099.208552345699, 1.0, 570.1703170486605, 12.386487542492908, 0.00046697182515311397],
                'ses': [13649.999144565001, 13649.999144565001, 1.0, 1171.9404366526023, 18.581346211216026, 1.7647149233700246e-05],
            },
            3: {
                'mathkind': [326083.04321177094, 326083.04321177094, 1.0, 1173.3805828059594, 443.88734792978784, 7.864670485661392e-84],
                'minority': [9099.208552345699, 9099.208552345699, 1.0, 570.1703170486605, 12.386487542492908, 0.00046697182515311397],
                'ses': [13649.999144565001, 13649.999144565001, 1.0, 1171.9404366526023, 18.581346211216026, 1.7647149233700246e-05],
            },
        },
        "contest": [
            ([0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], [326608.9947650188, 108869.66492167294, 3.0, 890.3826480425895, 148.15285073798597, 7.096993337793261e-78]),
        ],
    },
    'cake': {
        "formula": 'angle ~ recipe * temperature + (1|recipe:replicate)',
        "theta": [1.4295916335740888],
        "coef": {
            '(Intercept)': [33.12222222222393, 1.7368333974217836, 41.999999999996675, 19.070465982167157, 2.6708474965189715e-22],
            'recipeB': [-1.477777777779405, 2.4562533462164002, 41.999999999998174, -0.6016389881181297, 0.5506484361566015],
            'recipeC': [-1.5222222222238815, 2.4562533462164002, 41.999999999998174, -0.6197333937758108, 0.5387811526146518],
            'temperature.L': [6.430329918219078, 1.1682151473705336, 209.99999999999696, 5.504405530687329, 1.0738575451673728e-07],
            'temperature.Q': [-0.7128451081042411, 1.1682151473705302, 209.99999999999696, -0.6102001927545144, 0.5423889605069826],
            'temperature.C': [-2.325510696599778, 1.1682151473705307, 210.00000000000324, -1.9906527507661052, 0.0478156720866228],
            'temperature^4': [-3.351284994015147, 1.1682151473705313, 210.00000000000324, -2.8687224280205257, 0.004542150277209316],
            'temperature^5': [-0.1511857892036931, 1.1682151473705327, 209.9999999999938, -0.12941604938438642, 0.8971523178517269],
            'recipeB:temperature.L': [0.4541868715470302, 1.6521057051810903, 210.00000000000009, 0.2749139296127822, 0.7836526442222638],
            'recipeC:temperature.L': [0.08765009801781756, 1.6521057051810903, 210.00000000000009, 0.05305356536385187, 0.9577396628777934],
            'recipeB:temperature.Q': [-0.232765749585061, 1.6521057051810883, 209.99999999999696, -0.14089034911936665, 0.8880916193973039],
            'recipeC:temperature.Q': [1.2147462556470219, 1.6521057051810881, 209.99999999999696, 0.7352715094666857, 0.4629945115355163],
            'recipeB:temperature.C': [2.6932196528997414, 1.6521057051810883, 210.00000000000009, 1.6301739316398862, 0.10456369399202076],
            'recipeC:temperature.C': [2.638560213449748, 1.6521057051810883, 210.00000000000324, 1.5970892208501477, 0.1117494626695655],
            'recipeB:temperature^4': [3.0237157840738162, 1.6521057051810886, 210.00000000000009, 1.8302193222814302, 0.06863464612762425],
            'recipeC:temperature^4': [3.1371051259765843, 1.6521057051810883, 210.00000000000324, 1.8988525468669841, 0.05895477879695287],
            'recipeB:temperature^5': [-0.6635376303939751, 1.6521057051810901, 209.99999999999696, -0.4016314623895349, 0.6883636960874605],
            'recipeC:temperature^5': [-1.6252472339396757, 1.6521057051810901, 209.99999999999696, -0.9837428857262676, 0.3263739728828422],
        },
        "anova": {
            1: {
                'recipe': [10.18586046135526, 5.09293023067763, 2.0, 41.99999999999868, 0.24878878630026355, 0.7808856049963082],
                'temperature': [2100.300000000003, 420.0600000000006, 5.0, 209.99999999999739, 20.519860441792073, 1.1531621234860656e-16],
                'recipe:temperature': [205.97777777777713, 20.597777777777715, 10.0, 209.99999999999932, 1.006197984599924, 0.4392694366954569],
            },
            2: {
                'recipe': [10.18586046135526, 5.09293023067763, 2.0, 41.99999999999868, 0.24878878630026355, 0.7808856049963082],
                'temperature': [2100.300000000003, 420.0600000000006, 5.0, 209.99999999999739, 20.519860441792073, 1.1531621234860656e-16],
                'recipe:temperature': [205.97777777777713, 20.597777777777715, 10.0, 209.99999999999932, 1.006197984599924, 0.4392694366954569],
            },
            3: {
                'recipe': [10.185861526428067, 5.092930763214033, 2.0, 42.00000000000036, 0.2487888123145774, 0.7808855849199515],
                'temperature': [2100.300016866629, 420.0600033733258, 5.0, 210.00000000000009, 20.519860606578433, 1.1531618134109087e-16],
                'recipe:temperature': [205.97777777777713, 20.597777777777715, 10.0, 209.99999999999932, 1.006197984599924, 0.4392694366954569],
            },
        },
        "contest": [
        ],
    },
    'Penicillin': {
        "formula": 'diameter ~ 1 + (1|plate) + (1|sample)',
        "theta": [1.539675554152165, 3.5125188600064563],
        "coef": {
            '(Intercept)': [22.972222222213748, 0.8085953614208669, 5.487061860327856, 28.410034633202535, 3.619975390517668e-07],
        },
        "anova": {
        },
        "contest": [
        ],
    },
}

# acceptance tolerances (pylme's own fit) and tight ones at lme4's theta; Estimate and t value
# also pass within tol * SE (resp. tol) of R's, for coefficients that are 0 up to rounding
OWN = {"df": 1e-4, "DenDF": 1e-4, "default": 1e-6}
AT_R = {"Pr(>|t|)": 1e-8, "Pr(>F)": 1e-8, "default": 1e-9}


fitted = fitter(REFERENCE)
# Kenward-Roger's estimates that are 0 up to rounding are noise on both sides (and NaN matches NaN)
assert_table = partial(tables.assert_table, near_zero=True)
assert_row = partial(tables.assert_row, near_zero=True)


MODELS = list(REFERENCE)


@pytest.mark.parametrize("at_r", WHERE)
@pytest.mark.parametrize("name", MODELS)
def test_summary_coefficients(name, at_r):
    fm = fitted(name, at_r)
    tab = fm.summary(ddf=KRM).coefficients
    assert_table(tab, REFERENCE[name]["coef"], T_COLS, AT_R if at_r else OWN, f"{name} summary")


ANOVA_CASES = [(name, ty) for name in MODELS for ty in REFERENCE[name]["anova"]]


@pytest.mark.parametrize("at_r", WHERE)
@pytest.mark.parametrize("name,type_", ANOVA_CASES)
def test_anova(name, type_, at_r):
    fm = fitted(name, at_r)
    tab = fm.anova(type=type_, ddf=KRM)
    assert_table(tab, REFERENCE[name]["anova"][type_], F_COLS, AT_R if at_r else OWN, f"{name} anova type {type_}")
    roman = {1: "I", 2: "II", 3: "III"}[type_]
    assert tab.attrs["heading"] == f"Type {roman} Analysis of Variance Table with Kenward-Roger's method"


CONTEST_CASES = [(name, k) for name in MODELS for k in range(len(REFERENCE[name]["contest"]))]


@pytest.mark.parametrize("at_r", WHERE)
@pytest.mark.parametrize("name,k", CONTEST_CASES)
def test_contest(name, k, at_r):
    fm = fitted(name, at_r)
    flat, want = REFERENCE[name]["contest"][k]
    L = np.array(flat, dtype=float).reshape(-1, fm.p)
    tol = AT_R if at_r else OWN
    if L.shape[0] == 1:
        assert_row(fm.contest(L[0], ddf=KRM), want, T_COLS, tol, f"{name} contest1D")
        assert_row(S.contest1D(fm, L[0], ddf=KRM), want, T_COLS, tol, f"{name} contest1D")
    else:
        assert_row(fm.contest(L, ddf=KRM), want, F_COLS, tol, f"{name} contestMD")
        assert_row(S.contestMD(fm, L, ddf=KRM), want, F_COLS, tol, f"{name} contestMD")


def test_one_row_joint_test_is_krmodcomp():
    """contest(fm, L, joint = TRUE) with one row goes through KRmodcomp, whose F is scaled:
    lmerTest 3.1-3 gives sleepstudy's Days F 45.85296155585841 (t^2 of the summary) and DenDF 17."""
    fm = fitted("sleepstudy", True)
    F = fm.contest([0, 1], joint=True, ddf=KRM)
    assert F["F value"].iloc[0] == pytest.approx(45.85296155585841, rel=1e-9)
    assert F["DenDF"].iloc[0] == pytest.approx(17.000000000000497, rel=1e-9)


# ---------------------------------------------------------------- the adjusted covariance
def _dense_vcov_adj(fm) -> np.ndarray:
    """Kenward and Roger's adjusted covariance computed literally with n x n matrices: V from
    the VarCorr blocks and sigma^2, one G per covariance component (and I for sigma^2)."""
    rt = fm.lmod.reTrms
    X = fm.lmod.X
    n = X.shape[0]
    Gs, gam = [], []
    for t, off, vc in zip(rt.terms, rt.Gp[:-1], fm.VarCorr().terms):
        Zt = rt.Zt[off:off + t.nl * t.nc].toarray()
        for i in range(t.nc):
            for j in range(i, t.nc):
                E = np.zeros((t.nc, t.nc))
                E[i, j] = E[j, i] = 1.0
                Gs.append(Zt.T @ np.kron(np.eye(t.nl), E) @ Zt)
                gam.append(vc.cov[i, j])
    Gs.append(np.eye(n))
    gam.append(fm.sigma() ** 2)
    V = sum(g * G for g, G in zip(gam, Gs))
    Vi = np.linalg.inv(V)
    Phi = np.linalg.inv(X.T @ Vi @ X)
    Pm = Vi - Vi @ X @ Phi @ X.T @ Vi
    k = len(Gs)
    P = [-X.T @ Vi @ G @ Vi @ X for G in Gs]
    Q = [[X.T @ Vi @ Gr @ Vi @ Gs_ @ Vi @ X for Gs_ in Gs] for Gr in Gs]
    info = np.array([[np.trace(Pm @ Gr @ Pm @ Gs_) for Gs_ in Gs] for Gr in Gs])
    W = 2 * np.linalg.inv(info)
    U = sum(W[r, s] * (Q[r][s] - P[r] @ Phi @ P[s]) for r in range(k) for s in range(k))
    return Phi + 2 * Phi @ U @ Phi


@pytest.mark.parametrize("name", ["sleepstudy", "Penicillin", "cake"])
def test_vcov_adj_equals_the_dense_computation(name):
    """The q-space (Woodbury) computation equals the n x n one, and Phi is lme4's vcov."""
    fm = fitted(name, True)
    info = KR.vcovAdj(fm)
    dense = _dense_vcov_adj(fm)
    scale = np.sqrt(np.outer(np.diag(dense), np.diag(dense)))
    assert np.max(np.abs(info.vcov_adj - dense) / scale) < 1e-9
    np.testing.assert_allclose(info.vcov_beta, fm.vcov().to_numpy(), rtol=1e-12)


def test_sleepstudy_balanced_design_needs_no_adjustment():
    """sleepstudy is balanced: pbkrtest's adjusted covariance equals vcov (lmerTest prints the
    same SEs for both methods) and the df are exactly 17 = 18 subjects - 1."""
    fm = fitted("sleepstudy", True)
    info = KR.vcovAdj(fm)
    np.testing.assert_allclose(info.vcov_adj, info.vcov_beta, rtol=1e-10)
    assert KR.Lb_ddf(info, [0, 1]) == pytest.approx(17.0, rel=1e-12)


def test_insteval_subset_matches_pbkrtest():
    """The corpus's InstEval subset (n = 6000, q = 1094), at lme4's theta; recorded from
    pbkrtest 0.5.2 (R 4.2.2, lme4 1.1-31) on the same data: vcovAdj(fm) and
    Lb_ddf(c(0, 1), vcov(fm), vcovAdj(fm)). pbkrtest took 12 minutes here (dense 6000 x 6000
    products); pylme works in q-space."""
    from conformance.cases import select

    case = select("insteval_sub_reml")[0]
    theta = [0.44891199008609234, 0.26159043918082159, 0.10493426622021478]
    fm = pylme.lmer(case.formula, case.load_data(), start=np.array(theta), control=LmerControl(optimizer=None))
    info = KR.vcovAdj(fm)
    want = np.array([[0.0027416881079966888, -0.001975140404062682], [-0.001975140404062682, 0.0044183574396460482]])
    np.testing.assert_allclose(info.vcov_adj, want, rtol=1e-10)
    assert KR.Lb_ddf(info, [0, 1]) == pytest.approx(15.407205154570345, rel=1e-10)


def test_computed_once_per_fit():
    fm = fitted("classroom", False)
    info = KR.vcovAdj(fm)
    assert KR.vcovAdj(fm) is info
    fm.summary(ddf=KRM)
    fm.anova(type=1, ddf=KRM)
    assert KR.vcovAdj(fm) is info
    assert "_satterthwaite_info" not in fm.__dict__  # KR never needs Satterthwaite's Hessian


# ---------------------------------------------------------------- printing
def test_summary_prints_lmerTests_title_and_table():
    """lmerTest 3.1-3's print(summary(fm, ddf = "Kenward-Roger")) for sleepstudy: the title
    wrapped at 80 columns and printCoefmat's common format for Estimate, Std. Error and df."""
    text = str(fitted("sleepstudy", False).summary(ddf=KRM)).splitlines()
    assert text[:2] == ["Linear mixed model fit by REML. t-tests use Kenward-Roger's method [", "lmerModLmerTest]"]
    start = text.index("Fixed effects:")
    assert text[start + 1:start + 4] == [
        "            Estimate Std. Error      df t value Pr(>|t|)    ",
        "(Intercept)  251.405      6.825  17.000  36.838  < 2e-16 ***",
        "Days          10.467      1.546  17.000   6.771 3.26e-06 ***",
    ]


# ---------------------------------------------------------------- bad input and special cases
def test_ml_fit_is_refused_as_lmerTest_does():
    """lmerTest 3.1-3 stops with this message for summary, anova and contest of an ML fit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer("Reaction ~ Days + (Days|Subject)", pylme.datasets.load("sleepstudy"), REML=False)
    msg = "Kenward-Roger's method is only available for REML model fits"
    for call in (lambda: fm.summary(ddf=KRM), lambda: fm.anova(ddf=KRM), lambda: fm.anova(type=1, ddf=KRM),
                 lambda: fm.contest([0, 1], ddf=KRM), lambda: fm.contest(np.eye(2), ddf=KRM)):
        with pytest.raises(ModelError, match=msg):
            call()


def test_nothing_to_test_needs_no_REML():
    """lmerTest 3.1-3 refuses only when a test is computed: an ML fit without fixed effects
    gets empty tables, and a contrast with a missing value a row of NA."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sleep = pylme.datasets.load("sleepstudy")
        fm0 = pylme.lmer("Reaction ~ 0 + (1 | Subject)", sleep, REML=False)
        fm = pylme.lmer("Reaction ~ Days + (1 | Subject)", sleep, REML=False)
    assert fm0.summary(ddf=KRM).coefficients.empty and fm0.anova(ddf=KRM).empty
    assert fm.contest([np.nan, 1], ddf=KRM).isna().all(axis=None)


def test_wrong_width_names_the_expected_width():
    fm = fitted("sleepstudy", False)
    for bad in ([1, 2, 3], np.ones((2, 3)), [1.0]):
        with pytest.raises(ModelError, match=r"expecting 2 \(one per fixed-effect coefficient: \(Intercept\), Days\)"):
            fm.contest(bad, ddf=KRM)
    with pytest.raises(ModelError, match="expecting 2"):
        S.contestMD(fm, np.ones((3, 1)), ddf=KRM)
    with pytest.raises(ModelError, match="expecting 2"):
        S.contest1D(fm, [1, 2, 3], ddf=KRM)


def test_unknown_ddf_is_refused():
    fm = fitted("sleepstudy", False)
    with pytest.raises(ValueError, match="ddf must be"):
        fm.summary(ddf="Kenward")
    with pytest.raises(ValueError, match="ddf must be"):
        fm.anova(ddf="KR")
    with pytest.raises(ValueError, match="ddf must be"):
        fm.contest([0, 1], ddf="kenward-roger")


def test_zero_contrast_gives_lmerTests_missing_values():
    """lmerTest 3.1-3: contest1D(fm, c(0, 0), ddf = "Kenward-Roger") gives Estimate 0,
    Std. Error 0 and NaN df, t and p."""
    row = fitted("sleepstudy", False).contest([0, 0], ddf=KRM).iloc[0]
    assert row["Estimate"] == 0 and row["Std. Error"] == 0
    assert np.isnan(row["df"]) and np.isnan(row["t value"]) and np.isnan(row["Pr(>|t|)"])


def test_zero_hypothesis_is_empty():
    """A rank-0 hypothesis: an empty table (see the module docstring for lmerTest's)."""
    out = fitted("sleepstudy", False).contest(np.zeros((2, 2)), ddf=KRM)
    assert out.empty and list(out.columns) == F_COLS


def test_missing_contrast_gives_missing_row():
    fm = fitted("sleepstudy", False)
    assert fm.contest([np.nan, 1], ddf=KRM).isna().all(axis=None)
    assert fm.contest([[np.nan, 1], [1, 0]], ddf=KRM).isna().all(axis=None)


def test_rhs_and_rank_deficient_contrast_match_lmerTest():
    """Recorded (lmerTest 3.1-3): contestMD(fm, rbind(c(1, 0), c(2, 0)), rhs = c(1, 2),
    ddf = "Kenward-Roger") for sleepstudy warns that the contrast is rank deficient and gives
    F 1346.27063695159 on 1 and 17 df; contest1D(fm, c(0, 1), rhs = 10) t 0.3022959569."""
    fm = fitted("sleepstudy", True)
    with pytest.warns(pylme.PylmeWarning, match="Contrast is rank deficient"):
        F = fm.contest([[1, 0], [2, 0]], rhs=[1, 2], ddf=KRM)
    assert F["NumDF"].iloc[0] == 1
    assert F["F value"].iloc[0] == pytest.approx(1346.27063695159, rel=1e-9)
    assert F["Sum Sq"].iloc[0] == pytest.approx(881726.502085219, rel=1e-9)
    assert F["DenDF"].iloc[0] == pytest.approx(17.0, rel=1e-9)
    t = fm.contest([0, 1], rhs=10, ddf=KRM)
    assert t["t value"].iloc[0] == pytest.approx(0.3022959569, rel=1e-9)


def test_joint_false_gives_the_summary_rows():
    fm = fitted("classroom", False)
    rows = fm.contest(np.eye(4), joint=False, ddf=KRM)
    np.testing.assert_allclose(rows.to_numpy(), fm.summary(ddf=KRM).coefficients.to_numpy(), rtol=1e-14)
    ci = fm.contest(np.eye(4)[1], confint=True, ddf=KRM)
    assert list(ci.columns) == ["Estimate", "Std. Error", "df", "t value", "lower", "upper", "Pr(>|t|)"]


def test_satterthwaite_stays_the_default():
    fm = fitted("classroom", False)
    pd.testing.assert_frame_equal(fm.contest([0, 1, 0, 0]), S.contest(fm, [0, 1, 0, 0], ddf="Satterthwaite"))
    assert fm.anova(type=3).attrs["heading"].endswith("Satterthwaite's method")


# ---------------------------------------------------------------- live lmerTest / pbkrtest
def _r_kr(formula, data, types=(1, 2, 3), Ls=(), weights=None, REML=True):
    import r_reference as rr

    rr._bridge()
    ro = rr._state["ro"]
    if not ro.r('isTRUE(requireNamespace("lmerTest", quietly = TRUE)) && '
                'isTRUE(requireNamespace("pbkrtest", quietly = TRUE))')[0]:
        pytest.fail("R packages lmerTest and pbkrtest are needed for the live Kenward-Roger tests")
    out = ro.r(R_KR)(formula, rr._frame_to_r(data), bool(REML), ro.IntVector(list(types)),
                     ro.ListVector({str(i): ro.FloatVector(L) for i, L in enumerate(Ls)}),
                     ro.NULL if weights is None else weights)

    def table(x):
        return dict(zip(rr._strings(rr._get(x, "rows")), rr._matrix(rr._get(x, "vals"))))

    return {
        "theta": rr._floats(rr._get(out, "theta")),
        "coef": table(rr._get(out, "coef")),
        "anova": {t: table(a) for t, a in zip(types, rr._get(out, "anova") or [])},
        "contest": [next(iter(table(c).values())) for c in (rr._get(out, "contest") or [])],
        "vcovAdj": np.array(rr._matrix(rr._get(out, "vcovAdj"))),
        "printed": rr._strings(rr._get(out, "printed")),
    }


def _corpus_cases():
    """REML cases with fixed effects; not the InstEval subsets (n = 6000), where pbkrtest's
    dense n x n products take R many minutes (pylme: seconds)."""
    from conformance.cases import select

    return [c for c in select() if c.REML and "error" not in c.id and c.dataset != "InstEval"
            and not c.id.startswith("sleepstudy_no_fixed")]


def _fit(case, data, theta=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if theta is None:
            return pylme.lmer(case.formula, data, weights=case.weights)
        return pylme.lmer(case.formula, data, weights=case.weights, start=np.array(theta),
                          control=LmerControl(optimizer=None))


@pytest.mark.usefixtures("require_r")
@pytest.mark.parametrize("case", _corpus_cases(), ids=lambda c: c.id)
def test_live_corpus_at_lme4_theta(case):
    """Every REML corpus model with fixed effects: vcovAdj, summary and anova types 1-3."""
    data = case.load_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _r_kr(case.formula, data, weights=case.weights)
        fm = _fit(case, data, ref["theta"])
        A, B = KR.vcovAdj(fm).vcov_adj, ref["vcovAdj"]
        assert np.max(np.abs(A - B) / np.sqrt(np.outer(np.diag(B), np.diag(B)))) < 1e-9
        assert_table(fm.summary(ddf=KRM).coefficients, ref["coef"], T_COLS, AT_R, f"{case.id} summary")
        for ty, want in ref["anova"].items():
            assert_table(fm.anova(type=ty, ddf=KRM), want, F_COLS, AT_R, f"{case.id} anova {ty}")


NAMED = ["sleepstudy_corr_reml", "classroom_nested_reml", "classroom_3cov_reml", "classroom_interaction_reml",
         "cake_fm1_reml", "cake_fm2_reml", "cake_noint_reml", "penicillin_reml", "penicillin_noint_reml",
         "penicillin_sample_fixed_reml", "pastes_cask_fixed_noint_reml", "sleepstudy_factor_days_reml",
         "sleepstudy_ordered_days_reml", "cbpp_size_reml"]


@pytest.mark.usefixtures("require_r")
@pytest.mark.parametrize("case_id", NAMED)
def test_live_own_fit(case_id):
    """The acceptance models (factors, ordered factors, nested and crossed terms, prior weights)
    at pylme's own optimum, with the acceptance tolerances."""
    case = next(c for c in _corpus_cases() if c.id == case_id)
    data = case.load_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _r_kr(case.formula, data, weights=case.weights)
        fm = _fit(case, data)
        assert_table(fm.summary(ddf=KRM).coefficients, ref["coef"], T_COLS, OWN, f"{case.id} summary")
        for ty, want in ref["anova"].items():
            assert_table(fm.anova(type=ty, ddf=KRM), want, F_COLS, OWN, f"{case.id} anova {ty}")


@pytest.mark.usefixtures("require_r")
@pytest.mark.parametrize("name", ["classroom", "cake"])
def test_live_printed_coefficients(name):
    """The title and the coefficient block of print(summary(fm, ddf = "Kenward-Roger"))."""
    ref = REFERENCE[name]
    live = _r_kr(ref["formula"], pylme.datasets.load(name), types=())
    printed = live["printed"]
    ours = str(fitted(name, False).summary(ddf=KRM)).splitlines()
    assert ours[:2] == printed[:2]
    block = printed[printed.index("Fixed effects:"):printed.index("---")]
    start = ours.index("Fixed effects:")
    assert ours[start:start + len(block)] == block


@pytest.mark.usefixtures("require_r")
def test_live_contests():
    """contest1D and contestMD with several rows, a rank-deficient matrix and a model with
    factor slopes, at lme4's theta."""
    data = pylme.datasets.load("classroom")
    f = "mathgain ~ mathkind * minority + sex:ses + (1|schoolid/classid)"
    Ls = [[0, 1, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0],
          list(np.eye(6)[1:].ravel()), [0, 0, 0, 1, 0, -1]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _r_kr(f, data, types=(1, 2, 3), Ls=Ls)
        fm = pylme.lmer(f, data, start=np.array(ref["theta"]), control=LmerControl(optimizer=None))
        for flat, want in zip(Ls, ref["contest"]):
            L = np.array(flat, dtype=float).reshape(-1, fm.p)
            if L.shape[0] == 1:
                assert_row(S.contest1D(fm, L[0], ddf=KRM), want, T_COLS, AT_R, f"contest1D {flat}")
            else:
                assert_row(S.contestMD(fm, L, ddf=KRM), want, F_COLS, AT_R, f"contestMD {flat}")
        for ty, want in ref["anova"].items():
            assert_table(fm.anova(type=ty, ddf=KRM), want, F_COLS, AT_R, f"anova {ty}")


@pytest.mark.usefixtures("require_r")
def test_live_ml_refusal_is_lmerTests():
    import r_reference as rr

    rr._bridge()
    ro = rr._state["ro"]
    msg = ro.r('suppressMessages(library(lmerTest)); '
               'tryCatch(summary(lmer(Reaction ~ Days + (Days|Subject), sleepstudy, REML = FALSE), '
               'ddf = "Kenward-Roger"), error = conditionMessage)')[0]
    assert msg == KR.REML_ONLY
