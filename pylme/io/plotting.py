"""The plots an lme4 user looks at, drawn with matplotlib.

Each function mirrors one lattice/lme4 call (its R spelling is in the docstring), returns the
matplotlib Figure and, given ``file=``, saves it (PNG, SVG or PDF, chosen by the suffix).
Without a display (and with no backend chosen yet) figures are drawn with the Agg backend.
"""
from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from scipy.stats import norm

from ..errors import DataError

__all__ = [
    "dotplot_ranef", "qqmath_ranef", "qqnorm_resid", "plot_resid_fitted", "plot_resid_by_group",
    "plot_observed_fitted", "plot_fitted_lines", "save_diagnostics", "xyplot_profile", "plot_influence",
]

Z95 = 1.96  # lme4's caterpillar and qqmath intervals: conditional mean +- 1.96 conditional sd
FORMATS = ("png", "svg", "pdf")
PANEL_IN = 2.3  # inches per panel in a grid of panels
MAX_TICK_LEVELS = 60  # beyond this many levels the caterpillar axis shows no level labels
MAX_PANEL_GROUPS = 25  # plot_fitted_lines draws one panel per group up to this many groups


# ------------------------------------------------------------------ figures and files
def _pyplot():
    """matplotlib.pyplot, with the Agg backend when no display exists and none was chosen."""
    headless = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if headless and "MPLBACKEND" not in os.environ and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(width: float, height: float):
    return _pyplot().figure(figsize=(min(width, 24.0), min(height, 24.0)), layout="constrained")


def _file_format(file) -> str:
    fmt = Path(file).suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise DataError(f"cannot tell the image format of {str(file)!r}: give a file ending in .png, .svg or .pdf")
    return fmt


def _finish(fig, file):
    """Save the figure when a file is given; return it."""
    if file is not None:
        try:
            fmt = _file_format(file)
        except DataError:
            _pyplot().close(fig)
            raise
        fig.savefig(file, format=fmt, dpi=120)
    return fig


def _panel_grid(fig, n: int) -> list:
    """n axes sharing their scales in a near-square grid read left to right, top to bottom
    (lattice's as.table)."""
    ncols = math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.remove()
    return list(axes[:n])


def _grid_figure(n: int):
    ncols = math.ceil(math.sqrt(n))
    return _figure(PANEL_IN * ncols + 0.8, PANEL_IN * math.ceil(n / ncols) + 0.6)


def _conditioned(fm, group: str | None, width: float, height: float):
    """A figure with a panel per level of ``group`` (one panel of the given size when None):
    the figure, the panels, each panel's level (None) and each row's panel index."""
    if group is None:
        fig = _figure(width, height)
        return fig, _panel_grid(fig, 1), [None], np.zeros(fm.nobs(), dtype=int)
    levels, codes = _groups(fm, group)
    fig = _grid_figure(len(levels))
    return fig, _panel_grid(fig, len(levels)), levels, codes


# ------------------------------------------------------------------ the model's data
def _factors(fm, term: str | None) -> list[str]:
    """The grouping factors to draw: all of them, or the one ``term`` names."""
    names = list(fm.lmod.reTrms.flist)
    if term is None:
        return names
    if term not in names:
        raise DataError(f"{term!r} is not a grouping factor of the model; its grouping factors: {', '.join(names)}")
    return [term]


def _column(fm, name: str) -> pd.Series:
    """A grouping factor (labels per row) or a data column, over the rows the model used."""
    flist = fm.lmod.reTrms.flist
    if name in flist:
        fac = flist[name]
        labels = pd.Categorical.from_codes(fac.codes, categories=list(fac.levels))
        return pd.Series(labels, index=fm.lmod.frame.data.index, name=name)
    frame, data = fm.lmod.frame.data, fm.lmod.data
    if name in frame.columns:
        return frame[name]
    if name not in data.columns:
        raise DataError(
            f"{name!r} is neither a grouping factor of the model ({', '.join(flist)}) nor a column of its data"
        )
    col = data[name] if len(fm.na_action) == 0 else data.loc[frame.index, name]
    if len(col) != len(frame):
        raise DataError(f"cannot align column {name!r} with the model's rows: the data's index has duplicate labels")
    return col


def _is_numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype)


def _numeric(fm, name: str) -> np.ndarray:
    col = _column(fm, name)
    if not _is_numeric(col):
        raise DataError(f"column {name!r} must be numeric to go on an axis (it is {col.dtype})")
    return col.to_numpy(dtype=float)


def _groups(fm, name: str) -> tuple[list[str], np.ndarray]:
    """Levels of a grouping variable (R's factor order) and each row's level index."""
    col = _column(fm, name)
    cat = col.astype("category") if not isinstance(col.dtype, pd.CategoricalDtype) else col
    cat = cat.cat.remove_unused_categories()
    return [str(c) for c in cat.cat.categories], cat.cat.codes.to_numpy()


def _resid(fm, scaled: bool) -> np.ndarray:
    return fm.residuals(type="pearson", scaled=scaled).to_numpy()


def _resid_label(scaled: bool) -> str:
    return "Standardized residuals" if scaled else 'resid(., type = "pearson")'


# ------------------------------------------------------------------ random effects
def _order(values: np.ndarray) -> np.ndarray:
    """Increasing order; values equal to 10 significant digits of the largest keep level order
    (exact ties such as Penicillin's plates i and j otherwise fall by rounding noise)."""
    scale = np.abs(values).max(initial=0.0) or 1.0
    return np.argsort(np.round(values / scale, 10), kind="stable")


def _cond_sd(re, factor: str) -> np.ndarray:
    """Conditional standard deviations (levels, columns): sqrt of condVar's diagonals."""
    return np.sqrt(np.diagonal(re.condVar[factor], axis1=1, axis2=2))


def _ranef_figure(re, factors: list[str], heights: list[float]):
    """A figure with a row of panels per grouping factor, a column per random-effect column."""
    ncols = max(re[f].shape[1] for f in factors)
    fig = _figure(3.4 * ncols + 1.2, sum(heights))
    return fig, fig.add_gridspec(len(factors), ncols, height_ratios=heights)


def _intervals(ax, centre: np.ndarray, half: np.ndarray, pos: np.ndarray) -> None:
    """Points at the conditional means with horizontal 95% prediction intervals."""
    many = len(pos) > MAX_TICK_LEVELS
    ax.hlines(pos, centre - half, centre + half, colors="black", linewidth=0.5 if many else 1.0)
    ax.plot(centre, pos, linestyle="none", marker="o", markersize=2 if many else 4, color="tab:blue")
    ax.axvline(0.0, color="grey", linewidth=0.8, linestyle="--")


def dotplot_ranef(fm, term: str | None = None, file=None):
    """Caterpillar plot, R's ``lattice::dotplot(ranef(fm, condVar = TRUE))``.

    One panel per random-effect column of each grouping factor (a row of panels per factor,
    or only ``term``'s); levels ordered by increasing conditional mean of the first column,
    each with its 95% prediction interval, conditional mean +- 1.96 conditional sd.
    """
    factors = _factors(fm, term)
    re = fm.ranef(condVar=True)
    fig, grid = _ranef_figure(re, factors, [_caterpillar_height(len(re[f])) for f in factors])
    for row, factor in enumerate(factors):
        _caterpillar_row(fig, grid, row, factor, re[factor], _cond_sd(re, factor))
    return _finish(fig, file)


def _caterpillar_height(nlevels: int) -> float:
    """Inches for a row of caterpillar panels: room for a label per level up to 60 levels."""
    per_level = 0.17 if nlevels <= MAX_TICK_LEVELS else 0.04
    return max(1.8, per_level * nlevels + 0.9)


def _caterpillar_row(fig, grid, row: int, factor: str, modes: pd.DataFrame, sd: np.ndarray) -> None:
    order = _order(modes.iloc[:, 0].to_numpy())
    labels = [str(modes.index[i]) for i in order]
    pos = np.arange(len(order))
    first = fig.add_subplot(grid[row, 0])
    for j, column in enumerate(modes.columns):
        ax = first if j == 0 else fig.add_subplot(grid[row, j], sharey=first)
        _intervals(ax, modes.iloc[order, j].to_numpy(), Z95 * sd[order, j], pos)
        ax.set_title(f"{factor}: {column}", fontsize=10)
        ax.set_yticks(pos if len(pos) <= MAX_TICK_LEVELS else [])
        if len(pos) <= MAX_TICK_LEVELS:
            ax.set_yticklabels(labels, fontsize=7 if len(pos) > 25 else 9)
        ax.tick_params(axis="y", labelleft=j == 0)
        ax.grid(axis="y", color="0.9", linewidth=0.6)
    first.set_ylabel(factor)
    first.set_ylim(-0.7, len(pos) - 0.3)


def qqmath_ranef(fm, term: str | None = None, file=None):
    """Normal probability plot of the random effects, R's ``lattice::qqmath(ranef(fm, condVar = TRUE))``.

    Per grouping factor and column, the sorted conditional means against the standard normal
    quantiles qnorm((i - 0.5)/n), each with its 95% prediction interval (+- 1.96 sd).
    """
    factors = _factors(fm, term)
    re = fm.ranef(condVar=True)
    fig, grid = _ranef_figure(re, factors, [3.2] * len(factors))
    for row, factor in enumerate(factors):
        modes, sd = re[factor], _cond_sd(re, factor)
        quantiles = norm.ppf((np.arange(len(modes)) + 0.5) / len(modes))
        for j, column in enumerate(modes.columns):
            ax = fig.add_subplot(grid[row, j])
            order = _order(modes.iloc[:, j].to_numpy())
            _intervals(ax, modes.iloc[order, j].to_numpy(), Z95 * sd[order, j], quantiles)
            ax.set_title(f"{factor}: {column}", fontsize=10)
            ax.grid(color="0.9", linewidth=0.6)
            if j == 0:
                ax.set_ylabel("Standard normal quantiles")
    return _finish(fig, file)


# ------------------------------------------------------------------ residuals
def _quantile7(x: np.ndarray, probs) -> np.ndarray:
    return np.quantile(x, probs, method="linear")  # R's quantile(type = 7)


def _ppoints(n: int) -> np.ndarray:
    a = 3 / 8 if n <= 10 else 0.5
    return (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)


def qqnorm_resid(fm, type: str = "response", scaled: bool = False, file=None):
    """Normal Q-Q plot of the residuals with its reference line,
    R's ``qqnorm(resid(fm)); qqline(resid(fm))``.

    Sorted residuals against qnorm(ppoints(n)); the line passes through the quartile pairs.
    ``type="pearson", scaled=True`` draws the standardized residuals instead.
    """
    r = np.sort(fm.residuals(type=type, scaled=scaled).to_numpy())
    x = norm.ppf(_ppoints(len(r)))
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot()
    ax.plot(x, r, linestyle="none", marker="o", markersize=3, markerfacecolor="none")
    qy, qx = _quantile7(r, [0.25, 0.75]), norm.ppf([0.25, 0.75])
    slope = (qy[1] - qy[0]) / (qx[1] - qx[0])
    ax.axline((qx[0], qy[0]), slope=slope, color="tab:red", linewidth=1)
    ax.set(title="Normal Q-Q Plot", xlabel="Theoretical Quantiles", ylabel="Sample Quantiles")
    return _finish(fig, file)


def plot_resid_fitted(fm, by: str | None = None, scaled: bool = True, file=None):
    """Residuals against fitted values with a zero line, R's ``plot(fm)``.

    ``by`` names a data column: a numeric one goes on the x axis instead of the fitted values
    (``plot(fm, resid(.) ~ Days)``), a categorical one gives a panel per level
    (``plot(fm, resid(.) ~ fitted(.) | g)``). Residuals are Pearson residuals divided by sigma
    (standardized); ``scaled=False`` draws lme4's ``resid(., type = "pearson")`` as ``plot(fm)`` does.
    """
    r = _resid(fm, scaled)
    if by is not None and _is_numeric(_column(fm, by)):
        return _resid_panels(fm, _numeric(fm, by), r, by, None, scaled, file)
    x = fm.fitted().to_numpy()
    return _resid_panels(fm, x, r, "fitted(.)", by, scaled, file)


def _resid_panels(fm, x, r, xlabel: str, by: str | None, scaled: bool, file):
    fig, axes, levels, codes = _conditioned(fm, by, 6.0, 4.5)
    for k, (ax, level) in enumerate(zip(axes, levels)):
        rows = codes == k
        ax.plot(x[rows], r[rows], linestyle="none", marker="o", markersize=3, markerfacecolor="none")
        ax.axhline(0.0, color="grey", linewidth=0.8)
        if level is not None:
            ax.set_title(level, fontsize=9)
    fig.supxlabel(xlabel)
    fig.supylabel(_resid_label(scaled))
    return _finish(fig, file)


def _boxplot_stats(x: np.ndarray, coef: float = 1.5) -> dict:
    """R's boxplot.stats: Tukey's hinges (fivenum), whiskers to the furthest points within
    coef x hinge spread, the points beyond them as outliers."""
    x = np.sort(x)
    n = len(x)
    n4 = math.floor((n + 3) / 2) / 2
    d = np.array([1, n4, (n + 1) / 2, n + 1 - n4, n]) - 1
    five = 0.5 * (x[np.floor(d).astype(int)] + x[np.ceil(d).astype(int)])
    spread = coef * (five[3] - five[1])
    out = (x < five[1] - spread) | (x > five[3] + spread)
    inside = x[~out]
    return {"whislo": inside.min(), "q1": five[1], "med": five[2], "q3": five[3], "whishi": inside.max(),
            "fliers": x[out]}


def plot_resid_by_group(fm, group: str, scaled: bool = True, file=None):
    """Box plots of the residuals per level of ``group``, R's ``plot(fm, Subject ~ resid(.))``.

    Boxes are drawn from R's boxplot.stats (Tukey's hinges, 1.5 x hinge spread whiskers);
    ``scaled=False`` draws the unscaled residuals as R's ``resid(.)`` (unweighted fits).
    """
    levels, codes = _groups(fm, group)
    r = _resid(fm, scaled)
    stats = [_boxplot_stats(r[codes == k]) | {"label": level} for k, level in enumerate(levels)]
    fig = _figure(6.0, max(3.0, 0.22 * len(levels) + 1.2))
    ax = fig.add_subplot()
    ax.bxp(stats, boxprops={"gid": "box"}, medianprops={"gid": "median", "color": "black"},
           whiskerprops={"gid": "whisker"}, flierprops={"gid": "outlier"}, **_horizontal())
    ax.axvline(0.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set(xlabel=_resid_label(scaled), ylabel=group)
    return _finish(fig, file)


def _horizontal() -> dict:
    """matplotlib >= 3.10 spells horizontal box plots orientation="horizontal" (vert is deprecated)."""
    major, minor = (int(p) for p in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


# ------------------------------------------------------------------ data and fits
def plot_observed_fitted(fm, group: str | None = None, file=None):
    """Observed response against fitted values with the identity line, a panel per level of
    ``group``: R's ``plot(fm, Reaction ~ fitted(.) | Subject, abline = c(0, 1))``."""
    y, fit = fm.lmod.y, fm.fitted().to_numpy()
    fig, axes, levels, codes = _conditioned(fm, group, 5.5, 5.0)
    for k, (ax, level) in enumerate(zip(axes, levels)):
        rows = codes == k
        ax.plot(fit[rows], y[rows], linestyle="none", marker="o", markersize=3, markerfacecolor="none")
        ax.axline((0.0, 0.0), slope=1.0, color="grey", linewidth=0.8)
        if level is not None:
            ax.set_title(level, fontsize=9)
    fig.supxlabel("fitted(.)")
    fig.supylabel(fm.lmod.formula.response_label)
    return _finish(fig, file)


def plot_fitted_lines(fm, x: str, group: str, panels: bool | None = None, file=None):
    """The data with the model's fitted line for each level of ``group``, as the lme4 slides draw
    ``xyplot(Reaction ~ Days | Subject, type = c("p", "l"))`` with the conditional fits.

    One panel per group (points, conditional fit solid, population fit ``predict(fm, re.form = NA)``
    dashed) up to 25 groups, else one panel with a line per group; ``panels`` forces either. The
    lines join the fitted values (``fitted(fm)``) in the order of ``x``; the population line is
    drawn only when it depends on ``x`` alone (no other covariate varies it).
    """
    xv, y = _numeric(fm, x), fm.lmod.y
    levels, codes = _groups(fm, group)
    fit, pop = fm.fitted().to_numpy(), fm.predict(re_form="~0").to_numpy()
    if not _function_of(pop, xv):
        pop = None
    if panels is None:
        panels = len(levels) <= MAX_PANEL_GROUPS
    if panels:
        fig = _grid_figure(len(levels))
        for k, (ax, level) in enumerate(zip(_panel_grid(fig, len(levels)), levels)):
            _group_lines(ax, xv, y, fit, pop, codes == k)
            ax.set_title(level, fontsize=9)
    else:
        fig = _figure(7.0, 5.0)
        ax = fig.add_subplot()
        for k in range(len(levels)):
            _group_lines(ax, xv, y, fit, None, codes == k, alpha=0.5)
        if pop is not None:
            order = np.argsort(xv, kind="stable")
            ax.plot(xv[order], pop[order], color="black", linewidth=2, linestyle="--", label="re.form = NA")
            ax.legend(loc="best", fontsize=8)
    fig.supxlabel(x)
    fig.supylabel(fm.lmod.formula.response_label)
    return _finish(fig, file)


def _function_of(values: np.ndarray, x: np.ndarray) -> bool:
    """True when ``values`` is one value per distinct ``x`` (up to rounding)."""
    order = np.lexsort((values, x))
    same_x = np.diff(x[order]) == 0
    spread = np.abs(np.diff(values[order]))[same_x]
    return not spread.size or spread.max() <= 1e-8 * max(1.0, np.abs(values).max())


def _group_lines(ax, xv, y, fit, pop, rows, alpha: float = 1.0) -> None:
    """One group's points and its fitted line (same colour), and the population line if given."""
    order = np.flatnonzero(rows)[np.argsort(xv[rows], kind="stable")]
    (points,) = ax.plot(xv[order], y[order], linestyle="none", marker="o", markersize=3, markerfacecolor="none",
                        alpha=alpha)
    ax.plot(xv[order], fit[order], color=points.get_color(), linewidth=1, alpha=alpha)
    if pop is not None:
        ax.plot(xv[order], pop[order], color="grey", linewidth=1, linestyle="--")


# ------------------------------------------------------------------ the standard set
def _file_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def save_diagnostics(fm, directory, fmt: str = "png") -> list[Path]:
    """Write the standard diagnostic plots into ``directory`` (created if missing): residuals
    against fitted values, the residuals' normal Q-Q plot, and per grouping factor its
    caterpillar plot and its random effects' normal Q-Q plot. Returns the paths written."""
    if fmt not in FORMATS:
        raise DataError(f"unknown image format {fmt!r}: use one of {', '.join(FORMATS)}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [("resid_fitted", lambda f: plot_resid_fitted(fm, file=f)),
            ("qqnorm_resid", lambda f: qqnorm_resid(fm, file=f))]
    for factor in fm.lmod.reTrms.flist:
        stem = _file_stem(factor)
        jobs.append((f"dotplot_ranef_{stem}", lambda f, t=factor: dotplot_ranef(fm, t, file=f)))
        jobs.append((f"qqmath_ranef_{stem}", lambda f, t=factor: qqmath_ranef(fm, t, file=f)))
    paths = []
    for name, draw in jobs:
        path = out / f"{name}.{fmt}"
        _pyplot().close(draw(path))
        paths.append(path)
    return paths


# ------------------------------------------------------------------ profiles
def xyplot_profile(pr, conf=(0.5, 0.8, 0.9, 0.95, 0.99), absVal: bool = False, file=None):
    """``xyplot(profile(fm))``: zeta against each parameter (a panel each, free x scales), the
    interpolating spline through the profile, and a drop line from zeta = 0 to each interval
    limit at the confidence levels ``conf`` (their zeta +-sqrt(qchisq(conf, 1)) as dashed
    lines). ``absVal=True`` draws |zeta|, as lme4's ``absVal = TRUE``."""
    levels = np.sort(np.sqrt(norm.ppf((1 + np.asarray(conf, dtype=float)) / 2) ** 2))
    names = list(pr.forward)
    fig = _grid_figure(len(names))
    axes = fig.subplots(math.ceil(len(names) / math.ceil(math.sqrt(len(names)))), math.ceil(math.sqrt(len(names))),
                        sharey=True, squeeze=False).ravel()
    for ax in axes[len(names):]:
        ax.remove()
    for ax, name in zip(axes, names):
        _profile_panel(ax, pr, name, levels, absVal)
    axes[0].set_ylabel("|zeta|" if absVal else "zeta")
    return _finish(fig, file)


def _profile_panel(ax, pr, name: str, levels: np.ndarray, absVal: bool) -> None:
    rows = pr.frame[pr.frame[".par"] == name]
    fwd, back = pr.forward[name], pr.backward[name]
    if fwd is not None:
        x = np.linspace(fwd.knots[0], fwd.knots[-1], 51)
        z = fwd.predict(x)
    else:
        x, z = rows[name].to_numpy(), rows[".zeta"].to_numpy()
    ax.plot(x, np.abs(z) if absVal else z, color="C0")
    for lev in levels:
        limits = back.predict([-lev, lev]) if back is not None else np.full(2, np.nan)
        for zeta, lim in zip((-lev, lev), limits):
            if np.isfinite(lim):
                ax.vlines(lim, 0, abs(zeta) if absVal else zeta, colors="0.5", linestyles="dotted", linewidth=0.8)
        for zeta in ((lev,) if absVal else (-lev, lev)):
            ax.axhline(zeta, color="0.7", linestyle="--", linewidth=0.6)
    ax.set_title(name, fontsize=9)


# ------------------------------------------------------------------ influence
def plot_influence(x, n_labels: int = 3, file=None):
    """Index plots of influence, as car's ``infIndexPlot`` draws lme4's diagnostics.

    For ``influence(fm, groups)`` (pylme.inference.influence.InfluenceMerMod): Cook's distance of each
    deleted group, then each fixed effect's dfbetas, one panel each against the deleted groups.
    For a fit: its hat values and Cook's distances (lme4's ``hatvalues``, ``cooks.distance``)
    against the row number. The ``n_labels`` largest values of each panel are labelled.
    """
    from ..inference.influence import InfluenceMerMod

    if isinstance(x, InfluenceMerMod):
        panels = {"Cook's distance": x.cooks_distance()}
        panels.update({f"dfbetas: {c}": s for c, s in x.dfbetas().items()})
        xlabel = x.groups
    else:
        panels = {"hat values": x.hatvalues(), "Cook's distance": x.cooks_distance()}
        xlabel = "row"
    fig = _figure(6.5, 1.9 * len(panels) + 0.6)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False).ravel()
    for ax, (title, values) in zip(axes, panels.items()):
        _index_panel(ax, values, title, n_labels)
    axes[-1].set_xlabel(xlabel)
    return _finish(fig, file)


def _index_panel(ax, values: pd.Series, title: str, n_labels: int) -> None:
    pos = np.arange(1, len(values) + 1)
    v = values.to_numpy(dtype=float)
    ax.vlines(pos, 0, v, colors="0.4", linewidth=0.8)
    ax.plot(pos, v, linestyle="none", marker="o", markersize=3)
    ax.axhline(0.0, color="grey", linewidth=0.6)
    for i in np.argsort(-np.abs(np.nan_to_num(v)))[:n_labels]:
        ax.annotate(str(values.index[i]), (pos[i], v[i]), fontsize=7, xytext=(2, 2), textcoords="offset points")
    ax.set_ylabel(title, fontsize=9)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
