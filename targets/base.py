"""The Target interface: a chip described as data plus its exact integer arithmetic.

A :class:`Target` holds

* **geometry** (:class:`CoreGeometry`): neurons and axons per core, fan-in / fan-out limits;
* **number formats** (:class:`NumberFormat`): weight bits and encoding, state bits, wrap or
  saturate per state variable, how decays are represented;
* **timing**: ``latency_per_hop`` steps of delay per synapse layer on the chip (intsim runs
  on the float model's time axis and ignores it; a hardware-like back end such as Lava
  shifts its spikes by it);
* an **energy table** (:class:`EnergyTable`) whose every figure carries source, scope
  (``per-term`` / ``all-in``), grade (``measured`` / ``simulated``) and process;
* its **arithmetic**, implemented exactly once, vectorised on torch int64 tensors (any
  device), and called by the integer simulator :mod:`tsslc.backends.intsim`:

  - :meth:`Target.input_spikes` (IntInput → integer input payloads),
  - :meth:`Target.synapse` (IntDense / IntConv2d → integer current per step),
  - :meth:`Target.init_state` / :meth:`Target.neuron_step` (one step of an IntLIF),
  - :meth:`Target.core_assignment` (which core each neuron sits on, for counters);

* its **quantization hook** :meth:`Target.quantize_layer`, driven by the generic pass
  :func:`tsslc.targets.quantize.quantize` (calibration, structure checks and the per-layer
  report live there; the target only decides its integer parameters).

The prose + equations of each target (bit widths, order of updates) are in
``targets/<name>.md`` (:attr:`Target.doc_path`); the slow scalar references in the tests
are written from those documents, not from this code.

Shapes: tensors are time-first ``(T, B, *shape)``; ``neuron_step`` works on one step
``(B, *shape)``. All integer tensors are ``torch.int64``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tsslc.errors import TsslcError
from tsslc.ir.neurons import IntNeuron


# --- exact integer sums in floating point (shared by the targets' synapses) -----------------
def exact_float(bound: float, what: str) -> torch.dtype:
    """The float type in which integer sums bounded by ``bound`` are exact: float32 below
    2^24, float64 below 2^53."""
    if bound < 2**24:
        return torch.float32
    if bound < 2**53:
        return torch.float64
    raise TsslcError(f"integer {what} bound {bound:.3g} exceeds 2^53: weights or inputs out of range")


NO_CONTEXT = contextlib.nullcontext()


@contextlib.contextmanager
def full_float32():
    """On CUDA, float32 matmuls and convs without TF32 (10-bit mantissa products would break
    the exactness proof); the user's settings come back afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def exact_sum(x: torch.Tensor, w: torch.Tensor, conv: tuple[int, int, int] | None = None) -> torch.Tensor:
    """Σ_i x_i·w_ji as int64, exactly, for integer ``x`` and ``w`` (any dtype holding integers):
    dense ``x (..., N_in)`` with ``w (N_out, N_in)``, or, with ``conv = (stride, padding,
    groups)``, ``x (T, B, C, H, W)`` with ``w (C_out, C_in/groups, K, K)``. Made in float32 when
    every partial sum is provably below 2^24 (max |x| times the largest row sum of |w|), else
    float64 (below 2^53); on CUDA without TF32."""
    bound = float(x.abs().max()) * float(w.abs().reshape(w.shape[0], -1).sum(1).max()) if x.numel() and w.numel() else 0.0
    dt = exact_float(bound, "conv" if conv else "matmul")
    xs, ws = x.to(dt), w.to(dt)
    with full_float32() if x.device.type == "cuda" and dt == torch.float32 else NO_CONTEXT:
        if conv is None:
            y = F.linear(xs, ws)
        else:
            T, B = xs.shape[:2]
            y = F.conv2d(xs.reshape(T * B, *xs.shape[2:]), ws, None, conv[0], conv[1], 1, conv[2])
            y = y.reshape(T, B, *y.shape[1:])
    return y.to(torch.int64)

@dataclass
class LayerStats:
    """Calibration of one spiking layer (float graph, measured by the quantize pass).

    ``in_scale`` is the integer input unit: the integer value that stands for 1.0 of the
    float quantity flowing into the synapse (graded input scale S for the first layer,
    1 for binary spikes). Currents/membranes are maxima of |·| over the calibration set.
    """

    name: str  # LIF node
    synapse: str  # synapse node
    in_scale: float
    in_tau_s: float | None  # PSC time constant of the synapse's input (None: unfiltered)
    max_abs_current: float  # max |x[t]| into the LIF (float model units)
    max_abs_membrane: float  # max |u[t]| (pre-reset) of the LIF
    p999_abs_current: float = 0.0  # 99.9th percentile |x|
    spike_rate: float = 0.0
    n_samples: int = 0
    #: Σ a aᵀ over the calibration steps and samples of the synapse's float input a (dense:
    #: n_in × n_in; conv: over the input patches, C·kh·kw square), float64, for rounding that
    #: keeps the current error small; a grouped conv has one per group, stacked (G, n, n);
    #: None for fan-ins over MAX_GRAM_INPUTS
    input_gram: np.ndarray | None = None
    #: "gptq" (error-compensating rounding where the target supports it) or "nearest"
    rounding: str = "gptq"
    #: a fixed integer scale λ (fine-tuning keeps the compile's, so that weights on the
    #: grid stay on it); None: the target chooses (truenorth honours it)
    scale: float | None = None


@dataclass
class QuantizedLayer:
    """What :meth:`Target.quantize_layer` returns: the integer synapse and population and a
    report row (JSON-serialisable dict: scale, weight_exp, weight_error, saturated_fraction,
    decay errors, ... — the pass adds the name and the common fields)."""

    synapse: Any  # IntDense | IntConv2d
    lif: Any  # IntLIF
    report: dict = field(default_factory=dict)


class QuantizationError(TsslcError):
    """A layer a target cannot represent; the message names the layer, the limit, the remedy."""


SCOPES = ("per-term", "all-in")
GRADES = ("measured", "simulated")


@dataclass(frozen=True)
class EnergyFigure:
    """One price. ``name`` is stable (the report keys on it); ``counter`` names the count
    it multiplies — ``"synaptic_events"`` (synaptic operations), ``"spikes"``,
    ``"neuron_updates"``, ``"active_neuron_updates"``, ``"inactive_neuron_updates"`` of
    :class:`tsslc.backends.counters.Counters`, as :mod:`tsslc.report.energy` reads them —
    or ``""`` when the figure is context only (e.g. a chip's total power)."""

    name: str
    value: float
    unit: str  # "pJ", "mW", ...
    source: str  # citation: paper, table
    scope: str  # "per-term" (one term of a sum: add the other terms) | "all-in" (add nothing)
    grade: str  # "measured" (silicon) | "simulated" (pre-silicon, model)
    process: str  # e.g. "Intel 4", "14 nm", "28 nm"
    note: str = ""
    counter: str = ""

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise ValueError(f"energy figure {self.name!r}: scope must be one of {SCOPES}, got {self.scope!r}")
        if self.grade not in GRADES:
            raise ValueError(f"energy figure {self.name!r}: grade must be one of {GRADES}, got {self.grade!r}")


@dataclass(frozen=True)
class EnergyTable:
    """``stand_in``: when the figures were published for another chip than the target (e.g.
    Loihi 1's for Loihi 2), what they stand in from — reports print it beside every number
    priced with them; "" when the figures are the target's own."""

    target: str
    figures: tuple[EnergyFigure, ...]
    note: str = ""
    stand_in: str = ""

    def __getitem__(self, name: str) -> EnergyFigure:
        for f in self.figures:
            if f.name == name:
                return f
        raise TsslcError(
            f"energy table of target '{self.target}' has no figure '{name}' "
            f"(it has: {', '.join(f.name for f in self.figures)})"
        )

    def names(self) -> list[str]:
        return [f.name for f in self.figures]


@dataclass(frozen=True)
class CoreGeometry:
    """None = no hard limit in this target's model (stated in its document)."""

    neurons_per_core: int
    axons_per_core: int | None
    max_fan_in: int | None
    max_fan_out: int | None
    n_cores: int | None = None


@dataclass(frozen=True)
class CoreMemory:
    """A core's memory budget and what the mapping (:mod:`tsslc.targets.mapping`) charges to
    it, in bits: every neuron its state, every stored synapse its weight at its precision —
    a dense neuron's connected (non-zero) inputs; a convolution's kernel once per core for
    each output channel placed there (weights shared across positions). What is not
    modelled is stated in ``note`` and the target's document; ``source`` cites the figures."""

    bytes_per_core: int
    neuron_state_bits: int
    synapse_bits: int
    shared_conv_weights: bool = True
    source: str = ""
    note: str = ""

    @property
    def bits_per_core(self) -> int:
        return 8 * int(self.bytes_per_core)


@dataclass(frozen=True)
class NumberFormat:
    weight_bits: int
    weight_encoding: str  # prose, e.g. "8-bit mixed-sign, even values in [-256, 254], x 2^weight_exp"
    state_bits: dict[str, int]  # e.g. {"u": 24, "v": 24, "vth": 17}
    overflow: dict[str, str]  # state -> "wrap" | "saturate"
    decay: str  # prose, e.g. "12-bit fraction d/4096, rounding toward zero"


_HALVES: dict = {}


def _half(device) -> torch.Tensor:
    """0.5 as a float64 tensor on ``device`` (made once per device)."""
    h = _HALVES.get(device)
    if h is None:
        h = _HALVES[device] = torch.tensor(0.5, dtype=torch.float64, device=device)
    return h


class Target(ABC):
    """Base class of the chip descriptions. Subclasses set the class attributes below and
    implement the abstract methods; everything is deterministic."""

    name: str = ""
    description: str = ""
    doc_file: str = ""  # file name next to this module, e.g. "loihi2.md"
    geometry: CoreGeometry
    #: the per-core memory budget the mapping splits layers by; None: not modelled
    memory: CoreMemory | None = None
    formats: NumberFormat
    latency_per_hop: int = 1
    energy: EnergyTable
    #: the typed integer neuron model of this target's IntLIF populations (tsslc.ir.neurons)
    neuron_type: type = IntNeuron
    #: input payload bits of a graded IntInput
    input_bits: int = 8
    #: whether quantize_layer reads ``LayerStats.input_gram`` (the quantize pass calibrates
    #: the Gram matrices only for targets that use them)
    uses_input_gram: bool = False
    #: named variants of the target's quantizer (name -> what it changes; ``tsslc compile
    #: --variant NAME``); the arithmetic is the target's own, only the choice of parameters
    #: differs, so a variant's graphs run anywhere the target's run
    variants: dict[str, str] = {}
    #: the variant this instance quantizes for ("" = the default)
    variant_name: str = ""

    def variant(self, name: str | None) -> "Target":
        """This target quantizing for variant ``name`` (None or "" = the default, ``self``);
        one error listing the known variants otherwise."""
        if not name:
            return self
        if name not in self.variants:
            known = ", ".join(self.variants) or "none"
            raise TsslcError(f"target {self.name} has no variant {name!r} (known: {known})")
        return self._make_variant(name)

    def _make_variant(self, name: str) -> "Target":  # pragma: no cover - targets with variants override
        raise TsslcError(f"target {self.name} has no variant {name!r}")

    @property
    def doc_path(self) -> Path:
        return Path(__file__).resolve().parent / self.doc_file

    # --- quantization --------------------------------------------------------------------
    @abstractmethod
    def quantize_layer(self, synapse, lif, stats: LayerStats) -> QuantizedLayer:
        """Float synapse (Dense/Conv2d) + LIF + calibration → integer synapse + IntLIF +
        report. Raise :class:`TsslcError` naming ``stats.name``, the limit and the remedy
        when the layer cannot be represented."""

    def choose_input(self, node, values: torch.Tensor, n_steps: int):
        """The integer input node for float input ``node`` and its calibration ``values``:
        ``(IntInput, report row)``. Default: graded ``input_bits``-bit payloads (binary for
        0/1 event frames), :func:`tsslc.targets.quantize.choose_input`."""
        from tsslc.targets.quantize import choose_input

        return choose_input(node, values, int(self.input_bits))

    def quantize(self, graph, calibration, **kw):
        """Float graph → compiled graph for this target (see :mod:`tsslc.targets.quantize`)."""
        from tsslc.targets.quantize import quantize

        return quantize(graph, self, calibration, **kw)

    def check_params(self, params, where: str = "IntLIF") -> None:
        """One clear error when ``params`` is not this target's neuron model or out of range."""
        if not isinstance(params, self.neuron_type):
            raise TsslcError(f"{where}: target {self.name} runs {self.neuron_type.__name__} populations, got "
                             f"{type(params).__name__} parameters")
        try:
            params.check(where)
        except ValueError as e:
            raise TsslcError(str(e)) from None

    # --- arithmetic (vectorised, torch int64, any device) ---------------------------------
    def input_spikes(self, node, x: torch.Tensor) -> torch.Tensor:
        """IntInput payloads (T, B, *shape) int64 from time-first float input ``x``:
        graded: round half away from zero of x·scale, clipped to a signed ``bits``-bit
        value; binary: x != 0; rate: the sigma-delta spikes of :func:`rate_spikes` (a
        one-step ``x``, a static frame, is spread over the node's ``n_steps``)."""
        if node.encoding == "binary":
            return (x != 0).to(torch.int64)
        if node.encoding == "rate":
            return rate_spikes(x, float(node.scale), int(node.n_steps), 2 ** (int(node.bits) - 1) - 1 if node.bits > 1 else 1)
        lim = 2 ** (int(node.bits) - 1) - 1
        xs = x * float(node.scale) if x.dtype == torch.float64 else x.to(torch.float64).mul_(float(node.scale))
        # sgn(xs)·floor(|xs| + 0.5) as trunc(xs ± 0.5): the same rounded sum, mirrored
        y = torch.trunc_(xs.add_(torch.copysign(_half(xs.device), xs)))
        return y.clamp_(-lim, lim).to(torch.int64)

    @abstractmethod
    def synapse(self, node, s_in: torch.Tensor) -> torch.Tensor:
        """Integer current of an IntDense/IntConv2d for all steps at once:
        s_in (T, B, *in_shape) int64 → (T, B, *out_shape) int64, exactly as the chip."""

    @abstractmethod
    def init_state(self, params: IntNeuron, shape: tuple, batch: int, device) -> dict[str, torch.Tensor]:
        """Zero state of an IntLIF population: {var: (B, *shape) int64}."""

    @abstractmethod
    def neuron_step(self, state: dict, current: torch.Tensor, params: IntNeuron) -> tuple[dict, torch.Tensor]:
        """One step of the chip's neuron: (state, current (B, *shape) int64) →
        (new state, spikes (B, *shape) int64 0/1). The ONE implementation of the neuron."""

    # --- the integer simulator's hot path (defaults: the methods above) -------------------
    def prepare_synapse(self, node, in_bound: int | None = None, device="cpu"):
        """``node``'s :meth:`synapse` as a function ``s_in -> current``, made once per graph
        and device and reused on every call (a target may convert its weights here and,
        given ``in_bound`` — a proven bound on |s_in|, e.g. 1 for spikes; None: unknown —
        choose its exact arithmetic once). ``s_in`` holds exact integers (int64, or float32
        when every value is an integer below 2^24); the current comes back as exact
        integers likewise. Default: :meth:`synapse` on int64."""

        def run(s_in: torch.Tensor) -> torch.Tensor:
            return self.synapse(node, s_in.to(torch.int64))

        return run

    def prepare_layer(self, node, params: IntNeuron, in_bound: int | None = None, device="cpu"):
        """A synapse ``node`` and the population it alone feeds (``params``) as one function
        for one sample, where the target has one (streaming: the synapse's work and the
        neuron's in one compiled pass); ``None`` (the default) otherwise, and the caller runs
        :meth:`prepare_synapse` then :meth:`run_population`. The function takes the synapse's
        input ``(T_in, ...)`` (N_in exact integers a step, as float32; ``T_in`` = 1: the same
        every step), the step count, ``count``, the spikes' shape (default ``(T, N)``) and
        ``fan`` (the input's fan-out per input, int64, or None), and returns ``(spikes uint8,
        the same float32, spikes per neuron (numpy int64) or None, active neuron updates or
        None, per input step (active inputs, Σ fan over them, the MACs among those: all when one
        is not ±1, else 0) or None)``:
        bit for bit what the two steps give, and the counts :mod:`tsslc.backends.counters`
        makes from them (an update is active when the neuron fired or an active input reached
        it through a non-zero weight of ``node``). Its attribute ``counts`` says whether it
        can count (else the caller counts the unfused way)."""
        return None

    def prepare_chain(self, layers: list):
        """The functions of :meth:`prepare_layer` of a whole network of such layers (a chain
        fed a static graded image, nothing else in the graph) as one function for one sample
        — ``chain(x, scale, limit, n_steps, mats)`` → ``(per layer (spikes, spikes per neuron,
        active updates, neurons by spike count, spikes per neuron times a matrix), the input's
        counts, the counters' totals or None)``, None for an input holding a NaN;
        ``chain.matrices(per layer matrix, the input's fan-out, filing)`` makes ``mats`` for
        counting (``filing``: how the call files the totals itself,
        :meth:`tsslc.backends.counters.CountPlan.filing`; then the active updates, input's
        counts and products are left in the totals) — or ``None`` (the default) where the
        target has none."""
        return None

    def run_population(self, params: IntNeuron, current: torch.Tensor, with_float: bool = False):
        """All steps of one population: current (T, B, *shape) (exact integers, int64 or
        float32 below 2^31 in magnitude, as :meth:`prepare_synapse` returns them; a zero time
        stride means the same current every step) → spikes (T, B,
        *shape) uint8 and, with ``with_float``, the same as float32 (else None). Default:
        :meth:`init_state` then :meth:`neuron_step` once per step."""
        T, B = current.shape[:2]
        state = self.init_state(params, tuple(current.shape[2:]), B, current.device)
        out = torch.empty(current.shape, dtype=torch.uint8, device=current.device)
        for t in range(T):
            state, out[t] = self.neuron_step(state, current[t].to(torch.int64), params)
        return out, (out.to(torch.float32) if with_float else None)

    def core_assignment(self, graph) -> dict[str, np.ndarray]:
        """Core index of every neuron of every IntLIF (flattened C,H,W order). Default:
        populations in graph order, each split into consecutive blocks of
        ``neurons_per_core`` on fresh cores; when the graph carries a core mapping
        (``graph.metadata["mapping"]["assignment"]``, tsslc.targets.mapping) that one is used."""
        from tsslc.ir.nodes import IntLIF

        mapping = graph.metadata.get("mapping") or {}
        if isinstance(mapping.get("assignment"), dict):
            return {k: np.asarray(v, dtype=np.int64).reshape(-1) for k, v in mapping["assignment"].items()}
        out: dict[str, np.ndarray] = {}
        next_core = 0
        npc = int(self.geometry.neurons_per_core)
        for name in graph.of_type(IntLIF):
            n = int(np.prod(graph[name].shape))
            cores = next_core + np.arange(n) // npc
            out[name] = cores.astype(np.int64)
            next_core = int(cores[-1]) + 1 if n else next_core
        return out

    def summary(self) -> dict:
        """The target as data (JSON-serialisable) for reports and `tsslc inspect`."""
        return {
            "name": self.name,
            "description": self.description,
            "doc": str(self.doc_path),
            "geometry": {k: getattr(self.geometry, k) for k in self.geometry.__dataclass_fields__},
            "memory": None if self.memory is None else
            {k: getattr(self.memory, k) for k in self.memory.__dataclass_fields__},
            "formats": {k: getattr(self.formats, k) for k in self.formats.__dataclass_fields__},
            "latency_per_hop": self.latency_per_hop,
            "energy": [{k: getattr(f, k) for k in f.__dataclass_fields__} for f in self.energy.figures],
        }

    def __repr__(self) -> str:
        return f"<target {self.name}: {self.description}>"


def rate_spikes(x: torch.Tensor, scale: float, n_steps: int, lim: int = 1) -> torch.Tensor:
    """First-order sigma-delta encoding of time-first ``x`` (T, B, *shape): with
    c[t] = Σ_{τ≤t} x[τ]·scale (float64), the payload at t is ⌊c[t] + ½⌋ − ⌊c[t−1] + ½⌋,
    clipped to ±``lim``, so the payloads up to t sum to round(c[t]) (half up) and a value in
    [0, 1/scale] gives 0/1 spikes. A one-step ``x`` (a static frame) is spread over
    ``n_steps``. int64."""
    if x.shape[0] == 1 and n_steps > 1:
        x = x.expand(n_steps, *x.shape[1:])
    c = torch.cumsum(x.to(torch.float64) * float(scale), dim=0)
    level = torch.floor(c + 0.5)
    prev = torch.cat([torch.zeros_like(level[:1]), level[:-1]], dim=0)
    return (level - prev).clamp(-lim, lim).to(torch.int64)
