"""``tsslc compile MODEL --target T -o OUT``: quantize and map a float model for a target.

Steps: load the model file; drop dropout and fold pooling into the next synapse
(:mod:`tsslc.passes.structural`); calibrate on the first ``--calibration`` training samples
of the model's data set, or on every sample in ``--calibration-data X.npy`` (an imported
graph has no data set; layout: :mod:`tsslc.ir.inputs`), and quantize (:mod:`tsslc.targets.quantize` with the target's
rounding); map the neurons to cores (:mod:`tsslc.targets.mapping`); save the compiled graph
(atomically). Prints the per-layer quantization and mapping report.
"""

from __future__ import annotations

from tsslc.errors import TsslcError


def add_arguments(parser) -> None:
    parser.add_argument("model", help="float model file (from tsslc export)")
    parser.add_argument("--target", required=True, help="loihi2 | truenorth")
    parser.add_argument("-o", "--out", required=True, help="compiled model file to write")
    parser.add_argument("--data-dir", default=None, help="folder holding the data set's files (not needed for digits)")
    parser.add_argument("--dataset", default=None, help="data set name (default: the model's metadata)")
    parser.add_argument("--calibration", type=int, default=256, help="training samples to calibrate on (default 256)")
    parser.add_argument("--calibration-data", default=None, metavar="X.npy",
                        help="calibrate on the inputs in this .npy file instead (static (B, *input shape) or "
                             "events as the back ends take them); needed for a graph imported from NIR")
    add_rounding_argument(parser)
    parser.add_argument("--json", default=None, help="also write the quantization and mapping report as JSON")


def add_rounding_argument(parser) -> None:
    """``--rounding`` (also used by ``tsslc verify``); the names are those of
    :data:`tsslc.targets.quantize.ROUNDINGS`, kept literal so the CLI starts without torch."""
    parser.add_argument("--rounding", choices=("gptq", "nearest"), default="gptq",
                        help="weight rounding: gptq (keeps each layer's current error small on the "
                             "calibration data; default) or nearest")


def prepare(graph):
    """Structural passes the quantizer needs: dropout dropped, pooling folded."""
    from tsslc.passes.structural import drop_dropout, fold_pooling

    return fold_pooling(drop_dropout(graph))


def compile_graph(graph, target_name: str, calibration, rounding: str = "gptq"):
    """Float graph → compiled, mapped graph (also the library entry point)."""
    from tsslc.targets.mapping import attach
    from tsslc.targets import get_target

    target = get_target(target_name)
    compiled = target.quantize(prepare(graph), calibration, rounding=rounding)
    attach(compiled, target)
    return compiled


def _rounding(row: dict) -> str:
    r = row.get("rounding", "")
    cur, near = row.get("current_error_rel_rms"), row.get("current_error_rel_rms_nearest")
    if r == "gptq" and cur is not None and near is not None:
        return f"gptq ({100 * cur:.2f} %, nearest {100 * near:.2f} %)"
    return f"{r} ({100 * cur:.2f} %)" if cur is not None else r


def report_lines(compiled) -> list[str]:
    q = compiled.metadata["quantization"]
    m = compiled.metadata.get("mapping", {})
    inp = q["input"]
    lines = [f"target {q['target']}; input {inp['encoding']} scale {inp['scale']:g} ({'exact' if inp['exact'] else 'max error ' + format(inp['error_max'], '.3g')}); "
             f"calibrated on {q['calibration_samples']} samples"]
    head = (f"{'layer':<14}{'kind':<12}{'neurons':>8}{'cores':>6}{'scale':>11}{'w_exp':>6}{'w err':>8}{'sat':>6}{'vth':>7}"
            f"{'du':>6}{'dv':>6}  rounding (current error)")
    lines.append(head)
    layers = m.get("layers", {})
    for row in q["layers"]:
        shape = compiled[row["name"]].shape
        n = 1
        for d in shape:
            n *= int(d)
        cores = layers.get(row["name"], {}).get("cores", "")
        lines.append(
            f"{row['name']:<14}{row['kind']:<12}{n:>8}{cores!s:>6}{row.get('scale', 0):>11.4g}{row.get('weight_exp', 0):>6}"
            f"{row.get('weight_error_rel_rms', 0) * 100:>7.2f}%{row.get('weight_saturated_fraction', 0) * 100:>5.1f}%"
            f"{row.get('vth', '')!s:>7}"
            f"{row.get('du', '')!s:>6}{row.get('dv', '')!s:>6}  {_rounding(row)}"
        )
    if m:
        lines.append(f"mapping: {m.get('cores')} cores ({m.get('neuron_cores')} neuron, {m.get('splitter_cores')} splitter), "
                     f"{m.get('neurons')} neurons, utilisation {m.get('neuron_utilisation', 0) * 100:.1f} %, "
                     f"{m.get('hops')} hops, latency {m.get('latency_ticks')} ticks")
    return lines


def run(args) -> int:
    from tsslc.atomic import write_json
    from tsslc.commands.run import test_arrays
    from tsslc.ir.io import load, save

    if args.calibration < 1:
        raise TsslcError(f"--calibration must be >= 1, got {args.calibration}")
    graph = load(args.model)
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
    compiled = compile_graph(graph, args.target, x, args.rounding)
    path = save(compiled, args.out)
    for line in report_lines(compiled):
        print(line)
    print(f"wrote {path}")
    if args.json:
        meta = compiled.metadata
        write_json(args.json, {"quantization": meta["quantization"],
                               "mapping": {k: v for k, v in meta.get("mapping", {}).items()
                                           if k in ("target", "cores", "neuron_cores", "splitter_cores", "neurons",
                                                    "neuron_utilisation", "hops", "latency_ticks", "layers")}})
    return 0
