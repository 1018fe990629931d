"""IR node types: one small dataclass per primitive, its equation in the docstring.

Shapes never include batch or time (as in NIR). All tensors that flow along edges are
PSCs (or currents), time-first ``(T, B, *shape)`` when executed. Parameters are numpy arrays
(float32 for a trained float graph; integer for a quantized one).

Each node knows its output shape from its input shape (:meth:`infer_shape`), raising
``ValueError`` with the problem; :class:`tsslc.ir.graph.Graph` adds the node's name.

Nodes are immutable: frozen dataclasses whose arrays are read-only copies, so graphs may
share them and a pass changes a node only by building a new one
(``dataclasses.replace(node, weight=...)``). A new node kind is a subclass with a unique
``kind``, registered with :func:`register_node` (the model file then stores it); each back
end adds one method named after the kind (:mod:`tsslc.ir.walker`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np

from tsslc.ir.neurons import IntNeuron
from tsslc.validate import MAX_WEIGHT_EXP, finite_array, number

Shape = tuple[int, ...]


def _value(what: str, v, optional: bool = False, **limits) -> None:
    """A value the dynamics can use (tsslc.validate.number); ValueError, the graph adds the
    node's name."""
    if not (optional and v is None):
        number(None, what, v, error=ValueError, **limits)


def _finite(what: str, a: np.ndarray) -> None:
    finite_array(what, a, error=ValueError)


def _int_in(what: str, v, lo: int, hi: int) -> None:
    number(None, what, v, int, lo=lo, hi=hi, error=ValueError)


def frozen_array(a) -> np.ndarray:
    """A read-only copy of ``a`` (numpy keeps its dtype)."""
    out = np.array(a, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Node:
    kind: ClassVar[str] = "node"

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                object.__setattr__(self, f.name, frozen_array(v))
            elif f.name == "shape" and isinstance(v, (list, tuple)):
                object.__setattr__(self, f.name, tuple(int(d) if isinstance(d, (int, np.integer)) and not isinstance(d, bool) else d for d in v))

    def infer_shape(self, in_shape: Shape | None) -> Shape:  # pragma: no cover - abstract
        raise NotImplementedError

    # parameters that are arrays (written as datasets by the file format)
    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}

    def attrs(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if not isinstance(getattr(self, f.name), np.ndarray)}

    def __eq__(self, other):
        if type(self) is not type(other):
            return False
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
                    return False
                if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
                    return False
            elif a != b:
                return False
        return True


@dataclass(frozen=True, eq=False)
class Input(Node):
    """Network input of ``shape`` (no batch, no time).

    encoding ``"current"`` (static analog values p, §2): b[t] = b[t-1] - b[t-1]/τs + p[t];
    out[t] = b[t]/τs.  encoding ``"events"``: binary event frames e[t] in place of p[t], same
    filter.  With ``tau_s`` = None the input is passed through unfiltered.
    """

    kind: ClassVar[str] = "input"
    shape: Shape = ()
    encoding: str = "current"
    tau_s: float | None = None

    def infer_shape(self, in_shape):
        if in_shape is not None:
            raise ValueError("an input node has no predecessor")
        if not self.shape or any(int(d) < 1 for d in self.shape):
            raise ValueError(f"input shape must be positive, got {self.shape}")
        if self.encoding not in ("current", "events"):
            raise ValueError(f"unknown input encoding {self.encoding!r} (expected 'current' or 'events')")
        _value("tau_s", self.tau_s, lo=1, optional=True)  # the filter divides by tau_s
        return tuple(int(d) for d in self.shape)


@dataclass(frozen=True, eq=False)
class Dense(Node):
    """Dense synapse without bias: x[t] = W · a_in[t];  W of shape (N_out, N_in)."""

    kind: ClassVar[str] = "dense"
    weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def infer_shape(self, in_shape):
        if in_shape is None or len(in_shape) != 1:
            raise ValueError(f"dense needs a flat input, got shape {in_shape}")
        if self.weight.ndim != 2:
            raise ValueError(f"dense weight must be 2-D (N_out, N_in), got {self.weight.shape}")
        _finite("weight", self.weight)
        if self.weight.shape[1] != in_shape[0]:
            raise ValueError(f"weight {self.weight.shape} does not fit input of {in_shape[0]} features")
        return (int(self.weight.shape[0]),)


@dataclass(frozen=True, eq=False)
class Conv2d(Node):
    """2-D convolution without bias, torch semantics (cross-correlation, CHW):

    x[t, o, i, j] = Σ_{c,m,n} W[o, c, m, n] · a_in[t, c, s·i + m - p, s·j + n - p]
    with zero padding p, stride s, and channel groups."""

    kind: ClassVar[str] = "conv2d"
    weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 0), np.float32))
    stride: int = 1
    padding: int = 0
    groups: int = 1

    def infer_shape(self, in_shape):
        if in_shape is None or len(in_shape) != 3:
            raise ValueError(f"conv2d needs a (C, H, W) input, got shape {in_shape}")
        if self.weight.ndim != 4:
            raise ValueError(f"conv2d weight must be 4-D (C_out, C_in/groups, K, K), got {self.weight.shape}")
        _finite("weight", self.weight)
        c_out, c_in_g, kh, kw = self.weight.shape
        if self.groups < 1 or in_shape[0] % self.groups or c_out % self.groups:
            raise ValueError(f"groups {self.groups} does not divide channels in {in_shape[0]} / out {c_out}")
        if c_in_g * self.groups != in_shape[0]:
            raise ValueError(f"weight {self.weight.shape} expects {c_in_g * self.groups} input channels, input has {in_shape[0]}")
        if self.stride < 1 or self.padding < 0:
            raise ValueError(f"bad stride {self.stride} / padding {self.padding}")
        h = (in_shape[1] + 2 * self.padding - kh) // self.stride + 1
        w = (in_shape[2] + 2 * self.padding - kw) // self.stride + 1
        if h < 1 or w < 1:
            raise ValueError(f"kernel {kh}x{kw} does not fit input {in_shape}")
        return (int(c_out), int(h), int(w))


@dataclass(frozen=True, eq=False)
class SumPool2d(Node):
    """Non-overlapping sum pooling times a constant: out = θp · Σ_{k×k window} a_in (stride k,
    remainder rows/columns dropped)."""

    kind: ClassVar[str] = "sumpool2d"
    kernel: int = 2
    theta: float = 1.1

    def infer_shape(self, in_shape):
        if in_shape is None or len(in_shape) != 3:
            raise ValueError(f"sumpool2d needs a (C, H, W) input, got shape {in_shape}")
        if self.kernel < 1 or in_shape[1] < self.kernel or in_shape[2] < self.kernel:
            raise ValueError(f"kernel {self.kernel} does not fit input {in_shape}")
        _value("theta", self.theta, positive=True)
        return (in_shape[0], in_shape[1] // self.kernel, in_shape[2] // self.kernel)


@dataclass(frozen=True, eq=False)
class Flatten(Node):
    """out = a_in reshaped to one dimension (C, H, W order, as torch)."""

    kind: ClassVar[str] = "flatten"

    def infer_shape(self, in_shape):
        if in_shape is None:
            raise ValueError("flatten needs an input")
        return (int(math.prod(in_shape)),)


@dataclass(frozen=True, eq=False)
class Dropout(Node):
    """Training-time dropout with one mask per sample and feature for all steps; identity
    at inference (out = a_in)."""

    kind: ClassVar[str] = "dropout"
    p: float = 0.0

    def infer_shape(self, in_shape):
        if in_shape is None:
            raise ValueError("dropout needs an input")
        if not 0 <= self.p < 1:
            raise ValueError(f"p must be in [0, 1), got {self.p}")
        return tuple(in_shape)


@dataclass(frozen=True, eq=False)
class LIF(Node):
    """LIF population with first-order synapse and reset to zero (TSSLBP_SPEC §1), θm=1/τm,
    θs=1/τs, V=threshold; input current x, output the PSC a:

        u[t] = (1-θm)·u'[t-1] + x[t];  s[t] = u[t] > V;  u'[t] = u[t](1-s[t]);
        a[t] = a[t-1] + (s[t] - a[t-1])·θs
    """

    kind: ClassVar[str] = "lif"
    shape: Shape = ()
    tau_m: float = 5.0
    tau_s: float = 3.0
    threshold: float = 1.0

    def infer_shape(self, in_shape):
        if in_shape is None:
            raise ValueError("lif needs an input current")
        if tuple(self.shape) != tuple(in_shape):
            raise ValueError(f"population shape {tuple(self.shape)} differs from its input current {tuple(in_shape)}")
        # θ = 1/τ is a decay per step: τ < 1 would more than empty the state every step
        _value("tau_m", self.tau_m, lo=1, allow_inf=True)  # inf: no leak (NIR's IF)
        _value("tau_s", self.tau_s, lo=1)
        _value("threshold", self.threshold, positive=True)
        return tuple(in_shape)


@dataclass(frozen=True, eq=False)
class Output(Node):
    """Network output: passes its input through (the last population's PSC); the class is
    the neuron of the preceding LIF that spikes most often."""

    kind: ClassVar[str] = "output"
    shape: Shape = ()

    def infer_shape(self, in_shape):
        if in_shape is None:
            raise ValueError("output needs an input")
        if tuple(self.shape) != tuple(in_shape):
            raise ValueError(f"output shape {tuple(self.shape)} differs from its input {tuple(in_shape)}")
        return tuple(in_shape)


# --- integer nodes: a graph compiled for a target (metadata["target"]) ---------------------
#
# In a compiled graph the synaptic filter of the float model has moved: a spiking layer
# emits binary spikes s, the next synapse computes the integer current W·s, and the next
# population's *current state* (Loihi's u) integrates it with the PSC decay. The exact
# per-step arithmetic of IntLIF is the target's (targets/<name>.md, targets/<name>.py).


@dataclass(frozen=True, eq=False)
class IntInput(Node):
    """Integer network input. encoding ``"graded"``: p_int[t] = round(p[t]·scale), clipped to
    a signed ``bits``-bit payload (a graded spike every step, static images); ``"binary"``:
    event frames e[t] ∈ {0, 1} as they are (scale 1); ``"rate"``: first-order sigma-delta,
    p_int[t] = ⌊c[t] + ½⌋ − ⌊c[t−1] + ½⌋ with c[t] = Σ_{τ≤t} p[τ]·scale (c[−1] = 0), so
    that the payloads up to t sum to round(c[t]) — binary spikes whose count over the
    ``n_steps`` steps of a static frame approximates the graded value (targets whose axons
    carry 1-bit events: truenorth)."""

    kind: ClassVar[str] = "int_input"
    shape: Shape = ()
    encoding: str = "graded"
    scale: float = 1.0
    bits: int = 16
    #: "rate": the steps a static frame is spread over (0: other encodings)
    n_steps: int = 0

    def infer_shape(self, in_shape):
        if in_shape is not None:
            raise ValueError("an input node has no predecessor")
        if self.encoding not in ("graded", "binary", "rate"):
            raise ValueError(f"unknown integer input encoding {self.encoding!r} (expected 'graded', 'binary' or 'rate')")
        if self.encoding == "rate" and int(self.n_steps) < 1:
            raise ValueError(f"a rate-encoded input needs n_steps >= 1, got {self.n_steps}")
        if not self.shape or any(int(d) < 1 for d in self.shape):
            raise ValueError(f"input shape must be positive, got {self.shape}")
        _value("scale", self.scale, positive=True)
        _int_in("bits", self.bits, 1, 32)
        return tuple(int(d) for d in self.shape)


@dataclass(frozen=True, eq=False)
class IntDense(Node):
    """Integer dense synapse: acc = W·s_in (int64);  out = acc << weight_exp (a negative
    exponent is an arithmetic, flooring right shift). W integer (N_out, N_in)."""

    kind: ClassVar[str] = "int_dense"
    weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32))
    weight_exp: int = 0

    def infer_shape(self, in_shape):
        if not np.issubdtype(self.weight.dtype, np.integer):
            raise ValueError(f"integer dense weight must be integer, got {self.weight.dtype}")
        _int_in("weight_exp", self.weight_exp, -MAX_WEIGHT_EXP, MAX_WEIGHT_EXP)
        return Dense.infer_shape(self, in_shape)


@dataclass(frozen=True, eq=False)
class IntConv2d(Node):
    """Integer 2-D convolution (torch cross-correlation semantics, CHW, zero padding):
    acc = conv(s_in, W);  out = acc << weight_exp (flooring shift when negative)."""

    kind: ClassVar[str] = "int_conv2d"
    weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 0), np.int32))
    stride: int = 1
    padding: int = 0
    groups: int = 1
    weight_exp: int = 0

    def infer_shape(self, in_shape):
        if not np.issubdtype(self.weight.dtype, np.integer):
            raise ValueError(f"integer conv weight must be integer, got {self.weight.dtype}")
        _int_in("weight_exp", self.weight_exp, -MAX_WEIGHT_EXP, MAX_WEIGHT_EXP)
        return Conv2d.infer_shape(self, in_shape)


@dataclass(frozen=True, eq=False)
class IntLIF(Node):
    """Integer LIF population of a target. ``params`` is the target's typed neuron model
    (:mod:`tsslc.ir.neurons`: :class:`~tsslc.ir.neurons.Loihi2LIF`,
    :class:`~tsslc.ir.neurons.TrueNorthLIF`), whose docstring gives the per-step equation
    (the bit widths and order of updates are the target's ``targets/<target>.md``). Emits
    binary spikes."""

    kind: ClassVar[str] = "int_lif"
    shape: Shape = ()
    params: IntNeuron | None = None

    @property
    def target(self) -> str:
        """The target whose arithmetic runs this population (from the type of ``params``)."""
        return self.params.target if self.params is not None else ""

    def infer_shape(self, in_shape):
        if not isinstance(self.params, IntNeuron):
            raise ValueError(f"integer LIF needs typed target parameters (tsslc.ir.neurons), got {self.params!r:.60}")
        return _same_shape(self.shape, in_shape)


def _same_shape(shape, in_shape):
    if in_shape is None:
        raise ValueError("needs an input current")
    if tuple(shape) != tuple(in_shape):
        raise ValueError(f"population shape {tuple(shape)} differs from its input current {tuple(in_shape)}")
    return tuple(in_shape)


NODE_TYPES: dict[str, type[Node]] = {
    cls.kind: cls
    for cls in (Input, Dense, Conv2d, SumPool2d, Flatten, Dropout, LIF, Output, IntInput, IntDense, IntConv2d, IntLIF)
}


def register_node(cls: type[Node]) -> type[Node]:
    """Make a new node kind known to the IR and the model file (a class decorator). The
    class must be a frozen dataclass subclass of :class:`Node` with a unique ``kind`` that
    is a Python identifier (the walker's method name)."""
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise TypeError(f"register_node takes a Node subclass, got {cls!r}")
    if not cls.kind.isidentifier() or cls.kind in ("node", "run", "run_node", "combine", "unsupported", "steps"):
        raise TypeError(f"node kind {cls.kind!r} must be an identifier that names no walker method")
    if cls.kind in NODE_TYPES and NODE_TYPES[cls.kind] is not cls:
        raise TypeError(f"node kind {cls.kind!r} is already registered by {NODE_TYPES[cls.kind].__name__}")
    if not cls.__dataclass_params__.frozen:
        raise TypeError(f"node class {cls.__name__} must be a frozen dataclass")
    NODE_TYPES[cls.kind] = cls
    return cls
