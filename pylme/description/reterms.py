"""Random-effects terms: Zt, Lambdat and its index Lind, theta, lower, flist, cnms (lme4's mkReTrms).

Each bar term ``(lhs | g)`` contributes, for every level of ``g``, ``nc`` random effects
(one per column of the lhs model matrix). Terms are put in lme4's order: by decreasing
number of levels (``rev(order(nl))``, ties reversed), only when the numbers differ.
The relative covariance factor of a term is lower triangular with ``nc(nc+1)/2``
parameters, column-major; ``Lambdat`` is block diagonal with one block per level.
``LambdaMap`` (``ReTrms.lam``) is the one owner of theta -> Lambda: its values, Lambdat, a term's
block and the rows and columns of a subset of terms; the objectives build their own products of
Lambda from its pattern and ``Lind``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError, ModelError
from .factors import Factor, as_factor, interaction
from .formula import BarTerm, Node, expand_terms
from .model_matrix import DesignSpec, design_spec


@dataclass
class ReTerm:
    """One random-effects term on the fitted rows."""

    bar: BarTerm
    factor: Factor
    spec: DesignSpec  # the lhs model matrix, rebuildable on new data
    Xi: np.ndarray  # n x nc

    @property
    def label(self) -> str:
        return self.bar.label

    @property
    def group(self) -> str:
        return self.bar.group

    @property
    def cnms(self) -> list[str]:
        return self.spec.column_names

    @property
    def nc(self) -> int:
        return self.Xi.shape[1]

    @property
    def nl(self) -> int:
        return self.factor.nlevels

    @property
    def ntheta(self) -> int:
        return self.nc * (self.nc + 1) // 2

    def Zt(self) -> sp.csc_matrix:
        """This term's rows of Zt: row ``level*nc + k``, column ``obs``, value ``Xi[obs, k]``."""
        return stacked_Zt([self])


def stacked_Zt(terms: list[ReTerm]) -> sp.csc_matrix:
    """Zt of terms stacked in order: for each term the Khatri-Rao product of its factor's
    indicators and its model matrix, transposed; built column by column (one column per
    observation, rows increasing), without explicit zeros."""
    rows, vals, offset = [], [], 0
    for t in terms:
        codes = t.factor.codes
        r = offset + codes[:, None] * t.nc + np.arange(t.nc)[None, :]
        rows.append(np.where(codes[:, None] >= 0, r, -1))
        vals.append(t.Xi)
        offset += t.nl * t.nc
    R, V = np.hstack(rows), np.hstack(vals).astype(float)
    keep = (R >= 0) & (V != 0)
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
    return sp.csc_matrix((V[keep], R[keep], indptr), shape=(offset, R.shape[0]))


@dataclass
class ReTrms:
    """All random-effects terms of a model, in lme4's order, and the derived structures."""

    terms: list[ReTerm]
    Zt: sp.csc_matrix
    Lambdat: sp.csc_matrix  # at theta0
    Lind: np.ndarray  # 0-based theta index of each stored entry of Lambdat
    theta0: np.ndarray
    lower: np.ndarray
    flist: dict[str, Factor]
    asgn: list[int]  # for each term, its position in flist

    @property
    def Gp(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum([t.nl * t.nc for t in self.terms])])

    @property
    def cnms_list(self) -> list[tuple[str, list[str]]]:
        return [(t.group, t.cnms) for t in self.terms]

    @property
    def theta_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum([t.ntheta for t in self.terms])])

    @cached_property
    def lam(self) -> "LambdaMap":
        """The map theta -> Lambda of these terms."""
        return LambdaMap(self.Lambdat, self.Lind, tuple(t.nc for t in self.terms), tuple(t.nl for t in self.terms))


@dataclass(frozen=True)
class LambdaMap:
    """theta -> Lambda (lme4's ``Lambdat@x <- theta[Lind]``): Lambdat's fixed pattern (block
    diagonal, upper triangular, CSC), the 0-based theta index of each stored entry, and the terms'
    numbers of columns and levels (in lme4's term order). Nothing is dropped when a theta is 0: the
    pattern is the same at every theta."""

    pattern: sp.csc_matrix
    Lind: np.ndarray
    ncs: tuple[int, ...]
    nls: tuple[int, ...]

    @property
    def nnz(self) -> int:
        return int(self.Lind.size)

    @property
    def ntheta(self) -> int:
        return int(sum(nc * (nc + 1) // 2 for nc in self.ncs))

    @property
    def theta_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum([nc * (nc + 1) // 2 for nc in self.ncs])]).astype(int)

    @property
    def Gp(self) -> np.ndarray:
        """Where each term's random effects start in b (and its end)."""
        return np.concatenate([[0], np.cumsum([nc * nl for nc, nl in zip(self.ncs, self.nls)])]).astype(int)

    def factor_columns(self) -> list[tuple[int, np.ndarray]]:
        """For each column of each term's factor, the theta index of its diagonal entry and those
        of the entries below it. Negating the entries of a column leaves the covariance LL' as it
        is; where the diagonal entry is 0, negating the entries below it alone does too: the
        mirror that pylme.fitting.polish tries at a boundary end."""
        out, off = [], 0
        for nc in self.ncs:
            for j in range(nc):
                out.append((off, np.arange(off + 1, off + nc - j)))
                off += nc - j
        return out

    def values(self, theta: np.ndarray) -> np.ndarray:
        """Lambdat's stored values at theta (in its storage order)."""
        return np.asarray(theta, dtype=float)[self.Lind]

    def Lambdat(self, theta: np.ndarray) -> sp.csc_matrix:
        """Lambdat at theta, on the fixed pattern."""
        out = self.pattern.copy()
        out.data = self.values(theta)
        return out

    def block(self, theta: np.ndarray, k: int) -> np.ndarray:
        """Term k's lower-triangular relative covariance factor (nc x nc) at theta."""
        off = self.theta_offsets
        return lambda_block(np.asarray(theta, dtype=float)[off[k] : off[k + 1]], self.ncs[k])

    def blocks(self, theta: np.ndarray) -> list[np.ndarray]:
        """Every term's factor at theta, in term order."""
        return [self.block(theta, k) for k in range(len(self.ncs))]

    def sub(self, keep: list[int]) -> "LambdaMap":
        """The map of terms ``keep`` alone: their rows and columns of Lambdat, in the order of
        ``keep``, with their entries' theta indices (into the whole theta)."""
        Gp = self.Gp
        idx = np.concatenate([np.arange(Gp[k], Gp[k + 1]) for k in keep] + [np.zeros(0, int)])
        marker = self.pattern.copy()
        marker.data = np.arange(marker.nnz, dtype=float) + 1.0
        sub = marker[idx][:, idx].tocsc()
        sub.sort_indices()
        pos = sub.data.astype(np.int64) - 1
        sub.data = np.ones(pos.size)  # a pattern: its values are set per theta
        return LambdaMap(sub, self.Lind[pos], tuple(self.ncs[k] for k in keep), tuple(self.nls[k] for k in keep))


def theta_positions(nc: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a term's theta in its lower-triangular relative covariance
    factor: the lower triangle column by column, lme4's order."""
    cols, rows = np.triu_indices(nc)
    return rows, cols


def lambda_block(theta_term: np.ndarray, nc: int) -> np.ndarray:
    """A term's lower-triangular relative covariance factor (nc x nc) from its thetas."""
    L = np.zeros((nc, nc))
    L[theta_positions(nc)] = theta_term
    return L


def grouping_factor(node: Node, frame: pd.DataFrame) -> Factor:
    """Evaluate a grouping expression: a column (any dtype) or ``a:b`` interactions."""
    if node.op == "name":
        return as_factor(frame[node.text])
    if node.op == "paren":
        return grouping_factor(node.args[0], frame)
    return interaction([grouping_factor(node.args[0], frame), grouping_factor(node.args[1], frame)])


def mk_reterms(bars: list[BarTerm], frame: pd.DataFrame, states: dict | None = None,
               parts: list[tuple[Factor, DesignSpec]] | None = None) -> ReTrms:
    """Build the random-effects structures from the expanded bar terms (lme4's mkReTrms);
    ``states``: what data-dependent transforms learned (pylme.description.modelframe); ``parts``: the terms'
    grouping factors and codings if found already (``reterm_parts``)."""
    if not bars:
        raise ModelError("No random effects terms specified in formula")
    parts = reterm_parts(bars, frame, states) if parts is None else parts
    terms = [ReTerm(bar, factor, spec, spec.matrix(frame)) for bar, (factor, spec) in zip(bars, parts)]
    nl = [t.nl for t in terms]
    if any(b > a for a, b in zip(nl, nl[1:])):
        ascending = sorted(range(len(nl)), key=nl.__getitem__)
        terms = [terms[i] for i in reversed(ascending)]
    Zt = stacked_Zt(terms)
    Lambdat, Lind, lower = _lambdat_template(terms)
    theta0 = np.where(np.isfinite(lower), 1.0, 0.0)
    flist: dict[str, Factor] = {}
    for t in terms:
        flist.setdefault(t.group, t.factor)
    asgn = [list(flist).index(t.group) for t in terms]
    Lambdat.data = theta0[Lind]
    return ReTrms(terms, Zt, Lambdat, Lind, theta0, lower, flist, asgn)


def reterm_parts(bars: list[BarTerm], frame: pd.DataFrame, states: dict | None) -> list[tuple[Factor, DesignSpec]]:
    """Each term's grouping factor and the coding of its left-hand side: the sizes of Z, known
    before Z is made."""
    parts = []
    for bar in bars:
        factor = grouping_factor(bar.group_node, frame)
        if factor.nlevels == 0:
            raise DataError(f"Invalid grouping factor specification, {bar.group}")
        spec = design_spec(expand_terms(bar.lhs), frame, states)
        if not spec.column_names:
            raise ModelError(f"random-effects term ({bar.label}) has no columns")
        parts.append((factor, spec))
    return parts


def _lambdat_template(terms: list[ReTerm]) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray]:
    """Block-diagonal upper-triangular pattern of Lambdat, the theta index of each entry
    (in CSC storage order, as lme4's Lind), and the lower bounds of theta."""
    rows, counts, idx, lower = [], [], [], []
    offset, th_off = 0, 0
    for t in terms:
        nc, nl = t.nc, t.nl
        # theta numbering of the lower triangle of Lambda, column-major
        tri = {}
        for j in range(nc):
            for i in range(j, nc):
                tri[(i, j)] = th_off + len(tri)
                lower.append(0.0 if i == j else -np.inf)
        # column i of a level's block of Lambdat holds Lambda[i, j] in rows j = 0..i
        local_rows = np.concatenate([np.arange(i + 1) for i in range(nc)])
        local_idx = np.array([tri[(i, j)] for i in range(nc) for j in range(i + 1)])
        base = offset + np.arange(nl) * nc
        rows.append((base[:, None] + local_rows[None, :]).ravel())
        counts.append(np.tile(np.arange(1, nc + 1), nl))
        idx.append(np.tile(local_idx, nl))
        offset += nl * nc
        th_off += len(tri)
    Lind = np.concatenate(idx).astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))])
    lam = sp.csc_matrix((np.zeros(Lind.size), np.concatenate(rows), indptr), shape=(offset, offset))
    return lam, Lind, np.array(lower)
