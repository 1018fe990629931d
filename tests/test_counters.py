"""Counters against a brute-force enumeration of every synapse, and on the trained digits net."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tsslc.errors import TsslcError
from tsslc.ir import interpreter
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.backends.counters import Counters, count


def small_graph(rng) -> Graph:
    """input (2,6,6) → conv 3×3 stride 2 pad 1 (zeros) → LIF (3,3,3) → pool 2 (drops a
    row/column) → flatten → dense (zeros) → LIF (4) → output."""
    wc = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    wc[rng.random(wc.shape) < 0.3] = 0
    wd = rng.normal(size=(4, 3)).astype(np.float32)
    wd[0, 1] = wd[2, 0] = 0
    g = Graph({"n_steps": 4})
    g.add("input", N.Input(shape=(2, 6, 6), tau_s=3.0))
    g.add("c.synapse", N.Conv2d(weight=wc, stride=2, padding=1), after="input")
    g.add("c", N.LIF(shape=(3, 3, 3)), after="c.synapse")
    g.add("pool", N.SumPool2d(kernel=2, theta=1.1), after="c")
    g.add("flat", N.Flatten(), after="pool")
    g.add("d.synapse", N.Dense(weight=wd), after="flat")
    g.add("d", N.LIF(shape=(4,)), after="d.synapse")
    g.add("out", N.Output(shape=(4,)), after="d")
    g.validate()
    return g


def connections(g: Graph, all_ones=False):
    """Explicit list of (source, source flat index, target, target flat index)."""
    conns = []
    wc = g["c.synapse"].weight
    for o, i, j, c, m, n in itertools.product(range(3), range(3), range(3), range(2), range(3), range(3)):
        y, x = 2 * i + m - 1, 2 * j + n - 1
        if 0 <= y < 6 and 0 <= x < 6 and (all_ones or wc[o, c, m, n] != 0):
            conns.append(("input", c * 36 + y * 6 + x, "c", o * 9 + i * 3 + j))
    wd = g["d.synapse"].weight
    for c, y, x in itertools.product(range(3), range(3), range(3)):
        if y // 2 < 1 and x // 2 < 1:  # pooled position (c, 0, 0); row/column 2 dropped
            for o in range(4):
                if all_ones or wd[o, c] != 0:
                    conns.append(("c", c * 9 + y * 3 + x, "d", o))
    return conns


@pytest.mark.parametrize("kernels", [True, False])  # False: numpy alone (no compiled library)
@pytest.mark.parametrize("B", [3, 1])  # one sample: the compiled population and input tallies
def test_counts_match_brute_force_enumeration(B, kernels, monkeypatch):
    from tsslc import fused_cpu

    if kernels and fused_cpu.load() is None:
        pytest.skip(fused_cpu.error)
    if not kernels:
        monkeypatch.setattr(fused_cpu, "_lib", None)
        monkeypatch.setattr(fused_cpu, "_tried", True)
    rng = np.random.default_rng(1)
    g = small_graph(rng)
    T = 4
    x = rng.random((B, 2, 6, 6)).astype(np.float32)
    x[x < 0.4] = 0
    if B > 1:
        x[1] = (x[1] > 0).astype(np.float32)  # binary sample (its steps stay MACs: batch is graded)
    spikes = {"c": (rng.random((T, B, 3, 3, 3)) < 0.3).astype(np.uint8),
              "d": (rng.random((T, B, 4)) < 0.4).astype(np.uint8)}
    c = count(g, spikes, x)

    act = {"input": np.broadcast_to((x != 0).reshape(1, B, -1), (T, B, 72)),
           "c": spikes["c"].reshape(T, B, -1), "d": spikes["d"].reshape(T, B, -1)}
    synops = {"input": 0, "c": 0, "d": 0}
    events = {"c": np.zeros((T, B, 27)), "d": np.zeros((T, B, 4))}
    for src, i, dst, j in connections(g):
        synops[src] += int(act[src][:, :, i].sum())
        events[dst][:, :, j] += act[src][:, :, i]
    dense = {"input": 0, "c": 0, "d": 0}
    for src, *_ in connections(g, all_ones=True):
        dense[src] += T * B
    for name in ("input", "c", "d"):
        assert c.layers[name].synops == synops[name], name
        assert c.layers[name].dense_synops == dense[name], name
    assert c.layers["input"].macs == synops["input"] and c.layers["c"].macs == 0
    for name in ("c", "d"):
        L = c.layers[name]
        assert L.events_in == int(events[name].sum())
        active = int(((events[name] > 0) | (act[name] > 0)).sum())
        assert (L.updates_active, L.updates_idle) == (active, T * B * L.n_neurons - active)
        assert L.spikes == int(spikes[name].sum())
        per = spikes[name].reshape(T, B, -1).sum(0).astype(np.int64)
        assert L.count_hist == np.bincount(per.reshape(-1), minlength=T + 1).tolist()
        assert L.neuron_spikes == per.sum(0).tolist()
    # Σ of events landing on a population = synops sent by its source
    assert c.layers["c"].events_in == c.layers["input"].synops
    assert c.layers["d"].events_in == c.layers["c"].synops
    assert c.per_sample()["synops"] == pytest.approx(sum(synops.values()) / B)


def test_binary_input_counts_acs_and_hops_follow_the_core_mesh():
    rng = np.random.default_rng(2)
    g = small_graph(rng)
    T, B = 4, 2
    x = (rng.random((B, 2, 6, 6)) < 0.5).astype(np.float32)  # all inputs in {0, 1}: ACs
    spikes = {"c": (rng.random((T, B, 3, 3, 3)) < 0.5).astype(np.uint8),
              "d": (rng.random((T, B, 4)) < 0.5).astype(np.uint8)}
    cores = {"c": np.arange(27) // 10, "d": np.array([3, 3, 4, 4])}  # 5 cores, mesh width 3
    c = count(g, spikes, x, cores=cores)
    assert c.layers["input"].macs == 0 and c.layers["input"].acs == c.layers["input"].synops > 0
    assert c.mesh_width == 3
    # brute force: a spike goes once to every distinct core holding one of its synapses
    dests: dict[int, set] = {}
    for src, i, dst, j in connections(g):
        if src == "c":
            dests.setdefault(i, set()).add(int(cores["d"][j]))
    n_sp = spikes["c"].reshape(T, B, -1).sum((0, 1))
    msgs = hx = hy = 0
    for i, ds in dests.items():
        sc = int(cores["c"][i])
        msgs += n_sp[i] * len(ds)
        hx += n_sp[i] * sum(abs(sc % 3 - d % 3) for d in ds)
        hy += n_sp[i] * sum(abs(sc // 3 - d // 3) for d in ds)
    L = c.layers["c"]
    assert (L.spike_messages, L.hops_x, L.hops_y) == (msgs, hx, hy)
    assert msgs > 0 and hx > 0 and hy > 0
    for core in range(5):
        want = sum(int(spikes[p].reshape(T, B, -1)[:, :, cores[p] == core].sum()) for p in ("c", "d"))
        assert c.core_spikes[core] == want
    assert sum(c.core_synops.values()) == c.layers["c"].synops + c.layers["d"].synops


def test_bad_spikes_are_named():
    g = small_graph(np.random.default_rng(0))
    x = np.zeros((1, 2, 6, 6), np.float32)
    with pytest.raises(TsslcError, match="'d'"):
        count(g, {"c": np.zeros((4, 1, 3, 3, 3))}, x)
    with pytest.raises(TsslcError, match="spikes of 'd'"):
        count(g, {"c": np.zeros((4, 1, 3, 3, 3)), "d": np.zeros((4, 1, 5))}, x)
    # spikes are 0 or 1: a 2 or a NaN would count differently one sample at a time and in a batch
    for bad in (2, np.nan, -1):
        c = np.zeros((4, 1, 3, 3, 3))
        c[1, 0, 2, 1, 0] = bad
        with pytest.raises(TsslcError, match="spikes of 'c' must be 0 or 1"):
            count(g, {"c": c, "d": np.zeros((4, 1, 4))}, x)


def test_digits_counters_are_consistent_and_additive(digits_graph, digits_test_arrays):
    x, _ = digits_test_arrays
    res = interpreter.run(digits_graph, x)
    c = count(digits_graph, res.spikes, x)
    T, B = 5, len(x)
    h, o = c.layers["hidden"], c.layers["output"]
    assert o.events_in == h.synops and h.events_in == c.layers["input"].synops
    assert c.layers["input"].macs == c.layers["input"].synops  # graded pixels: MACs
    assert c.totals()["acs"] == h.synops + o.synops
    for L in (h, o):
        assert L.updates_active + L.updates_idle == L.n_neurons * T * B
        assert sum(L.count_hist) == L.n_neurons * B
        assert sum(k * n for k, n in enumerate(L.count_hist)) == L.spikes == int(res.spikes[L.name].sum())
    assert 0 < h.spikes < h.n_neurons * T * B
    # counting two halves and adding gives the whole (per-sample averages over all)
    half = B // 2
    r1, r2 = interpreter.run(digits_graph, x[:half]), interpreter.run(digits_graph, x[half:])
    both = count(digits_graph, r1.spikes, x[:half]) + count(digits_graph, r2.spikes, x[half:])
    assert both.to_dict() == c.to_dict()
    assert Counters.from_dict(c.to_dict()).to_dict() == c.to_dict()
    assert c.per_sample()["spikes"] == pytest.approx((h.spikes + o.spikes) / B)


def test_per_neuron_counts_read_as_lists_and_add_as_arrays():
    """LayerCounts keeps per-neuron counts as given (the simulator gives arrays) and reads
    them as a list of Python ints; equality, JSON, pickling and addition see the same numbers."""
    import json
    import pickle

    from tsslc.backends.counters import Counters, LayerCounts

    a = LayerCounts("p", "lif", 3, neuron_spikes=np.array([1, 0, 4], np.int64))
    b = LayerCounts("p", "lif", 3, neuron_spikes=[2, 5, 0])
    assert LayerCounts("p", "lif", 3).neuron_spikes == []
    got = a.neuron_spikes
    assert got == [1, 0, 4] and all(type(v) is int for v in got)
    assert a == LayerCounts("p", "lif", 3, neuron_spikes=[1, 0, 4])
    ca, cb = Counters(1, 5, {"p": a}), Counters(1, 5, {"p": b})
    total = ca + cb
    assert total.layers["p"].neuron_spikes == [3, 5, 4]
    arrays = Counters(1, 5, {"p": LayerCounts("p", "lif", 3, neuron_spikes=np.array([1, 0, 4]))}) + \
        Counters(1, 5, {"p": LayerCounts("p", "lif", 3, neuron_spikes=np.array([2, 5, 0], np.uint8))})
    assert arrays.layers["p"].neuron_spikes == [3, 5, 4]
    np.testing.assert_array_equal(arrays.firing_rates("p"), np.array([3, 5, 4]) / 10)
    d = json.loads(json.dumps(total.to_dict()))
    assert d["layers"]["p"]["neuron_spikes"] == [3, 5, 4] and "_neuron_spikes" not in d["layers"]["p"]
    assert Counters.from_dict(d) == total == pickle.loads(pickle.dumps(total))
    with pytest.raises(TsslcError, match="per-neuron"):
        LayerCounts("p", "lif", 3, neuron_spikes=np.zeros((2, 2), np.int64))


def test_counters_are_packed_arrays_read_as_records():
    """Counters keep one int64 table (a row per layer) and per-core arrays: the records read
    from them are read-only copies; sums add the arrays, or the per-core dicts key by key
    when two runs used different cores; counters of other networks or step counts do not
    add; an unknown layer is one error naming it."""
    import dataclasses

    from tsslc.backends.counters import Counters, LayerCounts

    def one(spikes, cores_s, cores_y, name="p"):
        return Counters(1, 5, {"in": LayerCounts("in", "input", 4, spikes=2, synops=6, macs=6),
                               name: LayerCounts(name, "lif", 3, spikes=spikes, events_in=6,
                                                 count_hist=[1, 1, 1, 0, 0, 0], neuron_spikes=[0, 1, 2])},
                        cores_s, cores_y, 2)

    a, b = one(3, {0: 3}, {0: 6}), one(5, {1: 5}, {0: 1})
    assert a.table.shape == (2, 10) and a.packed.dtype == np.int64
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.layers["p"].spikes = 9
    t = a + b
    assert t.n_samples == 2 and t.layers["p"].spikes == 8 and t.layers["in"].synops == 12
    assert t.core_spikes == {0: 3, 1: 5} and t.core_synops == {0: 7}
    assert t.layers["p"].count_hist == [2, 2, 2, 0, 0, 0] and t.layers["p"].neuron_spikes == [0, 2, 4]
    assert t.totals()["acs"] == 0 and t.totals()["macs"] == 12 and t.total("n_neurons", "lif") == 3
    same = a + a  # one layout: the arrays add
    assert same.layout is a.layout and same.core_spikes == {0: 6}
    with pytest.raises(TsslcError, match="different networks"):
        a + one(3, {0: 3}, {0: 6}, name="q")
    with pytest.raises(TsslcError, match="'nope'"):
        a.firing_rates("nope")
    assert Counters.from_dict(t.to_dict()) == t and t != a
    half = one(3, {0: 3}, None)  # per-core spikes without per-core synops
    assert half.core_spikes == {0: 3} and half.core_synops is None
    assert Counters.from_dict(half.to_dict()).to_dict() == half.to_dict()
