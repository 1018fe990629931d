"""`tsslc train` / train_run for real: files, checkpoints, exact resume after SIGKILL,
NaN handling, determinism and DistributedDataParallel with two CPU processes."""

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
from tsslc.config import load_config
from tsslc.data.digits import load_digits_datasets
from tsslc.errors import TsslcError
from tsslc.network import Network
from tsslc.training.checkpoint import load_checkpoint
from tsslc.training.run import train_run

DIGITS = EXAMPLES / "digits.yaml"


def small_batch_config(tmp_path, batch=4):
    """digits.yaml with a small batch: more steps per epoch, so a kill lands mid-epoch."""
    raw = yaml.safe_load(DIGITS.read_text())
    raw["Network"]["batch_size"] = batch
    p = tmp_path / "digits_b4.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


#: one intra-op thread per training process: tiny nets gain nothing from more, and two
#: processes at once (the SIGKILL test) would otherwise fight over the cores.
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def cli(*args):
    return subprocess.Popen([sys.executable, "-m", "tsslc", "train", *map(str, args), "--no-progress"],
                            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_folder_checkpoint_contract_and_determinism(tmp_path):
    m1 = train_run(DIGITS, tmp_path / "a", epochs=2, seed=3, device="cpu", progress=False)
    m2 = train_run(DIGITS, tmp_path / "b", epochs=2, seed=3, device="cpu", progress=False)
    # files
    assert yaml.safe_load((tmp_path / "a" / "config.yaml").read_text()) == load_config(DIGITS).to_dict()
    doc = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert doc == json.loads(json.dumps(m1))
    assert doc["rule"] == "tsslbp" and doc["final_test_acc"] == doc["epochs"][-1]["test_acc"]
    for row in doc["epochs"]:
        assert set(row) >= {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"}
    assert [r["epoch"] for r in doc["epochs"]] == [1, 2]
    assert doc["final_test_acc"] > 0.6
    # checkpoint: plain tensors and containers only
    ck = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    assert ck["format"] == "tsslc-checkpoint" and ck["version"] == 1 and ck["epoch"] == 2
    assert set(ck) >= {"config", "model", "optimizer", "epoch", "rng", "metrics"}
    assert isinstance(ck["config"], dict) and isinstance(ck["rng"]["torch"], torch.Tensor)
    # same seed on CPU: bitwise the same weights
    ck2 = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert states_equal(ck["model"], ck2["model"])
    assert m1["epochs"][-1]["test_acc"] == m2["epochs"][-1]["test_acc"]
    # load_checkpoint gives the trained network back, in eval mode
    net, cfg, raw = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert isinstance(net, Network) and not net.training and cfg.to_dict() == ck["config"]
    _, test = load_digits_datasets()
    x, y = test.tensors
    with torch.no_grad():
        acc = float((net(x)[1].sum(0).argmax(-1) == y).float().mean())
    assert acc == pytest.approx(doc["final_test_acc"])
    # no temp files left behind
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["checkpoint.pt", "config.yaml", "metrics.json"]


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(TsslcError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    for seed in range(20):  # garbage fails in many different places inside torch.load
        junk.write_bytes(torch.randint(0, 256, (1000,), generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.uint8).numpy().tobytes())
        with pytest.raises(TsslcError, match="junk.pt"):
            load_checkpoint(junk)
    good = tmp_path / "good.pt"
    train_run(DIGITS, tmp_path / "r", epochs=1, device="cpu", progress=False)
    data = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    for cut in (100, len(data) // 2, len(data) - 10):
        good.write_bytes(data[:cut])
        with pytest.raises(TsslcError, match="good.pt"):
            load_checkpoint(good)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, foreign)
    with pytest.raises(TsslcError, match="foreign.pt: not a tsslc checkpoint"):
        load_checkpoint(foreign)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    train, test = load_digits_datasets()
    run = tmp_path / "run"
    train_run(DIGITS, run, epochs=1, device="cpu", progress=False, datasets=(train, test))
    before = (run / "checkpoint.pt").read_bytes()
    x, y = train.tensors
    poisoned = torch.utils.data.TensorDataset(torch.full_like(x, float("nan")), y)
    with pytest.raises(TsslcError, match=r"epoch 2.*non-finite.*checkpoint.*\(epoch 1\) is kept"):
        train_run(DIGITS, run, epochs=2, device="cpu", progress=False, resume=True, datasets=(poisoned, test))
    assert (run / "checkpoint.pt").read_bytes() == before
    assert [r["epoch"] for r in json.loads((run / "metrics.json").read_text())["epochs"]] == [1]


def test_resume_after_sigkill_in_second_epoch_matches_uninterrupted(tmp_path):
    cfg = small_batch_config(tmp_path)
    ref = cli(cfg, "--out", tmp_path / "ref", "--epochs", 2, "--seed", 5, "--device", "cpu")
    victim = cli(cfg, "--out", tmp_path / "killed", "--epochs", 2, "--seed", 5, "--device", "cpu")
    metrics = tmp_path / "killed" / "metrics.json"
    deadline = time.time() + 240
    while not metrics.exists():
        assert victim.poll() is None and time.time() < deadline, victim.stderr.read() if victim.poll() else "timeout"
        time.sleep(0.01)
    time.sleep(0.1)  # into the second epoch (360 steps of batch 4)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    resumed = cli(cfg, "--out", tmp_path / "killed", "--epochs", 2, "--seed", 5, "--device", "cpu", "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    a = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    assert states_equal(a["model"], b["model"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert states_equal(sa, sb)
    assert [r["test_acc"] for r in a["metrics"]] == [r["test_acc"] for r in b["metrics"]]


def test_cli_errors_are_one_line(tmp_path):
    p = cli(tmp_path / "missing.yaml", "--out", tmp_path / "r")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "config file not found" in err and "Traceback" not in err
    # resuming with a different config is refused
    train_run(DIGITS, tmp_path / "r", epochs=1, device="cpu", progress=False)
    other = small_batch_config(tmp_path)
    with pytest.raises(TsslcError, match="differs from the config of the run"):
        train_run(other, tmp_path / "r", epochs=2, device="cpu", progress=False, resume=True)
    if not torch.cuda.is_available():
        with pytest.raises(TsslcError, match="no CUDA GPU"):
            train_run(DIGITS, tmp_path / "c", epochs=1, device="cuda", progress=False)


def torchrun(config, out, *args):
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "tsslc", "train", str(config), "--out", str(out), "--device", "cpu", "--no-progress",
                        *map(str, args)], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return p


def dropout_config(tmp_path):
    """digits.yaml with dropout after the hidden layer: each rank draws its own masks, so a
    resume is exact only if every rank's RNG state comes back."""
    raw = yaml.safe_load(DIGITS.read_text())
    raw["Layers"] = {"hidden": raw["Layers"]["hidden"], "drop": {"type": "dropout", "p": 0.2},
                     "output": raw["Layers"]["output"]}
    p = tmp_path / "digits_dropout.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


def test_torchrun_two_cpu_processes_and_exact_resume(tmp_path):
    cfg = dropout_config(tmp_path)
    torchrun(cfg, tmp_path / "ddp", "--epochs", 2, "--seed", 2)
    doc = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert doc["world_size"] == 2 and len(doc["epochs"]) == 2
    assert doc["final_test_acc"] > 0.6
    net, _, ck = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    assert ck["epoch"] == 2 and len(ck["rng_ranks"]) == 2
    assert not torch.equal(ck["rng_ranks"][0]["torch"], ck["rng_ranks"][1]["torch"])
    # stopped after epoch 1, resumed under torchrun: the same weights as the run above
    torchrun(cfg, tmp_path / "part", "--epochs", 1, "--seed", 2)
    torchrun(cfg, tmp_path / "part", "--epochs", 2, "--resume")
    a = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    assert b["epoch"] == 2 and states_equal(a["model"], b["model"])
    assert [r["test_acc"] for r in a["metrics"]] == [r["test_acc"] for r in b["metrics"]]
