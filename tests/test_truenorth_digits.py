"""The trained digits MLP (64-100-10) on truenorth: compiled with the real quantize pass,
run on the integer simulator, mapped on cores. Prints the figures (accuracy float vs
truenorth, agreement, axon cost, weight error, cores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tsslc.backends import get_backend
from tsslc.targets.mapping import attach
from tsslc.targets.quantize import quantize
from tsslc.targets import get_target


@pytest.fixture(scope="module")
def compiled(digits_graph, digits_test_arrays):
    from tsslc.data.digits import digits_arrays

    xtr = digits_arrays()[0]
    g = quantize(digits_graph, get_target("truenorth"), torch.from_numpy(xtr[:256]))
    return attach(g, get_target("truenorth"))


def test_digits_on_truenorth_figures(compiled, digits_graph, digits_test_arrays):
    x, y = digits_test_arrays
    flt = get_backend("float")(digits_graph, x)
    tn = get_backend("intsim")(compiled, x)
    acc_f = float((flt.predictions() == y).mean())
    acc_t = float((tn.predictions() == y).mean())
    agree = {k: float((flt.spikes[k] == tn.spikes[k]).mean()) for k in flt.spikes}
    rows = {r["name"]: r for r in compiled.metadata["quantization"]["layers"]}
    m = compiled.metadata["mapping"]
    print(f"\ndigits on truenorth: float {acc_f:.4f}, truenorth (intsim) {acc_t:.4f}, "
          f"spike agreement {', '.join(f'{k} {v:.4f}' for k, v in agree.items())}")
    for name, r in rows.items():
        print(f"  {name}: fan-in {r['fan_in']} x {r['axons_per_input']} axons = {r['axons']} / 256, "
              f"{r['weight_levels']} levels, weight error {r['weight_error']:.3f}, saturated "
              f"{r['saturated_fraction']:.3f}, decay error s {r['decay_error_s']:.4f} m {r['decay_error_m']:.4f}, "
              f"scale {r['scale']:.1f} ({r['scale_bound']}), vth {r['vth']}")
    print(f"  cores {m['cores']} ({m['neuron_cores']} neuron + {m['splitter_cores']} splitter), splitter neurons "
          f"{m['splitter_neurons']}, neuron utilisation {m['neuron_utilisation']:.3f}, axon utilisation "
          f"{m['axon_utilisation']:.3f}, latency {m['latency_ticks']} ticks")
    # the 64 inputs take 4 axon types each (15 weight levels): exactly one core's 256 axons
    assert rows["hidden"]["axons_per_input"] == 4 and rows["hidden"]["axons"] == 256
    assert rows["hidden"]["weight_error"] < 0.2
    # 100 hidden neurons fit 256 axons only as ternary inputs (2 axons each)
    assert rows["output"]["axons_per_input"] == 2 and rows["output"]["axons"] == 200
    assert rows["output"]["weight_error"] > rows["hidden"]["weight_error"]
    assert rows["hidden"]["decay_error_s"] == pytest.approx(1 / 16)  # tau_s 3 on (2, 4) shifts
    assert acc_f > 0.9
    assert acc_t > 0.6 and acc_t <= acc_f + 0.02
    assert agree["hidden"] > 0.85
    # the intsim is the target's arithmetic: spikes are 0/1 and counters follow the mapping's cores
    assert set(np.unique(tn.spikes["hidden"]).tolist()) <= {0, 1}
    assert len(tn.counters.core_spikes) >= m["neuron_cores"]


def test_integer_weights_are_table_times_levels(compiled):
    """Every neuron's effective weights are a_j * q_ji with |q| <= 2^(m-1)-1 and a table
    a_j * d_g within 9 bits: brute force over every step a_j the table allows."""
    from tsslc.targets import truenorth as tn

    rows = {r["name"]: r for r in compiled.metadata["quantization"]["layers"]}
    for lif in ("hidden", "output"):
        w = np.asarray(compiled[f"{lif}.synapse"].weight).astype(np.int64)
        m = rows[lif]["axons_per_input"]
        steps = np.arange(1, tn.scale_max(m) + 1)
        ok = ((w[:, :, None] % steps) == 0) & (np.abs(w[:, :, None]) // steps <= tn.level_max(m))
        assert ok.all(1).any(1).all(), f"{lif}: a neuron's weights are not a 9-bit table times {m}-axon levels"
        table = np.abs(np.array(tn.axon_digits(m))).max() * tn.scale_max(m)
        assert table <= tn.WEIGHT_MAX


def test_splitter_events_are_the_copies_of_every_hidden_spike(compiled, digits_test_arrays):
    """The output layer sits on one core and takes 2 axons (ternary) per hidden neuron: every
    hidden spike is copied twice by a splitter, so the splitter cores see 2 events per
    hidden spike, which the layers' counters do not include."""
    from tsslc.targets.truenorth import splitter_events

    x, _ = digits_test_arrays
    res = get_backend("intsim")(compiled, x[:100])
    m = compiled.metadata["mapping"]
    assert m["layers"]["output"]["cores"] == 1 and m["layers"]["output"]["axons_per_input"] == 2
    ev = splitter_events(compiled, res.spikes)
    # hidden neurons whose output weights all rounded to zero reach no axon: no splitter
    connected = (np.asarray(compiled["output.synapse"].weight) != 0).any(0)
    hidden_spikes = res.spikes["hidden"][:, :, connected].sum(dtype=np.int64) / 100
    assert set(ev) == {"hidden"} and ev["hidden"] == pytest.approx(2 * hidden_spikes)
    assert m["splitter_neurons"] == 2 * int(connected.sum())
