"""intsim on loihi2 is bit-exact to a slow scalar reference written from targets/loihi2.md
(per neuron, per step, plain Python integers), on random nets and inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsslc.ir.neurons import Loihi2LIF, TrueNorthLIF
from tsslc.backends import get_backend
from tsslc.backends.intsim import run as intsim_run
from tsslc.backends.intsim import simulate
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.targets import get_target
from tsslc.targets.loihi2 import dense_weights

# --- the scalar reference, from targets/loihi2.md ------------------------------------------


def wrap32(x: int) -> int:
    return ((x + 2**31) % 2**32) - 2**31


def rz12(p: int) -> int:
    return p >> 12 if p >= 0 else -((-p) >> 12)


def shift(x: int, e: int) -> int:
    return x << e if e >= 0 else x >> -e  # Python >> floors, as an arithmetic shift


def ref_dense_weights(W):
    flat = [w for row in W for w in row]
    if min(flat) >= 0:
        return [[min(max(w, 0), 255) for w in row] for row in W]
    if max(flat) <= 0:
        return [[min(max(w, -255), 0) for w in row] for row in W]
    return [[(min(max(w, -256), 255) >> 1) << 1 for w in row] for row in W]


def ref_neuron(a_seq, p, trace=None):
    """One neuron over time: a_seq list of ints → list of 0/1 (loihi2.md §1); appends
    (u, v) after each step to ``trace`` when given."""
    u = v = 0
    be = p["bias_exp"]
    bias = p["bias_mant"] << be if be >= 0 else p["bias_mant"] >> -be
    out = []
    for a in a_seq:
        act = wrap32(a << 6)
        uc = wrap32(rz12(u * (4096 - (p["du"] + 1))) + act)
        if uc > 2**23:
            u = uc - 2**24
        elif uc <= -(2**23):
            u = uc + 2**24
        else:
            u = uc
        vc = wrap32(rz12(v * (4096 - p["dv"])) + u + bias)
        v = min(max(vc, -(2**23 - 1)), 2**23 - 1)
        s = 1 if v > (p["vth"] << 6) else 0
        if s:
            v = 0
        out.append(s)
        if trace is not None:
            trace.append((u, v))
    return out


def ref_dense(W, e, s_in):
    """s_in: list over neurons of ints (one step) → a per output neuron (§2)."""
    Wq = ref_dense_weights(W)
    return [wrap32(shift(sum(w * x for w, x in zip(row, s_in)), e)) for row in Wq]


def ref_conv(W, stride, padding, s_in):
    """s_in[c][i][j] → a[o][i][j], torch cross-correlation, groups=1, 24-bit wrap (§2)."""
    C_out, C_in, K = len(W), len(W[0]), len(W[0][0])
    H, Wd = len(s_in[0]), len(s_in[0][0])
    Ho, Wo = (H + 2 * padding - K) // stride + 1, (Wd + 2 * padding - K) // stride + 1
    out = []
    for o in range(C_out):
        plane = []
        for i in range(Ho):
            row = []
            for j in range(Wo):
                acc = 0
                for c in range(C_in):
                    for m in range(K):
                        for n in range(K):
                            y, x = stride * i + m - padding, stride * j + n - padding
                            if 0 <= y < H and 0 <= x < Wd:
                                acc += W[o][c][m][n] * s_in[c][y][x]
                row.append(((acc + 2**23) % 2**24) - 2**23)
            plane.append(row)
        out.append(plane)
    return out


def ref_run(graph: Graph, p_int: np.ndarray) -> dict[str, np.ndarray]:
    """Whole graph, sample by sample, neuron by neuron. p_int (T, B, *shape) ints."""
    T, B = p_int.shape[:2]
    spikes, currents = {}, {}
    for name in graph.order():
        node = graph[name]
        if isinstance(node, N.IntInput):
            cur = p_int.astype(object)
            continue
        if isinstance(node, N.Flatten):
            cur = cur.reshape(T, B, -1)
        elif isinstance(node, N.IntDense):
            W = node.weight.astype(int).tolist()
            cur = np.array([[ref_dense(W, int(node.weight_exp), [int(x) for x in cur[t, b]]) for b in range(B)]
                            for t in range(T)], dtype=object)
            currents[name] = cur
        elif isinstance(node, N.IntConv2d):
            W = node.weight.astype(int).tolist()
            cur = np.array([[ref_conv(W, node.stride, node.padding, cur[t, b].tolist()) for b in range(B)]
                            for t in range(T)], dtype=object)
            currents[name] = cur
        elif isinstance(node, N.IntLIF):
            flat = cur.reshape(T, B, -1)
            s = np.zeros(flat.shape, dtype=np.uint8)
            for b in range(B):
                for k in range(flat.shape[2]):
                    s[:, b, k] = ref_neuron([int(a) for a in flat[:, b, k]], node.params.to_dict())
            spikes[name] = s.reshape(cur.shape)
            cur = spikes[name].astype(object)
    return spikes, currents


# --- random nets ------------------------------------------------------------------------


@st.composite
def lif_params(draw):
    return {
        "du": draw(st.integers(0, 4095)),
        "dv": draw(st.integers(0, 4095)),
        "vth": draw(st.one_of(st.integers(0, 64), st.integers(0, 2**17 - 1))),
        "bias_mant": draw(st.integers(-4096, 4095)),
        "bias_exp": draw(st.integers(-7, 7)),
    }


def weights(draw, shape, big):
    kind = draw(st.sampled_from(["mixed", "pos", "neg", "wide"]))
    lo, hi = {"mixed": (-256, 255), "pos": (0, 255), "neg": (-255, 0), "wide": (-600, 600)}[kind]
    seed = draw(st.integers(0, 2**31 - 1))
    w = np.random.default_rng(seed).integers(lo, hi + 1, size=shape)
    if big:
        w = w * draw(st.sampled_from([1, 64, 4096]))
    return w.astype(np.int32)


@st.composite
def nets(draw):
    T = draw(st.integers(1, 6))
    B = draw(st.integers(1, 3))
    conv_first = draw(st.booleans())
    big = draw(st.booleans())  # large currents: exercises the u wrap and v clip
    g = Graph({"n_steps": T, "target": "loihi2"})
    graded = draw(st.booleans())
    if conv_first:
        C, H = draw(st.integers(1, 2)), draw(st.integers(3, 5))
        shape = (C, H, H)
    else:
        shape = (draw(st.integers(1, 6)),)
    bits = 8
    prev = g.add("input", N.IntInput(shape=shape, encoding="graded" if graded else "binary", scale=1.0,
                                     bits=bits if graded else 1))
    if conv_first:
        K = draw(st.integers(1, min(3, shape[1])))
        stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, 1))
        co = draw(st.integers(1, 2))
        w = weights(draw, (co, shape[0], K, K), big)
        syn = g.add("c1.synapse", N.IntConv2d(weight=w, stride=stride, padding=padding), after=prev)
        oh = (shape[1] + 2 * padding - K) // stride + 1
        prev = g.add("c1", N.IntLIF(shape=(co, oh, oh), params=Loihi2LIF(**draw(lif_params()))), after=syn)
        prev = g.add("flat", N.Flatten(), after=prev)
        n_in = co * oh * oh
    else:
        n_in = shape[0]
    for i in range(draw(st.integers(1, 2))):
        n_out = draw(st.integers(1, 5))
        w = weights(draw, (n_out, n_in), big)
        e = draw(st.integers(-8, 7))
        syn = g.add(f"d{i}.synapse", N.IntDense(weight=w, weight_exp=e), after=prev)
        prev = g.add(f"d{i}", N.IntLIF(shape=(n_out,), params=Loihi2LIF(**draw(lif_params()))), after=syn)
        n_in = n_out
    g.add("out", N.Output(shape=(n_in,)), after=prev)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    if graded:
        x = rng.integers(-127, 128, size=(T, B, *shape)).astype(np.float32)  # time first
    else:
        x = (rng.random((T, B, *shape)) < draw(st.floats(0.1, 0.9))).astype(np.float32)
    return g, x


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nets())
def test_intsim_bit_exact_to_scalar_reference(case):
    g, x = case
    T = g.metadata["n_steps"]
    res = intsim_run(g, x)
    p_int = x.astype(np.int64)  # scale 1: payload = value
    ref, ref_cur = ref_run(g, p_int)
    _, values = simulate(g, x)
    for name, cur in ref_cur.items():  # synaptic currents, exactly
        np.testing.assert_array_equal(values[name].numpy(), cur.astype(np.int64), err_msg=name)
    assert set(res.spikes) == set(ref)
    for name in ref:
        assert res.spikes[name].shape == (T, x.shape[1], *g[name].shape)
        np.testing.assert_array_equal(res.spikes[name], ref[name], err_msg=name)


@settings(max_examples=80, deadline=None)
@given(lif_params(), st.lists(st.one_of(st.integers(-300, 300), st.integers(-(2**25), 2**25), st.integers(-(2**31), 2**31 - 1)),
                              min_size=1, max_size=12))
def test_neuron_step_states_match_reference(params, a_seq):
    """u and v after every step, not only spikes, including wrap, clip and int32 storage."""
    tgt = get_target("loihi2")
    trace: list = []
    ref_s = ref_neuron(a_seq, params, trace)
    typed = Loihi2LIF(**params)
    state = tgt.init_state(typed, (1,), 1, "cpu")
    for t, a in enumerate(a_seq):
        state, s = tgt.neuron_step(state, torch.tensor([[a]]), typed)
        assert (int(state["u"]), int(state["v"]), int(s)) == (*trace[t], ref_s[t]), f"step {t}"


def test_reference_arithmetic_corners():
    """Hand-checked corners of loihi2.md: the 24-bit wrap of u, the clip of v, strict
    threshold, u not reset, even weights rounded down."""
    p = {"du": 4095, "dv": 4095, "vth": 0, "bias_mant": 0, "bias_exp": 0}
    assert ref_neuron([0, 1, 0], p) == [0, 1, 0]  # v = 64 > 0; then v = 0 again (dv=4095 → no memory)
    p = {"du": 4095, "dv": 0, "vth": 1, "bias_mant": 0, "bias_exp": 0}
    assert ref_neuron([1, 1, 0], p) == [0, 1, 0]  # v = 64 is not > 64 (strict); then u = 64, v = 128
    assert ref_dense_weights([[101, -33]]) == [[100, -34]]
    assert ref_dense_weights([[101, 33]]) == [[101, 33]]
    np.testing.assert_array_equal(dense_weights(np.array([[101, -33], [300, -300]])), [[100, -34], [254, -256]])
    # u wraps: 2^23 stays, 2^23 + 64 folds to -2^23 + 64 (a = 2^17 + 1 → act = 2^23 + 64)
    tgt = get_target("loihi2")
    params = Loihi2LIF(**{"du": 4095, "dv": 4095, "vth": 131071, "bias_mant": 0, "bias_exp": 0})
    state = tgt.init_state(params, (2,), 1, "cpu")
    cur = torch.tensor([[2**17, 2**17 + 1]])
    state, s = tgt.neuron_step(state, cur, params)
    assert state["u"].tolist() == [[2**23, -(2**23) + 64]]
    # v saturates at 2^23 - 1 > 131071 << 6 = 2^23 - 64: a spike, and v resets to 0
    assert s.tolist() == [[1, 0]]
    assert state["v"].tolist() == [[0, -(2**23) + 64]]
    assert ref_neuron([2**17], params.to_dict()) == [1] and ref_neuron([2**17 + 1], params.to_dict()) == [0]


def test_intsim_errors_are_clear():
    g = Graph({"n_steps": 2})
    g.add("input", N.IntInput(shape=(2,), encoding="binary", bits=1))
    g.add("d.synapse", N.IntDense(weight=np.ones((1, 2), np.int32)), after="input")
    g.add("d", N.IntLIF(shape=(1,), params=Loihi2LIF(**{"du": 0, "dv": 0, "vth": 1, "bias_mant": 0, "bias_exp": 0})),
          after="d.synapse")
    g.add("out", N.Output(shape=(1,)), after="d")
    with pytest.raises(TsslcError, match="not compiled for a target"):
        intsim_run(g, np.ones((1, 2), np.float32))
    g.metadata["target"] = "loihi3"
    with pytest.raises(TsslcError, match="unknown target 'loihi3'.*loihi2"):
        intsim_run(g, np.ones((1, 2), np.float32))
    g.metadata["target"] = "loihi2"
    with pytest.raises(ValueError, match="du=5000 outside"):  # typed parameters: out of range is refused at once
        Loihi2LIF(du=5000, dv=0, vth=1)
    tn = Graph({"n_steps": 2, "target": "loihi2"})
    for name, node in g.items():
        tn.add(name, N.IntLIF(shape=(1,), params=TrueNorthLIF(vth=1)) if name == "d" else node)
    for s, d in g.edges():
        tn.connect(s, d)
    with pytest.raises(TsslcError, match="node 'd'.*population of target 'truenorth' in a loihi2 graph"):
        intsim_run(tn, np.ones((1, 2), np.float32))
    with pytest.raises(TsslcError, match="unknown back end 'spinnaker'.*intsim"):
        get_backend("spinnaker")


def test_conv_weight_exp_refused():
    g = Graph({"n_steps": 1, "target": "loihi2"})
    g.add("input", N.IntInput(shape=(1, 3, 3), encoding="binary", bits=1))
    g.add("c.synapse", N.IntConv2d(weight=np.ones((1, 1, 3, 3), np.int32), weight_exp=2), after="input")
    g.add("c", N.IntLIF(shape=(1, 1, 1), params=Loihi2LIF(**{"du": 0, "dv": 0, "vth": 1, "bias_mant": 0, "bias_exp": 0})),
          after="c.synapse")
    g.add("out", N.Output(shape=(1, 1, 1)), after="c")
    with pytest.raises(TsslcError, match="Lava's Conv ignores weight_exp"):
        intsim_run(g, np.ones((1, 1, 3, 3), np.float32))


def test_batching_and_counters_consistent():
    """Splitting the batch changes nothing; counters match brute-force counts."""
    rng = np.random.default_rng(3)
    g = Graph({"n_steps": 4, "target": "loihi2"})
    g.add("input", N.IntInput(shape=(6,), encoding="binary", bits=1))
    w = rng.integers(-100, 100, size=(5, 6)).astype(np.int32)
    w[0, :3] = 0
    g.add("d.synapse", N.IntDense(weight=w, weight_exp=2), after="input")
    g.add("d", N.IntLIF(shape=(5,), params=Loihi2LIF(**{"du": 1364, "dv": 819, "vth": 50, "bias_mant": 0, "bias_exp": 0})),
          after="d.synapse")
    g.add("out", N.Output(shape=(5,)), after="d")
    x = (rng.random((4, 7, 6)) < 0.5).astype(np.float32)  # (T, B, 6)
    a = intsim_run(g, x)
    b = intsim_run(g, x, batch_size=3)
    np.testing.assert_array_equal(a.spikes["d"], b.spikes["d"])
    assert a.counters == b.counters
    events = int(sum((x[t, s] != 0).astype(int) @ (w != 0).sum(0) for s in range(7) for t in range(4)))
    assert a.counters.layers["input"].synops == events
    assert a.counters.layers["d"].events_in == events
    assert a.counters.layers["d"].spikes == int(a.spikes["d"].sum())
    assert a.counters.layers["d"].updates_active + a.counters.layers["d"].updates_idle == 7 * 4 * 5
    assert a.counters.core_spikes == {0: a.counters.layers["d"].spikes}
    assert a.predictions().shape == (7,)
