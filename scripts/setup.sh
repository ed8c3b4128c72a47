#!/usr/bin/env bash
# Install everything pylme, its tests and its R reference need on a fresh Debian 12 machine:
# R 4.2.2 with lme4 1.1-31 (and lmerTest, pbkrtest, jsonlite, emmeans, dfoptim, optimx), SuiteSparse for CHOLMOD,
# and a virtual environment .venv with pylme installed (editable) with its test extras, at the exact
# versions of constraints.txt (pyproject.toml keeps ranges; README.md says how to upgrade).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(r-base-core r-base-dev r-cran-lme4 r-cran-lmertest r-cran-pbkrtest r-cran-jsonlite r-cran-emmeans r-cran-dfoptim r-cran-optimx r-cran-mlmrev r-cran-glmmtmb libsuitesparse-dev)
if ! dpkg -s "${APT_PACKAGES[@]}" >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
# -qq: errors only. setuptools notes on every editable install that it uses an import finder;
# warnings about the packaging itself are caught by tests/test_packaging.py, which builds the wheel.
.venv/bin/python -m pip install -qq -c constraints.txt -e ".[test,engines,bench,cluster]" 2>&1 | grep -v "^WARNING: Location" || true
# The harness's packages (conformance, r_reference) are not part of pylme's wheel: a .pth file puts
# the repository's root on the environment's path, so they import from here, whatever the working folder.
SITE_PACKAGES=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
pwd > "$SITE_PACKAGES/pylme-repository.pth"
.venv/bin/python -c "import pylme, conformance, r_reference, sksparse.cholmod, nlopt, rpy2.robjects" >/dev/null
