"""``tsslc run MODEL``: run a model on a back end over a data set (:func:`tsslc.simulate`).

A float model runs on the float interpreter, a compiled one on intsim (default) or Lava.
Data: the test split of the graph's data set (``metadata["dataset"]``; digits by default,
built in) or, for the others, the files in ``--data-dir``, read as the model was trained
(``metadata["data"]``: recipe, N-MNIST binning); ``--samples N`` takes N drawn evenly from
every class with a fixed seed (:func:`tsslc.data.stratified_indices`), never the first N.
Every back end predicts by spike count (a chip emits spikes), whatever the training recipe.
Prints accuracy, spike counts and the counters; ``--json FILE`` writes them (atomically).
"""

from __future__ import annotations

from tsslc.errors import TsslcError


def add_arguments(parser) -> None:
    parser.add_argument("model", help="model file: float (from tsslc export) or compiled (from tsslc compile)")
    parser.add_argument("--backend", default=None, choices=("float", "intsim", "lava"),
                        help="float for a float model; intsim (or lava, loihi2 only) for a compiled one "
                             "(default: float / intsim)")
    parser.add_argument("--data-dir", default=None, help="folder holding the data set's files (not needed for digits)")
    parser.add_argument("--dataset", default=None, help="data set name (default: the model's metadata)")
    parser.add_argument("--samples", type=int, default=None,
                        help="test samples to run, drawn evenly from every class with seed 0 (default: all)")
    parser.add_argument("--batch-size", type=int, default=256, help="samples per intsim batch")
    parser.add_argument("--device", default="cpu", help="torch device of the float interpreter and intsim")
    parser.add_argument("--json", default=None, help="write the result as JSON here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_device(device: str) -> None:
    """``--device``: a torch device this machine has."""
    from tsslc import validate

    validate.device("--device", device)


def test_arrays(graph, data_dir=None, samples: int | None = None, dataset: str | None = None, split: str = "test"):
    """(x, y) of a data set's split for a graph, in the back ends' layout (:func:`tsslc.load_data`):
    ``samples`` drawn from every class, read as the model was trained (``metadata["data"]``)."""
    import tsslc

    if samples is not None and samples < 1:
        raise TsslcError(f"--samples must be >= 1, got {samples}")
    return tsslc.load_data(dataset or graph.metadata.get("dataset") or "digits", split=split, samples=samples,
                           data_dir=data_dir, n_steps=graph.metadata.get("n_steps"),
                           options=graph.metadata.get("data"))


def run(args) -> int:
    import tsslc
    from tsslc.atomic import write_json
    from tsslc.atomic import refuse_clobber
    from tsslc.report.text import run_lines

    refuse_clobber([("--json", args.json)], [("model", args.model), ("--data-dir", args.data_dir)])
    if args.batch_size < 1:
        raise TsslcError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_device(args.device)
    graph = tsslc.load(args.model)
    x, y = test_arrays(graph, args.data_dir, args.samples, args.dataset)
    res = tsslc.simulate(graph, x, args.backend, batch_size=args.batch_size, device=args.device,
                         progress=not args.no_progress)
    acc = float((res.predictions() == y).mean())
    for line in run_lines(res, y, str(args.model)):
        print(line)
    if args.json:
        write_json(args.json, {"model": str(args.model), "target": res.target or None, "backend": res.backend,
                               "samples": int(len(y)), "accuracy": acc, "counters": res.counters.to_dict(),
                               "info": res.info})
    return 0
