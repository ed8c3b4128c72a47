#!/usr/bin/env bash
# The main job: install what is needed, then run the conformance harness on the bundled data
# sets: every corpus case through pylme and R's lme4, compared layer by layer; prints the table
# and writes reports/conformance/report.json and report.html. Exits 1 if any case fails.
# Extra arguments go to `python -m conformance run` (e.g. --cases "sleepstudy*", --reference golden).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m conformance run --jobs 2 "$@"
