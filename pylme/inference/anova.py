"""Model comparison as lme4's ``anova``: the likelihood-ratio table of several fits (REML fits
refitted by ML first), and the single-model sequential F table.

``boundary=True`` adds what lme4 leaves to the user: for a test of one variance component on
the boundary of its space, the 50:50 mixture of chi-square(df - 1) and chi-square(df)
(Self and Liang 1987; Stram and Lee 1994) in place of chi-square(df).
"""
from __future__ import annotations

import copy
import sys
import warnings

import numpy as np
import pandas as pd

from ..description.formula import deparse, expand_double_verts, parse
from ..description.modelframe import formula_columns
from ..errors import DataError, FitMessage
from ..fitting.driver import refit_lmer
from ..rbase.printing import format_pvals, signif_stars


class AnovaTable(pd.DataFrame):
    """A data frame printed with lme4's heading (Data:, Models:)."""

    _metadata = ["heading"]

    @property
    def _constructor(self):
        return AnovaTable

    def __str__(self) -> str:
        return "\n".join(list(getattr(self, "heading", [])) + [print_anova(self)])

    __repr__ = __str__


def print_anova(table: pd.DataFrame, digits: int = 5) -> str:
    """R's print.anova (printCoefmat with digits = 5): each column formatted on its own, test
    statistics rounded to 4 digits, p-values by format.pval with significance stars, NA blank."""
    from ..rbase.printing import format_number, format_numbers, render_table, zapsmall

    cols = list(table.columns)
    has_p = bool(cols) and cols[-1].startswith(("Pr(", "P("))
    tests = [c for c in cols if c[1:7] == " value" or c in ("F", "Cp", "Chisq")]
    out: dict[str, list[str]] = {}
    for c in cols:
        x = table[c].to_numpy(dtype=float)
        ok = ~np.isnan(x)
        cells = [""] * len(x)
        if c == cols[-1] and has_p:
            texts = format_pvals(x[ok], max(1, min(5, digits - 1)))
        elif c in tests:
            texts = format_numbers(np.round(x[ok], max(1, min(5, digits - 1))), digits)
        else:
            zapped = x[ok] if c.endswith("Df") else zapsmall(x[ok], digits)
            texts = [t if v == 0 or float(t) != 0 else format_number(v, max(1, digits - 1))
                     for v, t in zip(zapped, format_numbers(zapped, digits))] if ok.any() else []
        for i, t in zip(np.flatnonzero(ok), texts):
            cells[i] = t
        out[c] = cells
    p = table[cols[-1]].to_numpy(dtype=float) if has_p else np.array([])
    stars = has_p and bool(np.any(p[~np.isnan(p)] < 0.1))
    if stars:
        codes = ["" if np.isnan(v) else signif_stars(v) for v in p]
        out[""] = [s.ljust(max(map(len, codes))) for s in codes]
    text = render_table(out, row_names=[str(r) for r in table.index], right_all=True, width=80)
    if stars:
        text += "\n---\nSignif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"
    return text


def refit_ml(fm):
    """lme4's refitML: the same model by maximum likelihood, the optimiser started at the REML
    theta (no restart_edge or boundary check, as refitML), on the objective lmer would use."""
    if not fm.REML:
        return fm
    lmod = copy.copy(fm.lmod)
    lmod.REML = False
    return refit_lmer(fm, lmod, fm.objective.resp.with_REML(False))


def caller_names(models) -> list[str]:
    """The names the user's code binds to each model, as R labels anova's rows by the expressions
    written in the call: the first frame outside pylme is searched (read only) for a variable that
    is the model itself, its local variables first, then its module's. A model with no such name,
    or with several, is called ``model<i>`` by its position."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "pylme":
        frame = frame.f_back
    scopes = [frame.f_locals, frame.f_globals] if frame is not None else []
    names = []
    for i, model in enumerate(models):
        for scope in scopes:
            bound = [k for k, v in scope.items() if v is model and not k.startswith("_")]
            if bound:
                break
        names.append(bound[0] if scopes and len(bound) == 1 else f"model{i + 1}")
    return names


def anova(*models, names: list[str] | None = None, refit: bool = True, boundary: bool = False,
          **named_models) -> AnovaTable:
    """lme4's ``anova(m1, m2, ...)``: npar, AIC, BIC, logLik, deviance, Chisq, Df, Pr(>Chisq),
    models ordered by their number of parameters; with one model, its sequential F table.

    Rows are labelled as R labels them, by the caller's variable names for the models
    (``anova(fm0, fm)`` gives rows ``fm0`` and ``fm``; see ``caller_names``); models passed by
    keyword (``anova(small=fm0, large=fm)``) are labelled by the keywords, and ``names=`` sets
    every label."""
    for key, model in named_models.items():
        if not hasattr(model, "logLik"):
            raise TypeError(f"anova() got an unexpected keyword argument {key!r}: not a fitted model")
    if len(models) + len(named_models) == 1:
        return (models or tuple(named_models.values()))[0].anova()
    if names is None:
        names = caller_names(models) + list(named_models)
    models = models + tuple(named_models.values())
    names = list(names)
    if len(names) != len(models):
        raise ValueError("names and models have different lengths")
    _check_same_data(models, names)
    if refit and any(m.REML for m in models):
        warnings.warn("refitting model(s) with ML (instead of REML)", FitMessage, stacklevel=2)
        models = [refit_ml(m) for m in models]
    order = sorted(range(len(models)), key=lambda i: models[i].npar())
    models, names = [models[i] for i in order], [names[i] for i in order]
    ll = np.array([float(m.logLik()) for m in models])
    npar = np.array([m.npar() for m in models])
    chisq = np.concatenate([[np.nan], 2 * np.maximum(0.0, np.diff(ll))])
    df = np.concatenate([[np.nan], np.diff(npar).astype(float)])
    from scipy.stats import chi2  # imported on first use, as scipy.stats is slow to import

    with np.errstate(invalid="ignore"):
        p = np.where(df == 0, np.nan, chi2.sf(chisq, df))
        if boundary:  # 50:50 mixture; chi-square with 0 df is a point mass at 0
            p = np.where(df == 0, np.nan, 0.5 * chi2.sf(chisq, df) + 0.5 * np.where(df > 1, chi2.sf(chisq, df - 1), 0.0))
    table = AnovaTable({
        "npar": npar, "AIC": [m.AIC() for m in models], "BIC": [m.BIC() for m in models], "logLik": ll,
        "deviance": -2 * ll, "Chisq": chisq, "Df": df,
        ("Pr(>Chisq) mixture" if boundary else "Pr(>Chisq)"): p,
    }, index=names)
    data_name = models[0].lmod.data_name
    table.heading = ([f"Data: {data_name}"] if data_name else []) + ["Models:"] + [
        f"{nm}: {deparse(expand_double_verts(parse(m.formula)))}" for nm, m in zip(names, models)
    ]
    return table


def _check_same_data(models, names: list[str]) -> None:
    n = {m.nobs() for m in models}
    if len(n) > 1:
        raise DataError(
            "models were not all fitted to the same size of dataset: "
            + ", ".join(f"{nm} n={m.nobs()}" for nm, m in zip(names, models))
        )
    ys = [m.lmod.y for m in models]
    if any(not np.array_equal(y, ys[0]) for y in ys[1:]):
        raise DataError("all models must be fit to the same data: the responses differ ("
                        + ", ".join(f"{nm}: {m.lmod.formula.response_label}" for nm, m in zip(names, models)) + ")")
    columns = list(dict.fromkeys(c for m in models for c in formula_columns(m.lmod.formula)))
    first = models[0].lmod.data
    for nm, m in zip(names[1:], models[1:]):
        data = m.lmod.data
        differ = [] if data is first else [c for c in columns if not _same_column(first, data, c)]
        if differ:
            raise DataError(f"all models must be fit to the same data object: {names[0]} and {nm} were fitted to "
                            f"data that differ in column(s) {', '.join(map(repr, differ))}")


def _same_column(a: pd.DataFrame, b: pd.DataFrame, column: str) -> bool:
    """Whether two data frames hold the same values (and row labels) in ``column``."""
    return column in a.columns and column in b.columns and a[column].equals(b[column]) and a.index.equals(b.index)


def anova_single(fm) -> pd.DataFrame:
    """lme4's single-model table: per fixed-effect term npar, Sum Sq = |RX beta|^2 over the term's
    columns, Mean Sq, F value = Mean Sq / sigma^2 (sequential, intercept left out)."""
    spec, names = fm.lmod.X_spec, fm.lmod.fixef_names
    assign = np.array([spec.assign[spec.column_names.index(nm)] for nm in names])
    ss = (fm.state.RX @ fm.state.beta) ** 2
    labels = ["(Intercept)"] + spec.terms.labels
    rows = {}
    for a in dict.fromkeys(assign):
        if a == 0 and spec.terms.intercept:
            continue
        k = int(np.sum(assign == a))
        s = float(ss[assign == a].sum())
        rows[labels[a]] = (k, s, s / k, s / k / fm.sigma() ** 2)
    table = AnovaTable(pd.DataFrame.from_dict(rows, orient="index", columns=["npar", "Sum Sq", "Mean Sq", "F value"]))
    table.heading = ["Analysis of Variance Table"]
    return table
