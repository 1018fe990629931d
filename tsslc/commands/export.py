"""``tsslc export RUN/checkpoint.pt -o MODEL``: a training checkpoint → a tsslc model file.

The model file (:mod:`tsslc.ir.io`) holds the float IR graph of the trained network; its
metadata records n_steps, τm, τs, n_class, dataset, loss, the epoch and the test accuracy.
A run folder may be given instead of its checkpoint.
"""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="RUN/checkpoint.pt written by 'tsslc train' (or the RUN folder)")
    parser.add_argument("-o", "--output", required=True, help="model file to write (e.g. model.tsslc)")


def run(args) -> int:
    from tsslc.ir import io
    from tsslc.ir.export import graph_from_network
    from tsslc.ir.nodes import LIF
    from tsslc.training.checkpoint import load_checkpoint

    src = Path(args.checkpoint)
    if src.is_dir():
        src = src / "checkpoint.pt"
    net, config, ckpt = load_checkpoint(src)
    graph = graph_from_network(net)
    graph.metadata["epoch"] = int(ckpt["epoch"])
    metrics = ckpt.get("metrics") or []
    acc = metrics[-1].get("test_acc") if metrics and isinstance(metrics[-1], dict) else None
    if isinstance(acc, (int, float)):
        graph.metadata["test_acc"] = float(acc)
    io.save(graph, args.output)
    n_lif = len(graph.of_type(LIF))
    print(f"{args.output}: {len(graph)} nodes, {n_lif} spiking layers, from {src} (epoch {graph.metadata['epoch']})")
    return 0
