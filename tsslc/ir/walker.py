"""The one graph walker: every back end that executes or translates a graph subclasses it.

As torch.fx's ``Interpreter.run_node``, :class:`GraphWalker` visits the nodes in the graph's
topological order and dispatches each to the method named after its ``kind``::

    class MyBackend(GraphWalker):
        def dense(self, name, node, x):      # x: the (combined) value of the predecessors
            return ...                       # the node's value, seen by its successors

A node kind without a method is one :class:`~tsslc.errors.TsslcError` naming the node, its
kind and the walker. Subclasses in tsslc: the float interpreter
(:class:`tsslc.ir.interpreter.FloatInterpreter`), calibration
(:class:`tsslc.targets.quantize.Calibrator`), the integer simulator
(:class:`tsslc.backends.intsim.IntSim`) and the Lava lowering
(:class:`tsslc.backends.lava.lowering.LavaLowering`). Adding a node kind therefore means
the node class (:func:`tsslc.ir.nodes.register_node`) plus one method per walker that must
handle it.

Method names are the kinds: ``input``, ``dense``, ``conv2d``, ``sumpool2d``, ``flatten``,
``dropout``, ``lif``, ``output``, ``int_input``, ``int_dense``, ``int_conv2d``,
``int_lif``. A method receives ``x = None`` for a node without predecessors (the input),
the predecessor's value for one, and :meth:`combine`'s result for several (default: their
sum, as edges into a node are summed in the IR and in NIR).
"""

from __future__ import annotations

from typing import Any

from tsslc.errors import TsslcError
from tsslc.ir.graph import Graph
from tsslc.ir.nodes import Node


class GraphWalker:
    """Walk ``graph`` in order, one method per node kind; :attr:`env` maps each visited node
    to its value. ``what`` names the walker in errors ("the float interpreter", ...)."""

    what: str = "this walker"

    def __init__(self, graph: Graph):
        self.graph = graph
        self.env: dict[str, Any] = {}

    def steps(self) -> list[tuple[str, Node, list[str]]]:
        """``(name, node, predecessors)`` in visiting order (a walker that runs one graph
        many times may return a list it made once)."""
        return [(name, node, self.graph.predecessors(name)) for name, node in self.graph.items()]

    def run(self) -> dict[str, Any]:
        """Visit every node (in ``graph.order()``); returns :attr:`env`."""
        for name, node, preds in self.steps():
            self.env[name] = self.run_node(name, node, preds)
        return self.env

    def run_node(self, name: str, node: Node, preds: list[str] | None = None) -> Any:
        if preds is None:
            preds = self.graph.predecessors(name)
        if not preds:
            x = None
        elif len(preds) == 1:
            x = self.env[preds[0]]
        else:
            x = self.combine(name, node, [self.env[p] for p in preds])
        method = getattr(type(self), node.kind, None)
        if method is None or not callable(method):
            return self.unsupported(name, node)
        return method(self, name, node, x)

    def combine(self, name: str, node: Node, values: list) -> Any:
        """The value a node with several predecessors receives: their sum."""
        out = values[0]
        for v in values[1:]:
            out = out + v
        return out

    def unsupported(self, name: str, node: Node) -> Any:
        raise TsslcError(f"node '{name}' ({node.kind}): {self.what} cannot run {node.kind!r} nodes")
