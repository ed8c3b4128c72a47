"""The pylme exception and warning hierarchy: every user-facing failure names its cause."""


class PylmeError(Exception):
    """Base class of all pylme errors."""


class FormulaError(PylmeError, ValueError):
    """A model formula that cannot be parsed or does not fit the data (names the term)."""


class DataError(PylmeError, ValueError):
    """Data that cannot support the model (names the column, level or term)."""


class ModelError(PylmeError, ValueError):
    """A model that lme4 would refuse (too many random effects, too few levels, ...)."""


class PylmeWarning(UserWarning):
    """Base class of pylme warnings."""


class ConvergenceWarning(PylmeWarning):
    """lme4's convergence checks: gradient, Hessian, optimiser return code."""


class SingularFitMessage(PylmeWarning):
    """lme4's message "boundary (singular) fit: see help('isSingular')"."""


class FitMessage(PylmeWarning):
    """Other messages lme4 prints while fitting (rank-deficient X, dropped rows)."""
