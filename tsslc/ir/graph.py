"""The IR graph: named :mod:`tsslc.ir.nodes` in a networkx DiGraph, with shape inference.

Edges carry PSCs/currents; a node with several predecessors receives their sum (only
meaningful for currents into a LIF population, as in NIR). Node order is the insertion
order wherever the topology leaves a choice, so iteration is deterministic.

The networkx object is private: other modules use the methods here (``order``, ``items``,
``predecessors``, ``successors``, ``edges``, ``has_edge``, ``shapes``; ``to_networkx`` for
a copy to draw). A graph is built with ``add``/``connect``; nodes are immutable, so a pass
builds a new graph (sharing unchanged nodes is safe) instead of changing its argument.
"""

from __future__ import annotations

import copy

import networkx as nx

from tsslc.errors import TsslcError
from tsslc.ir.nodes import LIF, Input, IntInput, IntLIF, Node, Output, Shape


class IRError(TsslcError):
    """A graph that is not well formed; the message names the node and the problem."""


class Graph:
    def __init__(self, metadata: dict | None = None):
        self._g = nx.DiGraph()
        self.metadata: dict = dict(metadata or {})
        self._counter = 0
        self._order: list[str] | None = None  # cached topological order (structure edits reset it)
        self._version = 0  # bumped by every structure edit (add, connect, remove)
        self._memo: dict = {}  # memo(): derived data, dropped by every structure edit

    # construction -----------------------------------------------------------------------
    def add(self, name: str, node: Node, after: str | list[str] | None = None) -> str:
        if not isinstance(name, str) or not name:
            raise IRError(f"node names must be non-empty strings, got {name!r}")
        if name in self._g:
            raise IRError(f"node '{name}' already exists")
        if not isinstance(node, Node):
            raise IRError(f"node '{name}': {type(node).__name__} is not an IR node")
        self._g.add_node(name, node=node, order=self._counter)
        self._counter += 1
        self._order = None
        self._edited()
        for src in [after] if isinstance(after, str) else (after or []):
            self.connect(src, name)
        return name

    def connect(self, src: str, dst: str) -> None:
        for n in (src, dst):
            if n not in self._g:
                raise IRError(f"edge {src} -> {dst}: unknown node '{n}'")
        if self._g.has_edge(src, dst):
            raise IRError(f"duplicate edge {src} -> {dst}")
        self._g.add_edge(src, dst)
        self._order = None
        self._edited()

    def remove(self, name: str) -> None:
        self._g.remove_node(name)
        self._order = None
        self._edited()

    def _edited(self) -> None:
        self._version += 1
        self._memo.clear()

    @property
    def version(self) -> int:
        """A number that changes with every structure edit (``add``, ``connect``, ``remove``)."""
        return self._version

    def memo(self, key, make, stamp=None):
        """``make()``, computed once per graph and ``key`` and reused until the structure
        changes (nodes are immutable and a pass builds a new graph, so a graph's nodes and
        edges are all the result can depend on) or ``stamp`` differs from the stored one
        (for what a back end also reads from ``metadata``, which is a plain dict: pass e.g.
        the identities of the entries it reads). Back ends keep their per-graph plans here."""
        hit = self._memo.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = make()
        self._memo[key] = (stamp, value)
        return value

    def __getstate__(self):  # copies and pickles carry no memo (it may hold device tensors)
        state = dict(self.__dict__)
        state["_memo"] = {}
        return state

    # access ------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Node:
        return self._g.nodes[name]["node"]

    def __contains__(self, name) -> bool:
        return name in self._g

    def __len__(self) -> int:
        return self._g.number_of_nodes()

    def topological_order(self, key=str) -> list[str]:
        """Topological order with ties broken by ``key(name)`` (not by insertion order)."""
        try:
            return list(nx.lexicographical_topological_sort(self._g, key=key))
        except nx.NetworkXUnfeasible:
            raise IRError("the graph has a cycle") from None

    def order(self) -> list[str]:
        """Topological order, ties broken by insertion order."""
        if self._order is None:
            try:
                self._order = list(nx.lexicographical_topological_sort(self._g, key=lambda n: self._g.nodes[n]["order"]))
            except nx.NetworkXUnfeasible:
                raise IRError("the graph has a cycle") from None
        return list(self._order)

    def items(self):
        return [(n, self[n]) for n in self.order()]

    def has_edge(self, src: str, dst: str) -> bool:
        return self._g.has_edge(src, dst)

    def to_networkx(self) -> nx.DiGraph:
        """A copy of the structure as a networkx DiGraph (nodes carry ``node`` and ``order``)."""
        return self._g.copy()

    def edges(self) -> list[tuple[str, str]]:
        return sorted(self._g.edges, key=lambda e: (self._g.nodes[e[0]]["order"], self._g.nodes[e[1]]["order"]))

    def predecessors(self, name: str) -> list[str]:
        return sorted(self._g.predecessors(name), key=lambda n: self._g.nodes[n]["order"])

    def successors(self, name: str) -> list[str]:
        return sorted(self._g.successors(name), key=lambda n: self._g.nodes[n]["order"])

    def of_type(self, cls) -> list[str]:
        return [n for n in self.order() if isinstance(self[n], cls)]

    @property
    def input_name(self) -> str:
        return self.memo("input_name", self._input_name)

    def _input_name(self) -> str:
        ins = self.of_type((Input, IntInput))
        if len(ins) != 1:
            raise IRError(f"the graph must have exactly one input node, found {len(ins)}")
        return ins[0]

    @property
    def output_name(self) -> str:
        outs = self.of_type(Output)
        if len(outs) != 1:
            raise IRError(f"the graph must have exactly one output node, found {len(outs)}")
        return outs[0]

    @property
    def output_population(self) -> str:
        """The LIF population whose spike counts classify (the one feeding the output)."""
        preds = self.predecessors(self.output_name)
        if len(preds) != 1 or not isinstance(self[preds[0]], (LIF, IntLIF)):
            raise IRError(f"output '{self.output_name}' must be fed by exactly one LIF population")
        return preds[0]

    # checking ----------------------------------------------------------------------------
    def shapes(self) -> dict[str, Shape]:
        """Output shape of every node; raises :class:`IRError` naming the first bad node."""
        shapes: dict[str, Shape] = {}
        for name in self.order():
            node = self[name]
            preds = self.predecessors(name)
            if isinstance(node, (Input, IntInput)):
                in_shape = None
                if preds:
                    raise IRError(f"node '{name}' (input): has predecessors {preds}")
            else:
                if not preds:
                    raise IRError(f"node '{name}' ({node.kind}): has no input")
                in_shapes = {shapes[p] for p in preds}
                if len(in_shapes) > 1:
                    raise IRError(f"node '{name}' ({node.kind}): inputs of different shapes {sorted(in_shapes)}")
                if len(preds) > 1 and not isinstance(node, (LIF, IntLIF)):
                    raise IRError(f"node '{name}' ({node.kind}): only LIF populations may sum several inputs")
                in_shape = in_shapes.pop()
            try:
                shapes[name] = tuple(int(d) for d in node.infer_shape(in_shape))
            except ValueError as e:
                raise IRError(f"node '{name}' ({node.kind}): {e}") from None
        return shapes

    def validate(self) -> dict[str, Shape]:
        """Structure and shapes; returns the shapes."""
        if len(self) == 0:
            raise IRError("the graph is empty")
        self.input_name, self.output_name  # noqa: B018 - exactly one of each
        shapes = self.shapes()
        out = self.output_name
        for name in self.order():
            if name != out and not self.successors(name):
                raise IRError(f"node '{name}' ({self[name].kind}): its output goes nowhere")
            if not nx.has_path(self._g, self.input_name, name):
                raise IRError(f"node '{name}' ({self[name].kind}): not reachable from the input")
        self.output_population  # noqa: B018
        return shapes

    # value semantics ---------------------------------------------------------------------
    def copy(self) -> "Graph":
        """A new graph with the same (immutable) nodes and edges and a deep copy of the metadata."""
        new = Graph(copy.deepcopy(self.metadata))
        for name, node in self.items():
            new.add(name, node)
        for s, d in self.edges():
            new.connect(s, d)
        return new

    def with_node(self, name: str, node: Node) -> "Graph":
        """A new graph in which node ``name`` is ``node`` (same edges, metadata copied); this
        graph is unchanged. E.g. ``g.with_node("l1", dataclasses.replace(g["l1"], threshold=2.0))``."""
        if name not in self._g:
            raise IRError(f"with_node: unknown node '{name}'")
        if not isinstance(node, Node):
            raise IRError(f"node '{name}': {type(node).__name__} is not an IR node")
        new = Graph(copy.deepcopy(self.metadata))
        for n, old in self.items():
            new.add(n, node if n == name else old)
        for s, d in self.edges():
            new.connect(s, d)
        return new

    def __eq__(self, other) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return (
            self.order() == other.order()
            and all(self[n] == other[n] for n in self.order())
            and set(self._g.edges) == set(other._g.edges)
            and self.metadata == other.metadata
        )

    def __repr__(self) -> str:
        return f"Graph({len(self)} nodes: {' -> '.join(self.order())})"
