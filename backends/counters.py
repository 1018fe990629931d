"""Activity counters from the spikes of any back end (float interpreter, intsim, Lava).

The one counting implementation: every back end's :class:`~tsslc.backends.BackendResult`
carries the :class:`Counters` of a :class:`Tally` over the graph's :class:`CountPlan` (made
once per graph): :func:`count_run` / :func:`count` feed it a finished run's spikes, the
integer simulator feeds it each source's values during its own pass (and the synapses'
currents, which settle most events without the binarised synapse). The report prices them.
Input: an IR graph (float or compiled), the spikes of its LIF populations
``{lif: (T, B, *shape)}`` (0/1, torch or numpy) and the input batch. The counters depend
only on the spikes, the input and the graph's connectivity, so two back ends whose spikes
agree give identical counts (exactly), whatever their arithmetic.

Counting conventions
--------------------
* A **projection** is source → [flatten | dropout | sum-pool] → synapse → LIF, where the
  source is the input node or a LIF population.
* **fan-out** of a source neuron = number of non-zero outgoing synapses (weights ≠ 0) over
  all its projections. Conv: per output position within bounds (zero padding is no
  synapse). A sum-pool on the path (float graphs) is folded in: a spike reaches the
  pooled position's synapses; pooling itself is not counted (as NeuroBench).
* **synaptic operations** of a source = Σ over its spikes of its fan-out. For the input
  layer: Σ over steps of (non-zero input values × fan-out); as NeuroBench, a step whose
  input values are all in {-1, 0, 1} counts ACs, otherwise MACs (static images fed as
  graded values every step count MACs; binary event frames count ACs). Spikes always
  count ACs.
* **dense** synaptic operations: the same with every input and weight taken as non-zero
  (all connections every step).
* **incoming events** of a LIF = synaptic operations that land on it (the same numbers,
  counted at the destination: Σ_in events = Σ_out synops, a check the tests make).
* **neuron updates** = neurons × steps per population; *active* when the neuron received
  at least one synaptic event or spiked that step, *idle* otherwise.
* **cores / hops** (only when a core assignment is given, e.g. ``Target.core_assignment``,
  which reads ``metadata["mapping"]`` when one exists): spikes and synaptic operations per
  core; a spike is sent once to each distinct core that holds one of its non-zero
  synapses (**spike messages**); cores sit on a square mesh in index order
  (``mesh_width`` = ⌈√cores⌉ unless given) and each message travels |Δx| east-west plus
  |Δy| north-south **hops**. Input messages come from off the mesh and are not counted.
* **per-sample averages**: every total divided by the number of samples.

Packed form
-----------
:class:`Counters` keep their totals as one int64 array laid out by the graph's
:class:`CountLayout` (a row of :data:`FIELDS` per layer, then per core), beside each
population's neurons by spike count and spikes per neuron; the per-layer records
(:class:`LayerCounts`) and per-core dicts are read from it. A :class:`Tally` writes into that
layout; every total is a sum of weighted counts (:meth:`CountPlan.filing`), so a compiled pass
that made the counts can file the totals itself (the integer simulator's whole-network call
for one streamed sample), and sums of counters add arrays.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F

from tsslc import fused_cpu
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.layout import batch_slice, time_input
from tsslc.layers import conv_current, dense_current, sum_pool

SOURCES = (N.Input, N.IntInput, N.LIF, N.IntLIF)
SYNAPSES = (N.Dense, N.Conv2d, N.IntDense, N.IntConv2d)
POPULATIONS = (N.LIF, N.IntLIF)
PATH_NODES = (N.Flatten, N.Dropout, N.SumPool2d)


@dataclass
class Projection:
    source: str  # input node or LIF population
    path: list[str]  # flatten / dropout / sum-pool nodes between source and synapse
    synapse: str
    target: str  # LIF population the synapse feeds


def projections(graph: Graph) -> list[Projection]:
    """Every source → synapse → LIF projection of ``graph``, in graph order."""
    out = []
    for syn in graph.of_type(SYNAPSES):
        path, node = [], graph.predecessors(syn)
        while True:
            if len(node) != 1:
                raise TsslcError(f"node '{syn}': counters need exactly one input per synapse, found {node}")
            name = node[0]
            if isinstance(graph[name], SOURCES):
                break
            if not isinstance(graph[name], PATH_NODES):
                raise TsslcError(f"node '{name}' ({graph[name].kind}): counters cannot see through this node")
            path.insert(0, name)
            node = graph.predecessors(name)
        succ = graph.successors(syn)
        if len(succ) != 1 or not isinstance(graph[succ[0]], POPULATIONS):
            raise TsslcError(f"synapse '{syn}' must feed exactly one LIF population, feeds {succ}")
        out.append(Projection(name, path, syn, succ[0]))
    return out


def _mask(node, all_ones: bool) -> torch.Tensor:
    w = torch.tensor(node.weight)
    return torch.ones(w.shape, dtype=torch.float64) if all_ones else (w != 0).to(torch.float64)


def _synapse_fanout(node, in_shape, out_shape, mask: torch.Tensor) -> torch.Tensor:
    """Non-zero outgoing synapses of every input position of one synapse node (in_shape)."""
    if isinstance(node, (N.Dense, N.IntDense)):
        return mask.sum(0)
    s, p = int(node.stride), int(node.padding)
    k_h, k_w = mask.shape[2:]
    op = (in_shape[1] - ((out_shape[1] - 1) * s - 2 * p + k_h), in_shape[2] - ((out_shape[2] - 1) * s - 2 * p + k_w))
    ones = torch.ones((1, *out_shape), dtype=torch.float64)
    return torch.nn.functional.conv_transpose2d(ones, mask, None, s, p, op, int(node.groups))[0]


def _back_through_path(graph: Graph, shapes, path: list[str], f: torch.Tensor, source: str) -> torch.Tensor:
    """Per-position values of a synapse input, mapped back to the source's neurons."""
    for name in reversed(path):
        node = graph[name]
        in_shape = shapes[graph.predecessors(name)[0]]
        if isinstance(node, N.SumPool2d):
            k = int(node.kernel)
            g = torch.zeros(in_shape, dtype=f.dtype)
            g[:, : f.shape[1] * k, : f.shape[2] * k] = f.repeat_interleave(k, 1).repeat_interleave(k, 2)
            f = g
        else:  # flatten, dropout
            f = f.reshape(in_shape)
    return f.reshape(shapes[source])


def _forward(graph: Graph, proj: Projection, act: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Synaptic events per target neuron and step: binarised activity through the path and
    the binarised synapse, with the same kernels as the interpreter."""
    for name in proj.path:
        node = graph[name]
        if isinstance(node, N.SumPool2d):
            act = sum_pool(act, int(node.kernel), 1.0)
        elif isinstance(node, N.Flatten):
            act = act.reshape(act.shape[0], act.shape[1], -1)
    syn = graph[proj.synapse]
    if isinstance(syn, (N.Dense, N.IntDense)):
        return dense_current(act, mask)
    return conv_current(act, mask, int(syn.stride), int(syn.padding), int(syn.groups))


def _np(x) -> np.ndarray:
    """A CPU numpy view (or copy, from another device) of a tensor or array."""
    if isinstance(x, torch.Tensor):
        return x.numpy() if x.device.type == "cpu" and not x.requires_grad else x.detach().cpu().numpy()
    return np.asarray(x)


def _to_tensor(x) -> torch.Tensor:
    return x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


#: the totals every layer keeps, in the order of a row of the packed table
FIELDS = ("spikes", "synops", "macs", "dense_synops", "events_in", "updates_active", "updates_idle",
          "spike_messages", "hops_x", "hops_y")
NF = len(FIELDS)
_COL = {k: i for i, k in enumerate(FIELDS)}


#: the input's neurons by spike count and spikes per neuron (none: it is no population)
_EMPTY = np.zeros(0, np.int64)
_EMPTY.flags.writeable = False


class _PerNeuron:
    """A per-neuron count field: kept as it is given (the simulator's pass gives a numpy
    array, whose conversion to Python numbers costs ~50 µs on 8,640 neurons, more than a
    streaming step's other counts) and read as a list of ints, made on the first read."""

    def __set_name__(self, owner, name):
        self.key = "_" + name

    def __get__(self, obj, owner=None):
        if obj is None:
            return ()  # the dataclass' default (an empty list once set)
        v = obj.__dict__[self.key]
        if isinstance(v, np.ndarray):
            v = obj.__dict__[self.key] = v.tolist()
        return v

    def __set__(self, obj, value):
        obj.__dict__[self.key] = _per_neuron(value)


def _per_neuron(value):
    """Per-neuron counts as kept: a 1-d integer array as it is, anything else a list."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or value.dtype.kind not in "iu":
            raise TsslcError(f"per-neuron counts must be a 1-d integer array, got {value.dtype} {value.shape}")
        return value
    return value if isinstance(value, list) else list(value)


def _add_per_neuron(x, y):
    """The element-wise sum of two per-neuron counts as kept (arrays add as arrays)."""
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.shape == y.shape:
        return x.astype(np.int64) + y
    x = x.tolist() if isinstance(x, np.ndarray) else x
    y = y.tolist() if isinstance(y, np.ndarray) else y
    return [p + q for p, q in zip(x, y)]


@dataclass(frozen=True)
class LayerCounts:
    """Totals over all samples of one source (input node or LIF population), as
    :attr:`Counters.layers` reads them (a record made from the counters' table: read-only)."""

    name: str
    kind: str  # "input" | "lif"
    n_neurons: int
    spikes: int = 0  # input: number of non-zero input values (all steps)
    synops: int = 0  # outgoing synaptic operations (effective)
    macs: int = 0  # the part of synops counted as MACs (graded input steps)
    dense_synops: int = 0
    events_in: int = 0  # synaptic events landing on this population
    updates_active: int = 0
    updates_idle: int = 0
    spike_messages: int = 0
    hops_x: int = 0
    hops_y: int = 0
    count_hist: list[int] = field(default_factory=list)  # neurons×samples firing k = 0..T times
    neuron_spikes: list[int] = _PerNeuron()  # total spikes per neuron (a list when read)

    @property
    def acs(self) -> int:
        return self.synops - self.macs


@dataclass(frozen=True)
class CountLayout:
    """What a graph's counters hold and where the packed array keeps it: one row of
    :data:`FIELDS` per layer (the input first, then the populations in graph order), then
    the spikes of each core in ``spike_cores`` and the synaptic operations of each core in
    ``synop_cores`` (both None without a core assignment)."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    n_neurons: tuple[int, ...]
    spike_cores: tuple[int, ...] | None = None
    synop_cores: tuple[int, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "rows", {n: i * NF for i, n in enumerate(self.names)})  # layer -> its row's start

    @property
    def size(self) -> int:
        return len(self.names) * NF + len(self.spike_cores or ()) + len(self.synop_cores or ())

    def at(self, layer: str, key: str) -> int:
        """The flat index of ``layer``'s total ``key``."""
        return self.rows[layer] + _COL[key]

    def spike_core_at(self, core: int) -> int:
        return len(self.names) * NF + self.spike_cores.index(core)

    def synop_core_at(self, core: int) -> int:
        return len(self.names) * NF + len(self.spike_cores or ()) + self.synop_cores.index(core)


class Counters:
    """The counts of one or more batches, kept packed: :attr:`packed` (int64, as
    :class:`CountLayout` places it: a row of :data:`FIELDS` per layer, then the per-core
    totals), each layer's neurons by spike count and its spikes per neuron (arrays, or
    lists); :attr:`layers`, :attr:`core_spikes` and :attr:`core_synops` read them as
    records and dicts (made on the first read). Sums (``+``), totals and the per-sample
    averages work on the arrays. ``Counters(n_samples, n_steps, layers, core_spikes,
    core_synops, mesh_width)`` packs records (``layers``: name → :class:`LayerCounts`)."""

    def __init__(self, n_samples: int, n_steps: int, layers: dict, core_spikes: dict | None = None,
                 core_synops: dict | None = None, mesh_width: int | None = None):
        ls = list(layers.values())
        layout = CountLayout(tuple(layers), tuple(l.kind for l in ls), tuple(int(l.n_neurons) for l in ls),
                             None if core_spikes is None else tuple(sorted(int(k) for k in core_spikes)),
                             None if core_synops is None else tuple(sorted(int(k) for k in core_synops)))
        flat = [int(getattr(l, k)) for l in ls for k in FIELDS]
        for cores in (core_spikes, core_synops):
            if cores is not None:
                cores = {int(k): v for k, v in cores.items()}
                flat += [int(cores[k]) for k in sorted(cores)]
        self._set(int(n_samples), int(n_steps), layout, np.array(flat, np.int64),
                  [np.asarray(l.count_hist, np.int64).reshape(-1) for l in ls],
                  [_per_neuron(l.__dict__.get("_neuron_spikes", l.neuron_spikes)) for l in ls], mesh_width)

    def _set(self, n_samples, n_steps, layout, packed, hist, neuron_spikes, mesh_width):
        self.n_samples, self.n_steps, self.layout, self.mesh_width = n_samples, n_steps, layout, mesh_width
        self.packed = packed
        self._hist, self._ns = hist, neuron_spikes
        self._read: dict = {}

    @classmethod
    def packed_as(cls, n_samples: int, n_steps: int, layout: CountLayout, packed: np.ndarray, hist: list,
                  neuron_spikes: list, mesh_width: int | None = None) -> "Counters":
        """Counters from their packed parts as they are (no copy): ``packed`` int64
        (``layout.size``), per layer (layout order) its neurons by spike count (an int array,
        empty for the input) and its spikes per neuron (an int array or list)."""
        c = object.__new__(cls)
        c._set(n_samples, n_steps, layout, packed, hist, neuron_spikes, mesh_width)
        return c

    @property
    def table(self) -> np.ndarray:
        """The totals, one row of :data:`FIELDS` per layer (layout order)."""
        return self.packed[: len(self.layout.names) * NF].reshape(-1, NF)

    @property
    def layers(self) -> dict[str, LayerCounts]:
        got = self._read.get("layers")
        if got is None:
            lay = self.layout
            rows = self.table.tolist()
            got = self._read["layers"] = {
                n: LayerCounts(n, k, c, *row, count_hist=np.asarray(h).tolist(), neuron_spikes=ns)
                for n, k, c, row, h, ns in zip(lay.names, lay.kinds, lay.n_neurons, rows, self._hist, self._ns)}
        return got

    def _cores(self, which: int) -> dict[int, int] | None:
        lay = self.layout
        keys = lay.synop_cores if which else lay.spike_cores
        if keys is None:
            return None
        got = self._read.get(which)
        if got is None:
            start = len(lay.names) * NF + (len(lay.spike_cores or ()) if which else 0)
            got = self._read[which] = dict(zip(keys, self.packed[start:start + len(keys)].tolist()))
        return got

    @property
    def core_spikes(self) -> dict[int, int] | None:
        """Spikes per core (with a core assignment, else None)."""
        return self._cores(0)

    @property
    def core_synops(self) -> dict[int, int] | None:
        """Synaptic operations per source core (with a core assignment, else None)."""
        return self._cores(1)

    # totals ------------------------------------------------------------------------------
    def total(self, key: str, kind: str | None = None) -> int:
        lay = self.layout
        rows = [i for i, k in enumerate(lay.kinds) if kind is None or k == kind]
        if key == "n_neurons":
            return int(sum(lay.n_neurons[i] for i in rows))
        t = self.table[rows]
        if key == "acs":
            return int(t[:, _COL["synops"]].sum() - t[:, _COL["macs"]].sum())
        return int(t[:, _COL[key]].sum())

    @property
    def populations(self) -> list[str]:
        return [n for n, k in zip(self.layout.names, self.layout.kinds) if k == "lif"]

    def totals(self) -> dict[str, int]:
        s = self.table.sum(0).tolist()
        t = {k: s[_COL[k]] for k in ("synops", "macs")}
        t["acs"] = t["synops"] - t["macs"]
        t.update({k: s[_COL[k]] for k in ("dense_synops", "events_in", "updates_active", "updates_idle",
                                          "spike_messages", "hops_x", "hops_y")})
        t["spikes"] = self.total("spikes", "lif")
        t["neurons"] = self.total("n_neurons", "lif")
        return t

    def per_sample(self) -> dict[str, float]:
        """Every total divided by the number of samples."""
        return {k: v / max(self.n_samples, 1) for k, v in self.totals().items()}

    def _index(self, layer: str) -> int:
        try:
            return self.layout.names.index(layer)
        except ValueError:
            raise TsslcError(f"no layer '{layer}' in the counters (have {list(self.layout.names)})") from None

    def spike_count_fractions(self, layer: str) -> np.ndarray:
        """Share of (neuron, sample) pairs that fire 0..T times (the paper's Fig. 7)."""
        h = np.asarray(self._hist[self._index(layer)], dtype=np.float64)
        return h / max(h.sum(), 1.0)

    def firing_rates(self, layer: str) -> np.ndarray:
        """Firing rate of every neuron: spikes per step, averaged over samples (Fig. 8)."""
        return np.asarray(self._ns[self._index(layer)], np.float64) / max(self.n_samples * self.n_steps, 1)

    # combining ---------------------------------------------------------------------------
    def __add__(self, other: "Counters") -> "Counters":
        if not isinstance(other, Counters):
            return NotImplemented
        a, b = self.layout, other.layout
        if self.n_steps != other.n_steps or a.names != b.names or a.kinds != b.kinds:
            raise TsslcError("cannot add counters of different networks or step counts")
        hist = [np.add(x, y, dtype=np.int64) if len(x) and len(y) else np.asarray(x if len(x) else y, np.int64)
                for x, y in zip(self._hist, other._hist)]
        ns = [_add_per_neuron(x, y) for x, y in zip(self._ns, other._ns)]
        n = self.n_samples + other.n_samples
        if a == b:  # the same layout (counters of one graph): the arrays add
            return Counters.packed_as(n, self.n_steps, a, self.packed + other.packed, hist, ns, self.mesh_width)

        def add_dicts(x, y):
            if x is None or y is None:
                return None
            return {k: x.get(k, 0) + y.get(k, 0) for k in sorted(set(x) | set(y))}

        t = self.table + other.table
        c = Counters(n, self.n_steps, {nm: LayerCounts(nm, k, cnt, *row) for nm, k, cnt, row in
                                       zip(a.names, a.kinds, a.n_neurons, t.tolist())},
                     add_dicts(self.core_spikes, other.core_spikes), add_dicts(self.core_synops, other.core_synops),
                     self.mesh_width)
        c._hist, c._ns = hist, ns
        return c

    def __eq__(self, other) -> bool:
        return isinstance(other, Counters) and self.to_dict() == other.to_dict()

    __hash__ = None

    def __repr__(self) -> str:
        return (f"Counters(n_samples={self.n_samples}, n_steps={self.n_steps}, layers={list(self.layout.names)}, "
                f"totals={self.totals()})")

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_read"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._read = {}

    def to_dict(self) -> dict:
        """JSON-serialisable: conventions, totals, per-sample averages, per layer, per core."""
        cs, cy = self.core_spikes, self.core_synops
        return {
            "n_samples": self.n_samples,
            "n_steps": self.n_steps,
            "totals": self.totals(),
            "per_sample": self.per_sample(),
            "layers": {n: {**{f.name: getattr(l, f.name) for f in fields(l)}, "acs": l.acs}
                       for n, l in self.layers.items()},
            "core_spikes": None if cs is None else {str(k): v for k, v in cs.items()},
            "core_synops": None if cy is None else {str(k): v for k, v in cy.items()},
            "mesh_width": self.mesh_width,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Counters":
        layers = {}
        for n, l in d["layers"].items():
            l = dict(l)
            l.pop("acs", None)
            layers[n] = LayerCounts(**l)
        cs, cy = d.get("core_spikes"), d.get("core_synops")
        return cls(int(d["n_samples"]), int(d["n_steps"]), layers,
                   None if cs is None else {int(k): int(v) for k, v in cs.items()},
                   None if cy is None else {int(k): int(v) for k, v in cy.items()}, d.get("mesh_width"))


def input_values(graph: Graph, x, n_steps: int) -> torch.Tensor:
    """The values the input node emits, (T, B, *shape): the raw input p[t] for a float graph
    (what the first synapse multiplies, before the PSC filter), the integer payloads of the
    target's :meth:`Target.input_spikes` for a compiled one."""
    p = time_input(graph, x, n_steps)
    node = graph[graph.input_name]
    if isinstance(node, N.IntInput):
        from tsslc.targets.base import Target

        # input_spikes is the target-independent encoder every target inherits
        return Target.input_spikes(None, node, p)
    return p


class CountPlan:
    """What counting needs from a graph, made once: shapes, every projection's fan-out per
    source neuron (non-zero and all synapses), its binarised weights, and with a core
    assignment the cores, spike messages and hops per source neuron. :meth:`tally` counts
    one batch with it; :func:`count` and the integer simulator (which tallies during its own
    pass) both count through it, so their counters are the same numbers."""

    def __init__(self, graph: Graph, cores: dict[str, np.ndarray] | None = None, mesh_width: int | None = None):
        self.graph = graph
        self.shapes = shapes = graph.validate()
        self.pops = graph.of_type(POPULATIONS)
        self.inp = graph.input_name
        self.n = {name: math.prod(shapes[name]) for name in [self.inp, *self.pops]}
        self.cores: dict[str, np.ndarray] | None = None
        self.mesh_width: int | None = None
        if cores is not None:
            missing = [p for p in self.pops if p not in cores]
            if missing:
                raise TsslcError(f"the core assignment has no entry for population(s) {missing}")
            self.cores = {p: np.asarray(cores[p]).reshape(-1) for p in self.pops}
            self.n_cores = int(max(int(np.max(self.cores[p])) for p in self.pops)) + 1
            self.unique_cores = {p: np.unique(self.cores[p]) for p in self.pops}
            self.unique_core_list = {p: [int(c) for c in u] for p, u in self.unique_cores.items()}
            self.mesh_width = int(mesh_width or math.ceil(math.sqrt(self.n_cores)))
        self.by_synapse: dict[str, dict] = {}
        self.out_of: dict[str, list[dict]] = {}
        self._tally_matrix: dict = {}
        for proj in projections(graph):
            syn = graph[proj.synapse]
            in_shape = shapes[graph.predecessors(proj.synapse)[0]]
            mask, ones = _mask(syn, False), _mask(syn, True)
            fan = _back_through_path(graph, shapes, proj.path,
                                     _synapse_fanout(syn, in_shape, shapes[proj.synapse], mask), proj.source).reshape(-1)
            fan_dense = _back_through_path(graph, shapes, proj.path,
                                           _synapse_fanout(syn, in_shape, shapes[proj.synapse], ones), proj.source).reshape(-1)
            m32 = mask.to(torch.float32)
            pr = {"proj": proj, "syn": syn, "in_shape": in_shape, "fan": fan, "fan_np": fan.numpy(),
                  "fan_dense": float(fan_dense.sum()), "mask": m32, "on": {},
                  "mask_np_t": np.ascontiguousarray(m32.numpy().T) if m32.dim() == 2 else None,
                  # most zero weights of a target neuron (dense)
                  "zmax": float((m32.shape[1] - m32.sum(1)).max()) if m32.dim() == 2 and m32.numel() else 0.0,
                  # a path of reshapes only: the synapse sees the source's values as they are
                  "plain": all(isinstance(graph[n], (N.Flatten, N.Dropout)) for n in proj.path)}
            if self.cores is not None and proj.source != self.inp:
                src_core = self.cores[proj.source]
                msgs, hx, hy = _messages_and_hops(graph, proj, shapes, in_shape, mask, src_core,
                                                  self.cores[proj.target], self.mesh_width)
                pr.update(src_core=src_core, src_cores=np.unique(src_core), msgs=msgs, hx=hx, hy=hy,
                          src_core_list=[int(c) for c in np.unique(src_core)],
                          msgs_hops=np.ascontiguousarray(np.stack([msgs, hx, hy], 1), dtype=np.float64))
            self.by_synapse[proj.synapse] = pr
            self.out_of.setdefault(proj.source, []).append(pr)
        names = (self.inp, *self.pops)
        spike_cores = synop_cores = None
        if self.cores is not None:
            spike_cores = tuple(sorted({c for p in self.pops for c in self.unique_core_list[p]}))
            synop_cores = tuple(sorted({c for pr in self.by_synapse.values() for c in pr.get("src_core_list", ())}))
        #: where the counters' packed array keeps each total (the Tally writes into it)
        self.layout = CountLayout(names, ("input",) + ("lif",) * len(self.pops), tuple(self.n[n] for n in names),
                                  spike_cores, synop_cores)
        self._columns: dict = {}
        self._dests: dict = {}
        self._input_filing: dict = {}

    def columns(self, name: str) -> list[tuple[np.ndarray, tuple[int, ...]]]:
        """The per-neuron weights of population ``name``'s outgoing tallies, each with the
        totals it adds to (flat indices of :attr:`layout`): core spikes, one per core it uses
        (its neurons on that core); per outgoing projection the fan-out (its synaptic
        operations and the target's incoming events), the fan-out on each source core (that
        core's synaptic operations), the spike messages, hops east-west and north-south. A
        population's spikes per neuron times a weight is that total's share."""
        cols = self._columns.get(name)
        if cols is None:
            lay, cols = self.layout, []
            if self.cores is not None:
                cols += [(self.cores[name] == core, (lay.spike_core_at(core),)) for core in self.unique_core_list[name]]
            for pr in self.out_of.get(name, []):
                cols.append((pr["fan_np"], (lay.at(name, "synops"), lay.at(pr["proj"].target, "events_in"))))
                if self.cores is not None:
                    cols += [(pr["fan_np"] * (pr["src_core"] == core), (lay.synop_core_at(core),))
                             for core in pr["src_core_list"]]
                    cols += [(pr[k], (lay.at(name, f),)) for k, f in
                             (("msgs", "spike_messages"), ("hx", "hops_x"), ("hy", "hops_y"))]
            self._columns[name] = cols
        return cols

    def column_dests(self, name: str) -> list[tuple[int, ...]]:
        """The totals each column of :meth:`tally_matrix` adds to (:meth:`columns`)."""
        got = self._dests.get(name)
        if got is None:
            got = self._dests[name] = [d for _, d in self.columns(name)]
        return got

    def filing(self, name: str, T: int, B: int) -> list[tuple[tuple, int, int]]:
        """How population ``name``'s counts of one batch (T steps, B samples) make its
        totals, as ``(source, flat index, weight)``: each adds source × weight to that total.
        Sources: ``("vals", c)`` column ``c`` of its spikes per neuron times
        :meth:`tally_matrix`, ``("hist", k)`` its neurons firing k times, ``("active",)`` its
        active updates, ``("one",)`` 1 (the totals fixed by T and B). The input's is
        :meth:`input_filing`. The same rules as :meth:`Tally.population`, for a compiled pass
        that files them itself (:meth:`Tally.filed`)."""
        lay = self.layout
        out = [(("vals", c), i, 1) for c, dests in enumerate(self.column_dests(name)) for i in dests]
        out += [(("hist", k), lay.at(name, "spikes"), k) for k in range(1, T + 1)]
        out += [(("active",), lay.at(name, "updates_active"), 1), (("active",), lay.at(name, "updates_idle"), -1),
                (("one",), lay.at(name, "updates_idle"), T * B * self.n[name])]
        out += [(("one",), lay.at(name, "dense_synops"), int(T * B * pr["fan_dense"]))
                for pr in self.out_of.get(name, [])]
        return out

    def input_filing(self, T: int, reps: int) -> list[tuple[tuple, int, int]]:
        """As :meth:`filing` for the input of one sample counted by its one synapse
        (:meth:`Tally.input_counts`): sources ``("in", 0 | 1 | 2)`` the active inputs, synaptic
        operations and MACs summed over its input steps, each standing for ``reps`` steps."""
        got = self._input_filing.get((T, reps))
        if got is not None:
            return got
        lay, inp = self.layout, self.inp
        pr = self.out_of[inp][0]
        got = self._input_filing[(T, reps)] = [
            (("in", 0), lay.at(inp, "spikes"), reps), (("in", 1), lay.at(inp, "synops"), reps),
            (("in", 1), lay.at(pr["proj"].target, "events_in"), reps), (("in", 2), lay.at(inp, "macs"), reps),
            (("one",), lay.at(inp, "dense_synops"), int(T * pr["fan_dense"]))]
        return got

    def tally_matrix(self, name: str) -> np.ndarray | None:
        """The per-neuron weights of population ``name``'s tallies as the columns of one
        float64 matrix (core spikes: one column per core it uses; per outgoing projection:
        the fan-out, the fan-out on each source core, messages, hops east-west and
        north-south), so that one product of the spikes per neuron gives them all (exact:
        integers below 2^53); None when it would be large (then they are made one by one)."""
        hit = self._tally_matrix.get(name, False)
        if hit is not False:
            return hit
        cols = [c for c, _ in self.columns(name)]
        M = None
        if cols and len(cols) * self.n[name] <= TALLY_MATRIX_LIMIT:
            M = np.ascontiguousarray(np.stack([np.asarray(c, np.float64) for c in cols], 1))
        self._tally_matrix[name] = M
        return M

    def input_fans(self) -> np.ndarray:
        """The fan-out of every input for each of the input's projections, ``(projections,
        inputs)`` float64 (:func:`tsslc.fused_cpu.input_tally`)."""
        M = self._tally_matrix.get(("input",))
        if M is None:
            fans = [pr["fan_np"] for pr in self.out_of.get(self.inp, [])]
            M = np.ascontiguousarray(np.stack(fans) if fans else np.zeros((0, self.n[self.inp])), np.float64)
            self._tally_matrix[("input",)] = M
        return M

    def fan_int64(self, synapse: str) -> np.ndarray:
        """The fan-out per source neuron of ``synapse``'s projection as contiguous int64."""
        pr = self.by_synapse[synapse]
        f = pr.get("fan_i64")
        if f is None:
            f = pr["fan_i64"] = np.ascontiguousarray(pr["fan_np"], dtype=np.int64)
        return f

    def tally(self, n_steps: int, batch: int, mac_chunk: int | None = None) -> "Tally":
        return Tally(self, n_steps, batch, mac_chunk)

    def on(self, pr: dict, device) -> dict:
        """The projection's tensors on ``device``: the binarised weights and the zero
        weights of each output channel / neuron."""
        d = pr["on"].get(device)
        if d is None:
            m = pr["mask"]
            zeros = m.shape[1] * (math.prod(m.shape[2:]) if m.dim() > 2 else 1) - m.reshape(m.shape[0], -1).sum(1)
            d = pr["on"][device] = {"mask": m.to(device), "zeros": zeros.to(device)}  # zero weights per channel
        return d


#: most elements of a population's tally matrix (:meth:`CountPlan.tally_matrix`)
TALLY_MATRIX_LIMIT = 1 << 20

#: most multiply-adds of a dense projection's binarised synapse on every step, where that one
#: product costs less than settling the open steps apart (a few small operations each)
SMALL_DENSE = 1 << 17

#: a dense projection's events where every step of every sample has more active inputs than
#: any target neuron has zero weights: an event at every neuron and step
_EVERY = np.ones((1, 1, 1), np.bool_)
_EVERY.flags.writeable = False

#: most patch elements gathered to settle the events of positions whose current is zero;
#: beyond it the binarised synapse runs on the whole batch
GATHER_LIMIT = 1 << 22

#: conv events settled by the compiled kernel on the CPU (:func:`tsslc.fused_cpu.conv_events`,
#: the same rules as the torch code, which runs elsewhere, without the kernel, or with this off)
CONV_EVENTS_KERNEL = True


class Tally:
    """The counts of one batch (T steps, B samples), fed in graph order: :meth:`input` with
    the input node's values, :meth:`population` with each LIF population's spikes, and
    :meth:`events` for each synapse once its source has been fed (with the synapse's
    current when the caller has it). ``mac_chunk``: decide which input steps count MACs per
    group of that many samples (what :func:`count_run`'s chunks do), else over the batch.
    The totals go straight into the packed form of :class:`Counters` (the plan's
    :attr:`CountPlan.layout`); a compiled pass that made them all gives them at once
    (:meth:`filed`)."""

    def __init__(self, plan: CountPlan, n_steps: int, batch: int, mac_chunk: int | None = None):
        self.plan, self.T, self.B, self.mac_chunk = plan, int(n_steps), int(batch), mac_chunk
        #: the totals, flat as :attr:`CountPlan.layout` places them
        self.flat = [0] * plan.layout.size
        self._rows = plan.layout.rows
        self.hist: dict[str, list | np.ndarray] = {}  # population -> neurons by spike count 0..T
        self.ns: dict = {}  # population -> spikes per neuron (an int array or list)
        self.fed: set[str] = set()  # the sources counted
        self._filed = None  # (packed, hist, ns) from a compiled pass (filed)
        #: target -> [(base, view, extra)]: events at base (a bool array broadcasting to the
        #: target's spikes viewed as ``view``) and at the flat positions ``extra`` (not in base)
        self.any_event: dict[str, list] = {}
        self.act: dict[str, tuple[torch.Tensor, bool]] = {}  # source -> (0/1 float32 activity, static)
        self.spikes_u8: dict[str, torch.Tensor] = {}  # population -> its spikes as they came, 0/1 bytes
        self.n_active: dict[str, np.ndarray] = {}  # source -> its active values per (step, sample), when made

    def _add(self, layer: str, key: str, value: int) -> None:
        self.flat[self._rows[layer] + _COL[key]] += value

    def input(self, values: torch.Tensor, static: bool = False) -> None:
        """The input node's values (T, B, *shape); ``static``: the same at every step (only
        ``values[:1]`` is read)."""
        plan, T, B = self.plan, self.T, self.B
        inp = plan.inp
        v = values[:1] if static else values
        vn = _np(v)
        reps = T if static else 1
        act = vn != 0
        outs = plan.out_of.get(inp, [])
        Tn = vn.shape[0]
        self.fed.add(inp)
        self.act[inp] = (act, static, values.device)
        # per input step and sample: its active values, whether it counts MACs (NeuroBench: a
        # value not in {-1, 0, 1}) and each projection's synaptic operations
        got = fused_cpu.input_tally(vn, plan.input_fans(), Tn * B) if outs else None
        if got is not None and Tn * B == 1:  # one step of one sample (a static one, streaming)
            (nnz, graded), = got[0].tolist()
            self._add(inp, "spikes", nnz * reps)
            for pr, ops in zip(outs, got[1][0].tolist()):
                ops = int(ops)
                self._add(inp, "synops", ops * reps)
                self._add(inp, "dense_synops", int(T * B * pr["fan_dense"]))
                self._add(inp, "macs", (ops if graded else 0) * reps)
                self._add(pr["proj"].target, "events_in", ops * reps)
            return
        if got is not None:
            counts, sums = got
            self._add(inp, "spikes", int(counts[:, 0].sum()) * reps)
            self.n_active[inp] = counts[:, 0].reshape(Tn, B)
            graded = counts[:, 1].reshape(Tn, B) != 0
        else:  # the same without the kernel
            self._add(inp, "spikes", int(np.count_nonzero(act)) * reps)
            if vn.dtype.kind in "iu":
                graded = np.abs(vn).reshape(Tn, B, -1).max(2, initial=0) > 1  # (T | 1, B)
            else:
                graded = (act & (np.abs(vn) != 1)).reshape(Tn, B, -1).any(2)
            a64 = act.reshape(Tn * B, -1).astype(np.float64)
        chunk = self.mac_chunk or max(B, 1)
        for i, pr in enumerate(outs):
            # synops per (step, sample) (exact sums of integers, whatever the order)
            ops_tb = (sums[:, i] if got is not None else a64 @ pr["fan_np"]).reshape(Tn, B)
            if B <= chunk:  # one group of samples
                ops_t = ops_tb.sum(1)
                ops = int(ops_t.sum()) * reps
                macs = int(ops_t[graded.any(1)].sum())
            else:
                ops = int(ops_tb.sum()) * reps
                macs = 0
                for j in range(0, B, chunk):
                    g = graded[:, j:j + chunk].any(1)
                    macs += int(ops_tb[:, j:j + chunk].sum(1)[g].sum())
            self._add(inp, "synops", ops)
            self._add(inp, "dense_synops", int(T * B * pr["fan_dense"]))
            self._add(inp, "macs", macs * reps)
            self._add(pr["proj"].target, "events_in", ops)

    def input_counts(self, stats, static: bool) -> None:
        """One sample's input counted by the synapse it alone feeds, in the synapse's own pass
        (:meth:`tsslc.targets.base.Target.prepare_layer`): ``stats`` ``(T_in, 3)`` (an array
        or a list of rows) per input step the active inputs, Σ fan-out over them and the MACs
        among those (all of them when one active input is not ±1, else 0); ``static``: one
        step standing for all T. What :meth:`input` makes from the values, filed by
        :meth:`CountPlan.input_filing`."""
        plan = self.plan
        if self.B != 1 or len(plan.out_of.get(plan.inp, [])) != 1:
            raise TsslcError("the input's counts from its synapse need one sample and one projection")
        rows = stats if isinstance(stats, list) else stats.tolist()
        sums = [sum(r[j] for r in rows) for j in range(3)]
        flat = self.flat
        for src, i, w in plan.input_filing(self.T, self.T if static else 1):
            flat[i] += w * (sums[src[1]] if src[0] == "in" else 1)
        self.fed.add(plan.inp)

    def filed(self, packed: np.ndarray, hist: list, ns: list) -> None:
        """Every count of one sample made and filed by a compiled pass (the plan's
        :meth:`CountPlan.filing` and :meth:`CountPlan.input_filing` applied there):
        ``packed`` int64 as :attr:`CountPlan.layout` places the totals, and per population
        (in :attr:`CountPlan.pops` order) its neurons by spike count and spikes per neuron
        (int arrays)."""
        if self.B != 1 or self.fed or len(hist) != len(self.plan.pops) or len(ns) != len(hist):
            raise TsslcError("filed counts stand for a whole sample: every population's, nothing else fed")
        self._filed = (packed, [_EMPTY, *hist], [_EMPTY, *ns])

    def population(self, name: str, spikes: torch.Tensor, as_float: torch.Tensor | None = None, *,
                   per_neuron=None, active: int | None = None, hist: list | None = None,
                   vals: list | None = None) -> None:
        """Spikes (T, B, *shape) of population ``name`` (0/1, any dtype; ``as_float``: the same
        as float32, when the caller has it), after :meth:`events` of every synapse into it.
        One sample (B = 1) whose counts the caller made in the same pass
        (:meth:`tsslc.targets.base.Target.prepare_layer`): ``per_neuron`` its spikes per
        neuron (an int array or list) and ``active`` its active updates, given instead of :meth:`events` of the
        synapse into it; and, when made there too, ``hist`` its neurons by spike count 0..T
        and ``vals`` its spikes per neuron times :meth:`CountPlan.tally_matrix`."""
        plan, T, B = self.plan, self.T, self.B
        n = plan.n[name]
        if per_neuron is None and B == 1:  # one sample (streaming): every count in one compiled pass
            got = self._one_sample(name, spikes, n)
            if got is not None:
                per_neuron, hist, active, vals = got
        if per_neuron is not None:
            if B != 1 or active is None or self.any_event.get(name):
                raise TsslcError(f"population '{name}': counts made elsewhere need one sample, the active "
                                 "updates and no events fed")
            ns = per_neuron if isinstance(per_neuron, list) else _np(per_neuron)
            if hist is None:
                hist = np.bincount(ns, minlength=T + 1)[: T + 1].tolist()
        else:
            fired8 = _np(spikes)
            if fired8.dtype != np.uint8:
                fired8 = (fired8 != 0).astype(np.uint8)
            fired = fired8.view(np.bool_)
            # spikes per (sample, neuron): step by step in bytes (T < 256) or int32
            small = T < 256
            if B == 1:  # one sample (streaming): the spikes per neuron are its totals
                per_neuron = ns = fired8.reshape(T, -1).sum(0, dtype=np.int64)
            else:
                if fired8.size < 1 << 16:
                    per_neuron = fired8.reshape(T, B, -1).sum(0, dtype=np.int32)
                else:
                    per_neuron = fired8[0].reshape(B, -1).astype(np.uint8 if small else np.int32)
                    for t in range(1, T):
                        per_neuron += fired8[t].reshape(B, -1)
                ns = per_neuron.sum(0, dtype=np.int64)
            if small and T <= 32 and per_neuron.size > 1 << 15:  # passes over bytes beat bincount's conversion
                flat = per_neuron.reshape(-1)
                hist = [int(np.count_nonzero(flat == k)) for k in range(T + 1)]
            else:
                hist = np.bincount(per_neuron.reshape(-1), minlength=T + 1)[: T + 1].tolist()
            active = self._active(self.any_event.pop(name, []), fired)
        # every (sample, neuron) firing k times gave k spikes
        self._add(name, "spikes", sum(map(operator.mul, hist, range(T + 1))))
        self._add(name, "updates_active", active)
        self._add(name, "updates_idle", T * B * n - active)
        self.hist[name], self.ns[name] = hist, ns
        self.fed.add(name)
        self._outgoing(name, ns, spikes, as_float, vals)

    def _event_array(self, parts: list, n: int):
        """The events fed for a population of ``n`` neurons of one sample as one array
        ``(1 | T, n)`` bool (one row: the same every step): ``(True, array)``, ``(True, None)``
        when none were fed, ``(False, None)`` when they take :meth:`_active` (several
        synapses, positions listed apart)."""
        if not parts:
            return True, None
        if len(parts) == 1 and parts[0][2] is None:
            base = parts[0][0]
            if base is _EVERY:
                return True, np.ones((1, n), np.bool_)
            if math.prod(base.shape[1:]) == n and base.shape[0] in (1, self.T) and base.dtype == np.bool_:
                return True, base.reshape(base.shape[0], n)
        return False, None

    def _one_sample(self, name: str, spikes, n: int):
        """One sample's spikes per neuron, neurons by spike count, active updates and product
        with the tally matrix (:func:`tsslc.fused_cpu.spike_tally`), taking the events fed
        for it when they are one per-neuron array (a conv's, a small dense one's), else
        counting the active updates as :meth:`_active` does; None without the kernel."""
        T = self.T
        fired = _np(spikes)
        if fired.dtype not in (np.uint8, np.bool_):
            fired = fired != 0
        fired = fired.reshape(T, n)
        parts = self.any_event.get(name, [])
        ok, ev = self._event_array(parts, n)
        active = None if ok else self._active(parts, fired.reshape(T, 1, n))
        got = fused_cpu.spike_tally(fired, ev, self.plan.tally_matrix(name))
        if got is None:
            return None
        self.any_event.pop(name, None)
        ns, hist, act, vals = got
        return ns, hist, act if active is None else active, vals

    def _outgoing(self, name: str, ns, spikes, as_float, vals=None) -> None:
        """A population's outgoing tallies from its spikes per neuron ``ns`` (an array, or a
        list; synops, the targets' incoming events, per core, messages, hops; ``vals``: ``ns``
        times its :meth:`CountPlan.tally_matrix` when the caller made it), and its activity
        kept for the :meth:`events` of its synapses."""
        plan, T, B = self.plan, self.T, self.B
        lay, flat = plan.layout, self.flat
        outs = plan.out_of.get(name, [])
        for pr in outs:
            self._add(name, "dense_synops", int(T * B * pr["fan_dense"]))
        M = plan.tally_matrix(name)
        if M is not None:  # every per-neuron weighted sum below in one product
            if vals is None and isinstance(ns, np.ndarray) and ns.dtype.kind in "iu":
                vals = fused_cpu.weighted_sums(ns, M)  # (one thread: no BLAS threads to wake)
            if vals is None:
                vals = (np.asarray(ns, np.float64) @ M).tolist()
            for v, dests in zip(vals, plan.column_dests(name)):
                v = int(v)
                for i in dests:
                    flat[i] += v
            outs = []  # done
        else:
            ns = np.asarray(ns, np.float64)
        if M is None and plan.cores is not None:
            sp = np.bincount(plan.cores[name], weights=ns, minlength=plan.n_cores).tolist()
            for core in plan.unique_core_list[name]:
                flat[lay.spike_core_at(core)] += int(sp[core])
        for pr in outs:
            if plan.cores is None:  # one dot product (exact: integers below 2^53, whatever the order)
                ops = int(ns @ pr["fan_np"])
            else:
                ops_per_neuron = ns * pr["fan_np"]
                ops = int(ops_per_neuron.sum())
            self._add(name, "synops", ops)
            self._add(pr["proj"].target, "events_in", ops)
            if plan.cores is not None:
                per_core = np.bincount(pr["src_core"], weights=ops_per_neuron, minlength=plan.n_cores).tolist()
                for core in pr["src_core_list"]:
                    flat[lay.synop_core_at(core)] += int(per_core[core])
                # messages and hops in one product (exact: integers below 2^53, whatever the order)
                m, hx, hy = (ns @ pr["msgs_hops"]).tolist()
                self._add(name, "spike_messages", int(m))
                self._add(name, "hops_x", int(hx))
                self._add(name, "hops_y", int(hy))
        if name in plan.out_of:  # made float32 by events() if need be
            self.act[name] = (as_float if as_float is not None else spikes, False)
            if isinstance(spikes, torch.Tensor) and spikes.dtype in (torch.uint8, torch.bool):
                self.spikes_u8[name] = spikes

    def events(self, synapse: str, current: torch.Tensor | None = None) -> None:
        """Which target neurons receive at least one synaptic event through ``synapse``, each
        step (counts of 0/1 events over a fan-in, exact in float32; a static input goes
        through once, for every step). A window (a dense step's inputs, a conv output
        position's patch) holding more active inputs than a neuron has zero weights gives
        it an event (one of them meets a non-zero weight), one holding none gives none; the
        few in between are settled one by one (conv: by ``current``, the synapse's current,
        only the first step for a static input, where it is not zero — true of every
        target's synapse, a sum of weight × input whose terms vanish where the weight or the
        input does — then by the binarised synapse on the remaining ones; dense: by the
        binarised synapse on those steps). The simulator passes ``current``; without it (as
        :func:`count`, from spikes alone) or through a sum-pool, the binarised synapse runs
        on the whole batch, the reference the tests hold the shortcut to."""
        pr = self.plan.by_synapse[synapse]
        proj = pr["proj"]
        act, static, *dev = self.act[proj.source]
        T, B = self.T, self.B
        shape = self.plan.shapes[proj.target]
        dense = isinstance(pr["syn"], (N.Dense, N.IntDense))
        if current is not None and pr["plain"] and dense:
            if isinstance(act, torch.Tensor) and act.numel() < 1 << 16:
                act = _np(act)  # small: numpy's operations cost less
            self.any_event.setdefault(proj.target, []).append(
                self._settle_dense(pr, act.reshape(act.shape[0], B, -1), T, B, self.n_active.get(proj.source)))
            return
        if isinstance(act, np.ndarray):  # the input's activity (bool), made in numpy
            act = torch.from_numpy(act)
            act = act.to(dev[0]) if dev else act
        on = self.plan.on(pr, act.device)
        if current is not None and pr["plain"] and not proj.path:
            # the population's spikes as bytes where they came so (a quarter of the float32's reads)
            byte = self.spikes_u8.get(proj.source)
            part = self._settle_conv(pr, on, act if byte is None else byte, current[:1] if static else current, T, B)
        else:
            hit = _np(_forward(self.plan.graph, proj, act if act.dtype == torch.float32 else act.to(torch.float32),
                               on["mask"]) > 0)
            part = (hit.reshape(hit.shape[0], B, -1), (T, B, math.prod(shape)), None)
        self.any_event.setdefault(proj.target, []).append(part)

    def _active(self, parts: list, fired: np.ndarray) -> int:
        """Neuron updates with an event or a spike."""
        T, B = fired.shape[:2]
        if not parts:
            return int(np.count_nonzero(fired))
        if len(parts) == 1:
            base, view, extra = parts[0]
            if base is _EVERY:  # an event at every neuron and step
                return math.prod(view)
            n = int(np.count_nonzero(base | fired.reshape(view)))
            if extra is not None and extra.size:
                n += int(extra.size - np.count_nonzero(fired.reshape(-1)[extra]))
            return n
        ev = np.zeros(fired.size, np.bool_)
        for base, view, extra in parts:
            ev |= np.broadcast_to(base, view).reshape(-1)
            if extra is not None:
                ev[extra] = True
        return int(np.count_nonzero(ev | fired.reshape(-1)))

    @staticmethod
    def _spread(idx: np.ndarray, static: bool, T: int, per_step: int) -> np.ndarray:
        """Flat positions of the first step repeated over the T steps (a static input)."""
        return (idx[None, :] + per_step * np.arange(T)[:, None]).reshape(-1) if static else idx

    def _settle_dense(self, pr: dict, a: torch.Tensor, T: int, B: int, n_active: np.ndarray | None = None):
        """A dense projection's events as (base, view, extra): by the count of active inputs
        of each step and sample, and the binarised synapse on the steps whose count leaves it
        open (at most as many active inputs as some neuron has zero weights). ``n_active``: the
        active inputs of each step and sample ``(Tn, B)`` when known (the input's tally made
        them)."""
        Tn = a.shape[0]
        n_out = pr["mask"].shape[0]
        an = _np(a)
        if n_active is None:
            n_active = an.sum(-1, dtype=np.float32) if an.size < 1 << 16 or isinstance(a, np.ndarray) \
                else _np(a.sum(-1))  # (Tn, B)
        zmax = pr["zmax"]
        view = (T, B, n_out)
        if 0 < n_active.size <= 64:  # a few steps and samples (streaming): decided on Python numbers
            counts = n_active.ravel().tolist()
            if min(counts) > zmax:
                return _EVERY, view, None
            if not any(0 < c <= zmax for c in counts):
                return (n_active > zmax)[..., None], view, None
            if an.size * n_out <= SMALL_DENSE:  # a small product: the binarised synapse on every step
                rows = an.reshape(Tn * B, -1)
                hit = (rows if rows.dtype == np.float32 else rows.astype(np.float32)) @ pr["mask_np_t"] > 0
                return hit.reshape(Tn, B, n_out), view, None
        base = (n_active > zmax)[..., None]  # (Tn, B, 1)
        weak = (n_active > 0) & (n_active <= zmax)
        extra = None
        if weak.any():
            t, b = np.nonzero(weak)
            rows = an[t, b].astype(np.float32) @ pr["mask_np_t"] > 0  # (n_weak, n_out)
            r, j = np.nonzero(rows)
            extra = self._spread((t[r] * B + b[r]) * n_out + j, Tn == 1 and T > 1, T, B * n_out)
        return base, (T, B, n_out), extra

    def _settle_conv(self, pr: dict, on: dict, act: torch.Tensor, current: torch.Tensor, T: int, B: int):
        """As :meth:`_settle_dense` for a convolution: the active inputs of each window by a
        box sum, against each output channel's zero weights; the positions that leaves open
        by their current, then by their patches gathered."""
        syn, mask = pr["syn"], on["mask"]
        Tn = act.shape[0]
        G = int(syn.groups)
        C, H, W = act.shape[2:]
        s_, p_ = int(syn.stride), int(syn.padding)
        O, Ho, Wo = current.shape[2:]
        Og, L = O // G, Ho * Wo
        view = (T, B, G, Og, L)
        frames = act.reshape(Tn * B, C, H, W)
        if act.device.type == "cpu" and CONV_EVENTS_KERNEL:  # the same rules in one compiled pass
            hit = fused_cpu.conv_events(frames, mask, current.reshape(Tn * B, O, Ho, Wo), s_, p_, G, (Ho, Wo))
            if hit is not None:
                return hit.reshape(Tn, B, G, Og, L), view, None
        if act.dtype != torch.float32:  # 0/1 activity (bool or bytes) as the float kernels take it
            act = act.to(torch.float32)
            frames = act.reshape(Tn * B, C, H, W)
        if 2 * p_ > min(mask.shape[2:]):  # a box sum that avg_pool2d cannot pad
            hit = _np(conv_current(act, mask, s_, p_, G) > 0)
            return hit.reshape(Tn, B, G, Og, L), view, None
        # active inputs in each group's window: the group's channels summed, then a box sum
        per_group = frames.reshape(Tn * B, G, C // G, H, W).sum(2)
        box = F.avg_pool2d(per_group, tuple(mask.shape[2:]), s_, p_, divisor_override=1)
        box = box.reshape(Tn * B, G, 1, L)
        # an event where the current is not zero or the window holds more active inputs than
        # the channel has zero weights; none where it holds none
        hit = (current.reshape(Tn * B, G, Og, L) != 0) | (box > on["zeros"].reshape(G, Og, 1))
        tb, g, oc, l = (~hit & (box > 0)).nonzero(as_tuple=True)  # the open positions
        if tb.numel():
            # every window as a view (no copy): (TB, Ho, Wo, C, kh, kw)
            src = F.pad(frames, (p_, p_, p_, p_)) if p_ else frames
            kh, kw = mask.shape[2:]
            Hp, Wp = src.shape[2:]
            win = src.as_strided((Tn * B, Ho, Wo, C, kh, kw), (C * Hp * Wp, s_ * Wp, s_, Hp * Wp, Wp, 1),
                                 src.storage_offset())
            K = (C // G) * kh * kw
            w2 = mask.reshape(O, K)
            step = max(1, GATHER_LIMIT // K)
            for i in range(0, tb.numel(), step):  # in slices of at most GATHER_LIMIT elements
                sl = slice(i, i + step)
                vals = win[tb[sl], l[sl] // Wo, l[sl] % Wo]  # (n, C, kh, kw)
                if G > 1:
                    vals = vals.reshape(-1, G, K)[torch.arange(vals.shape[0], device=vals.device), g[sl]]
                o = g[sl] * Og + oc[sl]
                hit[tb[sl], g[sl], oc[sl], l[sl]] = (vals.reshape(-1, K) * w2.index_select(0, o)).sum(1) > 0
        return _np(hit).reshape(Tn, B, G, Og, L), view, None

    def result(self) -> Counters:
        plan = self.plan
        lay = plan.layout
        mesh = plan.mesh_width if plan.cores is not None else None
        if self._filed is not None:
            packed, hist, ns = self._filed
        else:
            missing = [n for n in lay.names if n not in self.fed]
            if missing:
                raise TsslcError(f"counts are missing for {missing}")
            packed = np.array(self.flat, np.int64)
            hist = [_EMPTY, *(self.hist[p] for p in plan.pops)]
            ns = [_EMPTY, *(self.ns[p] for p in plan.pops)]
        return Counters.packed_as(self.B, self.T, lay, packed, hist, ns, mesh)


def count(graph: Graph, spikes: dict, x=None, *, inputs=None, n_steps: int | None = None,
          cores: dict[str, np.ndarray] | None = None, mesh_width: int | None = None,
          plan: CountPlan | None = None) -> Counters:
    """Count one batch. ``spikes``: {lif: (T, B, *shape)} of every LIF population;
    ``x``: the input batch as given to the back end (static ``(B, *shape)`` or events
    ``(B, T, *shape)``), or ``inputs``: the input node's values ``(T, B, *shape)``;
    ``cores``: core index per neuron of each population (flattened C,H,W order); ``plan``:
    a :class:`CountPlan` of this graph made earlier (then ``cores`` and ``mesh_width`` are
    its own)."""
    plan = plan or CountPlan(graph, cores, mesh_width)
    shapes, pops = plan.shapes, plan.pops
    missing = [p for p in pops if p not in spikes]
    if missing:
        raise TsslcError(f"spikes are missing for population(s) {missing} (have {sorted(spikes)})")
    s = {p: _to_tensor(spikes[p]) for p in pops}
    T, B = s[pops[0]].shape[:2]
    T = int(n_steps or T)
    for p in pops:
        if tuple(s[p].shape) != (T, B, *shapes[p]):
            raise TsslcError(f"spikes of '{p}' have shape {tuple(s[p].shape)}, expected {(T, B, *shapes[p])}")
        if s[p].dtype != torch.bool:  # a spike is 1, its absence 0: anything else is no spike train
            bad = (s[p] != 0) & (s[p] != 1)
            if bool(bad.any()):
                raise TsslcError(f"spikes of '{p}' must be 0 or 1, found {s[p][bad].reshape(-1)[0].item()!r}")
    inp = plan.inp
    if inputs is None:
        if x is None:
            raise TsslcError("count() needs the input batch x (or the input values)")
        inputs = input_values(graph, x, T)
    values = _to_tensor(inputs)
    if tuple(values.shape) != (T, B, *shapes[inp]):
        raise TsslcError(f"input values have shape {tuple(values.shape)}, expected {(T, B, *shapes[inp])}")
    static = T > 1 and (values.stride(0) == 0 or bool((values == values[:1]).all()))
    tally = plan.tally(T, B)
    tally.input(values, static)
    for pr in plan.out_of.get(inp, []):
        tally.events(pr["proj"].synapse)
    for p in pops:
        tally.population(p, s[p])
        for pr in plan.out_of.get(p, []):
            tally.events(pr["proj"].synapse)
    return tally.result()


def count_plan(graph: Graph) -> CountPlan:
    """The :class:`CountPlan` of ``graph`` with its target's core assignment (``None``
    without a target), made once per graph (:meth:`Graph.memo`)."""
    target = graph.metadata.get("target")
    stamp = (target, id(graph.metadata.get("mapping")))

    def make():
        cores = None
        if target:
            from tsslc.targets import get_target

            cores = get_target(target).core_assignment(graph)
        return CountPlan(graph, cores)

    return graph.memo("counters.plan", make, stamp)


def count_run(graph: Graph, spikes: dict, x=None, *, inputs=None, n_steps: int | None = None,
              chunk: int = 256) -> Counters:
    """:func:`count` of one back-end run: on a graph compiled for a target, per core and hops
    from the target's core assignment (``metadata["mapping"]`` when there is one); counted
    ``chunk`` samples at a time (the totals are sums, so the result is the same) to keep
    the working tensors small."""
    plan = count_plan(graph)
    B = int(_to_tensor(next(iter(spikes.values()))).shape[1]) if spikes else 0
    total: Counters | None = None
    for i in range(0, max(B, 1), chunk):
        part = {k: v[:, i:i + chunk] for k, v in spikes.items()}
        c = count(graph, part, None if x is None else batch_slice(graph, torch.as_tensor(x), i, i + chunk),
                  inputs=None if inputs is None else inputs[:, i:i + chunk], n_steps=n_steps, plan=plan)
        total = c if total is None else total + c
    return total


def _messages_and_hops(graph, proj, shapes, in_shape, mask, src_core, dst_core, width):
    """Per source neuron: number of distinct destination cores, and Σ |Δx|, Σ |Δy| to them."""
    syn = graph[proj.synapse]
    n_src = src_core.shape[0]
    msgs = np.zeros(n_src)
    hx = np.zeros(n_src)
    hy = np.zeros(n_src)
    sx, sy = src_core % width, src_core // width
    for core in np.unique(dst_core):
        ind = torch.as_tensor((dst_core == core).astype(np.float64)).reshape(shapes[proj.synapse])
        if isinstance(syn, (N.Dense, N.IntDense)):
            reach = ind @ mask  # (N_in,)
        else:
            s, p = int(syn.stride), int(syn.padding)
            k_h, k_w = mask.shape[2:]
            op = (in_shape[1] - ((ind.shape[1] - 1) * s - 2 * p + k_h), in_shape[2] - ((ind.shape[2] - 1) * s - 2 * p + k_w))
            reach = torch.nn.functional.conv_transpose2d(ind[None], mask, None, s, p, op, int(syn.groups))[0]
        hit = (_back_through_path(graph, shapes, proj.path, reach, proj.source).reshape(-1) > 0).numpy()
        msgs += hit
        hx += hit * np.abs(sx - core % width)
        hy += hit * np.abs(sy - core // width)
    return msgs, hx, hy
