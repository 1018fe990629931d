"""targets/truenorth.py against a slow scalar reference written directly from
targets/truenorth.md (per neuron, per tick, plain Python ints), on random nets and inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tsslc.ir.neurons import TrueNorthLIF
from tsslc.errors import TsslcError
from tsslc.targets import truenorth as tn

# --- the reference: truenorth.md §2, one neuron, one tick, Python integers -------------------


def ref_sat(x: int, bits: int) -> int:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return lo if x < lo else hi if x > hi else x


def ref_leak(x: int, a: int, b: int) -> int:
    mag = -x if x < 0 else x
    d = 0
    for k in (a, b):
        if k != -1:
            d += mag // (2 ** k)  # floor of a non-negative value = right shift
    return -d if x < 0 else d


def ref_tick(i: int, v: int, crossbar_in: list[int], axon_type: list[int], table: list[int], p: dict):
    """§2: integrate the active connected axons through the neuron's table, then the two
    states, threshold, reset. crossbar_in[k] = spike_k * c_k (0/1) for the neuron's axons."""
    acc = 0
    for on, g in zip(crossbar_in, axon_type):
        if on:
            acc += table[g]
    i = ref_sat(i - ref_leak(i, p["i_shift_a"], p["i_shift_b"]) + acc, 20)
    v = ref_sat(v - ref_leak(v, p["v_shift_a"], p["v_shift_b"]) + i, 20)
    s = 1 if v > p["vth"] else 0
    if s:
        v = 0
    return i, v, s


# --- strategies --------------------------------------------------------------------------------

SHIFT_PAIRS = [(a, b) for a in range(-1, tn.MAX_SHIFT + 1) for b in range(-1, tn.MAX_SHIFT + 1)
               if tn.decay_fraction(a, b) <= 1]
shift_pair = st.sampled_from(SHIFT_PAIRS)


@st.composite
def neuron_params(draw):
    (ia, ib), (va, vb) = draw(shift_pair), draw(shift_pair)
    return {"i_shift_a": ia, "i_shift_b": ib, "v_shift_a": va, "v_shift_b": vb,
            "vth": draw(st.integers(0, tn.VTH_MAX))}


@st.composite
def nets(draw):
    """A random one-core layer: n_in inputs with m axons each, n_out neurons, random levels,
    steps, inputs (spikes) and big or small weights so that saturation is reached."""
    m = draw(st.integers(2, 4))
    n_in = draw(st.integers(1, tn.AXONS_PER_CORE // m))
    n_out = draw(st.integers(1, 6))
    T = draw(st.integers(1, 30))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    qm = tn.level_max(m)
    levels = rng.integers(-qm, qm + 1, size=(n_out, n_in))
    steps = rng.integers(1, tn.scale_max(m) + 1, size=n_out)
    density = draw(st.sampled_from([0.05, 0.5, 1.0]))
    spikes = (rng.random((T, n_in)) < density).astype(np.uint8)
    return m, levels, steps, spikes, draw(neuron_params())


@settings(max_examples=60, deadline=None)
@given(nets())
def test_vectorised_step_is_bit_exact_against_the_scalar_reference(net):
    m, levels, steps, spikes, params = net
    n_out, n_in = levels.shape
    # hardware view: crossbar bits per (input, type), axon types, per-neuron tables
    bits = tn.digit_bits(levels, m)  # (n_out, n_in, m)
    table = tn.weight_table(steps, m)  # (n_out, 4)
    axon_type = [g for _ in range(n_in) for g in range(m)]
    assert np.all((np.abs(table) <= tn.WEIGHT_MAX))
    # the effective weight the compiler puts in IntDense
    w = levels * steps[:, None]
    state = tn.init_state((n_out,))
    ref = [(0, 0)] * n_out
    for t in range(spikes.shape[0]):
        state, out = tn.neuron_step(state, torch.from_numpy(w @ spikes[t].astype(np.int64)), TrueNorthLIF(**params))
        for j in range(n_out):
            xin = [int(spikes[t, k // m]) * int(bits[j, k // m, k % m]) for k in range(n_in * m)]
            i, v, s = ref_tick(*ref[j], xin, axon_type, [int(x) for x in table[j]], params)
            ref[j] = (i, v)
            assert out[j] == s, f"tick {t} neuron {j}: spike {out[j]} != reference {s}"
            assert state["I"][j] == i and state["V"][j] == v, f"tick {t} neuron {j}: state differs"


@given(st.integers(2, 4), st.integers(-7, 7))
def test_digits_reach_every_level_exactly(m, q):
    q = max(-tn.level_max(m), min(tn.level_max(m), q))
    bits = tn.digit_bits(np.array([q]), m)[0]
    assert int(np.dot(bits.astype(int), tn.axon_digits(m))) == q


def test_best_shifts_and_decay_error():
    assert tn.best_shifts(3) == (2, 4)  # 1/4 + 1/16 = 0.3125 vs 1/3
    assert tn.best_shifts(5) == (3, 4)  # 1/8 + 1/16 = 0.1875 vs 0.2
    assert tn.best_shifts(2) == (1, -1)
    assert tn.best_shifts(1) == (0, -1)  # full decay
    assert tn.decay_fraction(2, 4) == 0.3125


def test_saturation_and_no_sign_flip():
    p = {"i_shift_a": -1, "i_shift_b": -1, "v_shift_a": -1, "v_shift_b": -1, "vth": tn.VTH_MAX}
    state = tn.init_state((2,))
    for _ in range(4):
        state, s = tn.neuron_step(state, torch.tensor([200_000, -200_000]), TrueNorthLIF(**p))
    assert state["I"].tolist() == [tn.I_MAX, tn.I_MIN]
    assert state["V"][1] == tn.V_MIN and s.tolist() == [1, 0]  # the positive one spiked and reset
    p = {**p, "i_shift_a": 1, "i_shift_b": 1}
    # negative states decay toward zero and never change sign
    st_ = {"I": torch.tensor([-1, -3, 5]), "V": torch.zeros(3, dtype=torch.int64)}
    st_, _ = tn.neuron_step(st_, torch.zeros(3, dtype=torch.int64), TrueNorthLIF(**{**p, "vth": 0}))
    assert st_["I"].tolist() == [-1, -1, 1]


def test_fan_in_error_names_layer_and_limit():
    with pytest.raises(TsslcError, match=r"layer 'FC_1': fan-in 640 .*256 axons.*fan_in"):
        tn.check_fan_in(640, "FC_1")
    assert tn.check_fan_in(64, "hidden") == 4
    assert tn.check_fan_in(100, "output") == 2
    assert tn.check_fan_in(85, "x") == 3


def test_quantize_weights_reports_cost_and_error():
    rng = np.random.default_rng(0)
    target = rng.normal(0, 60, size=(100, 64))
    lw = tn.quantize_weights(target, 64, "hidden")
    assert lw.axons_per_input == 4 and lw.report["axons"] == 256
    assert np.all(np.abs(lw.levels) <= 7) and np.all(lw.step <= tn.scale_max(4))
    assert np.array_equal(lw.weight, lw.levels.astype(int) * lw.step[:, None])
    assert 0 < lw.report["weight_error"] < 0.2
    # ternary (m=2) is coarser than 15 levels
    lw2 = tn.quantize_weights(target[:, :], 128, "x")
    assert lw2.axons_per_input == 2 and lw2.report["weight_error"] > lw.report["weight_error"]


# --- the integer simulator on random truenorth nets, against a whole-net scalar reference ------


def ref_input(p: float) -> int:
    """§3: graded 2-bit payload: round half away from zero of p·1, clipped to ±1."""
    import math

    q = math.floor(abs(p) + 0.5) * (1 if p >= 0 else -1)
    return max(-1, min(1, q))


def ref_net(layers, x, T):
    """Per sample, per tick, per neuron: crossbar sum through the table (§1), then §2."""
    out = []
    for sample in x:
        prev = [[ref_input(float(p)) for p in sample]] * T
        spikes_all = []
        for levels, steps, m, params in layers:
            n_out, n_in = len(levels), len(levels[0])
            table = [[steps[j] * d for d in tn.axon_digits(m)] for j in range(n_out)]
            bits = [[tn.digit_bits(np.array([levels[j][i]]), m)[0].tolist() for i in range(n_in)] for j in range(n_out)]
            state = [(0, 0)] * n_out
            cur = []
            for t in range(T):
                row = []
                for j in range(n_out):
                    acc = 0
                    for i in range(n_in):
                        for g in range(m):  # axon (i, g): active when input i spikes, connected if bit set
                            acc += prev[t][i] * bits[j][i][g] * table[j][g]
                    i_, v_ = state[j]
                    i_ = ref_sat(i_ - ref_leak(i_, params["i_shift_a"], params["i_shift_b"]) + acc, 20)
                    v_ = ref_sat(v_ - ref_leak(v_, params["v_shift_a"], params["v_shift_b"]) + i_, 20)
                    s = 1 if v_ > params["vth"] else 0
                    state[j] = (i_, 0 if s else v_)
                    row.append(s)
                cur.append(row)
            spikes_all.append(cur)
            prev = cur
        out.append(spikes_all)
    return out


@st.composite
def random_nets(draw):
    T = draw(st.integers(1, 8))
    sizes = [draw(st.integers(1, 12)) for _ in range(draw(st.integers(2, 3)))]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        m = draw(st.integers(2, 4))
        levels = rng.integers(-tn.level_max(m), tn.level_max(m) + 1, size=(n_out, n_in))
        steps = rng.integers(1, tn.scale_max(m) + 1, size=n_out)
        params = draw(neuron_params())
        params["vth"] = int(rng.integers(0, draw(st.sampled_from([64, 2000, tn.VTH_MAX])) + 1))
        layers.append((levels.tolist(), steps.tolist(), m, params))
    x = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0, -0.6], size=(draw(st.integers(1, 3)), sizes[0]))
    return T, layers, x


@settings(max_examples=25, deadline=None)
@given(random_nets())
def test_intsim_runs_truenorth_nets_bit_exactly(case):
    from tsslc.backends import get_backend
    from tsslc.ir import nodes as N
    from tsslc.ir.graph import Graph

    T, layers, x = case
    g = Graph({"n_steps": T, "target": "truenorth"})
    prev = g.add("input", N.IntInput(shape=(x.shape[1],), encoding="graded", scale=1.0, bits=tn.INPUT_BITS))
    for k, (levels, steps, m, params) in enumerate(layers):
        w = (np.array(levels) * np.array(steps)[:, None]).astype(np.int32)
        syn = g.add(f"l{k}.synapse", N.IntDense(weight=w, weight_exp=0), after=prev)
        prev = g.add(f"l{k}", N.IntLIF(shape=(w.shape[0],), params=TrueNorthLIF(**params)), after=syn)
    g.add("output", N.Output(shape=(len(layers[-1][0]),)), after=prev)
    res = get_backend("intsim")(g, x.astype(np.float32))
    ref = ref_net(layers, x, T)
    for k in range(len(layers)):
        got = res.spikes[f"l{k}"]  # (T, B, n)
        want = np.array([ref[b][k] for b in range(len(x))]).transpose(1, 0, 2)
        assert np.array_equal(got, want), f"layer l{k}: intsim differs from the scalar reference"


# --- conv layers (grouped, strided, padded) and the rate input, against the scalar reference ----


def ref_rate(ps: list[float], scale: float) -> list[int]:
    """§3 rate encoding of one pixel's values over the ticks: spike when round(c) steps up,
    c the running sum of p·scale (round half up)."""
    import math

    out, c = [], 0.0
    for p in ps:
        c_new = c + p * scale
        out.append(max(-1, min(1, math.floor(c_new + 0.5) - math.floor(c + 0.5))))
        c = c_new
    return out


def ref_conv_layer(prev, shape_in, layer, T):
    """One conv population per §1-§2: neuron (o, y, x) sees the axons of the inputs in its
    group's window (c in the group, ky, kx inside the image: zero padding is no axon),
    m per input, through its table."""
    levels, steps, m, params, stride, pad, groups = layer
    c_out, c_in_g, k = len(levels), len(levels[0]), len(levels[0][0])
    c_in, h, w = shape_in
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    digits = tn.axon_digits(m)
    cur = []
    state = {}
    for t in range(T):
        row = []
        for o in range(c_out):
            g = o // (c_out // groups)
            table = [steps[o] * d for d in digits]
            for y in range(ho):
                for x in range(wo):
                    acc = 0
                    for ci in range(c_in_g):
                        for ky in range(k):
                            for kx in range(k):
                                iy, ix = y * stride - pad + ky, x * stride - pad + kx
                                if not (0 <= iy < h and 0 <= ix < w):
                                    continue
                                src = ((g * c_in_g + ci) * h + iy) * w + ix
                                if not prev[t][src]:
                                    continue
                                bits = tn.digit_bits(np.array([levels[o][ci][ky][kx]]), m)[0]
                                acc += prev[t][src] * sum(int(b) * table[gg] for gg, b in enumerate(bits))
                    i_, v_ = state.get((o, y, x), (0, 0))
                    i_ = ref_sat(i_ - ref_leak(i_, params["i_shift_a"], params["i_shift_b"]) + acc, 20)
                    v_ = ref_sat(v_ - ref_leak(v_, params["v_shift_a"], params["v_shift_b"]) + i_, 20)
                    s = 1 if v_ > params["vth"] else 0
                    state[(o, y, x)] = (i_, 0 if s else v_)
                    row.append(s)
        cur.append(row)
    return cur, (c_out, ho, wo)


@st.composite
def random_conv_nets(draw):
    T = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (draw(st.integers(1, 3)), draw(st.integers(3, 6)), draw(st.integers(3, 6)))
    layers, c = [], shape[0]
    h, w = shape[1:]
    for _ in range(draw(st.integers(1, 2))):
        groups = draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0]))
        c_out = groups * draw(st.integers(1, 2))
        k = draw(st.integers(1, min(3, h, w)))
        stride, pad = draw(st.integers(1, 2)), draw(st.integers(0, 1))
        m = draw(st.integers(2, 4))
        levels = rng.integers(-tn.level_max(m), tn.level_max(m) + 1, size=(c_out, c // groups, k, k))
        steps = rng.integers(1, tn.scale_max(m) + 1, size=c_out)
        params = draw(neuron_params())
        params["vth"] = int(rng.integers(0, draw(st.sampled_from([64, 2000, tn.VTH_MAX])) + 1))
        layers.append((levels.tolist(), steps.tolist(), m, params, stride, pad, groups))
        c, h, w = c_out, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    encoding = draw(st.sampled_from(["rate", "graded"]))
    x = rng.choice([0.0, 1 / 16, 0.25, 0.5, 0.75, 15 / 16, 1.0], size=(draw(st.integers(1, 2)), *shape))
    return T, shape, layers, x, encoding


@settings(max_examples=30, deadline=None)
@given(random_conv_nets())
def test_intsim_runs_truenorth_conv_nets_bit_exactly(case):
    """Grouped / strided / padded conv layers and the rate (or graded) input: intsim's spikes
    equal the per-neuron, per-tick scalar reference of truenorth.md §1-§3."""
    from tsslc.backends import get_backend
    from tsslc.ir import nodes as N
    from tsslc.ir.graph import Graph

    T, shape, layers, x, encoding = case
    g = Graph({"n_steps": T, "target": "truenorth"})
    if encoding == "rate":
        inp = N.IntInput(shape=shape, encoding="rate", scale=1.0, bits=1, n_steps=T)
    else:
        inp = N.IntInput(shape=shape, encoding="graded", scale=1.0, bits=tn.INPUT_BITS)
    prev = g.add("input", inp)
    for k, (levels, steps, m, params, stride, pad, groups) in enumerate(layers):
        w = (np.array(levels) * np.array(steps)[:, None, None, None]).astype(np.int32)
        syn = g.add(f"l{k}.synapse", N.IntConv2d(weight=w, stride=stride, padding=pad, groups=groups, weight_exp=0),
                    after=prev)
        prev = g.add(f"l{k}", N.IntLIF(shape=tuple(g.shapes()[syn]), params=TrueNorthLIF(**params)), after=syn)
    g.add("output", N.Output(shape=tuple(g.shapes()[prev])), after=prev)
    res = get_backend("intsim")(g, x.astype(np.float32))
    for b, sample in enumerate(x):
        flat = sample.ravel().tolist()
        if encoding == "rate":
            per_pixel = [ref_rate([p] * T, 1.0) for p in flat]
            prev_s = [[per_pixel[i][t] for i in range(len(flat))] for t in range(T)]
        else:
            prev_s = [[ref_input(p) for p in flat]] * T
        shp = shape
        for k, layer in enumerate(layers):
            prev_s, shp = ref_conv_layer(prev_s, shp, layer, T)
            got = res.spikes[f"l{k}"][:, b].reshape(T, -1)
            assert np.array_equal(got, np.array(prev_s)), f"sample {b} layer l{k}: intsim differs from the reference"
