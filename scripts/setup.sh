#!/usr/bin/env bash
# Create .venv (if needed) and install everything tsslc uses, pinned for Python 3.11 and
# lava-nc 0.10.0. Idempotent: a second run only checks. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.tsslc-installed
want=$(cat requirements.txt requirements-test.txt requirements-nodeps.txt pyproject.toml setup.py | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    # torch first and on its own: pinned to the CPU build on CPU-only machines.
    .venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
    # lava-nc 0.10.0 declares Python < 3.11; tsslc fixes its one 3.11 import problem itself.
    .venv/bin/python -m pip install -q --disable-pip-version-check --only-binary=:all: \
        --ignore-requires-python -r requirements.txt -r requirements-test.txt
    # lava-dl 0.6.0 declares Python < 3.11 like lava-nc.
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --ignore-requires-python \
        -r requirements-nodeps.txt
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
    echo "$want" > "$stamp"
fi
