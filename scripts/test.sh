#!/usr/bin/env bash
# Set up (scripts/setup.sh), make sure Debian's chromium is there (the report test opens the
# HTML report in a real headless browser), and run the whole test suite. Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi
exec .venv/bin/python -m pytest "$@"
