"""Quantization for loihi2: the trained digits net keeps its behaviour; the paper's MNIST
CNN (random weights) compiles; constraints that cannot be met are one clear error."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tsslc.backends import get_backend
import tsslc
from tsslc.report.text import compile_lines
from tsslc.config import load_config
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.export import graph_from_network
from tsslc.network import Network
from tsslc.targets.quantize import quantize
from tsslc.targets import get_target

from conftest import EXAMPLES


@pytest.fixture(scope="module")
def digits_verify(digits_graph, digits_test_arrays):
    from tsslc.data.digits import digits_arrays

    xtr = digits_arrays()[0][:256]
    x, y = digits_test_arrays
    return tsslc.verify(digits_graph, tsslc.compile(digits_graph, "loihi2", xtr), x, y).to_dict()


def test_digits_loihi2_agreement_and_accuracy(digits_verify):
    c = digits_verify["comparisons"][0]
    print({k: v["spike_agreement"] for k, v in c["layers"].items()}, c["classification_agreement"],
          c["accuracy_reference"], c["accuracy_backend"])
    # the goal: >= 99.5 % of classes and <= 0.3 points of accuracy. With GPTQ rounding
    # (the default) measured 99.72 % / +0.28 points (one test image); nearest rounding
    # gave 99.44 % (test below)
    assert c["classification_agreement"] >= 0.995
    assert abs(c["accuracy_delta_points"]) <= 0.3
    assert c["accuracy_reference"] > 0.93
    for layer in ("hidden", "output"):
        assert c["layers"][layer]["spike_agreement"] > 0.995


def test_gptq_rounding_keeps_the_current_error_small():
    from tsslc.targets.loihi2 import W_MAX, W_MIN, _current_error, _gptq_round, _round_even

    rng = np.random.default_rng(0)
    raw = rng.normal(0, 60, size=(20, 50))
    # correlated, non-negative inputs, as PSCs are
    a = np.abs(rng.normal(size=(4000, 8)) @ rng.normal(size=(8, 50)) + rng.normal(0, 0.3, size=(4000, 50)))
    gram = a.T @ a
    near = np.clip(_round_even(raw), W_MIN, W_MAX)
    q = _gptq_round(raw, gram)
    assert q.dtype == np.int64 and (q % 2 == 0).all() and q.min() >= W_MIN and q.max() <= W_MAX
    e_near, e_q = _current_error(near, raw, gram), _current_error(q, raw, gram)
    cur = lambda w: np.sqrt((((w - raw) @ a.T) ** 2).sum() / ((raw @ a.T) ** 2).sum())  # noqa: E731
    assert e_near == pytest.approx(cur(near)) and e_q == pytest.approx(cur(q))
    assert e_q < 0.6 * e_near, (e_q, e_near)
    # weights already on the grid are left as they are
    on_grid = near.astype(np.float64)
    assert np.array_equal(_gptq_round(on_grid, gram), near)
    with pytest.raises(TsslcError, match="unknown rounding 'best'"):
        quantize(Graph_for_rounding(), get_target("loihi2"), np.zeros((1, 3), np.float32), rounding="best")


def Graph_for_rounding():
    from tsslc.ir.graph import Graph

    g = Graph({"n_steps": 5})
    g.add("input", N.Input(shape=(3,), tau_s=3.0))
    g.add("d", N.Dense(weight=np.ones((2, 3), np.float32)), after="input")
    g.add("l", N.LIF(shape=(2,), tau_m=5.0, tau_s=3.0, threshold=1.0), after="d")
    g.add("out", N.Output(shape=(2,)), after="l")
    return g


def test_digits_gptq_rounding_beats_nearest(digits_graph, digits_test_arrays, digits_verify):
    from tsslc.data.digits import digits_arrays

    xtr = digits_arrays()[0][:256]
    x, y = digits_test_arrays
    near = tsslc.verify(digits_graph, tsslc.compile(digits_graph, "loihi2", xtr, rounding="nearest"), x, y).to_dict()
    g, n = digits_verify["comparisons"][0], near["comparisons"][0]
    print(f"\ndigits on loihi2, hidden spikes differing: gptq {g['layers']['hidden']['mismatches']}, "
          f"nearest {n['layers']['hidden']['mismatches']}; classes {g['classification_agreement']:.4f} vs "
          f"{n['classification_agreement']:.4f}")
    assert g["layers"]["hidden"]["mismatches"] < 0.6 * n["layers"]["hidden"]["mismatches"]
    # Classes: both roundings agree with the float model on all but a sample or two of 360, and
    # which one wins by a sample depends on the trained net's float rounding (1 vs 2 threads
    # train slightly different nets), so GPTQ may trail nearest by at most one sample.
    assert g["classification_agreement"] >= 0.99
    assert g["classification_agreement"] >= n["classification_agreement"] - 1.5 / len(y)
    for row, row_n in zip(digits_verify["quantization"]["layers"], near["quantization"]["layers"]):
        assert row["rounding"] == "gptq" and row_n["rounding"] == "nearest"
        assert row["current_error_rel_rms"] < 0.6 * row["current_error_rel_rms_nearest"]
        assert row_n["current_error_rel_rms"] == pytest.approx(row["current_error_rel_rms_nearest"])


def test_digits_quantization_report(digits_verify):
    q = digits_verify["quantization"]
    assert q["input"] == {"encoding": "graded", "scale": 16.0, "bits": 8, "exact": True, "max_abs": 1.0, "error_max": 0.0}
    for row in q["layers"]:
        assert row["du"] == 1364 and row["dv"] == 819  # tau_s 3, tau_m 5
        assert row["tau_s_effective"] == pytest.approx(4096 / 1365)
        assert row["weight_error_rel_rms"] < 0.03
        assert row["weight_saturated_fraction"] == 0.0
        assert 0 < row["vth"] < 2**17
        assert row["state_peak_fraction"] <= 0.5 + 1e-9


def test_quantized_weights_are_lava_weights(digits_graph, digits_test_arrays):
    from tsslc.targets.loihi2 import dense_weights

    x, _ = digits_test_arrays
    cg = get_target("loihi2").quantize(digits_graph, x[:64])
    for name in cg.of_type(N.IntDense):
        w = cg[name].weight
        assert w.min() >= -256 and w.max() <= 254 and not (w % 2).any()
        np.testing.assert_array_equal(dense_weights(w), w)  # Lava keeps them as they are
    assert cg.metadata["target"] == "loihi2"
    kinds = [type(cg[n]).__name__ for n in cg.order()]
    assert kinds[0] == "IntInput" and kinds[-1] == "Output" and kinds.count("IntLIF") == 2


def test_mnist_cnn_compiles_for_loihi2(capsys):
    torch.manual_seed(0)
    net = Network(load_config(EXAMPLES / "mnist_cnn.yaml")).eval()
    g = graph_from_network(net)
    x = torch.rand(16, 1, 28, 28).numpy()
    x = ((x - 0.1307) / 0.3081).astype(np.float32)
    cg = tsslc.compile(g, "loihi2", x)
    for line in compile_lines(cg):
        print(line)
    out = capsys.readouterr().out
    assert "conv_1" in out and "FC_1" in out and "mapping:" in out
    convs = cg.of_type(N.IntConv2d)
    assert len(convs) == 2 and all(cg[c].weight_exp == 0 for c in convs)
    assert all(np.abs(cg[c].weight).max() <= 256 and not (cg[c].weight % 2).any() for c in convs)
    assert not cg.of_type(N.SumPool2d)
    res = get_backend("intsim")(cg, x[:4])
    assert res.spikes["output"].shape == (5, 4, 10)
    assert cg.metadata["mapping"]["cores"] >= 4
    # every layer, conv ones too, rounded by GPTQ with a smaller current error than nearest
    for row in cg.metadata["quantization"]["layers"]:
        assert row["rounding"] == "gptq", row["name"]
        assert row["current_error_rel_rms"] < row["current_error_rel_rms_nearest"], row["name"]


def test_patch_gram_gives_the_conv_current_energy():
    """wᵀ H w = Σ over steps, samples and output positions of (w ⊛ input)²: the conv's
    Gram matrix is that of its input patches in the weight's flattening order."""
    from tsslc.layers import conv_current
    from tsslc.targets.quantize import _patch_gram

    g = torch.Generator().manual_seed(1)
    v = torch.rand(3, 2, 4, 9, 9, generator=g)  # T, B, C, H, W
    w = torch.randn(1, 4, 3, 3, generator=g, dtype=torch.float64)
    for stride, padding in ((1, 0), (2, 1)):
        H = _patch_gram(v, (3, 3), stride, padding)
        cur = conv_current(v.double(), w, stride, padding, 1)
        flat = w.reshape(-1)
        assert float(flat @ H @ flat) == pytest.approx(float((cur**2).sum()), rel=1e-9)


def test_quantize_errors_name_the_layer(digits_graph, digits_test_arrays):
    x, _ = digits_test_arrays
    tgt = get_target("loihi2")
    cnn = graph_from_network(Network(load_config(EXAMPLES / "mnist_cnn.yaml")))
    with pytest.raises(TsslcError, match="node 'pooling_1' \\(sumpool2d\\).*fold_pooling"):
        quantize(cnn, tgt, np.zeros((2, 1, 28, 28), np.float32))
    bad = digits_graph.with_node("hidden", replace(digits_graph["hidden"], threshold=-1.0))
    with pytest.raises(TsslcError, match="node 'hidden' \\(lif\\): 'threshold' must be > 0, got -1"):  # Graph.validate, before quantizing
        quantize(bad, tgt, x[:8])
    bad = digits_graph.with_node("output.synapse", N.Dense(weight=np.zeros_like(digits_graph["output.synapse"].weight)))
    with pytest.raises(TsslcError, match="layer 'output': all weights of 'output.synapse' are zero"):
        quantize(bad, tgt, x[:8])
    bad = digits_graph.with_node("hidden", replace(digits_graph["hidden"], threshold=1e-9))  # vth would round to 0
    with pytest.raises(TsslcError, match="layer 'hidden': threshold rounds to vth=0.*remedy"):
        quantize(bad, tgt, x[:8])
    cg = tgt.quantize(digits_graph, x[:8])
    with pytest.raises(TsslcError, match="already compiled"):
        quantize(cg, tgt, x[:8])
