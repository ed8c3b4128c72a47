"""Adapters for engines other than pylme and lme4, scored by the harness on the full-fit layer only
(they expose no objective at a given theta): ``statsmodels`` (``MixedLM``) and ``mixedlm`` (the
PyPI package, Rust core). Both are optional (``pip install pylme[engines]``); ``make(name)``
raises ``Unsupported`` when one is missing, so every case is reported "unsupported".

What each adapter can express, and what it refuses with ``Unsupported``:

statsmodels
    ``MixedLM(endog, exog, groups, exog_re, exog_vc)`` fitted on lme4's model matrices, built by
    ``pylme.lFormula`` (so R's coding, R's coefficient names, lme4's NA handling and its dropping
    of rank-deficient columns). MixedLM has one grouping factor ``groups`` with one correlated
    random-effects vector ``exog_re`` per group, plus independent variance components
    (``exog_vc``) within a group, each with one variance shared by all its columns. That maps
    exactly onto lme4 models whose grouping factors are all nested in one of them, G:

    - a single term ``(x | g)``, ``(1 | g)``, ``(0 + x | g)``: ``groups`` = g, ``exog_re`` = the
      term's model matrix;
    - further scalar terms on G, such as the second half of ``(x || g)``: one variance component
      each, with one column per group;
    - scalar terms on a factor nested in G (``(1 | g/h)``, ``(1 | g) + (1 | g:h)``): one variance
      component each, with one column per level of the inner factor within the group.

    Refused: crossed (non-nested) grouping factors, vector-valued terms other than the one in
    ``exog_re``, prior weights (MixedLM has none). An offset is subtracted from the response,
    which is the same model (the fitted values get it back). When ``pylme.lFormula`` refuses the
    model (as lme4 does) the case is "unsupported" too: the refusal would be pylme's, not
    statsmodels'.

mixedlm
    ``mixedlm.lmer`` on the case's own formula and data (its formula parser, its coding, its NA
    handling, its weights), the engine as a user would run it. Its results are mapped to R's
    names by matching its model matrices with lme4's (``pylme.lFormula``): a fixed-effect column
    takes R's name when it equals an R column, a random-effects block is matched to the lme4
    term with the same grouping (as a partition of the observations) and the same columns, and
    its levels to R's level labels. Where the parametrisations differ (mixedlm codes ordered
    factors by treatment contrasts, not ``contr.poly``; it drops other collinear columns than R)
    the record keeps mixedlm's own names, so the comparison reports the difference. Refused:
    formulas its parser cannot read (``I()``, ``log()``, ``poly()``, ``offset()``, ...).

Both adapters fill theta in lme4's parametrisation (the lower-triangular Cholesky factor of each
term's covariance relative to sigma^2, column-major, terms in lme4's order), AIC/BIC with lme4's
parameter count (p + ntheta + 1) and ``is_singular`` by lme4's rule (a diagonal theta below 1e-4)
applied to the engine's theta. ``warnings`` hold the engine's own warnings (statsmodels'
ConvergenceWarnings, mixedlm's UserWarnings), ``messages`` what mixedlm printed, or for statsmodels
the messages of ``pylme.lFormula`` (lme4's "dropping columns" for a rank-deficient X, which the
adapter did); lme4's own texts ("boundary (singular) fit: ...") are never invented for an engine.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import io
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

import pylme
from pylme.fitted.record import FitRecord
from pylme.inference.varcorr import unique_names

from .cases import Case
from .outcomes import Unsupported, error_record

SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance on the diagonal of theta
_QUIET = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


# ------------------------------------------------------------------ shared helpers
def _chol_lower(S: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor with a non-negative diagonal of a positive semi-definite matrix
    (columns with a zero pivot are set to zero, as at lme4's boundary)."""
    S = np.asarray(S, dtype=float)
    S = (S + S.T) / 2
    try:
        return np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        pass
    k = S.shape[0]
    L = np.zeros_like(S)
    tol = 1e-14 * max(1.0, float(np.max(np.abs(np.diag(S))))) if k else 0.0
    for j in range(k):
        d = S[j, j] - L[j, :j] @ L[j, :j]
        if d <= tol:
            continue
        L[j, j] = np.sqrt(d)
        L[j + 1:, j] = (S[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]) / L[j, j]
    return L


def _theta_of(S_rel: np.ndarray) -> list[float]:
    """lme4's theta for one term: its relative covariance factor, lower triangle, column-major."""
    L = _chol_lower(S_rel)
    return [float(v) for v in L.T[np.triu_indices(L.shape[0])]]


def _singular(blocks: list[Block]) -> bool:
    """lme4's isSingular: a theta with lower bound 0 (a diagonal of the factor) below 1e-4."""
    return any(float(np.min(np.diag(_chol_lower(b.S_rel)), initial=np.inf)) < SINGULAR_TOL for b in blocks)


def _varcorr(blocks: list[Block], sigma: float) -> list[dict]:
    """The rows of lme4's as.data.frame(VarCorr(fm)): per term the variances, then the
    covariances (lower triangle, column-major; sdcor holds the correlation), then Residual."""
    rows = []
    for grp, b in zip(unique_names([b.group for b in blocks]), blocks):
        V = sigma**2 * np.asarray(b.S_rel, dtype=float)
        sd = np.sqrt(np.maximum(np.diag(V), 0.0))
        for i, c in enumerate(b.cnms):
            rows.append({"grp": grp, "var1": c, "var2": None, "vcov": float(V[i, i]), "sdcor": float(sd[i])})
        for j in range(len(b.cnms)):
            for i in range(j + 1, len(b.cnms)):
                corr = V[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else float("nan")
                rows.append({"grp": grp, "var1": b.cnms[j], "var2": b.cnms[i], "vcov": float(V[i, j]),
                             "sdcor": float(corr)})
    rows.append({"grp": "Residual", "var1": None, "var2": None, "vcov": float(sigma**2), "sdcor": float(sigma)})
    return rows


@dataclass
class Block:
    """One random-effects term as an engine fitted it, in R's terms: the grouping factor's name,
    its level labels, the column names, the relative covariance (Sigma / sigma^2), and per level
    the conditional modes and conditional SDs (levels x columns)."""

    group: str
    levels: list[str]
    cnms: list[str]
    S_rel: np.ndarray
    ranef: np.ndarray
    condsd: np.ndarray


def _ranef_dicts(blocks: list[Block], order: list[str]) -> tuple[dict, dict]:
    """ranef and condvar_sd as FitRecord holds them: factor -> column -> level -> value, factors
    in ``order`` (lme4's flist), columns in term order."""
    ranef: dict = {g: {} for g in order}
    condsd: dict = {g: {} for g in order}
    for b in blocks:
        ranef.setdefault(b.group, {})
        condsd.setdefault(b.group, {})
        for k, c in enumerate(b.cnms):
            ranef[b.group][c] = {lv: float(v) for lv, v in zip(b.levels, b.ranef[:, k])}
            condsd[b.group][c] = {lv: float(v) for lv, v in zip(b.levels, b.condsd[:, k])}
    return ranef, condsd


def _warning_texts(caught) -> list[str]:
    out: list[str] = []
    for w in caught:
        if issubclass(w.category, _QUIET):
            continue
        text = str(w.message)
        if text not in out:
            out.append(text)
    return out


def _record(engine: str, version: str, case: Case, *, n: int, criterion: float, names: list[str],
            beta: np.ndarray, vcov: np.ndarray, sigma: float, blocks: list[Block], flist: list[str],
            fitted: np.ndarray, residuals: np.ndarray, messages: list[str], warns: list[str]) -> FitRecord:
    theta = [t for b in blocks for t in _theta_of(b.S_rel)]
    npar = len(beta) + len(theta) + 1  # lme4's df of logLik: p + ntheta + sigma
    vcov = np.asarray(vcov, dtype=float)
    ranef, condsd = _ranef_dicts(blocks, flist)
    return FitRecord(
        engine=engine,
        engine_version=version,
        formula=case.formula,
        REML=case.REML,
        n=int(n),
        criterion=float(criterion),
        logLik=float(-criterion / 2),
        AIC=float(criterion + 2 * npar),
        BIC=float(criterion + np.log(n) * npar),
        theta=theta,
        beta={nm: float(v) for nm, v in zip(names, beta)},
        beta_se={nm: float(np.sqrt(v)) if v >= 0 else float("nan") for nm, v in zip(names, np.diag(vcov))},
        vcov=vcov.tolist(),
        sigma=float(sigma),
        varcorr=_varcorr(blocks, sigma),
        ranef=ranef,
        condvar_sd=condsd,
        fitted=[float(v) for v in fitted],
        residuals=[float(v) for v in residuals],
        is_singular=_singular(blocks),
        messages=messages,
        warnings=warns,
    )


def _nested_in(inner: np.ndarray, outer: np.ndarray) -> bool:
    """Whether every level of ``inner`` (codes) lies within one level of ``outer``."""
    pairs = np.unique(np.stack([inner, outer]), axis=1)
    return pairs.shape[1] == np.unique(inner).size


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and _nested_in(a, b) and _nested_in(b, a)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= 1e-9 * scale))


# ------------------------------------------------------------------ statsmodels
class StatsmodelsEngine:
    """statsmodels' MixedLM on lme4's model matrices (see the module docstring)."""

    name = "statsmodels"
    exposes_objective = False

    def __init__(self) -> None:
        import statsmodels

        self.version = statsmodels.__version__

    def _plan(self, lmod):
        """Which factor is MixedLM's ``groups``, which term its ``exog_re``, which terms become
        variance components; ``Unsupported`` when the model does not map exactly."""
        terms = lmod.reTrms.terms
        flist = lmod.reTrms.flist
        codes = {g: np.asarray(f.codes) for g, f in flist.items()}
        outer = [g for g in sorted(flist, key=lambda g: flist[g].nlevels)
                 if all(_nested_in(codes[h], codes[g]) for h in flist)]
        if not outer:
            pairs = ", ".join(sorted(flist))
            raise Unsupported(
                f"crossed random effects ({pairs}): statsmodels' MixedLM has one grouping factor; "
                "other factors must be nested in it to become variance components")
        G = outer[0]
        on_G = [t for t in terms if t.group == G]
        vector = [t for t in on_G if t.nc > 1]
        if len(vector) > 1:
            raise Unsupported(f"{len(vector)} vector-valued terms on {G}: MixedLM has one correlated "
                              "random-effects vector per group")
        re_term = vector[0] if vector else on_G[0]
        vc_terms = [t for t in terms if t is not re_term]
        for t in vc_terms:
            if t.nc > 1:
                raise Unsupported(f"vector-valued term ({' + '.join(t.cnms)} | {t.group}) besides "
                                  f"({' + '.join(re_term.cnms)} | {G}): a variance component has one "
                                  "variance, not a covariance matrix")
        return G, re_term, vc_terms

    def fit(self, case: Case, data: pd.DataFrame) -> FitRecord:
        if case.is_glmer:
            raise Unsupported("glmer cases are not scored for this engine")
        from statsmodels.regression.mixed_linear_model import MixedLM, VCSpec

        if case.weights:
            raise Unsupported("prior weights: statsmodels' MixedLM has no weights argument")
        try:
            lmod = pylme.lFormula(case.formula, data, REML=case.REML, weights=case.weights)
        except pylme.PylmeError as exc:
            raise Unsupported(f"pylme.lFormula, which builds the matrices for MixedLM, refused the model "
                              f"({type(exc).__name__}: {exc})") from exc
        G, re_term, vc_terms = self._plan(lmod)

        gcodes = np.asarray(lmod.reTrms.flist[G].codes)
        labels = np.unique(gcodes)  # MixedLM sorts the group labels; these are 0..nl-1
        rows = [np.flatnonzero(gcodes == g) for g in labels]  # MixedLM's rows of each group, in order
        vc_levels = []  # per variance component, per group: the codes of its columns
        mats = []
        for t in vc_terms:
            tc = np.asarray(t.factor.codes)
            lv = [np.unique(tc[r]) for r in rows]
            vc_levels.append(lv)
            mats.append([t.Xi[r, 0][:, None] * (tc[r][:, None] == h[None, :]) for r, h in zip(rows, lv)])
        exog_vc = None
        if vc_terms:
            names = [f"vc{k}" for k in range(len(vc_terms))]
            colnames = [[[str(h) for h in lv] for lv in levs] for levs in vc_levels]
            exog_vc = VCSpec(names, colnames, mats)
        offset = lmod.offset if lmod.offset is not None else 0.0
        endog = np.asarray(lmod.y, dtype=float) - offset

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = MixedLM(endog, np.asarray(lmod.X, dtype=float), gcodes, exog_re=np.asarray(re_term.Xi),
                                exog_vc=exog_vc)
                res = model.fit(reml=case.REML)
                p = lmod.X.shape[1]
                vcov = np.asarray(res.cov_params())[:p, :p]
                re, re_cov = res.random_effects, res.random_effects_cov
                fitted = np.asarray(res.fittedvalues) + offset
                resid = np.asarray(res.resid)
        except Exception as exc:  # noqa: BLE001 - a failed fit is the engine's answer on this case
            return error_record(self.name, self.version, case, exc)

        scale = float(res.scale)
        k_re = re_term.nc
        # Each group's BLUPs and their conditional covariance come as one vector/matrix:
        # exog_re's columns first, then each variance component's columns for that group.
        blocks = []
        for t in lmod.reTrms.terms:
            nl, nc = t.nl, t.nc
            b, sd = np.zeros((nl, nc)), np.zeros((nl, nc))
            if t is re_term:
                S_rel = np.asarray(res.cov_re, dtype=float) / scale
                for g in labels:
                    b[g] = np.asarray(re[g])[:k_re]
                    sd[g] = np.sqrt(np.maximum(np.diag(np.asarray(re_cov[g]))[:k_re], 0.0))
            else:
                k = vc_terms.index(t)
                S_rel = np.array([[float(res.vcomp[k]) / scale]])
                for i, g in enumerate(labels):
                    start = k_re + sum(len(vc_levels[j][i]) for j in range(k))
                    idx = slice(start, start + len(vc_levels[k][i]))
                    b[vc_levels[k][i], 0] = np.asarray(re[g])[idx]
                    sd[vc_levels[k][i], 0] = np.sqrt(np.maximum(np.diag(np.asarray(re_cov[g]))[idx], 0.0))
            blocks.append(Block(t.group, list(t.factor.levels), list(t.cnms), S_rel, b, sd))

        # statsmodels' llf has lme4's constants, for REML and ML alike: on sleepstudy, -2 x
        # MixedLM.loglike at lme4's theta and beta equals lme4's REML criterion / ML deviance to
        # 1e-15 relative (tests/test_external_engines.py), so -2 llf is the criterion, unconverted.
        return _record(
            self.name, self.version, case, n=len(endog), criterion=-2.0 * float(res.llf),
            names=list(lmod.fixef_names), beta=np.asarray(res.fe_params, dtype=float), vcov=vcov,
            sigma=float(np.sqrt(scale)), blocks=blocks, flist=list(lmod.reTrms.flist), fitted=fitted,
            residuals=resid, messages=list(lmod.messages), warns=_warning_texts(caught))


# ------------------------------------------------------------------ mixedlm
class MixedlmEngine:
    """The ``mixedlm`` package's lmer on the case's formula (see the module docstring)."""

    name = "mixedlm"
    exposes_objective = False

    def __init__(self) -> None:
        self.version = importlib.metadata.version("mixedlm")

    def fit(self, case: Case, data: pd.DataFrame) -> FitRecord:
        if case.is_glmer:
            raise Unsupported("glmer cases are not scored for this engine")
        import mixedlm
        from mixedlm.formula.parser import parse_formula

        try:
            parse_formula(case.formula)
        except Exception as exc:
            raise Unsupported(f"mixedlm's formula parser cannot read {case.formula!r}: {exc}") from exc
        out = io.StringIO()
        try:
            with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out):
                warnings.simplefilter("always")
                res = mixedlm.lmer(case.formula, data, REML=case.REML, weights=case.weights)
                vcov = np.asarray(res.vcov(), dtype=float)
                condvar = res.ranef(condVar=True).condVar or {}
                fitted, resid = np.asarray(res.fitted(), dtype=float), np.asarray(res.residuals(), dtype=float)
        except ValueError as exc:
            if "only supported" in str(exc) or "not supported" in str(exc):
                raise Unsupported(f"mixedlm: {exc}") from exc
            return error_record(self.name, self.version, case, exc)
        except Exception as exc:  # noqa: BLE001 - a failed fit is the engine's answer on this case
            return error_record(self.name, self.version, case, exc)
        messages = [line for line in out.getvalue().splitlines() if line.strip()]
        warns = _warning_texts(caught)

        mats = res.matrices
        raw = self._raw_blocks(res, condvar)
        try:
            lmod = pylme.lFormula(case.formula, data, REML=case.REML, weights=case.weights)
        except pylme.PylmeError:
            lmod = None  # lme4 refuses this model; keep mixedlm's own names
        same_rows = lmod is not None and len(lmod.y) == mats.n_obs and _close(np.asarray(mats.y, float), lmod.y)

        names, beta = list(mats.fixed_names), np.asarray(res.beta, dtype=float)
        if same_rows:
            perm = self._match_columns(np.asarray(mats.X, float), np.asarray(lmod.X, float))
            if perm is not None:
                names, beta, vcov = list(lmod.fixef_names), beta[perm], vcov[np.ix_(perm, perm)]
        blocks, flist = raw, list(dict.fromkeys(b.group for b in raw))
        if same_rows:
            mapped = self._map_blocks(res, raw, lmod)
            if mapped is not None:
                blocks, flist = mapped, list(lmod.reTrms.flist)
        return _record(
            self.name, self.version, case, n=mats.n_obs, criterion=float(res.deviance), names=names, beta=beta,
            vcov=vcov, sigma=float(res.sigma), blocks=blocks, flist=flist, fitted=fitted, residuals=resid,
            messages=messages, warns=warns)

    @staticmethod
    def _raw_blocks(res, condvar) -> list[Block]:
        """mixedlm's random-effects structures as Blocks under its own names (an uncorrelated
        structure is kept whole, with a diagonal relative covariance)."""
        from mixedlm.utils.variance import getL

        Ls = getL(res.theta, res.matrices.random_structures, as_blocks=True)
        u = np.asarray(res.u, dtype=float)
        blocks, off = [], 0
        for s, L in zip(res.matrices.random_structures, Ls):
            n = s.n_levels * s.n_terms
            b = u[off:off + n].reshape(s.n_levels, s.n_terms)
            off += n
            cv = condvar.get(s.grouping_factor, {})
            sd = np.column_stack([np.sqrt(np.maximum(np.asarray(cv.get(t, np.full(s.n_levels, np.nan)), float), 0))
                                  for t in s.term_names])
            levels = [lv for lv, _ in sorted(s.level_map.items(), key=lambda kv: kv[1])]
            L = np.asarray(L, dtype=float)
            blocks.append(Block(s.grouping_factor, [str(lv) for lv in levels], list(s.term_names), L @ L.T, b, sd))
        return blocks

    @staticmethod
    def _match_columns(Xm: np.ndarray, Xr: np.ndarray) -> list[int] | None:
        """For each of R's columns the index of the equal mixedlm column, or None."""
        if Xm.shape != Xr.shape:
            return None
        perm = []
        for k in range(Xr.shape[1]):
            hits = [j for j in range(Xm.shape[1]) if j not in perm and _close(Xm[:, j], Xr[:, k])]
            if not hits:
                return None
            perm.append(hits[0])
        return perm

    @staticmethod
    def _map_blocks(res, raw: list[Block], lmod) -> list[Block] | None:
        """mixedlm's blocks re-expressed as lme4's terms (order, names, levels), or None when some
        lme4 term has no exact counterpart."""
        mats = res.matrices
        Z = mats.Z.tocsr()
        n = mats.n_obs
        # candidates: (struct index, column subset) with their per-observation columns of Xi
        cands = []
        off = 0
        for si, s in enumerate(mats.random_structures):
            li = np.asarray(s.level_indices)
            Xi = np.column_stack([np.asarray(Z[np.arange(n), off + li * s.n_terms + j]).ravel()
                                  for j in range(s.n_terms)])
            off += s.n_levels * s.n_terms
            subsets = [list(range(s.n_terms))] if s.correlated else [[j] for j in range(s.n_terms)]
            cands += [(si, J, li, Xi[:, J]) for J in subsets]
        used = set()
        blocks = []
        for t in lmod.reTrms.terms:
            tc = np.asarray(t.factor.codes)
            found = None
            for ci, (si, J, li, Xi) in enumerate(cands):
                if ci in used or len(J) != t.nc or not _same_partition(tc, li):
                    continue
                cols = MixedlmEngine._match_columns(Xi, np.asarray(t.Xi, float))
                if cols is not None:
                    found = ci, cols
                    break
            if found is None:
                return None
            ci, cols = found
            used.add(ci)
            si, J, li, _ = cands[ci]
            sel = [J[c] for c in cols]  # the struct's columns in R's column order
            rb = raw[si]
            level_of = np.zeros(t.nl, dtype=int)  # R's level -> mixedlm's level
            level_of[tc] = li
            blocks.append(Block(t.group, list(t.factor.levels), list(t.cnms), rb.S_rel[np.ix_(sel, sel)],
                                rb.ranef[np.ix_(level_of, sel)], rb.condsd[np.ix_(level_of, sel)]))
        if len(used) != len(cands):
            return None
        return blocks


# ------------------------------------------------------------------ factory
_INSTALL = {"statsmodels": "pip install statsmodels", "mixedlm": "pip install mixedlm"}


def make(name: str):
    """The adapter for an external engine; ``Unsupported`` when its package is not installed."""
    if name not in _INSTALL:
        raise ValueError(f"unknown external engine {name!r}: use statsmodels or mixedlm")
    try:
        if name == "statsmodels":
            import statsmodels.regression.mixed_linear_model  # noqa: F401

            return StatsmodelsEngine()
        import mixedlm  # noqa: F401

        return MixedlmEngine()
    except ImportError as exc:
        raise Unsupported(f"{name} is not installed ({_INSTALL[name]})") from exc
