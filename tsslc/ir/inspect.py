"""Per-layer summary of a graph (``tsslc inspect``) and a picture of it.

Columns, per node in graph order:

* neurons — LIF / IntLIF population size (0 for every other node);
* synapses — non-zero connections: dense: non-zero weights; conv: for every output neuron,
  the non-zero kernel weights whose input position lies inside the input (padding is not a
  connection), summed; sum pooling: its k×k connections per output;
* parameters — number of stored weights (array elements);
* fan-in / fan-out — mean and max non-zero connections per output / per input neuron of a
  synapse or pool; for a population, the fan-in of the synapses feeding it and the fan-out
  of the synapses it feeds (per neuron).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tsslc.atomic import atomic_write
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph

SYNAPSES = (N.Dense, N.Conv2d, N.IntDense, N.IntConv2d)
POPULATIONS = (N.LIF, N.IntLIF)


@dataclass
class Row:
    name: str
    kind: str
    shape: tuple
    neurons: int
    synapses: int
    parameters: int
    fan_in: tuple[float, int] | None = None  # (mean, max)
    fan_out: tuple[float, int] | None = None


def _dense_counts(weight: np.ndarray):
    nz = weight != 0
    return nz.sum(axis=1), nz.sum(axis=0)  # per output, per input


@torch.no_grad()
def _conv_counts(weight: np.ndarray, in_shape, stride: int, padding: int, groups: int):
    """Non-zero in-bounds connections per output neuron and per input neuron (exact integers)."""
    mask = torch.from_numpy((weight != 0).astype(np.float64))
    with torch.enable_grad():
        x = torch.ones((1, *in_shape), dtype=torch.float64, requires_grad=True)
        y = torch.nn.functional.conv2d(x, mask, None, stride, padding, 1, groups)
        y.sum().backward()
    return y[0].round().long().numpy(), x.grad[0].round().long().numpy()


def _pool_counts(kernel: int, in_shape):
    c, h, w = in_shape
    per_out = np.full((c, h // kernel, w // kernel), kernel * kernel)
    per_in = np.zeros(in_shape, dtype=np.int64)
    per_in[:, : h // kernel * kernel, : w // kernel * kernel] = 1
    return per_out, per_in


def _stats(counts) -> tuple[float, int] | None:
    counts = np.asarray(counts)
    if counts.size == 0:
        return None
    return float(counts.mean()), int(counts.max())


def summarize(graph: Graph) -> list[Row]:
    """One :class:`Row` per node, in graph order."""
    shapes = graph.validate()
    rows: dict[str, Row] = {}
    per_in: dict[str, np.ndarray] = {}  # synapse/pool -> fan-out per input neuron
    per_out: dict[str, np.ndarray] = {}
    for name, node in graph.items():
        preds = graph.predecessors(name)
        in_shape = shapes[preds[0]] if preds else None
        neurons = synapses = 0
        if isinstance(node, (N.Dense, N.IntDense)):
            per_out[name], per_in[name] = _dense_counts(node.weight)
        elif isinstance(node, (N.Conv2d, N.IntConv2d)):
            per_out[name], per_in[name] = _conv_counts(node.weight, in_shape, node.stride, node.padding, node.groups)
        elif isinstance(node, N.SumPool2d):
            per_out[name], per_in[name] = _pool_counts(node.kernel, in_shape)
        elif isinstance(node, POPULATIONS):
            neurons = math.prod(shapes[name])
        if name in per_out:
            synapses = int(per_out[name].sum())
        parameters = sum(int(a.size) for a in node.arrays().values())
        rows[name] = Row(name, node.kind, tuple(shapes[name]), neurons, synapses, parameters,
                         _stats(per_out.get(name, [])), _stats(per_in.get(name, [])))
    for name, node in graph.items():
        if isinstance(node, POPULATIONS):
            ins = [per_out[p] for p in graph.predecessors(name) if p in per_out]
            rows[name].fan_in = _stats(sum(c.reshape(-1) for c in ins)) if ins else None
            outs = [per_in[s].reshape(-1) for s in _consumers(graph, name) if s in per_in]
            rows[name].fan_out = _stats(sum(outs)) if outs and all(o.size == outs[0].size for o in outs) else None
    return [rows[n] for n in graph.order()]


def _consumers(graph: Graph, name: str) -> list[str]:
    """Synapses/pools reading this population's output, looking through flatten and dropout."""
    out, stack = [], list(graph.successors(name))
    while stack:
        s = stack.pop(0)
        if isinstance(graph[s], (N.Flatten, N.Dropout)):
            stack.extend(graph.successors(s))
        elif isinstance(graph[s], (*SYNAPSES, N.SumPool2d)):
            out.append(s)
    return out


def totals(rows: list[Row]) -> dict[str, int]:
    return {
        "neurons": sum(r.neurons for r in rows),
        "synapses": sum(r.synapses for r in rows if r.kind in ("dense", "conv2d", "int_dense", "int_conv2d")),
        "pooling_connections": sum(r.synapses for r in rows if r.kind == "sumpool2d"),
        "parameters": sum(r.parameters for r in rows),
    }


def _fan(f) -> str:
    return "-" if f is None else f"{f[0]:.1f}/{f[1]}"


def format_table(graph: Graph, rows: list[Row] | None = None) -> str:
    rows = summarize(graph) if rows is None else rows
    head = ("layer", "type", "shape", "neurons", "synapses", "params", "fan-in mean/max", "fan-out mean/max")
    body = [(r.name, r.kind, "x".join(map(str, r.shape)), f"{r.neurons:,}", f"{r.synapses:,}", f"{r.parameters:,}",
             _fan(r.fan_in), _fan(r.fan_out)) for r in rows]
    t = totals(rows)
    foot = ("total", "", "", f"{t['neurons']:,}", f"{t['synapses']:,}", f"{t['parameters']:,}", "", "")
    widths = [max(len(str(x[i])) for x in (head, *body, foot)) for i in range(len(head))]
    right = {3, 4, 5}

    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    sep = "  ".join("-" * w for w in widths)
    md = graph.metadata
    info = ", ".join(f"{k}={md[k]}" for k in ("n_steps", "tau_m", "tau_s", "dataset", "target") if k in md)
    out = [info] if info else []
    out += [line(head), sep, *map(line, body), sep, line(foot)]
    out.append(f"synapses count dense and conv connections; sum pooling adds {t['pooling_connections']:,} fixed connections")
    return "\n".join(out)


def draw(graph: Graph, path) -> Path:
    """A PNG of the graph (one box per node: name, type, shape), written atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import networkx as nx

    path = Path(path)
    shapes = graph.validate()
    order = graph.order()
    depth: dict[str, int] = {}
    for n in order:
        depth[n] = max((depth[p] + 1 for p in graph.predecessors(n)), default=0)
    lanes: dict[int, int] = {}
    pos = {}
    for n in order:
        lane = lanes.get(depth[n], 0)
        lanes[depth[n]] = lane + 1
        pos[n] = (lane, -depth[n])
    labels = {n: f"{n}\n{graph[n].kind} {'x'.join(map(str, shapes[n]))}" for n in order}
    colors = ["#f4a261" if isinstance(graph[n], POPULATIONS) else "#8ecae6" if isinstance(graph[n], SYNAPSES)
              else "#e9ecef" for n in order]
    fig, ax = plt.subplots(figsize=(4 + 3 * max(lanes.values()), 1.0 + 1.2 * len(lanes)))
    structure = graph.to_networkx()
    nx.draw_networkx_nodes(structure, pos, ax=ax, nodelist=order, node_color=colors, node_shape="o", node_size=900)
    nx.draw_networkx_edges(structure, pos, ax=ax, arrows=True, arrowsize=14, node_size=900)
    for n, (x, y) in pos.items():
        ax.annotate(labels[n], (x, y), xytext=(24, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_axis_off()
    ax.margins(0.2)
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"),
                            make_parents=False, what="picture")
    finally:
        plt.close(fig)
