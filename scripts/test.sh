#!/usr/bin/env bash
# The test command: install what is needed, then run the whole test suite.
# R is installed by setup.sh, so tests that compare with live R are required to run
# (PYLME_REQUIRE_R=1 makes them fail, not skip, if R cannot be reached).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYLME_REQUIRE_R=1
exec .venv/bin/python -m pytest "$@"
