"""lava-dl netx export: a loihi2-compiled graph as the HDF5 ``.net`` file that lava-dl 0.6.0's
``netx.hdf5.Network`` turns into Lava processes (Intel's deployment path to Loihi 2), and
the constructor arguments the file cannot carry in a JSON file beside it.

The format, as lava-dl 0.6.0 reads it (``netx/hdf5.py``, ``netx/utils.py``, ``netx/blocks``;
SLAYER's ``block.*.export_hdf5`` writes it the same way; shared/docs/NETX.md)::

    layer/0            type b"input", shape (C, H, W) of the input (netx reverses it to W, H, C)
    layer/i            type b"flatten"                         before a dense layer fed by a 3-D one
    layer/i            type b"dense", shape (N,), inFeatures, outFeatures, weight (N, N_in)
    layer/i            type b"conv", shape (C, H, W), inChannels, outChannels, kernelSize,
                       stride, padding, dilation (each (y, x)), groups, weight (C_out, C_in/g, K, K)
    layer/i/neuron     type "CUBA", iDecay, vDecay, vThMant, refDelay, gradedSpike

* Dense weights are the integers of the compiled graph, (out, in) in torch's (C, H, W)
  flatten order: netx transposes a 3-D layer's (W, H, C) output back to (C, H, W) before
  flattening. netx recomputes each matrix's weight exponent from the integers
  (``optimize_weight_bits``: shift left, exponent minus that) and Lava's Dense shifts back
  after the sum, so the effective weight is exactly the file's integer: the graph must
  have ``weight_exp = 0`` on every Dense and even mixed-sign weights in [−256, 254] (what
  Lava's Dense keeps) — ``tsslc compile --target loihi2 --variant netx`` emits that.
* Conv weights are written in torch's layout (C_out, C_in/g, K_h, K_w); netx flips and
  transposes them into Lava's (C_out, K_w, K_h, C_in/g) itself. Lava's Conv ignores any
  weight exponent, as does the loihi2 target (``weight_exp = 0``).
* Neuron: netx builds ``LIF(du = iDecay − 1, dv = vDecay, vth = vThMant, bias_exp = 6)``
  (``LIFReset`` when ``reset_interval`` is given); ``refDelay`` and ``gradedSpike`` are not
  read by netx for CUBA (written as SLAYER writes them: 1 and False). A bias would go to
  ``bias_mant`` at ``bias_exp = 6``: the compiled bias must be a multiple of 64.

What the file cannot carry — the input's message bits (8 for graded input, 0 for binary
events), the reset interval (steps per sample) and offset — goes to ``X.net.json`` (:func:`export`), with the input's
encoding and the timing a user needs. With a ``lava.proc.io.source.RingBuffer`` whose
column ``b·T + t`` holds sample b's step t, ``Network(net_config, input_message_bits=…,
reset_interval=T, reset_offset=1)`` resets layer j at ``time_step % T == (2 + j) % T``
(netx adds 1 + j), the step where the sample's first input reaches it, and layer j's
spikes of (b, t) come out at Lava step ``b·T + t + 2 + j`` — exactly the loihi2 Lava back
end's timing (:mod:`tsslc.backends.lava.lowering`).

Pipeline position: reads a compiled graph (targets) and writes a file; it imports nothing
from Lava or lava-dl (h5py only).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from tsslc.atomic import atomic_write_bytes, refuse_clobber, write_json
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.interpreter import n_steps_of
from tsslc.ir.neurons import Loihi2LIF
from tsslc.ir.walker import GraphWalker
from tsslc.targets.loihi2 import W_MAX, W_MIN, dense_weights

#: netx's fixed bias exponent (hdf5.Network.get_neuron_params)
NETX_BIAS_EXP = 6
#: the reset offset that aligns netx's per-layer resets with a RingBuffer source whose
#: column b·T + t holds sample b's step t (netx resets layer j at reset_offset + 1 + j)
RESET_OFFSET = 1
JSON_FORMAT = "tsslc-netx-arguments/1"


@dataclass
class NetxLayer:
    """One netx layer: its type, the tsslc node it comes from and its datasets."""

    type: str  # "input" | "flatten" | "dense" | "conv"
    node: str
    data: dict = field(default_factory=dict)
    neuron: dict | None = None


@dataclass
class NetxExport:
    """What :func:`export` wrote: the ``.net`` file, the JSON beside it and its document."""

    path: Path
    json_path: Path
    arguments: dict  # keyword arguments of netx.hdf5.Network besides net_config
    document: dict  # the JSON file's content

    def lines(self) -> list[str]:
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        doc = self.document
        inp = doc["input"]
        return [f"wrote {self.path} ({len(doc['layers'])} netx layers) and {self.json_path}",
                f"netx.hdf5.Network(net_config={str(self.path)!r}, {args})",
                f"input: {inp['encoding']} {tuple(inp['port_shape'])} ({inp['layout']}); "
                f"{doc['steps_per_sample']} steps per sample"]


def _refuse(name: str, node, why: str) -> TsslcError:
    return TsslcError(f"node '{name}' ({node.kind}): lava-dl netx cannot express it: {why}")


class NetxWriter(GraphWalker):
    """Walks a loihi2-compiled graph and collects its netx layers (:attr:`layers`). netx
    builds a chain: input → [flatten] → (dense | conv, each with its LIF) … → output; any
    other structure is one error naming the node."""

    what = "the netx export (it takes loihi2-compiled chains: IntInput, Flatten, IntDense, IntConv2d, IntLIF, Output)"

    def __init__(self, graph: Graph):
        super().__init__(graph)
        self.shapes = graph.validate()
        self.layers: list[NetxLayer] = []
        self.input: dict = {}
        for name in graph.order():
            node = graph[name]
            if len(graph.successors(name)) > 1:
                raise _refuse(name, node, f"it feeds {len(graph.successors(name))} nodes; netx layers form a chain")
            if len(graph.predecessors(name)) > 1:
                raise _refuse(name, node, f"it sums {len(graph.predecessors(name))} inputs; netx layers form a chain")

    def unsupported(self, name, node):
        raise _refuse(name, node, "not a compiled loihi2 node netx has a layer for (compile the model with "
                                  "tsslc compile --target loihi2; pooling must be folded into a synapse)")

    def int_input(self, name, node: N.IntInput, x):
        shape = tuple(int(d) for d in self.shapes[name])
        self.input = {"node": name, "shape": shape, "encoding": node.encoding, "scale": float(node.scale),
                      "bits": int(node.bits), "message_bits": int(node.bits) if node.encoding == "graded" else 0}
        self.layers.append(NetxLayer("input", name, {"shape": np.array(shape, np.int64)}))
        return {"shape": shape, "flat": False, "first": True}

    def flatten(self, name, node, up):
        shape = (math.prod(up["shape"]),)
        succ = self.graph.successors(name)
        if succ and isinstance(self.graph[succ[0]], N.Output):
            return {**up, "flat_output": True}  # a flatten before the output: nothing for netx to do
        if len(up["shape"]) != 1:
            self.layers.append(NetxLayer("flatten", name, {"shape": np.array(shape, np.int64)}))
        return {"shape": shape, "flat": True, "first": up["first"]}

    def _synapse_check(self, name, node):
        succ = self.graph.successors(name)
        if len(succ) != 1 or not isinstance(self.graph[succ[0]], N.IntLIF):
            raise _refuse(name, node, "a netx layer is a synapse feeding one LIF population")

    def int_dense(self, name, node: N.IntDense, up):
        self._synapse_check(name, node)
        if len(up["shape"]) != 1:
            raise _refuse(name, node, f"a dense layer needs a flat input, got shape {up['shape']} (add a Flatten)")
        w = np.asarray(node.weight).astype(np.int64)
        if int(node.weight_exp) != 0:
            raise _refuse(name, node, f"weight_exp = {node.weight_exp}, but netx recomputes the exponent from the "
                                      "integer weights (the file has no exponent); compile with "
                                      "'tsslc compile --target loihi2 --variant netx' (every Dense weight_exp 0)")
        kept = dense_weights(w)
        if not np.array_equal(kept, w) or w.min() < W_MIN or w.max() > W_MAX:
            bad = int(np.flatnonzero((kept != w).ravel() | (w < W_MIN).ravel() | (w > W_MAX).ravel())[0])
            raise _refuse(name, node, f"weight {int(w.ravel()[bad])} (flat index {bad}) is not what Lava's Dense keeps "
                                      f"(even values in [{W_MIN}, {W_MAX}]); netx would change it")
        if w.size and w.max() <= 0 and w.min() < 0:
            raise _refuse(name, node, "all weights are <= 0: netx's optimize_weight_bits shifts an inhibitory-only "
                                      "matrix to -256, which Lava's Dense clips to -255 and truncates")
        return {"weight": w, "kind": "dense", "in_shape": up["shape"], "first": up["first"]}

    def int_conv2d(self, name, node: N.IntConv2d, up):
        self._synapse_check(name, node)
        if up["flat"] or len(up["shape"]) != 3:
            raise _refuse(name, node, f"a convolution needs a (C, H, W) input, got shape {up['shape']}")
        if int(node.weight_exp) != 0:
            raise _refuse(name, node, f"weight_exp = {node.weight_exp}: netx passes no weight exponent to Lava's Conv "
                                      "(fold it into the integer weights; tsslc's quantizer emits weight_exp 0)")
        w = np.asarray(node.weight).astype(np.int64)
        return {"weight": w, "kind": "conv", "in_shape": up["shape"], "first": up["first"], "stride": int(node.stride),
                "padding": int(node.padding), "groups": int(node.groups)}

    def int_lif(self, name, node: N.IntLIF, syn):
        p = node.params
        if not isinstance(p, Loihi2LIF):
            raise _refuse(name, node, f"loihi2 populations only, got {type(p).__name__} parameters (target "
                                      f"{node.target!r})")
        bias = p.bias
        if bias % (1 << NETX_BIAS_EXP):
            raise _refuse(name, node, f"bias {bias} (bias_mant {p.bias_mant} << {p.bias_exp}) is not a multiple of "
                                      f"2^{NETX_BIAS_EXP}: netx fixes bias_exp at {NETX_BIAS_EXP}")
        shape = tuple(int(d) for d in self.shapes[name])
        neuron = {"type": "CUBA", "iDecay": int(p.du) + 1, "vDecay": int(p.dv), "vThMant": int(p.vth),
                  "refDelay": 1, "gradedSpike": False}
        w = syn["weight"]
        if syn["kind"] == "dense":
            data = {"shape": np.array(shape, np.int64), "inFeatures": int(w.shape[1]), "outFeatures": int(w.shape[0]),
                    "weight": w.astype(np.float32)}
        else:
            data = {"shape": np.array(shape, np.int64), "inChannels": int(syn["in_shape"][0]),
                    "outChannels": int(w.shape[0]), "kernelSize": np.array(w.shape[2:], np.int64),
                    "stride": np.array([syn["stride"]] * 2, np.int64), "padding": np.array([syn["padding"]] * 2, np.int64),
                    "dilation": np.array([1, 1], np.int64), "groups": int(syn["groups"]), "weight": w.astype(np.float32)}
        if bias:
            data["bias"] = np.full(shape if syn["kind"] == "dense" else shape[:1], bias >> NETX_BIAS_EXP, np.float32)
        self.layers.append(NetxLayer(syn["kind"], name, data, neuron))
        return {"shape": shape, "flat": len(shape) == 1, "first": False}

    def output(self, name, node, x):
        lifs = [l.node for l in self.layers if l.neuron is not None]
        if not lifs:
            raise _refuse(name, node, "the graph has no spiking layer")
        if self.graph.output_population != lifs[-1]:
            raise _refuse(name, node, f"the output population {self.graph.output_population!r} is not the last layer")
        return None


def _check_compiled(graph: Graph) -> None:
    target = graph.metadata.get("target")
    if target != "loihi2":
        raise TsslcError(f"netx export takes graphs compiled for loihi2, this one's target is {target!r}; "
                         "compile it with: tsslc compile MODEL --target loihi2 --variant netx")


def netx_layers(compiled: Graph) -> tuple[list[NetxLayer], dict]:
    """The netx layers of ``compiled`` and its input description; one error naming the node
    netx cannot express."""
    _check_compiled(compiled)
    walker = NetxWriter(compiled)
    walker.run()
    return walker.layers, walker.input


def hdf5_bytes(layers: list[NetxLayer]) -> bytes:
    """The ``.net`` file's bytes, written in memory."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        group = f.create_group("layer")
        for i, layer in enumerate(layers):
            h = group.create_group(str(i))
            h.create_dataset("type", (1,), "S10", [layer.type.encode("ascii")])
            for key, value in layer.data.items():
                h.create_dataset(key, data=value)
            for key, value in (layer.neuron or {}).items():
                h.create_dataset(f"neuron/{key}", data=value)
    return buf.getvalue()


def network_arguments(compiled: Graph, n_steps: int | None = None) -> dict:
    """The keyword arguments of ``netx.hdf5.Network`` the file cannot carry."""
    _check_compiled(compiled)
    node = compiled[compiled.input_name]
    bits = int(node.bits) if isinstance(node, N.IntInput) and node.encoding == "graded" else 0
    return {"input_message_bits": bits, "reset_interval": n_steps_of(compiled, n_steps), "reset_offset": RESET_OFFSET}


def document(compiled: Graph, layers: list[NetxLayer], inp: dict, net_name: str, n_steps: int | None = None) -> dict:
    """The JSON written beside the ``.net`` file."""
    args = network_arguments(compiled, n_steps)
    T = args["reset_interval"]
    first = next(l for l in layers if l.neuron is not None)
    conv_first = first.type == "conv"
    shape = inp["shape"]
    port = tuple(reversed(shape)) if conv_first and len(shape) == 3 else (math.prod(shape),)
    if conv_first and len(shape) == 3:
        layout = "W, H, C (x, y, channel): tsslc's (C, H, W) input transposed"
    elif len(shape) == 3:
        layout = "flat, in (C, H, W) order (torch's flatten of tsslc's input)"
    else:
        layout = "flat"
    if inp["encoding"] == "graded":
        how = (f"graded spikes of {inp['bits']} bits: round half away from zero of x * {inp['scale']:g}, clipped to "
               f"+-{2 ** (inp['bits'] - 1) - 1}")
    else:
        how = "binary events: 1 where x != 0"
    netx_layers_ = [l for l in layers if l.neuron is not None]
    return {
        "format": JSON_FORMAT,
        "net": net_name,
        "network_arguments": args,
        "steps_per_sample": T,
        "input": {"node": inp["node"], "shape": list(shape), "port_shape": list(port), "layout": layout,
                  "encoding": inp["encoding"], "scale": inp["scale"], "bits": inp["bits"], "encode": how},
        "timing": (f"feed sample b's step t (encoded as 'input.encode' says) in column b*{T}+t of a "
                   "lava.proc.io.source.RingBuffer connected to Network.inp (Lava sends it at step b*T+t+1); "
                   f"netx resets layer j at time_step % {T} == (reset_offset + 1 + j) % {T}, when the sample's first "
                   "input reaches it; layer j's spikes of (b, t) leave it at Lava step b*T+t+2+j"),
        "layers": [{"index": j, "population": l.node, "type": l.type, "shape": [int(d) for d in l.data["shape"]],
                    "reset_offset": (RESET_OFFSET + 1 + j) % T, "output_layout": "W, H, C" if l.type == "conv" else "flat"}
                   for j, l in enumerate(netx_layers_)],
        "output": {"population": compiled.output_population, "index": len(netx_layers_) - 1},
        "source": {k: compiled.metadata.get(k) for k in ("dataset", "n_steps", "test_acc")
                   if compiled.metadata.get(k) is not None},
        "variant": (compiled.metadata.get("quantization") or {}).get("variant"),
    }


def export(compiled: Graph, path, *, n_steps: int | None = None, source: str | None = None) -> NetxExport:
    """Write ``compiled`` (target loihi2) as lava-dl netx's HDF5 ``path`` and the
    constructor arguments beside it in ``path + ".json"``, both atomically (the HDF5 file
    is built in memory first). ``source``: the model file it came from, never overwritten.
    Returns what was written."""
    path = Path(path)
    json_path = Path(str(path) + ".json")
    refuse_clobber([("-o", path), ("its arguments file", json_path)], [("compiled model", source)])
    layers, inp = netx_layers(compiled)
    data = hdf5_bytes(layers)
    doc = document(compiled, layers, inp, path.name, n_steps)
    atomic_write_bytes(path, data, what="netx file")
    write_json(json_path, doc)
    return NetxExport(path, json_path, doc["network_arguments"], doc)

