"""Training a user can trust: a dead network is reported (with its layers' firing rates),
and stopping a run during its evaluation loses no trained epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from conftest import EXAMPLES, REPO
from tsslc.training.health import DEAD_RATE, diagnose

DIGITS = EXAMPLES / "digits.yaml"
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def dead_config(tmp_path):
    """digits.yaml whose hidden layer needs a membrane of 1000 to fire: it never does, so the
    output never does either."""
    raw = yaml.safe_load(DIGITS.read_text())
    raw["Layers"]["hidden"]["threshold"] = 1000
    p = tmp_path / "dead.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


def test_a_dead_network_is_reported(tmp_path):
    p = subprocess.run([sys.executable, "-m", "tsslc", "train", str(dead_config(tmp_path)), "--out",
                        str(tmp_path / "run"), "--epochs", "2", "--no-progress", "--device", "cpu"],
                       cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    warn = [l for l in p.stderr.splitlines() if l.startswith("warning: ")]
    assert any("output layer 'output' fires 0 spikes per neuron per step" in l and "layer 'hidden'" in l
               and "means nothing" in l for l in warn), p.stderr
    assert any("the training loss did not move" in l for l in warn), p.stderr
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for row in doc["epochs"]:
        assert row["firing_rates"] == {"hidden": 0.0, "output": 0.0}
        assert any("'output'" in w for w in row["warnings"])
        lo, hi = row["train_loss_range"]
        assert lo == pytest.approx(hi, rel=1e-6)  # float32 sums of the same numbers
    assert len(doc["warnings"]) >= 4 and doc["warnings"] == [w for r in doc["epochs"] for w in r["warnings"]]


def test_a_live_network_is_not_reported(digits_fit):
    for row in digits_fit.history:
        assert row["warnings"] == []
        assert row["firing_rates"]["output"] > 10 * DEAD_RATE
        assert row["train_loss_range"][0] < row["train_loss_range"][1]


def test_diagnose_rules():
    rates = {"conv": 0.05, "fc": 2e-4, "output": 0.0}
    w = diagnose({"epoch": 3, "firing_rates": rates, "test_acc": 0.1, "train_loss_range": [1.0, 2.0],
                  "train_loss": 1.5}, [], "output")
    assert len(w) == 1 and "epoch 3" in w[0] and "activity dies at layer 'fc' (0.0002" in w[0] and "10.00 %" in w[0]
    # a loss equal to the previous epoch's
    row = {"epoch": 2, "firing_rates": {"output": 0.1}, "train_loss": 3.75, "train_loss_range": [3.0, 4.0]}
    assert "previous epoch's" in diagnose(row, [{"train_loss": 3.75}], "output")[0]
    assert diagnose(row, [{"train_loss": 3.5}], "output") == []


SCRIPT = """
import sys, time, torch
from torch.utils.data import Dataset
from tsslc.data.digits import load_digits_datasets
from tsslc.training.run import train_run
torch.set_num_threads(1)
train, test = load_digits_datasets()


class Slow(Dataset):
    # The test set read at 30 ms a sample: its evaluation takes over ten seconds however fast
    # the machine, so a signal sent just after epoch 1's checkpoint lands inside it.
    def __init__(self, base):
        self.base = base
    def __len__(self):
        return len(self.base)
    def __getitem__(self, i):
        time.sleep(0.03)
        return self.base[i]


if sys.argv[3] == "big":
    test = Slow(test)
train_run(sys.argv[1], sys.argv[2], epochs=2, seed=4, device="cpu", progress=False, resume=True,
          datasets=(train, test))
"""


def run_script(out, test_set):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(DIGITS), str(out), test_set], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_stopping_during_evaluation_keeps_the_trained_epoch(tmp_path, sig):
    ref = run_script(tmp_path / "ref", "small")
    victim = run_script(tmp_path / "victim", "big")
    ckpt = tmp_path / "victim" / "checkpoint.pt"
    deadline = time.time() + 240
    while not ckpt.exists():  # written when epoch 1's training ends, before its evaluation
        assert victim.poll() is None and time.time() < deadline, victim.communicate()[1][-3000:]
        time.sleep(0.01)
    time.sleep(0.3)
    assert victim.poll() is None, "the evaluation ended before the signal"
    victim.send_signal(sig)
    _, err = victim.communicate(timeout=120)
    assert victim.returncode != 0
    if sig == signal.SIGINT:
        assert "interrupted while evaluating epoch 1" in err and "--resume evaluates it" in err, err[-2000:]
    saved = torch.load(ckpt, weights_only=True)
    assert saved["epoch"] == 1 and "train_loss" in saved["metrics"][-1] and "test_acc" not in saved["metrics"][-1]
    assert not (tmp_path / "victim" / "metrics.json").exists()  # written after an evaluation only
    # resumed: epoch 1 is evaluated, not trained again, and the run ends as if never stopped
    resumed = run_script(tmp_path / "victim", "small")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    _, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err[-3000:]
    a = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)
    b = torch.load(ckpt, weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    keys = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "firing_rates")
    assert [{k: r[k] for k in keys} for r in a["metrics"]] == [{k: r[k] for k in keys} for r in b["metrics"]]
    doc = json.loads((tmp_path / "victim" / "metrics.json").read_text())
    assert [r["epoch"] for r in doc["epochs"]] == [1, 2] and doc["final_test_acc"] == a["metrics"][-1]["test_acc"]
