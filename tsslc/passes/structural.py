"""Structural passes: plain functions Graph → Graph that keep the graph's semantics.

Each returns a new graph (the argument is left untouched) and raises :class:`TsslcError`
naming the node when it cannot apply. That a pass preserves the spikes is shown by the
reference interpreter (tests/test_passes.py).

* :func:`drop_dropout` — dropout is the identity at inference.
* :func:`fold_pooling` — a sum pool of k (factor θp) is linear, so it folds exactly into the
  following synapse: before a conv with kernel K, stride s, padding P it becomes a conv with
  kernel K·k, stride s·k, padding P·k and weights θp·W repeated over k×k; before a
  flatten + dense the dense weights are repeated over the k×k window, and the remainder
  rows/columns the pool drops get zero weight.
* :func:`fold_input_scale` — a constant factor c on the input folds into the first synapses
  (the input filter is linear): ``fold_input_scale(g, c)`` run on x equals g run on c·x.
* :func:`canonical_order` — nodes re-inserted in topological order, ties broken by name, so
  equal graphs built in different orders compare equal.

Folded weights are computed and kept in float64 (no rounding is added; the float32 model
is reproduced up to the reassociation of sums, see the interpreter's ``dtype``).
"""

from __future__ import annotations

import copy

import numpy as np

from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph


class PassError(TsslcError):
    """A pass that cannot apply to a graph; the message names the node and the reason."""


def _rebuild(graph: Graph, order: list[str], replace: dict | None = None, drop: set | None = None,
             edges: list[tuple[str, str]] | None = None, metadata: dict | None = None) -> Graph:
    replace, drop = replace or {}, drop or set()
    new = Graph(copy.deepcopy(graph.metadata) if metadata is None else metadata)
    for name in order:
        if name not in drop:
            new.add(name, replace.get(name, graph[name]))
    for s, d in graph.edges() if edges is None else edges:
        if s not in drop and d not in drop:
            new.connect(s, d)
    return new


def drop_dropout(graph: Graph) -> Graph:
    """Remove every Dropout node, wiring its predecessors to its successors."""
    graph.validate()
    drop = set(graph.of_type(N.Dropout))
    edges = [e for e in graph.edges() if e[0] not in drop and e[1] not in drop]
    for name in graph.of_type(N.Dropout):
        for p in _sources(graph, name, drop):
            for s in graph.successors(name):
                if s not in drop and (p, s) not in edges:
                    edges.append((p, s))
    out = _rebuild(graph, graph.order(), drop=drop, edges=edges)
    out.validate()
    return out


def _sources(graph: Graph, name: str, drop: set) -> list[str]:
    """The nearest predecessors of ``name`` that are not dropped."""
    out = []
    for p in graph.predecessors(name):
        out.extend(_sources(graph, p, drop) if p in drop else [p])
    return out


def _pool_conv(pool: N.SumPool2d, conv: N.Conv2d, in_shape, where: str) -> N.Conv2d:
    k, th = pool.kernel, pool.theta
    c, h, w = in_shape
    if conv.padding and (h % k or w % k):
        raise PassError(
            f"cannot fold pooling '{where}' into its padded conv: its input {in_shape} leaves {h % k} row(s) / "
            f"{w % k} column(s) that the pool drops but a padded kernel of K·k would read (no exact conv exists)"
        )
    weight = np.repeat(np.repeat(conv.weight.astype(np.float64) * th, k, axis=2), k, axis=3)
    return N.Conv2d(weight=weight, stride=conv.stride * k, padding=conv.padding * k, groups=conv.groups)


def _pool_dense(pool: N.SumPool2d, dense: N.Dense, in_shape, where: str) -> N.Dense:
    k, th = pool.kernel, pool.theta
    c, h, w = in_shape
    ph, pw = h // k, w // k
    wd = dense.weight.astype(np.float64).reshape(dense.weight.shape[0], c, ph, pw) * th
    full = np.zeros((dense.weight.shape[0], c, h, w), np.float64)
    full[:, :, : ph * k, : pw * k] = np.repeat(np.repeat(wd, k, axis=2), k, axis=3)
    return N.Dense(weight=full.reshape(dense.weight.shape[0], c * h * w))


def fold_synapse(pool: N.SumPool2d, synapse, in_shape, where: str):
    """``synapse`` (Conv2d, or the Dense after a flatten) with ``pool`` (whose input has
    ``in_shape``) folded in: the synapse :func:`fold_pooling` puts in their place."""
    if isinstance(synapse, N.Conv2d):
        return _pool_conv(pool, synapse, in_shape, where)
    if isinstance(synapse, N.Dense):
        return _pool_dense(pool, synapse, in_shape, where)
    raise PassError(f"cannot fold pooling before '{where}': a {synapse.kind} synapse cannot absorb a sum pool")


def fold_pooling(graph: Graph) -> Graph:
    """Fold every SumPool2d into the synapses it feeds (see the module docstring)."""
    graph = drop_dropout(graph) if graph.of_type(N.Dropout) else graph.copy()  # never the argument itself
    while True:
        pools = graph.of_type(N.SumPool2d)
        if not pools:
            return graph
        # fold the last pool first: a pool feeding a pool is folded once its successor is a conv
        name = pools[-1]
        pool = graph[name]
        shapes = graph.shapes()
        (src,) = graph.predecessors(name)
        in_shape = shapes[src]
        replace: dict[str, N.Node] = {}
        for succ in graph.successors(name):
            node = graph[succ]
            if isinstance(node, N.Conv2d):
                replace[succ] = _pool_conv(pool, node, in_shape, name)
            elif isinstance(node, N.Flatten):
                denses = graph.successors(succ)
                bad = [d for d in denses if not isinstance(graph[d], N.Dense)]
                if bad:
                    raise PassError(
                        f"cannot fold pooling '{name}': flatten '{succ}' feeds {bad[0]!r} "
                        f"({graph[bad[0]].kind}), not a dense synapse"
                    )
                for d in denses:
                    replace[d] = _pool_dense(pool, graph[d], in_shape, name)
            else:
                raise PassError(
                    f"cannot fold pooling '{name}': it feeds '{succ}' ({node.kind}); only a conv2d or a "
                    f"flatten followed by dense synapses can absorb a sum pool"
                )
        edges = [e for e in graph.edges() if name not in e] + [(src, s) for s in graph.successors(name)]
        graph = _rebuild(graph, graph.order(), replace=replace, drop={name}, edges=edges)
        graph.validate()


def fold_input_scale(graph: Graph, scale: float) -> Graph:
    """Graph g' with g'(x) = graph(scale·x): the factor moves into the first synapses.

    The synapses reached from the input through flatten / dropout / pooling nodes get their
    weights multiplied (in float64); ``metadata["input_scale_folded"]`` records the product
    of all factors folded so far."""
    scale = float(scale)
    if not np.isfinite(scale) or scale == 0:
        raise PassError(f"input scale must be a finite non-zero number, got {scale}")
    graph.validate()
    inp = graph.input_name
    if not isinstance(graph[inp], N.Input):
        raise PassError(f"input '{inp}' is a {graph[inp].kind} node: scaling folds only into a float graph")
    replace: dict[str, N.Node] = {}
    frontier = list(graph.successors(inp))
    seen = set()
    while frontier:
        name = frontier.pop(0)
        if name in seen:
            continue
        seen.add(name)
        node = graph[name]
        if isinstance(node, N.Dense):
            replace[name] = N.Dense(weight=node.weight.astype(np.float64) * scale)
        elif isinstance(node, N.Conv2d):
            replace[name] = N.Conv2d(weight=node.weight.astype(np.float64) * scale, stride=node.stride,
                                     padding=node.padding, groups=node.groups)
        elif isinstance(node, (N.Flatten, N.Dropout, N.SumPool2d)):
            frontier.extend(graph.successors(name))
        else:
            raise PassError(f"cannot fold the input scale: the input reaches '{name}' ({node.kind}) before any synapse")
    metadata = copy.deepcopy(graph.metadata)
    metadata["input_scale_folded"] = float(metadata.get("input_scale_folded", 1.0)) * scale
    out = _rebuild(graph, graph.order(), replace=replace, metadata=metadata)
    out.validate()
    return out


def canonical_order(graph: Graph) -> Graph:
    """The same graph with nodes inserted in topological order, ties broken by name."""
    try:
        order = graph.topological_order(key=str)
    except TsslcError:
        raise PassError("cannot order the graph: it has a cycle") from None
    pos = {n: i for i, n in enumerate(order)}
    edges = sorted(graph.edges(), key=lambda e: (pos[e[0]], pos[e[1]]))
    return _rebuild(graph, order, edges=edges)
