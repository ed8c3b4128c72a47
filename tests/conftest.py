"""Shared test fixtures."""
from __future__ import annotations

import os

import pytest

# LD_LIBRARY_PATH before any test starts R in this process: rpy2 adds R's library folders to it
# (/usr/lib/x86_64-linux-gnu among them), and a Python started after that (a Dask worker, the
# pylme command) loads the system's libpython instead of its own and fails
_LIBRARY_PATH_BEFORE_R = os.environ.get("LD_LIBRARY_PATH")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """Each test (and the fixtures it sets up, such as a Dask cluster) starts with the library path
    that Python subprocesses need; R, already loaded, does not read it again."""
    if _LIBRARY_PATH_BEFORE_R is None:
        os.environ.pop("LD_LIBRARY_PATH", None)
    else:
        os.environ["LD_LIBRARY_PATH"] = _LIBRARY_PATH_BEFORE_R


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
