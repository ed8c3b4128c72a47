"""What an engine adapter reports when it cannot fit a case: ``Unsupported`` (the model is beyond
the engine) and the error record of a failed fit. Shared by pylme.engines and the external
engines' adapters."""
from __future__ import annotations

from pylme.fitted.record import FitRecord

from .cases import Case


class Unsupported(Exception):
    """The engine cannot express this case's model."""


def error_record(engine: str, version: str, case: Case, exc: BaseException) -> FitRecord:
    """The record of a fit that failed: the engine, its version, the case and the error."""
    return FitRecord(engine=engine, engine_version=version, formula=case.formula, REML=case.REML,
                     error=f"{type(exc).__name__}: {exc}")
