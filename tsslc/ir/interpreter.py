"""Reference float interpreter of an IR graph: the yardstick the back ends are measured by.

It executes every node with the same kernels the trained torch model uses
(:mod:`tsslc.layers`, :func:`tsslc.functional.lif_forward`), so on the same batch it
reproduces the model's spikes bit for bit. It is a :class:`~tsslc.ir.walker.GraphWalker`
(one method per node kind); calibration subclasses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tsslc.errors import TsslcError
from tsslc.functional import input_psc, lif_forward
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.layout import time_input
from tsslc.ir.walker import GraphWalker
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


def _param(arr, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(arr, device=like.device, dtype=like.dtype)


class FloatInterpreter(GraphWalker):
    """The float graph executed with the trained model's kernels; ``env`` holds every node's
    output (PSCs and currents, time-first) and :attr:`spikes` every LIF's spikes."""

    what = "the float interpreter"

    def __init__(self, graph: Graph, x, n_steps: int, device="cpu", dtype: torch.dtype = torch.float32):
        super().__init__(graph)
        self.x, self.n_steps, self.device, self.dtype = x, n_steps, device, dtype
        self.spikes: dict[str, torch.Tensor] = {}

    def input(self, name, node: N.Input, x):
        p = time_input(self.graph, self.x, self.n_steps).to(device=self.device, dtype=self.dtype)
        return input_psc(p, node.tau_s) if node.tau_s is not None else p

    def dense(self, name, node: N.Dense, x):
        return dense_current(x, _param(node.weight, x))

    def conv2d(self, name, node: N.Conv2d, x):
        return conv_current(x, _param(node.weight, x), node.stride, node.padding, node.groups)

    def sumpool2d(self, name, node: N.SumPool2d, x):
        return sum_pool(x, node.kernel, node.theta)

    def flatten(self, name, node, x):
        return x.reshape(x.shape[0], x.shape[1], -1)

    def dropout(self, name, node, x):
        return x

    def output(self, name, node, x):
        return x

    def lif(self, name, node: N.LIF, x):
        a, s = self.lif_forward(name, node, x)
        self.spikes[name] = s
        return a

    def lif_forward(self, name, node: N.LIF, x):
        """(PSC, spikes) of a population for its input current (subclasses record more)."""
        a, s, _, _ = lif_forward(x, node.tau_m, node.tau_s, node.threshold)
        return a, s


@torch.no_grad()
def run(graph: Graph, x, n_steps: int | None = None, device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32) -> Result:
    """Simulate ``graph`` on a batch ``x`` (static ``(B, *shape)`` or time-first
    ``(T, B, *shape)``, :mod:`tsslc.ir.layout`); returns every LIF's spikes and the output PSC.

    ``dtype`` is the arithmetic of the whole simulation (input, parameters and state are cast
    to it): float32 reproduces the trained model bit for bit; float64 shows that a pass which
    only reassociates float sums (folding pooling) preserves the spikes."""
    if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TsslcError(f"the interpreter runs in a float dtype, got {dtype}")
    graph.validate()
    T = n_steps_of(graph, n_steps)
    walker = FloatInterpreter(graph, x, T, device, dtype)
    env = walker.run()
    return Result(walker.spikes, env[graph.output_name], graph.output_population)


def n_steps_of(graph: Graph, n_steps: int | None = None) -> int:
    """The number of steps to run: ``n_steps`` if given, else the graph's metadata."""
    T = n_steps if n_steps is not None else graph.metadata.get("n_steps")
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise TsslcError(f"n_steps must be a positive integer (given, or in the graph's metadata), got {T!r:.40}")
    return T
