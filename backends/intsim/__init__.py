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

``run(graph, x, n_steps=None, progress=False, device="cpu", batch_size=None)`` →
:class:`tsslc.backends.BackendResult` with every IntLIF's spikes ``(T, B, *shape)`` uint8 and
the counters (see BackendResult; ``per_core`` uses ``target.core_assignment(graph)``).
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from tsslc.backends import BackendResult
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.interpreter import time_input
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


@torch.no_grad()
def simulate(graph: Graph, x, n_steps: int | None = None, device="cpu") -> tuple[dict, dict]:
    """One batch: (spikes {lif: (T,B,*) int64 tensor}, currents-and-inputs {node: tensor})."""
    target = compiled_target(graph)
    graph.validate()
    T = int(n_steps or graph.metadata.get("n_steps", 0))
    if T < 1:
        raise TsslcError("n_steps is not given and not in the graph's metadata")
    check = getattr(target, "check_params", None)
    values: dict[str, torch.Tensor] = {}
    spikes: dict[str, torch.Tensor] = {}
    for name in graph.order():
        node = graph[name]
        if isinstance(node, N.IntInput):
            p = time_input(graph, x, T).to(device)
            if p.stride(0) == 0:  # static: the same payload at every step
                values[name] = target.input_spikes(node, p[:1]).expand(p.shape)
            else:
                values[name] = target.input_spikes(node, p)
            continue
        if isinstance(node, (N.Input, N.Dense, N.Conv2d, N.LIF, N.SumPool2d, N.Dropout)):
            raise TsslcError(f"node '{name}' ({node.kind}): intsim runs compiled graphs only; compile the model first")
        preds = graph.predecessors(name)
        v = values[preds[0]]
        for extra in preds[1:]:
            v = v + values[extra]
        if isinstance(node, (N.IntDense, N.IntConv2d)):
            if v.stride(0) == 0:  # the same input at every step: one synaptic pass, broadcast
                out = target.synapse(node, v[:1])
                values[name] = out.expand(T, *out.shape[1:])
            else:
                values[name] = target.synapse(node, v)
        elif isinstance(node, N.Flatten):
            values[name] = v.reshape(v.shape[0], v.shape[1], -1)
        elif isinstance(node, N.IntLIF):
            if node.target != target.name:
                raise TsslcError(f"node '{name}': population of target '{node.target}' in a {target.name} graph")
            if check is not None:
                check(node.params, f"node '{name}'")
            values[name] = _population(target, node, v)
            spikes[name] = values[name]
        elif isinstance(node, N.Output):
            values[name] = v
        else:
            raise TsslcError(f"node '{name}': intsim cannot run {node.kind!r} nodes")
    return spikes, values


def _counters(graph: Graph, target, values: dict, spikes: dict) -> dict:
    """Counters of one batch (python ints and per-core numpy arrays)."""
    any_s = next(iter(spikes.values()))
    T, B = int(any_s.shape[0]), int(any_s.shape[1])
    cores = target.core_assignment(graph)
    n_cores = int(max((c.max() + 1 for c in cores.values() if c.size), default=0))
    pc = {k: np.zeros(n_cores, np.int64) for k in ("spikes", "synaptic_events", "neuron_updates", "active_neuron_updates")}
    c = {"samples": B, "steps": T, "spikes": {}, "synaptic_events": {}, "neuron_updates": {}, "active_neuron_updates": {}}
    for name in graph.order():
        node = graph[name]
        if isinstance(node, N.IntLIF):
            s = spikes[name].reshape(T, B, -1)
            per_neuron = s.sum((0, 1)).cpu().numpy()
            cur = values[graph.predecessors(name)[0]].reshape(T, B, -1)
            active = (cur != 0).sum((0, 1)).cpu().numpy()
            core = cores[name]
            c["spikes"][name] = int(per_neuron.sum())
            c["neuron_updates"][name] = T * B * int(s.shape[-1])
            c["active_neuron_updates"][name] = int(active.sum())
            np.add.at(pc["spikes"], core, per_neuron)
            np.add.at(pc["neuron_updates"], core, T * B)
            np.add.at(pc["active_neuron_updates"], core, active)
        elif isinstance(node, (N.IntDense, N.IntConv2d)):
            src = values[graph.predecessors(name)[0]]
            nz = (src != 0).to(torch.float64).sum((0, 1))  # per input: spikes over steps and samples
            if isinstance(node, N.IntDense):
                mask = torch.as_tensor(node.weight != 0, dtype=torch.float64, device=nz.device)
                per_out = mask @ nz.reshape(-1)
            else:
                mask = torch.as_tensor(node.weight != 0, dtype=torch.float64, device=nz.device)
                per_out = torch.nn.functional.conv2d(nz[None], mask, None, node.stride, node.padding, 1, node.groups)[0]
            per_out = per_out.reshape(-1).round().to(torch.int64).cpu().numpy()
            c["synaptic_events"][name] = int(per_out.sum())
            lif = graph.successors(name)[0]
            if lif in cores:
                np.add.at(pc["synaptic_events"], cores[lif], per_out)
    c["inactive_neuron_updates"] = {n: c["neuron_updates"][n] - c["active_neuron_updates"][n] for n in c["neuron_updates"]}
    c["per_core"] = {k: v.tolist() for k, v in pc.items()}
    return c


def _merge(a: dict, b: dict) -> dict:
    if not a:
        return b
    out = {"samples": a["samples"] + b["samples"], "steps": a["steps"]}
    for k in ("spikes", "synaptic_events", "neuron_updates", "active_neuron_updates", "inactive_neuron_updates"):
        out[k] = {n: a[k][n] + b[k][n] for n in a[k]}
    out["per_core"] = {k: [x + y for x, y in zip(a["per_core"][k], b["per_core"][k])] for k in a["per_core"]}
    return out


def run(graph: Graph, x, n_steps: int | None = None, progress: bool = False, device="cpu",
        batch_size: int | None = None) -> BackendResult:
    """Simulate ``graph`` on inputs ``x`` (static (B, *shape) or events (B, T, *shape));
    ``batch_size`` splits long inputs into chunks (results identical)."""
    target = compiled_target(graph)
    x = torch.as_tensor(x)
    B = int(x.shape[0])
    step = int(batch_size or B) or 1
    chunks = range(0, B, step)
    spikes_all: dict[str, list[np.ndarray]] = {}
    counters: dict = {}
    for i in tqdm(chunks, desc="intsim", unit="batch", disable=not progress or len(chunks) < 2):
        spikes, values = simulate(graph, x[i:i + step], n_steps, device)
        counters = _merge(counters, _counters(graph, target, values, spikes))
        for k, v in spikes.items():
            spikes_all.setdefault(k, []).append(v.to(torch.uint8).cpu().numpy())
    out = {k: np.concatenate(v, axis=1) for k, v in spikes_all.items()}
    return BackendResult(out, counters, graph.output_population, "intsim")
