"""The library: the README's API example as written, one walker for every back end, passes
that own their output, typed target parameters in the model file (format 1 still loads),
and no module reaching into the command line."""

from __future__ import annotations

import ast
import copy
import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np
import pytest
import torch

import tsslc
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.neurons import Loihi2LIF, TrueNorthLIF

from conftest import REPO

FORMAT1 = REPO / "tests" / "data" / "format1"


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README.md has no ```python block after <!-- api-example -->"
    return m.group(1)


def test_readme_api_example_runs_as_written(tmp_path, monkeypatch, capsys):
    code = readme_example()
    assert len([line for line in code.splitlines() if line.strip()]) <= 12  # a ten-line example
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    out = capsys.readouterr().out
    acc = float(re.search(r"loihi2 accuracy (\d\.\d+)", out).group(1))
    assert acc > 0.8
    assert "intsim vs float" in out and "% of spikes equal" in out  # the verification report
    assert "loihi2: energy per sample" in out and "synaptic_op" in out  # the priced table
    assert (tmp_path / "runs" / "api" / "checkpoint.pt").is_file()
    # what the example's names hold
    run, y = scope["run"], scope["y"]
    assert run.spikes["hidden"].shape == (5, len(y), 100)  # time first
    assert run.target == "loihi2" and run.backend == "intsim"


def test_time_first_everywhere():
    """Event data come back time first from load_data and go into every back end as they are."""
    g = Graph({"n_steps": 4})
    rng = np.random.default_rng(0)
    g.add("input", N.Input(shape=(2, 3, 3), encoding="events", tau_s=2.0))
    g.add("flat", N.Flatten(), after="input")
    g.add("d.synapse", N.Dense(weight=rng.normal(0, 1, (5, 18)).astype(np.float32)), after="flat")
    g.add("d", N.LIF(shape=(5,), tau_m=4.0, tau_s=2.0, threshold=0.3), after="d.synapse")
    g.add("out", N.Output(shape=(5,)), after="d")
    x = (rng.random((4, 7, 2, 3, 3)) < 0.5).astype(np.float32)  # (T, B, C, H, W)
    res = tsslc.simulate(g, x)
    assert res.spikes["d"].shape == (4, 7, 5)
    # sample 3 alone gives the same spikes: the batch axis is the second one
    one = tsslc.simulate(g, x[:, 3:4])
    assert np.array_equal(one.spikes["d"][:, 0], res.spikes["d"][:, 3])
    with pytest.raises(TsslcError, match=r"time first.*T=4"):
        tsslc.simulate(g, x.swapaxes(0, 1))  # batch first is refused, with the layout named


# --- one walker -------------------------------------------------------------------------------


@N.register_node
@dataclass(frozen=True, eq=False)
class Gain(N.Node):
    """A toy node kind: out = k · in (float), out = in << shift (integer)."""

    kind: ClassVar[str] = "toy_gain"
    k: float = 1.0
    shift: int = 0

    def infer_shape(self, in_shape):
        return tuple(in_shape)


def _with_gain(graph: Graph, after: str, node: N.Node) -> Graph:
    """``graph`` with ``node`` inserted after ``after`` (a new graph)."""
    out = Graph(copy.deepcopy(graph.metadata))
    for name, n in graph.items():
        out.add(name, n)
        if name == after:
            out.add("gain", node)
    for s, d in graph.edges():
        out.connect("gain" if s == after else s, d)
    out.connect(after, "gain")
    return out


def test_a_new_node_kind_takes_one_method_per_back_end(digits_graph, digits_loihi2, digits_test_arrays, tmp_path):
    from tsslc.backends.intsim import IntSim, compiled_target
    from tsslc.ir.interpreter import FloatInterpreter

    x = digits_test_arrays[0][:20]
    T = digits_graph.metadata["n_steps"]

    # the float interpreter: one method
    class FloatWithGain(FloatInterpreter):
        def toy_gain(self, name, node, v):
            return v * node.k

    g = _with_gain(digits_graph, "input", Gain(k=2.0))
    with pytest.raises(TsslcError, match=r"node 'gain' \(toy_gain\): the float interpreter cannot run"):
        tsslc.simulate(g, x)
    w = FloatWithGain(g, x, T)
    w.run()
    ref = FloatInterpreter(digits_graph, 2.0 * x, T)  # the same as doubling the input
    ref.run()
    assert np.array_equal(w.spikes["hidden"].numpy(), ref.spikes["hidden"].numpy())

    # intsim: one method
    class IntSimWithGain(IntSim):
        def toy_gain(self, name, node, v):
            return v << node.shift

    c = _with_gain(digits_loihi2, "input", Gain(shift=1))
    sim = IntSimWithGain(c, compiled_target(c), x, T)
    sim.run()
    doubled = IntSim(digits_loihi2, compiled_target(digits_loihi2), 2.0 * x, T)  # payloads are p·scale
    doubled.run()
    assert torch.equal(sim.spikes["hidden"], doubled.spikes["hidden"])

    # the model file stores the new kind with no other change
    back = tsslc.load(tsslc.save(g, tmp_path / "gain.tsslc"))
    assert back == g and isinstance(back["gain"], Gain)


def test_every_walker_names_what_it_cannot_run(digits_graph, digits_loihi2):
    from tsslc.backends.intsim import simulate

    x = np.zeros((1, 1, 8, 8), np.float32)
    mislabelled = digits_graph.copy()  # a float graph that claims a target
    mislabelled.metadata["target"] = "loihi2"
    with pytest.raises(TsslcError, match=r"node 'input' \(input\): intsim runs compiled graphs only"):
        simulate(mislabelled, x)
    with pytest.raises(TsslcError, match=r"the float back end runs float graphs"):
        tsslc.simulate(digits_loihi2, x, "float")


# --- passes own their output ------------------------------------------------------------------


def _snapshot(graph: Graph):
    from tsslc.ir.io import _encode  # metadata as the model file stores it: arrays compare by value

    return ([(n, copy.deepcopy(node)) for n, node in graph.items()], graph.edges(), _encode(graph.metadata))


def _assert_unchanged(graph: Graph, snap):
    from tsslc.ir.io import _encode

    nodes, edges, metadata = snap
    assert [(n, node) for n, node in graph.items()] == nodes
    assert graph.edges() == edges and _encode(graph.metadata) == metadata


def test_no_pass_changes_its_input(digits_graph, digits_test_arrays):
    """Every pass on graphs with every float node kind: the input graph is equal to a deep
    copy of itself afterwards, and nothing in the output can reach back into it."""
    from tsslc.passes import structural
    from tsslc.targets import get_target
    from tsslc.targets.mapping import attach

    rng = np.random.default_rng(0)
    conv = Graph({"n_steps": 3, "tau_m": 5.0, "tau_s": 3.0, "dataset": "toy", "nested": {"a": [1, 2]}})
    conv.add("input", N.Input(shape=(1, 8, 8), tau_s=3.0))
    conv.add("c.synapse", N.Conv2d(weight=rng.normal(0, 1, (4, 1, 3, 3)).astype(np.float32), padding=1), after="input")
    conv.add("c", N.LIF(shape=(4, 8, 8), tau_m=5.0, tau_s=3.0, threshold=0.5), after="c.synapse")
    conv.add("pool", N.SumPool2d(kernel=2, theta=1.1), after="c")
    conv.add("drop", N.Dropout(p=0.2), after="pool")
    conv.add("flat", N.Flatten(), after="drop")
    conv.add("d.synapse", N.Dense(weight=rng.normal(0, 1, (10, 64)).astype(np.float32)), after="flat")
    conv.add("d", N.LIF(shape=(10,), tau_m=5.0, tau_s=3.0, threshold=1.0), after="d.synapse")
    conv.add("out", N.Output(shape=(10,)), after="d")
    calib = rng.random((16, 1, 8, 8)).astype(np.float32)
    cases = [
        (conv, structural.drop_dropout), (conv, structural.fold_pooling), (conv, structural.canonical_order),
        (conv, lambda g: structural.fold_input_scale(g, 2.0)),
        (digits_graph, lambda g: get_target("loihi2").quantize(g, digits_test_arrays[0][:32])),
        (digits_graph, lambda g: get_target("truenorth").quantize(g, digits_test_arrays[0][:32])),
        (structural.fold_pooling(conv), lambda g: tsslc.compile(g, "loihi2", calib)),
    ]
    for graph, pass_ in cases:
        snap = _snapshot(graph)
        out = pass_(graph)
        _assert_unchanged(graph, snap)
        assert out is not graph and out.metadata is not graph.metadata
        # whatever is shared is immutable: the output's metadata and nodes can be changed freely
        for key, value in out.metadata.items():
            if isinstance(value, (dict, list)):
                value.clear()
        for name, node in out.items():
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(node, "weight", None)
            for key, arr in node.arrays().items():
                with pytest.raises(ValueError, match="read-only"):
                    arr.flat[0] = 7
        _assert_unchanged(graph, snap)
    compiled = tsslc.compile(structural.fold_pooling(conv), "loihi2", calib)
    snap = _snapshot(compiled)
    attach(compiled, get_target("loihi2"))  # mapping again: a new graph, the argument untouched
    _assert_unchanged(compiled, snap)


def test_nodes_are_immutable_and_arrays_copied():
    w = np.ones((2, 3), np.float32)
    d = N.Dense(weight=w)
    w[0, 0] = 5  # the caller's array is not the node's
    assert d.weight[0, 0] == 1 and not d.weight.flags.writeable
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.weight = w
    e = dataclasses.replace(d, weight=2 * d.weight)
    assert e.weight[0, 0] == 2 and d.weight[0, 0] == 1
    g = Graph()
    with pytest.raises(TypeError):
        g["x"] = d  # no item assignment: a graph is changed by building a new one
    assert not hasattr(g, "g")  # the networkx object is private


# --- typed target parameters --------------------------------------------------------------------


def test_typed_parameters_are_checked_and_stored(digits_loihi2, tmp_path):
    with pytest.raises(ValueError, match="loihi2 du=4096 outside"):
        Loihi2LIF(du=4096, dv=0, vth=1)
    with pytest.raises(ValueError, match="bias_exp=8"):
        Loihi2LIF(du=0, dv=0, vth=1, bias_exp=8)
    with pytest.raises(ValueError, match=r"remove more than the whole state"):
        TrueNorthLIF(i_shift_a=0, i_shift_b=0, v_shift_a=0, v_shift_b=-1, vth=1)
    with pytest.raises(ValueError, match="vth must be an integer"):
        TrueNorthLIF(vth=1.5)
    assert Loihi2LIF(du=0, dv=0, vth=1, bias_mant=-7, bias_exp=-2).bias == -2  # -7 >> 2, flooring
    hidden = digits_loihi2["hidden"]
    assert isinstance(hidden.params, Loihi2LIF) and hidden.target == "loihi2"
    path = tsslc.save(digits_loihi2, tmp_path / "c.tsslc")
    with h5py.File(path) as f:
        assert int(f.attrs["format_version"]) == 2
        doc = json.loads(f["graph.json"][()].tobytes())
    entry = next(n for n in doc["nodes"] if n["name"] == "hidden")
    assert entry["attrs"]["params"] == {"__neuron__": "loihi2_lif", "fields": hidden.params.to_dict()}
    # a value out of range in a file is refused on load, naming the file and the field
    entry["attrs"]["params"]["fields"]["du"] = 9999
    bad = tmp_path / "bad.tsslc"
    bad.write_bytes(path.read_bytes())
    with h5py.File(bad, "r+") as f:
        del f["graph.json"]
        f.create_dataset("graph.json", data=np.frombuffer(json.dumps(doc).encode(), np.uint8))
    with pytest.raises(TsslcError, match=r"bad.tsslc.*du=9999 outside"):
        tsslc.load(bad)


@pytest.mark.parametrize("target", ["loihi2", "truenorth"])
def test_format_1_files_still_load_and_run_the_same(target):
    """Files written by tsslc 0.1 (format 1: target name + untyped parameter dict): loaded,
    typed, and simulated to the very spikes tsslc 0.1 recorded for them."""
    path = FORMAT1 / f"digits_{target}_v1.tsslc"
    with h5py.File(path) as f:
        assert int(f.attrs["format_version"]) == 1
    g = tsslc.load(path)
    params = g["hidden"].params
    assert type(params) is {"loihi2": Loihi2LIF, "truenorth": TrueNorthLIF}[target]
    x = np.load(FORMAT1 / "x20.npy")
    recorded = np.load(FORMAT1 / f"spikes_{target}_v1.npz")
    res = tsslc.simulate(g, x, counters=False)
    for name in recorded.files:
        assert np.array_equal(res.spikes[name], recorded[name]), name
    assert tsslc.load(FORMAT1 / "digits_float_v1.tsslc").metadata["n_steps"] == 5


# --- the command line stays a layer on top -------------------------------------------------------


def test_nothing_imports_the_command_modules_but_the_cli():
    offenders = []
    for folder in ("tsslc", "backends", "targets", "examples", "benchmarks", "tests"):
        for path in (REPO / folder).rglob("*.py"):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith("tsslc/commands/") or rel == "tsslc/cli.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), rel)):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                if any(n == "tsslc.commands" or n.startswith("tsslc.commands.") for n in names):
                    offenders.append(rel)
    assert offenders == []


def test_every_command_shows_its_defaults(capsys):
    """`tsslc X --help` names the default of every option that has one."""
    import argparse
    import importlib

    from tsslc.cli import COMMANDS, main

    for name, (module, _) in COMMANDS.items():
        parser = argparse.ArgumentParser()
        importlib.import_module(module).add_arguments(parser)
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for action in parser._actions:
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) and action.help:
                assert f"default: {action.default}" in text or f"default {action.default}" in text, \
                    (name, action.dest, action.default)


def test_bad_inputs_are_one_error_naming_the_value(digits_graph, digits_loihi2, digits_test_arrays):
    """tsslc.simulate / verify / compile take numbers: a string, a ragged list, complex
    values, NaN or an infinity is one TsslcError (naming the index of the value), for the
    float model and the compiled one, numpy and torch alike; good bool, integer and float
    arrays (and plain nested lists) still run."""
    import tsslc
    import torch

    x = np.asarray(digits_test_arrays[0][:3], np.float32)
    nan, inf = x.copy(), x.copy()
    nan[1, 0, 2, 3] = np.nan
    inf[2, 0, 0, 0] = -np.inf
    bad = [("x.npy", ": a string"), ([[1.0, 2.0], [3.0]], ": not an array of numbers"),
           (x.astype(np.complex64), ": dtype complex64 is not numeric"),
           (np.array([None, 1.0], dtype=object), ": dtype object is not numeric"),
           (nan, r" holds nan at index \(1, 0, 2, 3\)"), (inf, r" holds -inf at index \(2, 0, 0, 0\)"),
           (torch.from_numpy(nan), r" holds nan at index \(1, 0, 2, 3\)"),
           (torch.from_numpy(x).to(torch.complex64), ": dtype torch.complex64 is not numeric")]
    for graph in (digits_graph, digits_loihi2):
        for value, match in bad:
            with pytest.raises(TsslcError, match="^input" + match):
                tsslc.simulate(graph, value)
    with pytest.raises(TsslcError, match=r"^input holds nan at index \(1, 0, 2, 3\) \(NaN and infinite values have no spike code\)"):
        tsslc.verify(digits_graph, digits_loihi2, nan)
    with pytest.raises(TsslcError, match=r"^calibration holds -inf at index \(2, 0, 0, 0\)"):
        tsslc.compile(digits_graph, "loihi2", inf)
    ref = tsslc.simulate(digits_loihi2, x).spikes
    for good in (torch.from_numpy(x), x.astype(np.float64), x.tolist()):
        got = tsslc.simulate(digits_loihi2, good).spikes
        assert all(np.array_equal(got[k], ref[k]) for k in ref)
    for good in ((x > 0), (x > 0).astype(np.int64), torch.from_numpy(x > 0)):
        tsslc.simulate(digits_loihi2, good)


def test_bad_arguments_are_one_error(digits_graph, digits_loihi2, digits_test_arrays, tmp_path, monkeypatch):
    """The API's other arguments: a path where a graph belongs, a batch size that is not a
    positive integer, a device torch does not know (or this machine lacks), an option no
    back end takes, labels that do not match the samples, a config of the wrong type: one
    TsslcError each, naming the argument. A config given as a mapping trains (into
    runs/run by default, not a folder named after '<config>')."""
    import tsslc
    import torch

    x, y = np.asarray(digits_test_arrays[0][:4], np.float32), np.asarray(digits_test_arrays[1][:4])
    calls = [(lambda: tsslc.compile("model.tsslc", "loihi2"), "^compile: expected a Graph"),
             (lambda: tsslc.simulate("chip.tsslc", x), "^simulate: expected a Graph"),
             (lambda: tsslc.verify(digits_graph, None, x), "^verify: expected a Graph"),
             (lambda: tsslc.simulate(digits_loihi2, x, batch_size=0), "^simulate: 'batch_size' must be"),
             (lambda: tsslc.simulate(digits_loihi2, x, batch_size=2.5), "^simulate: 'batch_size' must be"),
             (lambda: tsslc.simulate(digits_loihi2, x, device="tpu"), "^simulate: device 'tpu' is not a torch"),
             (lambda: tsslc.simulate(digits_loihi2, x, colour="red"), r"^intsim back end: unknown option\(s\) colour"),
             (lambda: tsslc.simulate(digits_graph, x, colour="red"), r"^float back end: unknown option\(s\) colour"),
             (lambda: tsslc.verify(digits_graph, digits_loihi2, x, y[:2]), "^verify: y must be integer labels"),
             (lambda: tsslc.verify(digits_graph, digits_loihi2, x, y + 0.5), "^verify: y must be integer labels"),
             (lambda: tsslc.train(42, out=tmp_path / "t"), "^train: config must be")]
    if not torch.cuda.is_available():
        calls.append((lambda: tsslc.simulate(digits_loihi2, x, device="cuda"), "^simulate: device cuda: no CUDA device"))
    for call, match in calls:
        with pytest.raises(TsslcError, match=match):
            call()
    assert [c["backend"] for c in tsslc.verify(digits_graph, digits_loihi2, x, y, backends="intsim").comparisons] == ["intsim"]
    assert tsslc.simulate(digits_loihi2, x, batch_size=3).spikes.keys() == tsslc.simulate(digits_loihi2, x).spikes.keys()
    monkeypatch.chdir(tmp_path)
    cfg = {"Network": {"dataset": "digits", "n_steps": 5, "tau_m": 5, "tau_s": 3, "loss": "kernel", "n_class": 10},
           "Layers": {"out": {"type": "linear", "n_inputs": 64, "n_outputs": 10}}}
    r = tsslc.train(cfg, epochs=1, progress=False, eval_samples=50)
    assert r.out == Path("runs") / "run" and r.checkpoint.is_file()
