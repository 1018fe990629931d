"""Core mapping (tsslc.targets.mapping) on real compiled graphs of both targets: every neuron on a
core within the limits, splitters for truenorth's one destination per neuron, hops, the
core graph, and the fan-in error of the paper's MNIST CNN."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from tsslc.ir.neurons import TrueNorthLIF
from tsslc.config import load_config, parse_config
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.export import graph_from_network
from tsslc.targets.mapping import HOST, OUTPUT, attach, map_graph
from tsslc.network import Network
from tsslc.targets.quantize import quantize
from tsslc.passes.structural import fold_pooling
from tsslc.targets import get_target

from conftest import EXAMPLES


@pytest.fixture(scope="module")
def tn_digits(digits_graph, digits_test_arrays):
    x, _ = digits_test_arrays
    return quantize(digits_graph, get_target("truenorth"), torch.from_numpy(x[:128]))


def _check_limits(graph, mapping, target):
    """Brute force: each core's neurons, and the axons its neurons' inputs need."""
    geo = target.geometry
    rows = {r["name"]: r for r in graph.metadata["quantization"]["layers"]}
    for lif, cores in mapping.assignment.items():
        syn = graph.predecessors(lif)[0]
        w = np.asarray(graph[syn].weight)
        m = rows[lif].get("axons_per_input", 1)
        assert cores.shape == (int(np.prod(graph[lif].shape)),)
        for c in np.unique(cores):
            members = np.flatnonzero(cores == c)
            assert len(members) <= geo.neurons_per_core
            if isinstance(graph[syn], N.IntDense) and geo.axons_per_core:
                used = np.flatnonzero((w[members] != 0).any(0))
                assert len(used) * m <= geo.axons_per_core
                assert mapping.cores[c].axons == len(used) * m


def test_truenorth_digits_mapping(tn_digits):
    tn = get_target("truenorth")
    mp = map_graph(tn_digits, tn)
    g = attach(tn_digits, tn)
    rep = mp.report()
    _check_limits(g, mp, tn)
    # hidden: 64 pixels x 4 axons = 256 axons, one core of 100 neurons; output: 100 inputs x 2 axons
    assert rep["layers"]["hidden"]["cores"] == 1 and rep["layers"]["hidden"]["axons_per_input"] == 4
    assert rep["layers"]["output"]["axons_per_input"] == 2 and rep["layers"]["output"]["cores"] == 1
    # every hidden neuron with a non-zero outgoing weight feeds 2 axons -> 2 splitter copies each
    used = int((np.asarray(g["output.synapse"].weight) != 0).any(0).sum())
    assert rep["layers"]["hidden"]["splitter_neurons"] == 2 * used
    assert rep["splitter_cores"] == 1 and rep["neuron_cores"] == 2 and rep["cores"] == 3
    assert rep["layers"]["output"]["latency"] == 2 and rep["latency_ticks"] == 3
    assert 0 < rep["neuron_utilisation"] <= 1 and 0 < rep["axon_utilisation"] <= 1
    # the core graph: host -> hidden core -> splitter core -> output core -> output port
    cg = mp.core_graph
    assert nx.is_directed_acyclic_graph(cg)
    path = nx.shortest_path(cg, HOST, OUTPUT)
    assert [cg.nodes[n]["kind"] for n in path] == ["host", "neuron", "splitter", "neuron", "output"]
    assert cg[HOST][path[1]]["routes"] == rep["layers"]["hidden"]["axons"]
    # stored for the back ends: truenorth's core assignment is the mapping's
    assert np.array_equal(tn.core_assignment(g)["hidden"], mp.assignment["hidden"])
    assert g.metadata["mapping"]["cores"] == 3


def test_mapping_survives_the_model_file(tn_digits, tmp_path):
    from tsslc.backends import get_backend
    from tsslc.ir import io

    tn = get_target("truenorth")
    g = attach(tn_digits, tn)
    back = io.load(io.save(g, tmp_path / "tn.h5"))
    for pop, cores in g.metadata["mapping"]["assignment"].items():
        assert np.array_equal(tn.core_assignment(back)[pop], cores)
    assert np.array_equal(back.metadata["mapping"]["core_edges"], g.metadata["mapping"]["core_edges"])
    x = np.random.default_rng(0).random((8, 1, 8, 8)).astype(np.float32)
    res = get_backend("intsim")(back, x)
    per_core = res.counters.core_spikes
    hidden = res.spikes["hidden"].sum()
    assert per_core[int(g.metadata["mapping"]["assignment"]["hidden"][0])] == hidden  # hidden's one core


def test_block_sparse_net_packs_blocks_per_core():
    raw = load_config(EXAMPLES / "digits.yaml").to_dict()
    raw["Layers"]["hidden"]["n_outputs"] = 300
    raw["Layers"]["output"]["n_inputs"] = 300
    raw["Layers"]["output"]["fan_in"] = 100
    torch.manual_seed(0)
    net = Network(parse_config(raw))
    g = quantize(graph_from_network(net), get_target("truenorth"), torch.rand(32, 1, 8, 8))
    mp = map_graph(g, get_target("truenorth"))
    rep = mp.report()
    _check_limits(g, mp, get_target("truenorth"))
    # hidden: 300 neurons > 256 per core -> 2 cores; output: 3 blocks of 100 inputs x 2 axons -> 3 cores
    assert rep["layers"]["hidden"]["cores"] == 2
    assert rep["layers"]["output"]["fan_in"] == 100 and rep["layers"]["output"]["cores"] == 3
    assert len(set(mp.assignment["output"][:3].tolist())) == 1  # outputs 0-2 share block 0


def test_loihi2_mapping_uses_its_geometry(digits_graph, digits_test_arrays):
    lo = get_target("loihi2")
    x, _ = digits_test_arrays
    g = quantize(digits_graph, lo, torch.from_numpy(x[:64]))
    rep = map_graph(g, lo).report()
    assert rep["cores"] == 2 and rep["splitter_neurons"] == 0  # multicast fan-out: no splitters
    assert rep["neuron_utilisation"] == pytest.approx(110 / (2 * lo.geometry.neurons_per_core))
    assert rep["latency_ticks"] == 2 and "axons" not in rep


def test_paper_mnist_cnn_fails_with_the_fan_in_error():
    torch.manual_seed(0)
    net = Network(load_config(EXAMPLES / "mnist_cnn.yaml"))
    # pooling_1 folds into conv_2: each conv_2 neuron reads 15 channels x 10x10 conv_1 spikes
    g = fold_pooling(graph_from_network(net))
    with pytest.raises(TsslcError, match=r"layer 'conv_2': fan-in 1500 inputs needs 3000 axons .*> 256 axons per "
                                         r"truenorth core; remedy: .*groups.*pool"):
        quantize(g, get_target("truenorth"), torch.rand(4, 1, 28, 28))


def test_grouped_cnn_maps_in_tiles():
    raw = {"Network": {"dataset": "MNIST", "n_steps": 2, "tau_m": 5, "tau_s": 3, "loss": "kernel", "n_class": 10},
           "Layers": {"conv_1": {"type": "conv", "in_channels": 1, "out_channels": 8, "kernel_size": 5},
                      "conv_2": {"type": "conv", "in_channels": 8, "out_channels": 16, "kernel_size": 5, "stride": 4,
                                 "groups": 4},
                      "output": {"type": "linear", "n_inputs": 400, "n_outputs": 10, "fan_in": 100}}}
    torch.manual_seed(0)
    net = Network(parse_config(raw))
    tn = get_target("truenorth")
    g = quantize(graph_from_network(net), tn, torch.rand(4, 1, 28, 28))
    mp = map_graph(g, tn)
    rep = mp.report()
    l1 = rep["layers"]["conv_1"]
    # fan-in 25 -> 4 axons per input; a 4x4 tile of 8 channels (128 neurons) needs 8x8 pixels x 4 = 256 axons
    assert l1["fan_in"] == 25 and l1["axons_per_input"] == 4 and l1["cores"] == 36
    assert rep["layers"]["conv_2"]["fan_in"] == 50
    for c in mp.cores:
        assert c.neurons <= 256 and c.axons <= 256
    assert rep["cores"] <= tn.geometry.n_cores


def test_wide_fan_out_takes_a_splitter_tree():
    """64 hidden neurons each feed 4 axons on every one of the 79 cores of a 20,000-neuron
    layer: 316 copies > 256 per splitter core -> two splitter levels, one more hop."""
    from tsslc.ir.graph import Graph

    rng = np.random.default_rng(0)
    params = {"i_shift_a": 2, "i_shift_b": 4, "v_shift_a": 3, "v_shift_b": 4, "vth": 100}
    g = Graph({"n_steps": 2, "target": "truenorth"})
    g.add("input", N.IntInput(shape=(64,), encoding="graded", scale=1.0, bits=2))
    g.add("h.synapse", N.IntDense(weight=rng.integers(1, 8, (64, 64)).astype(np.int32)), after="input")
    g.add("h", N.IntLIF(shape=(64,), params=TrueNorthLIF(**params)), after="h.synapse")
    g.add("big.synapse", N.IntDense(weight=rng.integers(1, 8, (20000, 64)).astype(np.int32)), after="h")
    g.add("big", N.IntLIF(shape=(20000,), params=TrueNorthLIF(**params)), after="big.synapse")
    g.add("out", N.Output(shape=(20000,)), after="big")
    g.metadata["quantization"] = {"layers": [{"name": "h", "axons_per_input": 4}, {"name": "big", "axons_per_input": 4}]}
    rep = map_graph(g, get_target("truenorth")).report()
    big, h = rep["layers"]["big"], rep["layers"]["h"]
    assert big["cores"] == 79 and h["cores"] == 1
    assert h["splitter_levels"] == 2 and h["splitter_neurons"] == 64 * (316 + 2)
    assert big["latency"] == 3 and rep["latency_ticks"] == 4
    assert h["delay_padded_neurons"] == 0


# --- loihi2's per-core memory (targets/loihi2.md §3) -------------------------------------------

LOIHI2_BUDGET_BITS = 192 * 1024 * 8  # 192 KB per neuro core (Intel's Loihi 2 brief)
STATE_BITS, SYNAPSE_BITS = 64, 8  # the document's model: LIF state per neuron, 8-bit synapses


def _mlp_784_400(seed=0):
    cfg = parse_config({"Network": {"dataset": "MNIST", "n_steps": 5, "tau_m": 5, "tau_s": 3, "loss": "kernel",
                                    "n_class": 10, "desired_count": 4, "undesired_count": 1, "lr": 0.001,
                                    "batch_size": 10, "epochs": 1},
                        "Layers": {"FC_1": {"type": "linear", "n_inputs": 784, "n_outputs": 400, "weight_scale": 1,
                                            "threshold": 1},
                                   "output": {"type": "linear", "n_inputs": 400, "n_outputs": 10, "weight_scale": 1,
                                              "threshold": 1}}})
    torch.manual_seed(seed)
    return graph_from_network(Network(cfg).eval())


def test_a_dense_784x400_layer_no_longer_fits_one_loihi2_core():
    """313,600 8-bit synapses (306 KiB) exceed 192 KiB: the layer is split by memory, in
    neuron order, each core filled while the next neuron still fits; each core's reported
    use is its neurons' state plus their non-zero synapses, computed here neuron by neuron."""
    lo = get_target("loihi2")
    g = quantize(_mlp_784_400(), lo, torch.rand(16, 1, 28, 28))
    mp = map_graph(g, lo)
    rep = mp.report()
    w = np.asarray(g["FC_1.synapse"].weight)
    assert np.count_nonzero(w) * SYNAPSE_BITS > LOIHI2_BUDGET_BITS  # what "not one core" rests on
    # scalar reference: next fit in neuron order under the budget
    expected, used = [], 0
    for row in w:
        need = STATE_BITS + SYNAPSE_BITS * int(np.count_nonzero(row))
        if used + need > LOIHI2_BUDGET_BITS:
            expected.append(used)
            used = 0
        used += need
    expected.append(used)
    layer = rep["layers"]["FC_1"]
    assert layer["cores"] == len(expected) >= 2
    cores = [c for c in mp.cores if c.population == "FC_1"]
    assert [c.memory for c in cores] == [-(-b // 8) for b in expected]
    assert all(c.memory <= 192 * 1024 for c in mp.cores)
    assert layer["max_core_memory_bytes"] == max(c.memory for c in cores)
    assert rep["memory_per_core_bytes"] == 192 * 1024 and rep["cores"] == len(expected) + 1
    assert rep["memory_bytes"] == sum(c.memory for c in mp.cores)
    meta = attach(g, lo).metadata["mapping"]
    assert list(meta["core_memory"]) == [c.memory for c in mp.cores]


def test_conv_weights_are_stored_once_per_core():
    """The paper's MNIST CNN on loihi2: conv_1 (8,640 neurons) takes two cores by the neuron
    limit; each conv core holds its neurons' state plus one kernel per output channel it
    hosts (not one per neuron), and FC_1 (300 x 2,560 synapses after the pool folds in)
    splits by memory."""
    torch.manual_seed(0)
    lo = get_target("loihi2")
    g = quantize(fold_pooling(graph_from_network(Network(load_config(EXAMPLES / "mnist_cnn.yaml")).eval())), lo,
                 torch.rand(8, 1, 28, 28))
    mp = map_graph(g, lo)
    for conv in ("conv_1", "conv_2"):
        w = np.asarray(g[f"{conv}.synapse"].weight)
        per_channel = int(np.prod(g[conv].shape[1:]))
        for c in (c for c in mp.cores if c.population == conv):
            members = np.flatnonzero(mp.assignment[conv] == c.index)
            channels = np.unique(members // per_channel)
            bits = STATE_BITS * len(members) + SYNAPSE_BITS * int(np.prod(w.shape[1:])) * len(channels)
            assert c.memory == -(-bits // 8) and c.neurons == len(members) <= 8192
    rep = mp.report()
    assert rep["layers"]["conv_1"]["cores"] == 2 and rep["layers"]["FC_1"]["cores"] >= 4
    assert rep["cores"] == sum(layer["cores"] for layer in rep["layers"].values())
    assert rep["max_core_memory_bytes"] <= 192 * 1024


def test_the_compile_report_gives_per_core_memory(digits_loihi2, digits_graph, tmp_path, capsys):
    from tsslc.cli import main
    from tsslc.ir.io import save
    from tsslc.report.text import compile_lines

    lines = compile_lines(digits_loihi2)
    assert "KiB/core" in lines[1]
    m = digits_loihi2.metadata["mapping"]
    assert any(line.startswith("memory: ") and f"{m['max_core_memory_bytes'] / 1024:.1f} KiB on one core of 192 KiB"
               in line for line in lines)
    model = save(digits_graph, tmp_path / "digits.tsslc")
    assert main(["compile", str(model), "--target", "loihi2", "-o", str(tmp_path / "c.tsslc"),
                 "--json", str(tmp_path / "c.json")]) == 0
    import json

    rep = json.loads((tmp_path / "c.json").read_text())["mapping"]
    assert rep["memory_per_core_bytes"] == 192 * 1024 and len(rep["core_memory"]) == rep["cores"]
    assert all(layer["memory_bytes"] > 0 for layer in rep["layers"].values())
    assert "memory: " in capsys.readouterr().out


def test_a_neuron_larger_than_a_core_is_one_error():
    lo = get_target("loihi2")
    g = quantize(_mlp_784_400(), lo, torch.rand(4, 1, 28, 28))
    huge = type(lo)()  # a loihi2 whose cores hold 512 bytes
    from dataclasses import replace

    huge.memory = replace(lo.memory, bytes_per_core=512)
    with pytest.raises(TsslcError, match=r"layer 'FC_1': one neuron needs \d+ bytes of core memory .* > 512 bytes "
                                         r"per loihi2 core; remedy: a smaller fan-in"):
        map_graph(g, huge)
