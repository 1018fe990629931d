"""Integer simulator: runs a compiled graph with its target's exact arithmetic.

Batched and vectorised on torch tensors (CPU or GPU: ``device=``); the synapse of a layer is
computed for all steps at once (one exact matmul / conv), then the target's population runs
over the steps (:meth:`~tsslc.targets.base.Target.run_population`: on the CPU Loihi 2's is a
compiled loop, bit for bit :meth:`~tsslc.targets.base.Target.neuron_step` applied T times;
elsewhere that step once per step on the whole ``(B, *shape)`` population) — no Python loop
over neurons or samples. Integer arithmetic and provably exact float sums make results
deterministic and identical on every device.

Time axis: the float model's (no synaptic latency): the current a population receives at
step t comes from its input's spikes at step t.

A static input (an image presented as the same graded payload at every step) is encoded
and sent through the first synapse once and broadcast over the T steps: the synapses are
time-invariant maps, so this is the same integer current T times cheaper.

Per graph, once (:class:`Plan`, kept by :meth:`tsslc.ir.graph.Graph.memo` until the graph
changes; a pass builds a new graph, so a new plan): validation, the population checks, the
visiting order with each node's predecessors, each synapse prepared by its target
(:meth:`~tsslc.targets.base.Target.prepare_synapse`: weights converted, the exact float type
chosen from a proven bound on its input — 1 for spikes, the payload limit for the input)
and the counters' plan (:class:`tsslc.backends.counters.CountPlan`). A call then only
computes.

The counters are tallied during the simulation's own pass
(:class:`tsslc.backends.counters.Tally`, the one counting implementation, fed each source's
values as they are made), not by a second walk over the spikes.

One sample at a time (streaming), a dense synapse and the population it alone feeds run as
one compiled pass where the target has one (:meth:`~tsslc.targets.base.Target.prepare_layer`:
Loihi 2 on the CPU), which also makes that population's counts (and the input's, for the
input's one synapse); a graph made only of such layers, fed a static graded image, runs as
one compiled call (:meth:`~tsslc.targets.base.Target.prepare_chain`: encoder, layers and
counts, the counters' totals filed there too by :meth:`~tsslc.backends.counters.CountPlan.filing`),
the walk then only collecting each population's part. The synapses' currents stay
inside those passes, so :func:`run` takes them and :func:`simulate` (which returns every
node's values) does not; the tests hold the two to the same spikes and counts.

The walk is :class:`IntSim`, a :class:`~tsslc.ir.walker.GraphWalker` (one method per node
kind). ``run(graph, x, n_steps=None, progress=False, device="cpu", batch_size=None,
counters=True)``
→ :class:`tsslc.backends.BackendResult` with every IntLIF's spikes ``(T, B, *shape)`` uint8
and the counters of :mod:`tsslc.backends.counters` (per core from
``target.core_assignment(graph)``).
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from tsslc import fused_cpu
from tsslc.backends import BackendResult
from tsslc.backends.counters import Counters, Tally, count_plan
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.interpreter import n_steps_of
from tsslc.ir.layout import batch_size as batch_of, batch_slice, time_input
from tsslc.ir.walker import GraphWalker
from tsslc.targets import get_target
from tsslc.targets.base import Target

#: float node kinds: intsim runs compiled graphs only
FLOAT_KINDS = ("input", "dense", "conv2d", "lif", "sumpool2d", "dropout")
#: samples per group deciding which input steps count MACs (as count_run's chunks)
MAC_CHUNK = 256


#: target name -> target (get_target's module lookup, made once per name)
_TARGETS: dict = {}


def compiled_target(graph: Graph):
    name = graph.metadata.get("target")
    if not name:
        raise TsslcError("the graph is not compiled for a target (no metadata['target']); run tsslc compile first")
    target = _TARGETS.get(name) if isinstance(name, str) else None
    if target is None:
        target = get_target(name)
        if isinstance(name, str):
            _TARGETS[name] = target
    return target


def _unsupported(name: str, node) -> TsslcError:
    return TsslcError(f"node '{name}' ({node.kind}): intsim runs compiled graphs only; compile the model first")


def _input_bound(graph: Graph, target, name: str) -> int | None:
    """A proven bound on |values| leaving node ``name``: 1 for spikes and binary input, the
    payload limit for graded input (the base encoder clamps to it); None when unknown."""
    while True:
        node = graph[name]
        if isinstance(node, N.IntLIF):
            return 1
        if isinstance(node, N.IntInput) and type(target).input_spikes is Target.input_spikes:
            return 1 if node.encoding == "binary" else 2 ** (int(node.bits) - 1) - 1
        preds = graph.predecessors(name)
        if not isinstance(node, N.Flatten) or len(preds) != 1:
            return None
        name = preds[0]


class Plan:
    """What a call needs from a graph, made once per graph, target and device."""

    def __init__(self, graph: Graph, target, device):
        graph.validate()
        self.target = target
        self.output_population = graph.output_population
        self.steps = [(name, node, graph.predecessors(name)) for name, node in graph.items()]
        self.synapses = {}
        #: synapse -> (population, function): a dense synapse and the population it alone
        #: feeds as one compiled pass for one sample (Target.prepare_layer)
        self.layers: dict = {}
        self._bound: dict = {}
        #: input node -> (scale, limit): its static graded payloads made by the compiled encoder
        #: (CPU, the base encoder)
        self.graded_cpu: dict = {}
        self.input_shape = tuple(graph[graph.input_name].shape)
        for name, node, preds in self.steps:
            if node.kind in FLOAT_KINDS:
                raise _unsupported(name, node)
            if isinstance(node, N.IntLIF):
                if node.target != target.name:
                    raise TsslcError(f"node '{name}': population of target '{node.target}' in a {target.name} graph")
                target.check_params(node.params, f"node '{name}'")
            elif isinstance(node, N.IntInput):
                if (device.type == "cpu" and node.encoding == "graded"
                        and type(target).input_spikes is Target.input_spikes and int(node.bits) <= 25):
                    self.graded_cpu[name] = (float(node.scale), 2 ** (int(node.bits) - 1) - 1)
            elif isinstance(node, (N.IntDense, N.IntConv2d)):
                bound = _input_bound(graph, target, preds[0]) if len(preds) == 1 else None
                self.synapses[name] = target.prepare_synapse(node, bound, device)
                succ = graph.successors(name)
                if len(succ) == 1 and isinstance(graph[succ[0]], N.IntLIF) and len(graph.predecessors(succ[0])) == 1:
                    layer = target.prepare_layer(node, graph[succ[0]].params, bound, device)
                    if layer is not None:
                        self.layers[name] = (succ[0], layer, (1, *graph[succ[0]].shape), bool(layer.counts))
        #: the fused layer that also counts the input (its one synapse, reached through
        #: flattens only; counters.Tally.input_counts), or None
        self.input_layer = None
        name = graph.input_name
        while len(graph.successors(name)) == 1:
            name = graph.successors(name)[0]
            if name in self.layers and self.layers[name][3]:
                self.input_layer = name
            if not isinstance(graph[name], N.Flatten):
                break
        #: (function, first synapse, populations): the whole graph as one compiled call for a
        #: static graded sample (Target.prepare_chain), or None
        self.chain = None
        self._chain_mats: dict = {}
        if self.input_layer is not None and graph.input_name in self.graded_cpu:
            self.chain = self._chain(graph, target)

    def chain_matrices(self, count_plan):
        """The chain's populations' tally matrices of ``count_plan``
        (:meth:`tsslc.backends.counters.CountPlan.tally_matrix`) and its input's fan-out,
        made ready for it once per count plan (the plan is kept with them, so the key
        cannot be reused)."""
        hit = self._chain_mats.get(id(count_plan))
        if hit is None or hit[0] is not count_plan:
            fn, first, lifs = self.chain
            mats = [count_plan.tally_matrix(l) for l in lifs]
            filing = None
            if all(m is not None for m in mats) and list(lifs) == count_plan.pops:  # the kernel files the totals

                def filing(T, cp=count_plan):
                    return [cp.filing(l, T, 1) for l in lifs], cp.input_filing(T, T), cp.layout.size

            hit = self._chain_mats[id(count_plan)] = (count_plan, fn.matrices(
                mats, count_plan.fan_int64(first), filing))
        return hit[1]

    def _chain(self, graph: Graph, target):
        """The graph as a chain input → flatten* → (fused, counting synapse → its LIF
        → flatten*)+ → outputs, nothing else; then its compiled form, else None."""
        layers, lifs = [], []
        prev = graph.input_name
        for name, node, preds in self.steps:
            if isinstance(node, (N.IntInput, N.Output)):
                continue
            if isinstance(node, N.Flatten) and preds == [prev]:
                prev = name
                continue
            fused = self.layers.get(name)
            if fused is not None and fused[3] and preds == [prev]:
                layers.append(fused[1])
                lifs.append(fused[0])
                continue
            if lifs and name == lifs[-1]:
                prev = name
                continue
            return None
        if any(not isinstance(graph[s], N.Output) for s in graph.successors(prev)):
            return None
        fn = target.prepare_chain(layers)
        return None if fn is None else (fn, self.input_layer, lifs)


    def bound(self, cls) -> list:
        """The steps with the method of each node's kind in walker class ``cls`` (None:
        the class has none)."""
        steps = self._bound.get(cls)
        if steps is None:
            steps = []
            for name, node, preds in self.steps:
                m = getattr(cls, node.kind, None)
                steps.append((name, node, preds, m if callable(m) else None))
            self._bound[cls] = steps
        return steps


def plan(graph: Graph, target=None, device="cpu") -> Plan:
    """The :class:`Plan` of ``graph`` (made on first use, then reused until the graph changes)."""
    target = target or compiled_target(graph)
    device = torch.device(device)
    return graph.memo(("intsim.plan", str(device)), lambda: Plan(graph, target, device), id(target))


class IntSim(GraphWalker):
    """A compiled graph executed with its target's integer arithmetic; ``env`` holds every
    node's output (time-first exact integers: int64, or float32 where that is exact — spikes
    are float32 0/1) and :attr:`spikes` every IntLIF's spikes (uint8; numpy arrays where the
    plan's compiled network made them). A float node is one error (compile the model first).
    ``tally``: a :class:`~tsslc.backends.counters.Tally` fed the input values and every
    population's spikes as they are made."""

    what = "intsim"

    def __init__(self, graph: Graph, target, x, n_steps: int, device="cpu", tally: Tally | None = None,
                 *, graph_plan: Plan | None = None, fuse: bool = False):
        super().__init__(graph)
        self.target, self.x, self.n_steps, self.device = target, x, n_steps, device
        self.plan = graph_plan if graph_plan is not None else plan(graph, target, device)
        self.tally = tally
        self.spikes: dict[str, torch.Tensor] = {}
        #: one sample: fused layers (the plan's ``layers``) may run, their synapses' values
        #: left out of ``env`` (None); only this class (a subclass' methods see every value)
        self.fuse = fuse and type(self) is IntSim and bool(self.plan.layers)
        self._layer_out: dict = {}
        self._input_static: bool | None = None  # the input's counts wait for its fused layer
        self._chained = False  # the plan's chain ran: the synapses' work is done
        self._filed = False  # ... and it made every count (Tally.filed)

    def steps(self):
        return self.plan.steps

    def run(self):
        """Visit every node in the plan's order, each by the method of its kind (looked up
        once per walker class)."""
        env = self.env
        for name, node, preds, method in self.plan.bound(type(self)):
            if method is None:
                env[name] = self.unsupported(name, node)
                continue
            if not preds:
                x = None
            elif len(preds) == 1:
                x = env[preds[0]]
            else:
                x = self.combine(name, node, [env[p] for p in preds])
            env[name] = method(self, name, node, x)
        return env

    def unsupported(self, name, node):
        if node.kind in FLOAT_KINDS:
            raise _unsupported(name, node)
        return super().unsupported(name, node)

    def combine(self, name, node, values):
        out = values[0].to(torch.int64)
        for v in values[1:]:
            out = out + v.to(torch.int64)
        return out

    def int_input(self, name, node: N.IntInput, x):
        """The input's values; its counts are made here, or by the fused layer of its one
        synapse (one sample)."""
        if self.fuse and self.plan.chain is not None and self._run_chain(name):
            return None  # the whole network ran in one call; every later node takes its part
        v = self._graded_static(name, node) if name in self.plan.graded_cpu and type(self) is IntSim else None
        if v is None:
            p = time_input(self.graph, self.x, self.n_steps).to(self.device)
            static = p.shape[0] > 1 and p.stride(0) == 0  # the same payload at every step
            v = self.target.input_spikes(node, p[:1]).expand(p.shape) if static else self.target.input_spikes(node, p)
        if self.tally is not None:  # static still after encoding? (a rate code spreads one frame over T steps)
            static = v.shape[0] > 1 and v.stride(0) == 0
            if self.fuse and v.shape[1] == 1 and self.plan.input_layer is not None:
                self._input_static = static  # counted by the fused layer
            else:
                self.tally.input(v, static)
        return v

    def _run_chain(self, name: str) -> bool:
        """One static graded sample through the plan's compiled chain; False (the walk goes
        on as usual) for anything else or an input holding a NaN."""
        x = self._static_cpu_x()
        if x is None or x.shape[0] != 1:
            return False
        fn, first, lifs = self.plan.chain
        tally = self.tally
        out = fn(x, *self.plan.graded_cpu[name], self.n_steps,
                 self.plan.chain_matrices(tally.plan) if tally is not None else None)
        if out is None:
            return False
        layers, stats, packed = out
        if packed is not None:  # every count made and filed in the same call
            tally.filed(packed, [l[3] for l in layers], [l[1] for l in layers])
            self._filed = True
        elif tally is not None:
            tally.input_counts(stats, self.n_steps > 1)
        for lif, (s8, ns, active, hist, vals) in zip(lifs, layers):
            self._layer_out[lif] = (s8, None, ns, active, hist, vals)
        self._chained = True
        return True

    def _static_cpu_x(self) -> torch.Tensor | None:
        """The input as a contiguous CPU float32/float64 tensor of static samples (B, *shape),
        or None."""
        x = self.x
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        elif not isinstance(x, torch.Tensor):
            return None
        if (x.device.type != "cpu" or x.requires_grad or x.dtype not in (torch.float32, torch.float64)
                or tuple(x.shape[1:]) != self.plan.input_shape or self.n_steps < 1):
            return None
        return x if x.is_contiguous() else x.contiguous()

    def _graded_static(self, name: str, node: N.IntInput):
        """A static float batch's graded payloads on the CPU in one compiled loop
        (:func:`tsslc.fused_cpu.graded`: :meth:`Target.input_spikes` ``"graded"`` to the bit,
        where torch takes some ten small operations), as float32 (exact, which every synapse
        takes: :meth:`Target.prepare_synapse`), broadcast over the T steps. None (the general
        path) for anything else: time-first or non-float data, a NaN, no kernel. Only this
        class takes it: a subclass' methods see the int64 payloads as before."""
        x = self._static_cpu_x()
        if x is None:
            return None
        v = fused_cpu.graded(x, *self.plan.graded_cpu[name])
        return None if v is None else v.expand(self.n_steps, *v.shape)

    def _synapse(self, name, node, v):
        if self._chained:
            return None
        if self.fuse and v.shape[1] == 1 and name in self.plan.layers:
            lif, layer, shape, counts = self.plan.layers[name]
            tally = self.tally
            if tally is None or counts:
                fan = None
                if tally is not None and name == self.plan.input_layer:
                    fan = tally.plan.fan_int64(name)
                out = layer(v[:1] if v.shape[0] > 1 and v.stride(0) == 0 else v, self.n_steps, tally is not None,
                            (self.n_steps, *shape), fan, tally.plan.tally_matrix(lif) if tally is not None else None)
                if fan is not None:
                    tally.input_counts(out[4], self._input_static)
                self._layer_out[lif] = (*out[:4], *out[5:])  # its spikes and counts, made in the same pass
                return None
        fn = self.plan.synapses.get(name)
        if fn is None:  # a synapse the plan did not see (a subclass' graph edit)
            fn = self.target.prepare_synapse(node, None, self.device)
        static = v.shape[0] > 1 and v.stride(0) == 0  # the same input at every step: one pass, broadcast
        out = fn(v[:1] if static else v)
        if self.tally is not None and name in self.tally.plan.by_synapse:
            self.tally.events(name, out)
        return out.expand(v.shape[0], *out.shape[1:]) if static else out

    int_dense = _synapse
    int_conv2d = _synapse

    def flatten(self, name, node, x):
        return None if x is None else x.reshape(x.shape[0], x.shape[1], -1)

    def output(self, name, node, x):
        return x

    def int_lif(self, name, node: N.IntLIF, x):
        out = self._layer_out.pop(name, None) if self._layer_out else None
        if out is not None:  # made by its synapse's fused layer
            s, s_float, ns, active, hist, vals = out
            self.spikes[name] = s
            if self.tally is not None and not self._filed:
                self.tally.population(name, s, s_float, per_neuron=ns, active=active, hist=hist, vals=vals)
            return s_float
        s, s_float = self.target.run_population(node.params, x, with_float=True)
        self.spikes[name] = s
        if self.tally is not None:
            self.tally.population(name, s, s_float)
        return s_float


def _numpy(v) -> np.ndarray:
    """Spikes as numpy (a compiled network's are numpy already)."""
    if isinstance(v, np.ndarray):
        return v
    return v.numpy() if v.device.type == "cpu" else v.cpu().numpy()


@torch.no_grad()
def simulate(graph: Graph, x, n_steps: int | None = None, device="cpu") -> tuple[dict, dict]:
    """One batch: (spikes {lif: (T,B,*) int64 tensor}, currents-and-inputs {node: int64 tensor})."""
    target = compiled_target(graph)
    walker = IntSim(graph, target, x, n_steps_of(graph, n_steps), device)
    values = walker.run()
    return ({k: v.to(torch.int64) for k, v in walker.spikes.items()},
            {k: v.to(torch.int64) if isinstance(v, torch.Tensor) else v for k, v in values.items()})


def run(graph: Graph, x, n_steps: int | None = None, progress: bool = False, device="cpu",
        batch_size: int | None = None, counters: bool = True) -> BackendResult:
    """Simulate ``graph`` on inputs ``x`` (static (B, *shape) or time-first (T, B, *shape));
    ``batch_size`` splits long inputs into chunks (results identical); ``counters=False``
    leaves out the activity counts (:mod:`tsslc.backends.counters`)."""
    target = compiled_target(graph)
    T = n_steps_of(graph, n_steps)
    # no autograd anywhere: the graph's arrays are constants, a tensor input is detached
    # (cheaper than a no_grad context on every streaming call)
    x = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    B = batch_of(graph, x)
    p = plan(graph, target, device)
    cplan = count_plan(graph) if counters else None
    step = int(batch_size or B) or 1
    if 0 < B <= step:  # one chunk (streaming: one sample a call)
        tally = cplan.tally(T, B, MAC_CHUNK) if cplan is not None else None
        walker = IntSim(graph, target, x, T, device, tally, graph_plan=p, fuse=True)
        walker.run()
        out = {k: _numpy(v) for k, v in walker.spikes.items()}
        return BackendResult(out, tally.result() if tally is not None else None, p.output_population, "intsim",
                             target=graph.metadata["target"])
    chunks = range(0, B, step)
    if progress and len(chunks) > 1:
        chunks = tqdm(chunks, desc="intsim", unit="batch")
    spikes_all: dict[str, list[np.ndarray]] = {}
    total: Counters | None = None
    for i in chunks:
        xs = batch_slice(graph, x, i, i + step)
        tally = cplan.tally(T, batch_of(graph, xs), MAC_CHUNK) if cplan is not None else None
        walker = IntSim(graph, target, xs, T, device, tally, graph_plan=p, fuse=True)
        walker.run()
        if tally is not None:
            c = tally.result()
            total = c if total is None else total + c
        for k, v in walker.spikes.items():
            spikes_all.setdefault(k, []).append(_numpy(v))
    out = {k: v[0] if len(v) == 1 else np.concatenate(v, axis=1) for k, v in spikes_all.items()}
    return BackendResult(out, total, p.output_population, "intsim", target=graph.metadata["target"])
