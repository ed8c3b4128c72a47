"""Shared test fixtures."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def require_r() -> None:
    """Skip the test when R with lme4 (through rpy2) is missing; fail instead when
    the environment variable PYLME_REQUIRE_R is "1".

    Use it for a whole file with ``pytestmark = pytest.mark.usefixtures("require_r")``.
    """
    import r_reference

    try:
        r_reference.r_versions()
    except RuntimeError as exc:
        if os.environ.get("PYLME_REQUIRE_R") == "1":
            pytest.fail(f"{exc} (and PYLME_REQUIRE_R=1)")
        pytest.skip(str(exc))
