"""Integer simulator: runs a compiled graph with its target's exact arithmetic.

Batched and vectorised on torch int64 tensors (CPU or GPU: ``device=``); the synapse of a
layer is computed for all steps at once (one exact matmul / conv), then the target's
:meth:`~tsslc.targets.base.Target.neuron_step` runs once per step on the whole
``(B, *shape)`` population — no Python loop over neurons or samples. Integer arithmetic
and provably exact float matmuls make results deterministic and identical on every device.

Time axis: the float model's (no synaptic latency): the current a population receives at
step t comes from its input's spikes at step t.

A static input (an image presented as the same graded payload at every step) is encoded
and sent through the first synapse once and broadcast over the T steps: the synapses are
time-invariant maps, so this is the same integer current T times cheaper.

The walk is :class:`IntSim`, a :class:`~tsslc.ir.walker.GraphWalker` (one method per node
kind). ``run(graph, x, n_steps=None, progress=False, device="cpu", batch_size=None,
counters=True)``
→ :class:`tsslc.backends.BackendResult` with every IntLIF's spikes ``(T, B, *shape)`` uint8
and the counters of :func:`tsslc.backends.counters.count_run` (per core from
``target.core_assignment(graph)``).
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from tsslc.backends import BackendResult
from tsslc.backends.counters import Counters, count_run
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.interpreter import n_steps_of
from tsslc.ir.layout import batch_size as batch_of, batch_slice, time_input
from tsslc.ir.walker import GraphWalker
from tsslc.targets import get_target


def compiled_target(graph: Graph):
    name = graph.metadata.get("target")
    if not name:
        raise TsslcError("the graph is not compiled for a target (no metadata['target']); run tsslc compile first")
    return get_target(name)


def _population(target, node: N.IntLIF, current: torch.Tensor) -> torch.Tensor:
    """All steps of one population: current (T, B, *shape) → spikes (T, B, *shape) int64."""
    T, B = current.shape[:2]
    state = target.init_state(node.params, tuple(node.shape), B, current.device)
    out = torch.empty_like(current)
    for t in range(T):
        state, out[t] = target.neuron_step(state, current[t], node.params)
    return out


class IntSim(GraphWalker):
    """A compiled graph executed with its target's integer arithmetic; ``env`` holds every
    node's integer output (time-first) and :attr:`spikes` every IntLIF's spikes. A float
    node is one error (compile the model first)."""

    what = "intsim"

    def __init__(self, graph: Graph, target, x, n_steps: int, device="cpu"):
        super().__init__(graph)
        self.target, self.x, self.n_steps, self.device = target, x, n_steps, device
        self.spikes: dict[str, torch.Tensor] = {}

    def unsupported(self, name, node):
        if node.kind in ("input", "dense", "conv2d", "lif", "sumpool2d", "dropout"):
            raise TsslcError(f"node '{name}' ({node.kind}): intsim runs compiled graphs only; compile the model first")
        return super().unsupported(name, node)

    def int_input(self, name, node: N.IntInput, x):
        p = time_input(self.graph, self.x, self.n_steps).to(self.device)
        if p.stride(0) == 0:  # static: the same payload at every step
            return self.target.input_spikes(node, p[:1]).expand(p.shape)
        return self.target.input_spikes(node, p)

    def _synapse(self, name, node, v):
        if v.stride(0) == 0:  # the same input at every step: one synaptic pass, broadcast
            out = self.target.synapse(node, v[:1])
            return out.expand(self.n_steps, *out.shape[1:])
        return self.target.synapse(node, v)

    int_dense = _synapse
    int_conv2d = _synapse

    def flatten(self, name, node, x):
        return x.reshape(x.shape[0], x.shape[1], -1)

    def output(self, name, node, x):
        return x

    def int_lif(self, name, node: N.IntLIF, x):
        if node.target != self.target.name:
            raise TsslcError(f"node '{name}': population of target '{node.target}' in a {self.target.name} graph")
        self.target.check_params(node.params, f"node '{name}'")
        self.spikes[name] = _population(self.target, node, x)
        return self.spikes[name]


@torch.no_grad()
def simulate(graph: Graph, x, n_steps: int | None = None, device="cpu") -> tuple[dict, dict]:
    """One batch: (spikes {lif: (T,B,*) int64 tensor}, currents-and-inputs {node: tensor})."""
    target = compiled_target(graph)
    graph.validate()
    walker = IntSim(graph, target, x, n_steps_of(graph, n_steps), device)
    values = walker.run()
    return walker.spikes, values


def run(graph: Graph, x, n_steps: int | None = None, progress: bool = False, device="cpu",
        batch_size: int | None = None, counters: bool = True) -> BackendResult:
    """Simulate ``graph`` on inputs ``x`` (static (B, *shape) or time-first (T, B, *shape));
    ``batch_size`` splits long inputs into chunks (results identical); ``counters=False``
    leaves out the activity counts (:func:`tsslc.backends.counters.count_run`)."""
    compiled_target(graph)
    x = torch.as_tensor(x)
    B = batch_of(graph, x)
    step = int(batch_size or B) or 1
    chunks = range(0, B, step)
    spikes_all: dict[str, list[np.ndarray]] = {}
    total: Counters | None = None
    for i in tqdm(chunks, desc="intsim", unit="batch", disable=not progress or len(chunks) < 2):
        spikes, values = simulate(graph, batch_slice(graph, x, i, i + step), n_steps, device)
        spikes = {k: v.to(torch.uint8).cpu().numpy() for k, v in spikes.items()}
        if counters:
            c = count_run(graph, spikes, inputs=values[graph.input_name].cpu())
            total = c if total is None else total + c
        for k, v in spikes.items():
            spikes_all.setdefault(k, []).append(v)
    out = {k: np.concatenate(v, axis=1) for k, v in spikes_all.items()}
    return BackendResult(out, total, graph.output_population, "intsim", target=graph.metadata["target"])
