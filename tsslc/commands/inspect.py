"""``tsslc inspect MODEL [--png FILE]``: per-layer table of a model file (type, shape,
neurons, synapses, parameters, fan-in/fan-out) and, on request, a picture of the graph."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("model", help="a tsslc model file (from 'tsslc export', 'tsslc compile' or 'tsslc nir import')")
    parser.add_argument("--png", metavar="FILE", default=None, help="also draw the graph into this PNG file")


def run(args) -> int:
    from tsslc.ir import io
    from tsslc.ir.inspect import draw, format_table

    graph = io.load(args.model)
    print(f"{args.model}: {len(graph)} nodes")
    print(format_table(graph))
    if args.png:
        draw(graph, args.png)
        print(f"graph drawn to {args.png}")
    return 0
