"""Model matrices with R's ``model.matrix`` rules and column names.

Each variable of a term is evaluated by pylme.description.evaluate (a data column read directly; an
expression such as ``I(x^2)``, ``log(z)``, ``poly(x, 2)``, ``x > 2`` by our evaluator, its
data-dependent transforms kept for new data). Numbers and matrices give numeric columns;
factors, logicals and strings are coded here by R's rules: treatment contrasts (polynomial for
ordered factors), full indicator coding where R's marginality rule asks for it (``TermCode`` in
R's model.c), the first variable varying fastest within an interaction, and names such as
``(Intercept)``, ``minorityY``, ``x:a``, ``temperature.L``, ``poly(x, 2)1``, ``x > 2TRUE``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from .evaluate import Basis, Evaluator
from .factors import Factor, Logical, column_value, contr_poly, contr_treatment, drop_unused_levels, to_factor
from .formula import Terms, Variable
from .rsyntax import Node, deparse


@dataclass
class FactorCoding:
    """A factor variable: its levels (fixed at fit time) and ordered flag; ``states`` what its
    expression learned from the fitted data."""

    levels: tuple[str, ...]
    ordered: bool
    states: dict = field(default_factory=dict)

    def codes(self, frame: pd.DataFrame, var: Variable) -> np.ndarray:
        """Codes of ``frame``'s values into the fitted levels; a level not seen in the fit is an error."""
        fac = design_factor(Evaluator(frame, self.states).value(var.node), var)
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
    """A numeric variable: a plain column (read directly), or an expression evaluated with
    what it learned from the fitted data (``states``), giving one column or several (``names``)."""

    node: Node
    states: dict
    names: list[str]
    column: str | None = None

    def values(self, frame: pd.DataFrame) -> np.ndarray:
        if self.column is not None:
            return np.asarray(column_value(frame[self.column]), dtype=float).reshape(len(frame), 1)
        return numeric_columns(Evaluator(frame, self.states).value(self.node), deparse(self.node), len(frame))[0]


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


def design(terms: Terms, frame: pd.DataFrame, states: dict | None = None) -> tuple[DesignSpec, np.ndarray]:
    """Build the model matrix of ``terms`` on ``frame`` and the spec to rebuild it; ``states``
    holds what data-dependent transforms learned from the data (pylme.description.modelframe), filled here
    for any that did not learn yet."""
    spec = design_spec(terms, frame, states)
    return spec, spec.matrix(frame)


def design_spec(terms: Terms, frame: pd.DataFrame, states: dict | None = None) -> DesignSpec:
    """The codings and column names of the model matrix of ``terms`` on ``frame``, without the
    matrix (its size is known before it is made)."""
    states = {} if states is None else states
    codings = {v.label: _coding(frame, v, states) for v in terms.variables}
    kinds = _term_kinds(terms, codings)
    spec = DesignSpec(terms, codings, kinds)
    names, assign = (["(Intercept)"], [0]) if terms.intercept else ([], [])
    for k, (term, tk) in enumerate(zip(terms.terms, kinds), start=1):
        block_names = spec._term_names(term, tk)
        names += block_names
        assign += [k] * len(block_names)
    spec.column_names, spec.assign = names, assign
    return spec


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


def _coding(frame: pd.DataFrame, var: Variable, states: dict) -> FactorCoding | NumericCoding:
    node = var.node
    plain = node.op == "name" and node.text in frame.columns
    value = column_value(frame[node.text]) if plain else Evaluator(frame, states).value(node)
    if isinstance(value, (Factor, Logical)) or _is_character(value):
        fac = design_factor(value, var)
        if len(fac.codes) != len(frame):
            raise FormulaError(f"term {var.label!r} is a constant, not a variable: it has no value per row")
        return FactorCoding(fac.levels, fac.ordered, states)
    if plain:
        return NumericCoding(node, states, [var.label], node.text)  # checked when the matrix is built
    values, suffixes = numeric_columns(value, var.label, len(frame))
    _check_finite(values, var)
    return NumericCoding(node, states, [var.label + s for s in suffixes] if suffixes else [var.label])


def _is_character(value) -> bool:
    return isinstance(value, str) or (isinstance(value, np.ndarray) and value.dtype == object)


def design_factor(value, var: Variable) -> Factor:
    """A factor-like value as model.matrix codes it: a logical always has levels FALSE and TRUE
    (R's ``contrasts<-``); a factor or strings lose their unused levels (model.frame)."""
    if isinstance(value, Logical):
        v = value.values
        return Factor(np.where(np.isnan(v), -1, v).astype(np.int64), ("FALSE", "TRUE"))
    if _is_character(value) and np.ndim(value) == 0:
        raise FormulaError(f"term {var.label!r} is a constant, not a variable")
    fac = drop_unused_levels(to_factor(value))
    if np.any(fac.codes < 0):
        raise DataError(f"factor {var.label!r} is missing (NA) in {int(np.sum(fac.codes < 0))} complete-case row(s): "
                        "a value outside its levels or breaks (R would drop those rows)")
    return fac


def numeric_columns(value, label: str, n: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """An evaluated numeric value as an n x k matrix and the suffixes of its column names."""
    if isinstance(value, Basis):
        return value.values, value.suffixes
    if isinstance(value, (Factor, Logical)) or _is_character(value):
        raise DataError(f"{label!r} must be numeric here, not a factor or strings")
    x = np.asarray(value, dtype=float)
    if x.ndim == 0 or x.size != n:
        raise FormulaError(f"term {label!r} is a constant, not a variable: it has no value per row")
    return x.reshape(n, 1), ()


def _check_finite(values: np.ndarray, var: Variable) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise DataError(f"term {var.label!r} has infinite or undefined values (NaN/Inf) in the complete-case rows")
    return values


def numeric_vector(frame: pd.DataFrame, label: str, node: Node, what: str = "response",
                   states: dict | None = None) -> np.ndarray:
    """A numeric vector (the response, an offset): finite, or a DataError naming it."""
    value = Evaluator(frame, states).value(node)
    if isinstance(value, Logical):
        value = value.values
    if isinstance(value, Factor) or _is_character(value):
        dtype = frame[node.text].dtype if node.op == "name" else "a factor"
        raise DataError(f"{what} {label!r} must be numeric, not {dtype}")
    y, _ = numeric_columns(value, label, len(frame))
    if y.shape[1] != 1:
        raise DataError(f"{what} {label!r} must be a single numeric column")
    y = y[:, 0]
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
