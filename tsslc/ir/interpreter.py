"""Reference float interpreter of an IR graph: the yardstick the back ends are measured by.

It executes every node with the same kernels the trained torch model uses
(:mod:`tsslc.layers`, :func:`tsslc.functional.lif_forward`), so on the same batch it
reproduces the model's spikes bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tsslc.errors import TsslcError
from tsslc.functional import input_psc, lif_forward
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.layers import conv_current, dense_current, sum_pool


@dataclass
class Result:
    spikes: dict[str, torch.Tensor]  # LIF node -> (T, B, *shape) 0/1
    output_psc: torch.Tensor  # (T, B, n_out)
    output_population: str

    @property
    def output_spikes(self) -> torch.Tensor:
        return self.spikes[self.output_population]

    def predictions(self) -> torch.Tensor:
        """Class = output neuron with the most spikes (ties: lowest index)."""
        return self.output_spikes.sum(0).argmax(-1)


def time_input(graph: Graph, x, n_steps: int) -> torch.Tensor:
    """(T, B, *shape) raw input p[t] from static (B, *shape) or event (B, T, *shape) data."""
    shape = tuple(graph[graph.input_name].shape)
    x = torch.as_tensor(x)
    if not torch.is_floating_point(x):
        x = x.to(torch.float32)
    if x.dim() == len(shape) + 1 and tuple(x.shape[1:]) == shape:
        return x.unsqueeze(0).expand(n_steps, *x.shape)
    if x.dim() == len(shape) + 2 and tuple(x.shape[2:]) == shape and x.shape[1] == n_steps:
        return x.transpose(0, 1)
    raise TsslcError(f"input of shape {tuple(x.shape)} does not fit the graph's input {shape} with T={n_steps}")


def _param(arr: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(arr).to(device=like.device, dtype=like.dtype)


@torch.no_grad()
def run(graph: Graph, x, n_steps: int | None = None, device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32) -> Result:
    """Simulate ``graph`` on a batch ``x``; returns every LIF's spikes and the output PSC.

    ``dtype`` is the arithmetic of the whole simulation (input, parameters and state are cast
    to it): float32 reproduces the trained model bit for bit; float64 shows that a pass which
    only reassociates float sums (folding pooling) preserves the spikes."""
    if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TsslcError(f"the interpreter runs in a float dtype, got {dtype}")
    graph.validate()
    T = int(n_steps or graph.metadata.get("n_steps", 0))
    if T < 1:
        raise TsslcError("n_steps is not given and not in the graph's metadata")
    values: dict[str, torch.Tensor] = {}
    spikes: dict[str, torch.Tensor] = {}
    for name in graph.order():
        node = graph[name]
        preds = graph.predecessors(name)
        if isinstance(node, N.Input):
            p = time_input(graph, x, T).to(device=device, dtype=dtype)
            values[name] = input_psc(p, node.tau_s) if node.tau_s is not None else p
            continue
        v = values[preds[0]]
        for extra in preds[1:]:
            v = v + values[extra]
        if isinstance(node, N.Dense):
            values[name] = dense_current(v, _param(node.weight, v))
        elif isinstance(node, N.Conv2d):
            values[name] = conv_current(v, _param(node.weight, v), node.stride, node.padding, node.groups)
        elif isinstance(node, N.SumPool2d):
            values[name] = sum_pool(v, node.kernel, node.theta)
        elif isinstance(node, N.Flatten):
            values[name] = v.reshape(v.shape[0], v.shape[1], -1)
        elif isinstance(node, (N.Dropout, N.Output)):
            values[name] = v
        elif isinstance(node, N.LIF):
            a, s, _, _ = lif_forward(v, node.tau_m, node.tau_s, node.threshold)
            values[name], spikes[name] = a, s
        else:
            raise TsslcError(f"node '{name}': the interpreter cannot run {node.kind!r} nodes")
    return Result(spikes, values[graph.output_name], graph.output_population)
