"""Run a lava-dl netx network file written by ``tsslc netx export`` on Lava: lava-dl's own
``netx.hdf5.Network`` built from the ``.net`` file with the arguments of its ``.net.json``,
fed and read as that JSON says — the path a lava-loihi user takes, on Lava's CPU models.

``run(net_path, x)`` encodes the input as the JSON states (the loihi2 target's
``input_spikes`` on an IntInput described by the JSON), lays the samples end to end in
time (``reset_interval`` steps each) in a ``lava.proc.io.source.RingBuffer`` connected to
``Network.inp``, records every netx layer's spikes with tsslc's memory-mapped
:class:`~tsslc.backends.lava.sink.SpikeSink` (Lava's own sinks read back one element per
message) and returns them on the float model's time axis, keyed by the tsslc population
each layer came from — comparable spike for spike with intsim on the compiled graph.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tsslc.backends import BackendResult
from tsslc.backends.netx import JSON_FORMAT
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.layout import time_input
from tsslc.lava_compat import import_netx
from tsslc.targets import get_target

netx = import_netx()

from tsslc.backends.lava import runner  # noqa: E402
from tsslc.backends.lava.sink import SpikeSink, create_record, read_record  # noqa: E402
from lava.proc.io.source import RingBuffer as Source  # noqa: E402


@dataclass
class NetxSimulation:
    """The netx network with its source and sinks, in the form :func:`runner.execute` runs."""

    network: object  # netx.hdf5.Network
    source: object
    select_tag: str = "fixed_pt"
    models: dict = field(default_factory=dict)
    depth: int = 0
    records: list = field(default_factory=list)


def read_document(net_path) -> dict:
    """The ``X.net.json`` beside ``net_path`` (one error when it is missing or foreign)."""
    p = Path(str(net_path) + ".json")
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise TsslcError(f"{p}: cannot read the netx arguments written beside {net_path} ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != JSON_FORMAT:
        raise TsslcError(f"{p}: not a tsslc netx arguments file (format {JSON_FORMAT!r} expected)")
    return doc


def input_payloads(doc: dict, x) -> np.ndarray:
    """``x`` (static ``(B, *shape)`` or time-first ``(T, B, *shape)``) encoded as the JSON's
    ``input`` says, time-first ``(T, B, *shape)`` int64."""
    inp = doc["input"]
    node = N.IntInput(shape=tuple(inp["shape"]), encoding=inp["encoding"], scale=float(inp["scale"]),
                      bits=int(inp["bits"]))
    g = Graph()
    g.add(inp["node"], node)
    raw = time_input(g, x, int(doc["steps_per_sample"]))
    return get_target("loihi2").input_spikes(node, raw).cpu().numpy()


def source_data(doc: dict, payloads: np.ndarray) -> np.ndarray:
    """RingBuffer data ``(*port_shape, B·T)`` for ``Network.inp``: column b·T + t holds
    sample b's step t in the port's layout (W, H, C for a conv input, flat C, H, W order
    for a dense one)."""
    T, B = payloads.shape[:2]
    port = tuple(doc["input"]["port_shape"])
    per_sample = payloads.transpose(1, 0, *range(2, payloads.ndim))  # (B, T, *shape)
    if len(port) == 3:
        per_sample = per_sample.transpose(0, 1, 4, 3, 2)  # C, H, W -> W, H, C
    cols = per_sample.reshape(B * T, *port)
    return np.ascontiguousarray(np.moveaxis(cols, 0, -1)).astype(np.int32)


def run(net_path, x, *, select_tag: str = "fixed_pt", progress: bool = False) -> BackendResult:
    """Build ``netx.hdf5.Network`` from ``net_path`` with its JSON's arguments, run the
    batch ``x`` on Lava (``select_tag`` fixed_pt: Lava's bit-accurate models) and return
    every netx layer's spikes ``(T, B, *shape)`` uint8 keyed by tsslc population
    (``info["netx"]``: the arguments, steps, seconds)."""
    doc = read_document(net_path)
    args = dict(doc["network_arguments"])
    T = int(doc["steps_per_sample"])
    if int(args["reset_interval"]) != T:
        raise TsslcError(f"{net_path}.json: reset_interval {args['reset_interval']} != steps_per_sample {T}")
    payloads = input_payloads(doc, x)
    B = int(payloads.shape[1])
    if B < 1:
        raise TsslcError("the batch is empty")
    t0 = time.perf_counter()
    net = netx.hdf5.Network(net_config=str(net_path), **args)
    layers = doc["layers"]
    if len(net.layers) != len(layers):
        raise TsslcError(f"{net_path}: netx built {len(net.layers)} layers, its JSON lists {len(layers)}")
    if tuple(net.inp.shape) != tuple(doc["input"]["port_shape"]):
        raise TsslcError(f"{net_path}: netx's input port has shape {net.inp.shape}, its JSON says "
                         f"{tuple(doc['input']['port_shape'])}")
    src = Source(data=source_data(doc, payloads))
    src.s_out.connect(net.inp)
    depth = len(layers)  # layer j's spikes of (b, t) land in sink row b·T + t + 1 + j
    n_rows = B * T + depth
    workdir = tempfile.mkdtemp(prefix="tsslc-netx-")
    sim = NetxSimulation(net, src, select_tag, depth=depth)
    try:
        for j, layer in enumerate(net.layers):
            path = str(Path(workdir) / f"{j}.npy")
            create_record(path, n_rows, tuple(layer.out.shape))
            sink = SpikeSink(shape=tuple(layer.out.shape), path=path, name=f"{layers[j]['population']}.sink")
            layer.out.connect(sink.a_in)
            sim.models[sink] = runner.SINK_MODELS[select_tag]
            sim.records.append(path)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        runner.execute(sim, n_rows, T, B, progress)
        run_s = time.perf_counter() - t0
        spikes = {}
        for j, layer in enumerate(layers):
            shape = tuple(int(d) for d in layer["shape"])
            spikes[layer["population"]] = runner.aligned(read_record(sim.records[j]), j + 1, T, B, shape)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    info = {"netx": {"arguments": args, "lava_steps": n_rows, "layers": len(layers), "build_s": round(build_s, 6),
                     "run_s": round(run_s, 6)}}
    return BackendResult(spikes, None, doc["output"]["population"], "lava-netx", info, target="loihi2")
