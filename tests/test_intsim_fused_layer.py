"""The fused dense layer of the integer simulator (Loihi 2 on the CPU, one sample a call):
synapse, population and counts in one compiled pass. Held against the unfused path
(:func:`simulate`: the float32 matmul of ``prepare_synapse`` then the population loop, itself
tested against ``neuron_step``) and against counting the spikes afterwards
(:func:`tsslc.backends.counters.count`, the full binarised synapse)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tsslc import fused_cpu
from tsslc.backends import counters as C
from tsslc.backends.intsim import plan, run as intsim_run, simulate
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.neurons import Loihi2LIF
from tsslc.targets import get_target

pytestmark = pytest.mark.skipif(fused_cpu.load() is None, reason=f"no CPU kernel: {fused_cpu.error}")


def dense_net(seed: int, graded: bool, n_in: int = 60, hidden: int = 301, exp=(0, -2), odd_ones=False,
              zero_rows: bool = True) -> Graph:
    """input (1, n_in / 6, 6) → flatten → dense → LIF (hidden) → dense → LIF (7) → output.
    Mixed-sign weights with many zeros (a sparse row leaves events open); ``odd_ones``: ±1
    weights too, which Lava's Dense turns into 0 and −2."""
    rng = np.random.default_rng(seed)

    def weights(shape, zero):
        w = rng.integers(-120, 121, size=shape)
        w[np.abs(w) == 1] = 2
        if odd_ones:
            w[rng.random(shape) < 0.05] = rng.choice([-1, 1])
        w[rng.random(shape) < zero] = 0
        if zero_rows:
            w[0] = 0  # a neuron nothing reaches
            w[1, 1:] = 0  # one reached by a single input
        return w.astype(np.int32)

    g = Graph({"n_steps": 6, "target": "loihi2"})
    g.add("input", N.IntInput(shape=(1, n_in // 6, 6), encoding="graded" if graded else "binary", bits=8,
                              scale=40.0), after=None)
    g.add("flat", N.Flatten(), after="input")
    g.add("h.synapse", N.IntDense(weight=weights((hidden, n_in), 0.5), weight_exp=exp[0]), after="flat")
    g.add("h", N.IntLIF(shape=(hidden,), params=Loihi2LIF(du=1365, dv=819, vth=90 if graded else 40)),
          after="h.synapse")
    g.add("o.synapse", N.IntDense(weight=weights((7, hidden), 0.7), weight_exp=exp[1]), after="h")
    g.add("o", N.IntLIF(shape=(7,), params=Loihi2LIF(du=2000, dv=300, vth=3, bias_mant=5, bias_exp=1)),
          after="o.synapse")
    g.add("out", N.Output(shape=(7,)), after="o")
    return g


def inputs(seed: int, B: int, graded: bool, n_in: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if graded:
        x = rng.normal(size=(B, 1, n_in // 6, 6)).astype(np.float32) * 1.5
        x[0, :, :2] = 0  # sample 0: fewer active inputs
        return x
    x = (rng.random((6, B, 1, n_in // 6, 6)) < 0.15).astype(np.float32)  # time-first events
    x[2] = 0  # a silent step
    return x


def sample(x, i, graded):
    return x[i:i + 1] if graded else x[:, i:i + 1]


@pytest.mark.parametrize("graded", [True, False])
@pytest.mark.parametrize("exp", [(0, -2), (1, 0), (-3, 2)])
def test_fused_layer_equals_the_unfused_path_and_counting_afterwards(graded, exp):
    g = dense_net(1, graded, exp=exp)
    p = plan(g)
    assert set(p.layers) == {"h.synapse", "o.synapse"}  # both layers run fused, counts included
    assert all(v[1].counts for v in p.layers.values()) and p.input_layer == "h.synapse"
    x = inputs(2, 6, graded)
    cores = get_target("loihi2").core_assignment(g)
    total = None
    for i in range(6):
        xi = sample(x, i, graded)
        res = intsim_run(g, xi)
        ref_spikes, _ = simulate(g, xi)  # the unfused walk
        for k, v in ref_spikes.items():
            np.testing.assert_array_equal(res.spikes[k], v.numpy(), err_msg=f"sample {i}, {k}")
        ref = C.count(g, res.spikes, xi, cores=cores)
        assert res.counters.to_dict() == ref.to_dict(), i
        total = res.counters if total is None else total + res.counters
        assert intsim_run(g, xi, counters=False).spikes.keys() == res.spikes.keys()
    batch = intsim_run(g, x)  # the batched path (not fused)
    assert total.to_dict() == batch.counters.to_dict()
    h = batch.counters.layers["h"]
    assert h.spikes > 0 and h.updates_active > 0 and h.updates_idle > 0


def test_lava_odd_weights_count_the_unfused_way():
    """Mixed-sign ±1 weights are synapses in the graph (counted) that Lava's Dense zeroes:
    the fused layer still simulates, and the counts come from the unfused tally, equal to
    counting afterwards."""
    g = dense_net(3, False, odd_ones=True)
    w = g["h.synapse"].weight
    assert (np.abs(w) == 1).any()
    p = plan(g)
    assert not p.layers["h.synapse"][1].counts
    assert p.input_layer is None  # so the input is counted the unfused way too
    x = inputs(4, 3, False)
    for i in range(3):
        xi = sample(x, i, False)
        res = intsim_run(g, xi)
        assert res.counters.to_dict() == C.count(g, res.spikes, xi,
                                                 cores=get_target("loihi2").core_assignment(g)).to_dict()
        for k, v in simulate(g, xi)[0].items():
            np.testing.assert_array_equal(res.spikes[k], v.numpy())


@pytest.mark.parametrize("graded", [True, False])
def test_fused_layer_on_two_threads_and_wide_layers(graded):
    """Wide layers (ragged last blocks); the event-driven one (6 steps x 600 inputs x 1,200
    neurons) has the work to be split over two threads."""
    g = dense_net(5, graded, n_in=600, hidden=700 if graded else 1200)
    x = inputs(6, 2, graded, n_in=600)
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for i in range(2):
                xi = sample(x, i, graded)
                res = intsim_run(g, xi)
                for k, v in simulate(g, xi)[0].items():
                    np.testing.assert_array_equal(res.spikes[k], v.numpy())
                assert res.counters.to_dict() == C.count(g, res.spikes, xi,
                                                         cores=get_target("loihi2").core_assignment(g)).to_dict()
    finally:
        torch.set_num_threads(old)


def test_no_fused_layer_where_the_sums_are_not_provably_exact():
    """A graded input of 24 bits: the float32 sums are not provably exact, so no fused layer
    (the synapse then runs in float64 or int64); the result is still the unfused one."""
    g = dense_net(7, True)
    node = g["input"]
    import dataclasses

    g = g.with_node("input", dataclasses.replace(node, bits=24, scale=2.0**20))
    assert "h.synapse" not in plan(g).layers and "o.synapse" in plan(g).layers
    x = inputs(8, 1, True)
    res = intsim_run(g, x)
    for k, v in simulate(g, x)[0].items():
        np.testing.assert_array_equal(res.spikes[k], v.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_whole_network_call_equals_the_walk_and_leaves_a_nan_to_the_reference(dtype):
    """A static graded sample through a graph of fused layers only runs as one compiled call
    (Target.prepare_chain); equal to the unfused walk for float32 and float64 images, ties
    and infinities; an image holding a NaN goes the reference way (the graded encoder's
    choice for a NaN), with the same result as simulate()."""
    g = dense_net(9, True)
    chain = plan(g).chain[0]
    x = inputs(10, 3, True).astype(dtype)
    intsim_run(g, x)  # a batch: the fused layers' arrays are not made
    assert chain.specs is None
    intsim_run(g, x[:1])
    assert chain.specs is not None
    x[1].reshape(-1)[:6] = np.array([0.5, -0.5, 1.5, np.inf, -np.inf, 1e30]) / 40.0
    x_nan = x[2:3].copy()
    x_nan.reshape(-1)[7] = np.nan
    cores = get_target("loihi2").core_assignment(g)
    for xi in [x[0:1], x[1:2], x[2:3], x_nan]:
        res = intsim_run(g, xi)
        for k, v in simulate(g, xi)[0].items():
            np.testing.assert_array_equal(res.spikes[k], v.numpy())
        assert res.counters.to_dict() == C.count(g, res.spikes, xi, cores=cores).to_dict()
    assert plan(g.with_node("o", g["o"])).chain is not None  # a new graph: a new plan, its own chain


def test_one_step_other_step_counts_and_a_branching_population():
    """T = 1 and a step count given at the call (the chain's and the layers' buffers follow
    it), and a population feeding two synapses into one population (its own layer fused, the
    graph no chain, the population with two synapses unfused)."""
    g = dense_net(11, True)
    x = inputs(12, 2, True)
    cores = get_target("loihi2").core_assignment(g)
    for T in (1, 3, 9):
        for i in range(2):
            res = intsim_run(g, x[i:i + 1], n_steps=T)
            for k, v in simulate(g, x[i:i + 1], n_steps=T)[0].items():
                assert res.spikes[k].shape[0] == T
                np.testing.assert_array_equal(res.spikes[k], v.numpy())
            assert res.counters.to_dict() == C.count(g, res.spikes, x[i:i + 1], n_steps=T, cores=cores).to_dict()
    # h feeds o.synapse and a second synapse into o: h's layer is fused, o's (two synapses) not
    rng = np.random.default_rng(13)
    g.add("p.synapse", N.IntDense(weight=rng.integers(-90, 91, size=(7, 301)).astype(np.int32) * 2, weight_exp=-1),
          after="h")
    g.connect("p.synapse", "o")
    p = plan(g)
    assert p.chain is None and set(p.layers) == {"h.synapse"}
    for i in range(2):
        res = intsim_run(g, x[i:i + 1])
        for k, v in simulate(g, x[i:i + 1])[0].items():
            np.testing.assert_array_equal(res.spikes[k], v.numpy())
        ref = C.count(g, res.spikes, x[i:i + 1], cores=get_target("loihi2").core_assignment(g))
        assert res.counters.to_dict() == ref.to_dict()
        assert res.counters.layers["o"].events_in == res.counters.layers["h"].synops


def test_the_whole_network_call_files_every_count_itself(monkeypatch):
    """The compiled chain makes the counters' totals in the same call (CountPlan.filing,
    applied by the kernel): with every Python tally of the walk made to fail, a streamed
    sample's counters still equal counting its spikes afterwards (the binarised synapse,
    numpy), per core and hops too, for several step counts; a stream's counters summed
    equal the batch's."""
    g = dense_net(21, True)
    x = inputs(22, 3, True)
    cores = get_target("loihi2").core_assignment(g)

    def no_python(*a, **k):
        raise AssertionError("a Python tally ran: the chain did not file the counts")

    for T in (1, 2, 6, 11):
        ref = [C.count(g, intsim_run(g, x[i:i + 1], n_steps=T).spikes, x[i:i + 1], n_steps=T, cores=cores)
               for i in range(3)]
        with monkeypatch.context() as m:
            for name in ("input", "input_counts", "population", "events"):
                m.setattr(C.Tally, name, no_python)
            got = [intsim_run(g, x[i:i + 1], n_steps=T).counters for i in range(3)]
        for a, b in zip(got, ref):
            assert a.to_dict() == b.to_dict(), T
            assert a.core_spikes and sum(a.core_spikes.values()) == a.totals()["spikes"]
        total = got[0] + got[1] + got[2]
        assert total.to_dict() == intsim_run(g, x, n_steps=T).counters.to_dict()
