"""Configs in the authors' schema: every shipped example builds, mistakes are clear errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from conftest import EXAMPLES
from tsslc.config import load_config, parse_config
from tsslc.errors import TsslcError
from tsslc.network import Network

PAPER = {  # file -> (dataset input, conv/linear widths, n_steps)
    "mnist_cnn.yaml": ((1, 28, 28), [15, 40, 300, 10], 5),
    "fashion_mlp.yaml": ((1, 28, 28), [400, 400, 10], 5),
    "fashion_cnn.yaml": ((1, 28, 28), [32, 64, 1024, 10], 5),
    "nmnist_cnn.yaml": ((2, 34, 34), [12, 64, 10], 30),
    "nmnist_subset.yaml": ((2, 34, 34), [12, 64, 10], 30),
    "cifar10_cnn1.yaml": ((3, 32, 32), [96, 256, 384, 384, 256, 1024, 1024, 10], 5),
    "cifar10_cnn2.yaml": ((3, 32, 32), [128, 256, 512, 1024, 512, 1024, 512, 10], 5),
    "digits.yaml": ((1, 8, 8), [100, 10], 5),
    "digits_deep.yaml": ((1, 8, 8), [100, 100, 100, 10], 5),
    "mnist_mlp.yaml": ((1, 28, 28), [400, 400, 10], 5),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_shipped_configs_build_and_round_trip(name):
    cfg = load_config(EXAMPLES / name)
    shape, widths, T = PAPER[name]
    assert cfg.input_shape == shape and cfg.n_steps == T
    assert parse_config(cfg.to_dict(), "again").to_dict() == cfg.to_dict()
    with torch.device("meta"):  # shapes only: CNN2 has 45 M weights
        net = Network(cfg)
    assert [l.weight.shape[0] for l in net.spiking_layers] == widths


def test_cifar_recipe_details():
    cfg = load_config(EXAMPLES / "cifar10_cnn1.yaml")
    convs = [l for l in cfg.layers if l.type == "conv"]
    assert all(l["weight_scale"] == 5 and l["padding"] == 1 and l["kernel_size"] == 3 for l in convs)
    # the authors' PoolLayer reads only 'theta' (default 1.1): their 'threshold: 0.5' is unused
    assert all(l["theta"] == 1.1 for l in cfg.layers if l.type == "pooling")
    assert sum(l.type == "dropout" for l in cfg.layers) == 7 and cfg.lr == 0.0002
    # their order: dropout after the pooling, not between conv and pooling
    names = [l.name for l in cfg.layers]
    assert names[names.index("conv_2"):names.index("conv_3")] == ["conv_2", "pooling_1", "dropout_2"]
    nm = load_config(EXAMPLES / "nmnist_cnn.yaml")
    assert nm.loss == "count" and (nm.desired_count, nm.undesired_count) == (15, 3)


# Every paper config against the authors' shipped configs (TSSLBP_SPEC.md §4.1, §6 table):
# Network settings, then per layer (name, output shape, weights) derived by hand:
# conv: out = in + 2·pad - k + 1, weights = C_out·C_in·k²; pool: out = in // 2; dense: n_in·n_out.
PAPER_NETWORKS = {
    "mnist_cnn.yaml": (
        dict(recipe="authors", n_steps=5, tau_m=5, tau_s=3, loss="kernel", batch_size=50, epochs=200, lr=5e-4),
        [("conv_1", (15, 24, 24), 15 * 1 * 25), ("pooling_1", (15, 12, 12), 0),
         ("conv_2", (40, 8, 8), 40 * 15 * 25), ("pooling_2", (40, 4, 4), 0),
         ("FC_1_flatten", (640,), 0), ("FC_1", (300,), 640 * 300), ("output", (10,), 3000)]),
    "fashion_cnn.yaml": (
        dict(recipe="authors", n_steps=5, tau_m=5, tau_s=3, loss="kernel", batch_size=50, epochs=100, lr=5e-4,
             desired_count=4),
        [("conv_1", (32, 28, 28), 32 * 25), ("pooling_1", (32, 14, 14), 0),
         ("conv_2", (64, 14, 14), 64 * 32 * 25), ("pooling_2", (64, 7, 7), 0),
         ("FC_1_flatten", (3136,), 0), ("FC_1", (1024,), 3136 * 1024), ("output", (10,), 10240)]),
    "fashion_mlp.yaml": (
        dict(recipe="authors", n_steps=5, tau_m=5, tau_s=3, loss="kernel", batch_size=100, epochs=100, lr=5e-4,
             desired_count=5),
        [("FC_1_flatten", (784,), 0), ("FC_1", (400,), 313600), ("FC_2", (400,), 160000),
         ("output", (10,), 4000)]),
    "nmnist_cnn.yaml": (
        dict(recipe="authors", n_steps=30, tau_m=8, tau_s=4, loss="count", batch_size=50, epochs=100, lr=5e-4,
             desired_count=15, undesired_count=3),
        [("conv_1", (12, 32, 32), 12 * 2 * 25), ("pooling_1", (12, 16, 16), 0),
         ("conv_2", (64, 12, 12), 64 * 12 * 25), ("pooling_2", (64, 6, 6), 0),
         ("output_flatten", (2304,), 0), ("output", (10,), 23040)]),
    "cifar10_cnn1.yaml": (
        dict(recipe="authors", n_steps=5, tau_m=5, tau_s=3, loss="kernel", batch_size=50, epochs=150, lr=2e-4),
        [("conv_1", (96, 32, 32), 96 * 27), ("conv_2", (256, 32, 32), 256 * 96 * 9),
         ("pooling_1", (256, 16, 16), 0), ("conv_3", (384, 16, 16), 384 * 256 * 9),
         ("pooling_2", (384, 8, 8), 0), ("conv_4", (384, 8, 8), 384 * 384 * 9),
         ("conv_5", (256, 8, 8), 256 * 384 * 9), ("FC_1_flatten", (16384,), 0),
         ("FC_1", (1024,), 16384 * 1024), ("FC_2", (1024,), 1024 * 1024), ("output", (10,), 10240)]),
    "cifar10_cnn2.yaml": (
        dict(recipe="authors", n_steps=5, tau_m=5, tau_s=3, loss="kernel", batch_size=50, epochs=150, lr=2e-4),
        [("conv_1", (128, 32, 32), 128 * 27), ("conv_2", (256, 32, 32), 256 * 128 * 9),
         ("pooling_1", (256, 16, 16), 0), ("conv_3", (512, 16, 16), 512 * 256 * 9),
         ("pooling_2", (512, 8, 8), 0), ("conv_4", (1024, 8, 8), 1024 * 512 * 9),
         ("conv_5", (512, 8, 8), 512 * 1024 * 9), ("FC_1_flatten", (32768,), 0),
         ("FC_1", (1024,), 32768 * 1024), ("FC_2", (512,), 1024 * 512), ("output", (10,), 5120)]),
}


@pytest.mark.parametrize("name", sorted(PAPER_NETWORKS))
def test_paper_configs_are_the_authors_networks(name):
    from tsslc.network import describe

    cfg = load_config(EXAMPLES / name)
    settings, layers = PAPER_NETWORKS[name]
    assert {k: getattr(cfg, k) for k in settings} == settings
    assert cfg.rule == "tsslbp" and cfg.prediction_rule == "psc"
    rows = {r.name: r for r in describe(cfg)}
    for layer, shape, params in layers:
        assert (rows[layer].shape, rows[layer].parameters) == (shape, params), layer
    # dropout keeps its input's shape and holds no weights; the weights are all accounted for
    spiking = sum(p for _, _, p in layers)
    assert sum(r.parameters for r in rows.values()) == spiking
    assert all(r.parameters == 0 for r in rows.values() if r.type in ("pooling", "dropout", "flatten"))
    assert all(l["theta"] == 1.1 for l in cfg.layers if l.type == "pooling")


def test_inspect_prints_a_config(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    p = subprocess.run([sys.executable, "-m", "tsslc", "inspect", str(EXAMPLES / "fashion_cnn.yaml")],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "recipe=authors" in lines[1] and "prediction=psc" in lines[1] and "batch=50" in lines[1]
    row = next(l for l in lines if l.startswith("FC_1 "))
    assert row.split()[1:] == ["linear", "1024", "3,211,264"]
    assert lines[-1].split() == ["total", f"{800 + 51200 + 3211264 + 10240:,}"]
    p = subprocess.run([sys.executable, "-m", "tsslc", "inspect", str(EXAMPLES / "fashion_cnn.yaml"), "--png",
                        str(tmp_path / "g.png")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "is a config" in p.stderr and "Traceback" not in p.stderr


BASE = {"Network": {"n_steps": 5, "tau_m": 5, "tau_s": 3, "loss": "kernel", "n_class": 10, "dataset": "MNIST"},
        "Layers": {"conv_1": {"type": "conv", "in_channels": 1, "out_channels": 4, "kernel_size": 5},
                   "pooling_1": {"type": "pooling", "kernel_size": 2},
                   "fc": {"type": "linear", "n_inputs": 576, "n_outputs": 10}}}


def edited(fn):
    raw = copy.deepcopy(BASE)
    fn(raw)
    return raw


@pytest.mark.parametrize("edit,message", [
    (lambda r: r["Layers"]["conv_1"].update(type="lstm"), "layer 'conv_1': unknown layer type 'lstm'"),
    (lambda r: r["Layers"]["fc"].pop("n_outputs"), "layer 'fc' \\(linear\\): missing key 'n_outputs'"),
    (lambda r: r["Network"].pop("tau_s"), "Network: missing key 'tau_s'"),
    (lambda r: r["Layers"]["conv_1"].update(kernal_size=3), "unknown key 'kernal_size' \\(did you mean 'kernel_size'\\?\\)"),
    (lambda r: r["Network"].update(loss="mse"), "unknown loss 'mse'"),
    (lambda r: r["Network"].update(rule="stdp"), "unknown rule 'stdp'"),
    (lambda r: r["Network"].update(recipe="mine"), "unknown recipe 'mine' \\(expected one of paper, authors\\)"),
    (lambda r: r["Network"].update(prediction="vote"), "unknown prediction 'vote'"),
    (lambda r: r["Network"].update(nmnist_stabilize="yes"), "'nmnist_stabilize' must be true or false"),
    (lambda r: r["Network"].update(nmnist_window_ms=0), "'nmnist_window_ms' must be > 0"),
    (lambda r: r["Layers"]["pooling_1"].update(stride=1), "stride must equal kernel_size"),
    (lambda r: r["Layers"]["d"] if False else r["Layers"].update(d={"type": "dropout", "p": 1.0}), "'p' must be in"),
    (lambda r: r.pop("Layers"), "missing section 'Layers'"),
])
def test_schema_errors(edit, message):
    with pytest.raises(TsslcError, match=message):
        parse_config(edited(edit), "net.yaml")


@pytest.mark.parametrize("edit,message", [
    (lambda r: r["Layers"]["fc"].update(n_inputs=500), "layer 'fc' \\(linear\\): n_inputs is 500 but its input has 576"),
    (lambda r: r["Layers"]["conv_1"].update(in_channels=3), "in_channels is 3 but its input has 1 channels"),
    (lambda r: r["Layers"]["fc"].update(n_outputs=7), "output shape is \\(7,\\), but n_class is 10"),
    (lambda r: r["Layers"]["conv_1"].update(kernel_size=29), "kernel 29 does not fit input"),
])
def test_shape_mismatches_name_the_layer(edit, message):
    cfg = parse_config(edited(edit), "net.yaml")
    with pytest.raises(TsslcError, match=message):
        Network(cfg)


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(TsslcError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "bad.yaml"
    p.write_text("Network: [unclosed\n")
    with pytest.raises(TsslcError, match="bad.yaml: not valid YAML"):
        load_config(p)
    p.write_text(yaml.safe_dump(edited(lambda r: r["Network"].update(n_steps="five"))))
    with pytest.raises(TsslcError, match="'n_steps' must be a number"):
        load_config(p)


def test_a_bundled_config_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no file of that name here
    cfg = load_config("digits")
    assert Path(cfg.source).name == "digits.yaml" and cfg.n_class == 10
    with pytest.raises(TsslcError, match="config file not found: digitz .*did you mean 'digits'"):
        load_config("digitz")
    (tmp_path / "digits").write_text("Network: [unclosed\n")  # a file of that name wins
    with pytest.raises(TsslcError, match="digits: not valid YAML"):
        load_config("digits")
