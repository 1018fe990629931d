"""The prepared GPU check (benchmarks/cuda_check.py, scripts/gpu_check.sh).

On this CPU-only machine it runs with ``--device cpu`` (the CPU compared with itself), which
keeps the script working between the sessions that are lent a GPU; on a machine with CUDA
the second test runs the real comparison (gradient CPU vs CUDA, digits trained on the GPU,
intsim on the GPU bit-identical, the Triton neuron against the reference path)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO, SHARED_DATA


def _check(tmp_path, device, *extra):
    out = tmp_path / "cuda_check.json"
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cuda_check.py"), "--device", device,
                        "--skip-bench", "--out", str(out), *extra], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(out.read_text()), p.stdout


def test_cuda_check_script_runs_on_cpu(tmp_path):
    rep, _ = _check(tmp_path, "cpu", "--mnist-dir", str(SHARED_DATA / "mnist"), "--paper-epochs", "1",
                    "--paper-train-samples", "200", "--paper-test-samples", "100")
    assert rep["ok"] and rep["tssl_lif CPU vs CUDA"]["cases"] == 24
    assert rep["tssl_lif CPU vs CUDA"]["max_rel_float64"] == 0.0  # the same device: bitwise
    fused = rep["fused vs reference neuron"]  # on the CPU: the C++ kernel against the torch path
    assert fused["ok"] and fused["fused_available"] and fused["cases"] == 20 and fused["spikes_and_psc_equal"]
    assert set(fused["conv1_fwd_bwd_ms"]) == {"fused", "reference"}
    assert rep["digits on CUDA"]["test_accuracy"] >= 0.95
    assert rep["intsim CPU vs CUDA"]["ok"]
    paper = rep["paper MNIST CNN"]
    if "skipped" in paper:
        assert "no MNIST IDX files" in paper["skipped"]
    else:  # a smoke run of the paper-scale training: 4 steps of batch 50, 100 test images
        assert paper["train_samples"] == 200 and paper["test_samples"] == 100 and paper["paper_test_acc"] == 0.9953
        assert len(paper["epochs"]) == 1 and 0.0 <= paper["epochs"][0]["test_acc"] <= 1.0
        assert paper["cpu_step_ms"] > 0 and paper["speedup"] == 1.0 and paper["recipe"] == "authors"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(tmp_path):
    rep, out = _check(tmp_path, "cuda")
    assert rep["ok"], rep
    print(out)  # the per-epoch MNIST CNN accuracies and step times (pytest -s shows them)
