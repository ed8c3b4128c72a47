"""Many responses of one design optimised together (``lmer_many(engine="lockstep")``).

For one set of rows the design is shared: X, Z, their Gram blocks; a response adds only its
cross-products Z'r and r'r (``r``: the weighted response made orthogonal to X, as in pylme.objectives.dense).
At any theta the criterion's factor differs between responses only in its last row, so the
criteria of thousands of responses, each at its own theta, are evaluated in a few vectorised numpy
operations (``LockstepCriterion``), and all the responses are optimised in lockstep by projected
Newton steps on lme4's finite-difference derivatives (``deriv12``'s points, all evaluated in one
batch) with a backtracking line search (``optimise``), from lme4's start, to the optimum.

The factor is blocked as in pylme.objectives.blocked: block 1 is the first term (the most levels), a scalar
``(1 | g)``, whose block ``theta1^2 Z1'Z1 + I`` is diagonal; its Schur complement leaves a small
dense system in the other terms, X and r, factored by one batched Cholesky. The criterion is the
dense and CHOLMOD objectives' to rounding. Supported: every term scalar (``(1 | g)``), Lambda
diagonal, a small remaining block; other models go through lmer's own steps (pylme.scaleout.many).

Where lmer's BOBYQA stops within its tolerances of the optimum (theta up to 2e-4 from it, the
criterion up to 1e-8 above it, which pylme.fitting.polish certifies), the Newton iterations go on to the
optimum itself: the criterion is never above lmer's and within 1e-10 relative of it; theta equals
lmer's to the precision lmer's own end has. A response whose end is not certified by
pylme.fitting.polish's rules (``analyse``), or whose values break the batch (a constant, say), is returned
as not done, for lmer's own steps. ``satterthwaite`` gives lmerTest's df at the optimum, the
numerical derivatives of pylme.inference.satterthwaite evaluated for all the responses together.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..fitting.convergence import Derivs
from ..fitting.polish import ROUNDING_ULPS, analyse
from ..inference.satterthwaite import difference_steps, eigen_warnings, richardson
from ..objectives.design import LmmDesign
from ..objectives.response import CriterionTerms, LmerResp

#: deriv12's step (lme4's), and the Newton iterations allowed before a response is left to lmer
DELTA = 1e-4
MAX_ITER = 40
#: the Newton decrement below which a response is at its optimum (relative to max(1, |criterion|)):
#: far below pylme.fitting.polish's certificate (1e-8), at the precision of the finite differences
DECREMENT_TOL = 1e-13
#: below this decrement (relative, as above) the next derivatives are deriv12's own (the Newton
#: steps before are taken on a cheaper Hessian)
NEAR_TOL = 1e-4
#: the line search's step lengths, and the largest step (in theta's units) a Newton step may take
LENGTHS = (1.0, 0.5, 0.25, 0.1, 0.03, 0.01, 1e-3)
MAX_STEP = 1.0
#: lme4's boundary.tol: a theta this close to its bound is tried at the bound
BOUNDARY_TOL = 1e-5
#: the largest dense block left after block 1 (the other terms' random effects, X and r)
MAX_BLOCK = 120
#: the size of a slice of a batch's factors (m2 x m2 x evaluations, in bytes): the slice's arrays
#: stay in the cache and are reused by the allocator rather than mapped afresh (page faults
#: tripled the cost of a batch of 5,000 evaluations)
SLICE_BYTES = 1.2e6


def supported(design: LmmDesign) -> bool:
    """Whether the lockstep criterion fits the design: every term scalar (Lambda diagonal, one theta
    per term) and the block after the first term small."""
    lam = design.lam
    pattern = lam.pattern
    diagonal = pattern.nnz == design.q and np.array_equal(pattern.indices, np.arange(design.q))
    return (diagonal and all(nc == 1 for nc in lam.ncs) and design.q - lam.nls[0] + design.p + 1 <= MAX_BLOCK
            and design.p > 0)


@dataclass
class Factor:
    """The batched factor at each response's theta (the batch on the last axis): the Cholesky
    factor of the Schur complement of block 1 (block 2, X, r), and the criterion's terms."""

    L: np.ndarray  # (m2, m2, k), lower triangular in its first two axes
    terms: CriterionTerms


class LockstepCriterion:
    """The criterion of many responses (columns of ``Y``, on the design's rows), each at its own theta.

    Block 1's levels are grouped by their value of diag(Z1'WZ1) (one group in a balanced design),
    so that the Schur complement ``A - sum_i w_i a_i a_i'``, ``w_i = theta1^2 / (1 + theta1^2 d_i)``,
    is a sum over the groups of cross-products summed once. Arrays of the batch have it on the
    last axis, so that every operation is elementwise over responses: a response's arithmetic does
    not depend on the others in its batch (chunking does not change the table)."""

    def __init__(self, design: LmmDesign, resp: LmerResp, Y: np.ndarray):
        self.design, self.resp = design, resp
        lam = design.lam
        q, p = design.q, design.p
        self.q1 = q1 = lam.nls[0]
        self.q2 = q2 = q - q1
        self.p = p
        self.m2 = m2 = q2 + p + 1
        Ztw = design.Ztw.tocsr()
        Z1, Z2 = Ztw[:q1], Ztw[q1:]
        d1 = np.asarray(Z1.multiply(Z1).sum(axis=1)).ravel()
        self.dv, group, self.count = np.unique(d1, return_inverse=True, return_counts=True)
        member = sp.csr_matrix((np.ones(q1), (group, np.arange(q1))), shape=(self.dv.size, q1))
        A1b = np.hstack([(Z1 @ Z2.T).toarray(), design.ZtX[:q1]])  # block 1 against block 2 and X
        outer = np.einsum("ia,ib->iab", A1b, A1b).reshape(q1, -1)
        self.outer = np.asarray(member @ outer).reshape(-1, m2 - 1, m2 - 1)  # per group, summed
        Abb = np.empty((m2 - 1, m2 - 1))
        Abb[:q2, :q2] = (Z2 @ Z2.T).toarray()
        Abb[:q2, q2:] = design.ZtX[q1:]
        Abb[q2:, :q2] = design.ZtX[q1:].T
        Abb[q2:, q2:] = design.XtX
        self.Abb = Abb[:, :, None]
        self.col_theta = lam.Lind[q1:]  # the theta scaling each column of block 2
        # the products with Y are einsum's loops, not BLAS: small products that a threaded BLAS
        # makes slow on a busy machine, and per response the same whatever the batch
        Yw = (Y - resp.offset[:, None]) * resp.sqrtw[:, None]
        Q, Rx = np.linalg.qr(design.Xw)
        QtY = np.einsum("ip,ik->pk", Q, Yw)
        R = Yw - np.einsum("ip,pk->ik", Q, QtY)
        self.beta0 = np.einsum("ap,pk->ak", np.linalg.inv(Rx), QtY)  # the least-squares part of beta
        zr = np.asarray(Ztw @ R)
        z1 = zr[:q1]
        # per group: sum_i z1_i a_i (groups, m2 - 1, k) and sum_i z1_i^2 (groups, k)
        self.za = np.stack([np.einsum("ia,ik->ak", A1b[member[v].indices], z1[member[v].indices])
                            for v in range(self.dv.size)])
        self.zz = np.asarray(member @ (z1 * z1))
        self.z2 = zr[q1:]
        self.rr = np.einsum("ik,ik->k", R, R)
        self.yy = np.einsum("ik,ik->k", Yw, Yw)
        self._work: _Work | None = None

    def factor(self, idx: np.ndarray, thetas: np.ndarray, work: "_Work | None" = None) -> Factor:
        """The factor for the responses ``idx``, each at its row of ``thetas``; where it breaks down
        (not positive definite) its terms are NaN. The arrays of the size of the factor are
        ``work``'s (allocated here if None): no large array is allocated per call."""
        q2, p, m2, k = self.q2, self.p, self.m2, idx.size
        work = work or _Work(m2, k, self.dv.size)
        B, tmp, col, za = work.B[..., :k], work.tmp[..., :k], work.col[..., :k], work.za[..., :k]
        t1s = thetas[:, 0] ** 2
        w = t1s / (1.0 + self.dv[:, None] * t1s)  # (groups, k)
        # einsum's loops sum over the groups in one order for every response (BLAS might not)
        np.einsum("vab,vk->abk", self.outer, w, out=tmp[:-1, :-1])
        np.subtract(self.Abb, tmp[:-1, :-1], out=B[:-1, :-1])
        np.take(self.za, idx, axis=2, out=za, mode="clip")
        np.einsum("vak,vk->ak", za, w, out=col[:-1])
        np.negative(col[:-1], out=B[-1, :-1])
        B[-1, :q2] += self.z2[:, idx]
        B[-1, -1] = self.rr[idx] - np.einsum("vk,vk->k", self.zz[:, idx], w)
        s = thetas[:, self.col_theta].T
        B[:q2] *= s[:, None, :]
        B[:, :q2] *= s[None, :, :]
        diag = np.arange(q2)
        B[diag, diag] += 1.0
        ld = np.einsum("v,vk->k", self.count, np.log1p(self.dv[:, None] * t1s))
        with np.errstate(divide="ignore", invalid="ignore"):
            L = _cholesky_in_place(B, tmp, col)
            logd = [np.log(L[j, j]) for j in range(m2 - 1)]
            terms = CriterionTerms(ld + 2.0 * sum(logd[:q2], np.zeros(k)), 2.0 * sum(logd[q2:], np.zeros(k)),
                                   L[-1, -1] ** 2)
        return Factor(L, terms)

    def __call__(self, idx: np.ndarray, thetas: np.ndarray) -> np.ndarray:
        """The criterion (REML or ML, the response's) of the responses ``idx`` at ``thetas``."""
        terms = self.terms(idx, thetas)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self.resp.deviance(terms, self.resp.REML, self.p)
        return np.where(np.isfinite(out), out, np.inf)

    def _slices(self, idx: np.ndarray, thetas: np.ndarray):
        """(slice, factor) over the batch in slices of SLICE_BYTES, on one workspace: each factor
        is to be read before the next is made."""
        size = max(32, int(SLICE_BYTES / (8 * self.m2**2)))
        if self._work is None:
            self._work = _Work(self.m2, size, self.dv.size)
        for a in range(0, idx.size, size):
            part = slice(a, a + size)
            yield part, self.factor(idx[part], thetas[part], self._work)

    def terms(self, idx: np.ndarray, thetas: np.ndarray) -> CriterionTerms:
        """ldL2, ldRX2 and pwrss of the responses ``idx`` at ``thetas``."""
        out = [np.empty(idx.size) for _ in range(3)]
        for part, fac in self._slices(idx, thetas):
            for o, v in zip(out, (fac.terms.ldL2, fac.terms.ldRX2, fac.terms.pwrss)):
                o[part] = v
        return CriterionTerms(*out)

    def vcov_unscaled(self, idx: np.ndarray, thetas: np.ndarray) -> np.ndarray:
        """(RX'RX)^-1 of the responses ``idx`` at ``thetas``, (k, p, p): vcov(beta) / sigma^2."""
        q2, p = self.q2, self.p
        out = np.empty((idx.size, p, p))
        for part, fac in self._slices(idx, thetas):
            LXi = np.linalg.inv(np.tril(fac.L[q2 : q2 + p, q2 : q2 + p].transpose(2, 0, 1)))
            out[part] = np.einsum("kji,kjl->kil", LXi, LXi)
        return out

    def estimates(self, idx: np.ndarray, thetas: np.ndarray) -> dict[str, np.ndarray]:
        """At the optimum: the criterion, sigma, beta and their standard errors (lme4's vcov), one
        row per response."""
        fac = self.factor(idx, thetas)
        q2, p, n = self.q2, self.p, self.resp.n
        LXi = np.linalg.inv(np.tril(fac.L[q2 : q2 + p, q2 : q2 + p].transpose(2, 0, 1)))  # (k, p, p)
        beta = self.beta0[:, idx].T + np.einsum("kji,jk->ki", LXi, fac.L[-1, q2 : q2 + p])
        sigma = np.sqrt(fac.terms.pwrss / (n - p if self.resp.REML else n))
        se = sigma[:, None] * np.sqrt(np.einsum("kji,kji->ki", LXi, LXi))
        crit = self.resp.deviance(fac.terms, self.resp.REML, p)
        return {"criterion": crit, "sigma": sigma, "beta": beta, "se": se}


class _Work:
    """The arrays a slice of factors is computed in (batch on the last axis): allocated once per
    criterion, as a fresh large array costs page faults on every call (in Dask's workers, whose
    allocator returns freed memory at once, every time)."""

    def __init__(self, m2: int, size: int, groups: int):
        self.B = np.empty((m2, m2, size))
        self.tmp = np.empty((m2, m2, size))
        self.col = np.empty((m2, size))
        self.za = np.empty((groups, m2 - 1, size))


def _cholesky_in_place(B: np.ndarray, tmp: np.ndarray, col: np.ndarray) -> np.ndarray:
    """B's lower Cholesky factors in place, for a stack of matrices with the stack on the last axis,
    column by column, each step elementwise over the stack (``tmp`` and ``col``: work arrays of
    B's shape and of one column's); a matrix that is not positive definite gets NaNs. Only the
    lower triangle is read and written."""
    m = B.shape[0]
    for j in range(m):
        c = col[: m - j]
        if j:
            t = tmp[: m - j, :j]
            np.multiply(B[j:, :j], B[j, :j], out=t)
            np.sum(t, axis=1, out=c)
            np.subtract(B[j:, j], c, out=c)
        else:
            c[...] = B[j:, j]
        np.sqrt(c[0], out=B[j, j])
        np.divide(c[1:], B[j, j], out=B[j + 1 :, j])
    return B


def deriv_offsets(n: int, exact: bool = True, delta: float = DELTA) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """deriv12's points around theta (without theta itself), in its order, and its pairs; not
    ``exact``: one point per pair, (+delta, +delta), instead of four."""
    eye = np.eye(n) * delta
    pairs = [(i, j) for j in range(n) for i in range(j)]
    signs = ((1, 1), (1, -1), (-1, 1), (-1, -1)) if exact else ((1, 1),)
    points = [s * eye[j] for j in range(n) for s in (1, -1)]
    points += [si * eye[i] + sj * eye[j] for i, j in pairs for si, sj in signs]
    return np.array(points).reshape(-1, n), pairs


def derivs(crit: LockstepCriterion, idx: np.ndarray, thetas: np.ndarray, f: np.ndarray, exact: bool = True,
           delta: float = DELTA) -> tuple[np.ndarray, np.ndarray]:
    """deriv12's gradient and Hessian (central differences, step 1e-4) of each response at its
    theta, all points in one batch: (k, n) and (k, n, n). Not ``exact``: the Hessian's off-diagonal
    by forward differences (n (n - 1) / 2 points where deriv12 takes four times as many), which the
    Newton steps far from the optimum need no better."""
    k, n = thetas.shape
    offsets, pairs = deriv_offsets(n, exact, delta)
    npts = len(offsets)
    points = (thetas[:, None, :] + offsets[None]).reshape(-1, n)
    values = crit(np.repeat(idx, npts), points).reshape(k, npts)
    fadd, fsub = values[:, : 2 * n : 2], values[:, 1 : 2 * n : 2]
    g = (fadd - fsub) / (2 * delta)
    H = np.zeros((k, n, n))
    diag = np.arange(n)
    H[:, diag, diag] = (fadd - 2 * f[:, None] + fsub) / delta**2
    quads = values[:, 2 * n :].reshape(k, len(pairs), 4 if exact else 1)
    for c, (i, j) in enumerate(pairs):
        if exact:
            pp, pm, mp, mm = quads[:, c].T
            H[:, i, j] = H[:, j, i] = (pp - pm - mp + mm) / (2 * delta) ** 2
        else:
            H[:, i, j] = H[:, j, i] = (quads[:, c, 0] - fadd[:, i] - fadd[:, j] + f) / delta**2
    return g, H


@dataclass
class LockstepResult:
    """Each response's end: theta, criterion, derivatives there, and whether it is done (certified)."""

    theta: np.ndarray
    fval: np.ndarray
    gradient: np.ndarray
    Hessian: np.ndarray
    done: np.ndarray  # certified optimum; the others are left to lmer's steps


def optimise(crit: LockstepCriterion, start: np.ndarray, lower: np.ndarray) -> LockstepResult:
    """Projected Newton from ``start`` (one row per response) on deriv12's derivatives, all
    responses in lockstep; each stops at its optimum (Newton decrement below DECREMENT_TOL, no
    bound to release: certified by pylme.fitting.polish's rules, which are weaker) or when no step lowers
    its criterion by more than rounding (then ``analyse`` decides). A theta that ends within
    boundary.tol of its bound is set to the bound where the criterion is no higher there (lme4's
    boundary check, rounding allowed: an even criterion flat at 0 is approached only linearly)."""
    k, n = start.shape
    theta = np.maximum(start.astype(float), lower)
    f = crit(np.arange(k), theta)
    g, H = np.zeros((k, n)), np.zeros((k, n, n))
    optimum = np.zeros(k, bool)  # at its optimum, with deriv12's derivatives there
    stalled = np.zeros(k, bool)  # no step lowers the criterion: analyse decides
    near = np.zeros(k, bool)  # close enough to the optimum for deriv12's derivatives
    exact = np.zeros(k, bool)  # g and H are deriv12's
    run = np.flatnonzero(np.isfinite(f))
    for _ in range(MAX_ITER):
        if not run.size:
            break
        th, fr = theta[run], f[run]
        exact[run] = near[run]
        for kind in (True, False):
            part = exact[run] == kind
            if part.any():
                g[run[part]], H[run[part]] = derivs(crit, run[part], th[part], fr[part], exact=kind)
        step, decrement, released = _newton_step(th, fr, g[run], H[run], lower)
        scale = np.maximum(1.0, np.abs(fr))
        at_end = exact[run] & (decrement < DECREMENT_TOL * scale) & ~released
        near[run] = decrement < NEAR_TOL * scale
        optimum[run[at_end]] = True
        search = run[~at_end]
        found, theta[search], f[search] = _line_search(crit, search, theta[search], f[search], step[~at_end], lower)
        stalled[search[~found]] = True
        run = search[found]
    moved = _boundary_check(crit, theta, f, optimum | stalled, lower)
    again = np.union1d(moved, np.flatnonzero(stalled & ~exact))  # no deriv12 derivatives at their end
    if again.size:
        g[again], H[again] = derivs(crit, again, theta[again], f[again])
    done = optimum.copy()
    done[moved] = False
    for j in np.flatnonzero((stalled | (optimum & ~done))):
        done[j] = analyse(theta[j], f[j], Derivs(g[j], H[j], theta[j]), lower).certified
    return LockstepResult(theta, f, g, H, done)


def _boundary_check(crit: LockstepCriterion, theta: np.ndarray, f: np.ndarray, ended: np.ndarray,
                    lower: np.ndarray) -> np.ndarray:
    """lme4's boundary check on the responses that ended: each theta within BOUNDARY_TOL of its
    bound is set to it where the criterion is not higher there (by more than rounding); theta and
    f are updated in place. Returns the responses moved."""
    moved = []
    for i in range(theta.shape[1]):
        near = np.flatnonzero(ended & (theta[:, i] > lower[i]) & (theta[:, i] - lower[i] < BOUNDARY_TOL))
        if not near.size:
            continue
        trial = theta[near].copy()
        trial[:, i] = lower[i]
        value = crit(near, trial)
        ok = value <= f[near] + _rounding(f[near])
        theta[near[ok]], f[near[ok]] = trial[ok], value[ok]
        moved.append(near[ok])
    return np.unique(np.concatenate(moved)) if moved else np.zeros(0, int)


def _newton_step(theta: np.ndarray, f: np.ndarray, g: np.ndarray, H: np.ndarray, lower: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The projected Newton step of each response (absolute eigenvalues where the Hessian is not
    positive definite), its Newton decrement, and whether a bound is to be released. A theta at its
    bound of 0 (a scalar term's, where the criterion is even, so deriv12's gradient is 0) is
    released where the criterion decreases off the bound (its second difference is negative)."""
    k, n = theta.shape
    diag = np.arange(n)
    at_lower = theta <= lower
    Hd = H[:, diag, diag]
    release = at_lower & (Hd * DELTA**2 / 2 < -_rounding(f)[:, None])
    active = at_lower & ~release
    gf = np.where(active, 0.0, g)
    Hf = np.where(active[:, :, None] | active[:, None, :], 0.0, (H + H.transpose(0, 2, 1)) / 2)
    Hf[:, diag, diag] = np.where(active, 1.0, Hf[:, diag, diag])
    evals, evecs = np.linalg.eigh(Hf)
    top = np.max(np.abs(evals), axis=1, keepdims=True)
    floor = np.maximum(1e-8, 1e-9 * top)
    curv = np.maximum(np.abs(evals), floor)
    coef = np.einsum("kji,kj->ki", evecs, gf)
    step = -np.einsum("kij,kj->ki", evecs, coef / curv)
    decrement = np.sum(coef**2 / curv, axis=1) / 2
    decrement = np.where(np.all(evals > floor, axis=1), decrement, np.inf)
    step = np.where(active, 0.0, step)
    step = np.where(release, np.maximum(step, 0.1), step)
    big = np.max(np.abs(step), axis=1, keepdims=True)
    step *= np.minimum(1.0, MAX_STEP / np.maximum(big, 1e-300))
    return step, decrement, release.any(axis=1)


def _rounding(f: np.ndarray) -> np.ndarray:
    """pylme.fitting.polish's rounding of each criterion: changes smaller than this are noise."""
    return ROUNDING_ULPS * np.finfo(float).eps * np.maximum(1.0, np.abs(f))


def _line_search(crit: LockstepCriterion, idx: np.ndarray, theta: np.ndarray, f: np.ndarray, step: np.ndarray,
                 lower: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each response, the first projected point along its step (LENGTHS) that lowers its
    criterion by more than rounding: (found, theta, criterion)."""
    found = np.zeros(idx.size, bool)
    new_theta, new_f = theta.copy(), f.copy()
    tol = _rounding(f)
    for t in LENGTHS:
        todo = np.flatnonzero(~found)
        if not todo.size:
            break
        trial = np.maximum(theta[todo] + t * step[todo], lower)
        value = crit(idx[todo], trial)
        better = value < f[todo] - tol[todo]
        hit = todo[better]
        found[hit] = True
        new_theta[hit], new_f[hit] = trial[better], value[better]
    return found, new_theta, new_f


def start_values(lmod, Y: np.ndarray) -> np.ndarray:
    """lme4's start for each response (columns of Y): mkLmerDevfun's variance ratios of the
    grouping factors' means (pylme.objectives.lformula.get_start), else theta0."""
    rt = lmod.reTrms
    k = Y.shape[1]
    theta = np.tile(rt.theta0, (k, 1))
    if not (all(t.cnms == ["(Intercept)"] for t in rt.terms) and len(rt.flist) == len(rt.lower)):
        return theta
    v = np.empty((k, len(rt.flist)))
    n = Y.shape[0]
    for j, f in enumerate(rt.flist.values()):
        member = sp.csr_matrix((np.ones(n), (f.codes, np.arange(n))), shape=(f.nlevels, n))
        means = (np.asarray(member @ Y) / np.bincount(f.codes, minlength=f.nlevels)[:, None])[f.codes]
        v[:, j] = np.var(means, axis=0, ddof=1)
    v_e = np.var(Y, axis=0, ddof=1) - v.sum(axis=1)
    ok = np.isfinite(v_e) & (v_e > 0)
    theta[ok] = np.sqrt(v[ok] / v_e[ok, None])
    return theta


# ---------------------------------------------------------------- Satterthwaite's df
def satterthwaite(crit: LockstepCriterion, idx: np.ndarray, theta: np.ndarray, sigma: np.ndarray,
                  tol: float = 1e-8) -> tuple[np.ndarray, list[list[str]]]:
    """lmerTest's Satterthwaite df of each fixed effect, for the responses ``idx`` at their optimum
    (``theta``, ``sigma``): pylme.inference.satterthwaite's computation (numDeriv's Richardson-extrapolated
    Hessian of the deviance in varpar = (theta, sigma), the Jacobian of vcov(beta)), every point
    of every response in one batch. Returns df (k, p) and each response's warnings about the
    Hessian (lmerTest's)."""
    k, n = theta.shape
    N, r = n + 1, 4
    x = np.column_stack([theta, sigma])
    nobs, p, REML = crit.resp.n, crit.p, crit.resp.REML

    def deviance(points: np.ndarray) -> np.ndarray:  # (k, m, N) -> (k, m)
        m = points.shape[1]
        flat = points.reshape(-1, N)
        t = crit.terms(np.repeat(idx, m), flat[:, :n])
        s2 = flat[:, -1] ** 2
        dev = t.ldL2 + t.pwrss / s2 + nobs * np.log(2.0 * np.pi * s2)
        if REML:
            dev += t.ldRX2 - p * np.log(2.0 * np.pi * s2)
        return dev.reshape(k, m)

    H = _varpar_hessian(deviance, x, r)
    values, vectors = np.linalg.eigh(H)
    values, vectors = values[:, ::-1], vectors[:, :, ::-1]  # decreasing, as R's eigen()
    pos = values > tol
    inv = np.where(pos, 1.0 / np.where(pos, values, 1.0), 0.0)
    A = 2.0 * np.einsum("kia,ka,kja->kij", vectors, inv, vectors)
    U = crit.vcov_unscaled(idx, theta)
    V = sigma[:, None, None] ** 2 * U
    h0 = difference_steps(x, 1e-4, 1e-4)
    grads = []  # per varpar, d diag(vcov) / d varpar by Richardson-extrapolated central differences
    for i in range(N):
        approx = []
        for j in range(r):
            h = h0[:, i] / 2.0**j
            if i < n:
                step = np.zeros((k, n))
                step[:, i] = h
                both = crit.vcov_unscaled(np.concatenate([idx, idx]), np.concatenate([theta + step, theta - step]))
                plus, minus = sigma[:, None, None] ** 2 * both[:k], sigma[:, None, None] ** 2 * both[k:]
            else:
                plus, minus = (sigma + h)[:, None, None] ** 2 * U, (sigma - h)[:, None, None] ** 2 * U
            approx.append(np.diagonal(plus - minus, axis1=1, axis2=2) / (2.0 * h[:, None]))
        grads.append(richardson(approx, r))
    g = np.stack(grads, axis=2)  # (k, p, N)
    var = np.diagonal(V, axis1=1, axis2=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = 2.0 * var**2 / np.einsum("kpa,kab,kpb->kp", g, A, g)
    notes = [eigen_warnings(values[j], tol) if np.any(values[j] < tol) else [] for j in range(k)]
    return df, notes


def _varpar_hessian(f, x: np.ndarray, r: int, d: float = 0.1, eps: float = 1e-4) -> np.ndarray:
    """pylme.inference.satterthwaite.numeric_hessian for each row of ``x`` (k, N), ``f`` evaluating a
    (k, m, N) stack of points at once: all the points in one call."""
    k, N = x.shape
    h0 = difference_steps(x, d, eps)
    pairs = [(i, j) for i in range(N) for j in range(i)]
    points, hs = [x[:, None, :]], []
    for i, j in [(i, i) for i in range(N)] + pairs:
        for s in range(r):
            h = h0 / 2.0**s
            step = np.zeros((k, N))
            step[:, i], step[:, j] = h[:, i], h[:, j]
            points += [(x + step)[:, None, :], (x - step)[:, None, :]]
            hs.append(h)
    values = f(np.concatenate(points, axis=1))
    f0, plus, minus = values[:, 0], values[:, 1::2], values[:, 2::2]
    H = np.zeros((k, N, N))
    for c, (i, j) in enumerate([(i, i) for i in range(N)] + pairs):
        approx = []
        for s in range(r):
            col, h = c * r + s, hs[c * r + s]
            second = plus[:, col] - 2.0 * f0 + minus[:, col]
            if i == j:
                approx.append(second / h[:, i] ** 2)
            else:
                num = second - H[:, i, i] * h[:, i] ** 2 - H[:, j, j] * h[:, j] ** 2
                approx.append(num / (2.0 * h[:, i] * h[:, j]))
        H[:, i, j] = H[:, j, i] = richardson(approx, r)
    return H
