#!/usr/bin/env bash
# Build tsslc's wheel, install it in a fresh venv the way the README's pip route says (CPU
# torch first, then the wheel with Lava), and run the main job from it, outside the checkout.
#   bash scripts/wheel_check.sh [WORKDIR]      (default: a new temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
work=${1:-$(mktemp -d)}
mkdir -p "$work"
"$PY" -m pip wheel -q --disable-pip-version-check --no-deps -w "$work/dist" . >/dev/null
whl=$(ls "$work"/dist/tsslc-*.whl)
"$PY" -m venv "$work/venv"
pip="$work/venv/bin/python -m pip -q --disable-pip-version-check"
$pip install "torch==2.13.0"
# Lava (lava-nc 0.10.0) declares Python < 3.11: --ignore-requires-python; binary wheels only.
$pip install --ignore-requires-python --only-binary=:all: "${whl}[lava]" "scipy<1.15" "contourpy<1.4"
cd "$work"
"$work/venv/bin/tsslc" --version
"$work/venv/bin/tsslc" demo -o run --epochs 2 --lava-samples 20 --finetune-epochs 1 --mnist-train-samples 0 \
    --no-progress
test -s run/report.html
echo "wheel check: $(basename "$whl") installed in a fresh venv; tsslc demo wrote $work/run/report.html"
