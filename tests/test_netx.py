"""lava-dl netx: tsslc's `.net` files built by lava-dl 0.6.0's own ``netx.hdf5.Network`` (with
the arguments tsslc writes beside them) and run on Lava's bit-accurate fixed_pt models give
spikes identical to intsim in every layer — the digits MLP, the pooled digits CNN (graded
input) and an N-MNIST-shaped CNN on real N-MNIST events (binary input), >= 100 samples each.
"""

from __future__ import annotations

import json
import multiprocessing

import h5py
import numpy as np
import pytest
import torch

import tsslc
from conftest import shared_data
from tsslc.backends.netx import export
from tsslc.cli import main
from tsslc.data.digits import digits_arrays
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.neurons import Loihi2LIF
from tsslc.lava_compat import import_netx

netx = import_netx()

from tsslc.backends.lava import netx as lava_netx  # noqa: E402

N_SAMPLES = 100


def _same_in_every_layer(compiled: Graph, net_path, x) -> dict:
    ref = tsslc.simulate(compiled, x)  # intsim
    got = lava_netx.run(net_path, x)
    assert set(got.spikes) == set(ref.spikes) == set(compiled.of_type(N.IntLIF))
    for name, s in got.spikes.items():
        r = ref.spikes[name]
        assert s.shape == r.shape and s.dtype == np.uint8
        assert np.array_equal(s, r), f"{name}: {(s != r).sum()} of {s.size} spikes differ from intsim"
        assert s.any(), f"{name} never spikes: the comparison would be empty"
    assert np.array_equal(got.predictions(), ref.predictions())
    assert not multiprocessing.active_children()  # every Lava process was stopped
    return {k: int(v.sum()) for k, v in got.spikes.items()}


@pytest.fixture(scope="module")
def digits_netx(digits_graph):
    return tsslc.compile(digits_graph, "loihi2", digits_arrays()[0][:256], variant="netx")


def test_the_netx_variant_never_emits_a_dense_exponent(digits_graph, digits_netx):
    """The default loihi2 compile gives the digits layers exponents != 0 (what netx cannot
    carry); the netx variant none, and the file refuses the default graph naming the layer."""
    default = tsslc.compile(digits_graph, "loihi2", digits_arrays()[0][:256])
    exps = {r["name"]: r["weight_exp"] for r in default.metadata["quantization"]["layers"]}
    assert any(e != 0 for e in exps.values()), exps
    assert all(r["weight_exp"] == 0 for r in digits_netx.metadata["quantization"]["layers"])
    assert digits_netx.metadata["quantization"]["variant"] == "netx"
    bad = next(k for k, e in exps.items() if e != 0)
    with pytest.raises(TsslcError, match=rf"node '{bad}.synapse' \(int_dense\): lava-dl netx cannot express it: "
                                         r"weight_exp = -?\d+.*--variant netx"):
        export(default, "/nonexistent-dir/never-written.net")


def test_digits_mlp_netx_equals_intsim_in_every_layer(digits_netx, digits_test_arrays, tmp_path):
    done = export(digits_netx, tmp_path / "digits.net")
    counts = _same_in_every_layer(digits_netx, done.path, digits_test_arrays[0][:N_SAMPLES])
    assert counts["hidden"] > 1000 and counts["output"] > 100


def test_the_file_is_what_netx_reads(digits_netx, tmp_path):
    """The file as lava-dl's own reader (NetDict) and builder see it: layer types, shapes,
    integer weights as compiled, CUBA neurons with du = iDecay - 1 and dv, vth as compiled."""
    done = export(digits_netx, tmp_path / "d.net")
    cfg = netx.utils.NetDict(str(done.path))
    types = [cfg["layer"][i]["type"] for i in range(len(cfg["layer"]))]
    assert types == ["input", "flatten", "dense", "dense"]
    net = netx.hdf5.Network(net_config=str(done.path), **done.arguments)
    assert [type(layer).__name__ for layer in net.layers] == ["Dense", "Dense"]
    for layer, name in zip(net.layers, ("hidden", "output")):
        p = digits_netx[name].params
        assert int(layer.neuron.du.init) == p.du and int(layer.neuron.dv.init) == p.dv
        assert int(layer.neuron.vth.init) == p.vth and type(layer.neuron).__name__ == "LIFReset"
        w = np.asarray(digits_netx[f"{name}.synapse"].weight)
        # netx shifts the integers left and hands Lava a negative exponent that shifts back
        eff = np.asarray(layer.synapse.weights.init).astype(np.int64) >> -int(layer.synapse.proc_params["weight_exp"])
        assert np.array_equal(eff, w)
    assert done.arguments == {"input_message_bits": 8, "reset_interval": 5, "reset_offset": 1}
    doc = json.loads(done.json_path.read_text())
    assert doc["input"]["port_shape"] == [64] and doc["input"]["encoding"] == "graded"
    assert [layer["population"] for layer in doc["layers"]] == ["hidden", "output"]


def test_pooled_digits_cnn_netx_equals_intsim_in_every_layer(digits_cnn_graph, digits_test_arrays, tmp_path):
    """examples/digits_cnn.yaml (6C3-P2-8C3-P2-10, graded input): both pools are folded into
    the next synapse (a 6x6/stride-2 conv and the dense layer), which netx takes as is."""
    compiled = tsslc.compile(digits_cnn_graph, "loihi2", digits_arrays()[0][:256], variant="netx")
    done = export(compiled, tmp_path / "cnn.net")
    assert [layer["type"] for layer in done.document["layers"]] == ["conv", "conv", "dense"]
    assert done.document["input"]["port_shape"] == [8, 8, 1]  # W, H, C
    with h5py.File(done.path) as f:  # torch's kernel layout; netx flips it itself
        assert np.array_equal(f["layer/1/weight"][()], np.asarray(compiled["conv_1.synapse"].weight))
        assert f["layer/3/type"][0] == b"flatten"
    _same_in_every_layer(compiled, done.path, digits_test_arrays[0][:N_SAMPLES])


def _nmnist_net():
    from tsslc.config import parse_config
    from tsslc.ir.export import graph_from_network
    from tsslc.network import Network

    layers = {
        "conv_1": {"type": "conv", "in_channels": 2, "out_channels": 4, "kernel_size": 5, "padding": 1,
                   "weight_scale": 3, "threshold": 1},
        "pool_1": {"type": "pooling", "kernel_size": 2, "theta": 0.5},
        "conv_2": {"type": "conv", "in_channels": 4, "out_channels": 8, "kernel_size": 5, "weight_scale": 3,
                   "threshold": 1},
        "pool_2": {"type": "pooling", "kernel_size": 2, "theta": 0.5},
        "output": {"type": "linear", "n_inputs": 288, "n_outputs": 10, "weight_scale": 3, "threshold": 1},
    }
    cfg = parse_config({"Network": {"dataset": "NMNIST", "n_steps": 10, "tau_m": 8, "tau_s": 4, "loss": "count",
                                    "n_class": 10, "desired_count": 5, "undesired_count": 1, "lr": 0.0005,
                                    "batch_size": 50, "epochs": 1}, "Layers": layers}, "nmnist-test")
    torch.manual_seed(0)
    return graph_from_network(Network(cfg).eval())


@pytest.mark.slow
def test_nmnist_cnn_netx_equals_intsim_in_every_layer(tmp_path):
    """An N-MNIST-shaped CNN (2x34x34 binary event frames, 4C5-P2-8C5-P2-10, T = 10, seeded
    and untrained but spiking in every layer) on 100 real N-MNIST test samples: binary input
    (input_message_bits 0), two folded pools."""
    NMNIST = shared_data("nmnist-subset")
    graph = _nmnist_net()
    xtr, _ = tsslc.load_data("nmnist", split="train", samples=128, data_dir=NMNIST, n_steps=10)
    xte, _ = tsslc.load_data("nmnist", split="test", samples=N_SAMPLES, data_dir=NMNIST, n_steps=10)
    assert xte.shape == (10, N_SAMPLES, 2, 34, 34) and set(np.unique(xte)) == {0.0, 1.0}
    compiled = tsslc.compile(graph, "loihi2", xtr, variant="netx")
    assert compiled[compiled.input_name].encoding == "binary"
    done = export(compiled, tmp_path / "nmnist.net")
    assert done.arguments["input_message_bits"] == 0 and done.document["input"]["port_shape"] == [34, 34, 2]
    _same_in_every_layer(compiled, done.path, xte)


# --- the command and its refusals --------------------------------------------------------------


def test_tsslc_netx_export_command(digits_netx, tmp_path, capsys):
    model = tsslc.save(digits_netx, tmp_path / "digits_netx.tsslc")
    out = tmp_path / "digits.net"
    assert main(["netx", "export", str(model), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"netx.hdf5.Network(net_config={str(out)!r}, input_message_bits=8, reset_interval=5, reset_offset=1)" in printed
    assert 'netx.hdf5.Network arguments: {"input_message_bits": 8, "reset_interval": 5, "reset_offset": 1}' in printed
    doc = json.loads((tmp_path / "digits.net.json").read_text())
    assert doc["network_arguments"] == {"input_message_bits": 8, "reset_interval": 5, "reset_offset": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.net", "digits.net.json", "digits_netx.tsslc"]
    # never the input
    before = model.read_bytes()
    assert main(["netx", "export", str(model), "-o", str(model)]) == 1
    assert "an input of this command" in capsys.readouterr().err and model.read_bytes() == before


def test_a_refused_graph_leaves_no_file(digits_graph, tmp_path, capsys):
    """A float model (not compiled): one line, nothing written."""
    model = tsslc.save(digits_graph, tmp_path / "float.tsslc")
    assert main(["netx", "export", str(model), "-o", str(tmp_path / "x.net")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "target is None" in err and "--variant netx" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["float.tsslc"]


def _lif(shape, vth=40, bias_mant=0, bias_exp=0):
    return N.IntLIF(shape=shape, params=Loihi2LIF(du=1364, dv=819, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp))


def _chain(weight=None, bias=(0, 0)) -> Graph:
    rng = np.random.default_rng(0)
    g = Graph({"target": "loihi2", "n_steps": 4})
    g.add("in", N.IntInput(shape=(6,), encoding="graded", scale=8.0, bits=8))
    w = (rng.integers(-20, 20, (5, 6)) * 2).astype(np.int32) if weight is None else weight
    g.add("h.synapse", N.IntDense(weight=w), "in")
    g.add("h", _lif((5,), bias_mant=bias[0], bias_exp=bias[1]), "h.synapse")
    g.add("out", N.Output(shape=(5,)), "h")
    return g


@pytest.mark.parametrize("case, message", [
    ("odd", r"node 'h.synapse' \(int_dense\): .*weight 3 .*even values in \[-256, 254\]"),
    ("inhibitory", r"node 'h.synapse' \(int_dense\): .*all weights are <= 0"),
    ("bias", r"node 'h' \(int_lif\): .*bias 5 .*multiple of 2\^6"),
    ("fanout", r"node 'in' \(int_input\): .*it feeds 2 nodes; netx layers form a chain"),
])
def test_what_netx_cannot_express_is_one_error_naming_the_node(case, message, tmp_path):
    if case == "odd":
        g = _chain(weight=np.full((5, 6), 3, np.int32) * np.array([1, -1, 1, -1, 1, -1]))
    elif case == "inhibitory":
        g = _chain(weight=-np.full((5, 6), 4, np.int32))
    elif case == "bias":
        g = _chain(bias=(5, 0))
    else:
        g = _chain()  # a second synapse from the input into the same population
        g.add("h.skip", N.IntDense(weight=np.full((5, 6), 2, np.int32)), "in")
        g.connect("h.skip", "h")
    with pytest.raises(TsslcError, match=message):
        export(g, tmp_path / "x.net")
    assert list(tmp_path.iterdir()) == []


def test_why_inhibitory_only_matrices_are_refused():
    """netx's own optimize_weight_bits on an all-negative matrix, then Lava's Dense
    weight preparation: the effective weights are not the file's integers (the reason the
    export refuses such a layer). Mixed-sign even weights survive exactly."""
    from lava.utils.weightutils import SignMode, clip_weights, truncate_weights

    def effective(w):
        w2, bits, exp, mode = netx.utils.optimize_weight_bits(w.copy())
        sign = {1: SignMode.MIXED, 2: SignMode.EXCITATORY, 3: SignMode.INHIBITORY}[int(mode)]
        lava_w = truncate_weights(clip_weights(w2, sign, num_bits=8), sign, bits).astype(np.int64)
        return lava_w >> -exp if exp <= 0 else lava_w << exp

    inhibitory = -np.array([[128, 64], [32, 2]])
    assert not np.array_equal(effective(inhibitory), inhibitory)
    mixed = np.array([[-256, 254], [100, -2], [0, 6]])
    assert np.array_equal(effective(mixed), mixed)


def test_the_readme_netx_example_as_written(tmp_path, monkeypatch, capsys):
    """README's train → compile --variant netx → export → netx → Lava snippet, run as
    written (in a scratch folder): its read-out (columns b*T + t + layers of Lava's sink)
    gives exactly intsim's output spike counts."""
    import re

    from conftest import REPO

    text = (REPO / "README.md").read_text()
    m = re.search(r"<!-- netx-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README.md has no ```python block after <!-- netx-example -->"
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(m.group(1), "README.md", "exec"), scope)
    assert "netx on Lava: accuracy" in capsys.readouterr().out
    chip = tsslc.compile(scope["graph"], "loihi2", variant="netx")
    ref = tsslc.simulate(chip, scope["x"])
    assert np.array_equal(np.stack(scope["counts"]), ref.spike_counts())
    assert (ref.predictions() == scope["y"]).mean() > 0.8
