"""The main job end to end (1 epoch, 30 Lava samples, 1 fine-tuning epoch, the MNIST CNN on
300 real MNIST images), its report opened in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, SHARED_DATA


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "headless Chromium is needed to check the report (Debian: apt-get install -y chromium; .ci/run does it)"
    return exe


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    cmd = [sys.executable, "-m", "tsslc", "demo", "--out", str(out), "--epochs", "1", "--lava-samples", "30",
           "--finetune-epochs", "1", "--mnist-train-samples", "300", "--mnist-dir", str(SHARED_DATA / "mnist"),
           "--no-progress"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return out, p.stdout


def test_demo_writes_every_stage_and_a_report_chromium_renders(demo_run):
    out, stdout = demo_run
    for f in ("checkpoint.pt", "metrics.json", "model.tsslc", "loihi2.tsslc", "truenorth.tsslc", "energy.json",
              "report.json", "report.html"):
        assert (out / f).is_file(), f
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*.tmp"))
    assert f"Report: {(out / 'report.html').resolve()}" in stdout
    data = json.loads((out / "report.json").read_text())
    assert data["counters_lava_equal_intsim"] is True
    lava_vs_intsim = [c for c in data["equivalence"]["loihi2"] if c["backend"] == "lava" and c["reference"] == "intsim"]
    assert lava_vs_intsim[0]["spike_agreement"] == 1.0 and lava_vs_intsim[0]["first_divergence"] is None

    dom = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          (out / "report.html").resolve().as_uri()], capture_output=True, text=True, timeout=120).stdout
    text = re.sub(r"<[^>]+>", " ", re.sub(r"base64,[^\"]+", "", dom))
    for section in ("Training", "Accuracy per back end", "Quantization", "Core mapping", "Equivalence",
                    "Hardware-aware fine-tuning", "Activity and counters", "NeuroBench view", "Energy"):
        assert section in text, section
    assert 'class="missing"' not in dom  # every section has its data
    assert "loihi2 / lava" in text and "truenorth / intsim" in text
    assert "Davies et al., IEEE Micro 2018" in text and "Merolla et al., Science 2014" in text and "Horowitz" in text
    assert "first diverging (layer, neuron, step)" in text
    imgs = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]{100,})"', dom)
    names = {n for n, _ in imgs}
    assert {"training_curve", "firing_counts_digits", "firing_rates_digits", "firing_counts_mnist_cnn",
            "firing_rates_mnist_cnn", "raster_lava", "energy_per_layer", "agreement_per_layer"} <= names
    # fine-tuned through loihi2's rounding, the float model is the one the chip runs
    ft = data["finetune"]
    assert set(ft) == {"loihi2", "truenorth"}
    assert ft["loihi2"]["spike_agreement_after"] >= 0.999 and ft["loihi2"]["classification_agreement_after"] >= 0.99
    assert data["mnist_activity"]["note"].startswith("MNIST CNN") and 0.1 < data["mnist_activity"]["accuracy"] <= 1
    # numbers, not placeholders: the energy totals appear in nJ
    assert re.search(r"loihi2: [\d,]+\.\d{3} nJ per sample", text) and re.search(r"truenorth: [\d,]+\.\d{3} nJ per sample", text)


def test_report_command_rerenders_and_names_a_missing_run(demo_run, tmp_path, capsys):
    from tsslc.cli import main

    out, _ = demo_run
    assert main(["report", str(out), "-o", str(tmp_path / "r.html")]) == 0
    printed = capsys.readouterr().out
    assert "all-in (add nothing)" in printed and f"wrote {tmp_path / 'r.html'}" in printed
    assert (tmp_path / "r.html").read_text().count("data:image/png;base64,") >= 6
    assert main(["report", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert "run folder not found" in err and "Traceback" not in err
