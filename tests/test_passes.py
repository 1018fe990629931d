"""Structural passes preserve the spikes (reference interpreter), and say why when they cannot apply."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from test_ir_interpreter_conv import trained_conv_net
from tsslc.ir import interpreter
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.passes import structural as P


def _agreement(a, b):
    """Fraction of identical (neuron, step) spike entries over all LIF nodes of ``a``."""
    same = sum(int((a.spikes[n].double() == b.spikes[n].double()).sum()) for n in a.spikes)
    return same / sum(s.numel() for s in a.spikes.values())


def _assert_identical(a, b):
    assert set(a.spikes) == set(b.spikes)
    for n in a.spikes:
        assert torch.equal(a.spikes[n], b.spikes[n]), n


def test_drop_dropout_is_exact():
    _, graph, x, _ = trained_conv_net()
    g = P.drop_dropout(graph)
    assert not g.of_type(N.Dropout) and graph.of_type(N.Dropout)  # the argument is untouched
    assert g.predecessors("output_flatten") == ["pool_2"]
    _assert_identical(interpreter.run(graph, x), interpreter.run(g, x))


def test_fold_pooling_preserves_spikes_exactly_in_float64():
    fit, graph, x, y = trained_conv_net()
    g = P.fold_pooling(graph)
    assert not g.of_type(N.SumPool2d) and not g.of_type(N.Dropout)
    c2 = g["conv_2.synapse"]
    assert c2.weight.shape == (16, 8, 6, 6) and (c2.stride, c2.padding) == (2, 2)
    assert g["output.synapse"].weight.shape == (10, 16 * 3 * 3)
    # remainder row/column (index 2 of the 3x3 map) has zero weight
    w = g["output.synapse"].weight.reshape(10, 16, 3, 3)
    assert not w[:, :, 2, :].any() and not w[:, :, :, 2].any()
    assert np.array_equal(w[:, :, 0, 1], graph["output.synapse"].weight.astype(np.float64) * 1.1)
    ref64 = interpreter.run(graph, x, dtype=torch.float64)
    new64 = interpreter.run(g, x, dtype=torch.float64)
    _assert_identical(ref64, new64)
    # float32: the torch model itself against the folded graph (reassociated sums)
    ref32, new32 = interpreter.run(graph, x), interpreter.run(g, x)
    agreement = _agreement(ref32, new32)
    print(f"fold_pooling float32 spike agreement: {agreement:.6f}")
    assert agreement > 0.999
    assert np.mean(new32.predictions().numpy() == y) >= fit.test_accuracy - 0.01


def test_fold_pooling_into_strided_grouped_conv_and_pool_chain():
    rng = np.random.default_rng(3)
    g = Graph({"n_steps": 6})
    g.add("input", N.Input(shape=(2, 17, 17), tau_s=3.0))
    g.add("p1", N.SumPool2d(kernel=2, theta=1.3), after="input")      # 17 -> 8, remainder dropped
    g.add("p2", N.SumPool2d(kernel=2, theta=0.9), after="p1")         # 8 -> 4
    g.add("c.synapse", N.Conv2d(weight=rng.normal(0, 1, (4, 1, 2, 2)), stride=2, groups=2), after="p2")
    g.add("c", N.LIF(shape=(4, 2, 2), threshold=0.5), after="c.synapse")
    g.add("output_psc", N.Output(shape=(4, 2, 2)), after="c")
    f = P.fold_pooling(g)
    conv = f["c.synapse"]
    assert conv.weight.shape == (4, 1, 8, 8) and conv.stride == 8 and conv.groups == 2
    x = rng.uniform(0, 1, (32, 2, 17, 17))
    a, b = interpreter.run(g, x, dtype=torch.float64), interpreter.run(f, x, dtype=torch.float64)
    assert a.spikes["c"].sum() > 0
    _assert_identical(a, b)


def test_fold_input_scale(digits_graph, digits_test_arrays):
    x = digits_test_arrays[0]
    raw = np.round(x * 16)  # the digits pixels before the /16 of the data loader
    g = P.fold_input_scale(digits_graph, 1 / 16)
    assert g.metadata["input_scale_folded"] == 1 / 16
    # 1/16 is a power of two: even float32 is exact
    _assert_identical(interpreter.run(digits_graph, x), interpreter.run(g, raw))
    h = P.fold_input_scale(digits_graph, 0.3)
    _assert_identical(interpreter.run(digits_graph, x * 0.3, dtype=torch.float64),
                      interpreter.run(h, x, dtype=torch.float64))


def _branching(names_order):
    """input → two dense synapses summed by one LIF → output, nodes added in ``names_order``."""
    rng = np.random.default_rng(5)
    w = {"b.synapse": rng.normal(0, 1, (6, 4)).astype(np.float32), "a.synapse": rng.normal(0, 1, (6, 4)).astype(np.float32)}
    nodes = {"input": N.Input(shape=(4,), tau_s=3.0), "a.synapse": N.Dense(weight=w["a.synapse"]),
             "b.synapse": N.Dense(weight=w["b.synapse"]), "lif": N.LIF(shape=(6,), threshold=0.3),
             "output_psc": N.Output(shape=(6,))}
    g = Graph({"n_steps": 5})
    for n in names_order:
        g.add(n, nodes[n])
    for s, d in [("input", "b.synapse"), ("input", "a.synapse"), ("a.synapse", "lif"), ("b.synapse", "lif"), ("lif", "output_psc")]:
        g.connect(s, d)
    return g


def test_canonical_order_makes_insertion_order_irrelevant():
    one = _branching(["input", "b.synapse", "a.synapse", "lif", "output_psc"])
    two = _branching(["output_psc", "lif", "a.synapse", "input", "b.synapse"])
    assert one != two and one.order() != two.order()
    c1, c2 = P.canonical_order(one), P.canonical_order(two)
    assert c1 == c2 and c1.order() == ["input", "a.synapse", "b.synapse", "lif", "output_psc"]
    x = np.random.default_rng(0).uniform(0, 1, (16, 4))
    _assert_identical(interpreter.run(one, x), interpreter.run(c2, x))


def test_passes_that_cannot_apply_name_the_node():
    g = Graph({"n_steps": 3})
    g.add("input", N.Input(shape=(1, 5, 5), tau_s=3.0))
    g.add("pool", N.SumPool2d(kernel=2), after="input")
    g.add("c.synapse", N.Conv2d(weight=np.ones((2, 1, 3, 3), np.float32), padding=1), after="pool")
    g.add("c", N.LIF(shape=(2, 2, 2)), after="c.synapse")
    g.add("output_psc", N.Output(shape=(2, 2, 2)), after="c")
    with pytest.raises(P.PassError, match="'pool' into its padded conv.*1 row"):
        P.fold_pooling(g)
    h = Graph({"n_steps": 3})
    h.add("input", N.Input(shape=(1, 4, 4), tau_s=3.0))
    h.add("c.synapse", N.Conv2d(weight=np.ones((2, 1, 1, 1), np.float32)), after="input")
    h.add("c", N.LIF(shape=(2, 4, 4)), after="c.synapse")
    h.add("pool", N.SumPool2d(kernel=2), after="c")
    h.add("output_psc", N.Output(shape=(2, 2, 2)), after="pool")
    with pytest.raises(P.PassError, match="'pool': it feeds 'output_psc'"):
        P.fold_pooling(h)
    with pytest.raises(P.PassError, match="finite non-zero"):
        P.fold_input_scale(h, 0.0)
