#!/usr/bin/env bash
# Sinabs <-> tsslc over NIR. Sinabs 3.1.3 needs nir <= 1.0.4 (tsslc uses 1.0.8; nirtorch
# 2.0.3-2.6 need nir >= 1.0.6, so pip pairs them with nirtorch 2.0.2), so it gets
# its own small venv, .venv-sinabs: sinabs, nir 1.0.4, nirtorch 2.0.2 and pbr installed there (--no-deps),
# everything else (torch 2.13.0 CPU, numpy, nirtorch, ...) read from .venv through a .pth
# file placed after its own site-packages, so nir 1.0.4 shadows 1.0.8 there only.
# Runs scripts/interop_sinabs.py (prepare in .venv, sinabs side in .venv-sinabs, compare in
# .venv) and prints one line per net. Usage: bash scripts/interop_check.sh (after setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-sinabs
PINS="sinabs==3.1.3 nir==1.0.4 nirtorch==2.0.2 pbr==7.1.3"
stamp=$VENV/.tsslc-installed
if [ "$(cat "$stamp" 2>/dev/null)" != "$PINS" ]; then
    rm -rf "$VENV"
    base=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
    "$base" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps $PINS
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    .venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$site/zz_tsslc_venv.pth"
    echo "$PINS" > "$stamp"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python scripts/interop_sinabs.py prepare "$work"
"$VENV/bin/python" scripts/interop_sinabs.py sinabs "$work"
.venv/bin/python scripts/interop_sinabs.py compare "$work"
