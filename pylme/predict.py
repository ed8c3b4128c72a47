"""Predictions from a fitted model (lme4's predict.merMod): on the fitted rows or new data,
with all, none, or some of the random-effects terms (``re_form``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import DataError, FormulaError
from .formula import parse_mixed
from .model_matrix import numeric_vector
from .modelframe import formula_columns
from .reterms import grouping_factor


def selected_terms(fm, re_form) -> list[int]:
    """Indices of the model's random-effects terms that ``re_form`` keeps."""
    rt = fm.lmod.reTrms
    if re_form is None:
        return list(range(len(rt.terms)))
    if (isinstance(re_form, float) and np.isnan(re_form)) or (
        isinstance(re_form, str) and re_form.replace(" ", "") in ("~0", "NA", "~-1", "0")
    ):
        return []
    wanted = parse_mixed(re_form if "~" in re_form else f"~ {re_form}").bars
    if not wanted:
        raise FormulaError(f"re_form {re_form!r} names no random-effects term: use None, '~0' or e.g. '~(1|g)'")
    labels = [t.label for t in rt.terms]
    out = []
    for bar in wanted:
        if bar.label not in labels:
            raise FormulaError(f"re_form term ({bar.label}) is not a random-effects term of the model; model terms: "
                               + ", ".join(f"({l})" for l in labels))
        out.append(labels.index(bar.label))
    return sorted(set(out))


def predict(fm, newdata: pd.DataFrame | None, re_form, allow_new_levels: bool) -> pd.Series:
    keep = selected_terms(fm, re_form)
    if newdata is None:
        return _predict_fitted(fm, keep)
    return _predict_new(fm, newdata, keep, allow_new_levels)


def _predict_fitted(fm, keep: list[int]) -> pd.Series:
    rt, st = fm.lmod.reTrms, fm.state
    eta = fm.lmod.X @ st.beta + fm.devfun.offset
    for i in keep:
        eta = eta + rt.terms[i].Zt().T @ st.b[rt.Gp[i] : rt.Gp[i + 1]]
    return pd.Series(eta, index=fm.lmod.frame.data.index)


def _predict_new(fm, newdata: pd.DataFrame, keep: list[int], allow_new_levels: bool) -> pd.Series:
    if not isinstance(newdata, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
    lmod, rt = fm.lmod, fm.lmod.reTrms
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
            vals = vals + numeric_vector(nd, v.label, v.node.raw, what="offset")
        for i in keep:
            vals = vals + _term_contribution(fm, i, nd, allow_new_levels)
        eta[complete] = vals
    return pd.Series(eta, index=newdata.index)


def _needed_columns(fm, keep: list[int]) -> list[str]:
    """Data columns the fixed part and the kept random-effects terms use (not the response)."""
    pf = fm.lmod.formula
    sub = type(pf)(text=pf.text, response=None, fixed=pf.fixed, bars=[fm.lmod.reTrms.terms[i].bar for i in keep])
    return formula_columns(sub)


def _term_contribution(fm, i: int, nd: pd.DataFrame, allow_new_levels: bool) -> np.ndarray:
    """Z_i b_i for new rows: the fitted conditional modes of each row's level (0 for new levels)."""
    term = fm.lmod.reTrms.terms[i]
    b = fm.state.b[fm.lmod.reTrms.Gp[i] : fm.lmod.reTrms.Gp[i + 1]].reshape(term.nl, term.nc)
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
    Xi = term.spec.matrix(nd)
    coef = np.where(new[:, None], 0.0, b[np.maximum(codes, 0)])
    return np.sum(Xi * coef, axis=1)
