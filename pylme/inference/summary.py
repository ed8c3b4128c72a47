"""lme4's print(fm) and summary(fm) layouts."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..description.formula import deparse, expand_double_verts, parse
from ..rbase.printing import format_numbers, format_pvals, named_vector, render_table, signif_stars, zapsmall


def method_title(fm) -> str:
    # lme4 pastes an empty GLMM suffix onto "maximum likelihood", leaving a trailing space
    return "Linear mixed model fit by " + ("REML" if fm.REML else "maximum likelihood ")


def _header(fm) -> list[str]:
    lines = [f"{method_title(fm)} ['lmerMod']", f"Formula: {deparse(expand_double_verts(parse(fm.formula)))}"]
    if fm.lmod.data_name:
        lines.append(f"   Data: {fm.lmod.data_name}")
    return lines


def _aic_table(fm, digits: int) -> list[str]:
    if fm.REML:
        value = round(fm.REMLcrit(), digits)
        return [f"REML criterion at convergence: {format_numbers([value], 7)[0].strip()}"]
    ll = float(fm.logLik())
    vals = [round(v, digits) for v in (fm.AIC(), fm.BIC(), ll, fm.deviance(REML=False))]
    names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    strs = format_numbers(vals, 7) + [str(fm.n - fm.npar())]
    return named_vector(names, strs)


def groups_line(fm) -> str:
    groups = "; ".join(f"{k}, {v}" for k, v in fm.ngrps().items())
    return f"Number of obs: {fm.nobs()}, groups:  {groups}"


def print_merMod(fm, digits: int = 4) -> str:
    """print(fm): title, formula, criterion, random effects (Std.Dev.), fixed effects."""
    lines = _header(fm) + _aic_table(fm, 4)
    lines += ["Random effects:", fm.VarCorr().format(("Std.Dev.",), digits), groups_line(fm)]
    fe = fm.fixef()
    if len(fe):
        lines.append("Fixed Effects:")
        lines += named_vector(list(fe.index), format_numbers(fe.to_numpy(), digits), gap=2)
    else:
        lines.append("No fixed effect coefficients")
    lines += _fit_messages(fm)
    return "\n".join(lines)


def _fit_messages(fm) -> list[str]:
    msgs = [m for m in fm.messages if "singular" in m] + fm.warnings
    if not msgs:
        return []
    if fm.warnings:
        name, conv = fm.opt.summary.optimizer, fm.opt.summary.conv
        return [f"optimizer ({name}) convergence code: 0 (OK)" if conv == 0 else
                f"optimizer ({name}) convergence code: {conv}"] + msgs
    return msgs


class Summary:
    """summary(fm): adds scaled residuals, variances, the coefficient table and correlations."""

    def __init__(self, fm, ddf: str = "lme4"):
        self.fm, self.ddf = fm, ddf
        if ddf != "lme4":
            from .satterthwaite import satterthwaite_table

            self.coefficients = satterthwaite_table(fm, ddf)
            return
        se = np.sqrt(np.diag(fm.vcov().to_numpy()))
        beta = fm.fixef()
        self.coefficients = pd.DataFrame(
            {"Estimate": beta.to_numpy(), "Std. Error": se, "t value": beta.to_numpy() / se}, index=beta.index
        )

    def __str__(self) -> str:
        fm, digits = self.fm, 4
        lines = _header(fm) + [""] + _aic_table(fm, 1) + [""]
        if self.ddf != "lme4":  # lmerTest's title, wrapped as R wraps it at width 80
            title = method_title(fm) + f". t-tests use {self.ddf}'s method"
            lines[:1] = [f"{title} [", "lmerModLmerTest]"] if len(title) + 5 + 15 > 80 else [
                f"{title} ['lmerModLmerTest']"]
        lines += ["Scaled residuals: "] + residual_quantiles(fm, digits) + [""]
        lines += ["Random effects:", fm.VarCorr().format(("Variance", "Std.Dev."), digits), groups_line(fm)]
        if fm.na_message:
            lines.append(f"({len(fm.na_action)} observations deleted due to missingness)")
        if len(self.coefficients):
            lines += ["", "Fixed effects:", coef_table(self.coefficients, digits)]
            lines += correlation_lines(fm)
        lines += _fit_messages(fm)
        return "\n".join(lines)

    __repr__ = __str__


def residual_quantiles(fm, digits: int) -> list[str]:
    q = fm.scaled_residual_quantiles([0, 0.25, 0.5, 0.75, 1.0])
    q = zapsmall(q, digits + 1)
    return named_vector(["Min", "1Q", "Median", "3Q", "Max"], format_numbers(q, digits))


def coef_table(coefs: pd.DataFrame, digits: int = 4) -> str:
    """R's printCoefmat for Estimate, Std. Error (and lmerTest's df) and t value: the columns
    before the t value are rounded and formatted together, as one matrix."""
    cs_cols = ["Estimate", "Std. Error"] + (["df"] if "df" in coefs else [])
    cs_vals = coefs[cs_cols].to_numpy(dtype=float)
    acs = np.abs(cs_vals[np.isfinite(cs_vals) & (cs_vals != 0)])
    digmin = 1 + (np.floor(np.log10(acs.min())) if acs.size else 0)
    dec = max(1, int(digits - digmin))
    cs = format_numbers(np.round(cs_vals, dec).ravel(), digits)
    k = len(cs_cols)
    cols = {name: cs[j::k] for j, name in enumerate(cs_cols)}
    cols["t value"] = format_numbers(np.round(coefs["t value"].to_numpy(), max(1, min(5, digits - 1))), digits)
    if "df" in coefs:  # lmerTest's columns: then the p-value with significance stars
        p = coefs["Pr(>|t|)"].to_numpy()
        cols["Pr(>|t|)"] = format_pvals(p, max(1, min(5, digits - 1)))
        stars = [signif_stars(v) for v in p]
        cols[""] = [st.ljust(max(map(len, stars))) for st in stars]  # R's format() of the codes
        table = render_table(cols, row_names=list(coefs.index), right_all=True)
        return table + "\n---\nSignif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"
    return render_table(cols, row_names=list(coefs.index), right_all=True)


def correlation_lines(fm, cor_max: int = 12) -> list[str]:
    V = fm.vcov().to_numpy()
    p = V.shape[0]
    if p <= 1:
        return []
    if p > cor_max:
        return ["", f"Correlation matrix not shown by default, as p = {p} > {cor_max}.",
                "Use print(x, correlation=TRUE)  or", "    vcov(x)        if you need it", ""]
    sd = np.sqrt(np.diag(V))
    corr = V / np.outer(sd, sd)
    names = list(fm.fixef().index)
    cells = _nsmall(np.round(corr, 3).ravel(), 3)
    mat = np.array(cells).reshape(p, p)
    cols = {}
    for j in range(p - 1):
        cols[abbreviate(names[j], 6)] = [mat[i, j] if i > j else "" for i in range(1, p)]
    return ["", "Correlation of Fixed Effects:", render_table(cols, row_names=[abbreviate(n, 11) for n in names[1:]])]


def _nsmall(values: np.ndarray, nsmall: int) -> list[str]:
    """R's format(x, nsmall=) for a vector: at least ``nsmall`` decimals, common width."""
    strs = format_numbers(values, 7)
    dec = max(len(s.split(".")[1]) if "." in s else 0 for s in strs)
    return format_numbers_fixed(values, max(dec, nsmall))


def format_numbers_fixed(values: np.ndarray, decimals: int) -> list[str]:
    strs = [f"{v:.{decimals}f}" for v in values]
    w = max(len(s) for s in strs)
    return [s.rjust(w) for s in strs]


def abbreviate(name: str, minlength: int) -> str:
    """R's abbreviate(): drop lower-case vowels from the right, then lower-case letters,
    keeping the first character, until the name is ``minlength`` long."""
    chars = list(name)
    for pool in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if chars[i] in pool:
                del chars[i]
            i -= 1
    return "".join(chars[: max(minlength, 0)]) if len(chars) > minlength else "".join(chars)
