"""Hardware-aware fine-tuning (tsslc.finetune, `tsslc finetune`) and fan-in-limited
training, on the real digits data, the real truenorth target and the integer simulator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tsslc.cli import main
from tsslc.config import load_config, parse_config
from tsslc.data.digits import digits_arrays, load_digits_datasets
from tsslc.finetune import finetune, target_accuracy
from tsslc.targets import get_target

from conftest import EXAMPLES


@pytest.fixture(scope="module")
def calib():
    return torch.from_numpy(digits_arrays()[0][:256])


def test_finetune_recovers_truenorth_accuracy(digits_fit, digits_test_arrays, calib):
    x, y = digits_test_arrays
    tn = get_target("truenorth")
    train_set, test_set = load_digits_datasets()
    before, _, _ = target_accuracy(digits_fit.network, tn, calib, x, y)
    res = finetune(digits_fit.network, tn, train_set, test_set, epochs=1, calibration=calib)
    after, compiled, _ = target_accuracy(res.network, tn, calib, x, y)
    print(f"\ntruenorth accuracy: float {digits_fit.test_accuracy:.4f}, compiled {before:.4f}, "
          f"after 1 fine-tuning epoch {after:.4f}")
    # issue 15: on target within one point of the float model after fine-tuning. With the
    # rate input and error-feedback rounding the compiled net starts close (seeds 0-3: 95.8,
    # 95.8, 93.1, 97.2 % vs float 96.9, 97.2, 95.8, 96.7 %); after one epoch it is -0.8..+0.8
    # points from float (360 test digits: one digit is 0.28 points)
    assert after >= digits_fit.test_accuracy - 0.01
    assert after >= before - 0.01
    # the fine-tuned float model carries the chip's decays; they compile without decay error
    assert res.network.config.tau_s == pytest.approx(3.2) and res.network.config.tau_m == pytest.approx(16 / 3)
    for row in compiled.metadata["quantization"]["layers"]:
        assert row["decay_error_s"] == pytest.approx(0, abs=1e-12) and row["decay_error_m"] == pytest.approx(0, abs=1e-12)
    # the given network is untouched, the result is a plain float network (no rounding hooks)
    assert digits_fit.network.config.tau_s == 3
    assert not hasattr(res.network.layers["hidden"], "parametrizations")


def test_fan_in_limited_training_fits_truenorth_with_more_levels(calib, digits_test_arrays):
    from tsslc.training.trainer import fit

    raw = load_config(EXAMPLES / "digits.yaml").to_dict()
    raw["Layers"]["output"]["fan_in"] = 64
    cfg = parse_config(raw)
    train_set, test_set = load_digits_datasets()
    r = fit(cfg, train_set, test_set, epochs=8, seed=0)
    out = r.network.layers["output"]
    w = out.weight.detach().numpy()
    assert (w != 0).sum(1).max() <= 64 and np.all(w[out.mask.numpy() == 0] == 0)  # the mask held through training
    assert r.test_accuracy > 0.88
    x, y = digits_test_arrays
    acc, compiled, _ = target_accuracy(r.network, get_target("truenorth"), calib, x, y)
    rows = {row["name"]: row for row in compiled.metadata["quantization"]["layers"]}
    print(f"\nfan_in 64: float {r.test_accuracy:.4f}, truenorth {acc:.4f}, output layer "
          f"{rows['output']['axons_per_input']} axons per input, weight error {rows['output']['weight_error']:.3f}")
    assert rows["output"]["fan_in"] == 50 and rows["output"]["axons_per_input"] == 4
    assert rows["output"]["weight_error"] < 0.2
    assert acc > 0.8


def test_finetune_command_writes_a_run(tmp_path, digits_fit, capsys):
    from tsslc.training.checkpoint import load_checkpoint, save_checkpoint
    from tsslc.training.trainer import make_optimizer

    run = tmp_path / "run"
    run.mkdir()
    net = digits_fit.network
    save_checkpoint(run / "checkpoint.pt", net, make_optimizer(net, net.config), net.config, 15, 0,
                    digits_fit.history)
    rc = main(["finetune", str(run), "--target", "truenorth", "--epochs", "1", "--eval-samples", "120",
               "--no-progress"])
    assert rc == 0
    out = run / "finetune-truenorth"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["target"] == "truenorth" and metrics["eval_samples"] == 120
    # the compiled net already starts within a point of float (rate input, error-feedback
    # rounding, issue 15): fine-tuning keeps it there (one sample of 120 is 0.83 points)
    assert metrics["target_accuracy_after"] >= max(0.95, metrics["target_accuracy_before"] - 1 / 120)
    net2, cfg2, _ = load_checkpoint(out / "checkpoint.pt")
    assert cfg2.tau_s == pytest.approx(3.2)
    assert "accuracy after 1 epoch(s)" in capsys.readouterr().out
    assert not list(out.glob("*.tmp*"))


def test_finetune_command_errors(tmp_path, capsys):
    assert main(["finetune", str(tmp_path / "nothing"), "--target", "truenorth"]) == 1
    err = capsys.readouterr().err
    assert "no training checkpoint here" in err and "Traceback" not in err
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert main(["finetune", str(tmp_path), "--target", "nochip"]) == 1
    assert "unknown target 'nochip'" in capsys.readouterr().err


def test_fan_in_key_is_validated():
    from tsslc.errors import TsslcError

    raw = load_config(EXAMPLES / "digits.yaml").to_dict()
    raw["Layers"]["output"]["fan_in"] = 101
    with pytest.raises(TsslcError, match=r"layer 'output' \(linear\): fan_in 101 exceeds n_inputs 100"):
        parse_config(raw)
    raw["Layers"]["output"]["fan_in"] = 2.5
    with pytest.raises(TsslcError, match=r"layer 'output'.*'fan_in' must be an integer"):
        parse_config(raw)
    raw["Layers"]["output"]["fan_in"] = 30
    cfg = parse_config(raw)
    assert parse_config(cfg.to_dict()).layers[1]["fan_in"] == 30  # round trip


def test_loihi2_finetuned_net_agrees_with_its_float_model(digits_fit, digits_test_arrays, calib):
    """Hardware-aware training for loihi2 puts the weights on the chip's 8-bit grid: the float
    model is then the one the chip runs, and the compiled net classifies as it does."""
    from tsslc.api import compile as compile_graph
    from tsslc.backends import get_backend
    from tsslc.ir import interpreter
    from tsslc.ir.export import graph_from_network

    x, y = digits_test_arrays
    train_set, test_set = load_digits_datasets()
    res = finetune(digits_fit.network, get_target("loihi2"), train_set, test_set, epochs=1, calibration=calib)
    graph = graph_from_network(res.network)
    compiled = compile_graph(graph, "loihi2", calib)
    for row in compiled.metadata["quantization"]["layers"]:  # the snapped weights are exactly representable
        w = graph[row["synapse"]].weight.astype(np.float64)
        w_back = compiled[row["synapse"]].weight.astype(np.float64) * row["weight_unit"]
        np.testing.assert_allclose(w_back, w, rtol=1e-6, atol=1e-9)
    f = interpreter.run(graph, x)
    i = get_backend("intsim")(compiled, x)
    agree = {k: float((f.spikes[k].numpy().astype(np.uint8) == i.spikes[k]).mean()) for k in f.spikes}
    pf, pi = f.predictions().numpy(), i.predictions()
    acc_f, acc_i = float((pf == y).mean()), float((pi == y).mean())
    print(f"\nloihi2 after fine-tuning: spikes equal {agree}, class agreement {(pf == pi).mean():.4f}, "
          f"accuracy float {acc_f:.4f} / intsim {acc_i:.4f}")
    assert (pf == pi).mean() >= 0.995
    assert abs(acc_f - acc_i) <= 0.003
    assert acc_f >= 0.95
    assert min(agree.values()) >= 0.999
