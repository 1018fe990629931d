"""``tsslc verify COMPILED --against FLOAT``: compare back ends layer by layer.

The float interpreter on the float model is the reference; every other back end
(``--backends``, default ``intsim``; ``lava`` is slow: use ``--samples``) runs the compiled
graph on the same test samples, on the float model's time axis (:func:`tsslc.verify`).
Spikes are compared per population on the (step, sample, neuron) grid. Give the compiled
file you deploy and the float model it came from; or a float model with ``--target T`` to
compile it in memory first (calibrated on ``--calibration`` training samples).

JSON written by ``--json FILE`` (atomically), read by the report::

    {
      "model": str, "target": str, "dataset": str, "samples": int, "n_steps": int,
      "class_counts": [int, ...],                    # test samples per class (label 0, 1, ...)
      "backends": {                                  # every back end that ran
        "<name>": {"accuracy": float,                # on the test samples, 0..1
                   "counters": {...},                # Counters.to_dict() (tsslc.backends.counters)
                   "info": {...}}                    # BackendResult.info (Lava: steps, seconds)
      },
      "comparisons": [                               # each back end vs the reference, and
        {"reference": "float" | "intsim",            # lava vs intsim when both ran
         "backend": str,
         "spike_agreement": float,                   # equal (sample, neuron, step) / all, all layers
         "layers": {"<lif>": {"spike_agreement": float, "mismatches": int, "total": int,
                              "spikes_reference": int, "spikes_backend": int}},
         "first_divergence": null | {"layer": str, "step": int, "neuron": int,  # flat (C,H,W) index
                                     "neuron_index": [int, ...], "sample": int},
                                     # first layer in graph order with a mismatch, its earliest
                                     # step, then the lowest sample and neuron at that step
         "classification_agreement": float,          # same predicted class, 0..1
         "accuracy_reference": float, "accuracy_backend": float,
         "accuracy_delta_points": float}             # (backend - reference) * 100
      ],
      "quantization": {...}                          # compiled.metadata["quantization"]
    }
"""

from __future__ import annotations

from tsslc.commands.compile import add_rounding_argument
from tsslc.errors import TsslcError


def add_arguments(parser) -> None:
    parser.add_argument("model", help="compiled model file (from tsslc compile); or a float model with --target")
    parser.add_argument("--against", default=None, metavar="FLOAT", help="the float model the compiled file came from")
    parser.add_argument("--target", default=None,
                        help="with a float MODEL: compile it in memory for this target first (loihi2 | truenorth)")
    parser.add_argument("--backends", default="intsim", help="comma-separated, from intsim,lava (float always runs)")
    parser.add_argument("--data-dir", default=None, help="folder holding the data set's files (not needed for digits)")
    parser.add_argument("--dataset", default=None, help="data set name (default: the model's metadata)")
    parser.add_argument("--samples", type=int, default=None,
                        help="test samples to compare, drawn evenly from every class with seed 0 (default: all)")
    parser.add_argument("--calibration", type=int, default=256,
                        help="with --target: training samples to calibrate on, drawn evenly from every class")
    parser.add_argument("--batch-size", type=int, default=256, help="intsim batch size")
    add_rounding_argument(parser)
    parser.add_argument("--json", default=None, help="write the verification result as JSON here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import tsslc
    from tsslc.atomic import write_json
    from tsslc.commands.run import test_arrays
    from tsslc.atomic import refuse_clobber
    from tsslc.report.text import verify_lines

    refuse_clobber([("--json", args.json)],
                   [("model", args.model), ("--against", args.against), ("--data-dir", args.data_dir)])
    if args.batch_size < 1:
        raise TsslcError(f"--batch-size must be >= 1, got {args.batch_size}")
    first = tsslc.load(args.model)
    if first.metadata.get("target"):
        if args.against is None:
            raise TsslcError(f"{args.model} is compiled for {first.metadata['target']}: name the float model it came "
                             "from with --against FLOAT")
        if args.target is not None and args.target != first.metadata["target"]:
            raise TsslcError(f"{args.model} is compiled for {first.metadata['target']}, not --target {args.target}")
        float_graph, compiled = tsslc.load(args.against), first
        if float_graph.metadata.get("target"):
            raise TsslcError(f"--against {args.against}: compiled for {float_graph.metadata['target']}; give the float model")
    else:
        if args.against is not None:
            raise TsslcError(f"{args.model} is a float model; verify takes the compiled file first: "
                             f"tsslc verify COMPILED --against {args.model}")
        if args.target is None:
            raise TsslcError(f"{args.model} is a float model: give --target T to compile it in memory, or verify the "
                             "compiled file: tsslc verify COMPILED --against FLOAT")
        if args.calibration < 1:
            raise TsslcError(f"--calibration must be >= 1, got {args.calibration}")
        float_graph = first
        xc, _ = test_arrays(float_graph, args.data_dir, args.calibration, args.dataset, split="train")
        compiled = tsslc.compile(float_graph, args.target, xc, rounding=args.rounding)
    backends = [b.strip() for b in args.backends.split(",") if b.strip() and b.strip() != "float"]
    if not backends:
        raise TsslcError("--backends names no back end to compare with the float model (choose from intsim, lava)")
    x, y = test_arrays(float_graph, args.data_dir, args.samples, args.dataset)
    report = tsslc.verify(float_graph, compiled, x, y, backends=backends, batch_size=args.batch_size,
                          progress=not args.no_progress)
    out = {"model": str(args.model), **report.to_dict()}
    import numpy as np

    out["class_counts"] = np.bincount(np.asarray(y, dtype=np.int64),
                                      minlength=int(float_graph.metadata.get("n_class") or 0)).tolist()
    for line in verify_lines(out):
        print(line)
    print(f"  test samples from {sum(c > 0 for c in out['class_counts'])} of {len(out['class_counts'])} classes: "
          f"{out['class_counts']}")
    if args.json:
        write_json(args.json, out)
        print(f"wrote {args.json}")
    return 0
