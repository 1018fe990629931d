"""Configs in the authors' schema: every shipped example builds, mistakes are clear errors."""

from __future__ import annotations

import copy

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
    assert all(l["theta"] == 0.5 for l in cfg.layers if l.type == "pooling")
    assert sum(l.type == "dropout" for l in cfg.layers) == 7 and cfg.lr == 0.0002
    nm = load_config(EXAMPLES / "nmnist_cnn.yaml")
    assert nm.loss == "count" and (nm.desired_count, nm.undesired_count) == (15, 3)


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
    (lambda r: r["Layers"]["conv_1"].update(kernal_size=3), "unknown key\\(s\\) 'kernal_size'"),
    (lambda r: r["Network"].update(loss="mse"), "unknown loss 'mse'"),
    (lambda r: r["Network"].update(rule="stdp"), "unknown rule 'stdp'"),
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
