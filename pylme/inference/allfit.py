"""lme4's ``allFit``: the same model refitted with every optimiser pylme has, to tell a real
optimum from an optimiser's stopping point when lme4 warns about convergence.

pylme's optimisers: nlopt's derivative-free algorithms through lme4's nloptwrap settings
(BOBYQA, lme4's default; Nelder-Mead; Subplex; COBYLA; NEWUOA with bounds; PRAXIS) and scipy's
L-BFGS-B on pylme's analytic gradient (lmer fits only: glmer's criterion has no analytic
gradient, so a glmer fit is refitted with the nloptwrap algorithms, in both of glmer's stages as
lme4's). lme4's own list also has minqa's bobyqa, lme4's Nelder_Mead, nlminb, dfoptim's nmkb and
optimx's L-BFGS-B, which are not in pylme.
``summary()`` gives lme4's summary.allFit: which fits ran, their convergence messages, fixed
effects, log-likelihoods, standard deviations and correlations, theta, times and evaluations.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from ..errors import ModelError, PylmeError
from ..rbase.printing import format_number, format_numbers, named_vector, render_table

#: name -> (lmerControl optimizer, the optCtrl it gets), lme4's "optimizer.method" names
OPTIMIZERS = {
    "nloptwrap.NLOPT_LN_BOBYQA": ("nloptwrap", {"algorithm": "NLOPT_LN_BOBYQA"}),
    "nloptwrap.NLOPT_LN_NELDERMEAD": ("nloptwrap", {"algorithm": "NLOPT_LN_NELDERMEAD"}),
    "nloptwrap.NLOPT_LN_SBPLX": ("nloptwrap", {"algorithm": "NLOPT_LN_SBPLX"}),
    "nloptwrap.NLOPT_LN_COBYLA": ("nloptwrap", {"algorithm": "NLOPT_LN_COBYLA"}),
    "nloptwrap.NLOPT_LN_NEWUOA_BOUND": ("nloptwrap", {"algorithm": "NLOPT_LN_NEWUOA_BOUND"}),
    "nloptwrap.NLOPT_LN_PRAXIS": ("nloptwrap", {"algorithm": "NLOPT_LN_PRAXIS"}),
    "L-BFGS-B": ("L-BFGS-B", {}),
}
_MAXFUN = {"nloptwrap": "maxeval", "L-BFGS-B": "maxiter"}


class AllFit(dict):
    """lme4's allFit result: optimiser name -> refitted model, or the error it raised."""

    def __init__(self, fm, fits: dict, times: dict[str, float]):
        super().__init__(fits)
        self.fit, self.times = fm, times

    def ok(self) -> dict:
        return {k: v for k, v in self.items() if not isinstance(v, Exception)}

    def summary(self) -> "AllFitSummary":
        return AllFitSummary(self)

    def __str__(self) -> str:
        """lme4's print.allFit."""
        names = ", ".join(self)
        ll = -np.array([float(f.logLik()) for f in self.ok().values()])
        bad = len(self) - len(self.ok())
        sd = np.std(ll, ddof=1) if ll.size > 1 else np.nan
        return "\n".join(
            ["original model:", _squeeze(self.fit.formula), f"data:  {self.fit.lmod.data_name or '(data)'}",
             f"optimizers ({len(self)}): {_squeeze(names)}"]
            + ([f"{bad} optimizer(s) failed"] if bad else [])
            + ["differences in negative log-likelihoods:",
               f"max= {_signif3(np.max(ll - ll.min()) if ll.size else np.nan)} ; std dev= {_signif3(sd)}"])

    __repr__ = __str__


def _squeeze(text: str, width: int = 80) -> str:
    return text[: width - 3] + "..." if len(text) > width else text


def _signif3(x: float) -> str:
    return "NA" if not np.isfinite(x) else format_number(float(f"{x:.3g}"), 7).strip()


def _control(fm, name: str, maxfun: int):
    """The fit's control with optimiser ``name`` (its optCtrl kept when the fit used that optimiser)."""
    optimizer, ctrl = OPTIMIZERS[name]
    same = fm.control.optimizer in (optimizer, (optimizer, optimizer))
    opt_ctrl = {**(fm.control.optCtrl if same else {}), **ctrl, _MAXFUN[optimizer]: maxfun}
    # glmer: both stages with it, as lme4's glmerControl(optimizer = "nloptwrap")
    if fm.family is not None and optimizer != "nloptwrap":
        raise ModelError(f"{name} needs the analytic gradient of an lmer criterion; glmer fits take the "
                         "nloptwrap optimizers")
    # each optimiser's own stopping point, as lme4's allFit compares them (not finished by polish)
    return replace(fm.control, optimizer=optimizer, optCtrl=opt_ctrl, polish=False)


def default_optimizers(fm) -> list[str]:
    """allFit's optimisers for the fit: all of ``OPTIMIZERS`` for lmer, the nloptwrap ones for glmer."""
    return [n for n, (opt, _) in OPTIMIZERS.items() if fm.family is None or opt == "nloptwrap"]


def allFit(fm, optimizers: list[str] | None = None, maxfun: int = 100_000, verbose: bool = True) -> AllFit:
    """lme4's ``allFit(fm)``: refit with each optimiser (``optimizers``: names of
    ``OPTIMIZERS``; by default all that apply: a glmer fit is refitted with nloptwrap's
    algorithms in both of glmer's stages, as lme4's allFit does), each allowed ``maxfun``
    evaluations (iterations for L-BFGS-B); an optimiser that fails keeps its error, as lme4's
    ``catch.errs``."""
    names = default_optimizers(fm) if optimizers is None else list(optimizers)
    unknown = [n for n in names if n not in OPTIMIZERS]
    if unknown:
        raise ValueError(f"allFit: unknown optimizer(s) {unknown}; available: {', '.join(OPTIMIZERS)}")
    fits, times = {}, {}
    for name in names:
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fits[name] = fm.update(control=_control(fm, name, maxfun))
        except PylmeError as exc:
            fits[name] = exc
        times[name] = time.perf_counter() - start
        if verbose:
            print(f"{name} : [{'failed' if isinstance(fits[name], Exception) else 'OK'}]")
    return AllFit(fm, fits, times)


class AllFitSummary:
    """lme4's summary.allFit: per optimiser that ran, its messages and estimates."""

    def __init__(self, af: AllFit):
        ok = af.ok()
        self.which_OK = pd.Series({k: not isinstance(v, Exception) for k, v in af.items()})
        self.msgs = {k: f.conv.warnings + f.conv.messages for k, f in ok.items()}
        self.fixef = pd.DataFrame({k: f.fixef() for k, f in ok.items()}).T
        self.llik = pd.Series({k: float(f.logLik()) for k, f in ok.items()})
        vc = {k: f.VarCorr().as_data_frame() for k, f in ok.items()}
        first = next(iter(vc.values()))
        self.sdcor = pd.DataFrame({k: v["sdcor"].to_numpy() for k, v in vc.items()}, index=_tnames(first)).T
        self.theta = pd.DataFrame({k: f.getME("theta") for k, f in ok.items()}).T
        self.times = pd.DataFrame({"elapsed": pd.Series({k: af.times[k] for k in ok})})
        self.feval = pd.Series({k: f.opt.summary.feval for k, f in ok.items()})

    def __str__(self) -> str:
        parts = [("which.OK", _named(self.which_OK.index, ["TRUE" if v else "FALSE" for v in self.which_OK])),
                 ("msgs", "\n".join(f"$msgs${k}\n" + ("NULL" if not m else _strings(m)) + "\n" for k, m in self.msgs.items())),
                 ("fixef", _matrix(self.fixef)), ("llik", _named(self.llik.index, format_numbers(self.llik, 7))),
                 ("sdcor", _matrix(self.sdcor)), ("theta", _matrix(self.theta)), ("times", _matrix(self.times)),
                 ("feval", _named(self.feval.index, [str(v) for v in self.feval]))]
        return "\n".join(f"${name}\n{text}\n" for name, text in parts)

    __repr__ = __str__


def _tnames(vc: pd.DataFrame) -> list[str]:
    """Names of the rows of ``as.data.frame(VarCorr(fm))`` in lme4's tnames style: ``group.var``
    for a standard deviation, ``group.var2.var1`` for a correlation, ``sigma``. (lme4's
    summary.allFit puts tnames in theta order over columns in this order, so that its labels of
    a correlated term's columns are shifted; here each column has its own name.)"""
    names = []
    for grp, v1, v2 in zip(vc["grp"], vc["var1"], vc["var2"]):
        if grp == "Residual":
            names.append("sigma")
        else:
            names.append(f"{grp}.{v1}" if pd.isna(v2) else f"{grp}.{v2}.{v1}")
    return names


def _named(names, values: list[str]) -> str:

    return "\n".join(line.rstrip() for line in named_vector([str(n) for n in names], [v.strip() for v in values]))


def _strings(msgs: list[str]) -> str:
    return "\n".join(f'[{i + 1}] "{m}"' for i, m in enumerate(msgs))


def _matrix(df: pd.DataFrame) -> str:
    cols = {str(c): format_numbers(df[c].to_numpy(dtype=float), 7) for c in df.columns}
    return render_table(cols, row_names=[str(i) for i in df.index], right_all=True, width=80)
