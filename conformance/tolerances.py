"""Every tolerance the conformance comparison uses, in statistical units, with its reason.

No case loosens these. A case lme4 itself fits badly (it warns that it did not converge) may be
marked "lme4 unreliable" in the corpus and is then judged on the objective layer only; a case
with an explained, open difference is marked ``known_difference`` and reported as such.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    value: float
    reason: str


# Layer 1: the objective at fixed theta
OBJECTIVE_REL = Tolerance(
    1e-10,
    "the same profiled criterion evaluated at the same theta: only floating-point rounding may differ",
)

# Layer 2: quantities derived at lme4's theta installed in pylme
DERIVED_REL = Tolerance(
    1e-8,
    "beta, sigma, ranef, condVar, vcov and fitted values are smooth functions of theta: at the same "
    "theta they differ by rounding only (relative to each quantity's scale)",
)

# Layer 3: the full fits
CRITERION_ABS = Tolerance(
    1e-6,
    "pylme's optimum may not be worse than lme4's by more than BOBYQA's own ftol_abs-scale noise; "
    "a lower criterion is reported as 'pylme found a better optimum'",
)
THETA_ABS = Tolerance(1e-4, "BOBYQA stops within xtol_rel 1e-4; thetas are relative standard deviations")
BETA_SE = Tolerance(1e-3, "fixed effects agree within a thousandth of their standard error")
SIGMA_REL = Tolerance(1e-5, "the residual standard deviation, relative")
RANEF_CONDSD = Tolerance(1e-3, "conditional modes agree within a thousandth of their conditional SD")
SE_REL = Tolerance(1e-4, "standard errors of the fixed effects, relative")

ALL = {
    "objective_rel": OBJECTIVE_REL,
    "derived_rel": DERIVED_REL,
    "criterion_abs": CRITERION_ABS,
    "theta_abs": THETA_ABS,
    "beta_se": BETA_SE,
    "sigma_rel": SIGMA_REL,
    "ranef_condsd": RANEF_CONDSD,
    "se_rel": SE_REL,
}
