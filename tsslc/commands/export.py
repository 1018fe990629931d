"""``tsslc export RUN/checkpoint.pt -o MODEL``: a training checkpoint → a tsslc model file
(:func:`tsslc.export`, :func:`tsslc.save`). The model file holds the float IR graph of the
trained network; its metadata records n_steps, τm, τs, n_class, dataset, loss, the epoch and
the test accuracy. A run folder may be given instead of its checkpoint.
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="RUN/checkpoint.pt written by 'tsslc train' (or the RUN folder)")
    parser.add_argument("-o", "--out", "--output", dest="out", required=True, help="model file to write (e.g. model.tsslc)")


def run(args) -> int:
    from pathlib import Path

    import tsslc
    from tsslc.atomic import refuse_clobber
    from tsslc.ir.nodes import LIF

    src = Path(args.checkpoint)
    refuse_clobber([("-o", args.out)], [("checkpoint", src / "checkpoint.pt" if src.is_dir() else src)])
    graph = tsslc.export(args.checkpoint)
    tsslc.save(graph, args.out)
    print(f"{args.out}: {len(graph)} nodes, {len(graph.of_type(LIF))} spiking layers, from {args.checkpoint} "
          f"(epoch {graph.metadata.get('epoch')})")
    return 0
