"""benchmarks/peers.py runs: tsslc's rows and, for each peer library, its row when it is
installed or the line saying how to install it (they are benchmark-only dependencies)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_peers_benchmark_smoke():
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "peers.py"), "--rounds", "1", "--warmup", "1",
                        "--threads", "1", "--nets", "mlp_784_400_400_10"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "fused neuron: fused" in out
    for row in ("tsslc TSSL-BP ", "tsslc TSSL-BP ref", "tsslc BPTT", "floor"):
        assert f"\n{row}" in out, row
    for peer, package in (("snnTorch", "snntorch"), ("SpikingJelly", "spikingjelly"), ("Norse", "norse")):
        assert f"\n{peer} " in out or f"{peer}: not installed" in out and f"--no-deps {package}" in out, peer
