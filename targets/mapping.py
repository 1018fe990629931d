"""Core mapping of a compiled graph, for any target: assign every neuron to a core within
the target's limits, build the core graph (networkx) and report cores, utilisation,
splitters and latency.

Model (targets/truenorth.md §4 for the truenorth specifics):

* a core holds at most ``geometry.neurons_per_core`` neurons; all neurons of a core share
  its axons, so a core needs one axon per (input it uses × axons per input); with
  ``geometry.axons_per_core`` set that is a hard limit (truenorth 256), else unlimited;
* with a memory model (``target.memory``, a :class:`~tsslc.targets.base.CoreMemory`:
  loihi2's 192 KB per core) a core holds only what fits its memory: per neuron its state
  bits, per stored synapse its weight bits — a dense neuron's connected (non-zero) inputs,
  a convolution's kernel once per core for each output channel placed on it (weight
  sharing). A layer is split across as many cores as that takes, and the report gives each
  core's memory use (``core_memory`` bytes, per layer ``memory_bytes`` and
  ``max_core_memory_bytes``, ``memory_utilisation`` of the cores used);
* axons per input ``m``: the quantization report's ``axons_per_input`` (truenorth's
  axon-type decomposition), 1 otherwise;
* ``geometry.max_fan_out == 1`` (one destination per neuron): a neuron whose spikes must
  reach k > 1 axons feeds one axon of a splitter core whose k splitter neurons copy it
  (a tree when k > neurons_per_core); each splitter level adds a routing stage. Inputs come
  from the host, which injects each event on every axon that needs it (no splitters);
* one tick per routing stage; delay balancing pads the shorter paths into a layer, so each
  layer's latency is 1 + the splitter levels of its inputs. ("Hops" in tsslc always means
  mesh hops of spike messages between cores, counted by :mod:`tsslc.backends.counters`.)

Neurons are packed greedily in an order that keeps shared inputs together: dense layers in
neuron order (block-sparse nets trained with a fan-in limit pack block by block), convs in
spatial tiles with all output channels of a group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph

HOST = "host"
OUTPUT = "output"


@dataclass
class Core:
    index: int
    kind: str  # "neuron" | "splitter"
    population: str  # the layer (neuron cores) or the source layer (splitter cores)
    neurons: int = 0
    axons: int = 0
    memory: int = 0  # bytes, with a memory model


@dataclass
class Mapping:
    target: str
    cores: list[Core]
    assignment: dict[str, np.ndarray]  # population -> core index per neuron (flat C,H,W)
    core_graph: nx.DiGraph
    layers: dict[str, dict] = field(default_factory=dict)
    neurons_per_core: int = 0
    axons_per_core: int | None = None
    memory_per_core: int | None = None  # bytes
    #: per source population with splitters: per neuron (flat C,H,W) the copies its
    #: splitters make of each spike (0: no splitter, the spike goes straight to its one axon)
    splitter_copies: dict[str, np.ndarray] = field(default_factory=dict)

    def report(self) -> dict:
        neuron_cores = [c for c in self.cores if c.kind == "neuron"]
        splitter_cores = [c for c in self.cores if c.kind == "splitter"]
        n_slots = len(self.cores) * self.neurons_per_core
        used = sum(c.neurons for c in self.cores)
        rep = {
            "target": self.target,
            "cores": len(self.cores),
            "neuron_cores": len(neuron_cores),
            "splitter_cores": len(splitter_cores),
            "neurons": int(sum(c.neurons for c in neuron_cores)),
            "splitter_neurons": int(sum(c.neurons for c in splitter_cores)),
            "neuron_utilisation": used / n_slots if n_slots else 0.0,
            "latency_ticks": int(sum(l["latency"] for l in self.layers.values())),
            "layers": self.layers,
        }
        if self.axons_per_core:
            rep["axons"] = int(sum(c.axons for c in self.cores))
            rep["axon_utilisation"] = rep["axons"] / (len(self.cores) * self.axons_per_core)
        if self.memory_per_core:
            rep["memory_per_core_bytes"] = int(self.memory_per_core)
            rep["memory_bytes"] = int(sum(c.memory for c in self.cores))
            rep["max_core_memory_bytes"] = int(max((c.memory for c in self.cores), default=0))
            rep["memory_utilisation"] = rep["memory_bytes"] / (len(self.cores) * self.memory_per_core) if self.cores else 0.0
        return rep

    def to_metadata(self) -> dict:
        """What goes into ``graph.metadata["mapping"]`` (the report, the placement, the cores)."""
        return {
            **self.report(),
            "assignment": {k: v.copy() for k, v in self.assignment.items()},
            "core_kind": [c.kind for c in self.cores],
            "core_population": [c.population for c in self.cores],
            "core_neurons": np.array([c.neurons for c in self.cores], np.int64),
            "core_axons": np.array([c.axons for c in self.cores], np.int64),
            "core_memory": np.array([c.memory for c in self.cores], np.int64),
            "splitter_copies": {k: v.copy() for k, v in self.splitter_copies.items()},
            "core_edges": np.array([[s, d, a["routes"]] for s, d, a in self.core_graph.edges(data=True)
                                    if isinstance(s, int) and isinstance(d, int)], np.int64).reshape(-1, 3),
        }


# --- structure of the compiled graph ---------------------------------------------------------


def _source(graph: Graph, name: str) -> str:
    """The spike source (IntInput or IntLIF) behind a synapse, through flattens."""
    prev = graph.predecessors(name)
    while prev and isinstance(graph[prev[0]], N.Flatten):
        prev = graph.predecessors(prev[0])
    if len(prev) != 1 or not isinstance(graph[prev[0]], (N.IntInput, N.IntLIF)):
        raise TsslcError(f"mapping: synapse '{name}' is not fed by one input or integer population "
                         f"(is the graph compiled? fold pooling first)")
    return prev[0]


def _input_sets(node, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[np.ndarray]:
    """For every output neuron (flat C,H,W), the flat indices of the inputs it sees (a conv's
    output channels of one group share their window's array)."""
    w = np.asarray(node.weight)
    if isinstance(node, N.IntDense):
        return [np.flatnonzero(row) for row in w]
    c_out, c_in_g, kh, kw = w.shape
    _, h_in, w_in = in_shape
    _, h_out, w_out = out_shape
    per_group_out = c_out // node.groups
    windows = []  # per group: the h_out * w_out windows
    for g in range(int(node.groups)):
        chans = np.arange(g * c_in_g, (g + 1) * c_in_g)
        per_pos = []
        for y in range(h_out):
            iy = np.arange(kh) + y * node.stride - node.padding
            iy = iy[(iy >= 0) & (iy < h_in)]
            for x in range(w_out):
                ix = np.arange(kw) + x * node.stride - node.padding
                ix = ix[(ix >= 0) & (ix < w_in)]
                per_pos.append((chans[:, None, None] * h_in * w_in + iy[None, :, None] * w_in + ix[None, None, :]).ravel())
        windows.append(per_pos)
    return [p for o in range(c_out) for p in windows[o // per_group_out]]


def _conv_order(node, out_shape, npc: int, apc: int | None, m: int) -> np.ndarray:
    """Neuron order for a conv: groups, then square spatial tiles, then channels."""
    c_out, h, w = out_shape
    wt = np.asarray(node.weight)
    c_in_g, k = wt.shape[1], wt.shape[2]
    per_group = c_out // node.groups
    tile = 1
    for t in range(1, max(h, w) + 1):
        side = (t - 1) * node.stride + k
        if per_group * t * t > npc and t > 1:
            break
        if apc is not None and c_in_g * side * side * m > apc and t > 1:
            break
        tile = t
    c, y, x = np.meshgrid(np.arange(c_out), np.arange(h), np.arange(w), indexing="ij")
    flat = (c * h * w + y * w + x).ravel()
    keys = np.lexsort(((x % tile).ravel(), (y % tile).ravel(), c.ravel(), (x // tile).ravel(),
                       (y // tile).ravel(), (c // per_group).ravel()))
    return flat[keys]


def _quant_row(graph: Graph, lif: str) -> dict:
    for row in graph.metadata.get("quantization", {}).get("layers", []):
        if row.get("name") == lif:
            return row
    return {}


def _axons_per_input(graph: Graph, lif: str) -> int:
    return int(_quant_row(graph, lif).get("axons_per_input") or 1)


# --- the pass ------------------------------------------------------------------------------------


def map_graph(graph: Graph, target) -> Mapping:
    """Place every IntLIF neuron of the compiled ``graph`` on ``target``'s cores."""
    shapes = graph.validate()
    geo = target.geometry
    npc, apc = int(geo.neurons_per_core), geo.axons_per_core
    mem = getattr(target, "memory", None)
    budget = mem.bits_per_core if mem is not None else None
    one_destination = geo.max_fan_out == 1
    cores: list[Core] = []
    assignment: dict[str, np.ndarray] = {}
    cg = nx.DiGraph()
    cg.add_node(HOST, kind="host")
    cg.add_node(OUTPUT, kind="output")
    uses: dict[str, dict[int, int]] = {}  # source population -> {flat neuron: axons it must reach}
    routes: dict[str, list[tuple[np.ndarray, int, int]]] = {}  # source -> (neurons, dest core, m)
    layer_info: dict[str, dict] = {}
    lifs = graph.of_type(N.IntLIF)
    for lif in lifs:
        syns = graph.predecessors(lif)
        node = graph[syns[0]]
        if len(syns) != 1 or not isinstance(node, (N.IntDense, N.IntConv2d)):
            raise TsslcError(f"mapping: population '{lif}' must be fed by exactly one integer synapse")
        src = _source(graph, syns[0])
        m = _axons_per_input(graph, lif)
        sets = _input_sets(node, shapes[_pred(graph, syns[0])], shapes[lif])
        connected = max((len(s) for s in sets), default=0)  # inputs with a non-zero integer weight
        fan_in = _quant_row(graph, lif).get("fan_in", connected)
        if geo.max_fan_in is not None and connected * m > geo.max_fan_in:
            raise TsslcError(f"layer '{lif}': fan-in {connected} inputs x {m} axons = {connected * m} > {geo.max_fan_in} "
                             f"(the {target.name} limit per neuron); remedy: retrain with a fan-in limit "
                             f"(linear: 'fan_in'; conv: 'groups')")
        conv = isinstance(node, N.IntConv2d)
        order = _conv_order(node, shapes[lif], npc, apc, m) if conv else np.arange(len(sets))
        core_of = np.empty(len(sets), np.int64)
        first = len(cores)
        cost = _memory_cost(node, sets, shapes[lif], mem) if budget is not None else None
        if cost is not None:
            need = int(cost.neuron_bits.max() + (cost.kernel_bits if conv else 0)) if len(sets) else 0
            if need > budget:
                raise TsslcError(f"layer '{lif}': one neuron needs {math.ceil(need / 8)} bytes of core memory "
                                 f"({mem.synapse_bits}-bit synapses + {mem.neuron_state_bits} bits of state) > "
                                 f"{mem.bytes_per_core} bytes per {target.name} core; remedy: a smaller fan-in")
        # next fit in ``order``: a core takes neurons while it has room for one more neuron,
        # for the axons of the inputs they see together (a boolean mask of those inputs) and,
        # with a memory model, for its state and synapses (a conv's kernels once per channel)
        n_in = int(np.prod(shapes[_pred(graph, syns[0])]))
        cur = np.zeros(n_in, bool)
        cur_n = count = 0
        cur_bits, channels = 0, set()
        core_inputs: list[np.ndarray] = []
        core_bits: list[int] = []
        for j in order:
            inputs = sets[j]
            extra = int(np.count_nonzero(~cur[inputs]))
            bits = 0
            if cost is not None:
                ch = int(j) // cost.per_channel if conv else None
                bits = int(cost.neuron_bits[j]) + (cost.kernel_bits if conv and ch not in channels else 0)
            if count and (count + 1 > npc or (apc is not None and (cur_n + extra) * m > apc)
                          or (budget is not None and cur_bits + bits > budget)):
                core_inputs.append(np.flatnonzero(cur))
                core_bits.append(cur_bits)
                cur = np.zeros(n_in, bool)
                cur[inputs] = True
                cur_n, count = int(np.count_nonzero(cur)), 0
                channels = set()
                bits = int(cost.neuron_bits[j]) + (cost.kernel_bits if conv else 0) if cost is not None else 0
                cur_bits = 0
            else:
                cur[inputs] = True
                cur_n += extra
            if cost is not None:
                cur_bits += bits
                if conv:
                    channels.add(int(j) // cost.per_channel)
            core_of[j] = first + len(core_inputs)
            count += 1
        core_inputs.append(np.flatnonzero(cur))
        core_bits.append(cur_bits)
        for k, used in enumerate(core_inputs):
            ci = first + k
            cores.append(Core(ci, "neuron", lif, int((core_of == ci).sum()), len(used) * m,
                              math.ceil(core_bits[k] / 8)))
            cg.add_node(ci, kind="neuron", population=lif)
            idx = used
            routes.setdefault(src, []).append((idx, ci, m))
            if isinstance(graph[src], N.IntLIF):
                u = uses.setdefault(src, {})
                for i in idx.tolist():
                    u[i] = u.get(i, 0) + m
        assignment[lif] = core_of
        layer_info[lif] = {"source": src, "cores": len(core_inputs), "neurons": len(sets), "fan_in": int(fan_in),
                           "connected_inputs": int(connected),
                           "axons_per_input": m, "axons": int(sum(len(u) for u in core_inputs) * m),
                           "splitter_neurons": 0, "splitter_cores": 0, "splitter_levels": 0,
                           "delay_padded_neurons": 0}
        if cost is not None:
            per_core = [math.ceil(b / 8) for b in core_bits]
            layer_info[lif].update(memory_bytes=int(sum(per_core)), max_core_memory_bytes=int(max(per_core)))
    # splitters for fan-out > 1 (one destination per neuron), and the core graph's edges
    levels_of: dict[str, int] = {}
    split_core: dict[str, dict[int, int]] = {}  # source -> {neuron: splitter core of its copies}
    splitter_copies: dict[str, np.ndarray] = {}
    for src, per_neuron in uses.items():
        levels, n_split, placed = 0, 0, []
        sc_of: dict[int, int] = {}
        if one_destination:
            lv_of: dict[int, int] = {}
            for i in sorted(per_neuron):
                n, lv, groups = per_neuron[i], 0, []
                while n > 1:
                    groups.extend([npc] * (n // npc) + ([n % npc] if n % npc else []))
                    n, lv = math.ceil(n / npc), lv + 1
                lv_of[i] = lv
                if not groups:
                    continue
                where = _pack_splitters(groups, npc, apc, cores, src, placed)
                sc_of[i] = where[0]
                n_split += sum(groups)
                levels = max(levels, lv)
            for ci in placed:
                cg.add_node(ci, kind="splitter", population=src)
            for i, ci in sc_of.items():
                _edge(cg, int(assignment[src][i]), ci, 1)
            copies = np.zeros(int(np.prod(shapes[src])), np.int64)
            for i, n in per_neuron.items():
                if n > 1:
                    copies[i] = n
            splitter_copies[src] = copies
            # delay balancing: sources with fewer splitter levels wait the difference as axon delay
            padded = sum(1 for lv in lv_of.values() if lv < levels)
            layer_info[src].update(splitter_neurons=int(n_split), splitter_cores=len(placed), splitter_levels=levels,
                                   delay_padded_neurons=int(padded))
        levels_of[src], split_core[src] = levels, sc_of
    for src, rlist in routes.items():
        for idx, dst, m in rlist:
            if isinstance(graph[src], N.IntInput):
                _edge(cg, HOST, dst, len(idx) * m)
                continue
            sc_of = split_core.get(src, {})
            for i in idx.tolist():
                _edge(cg, sc_of.get(i, int(assignment[src][i])), dst, m)
    out_pop = graph.output_population
    for ci in set(assignment[out_pop].tolist()):
        _edge(cg, int(ci), OUTPUT, int((assignment[out_pop] == ci).sum()))
    for lif in lifs:
        src = layer_info[lif]["source"]
        lv = levels_of.get(src, 0) if isinstance(graph[src], N.IntLIF) else 0
        layer_info[lif]["latency"] = 1 + lv  # ticks: one per routing stage (the synapse, each splitter level)
    if geo.n_cores is not None and len(cores) > geo.n_cores:
        raise TsslcError(f"mapping: the graph needs {len(cores)} cores > {geo.n_cores} on one {target.name} chip; "
                         f"remedy: a smaller network")
    return Mapping(target.name, cores, assignment, cg, layer_info, npc, apc,
                   None if mem is None else int(mem.bytes_per_core), splitter_copies)


@dataclass
class _Cost:
    """Memory a layer's neurons take on a core, in bits: ``neuron_bits[j]`` for neuron j
    (state + its own synapses: a dense row's non-zero weights; a conv neuron's state only),
    ``kernel_bits`` per output channel of a conv on a core, ``per_channel`` neurons per
    output channel (flat C, H, W order)."""

    neuron_bits: np.ndarray
    kernel_bits: int = 0
    per_channel: int = 1


def _memory_cost(node, sets: list[np.ndarray], out_shape, mem) -> _Cost:
    n = len(sets)
    state = np.full(n, int(mem.neuron_state_bits), np.int64)
    if isinstance(node, N.IntConv2d):
        w = np.asarray(node.weight)
        per_channel = int(np.prod(out_shape[1:]))
        kernel = int(np.prod(w.shape[1:])) * int(mem.synapse_bits)
        if not mem.shared_conv_weights:  # every neuron stores its own window's weights
            return _Cost(state + np.array([len(s) for s in sets], np.int64) * int(mem.synapse_bits))
        return _Cost(state, kernel, per_channel)
    return _Cost(state + np.array([len(s) for s in sets], np.int64) * int(mem.synapse_bits))


def _pred(graph: Graph, syn: str) -> str:
    return graph.predecessors(syn)[0]


def _edge(cg: nx.DiGraph, s, d, routes: int) -> None:
    if cg.has_edge(s, d):
        cg[s][d]["routes"] += routes
    else:
        cg.add_edge(s, d, routes=routes)


def _pack_splitters(groups: list[int], npc: int, apc: int | None, cores: list[Core], src: str,
                    placed: list[int]) -> list[int]:
    """Place splitter groups (one axon + g neurons each) on ``src``'s splitter cores
    (``placed``, extended with fresh cores as needed): next fit, as the groups come in neuron
    order. Returns the core of each group."""
    where = []
    for g in groups:
        c = cores[placed[-1]] if placed else None
        if c is not None and c.neurons + g <= npc and (apc is None or c.axons + 1 <= apc):
            c.neurons += g
            c.axons += 1
        else:
            cores.append(Core(len(cores), "splitter", src, g, 1))
            placed.append(len(cores) - 1)
        where.append(placed[-1])
    return where


def attach(graph: Graph, target) -> Graph:
    """A new graph: ``graph`` with its mapping onto ``target``'s cores in
    ``metadata["mapping"]`` (the argument is left unchanged)."""
    mapping = map_graph(graph, target)
    out = graph.copy()
    out.metadata["mapping"] = mapping.to_metadata()
    return out
