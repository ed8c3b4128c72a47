"""Model matrices with R's ``model.matrix`` rules and column names.

formulaic evaluates every numeric expression (``x``, ``I(x^2)``, ``log(z)``, ``poly(x, 2)``)
and keeps its stateful transforms for new data; factors are coded here by R's rules:
treatment contrasts (polynomial for ordered factors), full indicator coding where R's
marginality rule asks for it (``TermCode`` in R's model.c), the first variable varying
fastest within an interaction, and names such as ``(Intercept)``, ``minorityY``, ``x:a``,
``temperature.L``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from formulaic import model_matrix as _formulaic_matrix

from .errors import DataError, FormulaError
from .factors import Factor, as_factor, contr_poly, contr_treatment, is_factor_like
from .formula import Terms, Variable, to_python

_FACTOR_CALLS = {"factor", "as.factor", "ordered", "as.ordered"}

#: functions of R a formula may call, mapped to numpy for formulaic's evaluation
R_FUNCTIONS = {
    "log": np.log, "log2": np.log2, "log10": np.log10, "log1p": np.log1p, "exp": np.exp,
    "sqrt": np.sqrt, "abs": np.abs, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "as_numeric": np.asarray, "pmin": np.minimum, "pmax": np.maximum,
}


@dataclass
class FactorCoding:
    """A factor variable: its levels (fixed at fit time) and ordered flag."""

    levels: tuple[str, ...]
    ordered: bool

    def codes(self, frame: pd.DataFrame, var: Variable) -> np.ndarray:
        """Codes of ``frame``'s values into the fitted levels; a level not seen in the fit is an error."""
        fac = _factor_of(frame, var)
        index = {lev: k for k, lev in enumerate(self.levels)}
        unknown = [lev for lev in fac.levels if lev not in index]
        if unknown:
            raise DataError(f"new level(s) {unknown} of factor {var.label!r} not present in the fitted data")
        lookup = np.array([index[lev] for lev in fac.levels], dtype=np.int64)
        return lookup[fac.codes]

    def columns(self, kind: int, label: str) -> tuple[np.ndarray, list[str]]:
        """Coding matrix (levels x columns) and column suffixes; kind 1 contrasts, 2 indicators."""
        n = len(self.levels)
        if kind == 2:
            return np.eye(n), list(self.levels)
        if n < 2:
            raise DataError(
                f"contrasts can be applied only to factors with 2 or more levels: {label!r} has only "
                f"{list(self.levels)} in the complete-case rows"
            )
        if self.ordered:
            return contr_poly(n)
        return contr_treatment(n), list(self.levels[1:])


@dataclass
class NumericCoding:
    """A numeric variable: a plain column (read directly) or an expression evaluated by
    formulaic (its model spec reused on new data)."""

    spec: object | None  # formulaic's model spec; None for a plain numeric column
    names: list[str]
    column: str | None = None

    def values(self, frame: pd.DataFrame) -> np.ndarray:
        if self.column is not None:
            return frame[self.column].to_numpy(dtype=float).reshape(len(frame), 1)
        mm = self.spec.get_model_matrix(frame, context=R_FUNCTIONS, na_action="ignore")
        return np.asarray(mm, dtype=float).reshape(len(frame), -1)


@dataclass
class DesignSpec:
    """Everything needed to rebuild a model matrix on new data (predict)."""

    terms: Terms
    codings: dict[str, FactorCoding | NumericCoding]
    term_kinds: list[tuple[int, ...]]  # per term, per variable: 0 numeric, 1 contrasts, 2 indicators
    column_names: list[str] = field(default_factory=list)
    assign: list[int] = field(default_factory=list)  # term index per column (0 = intercept)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The model matrix of ``frame`` under this design's codings."""
        blocks = [np.ones((len(frame), 1))] if self.terms.intercept else []
        for term, kinds in zip(self.terms.terms, self.term_kinds):
            blocks.append(self._term_block(frame, term, kinds)[0])
        return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))

    def _term_block(self, frame: pd.DataFrame, term: tuple[Variable, ...], kinds: tuple[int, ...]):
        block = np.ones((len(frame), 1))
        for var, kind in zip(term, kinds):
            # the first variable varies fastest: new columns are the slow index
            vals = self._variable_columns(frame, var, kind)
            block = (block[:, None, :] * vals[:, :, None]).reshape(len(frame), -1)
        return block, self._term_names(term, kinds)

    def _term_names(self, term: tuple[Variable, ...], kinds: tuple[int, ...]) -> list[str]:
        names = [""]
        for var, kind in zip(term, kinds):
            names = [f"{n}:{s}" if n else s for s in self._suffixes(var, kind) for n in names]
        return names

    def _suffixes(self, var: Variable, kind: int) -> list[str]:
        coding = self.codings[var.label]
        if isinstance(coding, NumericCoding):
            return coding.names
        return [f"{var.label}{s}" for s in coding.columns(kind, var.label)[1]]

    def _variable_columns(self, frame: pd.DataFrame, var: Variable, kind: int) -> np.ndarray:
        coding = self.codings[var.label]
        if isinstance(coding, NumericCoding):
            return _check_finite(coding.values(frame), var)
        return coding.columns(kind, var.label)[0][coding.codes(frame, var)]


def design(terms: Terms, frame: pd.DataFrame) -> tuple[DesignSpec, np.ndarray]:
    """Build the model matrix of ``terms`` on ``frame`` and the spec to rebuild it."""
    codings = {v.label: _coding(frame, v) for v in terms.variables}
    kinds = _term_kinds(terms, codings)
    spec = DesignSpec(terms, codings, kinds)
    names, assign = (["(Intercept)"], [0]) if terms.intercept else ([], [])
    for k, (term, tk) in enumerate(zip(terms.terms, kinds), start=1):
        block_names = spec._term_names(term, tk)
        names += block_names
        assign += [k] * len(block_names)
    spec.column_names, spec.assign = names, assign
    X = spec.matrix(frame)
    return spec, X


def _term_kinds(terms: Terms, codings: dict) -> list[tuple[int, ...]]:
    """R's TermCode: a factor gets contrasts when the term without it is empty or is
    contained in a preceding term, indicators otherwise; with no intercept the first
    factor of the first term holding one gets indicators."""
    sets = [frozenset(v.label for v in t) for t in terms.terms]
    kinds: list[list[int]] = []
    for j, term in enumerate(terms.terms):
        row = []
        for var in term:
            if isinstance(codings[var.label], NumericCoding):
                row.append(0)
                continue
            rest = sets[j] - {var.label}
            row.append(1 if not rest or any(rest <= s for s in sets[:j]) else 2)
        kinds.append(row)
    if not terms.intercept:
        for row in kinds:
            if any(k > 0 for k in row):
                row[next(i for i, k in enumerate(row) if k > 0)] = 2
                break
    return [tuple(r) for r in kinds]


def _coding(frame: pd.DataFrame, var: Variable) -> FactorCoding | NumericCoding:
    if _is_factor(frame, var):
        fac = _factor_of(frame, var)
        return FactorCoding(fac.levels, fac.ordered)
    if var.node.op == "name" and var.node.text in frame.columns:
        return NumericCoding(None, [var.label], var.node.text)  # checked when the matrix is built
    try:
        mm = _formulaic_matrix(f"0 + {to_python(var.text)}", frame, context=R_FUNCTIONS, na_action="ignore")
    except Exception as exc:  # formulaic raises many kinds; name the term
        raise FormulaError(f"cannot evaluate term {var.label!r}: {exc}") from exc
    ncol = mm.shape[1]
    names = [var.label] if ncol == 1 else [f"{var.label}{k + 1}" for k in range(ncol)]
    coding = NumericCoding(mm.model_spec, names)
    _check_finite(np.asarray(mm, dtype=float), var)
    return coding


def _is_factor(frame: pd.DataFrame, var: Variable) -> bool:
    node = var.node
    if node.op == "call" and node.text in _FACTOR_CALLS:
        return True
    return node.op == "name" and is_factor_like(frame[node.text])


def _factor_of(frame: pd.DataFrame, var: Variable, drop_unused: bool = True) -> Factor:
    node = var.node
    if node.op == "name":
        fac = as_factor(frame[node.text], drop_unused)
    else:
        inner = node.raw.strip()
        if inner not in frame.columns:
            raise FormulaError(f"{var.label}: only a column name may appear inside {node.text}()")
        fac = as_factor(frame[inner], drop_unused)
        if node.text in ("ordered", "as.ordered"):
            fac = Factor(fac.codes, fac.levels, True)
    return fac


def _check_finite(values: np.ndarray, var: Variable) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise DataError(f"term {var.label!r} has infinite or undefined values (NaN/Inf) in the complete-case rows")
    return values


def numeric_vector(frame: pd.DataFrame, label: str, text: str, what: str = "response") -> np.ndarray:
    """A numeric vector (the response, an offset): finite, or a DataError naming it."""
    if text in frame.columns:
        col = frame[text]
        if is_factor_like(col):
            raise DataError(f"{what} {label!r} must be numeric, not {col.dtype}")
        y = col.to_numpy(dtype=float)
    else:
        try:
            y = np.asarray(
                _formulaic_matrix(f"0 + I({to_python(text)})", frame, context=R_FUNCTIONS, na_action="ignore"),
                dtype=float,
            )
        except Exception as exc:
            raise FormulaError(f"cannot evaluate {what} {label!r}: {exc}") from exc
        if y.ndim == 2 and y.shape[1] != 1:
            raise DataError(f"{what} {label!r} must be a single numeric column")
        y = y.reshape(-1)
    if not np.all(np.isfinite(y)):
        raise DataError(f"NA/NaN/Inf in 'y': {what} {label!r} has {int(np.sum(~np.isfinite(y)))} infinite value(s)")
    return y


def check_scale_x(X: np.ndarray, tol: float = 1000.0) -> list[str]:
    """lme4's checkScaleX: warn when continuous columns' standard deviations differ by more than
    a factor ``tol`` from each other or from 1."""
    cont = ~np.all((X == 0.0) | (X == 1.0), axis=0)
    if not cont.any() or X.shape[0] < 2:
        return []
    logsd = np.log(np.std(X[:, cont], axis=0, ddof=1))
    spread = np.abs(logsd[:, None] - logsd[None, :])
    if np.any(spread > np.log(tol)) or np.any(np.abs(logsd) > np.log(tol)):
        return ["Some predictor variables are on very different scales: consider rescaling"]
    return []


def drop_rank_deficient(X: np.ndarray, tol: float = 1e-7) -> tuple[np.ndarray, list[int]]:
    """lme4's chkRank.drop.cols: keep the columns LINPACK's pivoting QR (dqrdc2) keeps.

    Returns the kept columns' positions; a column whose remaining norm falls below
    ``tol`` times its original norm is moved to the end and dropped."""
    if X.shape[1] == 0:
        return X, []
    rank, pivot = dqrdc2_rank(X, tol)
    keep = sorted(pivot[:rank])
    return X[:, keep], keep


def dqrdc2_rank(X: np.ndarray, tol: float) -> tuple[int, list[int]]:
    """Rank and column pivot of R's LINPACK QR with limited pivoting (dqrdc2)."""
    x = np.array(X, dtype=float, order="F")
    n, p = x.shape
    pivot = list(range(p))
    qraux = np.linalg.norm(x, axis=0)
    work1 = qraux.copy()
    work2 = np.where(qraux == 0, 1.0, qraux)
    k = p + 1
    for l in range(min(n, p)):
        while l + 1 < k and qraux[l] < work2[l] * tol:
            order = list(range(l)) + list(range(l + 1, p)) + [l]
            x, qraux, work1, work2 = x[:, order], qraux[order], work1[order], work2[order]
            pivot = [pivot[i] for i in order]
            k -= 1
        if l == n - 1:
            break
        nrmxl = np.linalg.norm(x[l:, l])
        if nrmxl == 0:
            continue
        if x[l, l] != 0:
            nrmxl = np.copysign(nrmxl, x[l, l])
        x[l:, l] /= nrmxl
        x[l, l] += 1.0
        for j in range(l + 1, p):
            t = -np.dot(x[l:, l], x[l:, j]) / x[l, l]
            x[l:, j] += t * x[l:, l]
            if qraux[j] != 0:
                tt = max(1.0 - (abs(x[l, j]) / qraux[j]) ** 2, 0.0)
                if abs(tt) < 1e-6:
                    qraux[j] = np.linalg.norm(x[l + 1 :, j])
                    work1[j] = qraux[j]
                else:
                    qraux[j] *= np.sqrt(tt)
        qraux[l] = x[l, l]
        x[l, l] = -nrmxl
    return min(k - 1, n), pivot
