"""Energy: the targets' own tables priced on real counts, scopes never mixed."""

from __future__ import annotations

import json

import pytest

from tsslc.backends import get_backend
from tsslc.api import compile as compile_graph
from tsslc.backends.counters import count
from tsslc.report.energy import HOROWITZ, energy_report, format_table, price, write_json
from tsslc.targets import get_target


@pytest.fixture(scope="module")
def target_counters(digits_graph, digits_test_arrays):
    x, _ = digits_test_arrays
    x = x[:120]
    out = {}
    for t in ("loihi2", "truenorth"):
        cg = compile_graph(digits_graph, t, x)
        res = get_backend("intsim")(cg, x, batch_size=50)
        c = count(cg, res.spikes, x, cores=get_target(t).core_assignment(cg))
        # the simulator's counters are this count, made batch by batch (sums of the parts)
        assert res.counters.to_dict() == c.to_dict()
        out[t] = c
    return out


def test_each_target_priced_with_its_own_table(target_counters, tmp_path):
    rep = energy_report(target_counters)
    lo, tn = rep["targets"]["loihi2"], rep["targets"]["truenorth"]
    table = get_target("loihi2").energy
    assert [l["figure"] for l in lo["lines"]] == [f.name for f in table.figures]
    ps = target_counters["loihi2"].per_sample()
    by = {l["figure"]: l for l in lo["lines"]}
    assert by["synaptic_op"]["count"] == ps["synops"] and by["synaptic_op"]["price"] == table["synaptic_op"].value
    assert by["neuron_update_active"]["count"] == ps["updates_active"]
    assert by["neuron_update_inactive"]["count"] == ps["updates_idle"]
    assert by["tile_hop_ew"]["count"] == ps["hops_x"]
    for l in lo["lines"]:
        assert l["energy_pJ"] == pytest.approx(l["count"] * l["price"])
        assert l["scope"] == "per-term" and "Davies" in l["source"]
    assert list(lo["totals_pJ"]) == ["per-term"]
    assert lo["totals_pJ"]["per-term"] == pytest.approx(sum(l["energy_pJ"] for l in lo["lines"]))
    assert sum(lo["per_layer_pJ"].values()) == pytest.approx(lo["totals_pJ"]["per-term"])
    # TrueNorth: 26 pJ all-in per synaptic event, nothing added to it
    (line,) = tn["lines"]
    assert line["price"] == 26.0 and line["scope"] == "all-in" and "Merolla" in line["source"]
    assert tn["totals_pJ"] == {"all-in": pytest.approx(target_counters["truenorth"].per_sample()["synops"] * 26.0)}
    assert all(c["unit"] != "pJ" for c in tn["context"])  # chip power shown as context only
    # equivalent ANN: one MAC per connection of 64-100-10
    ann = {r["what"]: r for r in rep["ann"]["lines"]}
    assert ann["ANN fp32 (MACs)"]["count"] == 64 * 100 + 100 * 10
    assert rep["ann"]["ann_fp32_pJ"] == pytest.approx(7400 * HOROWITZ["fp32_mac"].value)
    # Loihi 2 has no published per-op table: its prices are Loihi 1's, and the report says so
    assert "Loihi 1" in lo["stand_in"] and tn["stand_in"] == ""
    assert all("Loihi 1" in l["source"] for l in lo["lines"])
    text = format_table(rep)
    assert "all-in (add nothing)" in text and "total of the terms above" in text and "Horowitz" in text
    assert "Loihi 1 figures" in text
    # per-run totals (for summaries): each run's counts priced with its target's table
    runs = energy_report(target_counters, runs={"a": ("loihi2", target_counters["loihi2"]),
                                                "b": ("truenorth", target_counters["truenorth"])})["runs"]
    assert runs["a"]["totals_pJ"] == lo["totals_pJ"] and runs["b"]["totals_pJ"] == tn["totals_pJ"]
    assert runs["a"]["n_samples"] == 120 and runs["a"]["stand_in"] == lo["stand_in"]
    write_json(tmp_path / "energy.json", rep)
    assert json.loads((tmp_path / "energy.json").read_text()) == json.loads(json.dumps(rep))
    assert [p.name for p in tmp_path.iterdir()] == ["energy.json"]  # no temp file left


def test_hops_unknown_without_a_core_assignment(digits_graph, digits_test_arrays, target_counters):
    x, _ = digits_test_arrays
    cg = compile_graph(digits_graph, "loihi2", x[:50])
    res = get_backend("intsim")(cg, x[:50])
    r = price(count(cg, res.spikes, x[:50]), get_target("loihi2").energy)
    hop = [l for l in r["lines"] if "hop" in l["figure"]]
    assert hop and all(l["count"] is None and l["energy_pJ"] is None for l in hop)
