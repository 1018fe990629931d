"""The Lava back end against the integer simulator (loihi2) and the float model.

Everything here runs real Lava 0.10.0 processes (fixed_pt: Lava's bit-accurate models).
A batch is one Lava run; the assertions are spike-for-spike on the float model's time axis.
"""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
import torch

from tsslc.ir.neurons import Loihi2LIF
from tsslc.backends import get_backend
from conftest import EXAMPLES
from tsslc.config import load_config
from tsslc.data.digits import digits_arrays
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.export import graph_from_network
from tsslc.ir.graph import Graph
from tsslc.network import Network
from tsslc.passes.structural import drop_dropout, fold_pooling
from tsslc.targets import get_target
import tsslc.backends.lava as lava_backend

LOIHI2 = get_target("loihi2")
N_DIGITS = 200  # test samples of the digits net, one Lava run of 200·T steps


def _agreement(a: dict, b: dict) -> dict[str, float]:
    assert a.keys() == b.keys()
    return {k: float((a[k] == b[k]).mean()) for k in a}


def _compile(float_graph: Graph, calibration: np.ndarray) -> Graph:
    return LOIHI2.quantize(fold_pooling(drop_dropout(float_graph)), calibration)


@pytest.fixture(scope="module")
def digits_compiled(digits_graph):
    xtr, _, _, _ = digits_arrays()
    return _compile(digits_graph, xtr[:256])


@pytest.fixture(scope="module")
def digits_runs(digits_compiled, digits_test_arrays):
    x = digits_test_arrays[0][:N_DIGITS]
    return {
        "intsim": get_backend("intsim")(digits_compiled, x),
        "lava": get_backend("lava")(digits_compiled, x),  # through the back-end registry
    }


def test_digits_fixed_pt_equals_intsim_in_every_layer(digits_runs, digits_compiled, digits_test_arrays):
    ref, res = digits_runs["intsim"], digits_runs["lava"]
    assert set(res.spikes) == {"hidden", "output"}
    for name, s in res.spikes.items():
        assert s.dtype == np.uint8 and s.shape == ref.spikes[name].shape == (5, N_DIGITS, *digits_compiled[name].shape)
        assert np.array_equal(s, ref.spikes[name]), f"{name}: {(s != ref.spikes[name]).sum()} spikes differ"
        assert s.sum() > 0.02 * s.size  # a real, active network
    # the one counting function on identical spikes: identical counters, per core and hops too
    assert res.counters.to_dict() == ref.counters.to_dict()
    assert res.counters.n_samples == N_DIGITS and res.counters.n_steps == 5 and res.counters.core_spikes
    assert res.info["lava"]["lava_steps"] == 5 * N_DIGITS + 2  # one run, depth 2
    y = digits_test_arrays[1][:N_DIGITS]
    acc = float((res.predictions() == y).mean())
    assert acc == float((ref.predictions() == y).mean()) and acc > 0.9
    assert not multiprocessing.active_children()  # every Lava process was stopped


def test_digits_floating_pt_agrees_with_the_float_model(digits_graph, digits_compiled, digits_test_arrays, capsys):
    x = digits_test_arrays[0][:N_DIGITS]
    ref = get_backend("float")(digits_graph, x)
    res = lava_backend.run(digits_compiled, x, select_tag="floating_pt")
    agree = _agreement(ref.spikes, res.spikes)
    with capsys.disabled():
        print("\nLava floating_pt vs float model, per layer:", {k: round(v, 4) for k, v in agree.items()})
    assert all(v > 0.97 for v in agree.values()), agree
    assert res.info["lava"]["select_tag"] == "floating_pt"


# --- a small conv net with pooling (folded into the next synapse by the passes) -----------

CNN = load_config(EXAMPLES / "digits_cnn.yaml")


def test_conv_net_with_pooling_fixed_pt_equals_intsim():
    """An untrained (seeded) 6C3-P2-8C3-P2-10 net: both pools fold (into a 6x6/stride-2 conv
    and into the dense layer); the spikes must match intsim exactly in every layer."""
    torch.manual_seed(0)
    float_graph = graph_from_network(Network(CNN).eval())
    xtr, _, xte, _ = digits_arrays()
    compiled = _compile(float_graph, xtr[:128])
    kinds = [compiled[n].kind for n in compiled.order()]
    assert kinds.count("int_conv2d") == 2 and "sumpool2d" not in kinds
    x = xte[:40]
    ref = get_backend("intsim")(compiled, x)
    res = lava_backend.run(compiled, x)
    assert set(res.spikes) == {"conv_1", "conv_2", "output"}
    for name, s in res.spikes.items():
        assert s.shape == ref.spikes[name].shape == (5, 40, *compiled[name].shape)
        assert np.array_equal(s, ref.spikes[name]), f"{name}: {(s != ref.spikes[name]).sum()} spikes differ"
        assert s.any(), name
    flt = lava_backend.run(compiled, x, select_tag="floating_pt")
    agree = _agreement(get_backend("float")(float_graph, x).spikes, flt.spikes)
    assert all(v > 0.95 for v in agree.values()), agree


# --- hand-built compiled graphs: layouts, exponents, events ----------------------------------

def _lif(shape, vth, du=1364, dv=819):
    return N.IntLIF(shape=shape, params=Loihi2LIF(du=du, dv=dv, vth=vth, bias_mant=0, bias_exp=0))


def _even(rng, lo, hi, shape):
    return (rng.integers(lo // 2, hi // 2, shape) * 2).astype(np.int32)


def _toeplitz(weight: np.ndarray, in_shape, stride, padding, groups) -> np.ndarray:
    """The dense matrix (torch flatten order) of a convolution: columns are the conv of each
    unit input."""
    n_in = int(np.prod(in_shape))
    eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *in_shape)
    cols = torch.nn.functional.conv2d(eye, torch.as_tensor(weight, dtype=torch.float64), None, stride, padding, 1, groups)
    return cols.reshape(n_in, -1).T.round().numpy().astype(np.int32)


@pytest.mark.parametrize("weight_exp", [-2, 1])
def test_conv_weight_exp_is_accounted_for(weight_exp):
    """Lava's Conv ignores weight_exp: the lowering folds a positive one into the weights and
    applies a negative one as a flooring shift in an identity Sparse (one more step of
    latency). Reference: intsim on the same layer written as an IntDense (Toeplitz matrix
    with that weight_exp), on a non-square input with stride, padding and groups."""
    rng = np.random.default_rng(3)
    in_shape, n_steps = (2, 9, 7), 4
    w1 = _even(rng, -60, 60, (4, 2, 3, 3))
    w2 = _even(rng, -40, 80, (6, 2, 3, 2))
    out1, out2 = (4, 9, 7), (6, 4, 3)
    w3 = _even(rng, -100, 100, (5, int(np.prod(out2))))

    def graph(conv: bool) -> Graph:
        g = Graph({"target": "loihi2", "n_steps": n_steps})
        g.add("in", N.IntInput(shape=in_shape, encoding="graded", scale=50.0, bits=8))
        if conv:
            g.add("c1.synapse", N.IntConv2d(weight=w1, stride=1, padding=1, weight_exp=weight_exp), "in")
            g.add("c1", _lif(out1, 60), "c1.synapse")
            g.add("c2.synapse", N.IntConv2d(weight=w2, stride=2, padding=0, groups=2), "c1")
            g.add("c2", _lif(out2, 20), "c2.synapse")
            g.add("flat", N.Flatten(), "c2")
        else:
            g.add("in_flat", N.Flatten(), "in")
            g.add("c1.synapse", N.IntDense(weight=_toeplitz(w1, in_shape, 1, 1, 1), weight_exp=weight_exp), "in_flat")
            g.add("c1", _lif((int(np.prod(out1)),), 60), "c1.synapse")
            g.add("c2.synapse", N.IntDense(weight=_toeplitz(w2, out1, 2, 0, 2)), "c1")
            g.add("c2", _lif((int(np.prod(out2)),), 20), "c2.synapse")
            g.add("flat", N.Flatten(), "c2")
        g.add("fc.synapse", N.IntDense(weight=w3, weight_exp=-1), "flat")
        g.add("fc", _lif((5,), 30), "fc.synapse")
        g.add("out", N.Output(shape=(5,)), "fc")
        return g

    x = np.random.default_rng(4).random((12, *in_shape)).astype(np.float32)
    ref = get_backend("intsim")(graph(conv=False), x)
    res = lava_backend.run(graph(conv=True), x)
    assert res.info["lava"]["depth"] == (4 if weight_exp < 0 else 3)
    for name in ("c1", "c2", "fc"):
        s = res.spikes[name]
        assert np.array_equal(s.reshape(*s.shape[:2], -1), ref.spikes[name]), name
        assert s.any(), name


def test_event_input_as_binary_spikes():
    """Event frames (T, B, *shape) enter as binary spikes (Dense without message bits)."""
    rng = np.random.default_rng(5)
    g = Graph({"target": "loihi2", "n_steps": 6})
    g.add("in", N.IntInput(shape=(2, 5, 5), encoding="binary", scale=1.0, bits=1))
    g.add("flat", N.Flatten(), "in")
    g.add("h.synapse", N.IntDense(weight=_even(rng, -40, 120, (16, 50)), weight_exp=0), "flat")
    g.add("h", _lif((16,), 40, du=4095, dv=100), "h.synapse")
    g.add("o.synapse", N.IntDense(weight=_even(rng, -80, 160, (3, 16)), weight_exp=1), "h")
    g.add("o", _lif((3,), 60), "o.synapse")
    g.add("out", N.Output(shape=(3,)), "o")
    events = (rng.random((6, 9, 2, 5, 5)) < 0.3).astype(np.float32)  # time first
    ref = get_backend("intsim")(g, events)
    res = lava_backend.run(g, events)
    for name in ("h", "o"):
        assert np.array_equal(res.spikes[name], ref.spikes[name]), name
        assert res.spikes[name].any()


# --- errors ------------------------------------------------------------------------------

def test_refuses_graphs_it_cannot_run(digits_graph, digits_compiled, digits_test_arrays):
    x = digits_test_arrays[0][:2]
    with pytest.raises(TsslcError, match="compiled for loihi2"):
        lava_backend.run(digits_graph, x)  # the float graph
    tn = digits_compiled.copy()
    tn.metadata["target"] = "truenorth"
    with pytest.raises(TsslcError, match="target is 'truenorth'.*tsslc compile"):
        lava_backend.run(tn, x)
    with pytest.raises(TsslcError, match="select_tag 'bit_exact'"):
        lava_backend.run(digits_compiled, x, select_tag="bit_exact")
    with pytest.raises(TsslcError, match=r"input of shape \(2, 7\)"):
        lava_backend.run(digits_compiled, np.zeros((2, 7), np.float32))
    assert not multiprocessing.active_children()


def test_tsslc_run_with_the_lava_backend(digits_compiled, tmp_path, capsys):
    """`tsslc run MODEL --backend lava` on a real compiled model file."""
    from tsslc.cli import main
    from tsslc.ir.io import save

    model = save(digits_compiled, tmp_path / "digits_loihi2.tsslc")
    assert main(["run", str(model), "--backend", "lava", "--samples", "30", "--no-progress",
                 "--json", str(tmp_path / "run.json")]) == 0
    out = capsys.readouterr().out
    assert "on lava (loihi2): 30 samples, accuracy" in out
    import json

    res = json.loads((tmp_path / "run.json").read_text())
    assert res["backend"] == "lava" and res["samples"] == 30 and res["accuracy"] > 0.8
    assert res["info"]["lava"]["lava_steps"] == 30 * 5 + 2
    assert res["counters"]["n_samples"] == 30 and res["counters"]["totals"]["spikes"] > 0
