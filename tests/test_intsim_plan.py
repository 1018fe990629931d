"""intsim's per-graph plan, compiled population loop and in-pass counters: the cached plan
follows graph changes, streaming one sample per call equals one batched call, the compiled
Loihi 2 loop equals the step-by-step neuron, and the counters tallied during the simulation
equal the counters counted afterwards from the spikes (the full binarised synapse)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tsslc.backends import counters as C
from tsslc.backends.intsim import plan, run as intsim_run, simulate
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.neurons import Loihi2LIF
from tsslc.targets import get_target
from tsslc.targets.base import Target


def _weights(rng, shape, zero=0.2):
    w = rng.integers(-120, 121, size=shape)
    w[rng.random(shape) < zero] = 0
    return w.astype(np.int32)


def conv_net(seed=0, graded=True) -> Graph:
    """input (2,8,8) → conv 3×3 pad 1 → LIF (4,8,8) → conv 3×3 stride 2, 2 groups → LIF
    (4,3,3) → flatten → dense → LIF (5) → output; every synapse has zero weights."""
    rng = np.random.default_rng(seed)
    lif = lambda shape, vth: N.IntLIF(shape=shape, params=Loihi2LIF(du=1365, dv=819, vth=vth))  # noqa: E731
    g = Graph({"n_steps": 6, "target": "loihi2"})
    g.add("input", N.IntInput(shape=(2, 8, 8), encoding="graded" if graded else "binary", bits=8, scale=60.0))
    g.add("c1.synapse", N.IntConv2d(weight=_weights(rng, (4, 2, 3, 3)), stride=1, padding=1), after="input")
    g.add("c1", lif((4, 8, 8), 60 if graded else 3), after="c1.synapse")
    g.add("c2.synapse", N.IntConv2d(weight=_weights(rng, (4, 2, 3, 3), 0.3), stride=2, padding=0, groups=2), after="c1")
    g.add("c2", lif((4, 3, 3), 2), after="c2.synapse")
    g.add("flat", N.Flatten(), after="c2")
    g.add("d.synapse", N.IntDense(weight=_weights(rng, (5, 36), 0.3), weight_exp=-1), after="flat")
    g.add("d", lif((5,), 2), after="d.synapse")
    g.add("out", N.Output(shape=(5,)), after="d")
    return g


def inputs(seed, B, graded=True):
    rng = np.random.default_rng(seed)
    if graded:
        x = rng.normal(size=(B, 2, 8, 8)).astype(np.float32)  # static images
        x[:, :, :2] = 0  # empty windows: no events there
        return x
    x = (rng.random((6, B, 2, 8, 8)) < 0.25).astype(np.float32)  # time-first events
    x[:, :, :, :3] = 0
    return x


def test_plan_is_made_once_and_follows_graph_changes():
    g = conv_net()
    x = inputs(1, 4)
    first = intsim_run(g, x)
    p = plan(g)
    assert plan(g) is p  # reused
    intsim_run(g, x)
    assert plan(g) is p

    # a new graph from with_node: its own plan, its own result (the same as on a fresh copy)
    lif = g["c1"]
    g2 = g.with_node("c1", dataclasses.replace(lif, params=dataclasses.replace(lif.params, vth=lif.params.vth * 4)))
    second = intsim_run(g2, x)
    assert plan(g2) is not p
    fresh = intsim_run(g2.copy(), x)
    for k in fresh.spikes:
        np.testing.assert_array_equal(second.spikes[k], fresh.spikes[k])
    assert second.counters == fresh.counters
    assert not np.array_equal(second.spikes["c1"], first.spikes["c1"])
    # the first graph is unchanged and still gives its own result
    again = intsim_run(g, x)
    for k in first.spikes:
        np.testing.assert_array_equal(again.spikes[k], first.spikes[k])

    # an edit of the graph itself drops the plan
    v = g.version
    g.remove("out")
    g.add("out", N.Output(shape=(5,)), after="d")
    assert g.version != v and plan(g) is not p


@pytest.mark.parametrize("graded", [True, False])
def test_streaming_one_sample_per_call_equals_one_batch(graded):
    g = conv_net(2, graded)
    x = inputs(3, 7, graded)
    batch = intsim_run(g, x)
    single = [intsim_run(g, x[i:i + 1] if graded else x[:, i:i + 1]) for i in range(7)]
    for k in batch.spikes:
        np.testing.assert_array_equal(np.concatenate([r.spikes[k] for r in single], axis=1), batch.spikes[k])
    total = single[0].counters
    for r in single[1:]:
        total = total + r.counters
    assert total.to_dict() == batch.counters.to_dict()
    assert batch.counters.layers["c2"].updates_active > 0 and batch.counters.layers["c2"].updates_idle > 0


@pytest.mark.parametrize("graded", [True, False])
@pytest.mark.parametrize("gather_limit,kernel", [(C.GATHER_LIMIT, True), (C.GATHER_LIMIT, False), (40, False)])
def test_counters_of_the_pass_equal_counting_the_spikes(graded, gather_limit, kernel, monkeypatch):
    """The tally inside intsim (conv events settled by the compiled kernel, or in torch from
    the currents, gathered patches, or the full binarised synapse past the gather limit)
    equals count_run on intsim's spikes (the full binarised synapse everywhere)."""
    monkeypatch.setattr(C, "GATHER_LIMIT", gather_limit)
    monkeypatch.setattr(C, "CONV_EVENTS_KERNEL", kernel)
    g = conv_net(4, graded)
    x = inputs(5, 5, graded)
    # the cancelling row on two inputs that fire together
    s = torch.as_tensor(intsim_run(g, x, counters=False).spikes["c2"]).reshape(-1, 36).to(torch.float32)
    co = s.T @ s
    co.fill_diagonal_(0)
    i, k = divmod(int(co.argmax()), 36)
    wd = g["d.synapse"].weight.copy()
    wd[0] = 0
    wd[0, i], wd[0, k] = 100, -100
    g = g.with_node("d.synapse", dataclasses.replace(g["d.synapse"], weight=wd))
    res = intsim_run(g, x)
    ref = C.count(g, res.spikes, x, cores=get_target("loihi2").core_assignment(g))
    assert res.counters.to_dict() == ref.to_dict()
    # the cancelling row: no current, yet events (and so active updates) counted
    _, values = simulate(g, x)
    flat_spikes = torch.as_tensor(res.spikes["c2"]).reshape(6, 5, -1)
    both = (flat_spikes[..., i] > 0) & (flat_spikes[..., k] > 0)
    assert bool(both.any()) and bool((values["d.synapse"][..., 0][both] == 0).all())
    n = res.counters.layers["d"]
    assert n.events_in == res.counters.layers["c2"].synops


def test_compiled_population_loop_equals_step_by_step():
    """Loihi 2's run_population (the compiled loop on 32-bit lanes) against the base class'
    loop over neuron_step, with currents far beyond the calibrated range (every wrap), from
    int64 and from float32, with a time-varying and a static (zero-stride) current."""
    tgt = get_target("loihi2")
    rng = np.random.default_rng(7)
    for trial in range(40):
        params = Loihi2LIF(du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)),
                           vth=int(rng.integers(0, 2**17)), bias_mant=int(rng.integers(-4096, 4096)),
                           bias_exp=int(rng.integers(-7, 8)))
        T = int(rng.integers(1, 12))
        lim = [300, 2**17 + 5, 2**25, 2**31][trial % 4]
        cur = torch.as_tensor(rng.integers(-lim, lim, size=(T, 3, 17)), dtype=torch.int64)
        ref, _ = Target.run_population(tgt, params, cur)
        got, got_f = tgt.run_population(params, cur, with_float=True)
        assert torch.equal(got, ref), trial
        assert torch.equal(got_f, ref.to(torch.float32))
        if lim < 2**24:  # float32 holds these currents exactly
            assert torch.equal(tgt.run_population(params, cur.to(torch.float32))[0], ref)
        static = cur[:1].expand(T, *cur.shape[1:])
        assert torch.equal(tgt.run_population(params, static)[0], Target.run_population(tgt, params, static)[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_graded_encoder_equals_input_spikes(dtype):
    """The compiled graded encoder (a static batch's payloads on the CPU) gives
    Target.input_spikes' payloads to the bit, ties, signed zeros and infinities included, and
    declines a NaN (the reference path then runs); a run with it equals the reference run."""
    from tsslc import fused_cpu

    if fused_cpu.load() is None:
        pytest.skip(fused_cpu.error)
    node = N.IntInput(shape=(2, 8, 8), encoding="graded", bits=8, scale=60.0)
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 2, 8, 8)) * 1.5).astype(dtype)
    flat = x.reshape(-1)
    flat[:8] = np.array([0.5, -0.5, 1.5, -2.5, 127.5, -0.0, np.inf, -np.inf]) / 60.0
    flat[8:12] = [2.1, -2.1, 1e30, -1e30]
    ref = Target.input_spikes(None, node, torch.as_tensor(x)[None])[0]
    got = fused_cpu.graded(x, 60.0, 127)
    assert got.dtype == torch.float32 and torch.equal(got.to(torch.int64), ref)
    assert not torch.signbit(got).logical_and(got == 0).any()  # -0 comes out as +0
    x_nan = x.copy()
    x_nan.reshape(-1)[5] = np.nan
    assert fused_cpu.graded(x_nan, 60.0, 127) is None
    g = conv_net()
    x = x.astype(np.float32)
    res, ref_run = intsim_run(g, x), intsim_run(g, torch.as_tensor(x, dtype=torch.float64)[None].expand(6, *x.shape).clone())
    for k in ref_run.spikes:
        assert np.array_equal(res.spikes[k], ref_run.spikes[k])
    assert res.counters.to_dict() == ref_run.counters.to_dict()


@pytest.mark.parametrize("seed", range(12))
def test_compiled_conv_events_equal_the_binarised_synapse(seed):
    """tsslc.fused_cpu.conv_events against the binarised convolution (an event wherever an
    active input meets a non-zero weight): strides, paddings up to the kernel's size, groups,
    sparse and dense activity, with the real current (whose non-zero values it trusts) and
    without."""
    from tsslc import fused_cpu
    from tsslc.layers import conv_current

    if fused_cpu.load() is None:
        pytest.skip(fused_cpu.error)
    rng = np.random.default_rng(seed)
    G = int(rng.choice([1, 2, 3]))
    Cg, Og = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    kh = kw = int(rng.choice([1, 3, 5]))
    stride, pad = int(rng.integers(1, 3)), int(rng.integers(0, kh + 1))
    H, W = int(rng.integers(kh, 12)), int(rng.integers(kw, 12))
    Fr = int(rng.integers(1, 5))
    w = rng.integers(-3, 4, size=(G * Og, Cg, kh, kw))
    w[rng.random(w.shape) < 0.6] = 0
    shape = (Fr, G * Cg, H, W)
    active = rng.random(shape) < [0.02, 0.2, 0.8][seed % 3]
    act = torch.as_tensor(active * rng.integers(1, 5, shape), dtype=torch.float32)
    mask = torch.as_tensor(w != 0, dtype=torch.float32)
    ref = conv_current(act[None], mask, stride, pad, G)[0] > 0
    current = torch.nn.functional.conv2d(act, torch.as_tensor(w, dtype=torch.float32), None, stride, pad, 1, G)
    # graded float32 inputs, and 0/1 spikes as bytes and as bool (read as bytes)
    for a in (act, torch.as_tensor(active, dtype=torch.uint8), torch.as_tensor(active)):
        for cur in (current, current.to(torch.int64), None):
            got = fused_cpu.conv_events(a, mask.to(torch.uint8), cur, stride, pad, G, tuple(ref.shape[2:]))
            assert got.shape == tuple(ref.shape) and np.array_equal(got, ref.numpy()), (seed, a.dtype, cur is None)


@pytest.mark.parametrize("T,n", [(5, 8640), (1, 7), (300, 1500), (9, 1025)])
def test_compiled_population_tally_equals_numpy(T, n):
    """tsslc.fused_cpu.spike_tally (one sample's spikes per neuron, neurons by spike count,
    active updates and tally-matrix product in one pass) against numpy: events per neuron
    for one step or every step, or none; more than 255 steps (its byte counters spill)."""
    from tsslc import fused_cpu

    if fused_cpu.load() is None:
        pytest.skip(fused_cpu.error)
    rng = np.random.default_rng(T * n)
    fired = (rng.random((T, n)) < (0.9 if T > 255 else 0.2)).astype(np.uint8)  # > 255 spikes a neuron
    per = fired.sum(0).astype(np.int64)
    M = rng.integers(0, 1000, size=(n, 6)).astype(np.float64)
    for ev in (None, rng.random((1, n)) < 0.5, rng.random((T, n)) < 0.3):
        for spikes in (fired, torch.as_tensor(fired).bool()):
            ns, hist, active, vals = fused_cpu.spike_tally(spikes, ev, M)
            np.testing.assert_array_equal(ns, per)
            assert hist == np.bincount(per, minlength=T + 1).tolist()
            assert active == int(np.count_nonzero(fired.astype(bool) | (False if ev is None else ev)))
            assert vals == (per @ M).tolist()  # exact: integers below 2^53
    assert fused_cpu.spike_tally(fired, None, None)[3] is None
    with pytest.raises(ValueError, match="events"):
        fused_cpu.spike_tally(fired, np.zeros((2, n), bool) if T != 2 else np.zeros((3, n), bool), None)


@pytest.mark.parametrize("n", [0, 1, 3, 4, 7, 1001])
@pytest.mark.parametrize("k", [1, 7, 8, 9, 17])
def test_compiled_weighted_sums_equal_numpy(n, k):
    """tsslc.fused_cpu.weighted_sums (the counters' per-neuron sums, eight columns and four
    rows at a time in the kernel, only the rows of non-zero counts when those are few)
    against numpy's product, exact, for row and column counts on and off those blocks, dense
    and sparse counts; a non-contiguous matrix is copied first."""
    from tsslc import fused_cpu

    if fused_cpu.load() is None:
        pytest.skip(fused_cpu.error)
    rng = np.random.default_rng(n * 31 + k)
    w = rng.integers(0, 6, n)  # spike counts 0..T, many zero
    M = rng.integers(0, 1 << 20, size=(n, k)).astype(np.float64)
    assert fused_cpu.weighted_sums(w, M) == (w @ M).tolist()
    wide = rng.integers(0, 9, size=(n, 2 * k)).astype(np.float64)
    assert fused_cpu.weighted_sums(w.astype(np.int32), wide[:, ::2]) == (w @ wide[:, ::2]).tolist()
    # sparse counts (the kernel then reads only the rows of the neurons that fired): a tenth
    # firing, none, only the last one, exactly half
    sparse = np.where(rng.random(n) < 0.1, w, 0)
    last = np.zeros(n, np.int64)
    last[-1:] = 3
    half = np.zeros(n, np.int64)
    half[rng.permutation(n)[: n // 2]] = 2
    for v in (sparse, np.zeros(n, np.int64), last, half):
        assert fused_cpu.weighted_sums(v, M) == (v @ M).tolist()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_compiled_input_tally_equals_numpy(dtype):
    """tsslc.fused_cpu.input_tally: per row (a step of a sample) its active values, graded (a
    value not in {-1, 0, 1}: MACs) and the fan-outs summed over its active values, against
    numpy (NaN: active and graded), one row and many, row lengths on and off the kernel's
    blocks of eight."""
    from tsslc import fused_cpu

    if fused_cpu.load() is None:
        pytest.skip(fused_cpu.error)
    rng = np.random.default_rng(7)
    for n in (64, 61):
        M = rng.integers(0, 1 << 20, size=(n, 3)).astype(np.float64)
        cases = [rng.integers(-1, 2, n), rng.integers(-3, 4, n), np.zeros(n, np.int64)]
        if dtype != np.int64:
            nan = rng.integers(-1, 2, n).astype(dtype)
            nan[5] = np.nan
            cases += [rng.normal(size=n) * (rng.random(n) < 0.5), nan]
        for x in cases:
            x = np.asarray(x, dtype)
            counts, sums = fused_cpu.input_tally(x.reshape(1, 1, n), np.ascontiguousarray(M.T))
            act = x != 0
            assert counts.tolist() == [[int(act.sum()), int((act & (np.abs(x) != 1)).any())]]
            assert sums.tolist() == [(act.astype(np.float64) @ M).tolist()]
        rows = np.stack([np.asarray(c, dtype) for c in cases])  # every case a row of one call
        counts, sums = fused_cpu.input_tally(rows, np.ascontiguousarray(M.T), len(cases))
        act = rows != 0
        assert counts[:, 0].tolist() == act.sum(1).tolist()
        assert counts[:, 1].tolist() == (act & (np.abs(rows) != 1)).any(1).astype(int).tolist()
        assert sums.tolist() == (act.astype(np.float64) @ M).tolist()
    with pytest.raises(ValueError, match="fan-out matrix"):
        fused_cpu.input_tally(np.zeros((2, 5), dtype), np.zeros((3, 4)), 2)
