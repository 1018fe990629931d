"""Lowering: a loihi2-compiled IR graph becomes a network of Lava processes.

One process per IR primitive, connected along the graph's edges:

==========================  ===============================================================
IR node                     Lava process(es)
==========================  ===============================================================
``IntInput``                ``io.source.RingBuffer`` holding every step of every sample
                            (graded payloads for ``"graded"``, 0/1 for ``"binary"``)
``Flatten``                 a reshape of the producer's OutPort (no process)
``IntDense``                ``Dense(weights, weight_exp, num_message_bits)``
``IntConv2d``               ``Conv`` (W, H, C layout, flipped kernel); it ignores
                            ``weight_exp``: a non-negative exponent is folded into the
                            weights, a negative one becomes an identity ``Sparse`` with that
                            ``weight_exp`` behind the Conv (one more step of latency)
``IntLIF``                  ``LIFReset(du, dv, vth, bias_mant, bias_exp)`` + a
                            :class:`~tsslc.backends.lava.sink.SpikeSink`
``Output``                  nothing (the output population's sink is read)
==========================  ===============================================================

Tensors in Lava are W, H, C (x, y, channel); IR tensors are C, H, W. A population of IR
shape (C, H, W) lives in Lava as (W, H, C); a Dense behind a Flatten of such a tensor gets
its weight columns permuted so that it sees the IR (torch) flatten order.

Time: each synapse process delays by one step. A population reached through ``d`` synapse
processes from the source sees sample ``b``'s float step ``t`` at Lava step
``b·P + t + 1 + d`` (``P`` steps per sample), so it resets its state at
``time_step % P == (1 + d) % P`` (``LIFReset``, offsets staggered by depth) and its spikes
of (b, t) land in row ``b·P + t + d`` of its sink. ``P = n_steps`` suffices: what a layer
emits after its last step of a sample reaches the next layer before that layer's reset.

``floating_pt`` uses Lava's float models with the equivalent float parameters (LAVA.md):
weights ``W·2^(6+weight_exp)``, ``vth·64``, ``du_f = (du+1)/4096``, ``dv_f = dv/4096``,
``bias = bias_mant·2^bias_exp``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.neurons import Loihi2LIF
from tsslc.ir.walker import GraphWalker
from tsslc.lava_compat import import_lava

import_lava()

from lava.proc.conv.models import PyConvModelFixed, PyConvModelFloat  # noqa: E402
from lava.proc.conv.process import Conv  # noqa: E402
from lava.proc.dense.models import PyDenseModelBitAcc, PyDenseModelFloat  # noqa: E402
from lava.proc.dense.process import Dense  # noqa: E402
from lava.proc.io.source import PySendModelFixed, PySendModelFloat  # noqa: E402
from lava.proc.io.source import RingBuffer as Source  # noqa: E402
from lava.proc.lif.models import PyLifResetModelBitAcc, PyLifResetModelFloat  # noqa: E402
from lava.proc.lif.process import LIFReset  # noqa: E402
from lava.proc.sparse.models import PySparseModelBitAcc, PySparseModelFloat  # noqa: E402
from lava.proc.sparse.process import Sparse  # noqa: E402

from tsslc.backends.lava.sink import PySpikeSinkModelFixed, PySpikeSinkModelFloat, SpikeSink  # noqa: E402

SELECT_TAGS = ("fixed_pt", "floating_pt")

#: The process model of every process class, per select tag. Models are given explicitly
#: (``exception_proc_model_map``), so Lava never searches the file system for them.
MODELS = {
    "fixed_pt": {
        Source: PySendModelFixed,
        Dense: PyDenseModelBitAcc,
        Sparse: PySparseModelBitAcc,
        Conv: PyConvModelFixed,
        LIFReset: PyLifResetModelBitAcc,
        SpikeSink: PySpikeSinkModelFixed,
    },
    "floating_pt": {
        Source: PySendModelFloat,
        Dense: PyDenseModelFloat,
        Sparse: PySparseModelFloat,
        Conv: PyConvModelFloat,
        LIFReset: PyLifResetModelFloat,
        SpikeSink: PySpikeSinkModelFloat,
    },
}



def lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Lava layout of an IR shape: (C, H, W) -> (W, H, C); other ranks unchanged."""
    return tuple(reversed(shape)) if len(shape) == 3 else tuple(shape)


def to_lava_layout(x: np.ndarray, ir_shape: tuple[int, ...]) -> np.ndarray:
    """(..., *ir_shape) -> (..., *lava_shape(ir_shape))."""
    if len(ir_shape) != 3:
        return x
    k = x.ndim - 3
    return x.transpose(*range(k), k + 2, k + 1, k)


def from_lava_layout(x: np.ndarray, ir_shape: tuple[int, ...]) -> np.ndarray:
    """(..., prod(shape)) in Lava order -> (..., *ir_shape)."""
    lead = x.shape[:-1]
    x = x.reshape(*lead, *lava_shape(ir_shape))
    return to_lava_layout(x, lava_shape(ir_shape)) if len(ir_shape) == 3 else x


def dense_weight_for_lava(weight: np.ndarray, in_ir_shape: tuple[int, ...] | None) -> np.ndarray:
    """Permute a Dense weight's columns from the IR flatten order of ``in_ir_shape`` (C, H, W)
    to the C-order flatten of the Lava layout (W, H, C)."""
    if in_ir_shape is None or len(in_ir_shape) != 3:
        return weight
    c, h, w = in_ir_shape
    return weight.reshape(weight.shape[0], c, h, w).transpose(0, 3, 2, 1).reshape(weight.shape[0], -1)


def conv_weight_for_lava(weight: np.ndarray) -> np.ndarray:
    """torch (C_out, C_in/g, K_h, K_w) cross-correlation -> Lava (C_out, K_w, K_h, C_in/g)
    true convolution (kernel flipped)."""
    return np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


@dataclass
class Population:
    """A lowered LIF population and where its spikes are recorded."""

    name: str
    ir_shape: tuple[int, ...]
    depth: int  # synapse processes between the source and this population
    process: LIFReset
    sink: SpikeSink
    record: str  # path of the sink's .npy file


@dataclass
class Lowered:
    source: Source
    populations: dict[str, Population]
    models: dict = field(default_factory=dict)  # process instance -> process model class
    select_tag: str = "fixed_pt"

    @property
    def depth(self) -> int:
        return max((p.depth for p in self.populations.values()), default=0)

    @property
    def n_processes(self) -> int:
        return len(self.models)


@dataclass
class _Out:
    """What a lowered node offers its successors."""

    port: object  # a Lava OutPort (possibly reshaped)
    ir_shape: tuple[int, ...]
    depth: int
    message_bits: int  # 0: binary spikes, > 0: graded payloads
    flat_of: tuple[int, ...] | None = None  # IR shape a Flatten flattened (for Dense columns)


def check_runnable(graph: Graph, select_tag: str) -> None:
    """One clear error for a select tag Lava lacks or a graph not compiled for loihi2."""
    if select_tag not in SELECT_TAGS:
        raise TsslcError(f"unknown Lava select_tag {select_tag!r} (expected one of {', '.join(SELECT_TAGS)})")
    target = graph.metadata.get("target")
    if target != "loihi2":
        raise TsslcError(
            f"the Lava back end runs graphs compiled for loihi2, this one's target is {target!r}; "
            "compile it with: tsslc compile MODEL --target loihi2"
        )


def input_message_bits(node: N.IntInput) -> int:
    return int(node.bits) if node.encoding == "graded" else 0


class LavaLowering(GraphWalker):
    """Builds the Lava processes of a loihi2-compiled graph, one method per node kind; each
    method returns the :class:`_Out` its successors connect to."""

    what = "the Lava back end (it takes graphs compiled for loihi2: IntInput, Flatten, IntDense, IntConv2d, IntLIF, Output)"

    def __init__(self, graph: Graph, source_data: np.ndarray, period: int, record_dir: str, select_tag: str):
        super().__init__(graph)
        self.shapes = graph.validate()
        self.source_data, self.period, self.record_dir = source_data, period, record_dir
        self.fixed = select_tag == "fixed_pt"
        self.process_models = MODELS[select_tag]
        self.lowered = Lowered(source=None, populations={}, select_tag=select_tag)  # type: ignore[arg-type]

    def add(self, proc):
        self.lowered.models[proc] = self.process_models[type(proc)]
        return proc

    def combine(self, name, node, values):
        return list(values)  # several synapses into one population: each connects to it

    def int_input(self, name, node: N.IntInput, x):
        src = self.add(Source(data=self.source_data))
        self.lowered.source = src
        return _Out(src.s_out, self.shapes[name], 0, input_message_bits(node))

    def flatten(self, name, node, up: _Out):
        flat = (math.prod(up.ir_shape),)
        port = up.port.flatten() if len(up.ir_shape) != 1 else up.port
        return _Out(port, flat, up.depth, up.message_bits, flat_of=up.ir_shape if up.flat_of is None else up.flat_of)

    def int_dense(self, name, node: N.IntDense, up: _Out):
        w = dense_weight_for_lava(np.asarray(node.weight), up.flat_of).astype(np.int64)
        if self.fixed:  # Lava clips / evens the weights itself, as targets/loihi2.md §2 states
            proc = self.add(Dense(weights=w.astype(np.int32), weight_exp=int(node.weight_exp),
                                  num_message_bits=up.message_bits, name=name))
        else:
            proc = self.add(Dense(weights=w.astype(np.float64) * 2.0 ** (6 + int(node.weight_exp)),
                                  num_message_bits=up.message_bits, name=name))
        up.port.connect(proc.s_in)
        return _Out(proc.a_out, self.shapes[name], up.depth + 1, 0)

    def int_conv2d(self, name, node: N.IntConv2d, up: _Out):
        return _lower_conv(name, node, up, self.shapes[name], self.fixed, self.add)

    def int_lif(self, name, node: N.IntLIF, x):
        ups = x if isinstance(x, list) else [x]
        preds = self.graph.predecessors(name)
        depths = {u.depth for u in ups}
        if len(depths) != 1:
            raise TsslcError(
                f"population '{name}': its inputs {preds} arrive through different numbers of "
                f"synapse layers {sorted(depths)}; the Lava back end needs equal latencies"
            )
        depth = depths.pop()
        if node.target != "loihi2":
            raise TsslcError(f"population '{name}': integer LIF for target {node.target!r}, expected loihi2")
        shape = lava_shape(self.shapes[name])
        proc = self.add(_lif(name, shape, node.params, self.fixed, self.period, depth))
        for u in ups:
            port = u.port if tuple(u.port.shape) == shape else u.port.reshape(shape)
            port.connect(proc.a_in)
        record = os.path.join(self.record_dir, f"{len(self.lowered.populations)}.npy")
        sink = self.add(SpikeSink(shape=shape, path=record, name=f"{name}.sink"))
        proc.s_out.connect(sink.a_in)
        self.lowered.populations[name] = Population(name, self.shapes[name], depth, proc, sink, record)
        return _Out(proc.s_out, self.shapes[name], depth, 0)

    def output(self, name, node, x):
        return None  # the output population's sink is read


def lower(graph: Graph, source_data: np.ndarray, period: int, record_dir: str,
          select_tag: str = "fixed_pt") -> Lowered:
    """Build the Lava processes of ``graph``.

    ``source_data``: the input in Lava layout, ``(*lava_shape(input shape), n_columns)``,
    already quantized (fixed_pt) or scaled (floating_pt); the source replays it cyclically.
    ``period``: steps per sample (the LIFReset interval). Each population's sink records
    into ``record_dir/<i>.npy``, which the caller creates (:func:`create_record`) before
    running.
    """
    check_runnable(graph, select_tag)
    walker = LavaLowering(graph, source_data, period, record_dir, select_tag)
    walker.run()
    return walker.lowered


def _lif(name, shape, params: Loihi2LIF, fixed, period, depth) -> LIFReset:
    if not isinstance(params, Loihi2LIF):
        raise TsslcError(f"population '{name}': loihi2 populations need Loihi2LIF parameters, got {type(params).__name__}")
    du, dv, vth = params.du, params.dv, params.vth
    bias_mant, bias_exp = params.bias_mant, params.bias_exp
    timing = dict(reset_interval=int(period), reset_offset=(1 + depth) % int(period))
    if fixed:
        return LIFReset(shape=shape, du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp,
                        name=name, **timing)
    return LIFReset(shape=shape, du=(du + 1) / 4096, dv=dv / 4096, vth=float(vth) * 64,
                    bias_mant=float(bias_mant) * 2.0**bias_exp, bias_exp=0, name=name, **timing)


def _lower_conv(name, node: N.IntConv2d, up: _Out, out_shape, fixed, add) -> _Out:
    if len(up.ir_shape) != 3 or up.flat_of is not None:
        raise TsslcError(f"layer '{name}': a convolution needs a (C, H, W) input, got {up.ir_shape}")
    w = conv_weight_for_lava(np.asarray(node.weight).astype(np.int64))
    exp = int(node.weight_exp)
    common = dict(input_shape=lava_shape(up.ir_shape), padding=int(node.padding), stride=int(node.stride),
                  groups=int(node.groups), num_message_bits=up.message_bits, name=name)
    if not fixed:
        conv = add(Conv(weight=w.astype(np.float64) * 2.0 ** (6 + exp), **common))
        up.port.connect(conv.s_in)
        return _Out(conv.a_out, out_shape, up.depth + 1, 0)
    if exp > 0:
        w = w << exp
    conv = add(Conv(weight=w.astype(np.int32), **common))
    up.port.connect(conv.s_in)
    if exp >= 0:
        return _Out(conv.a_out, out_shape, up.depth + 1, 0)
    # Lava's Conv ignores weight_exp: apply the flooring shift in an identity Sparse.
    n = math.prod(out_shape)
    from scipy.sparse import identity

    shift = add(Sparse(weights=identity(n, dtype=np.int32, format="csr"), weight_exp=exp,
                       num_message_bits=24, name=f"{name}.shift"))
    conv.a_out.flatten().connect(shift.s_in)
    return _Out(shift.a_out.reshape(lava_shape(out_shape)), out_shape, up.depth + 2, 0)
