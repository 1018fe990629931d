#!/usr/bin/env bash
# The GPU checks of the training engine (benchmarks/cuda_check.py) on a machine with CUDA
# whose python3 already holds torch, numpy, scipy, scikit-learn, networkx, h5py, PyYAML and
# tqdm (an accelerator image): tsslc is installed beside them without fetching anything.
#   bash scripts/gpu_check.sh [--skip-bench] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SITE=$(mktemp -d)
"$PY" -m pip install -q --no-deps --no-build-isolation --no-index --target "$SITE" .
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PY" benchmarks/cuda_check.py "$@"
