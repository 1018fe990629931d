"""``tsslc verify MODEL --target T``: compile in memory, then compare back ends layer by layer.

The float interpreter on the float model is the reference; every other back end
(``--backends``, default ``float,intsim``; ``lava`` is slow: use ``--samples``) runs the
compiled graph on the same test samples, on the float model's time axis. Spikes are
compared per LIF population on the (sample, neuron, step) grid.

JSON written by ``--json FILE`` (atomically), read by the report::

    {
      "model": str, "target": str, "dataset": str, "samples": int, "n_steps": int,
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

import numpy as np

from tsslc.commands.compile import add_rounding_argument
from tsslc.errors import TsslcError


def add_arguments(parser) -> None:
    parser.add_argument("model", help="float model file (from tsslc export)")
    parser.add_argument("--target", required=True, help="loihi2 | truenorth")
    parser.add_argument("--backends", default="float,intsim", help="comma-separated: float,intsim,lava (default float,intsim)")
    parser.add_argument("--data-dir", default=None, help="folder holding the data set's files (not needed for digits)")
    parser.add_argument("--dataset", default=None, help="data set name (default: the model's metadata)")
    parser.add_argument("--samples", type=int, default=None, help="first N test samples (default: all)")
    parser.add_argument("--calibration", type=int, default=256, help="training samples to calibrate on (default 256)")
    parser.add_argument("--batch-size", type=int, default=256, help="intsim batch size (default 256)")
    add_rounding_argument(parser)
    parser.add_argument("--json", default=None, help="write the verification result as JSON here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def compare(ref, res, y: np.ndarray, ref_name: str, name: str) -> dict:
    """Layer-by-layer comparison of two BackendResults on the same samples."""
    layers, first = {}, None
    eq_all = tot_all = 0
    for lif, a in ref.spikes.items():
        if lif not in res.spikes:
            raise TsslcError(f"back end {name!r} reports no spikes for population '{lif}'")
        b = res.spikes[lif]
        if a.shape != b.shape:
            raise TsslcError(f"population '{lif}': {ref_name} spikes {a.shape} vs {name} {b.shape}")
        diff = a != b
        n_diff, total = int(diff.sum()), int(diff.size)
        layers[lif] = {"spike_agreement": 1.0 - n_diff / total if total else 1.0, "mismatches": n_diff, "total": total,
                       "spikes_reference": int(a.sum(dtype=np.int64)), "spikes_backend": int(b.sum(dtype=np.int64))}
        eq_all += total - n_diff
        tot_all += total
        if n_diff and first is None:
            T, B = a.shape[:2]
            flat = diff.reshape(T, B, -1)
            t = int(np.argmax(flat.any(axis=(1, 2))))
            sample = int(np.argmax(flat[t].any(axis=1)))
            neuron = int(np.argmax(flat[t, sample]))
            first = {"layer": lif, "step": t, "sample": sample, "neuron": neuron,
                     "neuron_index": [int(i) for i in np.unravel_index(neuron, a.shape[2:])]}
    pa, pb = ref.predictions(), res.predictions()
    acc_a, acc_b = float((pa == y).mean()), float((pb == y).mean())
    return {"reference": ref_name, "backend": name, "spike_agreement": eq_all / tot_all if tot_all else 1.0,
            "layers": layers, "first_divergence": first, "classification_agreement": float((pa == pb).mean()),
            "accuracy_reference": acc_a, "accuracy_backend": acc_b, "accuracy_delta_points": (acc_b - acc_a) * 100}


def verify(graph, target: str, x, y, backends=("float", "intsim"), calibration=None, batch_size: int = 256,
           progress: bool = False, rounding: str = "gptq") -> dict:
    """Compile ``graph`` for ``target`` (calibrated on ``calibration``) and compare back ends."""
    from tsslc.backends import get_backend
    from tsslc.commands.compile import compile_graph
    from tsslc.commands.run import run_backend

    backends = list(dict.fromkeys(backends))
    for b in backends:
        get_backend(b)  # unknown names: one clear error before any work
    if "float" not in backends:
        backends.insert(0, "float")
    compiled = compile_graph(graph, target, calibration if calibration is not None else x, rounding)
    results = {}
    for b in backends:
        if b == "float":
            results[b] = get_backend("float")(graph, x)
        else:
            results[b] = run_backend(compiled, b, x, batch_size, progress)
    out = {"target": compiled.metadata["target"], "dataset": graph.metadata.get("dataset"), "samples": int(len(y)),
           "n_steps": int(graph.metadata.get("n_steps", 0)),
           "backends": {b: {"accuracy": float((r.predictions() == y).mean()), "counters": r.counters.to_dict() if r.counters else None,
                            "info": r.info}
                        for b, r in results.items()},
           "comparisons": [compare(results["float"], results[b], y, "float", b) for b in backends if b != "float"],
           "quantization": compiled.metadata["quantization"]}
    if "intsim" in results and "lava" in results:
        out["comparisons"].append(compare(results["intsim"], results["lava"], y, "intsim", "lava"))
    return out


def run(args) -> int:
    from tsslc.atomic import write_json
    from tsslc.commands.run import test_arrays
    from tsslc.ir.io import load

    graph = load(args.model)
    if graph.metadata.get("target"):
        raise TsslcError(f"{args.model}: already compiled; verify takes the float model (from tsslc export)")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends:
        raise TsslcError("--backends is empty (choose from float, intsim, lava)")
    x, y = test_arrays(graph, args.data_dir, args.samples, args.dataset)
    xc, _ = test_arrays(graph, args.data_dir, args.calibration, args.dataset, split="train")
    out = verify(graph, args.target, x, y, backends, xc, args.batch_size, not args.no_progress, args.rounding)
    out["model"] = str(args.model)
    print(f"{args.model} → {out['target']}: {out['samples']} test samples, T={out['n_steps']}")
    for name, b in out["backends"].items():
        print(f"  {name:<8} accuracy {b['accuracy'] * 100:6.2f} %")
    for c in out["comparisons"]:
        print(f"  {c['backend']} vs {c['reference']}: spikes {c['spike_agreement'] * 100:.3f} % equal, "
              f"classification agreement {c['classification_agreement'] * 100:.2f} %, "
              f"accuracy {c['accuracy_delta_points']:+.2f} points")
        for lif, l in c["layers"].items():
            print(f"    {lif:<18} {l['spike_agreement'] * 100:8.3f} %  ({l['mismatches']} of {l['total']} differ)")
        f = c["first_divergence"]
        print("    first divergence: none" if f is None else
              f"    first divergence: layer {f['layer']}, step {f['step']}, neuron {f['neuron']}, sample {f['sample']}")
    if args.json:
        write_json(args.json, out)
        print(f"wrote {args.json}")
    return 0
