"""``tsslc inspect MODEL [--png FILE]``: per-layer table of a model file (type, shape,
neurons, synapses, parameters, fan-in/fan-out) and, on request, a picture of the graph.

``tsslc inspect CONFIG.yaml``: the network a training config builds (per-layer output shape
and parameters, :func:`tsslc.network.describe`), without training or allocating it."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("model", help="a tsslc model file (from 'tsslc export', 'tsslc compile' or 'tsslc nir import'), "
                                      "or a training config (.yaml)")
    parser.add_argument("--png", metavar="FILE", default=None, help="also draw the graph into this PNG file (model files)")


def run(args) -> int:
    if str(args.model).lower().endswith((".yaml", ".yml")):
        from tsslc.config import load_config
        from tsslc.errors import TsslcError
        from tsslc.network import format_description

        if args.png:
            raise TsslcError(f"--png draws a model file's graph; {args.model} is a config (export a trained model first)")
        config = load_config(args.model)
        print(f"{args.model}:")
        print(format_description(config))
        return 0
    from tsslc.atomic import refuse_clobber
    from tsslc.ir import io
    from tsslc.ir.inspect import draw, format_table

    refuse_clobber([("--png", args.png)], [("model", args.model)])
    graph = io.load(args.model)
    print(f"{args.model}: {len(graph)} nodes")
    print(format_table(graph))
    if args.png:
        draw(graph, args.png)
        print(f"graph drawn to {args.png}")
    return 0
