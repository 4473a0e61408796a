#!/usr/bin/env bash
# Install headless Chromium and its driver (Debian's packages) for the web app's browser test,
# once: where both are present this returns at once. Needs root (CI machines, containers);
# elsewhere it says how and the browser test skips.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "browser test will skip: run 'sudo apt-get install -y chromium chromium-driver'" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
  || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }
