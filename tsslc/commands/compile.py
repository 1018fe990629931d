"""``tsslc compile MODEL --target T -o OUT``: quantize and map a float model for a target
(:func:`tsslc.compile`): dropout dropped and pooling folded, calibrated on ``--calibration``
training samples of the model's data set, or on every sample in ``--calibration-data X.npy``
(an imported graph has no data set; layout: :mod:`tsslc.ir.inputs`), quantized with the
target's rounding (and ``--variant``: loihi2's ``netx``), mapped onto cores, saved atomically. Prints the per-layer quantization
and mapping report.
"""

from __future__ import annotations

from tsslc.errors import TsslcError

#: the weight roundings of tsslc.targets.quantize.ROUNDINGS, literal so the CLI starts without torch
ROUNDINGS = ("gptq", "nearest")


def add_arguments(parser) -> None:
    parser.add_argument("model", help="float model file (from tsslc export)")
    parser.add_argument("--target", required=True, help="the chip to compile for: loihi2 | truenorth")
    parser.add_argument("-o", "--out", "--output", dest="out", required=True, help="compiled model file to write")
    parser.add_argument("--data-dir", default=None, help="folder holding the data set's files (not needed for digits)")
    parser.add_argument("--dataset", default=None, help="data set name (default: the model's metadata)")
    parser.add_argument("--calibration", type=int, default=256,
                        help="training samples to calibrate on, drawn evenly from every class with seed 0")
    parser.add_argument("--calibration-data", default=None, metavar="X.npy",
                        help="calibrate on the inputs in this .npy file instead (static (B, *input shape) or "
                             "time-first (T, B, *input shape)); needed for a graph imported from NIR")
    add_rounding_argument(parser)
    parser.add_argument("--variant", default=None, metavar="NAME",
                        help="a variant of the target's quantizer; loihi2: netx (every Dense weight exponent 0, so "
                             "that 'tsslc netx export' writes a file lava-dl netx runs exactly as intsim)")
    parser.add_argument("--json", default=None, help="also write the quantization and mapping report as JSON")


def add_rounding_argument(parser) -> None:
    """``--rounding`` (also used by ``tsslc verify``)."""
    parser.add_argument("--rounding", choices=ROUNDINGS, default="gptq",
                        help="weight rounding: gptq keeps each layer's current error small on the calibration "
                             "data; nearest rounds weight by weight")


def run(args) -> int:
    import tsslc
    from tsslc.atomic import write_json
    from tsslc.commands.run import test_arrays
    from tsslc.atomic import refuse_clobber
    from tsslc.report.text import compile_lines

    refuse_clobber([("-o", args.out), ("--json", args.json)],
                   [("model", args.model), ("--calibration-data", args.calibration_data), ("--data-dir", args.data_dir)])
    if args.calibration < 1:
        raise TsslcError(f"--calibration must be >= 1, got {args.calibration}")
    graph = tsslc.load(args.model)
    if graph.metadata.get("target"):
        raise TsslcError(f"{args.model}: already compiled for {graph.metadata['target']}; give the float model")
    if args.calibration_data is not None:
        from tsslc.ir.inputs import load_input_array

        x = load_input_array(args.calibration_data, graph)
    elif not (args.dataset or graph.metadata.get("dataset")):
        raise TsslcError(f"{args.model}: the model names no data set to calibrate on (imported from NIR?); "
                         f"pass --calibration-data X.npy or --dataset NAME")
    else:
        x, _ = test_arrays(graph, args.data_dir, args.calibration, args.dataset, split="train")
    compiled = tsslc.compile(graph, args.target, x, rounding=args.rounding, variant=args.variant)
    path = tsslc.save(compiled, args.out)
    for line in compile_lines(compiled):
        print(line)
    print(f"wrote {path}")
    if args.json:
        meta = compiled.metadata
        write_json(args.json, {"quantization": meta["quantization"],
                               "mapping": {k: v for k, v in meta.get("mapping", {}).items()
                                           if k in ("target", "cores", "neuron_cores", "splitter_cores", "neurons",
                                                    "neuron_utilisation", "latency_ticks", "layers",
                                                    "memory_per_core_bytes", "memory_bytes", "max_core_memory_bytes",
                                                    "memory_utilisation", "core_memory")}})
    return 0
