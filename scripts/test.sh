#!/usr/bin/env bash
# Set up (if needed) and run the checks CI runs: ruff, mypy, then the offline test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
bash scripts/browser.sh
export HF_HUB_OFFLINE=1
.venv/bin/ruff check imgret tests bench
.venv/bin/ruff format --check imgret tests bench
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
