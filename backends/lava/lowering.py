"""Lowering: a loihi2-compiled IR graph becomes a network of standard Lava processes.

:func:`build_network` is the public entry: it builds the graph from ``lava.proc`` processes
only and hands back a :class:`LavaNetwork` with its input port(s) and output ports, so a
user attaches their own input, output and run configuration (``Loihi2HwCfg`` on the chip,
see the README). The simulation back end (:mod:`.runner`) builds the same network and
attaches a ``lava.proc.io.source.RingBuffer`` and tsslc's memory-mapped
:class:`~tsslc.backends.lava.sink.SpikeSink` per population. One process per IR primitive,
connected along the graph's edges:

==========================  ===============================================================
IR node                     Lava process(es)
==========================  ===============================================================
``IntInput``                nothing: the first synapse's ``s_in`` is the network's input
                            port (graded payloads: ``num_message_bits`` = the input's bits;
                            binary events: 0). :meth:`LavaNetwork.attach_source` adds an
                            ``io.source.RingBuffer`` holding every step of every sample
``Flatten``                 a reshape of the producer's OutPort (no process)
``IntDense``                ``Dense(weights, weight_exp, num_message_bits)``
``IntConv2d``               ``Conv`` (W, H, C layout, flipped kernel); it ignores
                            ``weight_exp``: a non-negative exponent is folded into the
                            weights, a negative one becomes an identity ``Sparse`` with that
                            ``weight_exp`` behind the Conv (one more step of latency)
``IntLIF``                  ``LIFReset(du, dv, vth, bias_mant, bias_exp)`` with the reset
                            interval given (samples back to back), else ``LIF``
``Output``                  nothing (the output population's ``s_out`` is the output port)
==========================  ===============================================================

Tensors in Lava are W, H, C (x, y, channel); IR tensors are C, H, W. A population of IR
shape (C, H, W) lives in Lava as (W, H, C); a Dense behind a Flatten of such a tensor gets
its weight columns permuted so that it sees the IR (torch) flatten order. The network's
input port is in Lava layout (W, H, C) when a Conv reads the input, and flat in the IR's
(C, H, W) order when a Dense reads it through a Flatten (as lava-dl netx's files).

Time: each synapse process delays by one step. A population reached through ``d`` synapse
processes from the input sees sample ``b``'s float step ``t`` at Lava step
``b·P + t + 1 + d`` when the input port receives it at step ``b·P + t + 1`` (a RingBuffer
source's column ``b·P + t``; ``P`` steps per sample), so it resets its state at
``time_step % P == (1 + d) % P`` (``LIFReset``, offsets staggered by depth) and its spikes
of (b, t) leave it at Lava step ``b·P + t + 1 + d``. ``P = n_steps`` suffices: what a layer
emits after its last step of a sample reaches the next layer before that layer's reset.

``floating_pt`` uses Lava's float models with the equivalent float parameters (LAVA.md):
weights ``W·2^(6+weight_exp)``, ``vth·64``, ``du_f = (du+1)/4096``, ``dv_f = dv/4096``,
``bias = bias_mant·2^bias_exp``.
"""

from __future__ import annotations

import math
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
from lava.proc.lif.models import PyLifModelBitAcc, PyLifModelFloat  # noqa: E402
from lava.proc.lif.models import PyLifResetModelBitAcc, PyLifResetModelFloat  # noqa: E402
from lava.proc.lif.process import LIF, LIFReset  # noqa: E402
from lava.proc.sparse.models import PySparseModelBitAcc, PySparseModelFloat  # noqa: E402
from lava.proc.sparse.process import Sparse  # noqa: E402

SELECT_TAGS = ("fixed_pt", "floating_pt")

#: The process model of every standard process class, per select tag. tsslc gives them
#: explicitly (``exception_proc_model_map``), so Lava never searches the file system for
#: them; a user's run configuration may do without (Lava finds them by select tag).
MODELS = {
    "fixed_pt": {
        Source: PySendModelFixed,
        Dense: PyDenseModelBitAcc,
        Sparse: PySparseModelBitAcc,
        Conv: PyConvModelFixed,
        LIF: PyLifModelBitAcc,
        LIFReset: PyLifResetModelBitAcc,
    },
    "floating_pt": {
        Source: PySendModelFloat,
        Dense: PyDenseModelFloat,
        Sparse: PySparseModelFloat,
        Conv: PyConvModelFloat,
        LIF: PyLifModelFloat,
        LIFReset: PyLifResetModelFloat,
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
    """A lowered LIF population: its process and how many synapse processes lie between
    the network's input port and it (its latency in steps beyond the first)."""

    name: str
    ir_shape: tuple[int, ...]
    depth: int  # synapse processes between the input port and this population
    process: object  # LIF | LIFReset

    @property
    def out(self):
        """The population's spike OutPort (Lava layout)."""
        return self.process.s_out


@dataclass
class LavaNetwork:
    """A loihi2-compiled graph as standard ``lava.proc`` processes (:func:`build_network`).

    * ``inputs``: the InPort(s) the input drives (:attr:`inp` when there is one), of shape
      :attr:`input_port_shape`, laid out as :attr:`input_layout` says; connect a source's
      OutPort to each (or call :meth:`attach_source`);
    * ``populations``: {IR population: :class:`Population`}, each with its ``out`` port;
      :attr:`out` is the output population's;
    * ``processes``: every process built, ``models`` their process models for
      ``exception_proc_model_map`` (optional: Lava finds them by select tag itself).
    """

    graph: Graph
    select_tag: str
    reset_interval: int | None
    inputs: list = field(default_factory=list)
    input_port_shape: tuple[int, ...] = ()
    input_layout: str = ""  # "lava" (W, H, C; 1-D as is) | "flat" (IR C, H, W order)
    input_message_bits: int = 0
    populations: dict[str, Population] = field(default_factory=dict)
    processes: list = field(default_factory=list)
    models: dict = field(default_factory=dict)  # process instance -> process model class
    source: object | None = None  # the RingBuffer of attach_source

    @property
    def inp(self):
        """The input port, when the input drives exactly one synapse."""
        if len(self.inputs) != 1:
            raise TsslcError(f"the network's input drives {len(self.inputs)} synapses; connect to each of .inputs")
        return self.inputs[0]

    @property
    def out(self):
        """The output population's spike OutPort."""
        return self.populations[self.graph.output_population].out

    @property
    def outputs(self) -> dict:
        """{population: spike OutPort} of every population."""
        return {k: p.out for k, p in self.populations.items()}

    @property
    def depth(self) -> int:
        return max((p.depth for p in self.populations.values()), default=0)

    def source_data(self, payloads: np.ndarray, period: int | None = None) -> np.ndarray:
        """Data for a ``io.source.RingBuffer`` driving :attr:`inputs`: ``payloads``
        time-first ``(T, B, *input shape)`` (the target's integer input spikes for fixed_pt)
        -> ``(*input_port_shape, B·period)`` with sample b's step t in column
        ``b·period + t`` (``period`` defaults to the reset interval, else T)."""
        T, B = payloads.shape[:2]
        P = int(period or self.reset_interval or T)
        if P < T:
            raise TsslcError(f"period {P} is shorter than the {T} steps of each sample")
        ir_shape = tuple(payloads.shape[2:])
        fixed = self.select_tag == "fixed_pt"
        per_sample = payloads.transpose(1, 0, *range(2, payloads.ndim))  # (B, T, *ir)
        cols = per_sample.reshape(B * T, -1) if self.input_layout == "flat" else \
            to_lava_layout(per_sample, ir_shape).reshape(B * T, -1)
        if fixed:
            lim = np.iinfo(np.int32)
            if cols.size and (cols.min() < lim.min or cols.max() > lim.max):
                raise TsslcError("input payloads exceed 32 bits; reduce the input's bits")
        data = np.zeros((B * P, cols.shape[1]), dtype=np.int32 if fixed else np.float64)
        data[(np.arange(B)[:, None] * P + np.arange(T)[None, :]).reshape(-1)] = cols
        return np.ascontiguousarray(data.T.reshape(*self.input_port_shape, B * P))

    def attach_source(self, data: np.ndarray):
        """Add a ``lava.proc.io.source.RingBuffer`` replaying ``data`` (see
        :meth:`source_data`) into every input port; returns it."""
        if tuple(data.shape[:-1]) != tuple(self.input_port_shape):
            raise TsslcError(f"source data of shape {data.shape[:-1]} for an input port of shape {self.input_port_shape}")
        src = self._add(Source(data=data))
        for port in self.inputs:
            src.s_out.connect(port)
        self.source = src
        return src

    def _add(self, proc):
        self.processes.append(proc)
        self.models[proc] = MODELS[self.select_tag][type(proc)]
        return proc


@dataclass
class _Out:
    """What a lowered node offers its successors."""

    port: object  # a Lava OutPort (possibly reshaped); None: the network's input
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
    """Builds the standard Lava processes of a loihi2-compiled graph into a
    :class:`LavaNetwork`, one method per node kind; each method returns the :class:`_Out`
    its successors connect to."""

    what = "the Lava back end (it takes graphs compiled for loihi2: IntInput, Flatten, IntDense, IntConv2d, IntLIF, Output)"

    def __init__(self, graph: Graph, select_tag: str, reset_interval: int | None):
        super().__init__(graph)
        self.shapes = graph.validate()
        self.fixed = select_tag == "fixed_pt"
        self.net = LavaNetwork(graph, select_tag, reset_interval)

    def add(self, proc):
        return self.net._add(proc)

    def combine(self, name, node, values):
        return list(values)  # several synapses into one population: each connects to it

    def connect(self, up: _Out, in_port, flat: bool) -> None:
        """Connect ``up`` to a synapse's ``in_port``; the network's input registers the port."""
        if up.port is not None:
            up.port.connect(in_port)
            return
        layout = "flat" if flat and len(self.shapes[self.graph.input_name]) != 1 else "lava"
        if self.net.inputs and (self.net.input_layout, self.net.input_port_shape) != (layout, tuple(in_port.shape)):
            raise TsslcError("the input feeds synapses that read it in different layouts; the Lava network needs one")
        self.net.inputs.append(in_port)
        self.net.input_port_shape, self.net.input_layout = tuple(in_port.shape), layout

    def int_input(self, name, node: N.IntInput, x):
        self.net.input_message_bits = input_message_bits(node)
        return _Out(None, self.shapes[name], 0, input_message_bits(node))

    def flatten(self, name, node, up: _Out):
        flat = (math.prod(up.ir_shape),)
        if up.port is None:  # the input, flattened: the port takes the IR (C, H, W) order
            return _Out(None, flat, up.depth, up.message_bits)
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
        self.connect(up, proc.s_in, flat=True)
        return _Out(proc.a_out, self.shapes[name], up.depth + 1, 0)

    def int_conv2d(self, name, node: N.IntConv2d, up: _Out):
        return _lower_conv(name, node, up, self.shapes[name], self.fixed, self.add, self.connect)

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
        proc = self.add(_lif(name, shape, node.params, self.fixed, self.net.reset_interval, depth))
        for u in ups:
            port = u.port if tuple(u.port.shape) == shape else u.port.reshape(shape)
            port.connect(proc.a_in)
        self.net.populations[name] = Population(name, self.shapes[name], depth, proc)
        return _Out(proc.s_out, self.shapes[name], depth, 0)

    def output(self, name, node, x):
        return None  # the output population's s_out is the network's output port


def build_network(compiled: Graph, select_tag: str = "fixed_pt", reset_interval: int | None = None) -> LavaNetwork:
    """The loihi2-compiled graph ``compiled`` as standard ``lava.proc`` processes only
    (Dense / Sparse / Conv, LIF or LIFReset; no source, no sink), for a user to attach their
    own input (to ``.inp``: a ``lava.proc.io.source.RingBuffer``, a sensor, an adapter onto
    the chip), outputs (``.out``, ``.outputs``) and run configuration.

    ``reset_interval``: steps per sample when samples run back to back (each population a
    ``LIFReset`` whose offset is staggered by its depth, for an input port that receives
    sample b's step t at Lava step ``b·reset_interval + t + 1``); None: plain ``LIF``, state
    never reset. ``select_tag``: ``"fixed_pt"`` (bit-accurate, as the chip) or
    ``"floating_pt"`` (Lava's float models with the equivalent parameters).
    """
    check_runnable(compiled, select_tag)
    if reset_interval is not None and int(reset_interval) < 1:
        raise TsslcError(f"reset_interval must be >= 1, got {reset_interval}")
    walker = LavaLowering(compiled, select_tag, None if reset_interval is None else int(reset_interval))
    walker.run()
    if not walker.net.inputs:
        raise TsslcError("the compiled graph's input feeds no synapse")
    return walker.net


def _lif(name, shape, params: Loihi2LIF, fixed, period, depth):
    if not isinstance(params, Loihi2LIF):
        raise TsslcError(f"population '{name}': loihi2 populations need Loihi2LIF parameters, got {type(params).__name__}")
    du, dv, vth = params.du, params.dv, params.vth
    bias_mant, bias_exp = params.bias_mant, params.bias_exp
    cls, timing = (LIF, {}) if period is None else \
        (LIFReset, dict(reset_interval=int(period), reset_offset=(1 + depth) % int(period)))
    if fixed:
        return cls(shape=shape, du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp, name=name, **timing)
    return cls(shape=shape, du=(du + 1) / 4096, dv=dv / 4096, vth=float(vth) * 64,
               bias_mant=float(bias_mant) * 2.0**bias_exp, bias_exp=0, name=name, **timing)


def _lower_conv(name, node: N.IntConv2d, up: _Out, out_shape, fixed, add, connect) -> _Out:
    if len(up.ir_shape) != 3 or up.flat_of is not None:
        raise TsslcError(f"layer '{name}': a convolution needs a (C, H, W) input, got {up.ir_shape}")
    w = conv_weight_for_lava(np.asarray(node.weight).astype(np.int64))
    exp = int(node.weight_exp)
    common = dict(input_shape=lava_shape(up.ir_shape), padding=int(node.padding), stride=int(node.stride),
                  groups=int(node.groups), num_message_bits=up.message_bits, name=name)
    if not fixed:
        conv = add(Conv(weight=w.astype(np.float64) * 2.0 ** (6 + exp), **common))
        connect(up, conv.s_in, flat=False)
        return _Out(conv.a_out, out_shape, up.depth + 1, 0)
    if exp > 0:
        w = w << exp
    conv = add(Conv(weight=w.astype(np.int32), **common))
    connect(up, conv.s_in, flat=False)
    if exp >= 0:
        return _Out(conv.a_out, out_shape, up.depth + 1, 0)
    # Lava's Conv ignores weight_exp: apply the flooring shift in an identity Sparse.
    n = math.prod(out_shape)
    from scipy.sparse import identity

    shift = add(Sparse(weights=identity(n, dtype=np.int32, format="csr"), weight_exp=exp,
                       num_message_bits=24, name=f"{name}.shift"))
    conv.a_out.flatten().connect(shift.s_in)
    return _Out(shift.a_out.reshape(lava_shape(out_shape)), out_shape, up.depth + 2, 0)
