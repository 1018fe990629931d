#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job: train on the embedded digits set, export,
# compile for loihi2 and truenorth, run on the integer simulator and Lava, verify, report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/tsslc demo "$@"
