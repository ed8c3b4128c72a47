"""Model reduction: lme4's ``drop1`` (likelihood-ratio tests of each fixed term by ML refits),
lmerTest's ``drop1`` (F-tests with Satterthwaite's or Kenward-Roger's df), ``ranova`` (the
likelihood-ratio test of each random-effects term, a term ``(x | g)`` reduced to ``(1 | g)``)
and ``step`` (backward elimination of random-effects terms, then of fixed-effect terms).

A reduced model is refitted with the fit's own settings (REML or ML, weights, offset, control)
on the same rows; a random part reduced to nothing is a linear model, whose log-likelihood
(restricted for REML fits) is R's ``logLik.lm``.
"""
from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy.stats import chi2

from .anova import AnovaTable, refit_ml
from .errors import DataError, ModelError
from .formula import Node, deparse, expand_double_verts, expand_terms, parse, update_formula
from .tables import F_COLUMNS


class ReductionTable(AnovaTable):
    """An anova-style table of a reduction step, keeping what produced it: ``formulae`` (the
    reduced models' formulas) and ``fits`` (the refitted models; None for a linear model)."""

    _metadata = ["heading", "formulae", "fits"]

    @property
    def _constructor(self):
        return ReductionTable


def optimising(fm):
    """The fit, or for a model evaluated at a given theta (``lmerControl(optimizer=None)`` or
    ``glmerControl(optimizer=None)``) a copy whose refits (reduced models, ML and REML refits)
    run lme4's default optimiser (that control class's default)."""
    if fm.control.optimizer is not None:
        return fm
    out = copy.copy(fm)
    out.control = replace(fm.control, optimizer=type(fm.control)().optimizer)
    return out


def _model_line(formula: str) -> str:
    return deparse(expand_double_verts(parse(formula)))


class _Deparser:
    """R's deparse with its ``width.cutoff``: after a spaced binary operator, a line longer than
    the cutoff is broken and what follows indented (4 spaces a level), as lme4 prints formulas."""

    def __init__(self, cutoff: int):
        self.cutoff, self.lines, self.line, self.indent = cutoff, [], "", 0

    def put(self, text: str) -> None:
        if not self.line:
            self.line = "".join("    " if i < 4 else "  " for i in range(self.indent))
        self.line += text

    def node(self, n: Node) -> None:
        if n.op == "paren":
            self.put("(")
            self.node(n.args[0])
            self.put(")")
        elif n.op == "call":  # a function call (cbind(...), log(x)) as one piece
            self.put(deparse(n))
        elif n.op.startswith("u") and n.args:
            self.put(n.op[1:])
            self.node(n.args[0])
        elif len(n.args) == 2 and n.op in (":", "^", "/"):
            self.node(n.args[0])
            self.put(n.op)
            self.node(n.args[1])
        elif len(n.args) == 2:
            self.node(n.args[0])
            self.put(f" {n.op} ")
            broke = len(self.line) > self.cutoff
            if broke:
                self.indent += 1
                self.lines.append(self.line)
                self.line = ""
            self.node(n.args[1])
            self.indent -= broke
        else:
            self.put(deparse(n))


def deparse_lines(formula: str, cutoff: int = 60) -> list[str]:
    """A formula as R's ``deparse`` writes it, in lines of about ``cutoff`` characters."""
    d = _Deparser(cutoff)
    d.node(parse(formula))
    return d.lines + [d.line]


def _check_rows(fm, reduced) -> None:
    if reduced.nobs() != fm.nobs():
        raise DataError("number of rows in use has changed: remove missing values?")


def _chisq_p(lrt: np.ndarray, df: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(df > 0, chi2.sf(lrt, np.where(df > 0, df, 1)), np.nan)


# ---------------------------------------------------------------- fixed-effect terms
def drop_scope(fm) -> list[str]:
    """R's drop.scope: the fixed-effect terms contained in no other term (marginality)."""
    terms = fm.lmod.X_spec.terms.terms
    sets = [frozenset(v.label for v in t) for t in terms]
    return [":".join(v.label for v in t) for t, s in zip(terms, sets) if not any(s < o for o in sets)]


def _scope(fm, scope) -> list[str]:
    marginal = drop_scope(fm)
    if scope is None:
        scope = marginal
    scope = [scope] if isinstance(scope, str) else list(scope)
    if not scope:
        raise ModelError(f"drop1: the fixed-effects formula of {_model_line(fm.formula)!r} has no term to drop "
                         "(only the intercept)")
    labels = fm.lmod.X_spec.terms.labels
    bad = [s for s in scope if s not in labels]
    if bad:
        raise ModelError(f"drop1: scope {bad} is not a subset of the fixed-effect terms: {', '.join(labels)}")
    return scope


def _ml_aic(fm, k: float) -> tuple[int, float]:
    """lme4's extractAIC.merMod: (edf, -2 logLik + k edf) of the ML refit."""
    ll = refit_ml(fm).logLik()
    return ll.df, -2.0 * float(ll) + k * ll.df


def drop1(fm, scope=None, test: str = "none", k: float = 2.0, ddf: str | None = None) -> AnovaTable:
    """lme4's ``drop1(fm, test = "Chisq")``: each marginal fixed term dropped and the model
    refitted, npar and AIC of the ML refits (lme4's extractAIC), with ``test="Chisq"`` the
    likelihood-ratio statistic and its p-value; with ``ddf="Satterthwaite"`` or
    ``"Kenward-Roger"``, lmerTest's F-tests of the same terms instead (no refits)."""
    if ddf is not None:
        return drop1_F(fm, scope, ddf)
    if test not in ("none", "Chisq"):
        raise ValueError(f"drop1: test must be 'none' or 'Chisq', not {test!r} (lme4 has no F test for merMod)")
    scope = _scope(fm, scope)
    fm = optimising(fm)
    rows = [_ml_aic(fm, k)]
    for term in scope:
        reduced = fm.update(f". ~ . - {term}")
        _check_rows(fm, reduced)
        rows.append(_ml_aic(reduced, k))
    edf, aic = np.array(rows, dtype=float).T
    npar = np.concatenate([[np.nan], edf[0] - edf[1:]])
    table = {"npar": npar, "AIC": aic}
    if test == "Chisq":
        dev = aic - k * edf
        lrt = np.concatenate([[np.nan], dev[1:] - dev[0]])
        table.update({"LRT": lrt, "Pr(Chi)": np.concatenate([[np.nan], _chisq_p(lrt[1:], npar[1:])])})
    out = AnovaTable(table, index=["<none>"] + scope)
    out.heading = ["Single term deletions", "", "Model:"] + deparse_lines(fm.formula)
    return out


def drop1_F(fm, scope=None, ddf: str = "Satterthwaite") -> AnovaTable:
    """lmerTest's ``drop1(fm, ddf)``: for each marginal term, the F-test that its coefficients
    are zero (lmerTest's marginal contrasts), with Satterthwaite's or Kenward-Roger's df."""
    from .satterthwaite import contestMD, hypothesis_matrices

    scope = _scope(fm, scope)
    if fm.lmod.col_dropped:
        raise ModelError("drop1 with ddf: the fixed-effect model matrix is rank deficient "
                         f"(dropped: {', '.join(fm.lmod.col_dropped)}); use drop1(test='Chisq')")
    spec = fm.lmod.X_spec
    if fm.p <= 1 or len(spec.terms.labels) <= 1:
        hyps = hypothesis_matrices(fm, type=1)
    else:
        assign = np.array(spec.assign)
        labels = ["(Intercept)"] + spec.terms.labels
        hyps = {lab: np.eye(fm.p)[assign == a] for a, lab in enumerate(labels) if a > 0 or not spec.terms.intercept}
    tables = [contestMD(fm, hyps[term], ddf=ddf) for term in scope]
    out = AnovaTable(pd.concat(tables, ignore_index=True))
    out.index = scope
    method = "Satterthwaite's" if ddf == "Satterthwaite" else "Kenward-Roger's"
    out.heading = [f"Single term deletions using {method} method:", "", "Model:", _model_line(fm.formula)]
    return out


# ---------------------------------------------------------------- random-effects terms
def _full_formula(fm) -> tuple[str, list[str]]:
    """lmerTest's full formula (the fixed part, then each random-effects term as lme4's
    findbars expands them) and those terms' texts."""
    pf = fm.lmod.formula
    bars = [b.label for b in pf.bars]
    fixed = deparse(pf.fixed) if pf.fixed is not None else "1"
    rhs = " + ".join([fixed] + [f"({b})" for b in bars])
    return update_formula(fm.formula, f". ~ {rhs}"), bars


def _reduced_lhs(labels: list[str], intercept: bool, drop: str) -> str:
    """A term's left-hand side without ``drop``, as R's update.formula writes it ("1" if nothing is left)."""
    rest = [t for t in labels if t != drop]
    if not rest:
        return "1"
    return " + ".join(rest) + ("" if intercept else " - 1")


def _drop_marginal(labels: list[str], lhs_terms) -> list[str]:
    sets = [frozenset(v.label for v in t) for t in lhs_terms.terms]
    return [lab for lab, s in zip(labels, sets) if not any(s < o for o in sets)]


def ranova_formulas(fm, reduce_terms: bool = True) -> tuple[str, dict[str, str]]:
    """lmerTest's reduced models: per random-effects term, the term removed, or (reduce_terms,
    a term with covariates) each marginal covariate removed from it, ``(x | g)`` -> ``(1 | g)``."""
    full, bars = _full_formula(fm)
    out: dict[str, str] = {}
    for bar, text in zip(fm.lmod.formula.bars, bars):
        lhs = expand_terms(bar.lhs)
        scope = _drop_marginal(lhs.labels, lhs) if reduce_terms else []
        if not scope:
            out[f"({text})"] = update_formula(full, f". ~ . - ({text})")
            continue
        for term in scope:
            new = f"({_reduced_lhs(lhs.labels, lhs.intercept, term)} | {bar.group})"
            out[f"{term} in ({text})"] = update_formula(full, f". ~ . - ({text}) + {new}")
    return full, out


def lm_logLik(fm, REML: bool) -> tuple[float, int]:
    """R's logLik.lm of the fixed part alone (weights and offset kept), restricted for REML:
    (log-likelihood, df = rank + 1)."""
    w = fm.getME("weights")
    y = fm.lmod.y - (fm.lmod.offset if fm.lmod.offset is not None else 0.0)
    sw = np.sqrt(w)
    q, r = np.linalg.qr(fm.lmod.X * sw[:, None])
    rank = fm.p
    resid = y * sw - q @ (q.T @ (y * sw))
    n = len(y) - (rank if REML else 0)
    val = 0.5 * (np.sum(np.log(w)) - n * (math.log(2 * math.pi) + 1 - math.log(n) + math.log(np.sum(resid**2))))
    if REML:
        val -= np.sum(np.log(np.abs(np.diag(r))))
    return float(val), rank + 1


def _loglik_of(fm, formula: str) -> tuple[float, int, object]:
    """(log-likelihood of the fit's kind, its df, the fit or None for a linear model)."""
    if "|" not in formula:
        return (*lm_logLik(fm, fm.REML), None)
    reduced = fm.update(formula)
    _check_rows(fm, reduced)
    ll = reduced.logLik()
    return float(ll), ll.df, reduced


def _lr_table(ll: list[tuple[float, int]], names: list[str]) -> ReductionTable:
    """lmerTest's mk_LRtab: npar, logLik, AIC, and each row's LRT against the first."""
    logl = np.array([v for v, _ in ll])
    npar = np.array([d for _, d in ll], dtype=float)
    lrt = np.concatenate([[np.nan], 2 * (logl[0] - logl[1:])])
    df = np.concatenate([[np.nan], npar[0] - npar[1:]])
    p = np.concatenate([[np.nan], _chisq_p(lrt[1:], df[1:])])
    return ReductionTable({"npar": npar, "logLik": logl, "AIC": -2 * logl + 2 * npar, "LRT": lrt, "Df": df,
                       "Pr(>Chisq)": p}, index=names)


def ranova(fm, reduce_terms: bool = True) -> ReductionTable:
    """lmerTest's ``ranova(fm)``: each random-effects term removed (or reduced, see
    ``ranova_formulas``) and the model refitted (REML stays REML), with the likelihood-ratio
    test against the full model; ``.formulae`` holds the reduced formulas, ``.fits`` the fits."""
    full, forms = ranova_formulas(fm, reduce_terms)
    fits = [_loglik_of(optimising(fm), f) for f in forms.values()]
    ll0 = fm.logLik()
    table = _lr_table([(float(ll0), ll0.df)] + [(v, d) for v, d, _ in fits], ["<none>"] + list(forms))
    table.heading = ["ANOVA-like table for random-effects: Single term deletions", "", "Model:", full]
    table.formulae, table.fits = forms, [f for _, _, f in fits]
    return table


# ---------------------------------------------------------------- backward elimination
class Step:
    """lmerTest's step result: the random-effects and fixed-effect elimination tables and the
    model found (``.model``), printed as lmerTest's print.step_list."""

    def __init__(self, random: AnovaTable, fixed: AnovaTable, model, drop1_table: AnovaTable):
        self.random, self.fixed, self.model, self.drop1 = random, fixed, model, drop1_table

    def get_model(self):
        """lmerTest's get_model(step(fm)): the reduced model."""
        return self.model

    def __str__(self) -> str:
        fixed = self.fixed
        if fixed.empty:  # R prints a table without rows as its header alone
            fixed = "\n".join(fixed.heading + ["    " + "".join(f" {c}" for c in fixed.columns)])
        return f"{self.random}\n\n{fixed}\n\nModel found:\n{_model_line(self.model.formula)}"

    __repr__ = __str__


def _eliminated(table: pd.DataFrame, values) -> pd.DataFrame:
    out = table.copy()
    out.insert(0, "Eliminated", values)
    return out


def reduce_random(fm, alpha: float = 0.1):
    """lmerTest's reduce_random: drop the random-effects term with the largest p-value above
    ``alpha`` and refit, until none is above; (eliminated rows, final ranova, final model)."""
    ran = ranova(fm)
    kept = [ran.iloc[[0]]]
    model = fm
    while True:
        p = ran["Pr(>Chisq)"].to_numpy()[1:]
        above = ~np.isnan(p) & (p > alpha)
        if not above.any():
            return pd.concat(kept), ran, model
        j = int(np.nanargmax(np.where(above, p, -np.inf)))
        kept.append(ran.iloc[[1 + j]])
        model = ran.fits[j]
        if model is None:
            raise ModelError("step: the random-effects reduction removed every random-effects term "
                             f"({ran.index[1 + j]}); the model left is a linear model (lm), which pylme "
                             "does not fit: use reduce_random=False or a smaller alpha_random")
        ran = ranova(model)


def reduce_fixed(fm, ddf: str = "Satterthwaite", alpha: float = 0.05, keep: list[str] = ()):
    """lmerTest's reduce_fixed: drop the marginal fixed term (not in ``keep``) with the largest
    F-test p-value above ``alpha`` and refit, until none is above; (eliminated rows, final
    drop1 table, final model)."""
    model = optimising(fm)
    removed = []
    while True:
        if not drop_scope(model):
            return _removed_table(removed), AnovaTable(columns=F_COLUMNS), model
        aov = drop1_F(model, ddf=ddf)
        consider = [t for t in aov.index if t not in keep]
        p = aov.loc[consider, "Pr(>F)"].to_numpy()
        above = ~np.isnan(p) & (p > alpha)
        if not above.any():
            return _removed_table(removed), aov, model
        term = consider[int(np.nanargmax(np.where(above, p, -np.inf)))]
        removed.append(aov.loc[[term]])
        reduced = model.update(f". ~ . - {term}")
        _check_rows(model, reduced)
        model = reduced


def _removed_table(rows: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(rows) if rows else pd.DataFrame()


def step(fm, ddf: str = "Satterthwaite", alpha_random: float = 0.1, alpha_fixed: float = 0.05,
         reduce_fixed_terms: bool = True, reduce_random_terms: bool = True, keep: list[str] | None = None) -> Step:
    """lmerTest's ``step(fm)``: backward elimination of random-effects terms (likelihood-ratio
    tests, ``alpha_random``), then of fixed-effect terms (F-tests with ``ddf``, ``alpha_fixed``),
    terms in ``keep`` excepted."""
    keep = list(keep or [])
    bad = [k for k in keep if k not in fm.lmod.X_spec.terms.labels]
    if bad:
        raise ModelError(f"step: keep {bad} names no fixed-effect term; terms: {', '.join(fm.lmod.X_spec.terms.labels)}")
    rows, ran, model = reduce_random(fm, alpha_random if reduce_random_terms else 1.0)
    random = AnovaTable(pd.concat([_eliminated(rows, [np.nan] + list(range(1, len(rows)))),
                                   _eliminated(ran.iloc[1:], [0.0] * (len(ran) - 1))]))
    random.heading = ["Backward reduced random-effect table:", ""]
    removed, aov, model = reduce_fixed(model, ddf, alpha_fixed if reduce_fixed_terms else 1.0, keep)
    parts = ([_eliminated(removed, list(range(1, len(removed) + 1)))] if len(removed) else []) + \
        ([_eliminated(aov, [0.0] * len(aov))] if len(aov) else [])
    fixed = AnovaTable(pd.concat(parts) if parts else pd.DataFrame(columns=["Eliminated"] + F_COLUMNS))
    fixed.heading = ["Backward reduced fixed-effect table:", f"Degrees of freedom method: {ddf}", ""]
    return Step(random, fixed, model, aov)
