"""``tsslc run COMPILED``: run a compiled model on a back end over a data set.

Data: the test split of the graph's data set (``metadata["dataset"]``; digits by default,
built in) or, for the others, the files in ``--data-dir``; ``--samples N`` takes the first N.
Prints accuracy, spike counts and the counters; ``--json FILE`` writes them (atomically).
"""

from __future__ import annotations


import numpy as np

from tsslc.atomic import write_json
from tsslc.errors import TsslcError


def add_arguments(parser) -> None:
    parser.add_argument("model", help="compiled model file (from tsslc compile)")
    parser.add_argument("--backend", default="intsim", choices=("intsim", "lava"), help="default: intsim")
    parser.add_argument("--data-dir", default=None, help="folder holding the data set's files (not needed for digits)")
    parser.add_argument("--dataset", default=None, help="data set name (default: the model's metadata)")
    parser.add_argument("--samples", type=int, default=None, help="use the first N test samples (default: all)")
    parser.add_argument("--batch-size", type=int, default=256, help="samples per batch (default 256)")
    parser.add_argument("--device", default="cpu", help="torch device for intsim (default cpu)")
    parser.add_argument("--json", default=None, help="write the result as JSON here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def test_arrays(graph, data_dir=None, samples: int | None = None, dataset: str | None = None, split: str = "test"):
    """(x float32 numpy, y int64) of a data set's split for a graph (first ``samples``)."""
    from tsslc.data import load_dataset

    name = dataset or graph.metadata.get("dataset") or "digits"
    if samples is not None and samples < 1:
        raise TsslcError(f"--samples must be >= 1, got {samples}")
    train_set, test_set = load_dataset(name, data_dir, n_steps=graph.metadata.get("n_steps"))
    ds = test_set if split == "test" else train_set
    n = len(ds) if samples is None else min(int(samples), len(ds))
    xs, ys = [], []
    for i in range(n):
        x, y = ds[i]
        xs.append(np.asarray(x, dtype=np.float32))
        ys.append(int(y))
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def run_backend(graph, backend: str, x, batch_size: int, progress: bool, device: str = "cpu"):
    from tsslc.backends import get_backend

    fn = get_backend(backend)
    if backend == "intsim":
        return fn(graph, x, progress=progress, device=device, batch_size=batch_size)
    return fn(graph, x, progress=progress)


def run(args) -> int:
    from tsslc.ir.io import load

    graph = load(args.model)
    if not graph.metadata.get("target"):
        raise TsslcError(f"{args.model}: not a compiled model; run tsslc compile {args.model} --target loihi2 first")
    x, y = test_arrays(graph, args.data_dir, args.samples, args.dataset)
    res = run_backend(graph, args.backend, x, args.batch_size, not args.no_progress, args.device)
    pred = res.predictions()
    acc = float((pred == y).mean())
    out = {"model": str(args.model), "target": graph.metadata["target"], "backend": args.backend,
           "samples": int(len(y)), "accuracy": acc, "counters": res.counters.to_dict(), "info": res.info}
    print(f"{args.model} on {args.backend} ({graph.metadata['target']}): {len(y)} samples, accuracy {acc * 100:.2f} %")
    print(f"  {'per sample':<20} {'spikes':>10} {'synops':>12} {'active updates':>15}")
    for name, layer in res.counters.layers.items():
        n = len(y)
        spikes = f"{layer.spikes / n:10.1f}" if layer.kind == "lif" else f"{'':>10}"
        active = f"{layer.updates_active / n:15.1f}" if layer.kind == "lif" else ""
        print(f"  {name:<20} {spikes} {layer.synops / n:12.1f} {active}")
    if args.json:
        write_json(args.json, out)
    return 0
