#!/usr/bin/env bash
# Create .venv (if missing) and install imgret with the extras named in $1 (e.g. "test").
# torch is pinned first: on the project's machines that release lies on disk, any other
# release is a multi-GB download.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
