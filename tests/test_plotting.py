"""pylme.io.plotting: each plot drawn from a real fit shows the model's numbers (read back from the
figure's artists), and, live through R, the same numbers lattice/lme4 put in their panels."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy.stats import norm

import pylme
from pylme import plotting as P
from pylme.errors import DataError

plt.switch_backend("agg")

SLEEP = "Reaction ~ Days + (Days | Subject)"
PENICILLIN = "diameter ~ 1 + (1 | plate) + (1 | sample)"
CLASSROOM = "mathgain ~ mathkind + minority + ses + (1 | classid) + (1 | schoolid)"  # Bates' fm8


def _fit(formula, dataset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pylme.lmer(formula, pylme.datasets.load(dataset))


@pytest.fixture(scope="module")
def sleep():
    return _fit(SLEEP, "sleepstudy")


@pytest.fixture(scope="module")
def penicillin():
    return _fit(PENICILLIN, "Penicillin")


@pytest.fixture(scope="module")
def classroom():
    return _fit(CLASSROOM, "classroom")


@pytest.fixture
def draw():
    """Call a plot function and close its figure after the test."""
    figs = []

    def call(fn, *args, **kwargs):
        figs.append(fn(*args, **kwargs))
        return figs[-1]

    yield call
    for fig in figs:
        plt.close(fig)


def points(ax):
    """The (x, y) of each marker-only line (the plotted observations) in an axes."""
    return [(ln.get_xdata(), ln.get_ydata()) for ln in ax.get_lines() if ln.get_linestyle() == "None"]


def segments(ax):
    """Horizontal interval segments (hlines) as arrays of x-from, x-to, y."""
    (coll,) = ax.collections
    seg = np.array(coll.get_segments())
    return seg[:, 0, 0], seg[:, 1, 0], seg[:, 0, 1]


def ytick_texts(ax):
    return [t.get_text() for t in ax.get_yticklabels()]


# ---------------------------------------------------------------- caterpillar plots
def test_dotplot_sleepstudy_order_points_and_intervals(sleep, draw):
    fig = draw(P.dotplot_ranef, sleep)
    re = sleep.ranef(condVar=True)
    modes, sd = re["Subject"], np.sqrt(np.diagonal(re.condVar["Subject"], axis1=1, axis2=2))
    order = np.argsort(modes["(Intercept)"].to_numpy())
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["Subject: (Intercept)", "Subject: Days"]
    assert ytick_texts(fig.axes[0]) == list(modes.index[order])
    assert fig.axes[0].get_ylabel() == "Subject"
    for j, ax in enumerate(fig.axes):
        (x, y), = points(ax)
        assert len(x) == 18
        np.testing.assert_allclose(x, modes.iloc[order, j].to_numpy(), rtol=1e-12)
        np.testing.assert_array_equal(y, np.arange(18))
        lo, hi, ypos = segments(ax)
        np.testing.assert_allclose((hi - lo) / 2, 1.96 * sd[order, j], rtol=1e-12)
        np.testing.assert_allclose((hi + lo) / 2, x, rtol=1e-12)
        np.testing.assert_array_equal(ypos, np.arange(18))
    # intercept panel sorted increasing; the slopes follow the intercepts' order, not their own
    assert np.all(np.diff(points(fig.axes[0])[0][0]) > 0)
    assert not np.all(np.diff(points(fig.axes[1])[0][0]) > 0)


def test_dotplot_crossed_factors_and_term(penicillin, draw):
    fig = draw(P.dotplot_ranef, penicillin)
    assert [ax.get_title() for ax in fig.axes] == ["plate: (Intercept)", "sample: (Intercept)"]
    assert [len(points(ax)[0][0]) for ax in fig.axes] == [24, 6]
    plates = ytick_texts(fig.axes[0])  # plates i and j tie exactly (both sum to 133): level order
    assert plates.index("j") == plates.index("i") + 1
    fig = draw(P.dotplot_ranef, penicillin, term="sample")
    (ax,) = fig.axes
    modes = penicillin.ranef()["sample"]["(Intercept)"].sort_values()
    assert ytick_texts(ax) == list(modes.index)  # seed: F lowest (-3.00), A highest (2.19)
    assert ytick_texts(ax)[0] == "F" and ytick_texts(ax)[-1] == "A"


def test_dotplot_many_levels_drops_labels_keeps_order(classroom, draw):
    fig = draw(P.dotplot_ranef, classroom, term="classid")
    (ax,) = fig.axes
    (x, _), = points(ax)
    assert len(x) == 312 and ytick_texts(ax) == []
    np.testing.assert_allclose(x, np.sort(classroom.ranef()["classid"]["(Intercept)"].to_numpy()), rtol=1e-12)


# ---------------------------------------------------------------- normal probability plots
def test_qqmath_ranef_sorts_each_column(sleep, draw):
    fig = draw(P.qqmath_ranef, sleep)
    re = sleep.ranef(condVar=True)
    sd = np.sqrt(np.diagonal(re.condVar["Subject"], axis1=1, axis2=2))
    q = norm.ppf((np.arange(18) + 0.5) / 18)
    assert len(fig.axes) == 2 and fig.axes[0].get_ylabel() == "Standard normal quantiles"
    for j, ax in enumerate(fig.axes):
        values = re["Subject"].iloc[:, j].to_numpy()
        order = np.argsort(values)
        (x, y), = points(ax)
        np.testing.assert_allclose(x, values[order], rtol=1e-12)
        np.testing.assert_allclose(y, q, rtol=1e-12)
        lo, hi, _ = segments(ax)
        np.testing.assert_allclose((hi - lo) / 2, 1.96 * sd[order, j], rtol=1e-12)


def test_qqmath_classroom_two_factors(classroom, draw):
    fig = draw(P.qqmath_ranef, classroom)
    assert [ax.get_title() for ax in fig.axes] == ["classid: (Intercept)", "schoolid: (Intercept)"]
    assert [len(points(ax)[0][0]) for ax in fig.axes] == [312, 107]


def test_qqnorm_resid_points_and_line(sleep, draw):
    fig = draw(P.qqnorm_resid, sleep)
    (ax,) = fig.axes
    r = np.sort(sleep.residuals().to_numpy())
    (x, y), = points(ax)
    np.testing.assert_allclose(y, r, rtol=1e-12)
    np.testing.assert_allclose(x, norm.ppf((np.arange(1, 181) - 0.5) / 180), rtol=1e-12)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == (
        "Theoretical Quantiles", "Sample Quantiles", "Normal Q-Q Plot")


# ---------------------------------------------------------------- residual plots
def test_resid_fitted_values_and_zero_line(sleep, draw):
    fig = draw(P.plot_resid_fitted, sleep)
    (ax,) = fig.axes
    (x, y), = points(ax)
    np.testing.assert_allclose(x, sleep.fitted().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(y, sleep.residuals(type="pearson", scaled=True).to_numpy(), rtol=1e-12)
    assert any(list(ln.get_ydata()) == [0, 0] for ln in ax.get_lines())
    assert fig.get_supxlabel() == "fitted(.)" and fig.get_supylabel() == "Standardized residuals"
    fig = draw(P.plot_resid_fitted, sleep, scaled=False)
    np.testing.assert_allclose(points(fig.axes[0])[0][1], sleep.residuals().to_numpy(), rtol=1e-12)


def test_resid_by_covariate_and_by_factor(sleep, draw):
    fig = draw(P.plot_resid_fitted, sleep, by="Days")
    (ax,) = fig.axes
    np.testing.assert_array_equal(points(ax)[0][0], pylme.datasets.load("sleepstudy")["Days"].to_numpy())
    assert fig.get_supxlabel() == "Days"
    fig = draw(P.plot_resid_fitted, sleep, by="Subject")
    assert len(fig.axes) == 18
    assert [len(points(ax)[0][0]) for ax in fig.axes] == [10] * 18
    assert fig.axes[0].get_title() == "308"


def test_resid_by_group_boxes(sleep, draw):
    fig = draw(P.plot_resid_by_group, sleep, "Subject")
    (ax,) = fig.axes
    r = sleep.residuals(type="pearson", scaled=True)
    subject = pylme.datasets.load("sleepstudy")["Subject"]
    medians = [ln.get_xdata()[0] for ln in ax.get_lines() if ln.get_gid() == "median"]
    np.testing.assert_allclose(medians, r.groupby(subject.to_numpy(), observed=True).median().to_numpy(), rtol=1e-12)
    assert ytick_texts(ax) == [str(s) for s in subject.cat.categories]
    assert ax.get_ylabel() == "Subject"


def test_boxplot_stats_are_tukey_hinges():
    """R: boxplot.stats(c(1, 2, 3, 4, 5, 6, 7, 8, 100))$stats is 1 3 5 7 8, $out 100;
    boxplot.stats(1:10)$stats is 1 3 5.5 8 10 (hinges, not type-7 quartiles 3.25 / 7.75)."""
    s = P._boxplot_stats(np.array([1, 2, 3, 4, 5, 6, 7, 8, 100.0]))
    assert [s[k] for k in ("whislo", "q1", "med", "q3", "whishi")] == [1, 3, 5, 7, 8]
    assert list(s["fliers"]) == [100]
    s = P._boxplot_stats(np.arange(1.0, 11.0))
    assert [s[k] for k in ("whislo", "q1", "med", "q3", "whishi")] == [1, 3, 5.5, 8, 10]


# ---------------------------------------------------------------- data with fits
def test_observed_fitted_panels(sleep, draw):
    fig = draw(P.plot_observed_fitted, sleep, group="Subject")
    assert len(fig.axes) == 18
    sub = pylme.datasets.load("sleepstudy")
    first = sub["Subject"] == "308"
    (x, y), = points(fig.axes[0])
    np.testing.assert_allclose(x, sleep.fitted()[first].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(y, sub.loc[first, "Reaction"].to_numpy(), rtol=1e-12)
    assert fig.get_supylabel() == "Reaction" and fig.get_supxlabel() == "fitted(.)"


def test_fitted_lines_panels(sleep, draw):
    fig = draw(P.plot_fitted_lines, sleep, x="Days", group="Subject")
    assert len(fig.axes) == 18
    coef = sleep.coef()["Subject"]
    data = pylme.datasets.load("sleepstudy")
    for ax, subject in zip(fig.axes, coef.index):
        assert ax.get_title() == subject
        (x, y), = points(ax)
        rows = data[data["Subject"] == subject].sort_values("Days")
        np.testing.assert_array_equal(x, rows["Days"].to_numpy())
        np.testing.assert_array_equal(y, rows["Reaction"].to_numpy())
        fit_line, pop_line = [ln for ln in ax.get_lines() if ln.get_linestyle() != "None"]
        a, b = coef.loc[subject, ["(Intercept)", "Days"]]
        np.testing.assert_allclose(fit_line.get_ydata(), a + b * fit_line.get_xdata(), rtol=1e-10)
        fe = sleep.fixef()
        np.testing.assert_allclose(pop_line.get_ydata(), fe["(Intercept)"] + fe["Days"] * pop_line.get_xdata(),
                                   rtol=1e-10)


def test_fitted_lines_overlay_for_many_groups(classroom, draw):
    fig = draw(P.plot_fitted_lines, classroom, x="mathkind", group="schoolid")
    (ax,) = fig.axes
    assert len(points(ax)) == 107
    assert sum(len(x) for x, _ in points(ax)) == classroom.nobs()
    # the population fit also moves with minority and ses: no line for it against mathkind alone
    assert len([ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]) == 0


# ---------------------------------------------------------------- files
@pytest.mark.parametrize("suffix,magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_file_written(sleep, draw, tmp_path, suffix, magic):
    path = tmp_path / f"cat.{suffix}"
    draw(P.dotplot_ranef, sleep, file=path)
    assert path.stat().st_size > 1000 and path.read_bytes().startswith(magic)


def test_save_diagnostics(penicillin, tmp_path):
    before = plt.get_fignums()
    paths = P.save_diagnostics(penicillin, tmp_path / "diag", fmt="svg")
    assert [p.name for p in paths] == [
        "resid_fitted.svg", "qqnorm_resid.svg", "dotplot_ranef_plate.svg", "qqmath_ranef_plate.svg",
        "dotplot_ranef_sample.svg", "qqmath_ranef_sample.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert plt.get_fignums() == before  # figures closed


def test_save_diagnostics_nested_factor_file_names(tmp_path):
    fm = _fit("strength ~ (1 | batch/cask)", "Pastes")
    paths = P.save_diagnostics(fm, tmp_path)
    assert "dotplot_ranef_cask_batch.png" in [p.name for p in paths]


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,match", [
    (lambda fm: P.dotplot_ranef(fm, term="Subjekt"), "'Subjekt' is not a grouping factor.*Subject"),
    (lambda fm: P.qqmath_ranef(fm, term="Days"), "'Days' is not a grouping factor"),
    (lambda fm: P.plot_resid_by_group(fm, "Patient"), "'Patient' is neither a grouping factor"),
    (lambda fm: P.plot_fitted_lines(fm, x="Dayz", group="Subject"), "'Dayz'"),
    (lambda fm: P.plot_fitted_lines(fm, x="Subject", group="Subject"), "'Subject' must be numeric"),
    (lambda fm: P.plot_observed_fitted(fm, group="Subjects"), "'Subjects'"),
    (lambda fm: P.plot_resid_fitted(fm, by="day"), "'day'"),
    (lambda fm: P.dotplot_ranef(fm, file="cat.jpeg"), "cat.jpeg"),
    (lambda fm: P.save_diagnostics(fm, "/tmp/never", fmt="gif"), "'gif'"),
])
def test_bad_names_raise_data_error(sleep, call, match):
    with pytest.raises(DataError, match=match):
        fig = call(sleep)
        plt.close(fig)
    plt.close("all")


def test_column_outside_formula_and_dropped_rows(draw):
    """A data column the formula does not use is aligned with the rows the fit kept."""
    data = pylme.datasets.load("sleepstudy").assign(week=lambda d: (d["Days"] >= 5).astype(int))
    data.loc[[0, 15], "Reaction"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = pylme.lmer(SLEEP, data)
    fig = draw(P.plot_resid_fitted, fm, by="week")
    np.testing.assert_array_equal(points(fig.axes[0])[0][0], data["week"].drop(index=[0, 15]).to_numpy())


def test_agg_backend_without_display(tmp_path):
    """A fresh interpreter with no display and no backend chosen draws with Agg."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    code = ("import matplotlib, pylme; fm = pylme.lmer('Reaction ~ Days + (Days | Subject)', "
            "pylme.datasets.load('sleepstudy')); pylme.plotting.qqnorm_resid(fm, file='q.png'); "
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().lower() == "agg" and (tmp_path / "q.png").stat().st_size > 1000


# ---------------------------------------------------------------- live against lattice / lme4
R_PANELS = r"""
function(formula, data) {
  grDevices::pdf(NULL)  # plot(fm) asks par("cex"): keep R from opening Rplots.pdf
  on.exit(grDevices::dev.off())
  fm <- lme4::lmer(stats::as.formula(formula), data)
  re <- lme4::ranef(fm, condVar = TRUE)
  dots <- lattice::dotplot(re); qqs <- lattice::qqmath(re)
  panels <- function(p) lapply(p$panel.args, function(a) list(
    x = as.numeric(a$x), y = as.numeric(a$y), se = p$panel.args.common$se[a$subscripts]))
  r <- resid(fm)
  g <- fm@flist[[1]]
  q <- qqnorm(r, plot.it = FALSE)
  pf <- plot(fm)$panel.args[[1]]
  list(theta = lme4::getME(fm, "theta"), factors = names(re),
       dot_levels = lapply(dots, function(p) p$y.limits), dot = lapply(dots, panels),
       qq = lapply(qqs, panels),
       resid_fitted = list(x = pf$x, y = pf$y),
       box = lapply(split(r, g), function(v) boxplot.stats(v)$stats),
       qqnorm = list(x = q$x, y = q$y),
       qqline = as.numeric(quantile(r, c(0.25, 0.75))))
}
"""


def _r_panels(formula, data):
    import r_reference as rr

    rr._bridge()
    ro = rr._state["ro"]
    out = ro.r(R_PANELS)(formula, rr._frame_to_r(data))

    def panel_list(x):
        return [{k: np.array(rr._floats(rr._get(p, k))) for k in ("x", "y", "se")} for p in x]

    factors = rr._strings(rr._get(out, "factors"))
    return {
        "theta": rr._floats(rr._get(out, "theta")),
        "dot_levels": {f: rr._strings(lv) for f, lv in zip(factors, rr._get(out, "dot_levels"))},
        "dot": {f: panel_list(p) for f, p in zip(factors, rr._get(out, "dot"))},
        "qq": {f: panel_list(p) for f, p in zip(factors, rr._get(out, "qq"))},
        "resid_fitted": {k: np.array(rr._floats(rr._get(rr._get(out, "resid_fitted"), k))) for k in "xy"},
        "box": np.array([rr._floats(b) for b in rr._get(out, "box")]),
        "qqnorm": {k: np.array(rr._floats(rr._get(rr._get(out, "qqnorm"), k))) for k in "xy"},
        "qqline": np.array(rr._floats(rr._get(out, "qqline"))),
    }


@pytest.mark.usefixtures("require_r")
@pytest.mark.parametrize("formula,dataset", [(SLEEP, "sleepstudy"), (PENICILLIN, "Penicillin")])
def test_live_panels_match_lattice(formula, dataset, draw):
    """At lme4's theta, every number pylme draws equals the one lattice/lme4 put in the panel."""
    data = pylme.datasets.load(dataset)
    ref = _r_panels(formula, data)
    fm = pylme.lmer(formula, data, start=np.array(ref["theta"]), control=pylme.LmerControl(optimizer=None))
    factors = list(ref["dot"])
    dot, qq = draw(P.dotplot_ranef, fm), draw(P.qqmath_ranef, fm)
    r_dot = [p for f in factors for p in ref["dot"][f]]
    r_qq = [p for f in factors for p in ref["qq"][f]]
    assert len(dot.axes) == len(r_dot) and len(qq.axes) == len(r_qq)
    row_of_axes = [f for f in factors for _ in ref["dot"][f]]
    for ax, f, rp in zip(dot.axes, row_of_axes, r_dot):
        (x, y), = points(ax)
        modes = fm.ranef()[f].iloc[:, 0]
        for ours, theirs in zip(ytick_texts(ax), ref["dot_levels"][f]):  # exact ties may swap
            assert ours == theirs or modes[ours] == pytest.approx(modes[theirs], rel=1e-9)
        at = np.argsort(rp["y"])  # lattice keeps data order, with y the level's position (1-based)
        np.testing.assert_allclose(x, rp["x"][at], rtol=1e-6, atol=1e-8)
        np.testing.assert_array_equal(y + 1, rp["y"][at])
        lo, hi, _ = segments(ax)
        np.testing.assert_allclose((hi - lo) / 2, 1.96 * rp["se"][at], rtol=1e-6)
    for ax, rp in zip(qq.axes, r_qq):
        (x, y), = points(ax)
        np.testing.assert_allclose(x, rp["x"], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(y, rp["y"], rtol=1e-12)
        lo, hi, _ = segments(ax)
        np.testing.assert_allclose((hi - lo) / 2, 1.96 * rp["se"], rtol=1e-6)

    rf = draw(P.plot_resid_fitted, fm, scaled=False)  # plot(fm): resid(., type = "pearson") ~ fitted(.)
    (x, y), = points(rf.axes[0])
    np.testing.assert_allclose(x, ref["resid_fitted"]["x"], rtol=1e-8)
    np.testing.assert_allclose(y, ref["resid_fitted"]["y"], rtol=1e-6, atol=1e-8)

    box = draw(P.plot_resid_by_group, fm, factors[0], scaled=False)  # plot(fm, g ~ resid(.))
    lines = box.axes[0].get_lines()
    med = [ln.get_xdata()[0] for ln in lines if ln.get_gid() == "median"]
    np.testing.assert_allclose(med, ref["box"][:, 2], rtol=1e-6, atol=1e-8)
    whiskers = np.array([ln.get_xdata()[1] for ln in lines if ln.get_gid() == "whisker"]).reshape(-1, 2)
    np.testing.assert_allclose(whiskers, ref["box"][:, [0, 4]], rtol=1e-6, atol=1e-8)

    qn = draw(P.qqnorm_resid, fm)
    (x, y), = points(qn.axes[0])
    at = np.argsort(ref["qqnorm"]["y"], kind="stable")
    np.testing.assert_allclose(x, ref["qqnorm"]["x"][at], rtol=1e-12)
    np.testing.assert_allclose(y, ref["qqnorm"]["y"][at], rtol=1e-6, atol=1e-8)
    (qline,) = [ln for ln in qn.axes[0].get_lines() if ln.get_linestyle() != "None"]
    slope = (ref["qqline"][1] - ref["qqline"][0]) / (norm.ppf(0.75) - norm.ppf(0.25))
    assert qline.get_slope() == pytest.approx(slope, rel=1e-6)
    assert qline.get_xy1() == pytest.approx((norm.ppf(0.25), ref["qqline"][0]), rel=1e-6)


# ---------------------------------------------------------------- profile zeta plots
def test_xyplot_profile_panels_curve_and_limits(draw):
    """xyplot(profile(fm)): a panel per parameter, the spline of zeta, and drop lines that end
    at the profile confidence limits (95%: those of fm.confint())."""
    fm = _fit("Yield ~ 1 + (1 | Batch)", "Dyestuff")
    pr = fm.profile()
    fig = draw(P.xyplot_profile, pr, conf=(0.95,))
    assert [ax.get_title() for ax in fig.axes] == [".sig01", ".sigma", "(Intercept)"]
    ci = pr.confint()
    for ax, name in zip(fig.axes, ci.index):
        (curve,) = ax.get_lines()[:1]
        np.testing.assert_allclose(curve.get_ydata(), pr.forward[name].predict(curve.get_xdata()))
        drops = np.array([seg[0, 0] for coll in ax.collections for seg in coll.get_segments()])
        finite = ci.loc[name][np.isfinite(ci.loc[name])]
        np.testing.assert_allclose(np.sort(drops), np.sort(finite.to_numpy()), rtol=1e-12)
    absfig = draw(P.xyplot_profile, pr, absVal=True)
    assert min(ln.get_ydata().min() for ln in absfig.axes[0].get_lines()[:1]) >= 0
