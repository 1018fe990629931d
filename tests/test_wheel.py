"""The pip route of the README: a wheel built from this checkout, installed in a fresh venv
(CPU torch first, then the wheel with Lava), runs the main job outside the checkout with the
examples it carries (scripts/wheel_check.sh). Needs the package registry (PyPI)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_runs_the_demo(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "wheel_check.sh"), str(tmp_path)], capture_output=True,
                          text=True, timeout=1500, env={**env, "PYTHON": sys.executable})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "wheel check: tsslc-" in out and (tmp_path / "run" / "report.html").stat().st_size > 10_000
    assert "counters of Lava and intsim on the same samples are identical" in out
    # the installed package is not this checkout
    site = next((tmp_path / "venv" / "lib").glob("python3*/site-packages"))
    assert (site / "tsslc" / "examples" / "digits.yaml").is_file() and (site / "tsslc" / "api.py").is_file()
