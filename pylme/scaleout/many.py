"""Many fits of one model: the same formula and samples, thousands of responses (one model per
gene, voxel or item), as a loop of ``lmer`` calls would fit them, on one machine or a Dask cluster.

The parts that depend on the rows alone are built once per row set (``RowSetDesign``: the model
frame, X, Z, the objective's structure: the dense Gram matrix, the blocked factor's maps); each
response then gets the objective for its values (``objective_for``: only the response's
cross-products are recomputed) and goes through lmer's own steps after the objective
(``lmer.fit_lmer``: optimiser, restart, boundary check, checkConv, the fit at the optimum), so each
row of the table is what ``lmer`` gives that response. A response with missing values is fitted
on its complete rows, as ``lmer`` on that column drops them: responses with the same missing rows
share one design, built when first needed. A response that fails (constant, all missing, not a
number) gets a row with the error; the others go on.

With ``engine="lockstep"`` the responses of a chunk are optimised together instead
(pylme.scaleout.lockstep: one stacked criterion, Newton steps for all of them), to the optimum that lmer's
end approximates, and their rows are read off the stacked factor (``_lockstep_rows``); a response
it does not certify goes through lmer's steps.

The work is split into chunks of responses of one row set, run here (``n_jobs=1``), in forked
local processes (``n_jobs > 1``) or on a ``dask.distributed`` Client (pylme.rbase.parallel), the
designs sent to each worker once.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..description.formula import parse_mixed
from ..description.modelframe import as_data_frame
from ..description.modelframe import as_data_frame
from ..errors import DataError, FormulaError, PylmeError
from ..fitted.model import LmerMod, theta_names
from ..fitted.model import LmerMod, theta_names
from ..fitting.convergence import Derivs, check_conv, is_singular, quiet
from ..fitting.convergence import Derivs, check_conv, is_singular, quiet
from ..fitting.driver import LmerControl, choose_objective, fit_lmer
from ..inference.tables import p_t
from ..objectives.lformula import LmerFormula, get_start, lFormula, mkLmerDevfun
from ..objectives.objective import Objective
from ..objectives.objective import Objective
from ..objectives.pls import CholmodObjective
from ..objectives.pls import CholmodObjective
from ..rbase.parallel import run_tasks
from ..rbase.parallel import run_tasks
from . import lockstep

#: responses per task: large enough that a task's overhead (a few ms on a cluster) is small; the
#: lockstep engine's tasks are larger, its per-step overhead being shared by the task's responses
CHUNK = 250
LOCKSTEP_CHUNK = 1000
#: the engines: lmer's own steps per response, or all the responses of a task optimised together
ENGINES = ("lmer", "lockstep")
#: a response whose residual from X is below this share of its size is left to lmer's steps
#: (a constant: the lockstep criterion's log(pwrss) would be rounding noise)
MIN_RESIDUAL = 1e-8
#: what a failing response's fit may raise (anything else is a bug and stops the run)
FIT_ERRORS = (PylmeError, ArithmeticError, ValueError, np.linalg.LinAlgError)


@dataclass
class ManySpec:
    """What every fit shares: the formula and data, lmer's arguments, and the table's options."""

    formula: str
    data: pd.DataFrame
    response: str  # the formula's response name, whose column each response replaces
    REML: bool = True
    weights: str | np.ndarray | None = None
    offset: str | np.ndarray | None = None
    control: LmerControl = field(default_factory=LmerControl)
    ddf: str | None = None  # 'Satterthwaite' or 'Kenward-Roger': df and p columns
    engine: str = "lmer"  # 'lockstep': the responses of a task optimised together (pylme.scaleout.lockstep)

    @property
    def lockstep(self) -> bool:
        """Whether the lockstep engine is asked for and the fits are ones it gives: lmer's default
        optimiser, finished and certified (polish), with derivatives for checkConv; Satterthwaite's
        df columns or none."""
        c = self.control
        return (self.engine == "lockstep" and self.ddf in (None, "Satterthwaite") and c.optimizer == "nloptwrap"
                and c.polish and c.calc_derivs)

    def lformula(self, y: np.ndarray | pd.Series) -> LmerFormula:
        """lme4's lFormula on the data with ``y`` as the response column (what ``lmer`` sees)."""
        data = self.data.assign(**{self.response: y})
        data.attrs = dict(self.data.attrs)
        return lFormula(self.formula, data, REML=self.REML, weights=self.weights, offset=self.offset,
                        memory_limit=self.control.memory_limit)


@dataclass
class RowSetDesign:
    """The shared parts of the fits on one set of rows: lFormula's output (its response is that of
    the first response with these rows), the CHOLMOD objective and the objective lmer optimises."""

    lmod: LmerFormula
    devfun: CholmodObjective
    objective: Objective | None  # None: lmerControl(optimizer=None)
    rows: np.ndarray  # positions of the fitted rows in the data

    @classmethod
    def build(cls, spec: ManySpec, y: np.ndarray) -> "RowSetDesign":
        lmod = spec.lformula(y)
        devfun = mkLmerDevfun(lmod)
        control = spec.control
        objective = (choose_objective(devfun.design, devfun.resp, control.method, control.memory_limit,
                                      control.optimizer, devfun.start, devfun) if control.optimizer else None)
        rows = np.flatnonzero(~spec.data.index.isin(lmod.frame.dropped))
        return cls(lmod, devfun, objective, rows)

    def prepare(self) -> None:
        """Do CHOLMOD's symbolic analysis once for all the responses (each fit copies it), where the
        fit at the optimum is solved by CHOLMOD (not by the blocked factor, whose models may be too
        large for it). In the process that fits: a pickled design leaves the factor behind."""
        (self.objective or self.devfun).prepare()


def objective_for(design: RowSetDesign, y: np.ndarray) -> tuple[LmerFormula, Objective]:
    """lFormula's output and the objective for the response ``y`` (its values on the design's rows),
    from the design's: what lmer would optimise for it (the CHOLMOD objective where nothing is)."""
    lmod = copy.copy(design.lmod)
    lmod.y = y
    objective = (design.objective or design.devfun).with_response(design.devfun.resp.with_y(y))
    objective.start = get_start(lmod, None)  # lme4's start depends on the response
    return lmod, objective


def fit_response(spec: ManySpec, design: RowSetDesign, y: np.ndarray):
    """The fit of one response (its values on the design's rows) by lmer's steps."""
    lmod, objective = objective_for(design, y)
    return fit_lmer(LmerMod, lmod, objective, spec.control, objective=objective if design.objective else None)


# ---------------------------------------------------------------- the table
def table_row(fm, ddf: str | None = None) -> dict:
    """One response's row: criterion, theta, sigma, per coefficient estimate, SE and t (df and p
    with ``ddf``), singular flag, convergence code and messages. Read off the fit's PLS solution
    with numpy (``fm.vcov()``'s diagonal without its DataFrame: this runs once per response)."""
    st, names = fm.state, fm.lmod.fixef_names
    sigma = fm.sigma()
    row = {"nobs": fm.n, "criterion": fm.objective.deviance(st), "sigma": sigma}
    row.update(zip(_prefixed("theta", fm._theta_names()), fm.theta.tolist()))
    if ddf is None:
        se = sigma * np.sqrt(np.sum(np.linalg.inv(st.RX) ** 2, axis=1)) if fm.p else np.zeros(0)
        columns = {"beta": st.beta, "se": se, "t": st.beta / se}
    else:
        from ..inference.satterthwaite import satterthwaite_table

        coefs = satterthwaite_table(fm, ddf)
        columns = {short: coefs[name].to_numpy() for name, short in _COEF_COLUMNS.items()}
    for short, values in columns.items():
        row.update(zip(_prefixed(short, names), values.tolist()))
    row["singular"] = fm.isSingular()
    row["conv"] = fm.conv.code if fm.opt.summary.conv == 0 else fm.opt.summary.conv
    row["messages"] = "; ".join(fm.messages + fm.warnings)
    return row


#: lmerTest's coefficient columns and the table's prefixes for them
_COEF_COLUMNS = {"Estimate": "beta", "Std. Error": "se", "df": "df", "t value": "t", "Pr(>|t|)": "p"}


def _prefixed(prefix: str, names: list[str]) -> list[str]:
    return [f"{prefix}.{name}" for name in names]


def error_row(exc: BaseException) -> dict:
    return {"error": f"{type(exc).__name__}: {exc}"}


def _fit_chunk(shared: tuple[ManySpec, dict], task: tuple) -> list[tuple[int, dict]]:
    """Fit a chunk of responses of one row set: (response index, table row) for each."""
    spec, designs = shared
    key, columns, Y = task
    design = designs[key]
    if isinstance(design, BaseException):  # the row set's own error (too few rows, say)
        return [(j, error_row(design)) for j in columns]
    design.prepare()
    if spec.lockstep and lockstep.supported(design.devfun.design):
        return _lockstep_chunk(spec, design, columns, Y[design.rows])
    return [(j, _row_of(spec, design, y[design.rows])) for j, y in zip(columns, Y.T)]


def _lockstep_chunk(spec: ManySpec, design: RowSetDesign, columns: list[int], Y: np.ndarray) -> list[tuple[int, dict]]:
    """The chunk's responses (``Y``: their values on the design's rows) optimised together
    (pylme.scaleout.lockstep); those it does not finish at a certified optimum go through lmer's steps."""
    devfun = design.devfun
    crit = lockstep.LockstepCriterion(devfun.design, devfun.resp, Y)
    res = lockstep.optimise(crit, lockstep.start_values(design.lmod, Y), devfun.design.lower)
    done = res.done & (crit.rr > (MIN_RESIDUAL**2) * crit.yy)
    idx = np.flatnonzero(done)
    out = list(zip([columns[j] for j in idx], _lockstep_rows(spec, design, crit, res, idx)))
    out += [(columns[j], _row_of(spec, design, Y[:, j])) for j in np.flatnonzero(~done)]
    return out


def _lockstep_rows(spec: ManySpec, design: RowSetDesign, crit, res, idx: np.ndarray) -> list[dict]:
    """The table rows of the lockstep responses ``idx``: what ``table_row`` reads off lmer's fit,
    from the batched factor at the optimum; lme4's checkConv where its vectorised screen
    (``convergence.quiet``) finds something to say."""
    lmod, c, lower = design.lmod, spec.control, design.devfun.design.lower
    theta, g, H = res.theta[idx], res.gradient[idx], res.Hessian[idx]
    tols = {"grad_tol": c.check_conv_grad_tol, "hess_tol": c.check_conv_hess_tol,
            "singular_tol": c.check_conv_singular_tol}
    silent = quiet(g, H, theta, lower, **tols)
    est = crit.estimates(idx, theta)
    beta, se = est["beta"], est["se"]
    columns = {"beta": beta, "se": se, "t": beta / se}
    notes = [[] for _ in idx]
    if spec.ddf is not None:  # Satterthwaite's (lmerTest's warnings come after the fit's messages)
        df, notes = lockstep.satterthwaite(crit, idx, theta, est["sigma"])
        columns = {"beta": beta, "se": se, "df": df, "t": beta / se, "p": p_t(beta / se, df)}
    names = lmod.fixef_names
    keys = ["criterion", "sigma"] + _prefixed("theta", theta_names(lmod.reTrms))
    for short in columns:
        keys += _prefixed(short, names)
    values = np.column_stack([est["criterion"], est["sigma"], theta, *columns.values()]).tolist()
    singular = is_singular(theta, lower).tolist()
    nobs, plain = len(design.rows), "; ".join(lmod.messages + lmod.warnings)
    rows = []
    for i in range(idx.size):
        row = {"nobs": nobs, **dict(zip(keys, values[i])), "singular": singular[i], "conv": 0, "messages": plain}
        if not silent[i]:
            conv = check_conv(Derivs(g[i], H[i], theta[i]), theta[i], lower, **tols)
            row["conv"] = conv.code
            row["messages"] = "; ".join(lmod.messages + conv.messages + lmod.warnings + conv.warnings)
        if notes[i]:
            row["messages"] = "; ".join(filter(None, [row["messages"], *notes[i]]))
        rows.append(row)
    return rows


def _row_of(spec: ManySpec, design: RowSetDesign, y: np.ndarray) -> dict:
    """The table row of one response, or its error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            row = table_row(fit_response(spec, design, y), spec.ddf)
        except FIT_ERRORS as exc:
            return error_row(exc)
    extra = [str(w.message) for w in caught]
    if extra:
        row["messages"] = "; ".join(filter(None, [row["messages"], *extra]))
    return row


# ---------------------------------------------------------------- the user's entry
@dataclass
class ManyFits:
    """``lmer_many``'s result: one row per response (``table``), and each response's fit on demand."""

    table: pd.DataFrame
    spec: ManySpec
    responses: pd.DataFrame = field(repr=False)
    _designs: dict = field(default_factory=dict, repr=False)

    @property
    def errors(self) -> pd.Series:
        """The responses that failed, with their errors."""
        return self.table["error"].dropna()

    def fit(self, name):
        """The full fit (an LmerMod) of the response ``name``: what ``lmer`` gives on that column."""
        if name not in self.responses.columns:
            raise KeyError(f"no response named {name!r}")
        column = self.responses[name]
        y = column.to_numpy()
        if not _plain(column):
            return _fit_alone(self.spec, column)
        key = _row_key(y)
        if key not in self._designs:
            self._designs[key] = RowSetDesign.build(self.spec, y)
        design = self._designs[key]
        design.prepare()
        fm = fit_response(self.spec, design, y[design.rows])
        data = self.spec.data.assign(**{self.spec.response: column.to_numpy()})
        data.attrs = dict(self.spec.data.attrs)
        fm.lmod.data = data
        fm.lmod.frame = copy.copy(fm.lmod.frame)
        fm.lmod.frame.data = data if len(design.rows) == len(data) else data.loc[fm.lmod.frame.data.index,
                                                                                  fm.lmod.frame.data.columns]
        return fm

    def __repr__(self) -> str:
        n_err = int(self.table["error"].notna().sum())
        return f"<ManyFits: {len(self.table)} responses of {self.spec.formula!r}, {n_err} failed>"


def lmer_many(
    formula: str,
    data,
    responses,
    REML: bool = True,
    weights: str | np.ndarray | None = None,
    offset: str | np.ndarray | None = None,
    control: LmerControl | None = None,
    ddf: str | None = None,
    client=None,
    n_jobs: int = 1,
    chunk_size: int | None = None,
    progress: bool | None = None,
    engine: str = "lmer",
) -> ManyFits:
    """Fit ``formula`` to each response, as ``lmer(formula, data)`` with that response as the
    formula's response column; one row per response in ``.table``.

    ``responses``: a DataFrame (one column per response, rows as the data's, by position), a 2-D
    array (responses by column, named 0, 1, ...) or a list of column names of ``data``.
    ``ddf='Satterthwaite'`` (or ``'Kenward-Roger'``) adds lmerTest's df and p per coefficient.
    ``client``: a ``dask.distributed.Client`` to run the fits on; without one, ``n_jobs`` local
    processes. ``chunk_size`` responses make one task (default 250; 1,000 with the lockstep engine).

    ``engine='lmer'`` (default) takes each response through lmer's own steps (BOBYQA, lme4's checks,
    the fit at the optimum): the table is a loop of ``lmer``'s to the last bit. ``engine='lockstep'``
    optimises a task's responses together, by Newton steps on all of them at once (pylme.scaleout.lockstep),
    to the optimum that lmer's end approximates (criterion within 1e-10 relative of lmer's and never
    above it; theta within lmer's own stopping tolerance of its); it serves models whose terms are
    all scalar (``(1 | g)``), with ``ddf`` None or 'Satterthwaite' (df for all responses together),
    and sends any response it does not certify, and any other model, through lmer's steps."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, ENGINES))}, not {engine!r}")
    chunk_size = chunk_size or (LOCKSTEP_CHUNK if engine == "lockstep" else CHUNK)
    data = as_data_frame(data)
    pf = parse_mixed(formula)
    if pf.response is None or pf.response.op != "name":
        raise FormulaError(f"lmer_many needs a plain column name as the formula's response (the name each "
                           f"response takes), not {pf.response_label!r}")
    frame = _as_responses(responses, data)
    spec = ManySpec(formula, data, pf.response.text, REML, weights, offset, control or LmerControl(), ddf, engine)
    rows: dict[int, dict] = {}
    plain, Y = _plain_columns(frame)
    groups: dict[bytes, list[int]] = {}
    keys = np.ascontiguousarray(np.packbits(np.isnan(Y[:, plain]), axis=0).T)  # _row_key of each column
    for j, key in zip(plain, keys):
        groups.setdefault(key.tobytes(), []).append(j)
    for j in sorted(set(range(frame.shape[1])) - set(plain)):  # not numbers, or infinite values:
        rows[j] = _alone_row(spec, frame.iloc[:, j])  # lmer's own error (or its fit, if it has none)
    designs = {}
    for key, columns in groups.items():
        try:
            designs[key] = RowSetDesign.build(spec, Y[:, columns[0]])
        except FIT_ERRORS as exc:
            designs[key] = exc
    tasks = [(key, cols[s : s + chunk_size], Y[:, cols[s : s + chunk_size]])
             for key, cols in groups.items() for s in range(0, len(cols), chunk_size)]
    for part in run_tasks(_fit_chunk, (spec, designs), tasks, client=client, n_jobs=n_jobs, progress=progress,
                          desc="lmer_many", sizes=[len(t[1]) for t in tasks]):
        rows.update(part)
    table = pd.DataFrame([rows[j] for j in range(len(frame.columns))], index=frame.columns)
    if "error" not in table:
        table["error"] = None
    ok = {k: d for k, d in designs.items() if isinstance(d, RowSetDesign)}
    return ManyFits(table, spec, frame, ok)


def _as_responses(responses, data: pd.DataFrame) -> pd.DataFrame:
    """The responses as a DataFrame with the data's rows (by position)."""
    if isinstance(responses, (list, tuple)) and all(isinstance(r, str) for r in responses):
        missing = [r for r in responses if r not in data.columns]
        if missing:
            raise DataError(f"responses not in the data: {', '.join(map(repr, missing))}")
        return data[list(responses)].reset_index(drop=True)
    if isinstance(responses, pd.DataFrame) or callable(getattr(responses, "to_pandas", None)):
        frame = as_data_frame(responses, "responses").reset_index(drop=True)
    else:
        arr = np.asarray(responses)
        if arr.ndim != 2:
            raise DataError(f"responses must be a DataFrame or a 2-D array (one column per response), "
                            f"not an array of shape {arr.shape}")
        frame = pd.DataFrame(arr)
    if len(frame) != len(data):
        raise DataError(f"responses must have one row per row of the data ({len(data)}), not {len(frame)}")
    if frame.columns.has_duplicates:
        dup = frame.columns[frame.columns.duplicated()].unique().tolist()
        raise DataError(f"responses' names must be unique; repeated: {dup}")
    return frame


def _plain_columns(frame: pd.DataFrame) -> tuple[list[int], np.ndarray]:
    """The positions of the responses that are ``_plain`` and all the responses as floats (NaN in
    the columns that are not plain), column types read once rather than per column."""
    numeric = [j for j, dtype in enumerate(frame.dtypes) if isinstance(dtype, np.dtype) and dtype.kind in "fiu"]
    values = frame.iloc[:, numeric].to_numpy(dtype=float, na_value=np.nan)
    finite = ~np.isinf(values).any(axis=0)
    plain = [j for j, ok in zip(numeric, finite) if ok]
    Y = np.full(frame.shape, np.nan)
    Y[:, plain] = values[:, finite]
    return plain, Y


def _plain(column: pd.Series) -> bool:
    """Whether a response is floats or integers with no infinite value (missing values allowed)."""
    if not (isinstance(column.dtype, np.dtype) and column.dtype.kind in "fiu"):
        return False
    return not np.isinf(column.to_numpy(dtype=float)).any()


def _row_key(y: np.ndarray) -> bytes:
    """The row set of a response (its missing values) as a dictionary key."""
    return np.packbits(np.isnan(np.asarray(y, dtype=float))).tobytes()


def _fit_alone(spec: ManySpec, column: pd.Series):
    """lmer on one response column the many-fit path does not take (lmer's errors are raised)."""
    lmod = spec.lformula(column.to_numpy())
    return fit_lmer(LmerMod, lmod, mkLmerDevfun(lmod), spec.control)


def _alone_row(spec: ManySpec, column: pd.Series) -> dict:
    try:
        return table_row(_fit_alone(spec, column), spec.ddf)
    except FIT_ERRORS as exc:
        return error_row(exc)
