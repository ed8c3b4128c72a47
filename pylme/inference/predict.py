"""Predictions from a fitted model (lme4's predict.merMod): on the fitted rows or new data,
with all, none, or some of the random-effects terms (``re_form``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..description.formula import expand_terms, parse_mixed
from ..description.model_matrix import design, numeric_vector
from ..description.modelframe import as_data_frame, formula_columns
from ..description.reterms import grouping_factor
from ..errors import DataError, FormulaError


def selected_terms(fm, re_form) -> dict[int, list[int]]:
    """The random-effects terms ``re_form`` keeps, each with the columns it keeps
    (``~(1|Subject)`` on a ``(Days|Subject)`` fit keeps the intercept column only, as lme4)."""
    rt = fm.lmod.reTrms
    if re_form is None:
        return {i: list(range(t.nc)) for i, t in enumerate(rt.terms)}
    if (isinstance(re_form, float) and np.isnan(re_form)) or (
        isinstance(re_form, str) and re_form.replace(" ", "") in ("~0", "NA", "~-1", "0")
    ):
        return {}
    wanted = parse_mixed(re_form if "~" in re_form else f"~ {re_form}").bars
    if not wanted:
        raise FormulaError(f"re_form {re_form!r} names no random-effects term: use None, '~0' or e.g. '~(1|g)'")
    out: dict[int, list[int]] = {}
    for bar in wanted:
        cnms = design(expand_terms(bar.lhs), fm.lmod.frame.data.iloc[:1], fm.lmod.frame.states)[0].column_names
        match = [i for i, t in enumerate(rt.terms) if t.group == bar.group and set(cnms) <= set(t.cnms)]
        if not match:
            raise FormulaError(
                f"re_form term ({bar.label}) is not a random-effects term of the model; model terms: "
                + ", ".join(f"({t.label})" for t in rt.terms)
            )
        term = rt.terms[match[0]]
        out.setdefault(match[0], []).extend(term.cnms.index(c) for c in cnms)
    return {i: sorted(set(cols)) for i, cols in sorted(out.items())}


def predict(fm, newdata: pd.DataFrame | None, re_form, allow_new_levels: bool) -> pd.Series:
    keep = selected_terms(fm, re_form)
    if newdata is None:
        return _predict_fitted(fm, keep)
    return _predict_new(fm, newdata, keep, allow_new_levels)


def predict_se(fm, newdata: pd.DataFrame | None, re_form, se_fit: bool, interval: str, level: float) -> pd.DataFrame:
    """Population-level predictions X beta with their standard errors sqrt(diag(X V X')), V =
    vcov(fm) (theta-hat taken as known), and with ``interval="confidence"`` Wald limits
    fit -+ z SE: columns fit, (lwr, upr), (se.fit)."""
    if interval not in ("none", "confidence"):
        raise ValueError(f"interval must be 'none' or 'confidence', not {interval!r}")
    if selected_terms(fm, re_form):
        raise FormulaError("standard errors and intervals are for the fixed-effects part of a prediction only: "
                           "use re_form='~0' (R's re.form = NA)")
    fit = predict(fm, newdata, "~0", False)
    X, rows = _fixed_rows(fm, newdata)
    se = np.full(len(fit), np.nan)
    se[rows] = np.sqrt(np.einsum("ij,jk,ik->i", X, fm.vcov().to_numpy(), X))
    out = pd.DataFrame({"fit": fit.to_numpy()}, index=fit.index)
    if interval == "confidence":
        from scipy.stats import norm  # imported on first use, as scipy.stats is slow to import

        z = norm.ppf(0.5 + level / 2)
        out["lwr"], out["upr"] = out["fit"] - z * se, out["fit"] + z * se
    if se_fit:
        out["se.fit"] = se
    return out


def _fixed_rows(fm, newdata: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """X (the fit's kept columns) of the fitted rows or of newdata's complete rows, and those rows."""
    lmod = fm.lmod
    if newdata is None:
        return lmod.X, np.arange(len(lmod.X))
    needed = _needed_columns(fm, {})
    rows = np.flatnonzero(~newdata[needed].isna().any(axis=1).to_numpy())
    full = lmod.X_spec.matrix(newdata.iloc[rows])
    return full[:, [lmod.X_spec.column_names.index(nm) for nm in lmod.fixef_names]], rows


def _predict_fitted(fm, keep: dict[int, list[int]]) -> pd.Series:
    rt = fm.lmod.reTrms
    eta = fm.lmod.X @ fm.state.beta + fm.offset
    for i, cols in keep.items():
        term = rt.terms[i]
        eta = eta + _row_effects(fm, i, term.factor.codes, term.Xi, cols)
    return pd.Series(eta, index=fm.lmod.frame.data.index)


def _row_effects(fm, i: int, codes: np.ndarray, Xi: np.ndarray, cols: list[int]) -> np.ndarray:
    """Sum over the kept columns of Xi times each row's level's conditional mode (0 for code -1)."""
    term = fm.lmod.reTrms.terms[i]
    b = fm.state.b[fm.lmod.reTrms.Gp[i] : fm.lmod.reTrms.Gp[i + 1]].reshape(term.nl, term.nc)
    coef = np.where((codes < 0)[:, None], 0.0, b[np.maximum(codes, 0)])
    return np.sum(Xi[:, cols] * coef[:, cols], axis=1)


def _predict_new(fm, newdata: pd.DataFrame, keep: dict[int, list[int]], allow_new_levels: bool) -> pd.Series:
    newdata = as_data_frame(newdata, "newdata")
    lmod = fm.lmod
    needed = _needed_columns(fm, keep)
    missing = [c for c in needed if c not in newdata.columns]
    if missing:
        raise DataError(f"column(s) {missing} needed for prediction not found in newdata")
    complete = ~newdata[needed].isna().any(axis=1).to_numpy()
    nd = newdata.loc[complete]
    eta = np.full(len(newdata), np.nan)
    if len(nd):
        full = lmod.X_spec.matrix(nd)
        kept = [lmod.X_spec.column_names.index(nm) for nm in lmod.fixef_names]
        vals = full[:, kept] @ fm.state.beta
        for v in lmod.X_spec.terms.offsets:
            vals = vals + numeric_vector(nd, v.label, v.node, what="offset", states=lmod.frame.states)
        for i, cols in keep.items():
            vals = vals + _term_contribution(fm, i, cols, nd, allow_new_levels)
        eta[complete] = vals
    return pd.Series(eta, index=newdata.index)


def _needed_columns(fm, keep: dict[int, list[int]]) -> list[str]:
    """Data columns the fixed part and the kept random-effects terms use (not the response)."""
    pf = fm.lmod.formula
    sub = type(pf)(text=pf.text, response=None, fixed=pf.fixed, bars=[fm.lmod.reTrms.terms[i].bar for i in keep])
    return formula_columns(sub)


def _term_contribution(fm, i: int, cols: list[int], nd: pd.DataFrame, allow_new_levels: bool) -> np.ndarray:
    """Z_i b_i for new rows: the fitted conditional modes of each row's level (0 for new levels)."""
    term = fm.lmod.reTrms.terms[i]
    fac = grouping_factor(term.bar.group_node, nd)
    index = {lev: k for k, lev in enumerate(term.factor.levels)}
    lookup = np.array([index.get(lev, -1) for lev in fac.levels], dtype=np.int64)
    codes = lookup[fac.codes]
    new = codes < 0
    if new.any() and not allow_new_levels:
        levels = sorted({fac.levels[c] for c in fac.codes[new]})
        raise DataError(
            f"new levels detected in newdata for grouping factor {term.group!r}: {levels[:10]}; "
            "use allow_new_levels=True to predict them at the population level"
        )
    return _row_effects(fm, i, codes, term.spec.matrix(nd), cols)
