"""scripts/interop_check.sh: Sinabs 3.1.3 (nir 1.0.4, its own venv .venv-sinabs) <-> tsslc.
Runs the real Sinabs; its first run installs three small wheels from PyPI (about 20 s), later
runs take about 30 s on 2 CPUs."""

from __future__ import annotations

import subprocess

import pytest

from conftest import REPO


@pytest.mark.slow
def test_interop_check_sinabs():
    res = subprocess.run(["bash", str(REPO / "scripts" / "interop_check.sh")], capture_output=True, text=True,
                         timeout=600)
    lines = [ln for ln in res.stdout.splitlines() if "->" in ln]
    print("\n".join(lines))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    text = "\n".join(lines)
    assert "--for sinabs: refused" in text and "unexpected keyword argument 'v_reset'" in text
    for net in ("mlp_iaf_single_reset", "cnn_iaf_single_reset", "mlp_lif_single_reset"):
        assert f"Sinabs {net} -> tsslc (--convention sinabs): 100.00 %" in text, net
    assert "mlp_iaf_default" in text
