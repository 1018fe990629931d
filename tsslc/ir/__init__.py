"""Graph IR: typed nodes (:mod:`.nodes`), the graph (:mod:`.graph`), export from a trained
network (:mod:`.export`) and the reference interpreter (:mod:`.interpreter`)."""

from tsslc.ir.graph import Graph, IRError
from tsslc.ir.nodes import (
    LIF, NODE_TYPES, Conv2d, Dense, Dropout, Flatten, Input, IntConv2d, IntDense, IntInput, IntLIF, Node, Output,
    SumPool2d,
)

__all__ = ["Graph", "IRError", "Node", "NODE_TYPES", "Input", "Dense", "Conv2d", "SumPool2d", "Flatten", "Dropout", "LIF", "Output",
           "IntInput", "IntDense", "IntConv2d", "IntLIF"]
