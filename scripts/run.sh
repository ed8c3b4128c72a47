#!/usr/bin/env bash
# The main job: install what is needed, then fit the seed documents' models with pylme and
# print each summary beside lme4 1.1-31's recorded criterion.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/seed_models.py "$@"
