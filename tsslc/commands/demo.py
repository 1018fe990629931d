"""``tsslc demo``: the main job, end to end on the embedded digits set, in a few minutes on
2 CPUs. One function per stage:

1. train     — TSSL-BP on examples/digits.yaml      → RUN/checkpoint.pt, RUN/metrics.json
2. export    — checkpoint → float IR                  → RUN/model.tsslc
3. compile   — quantize + map for loihi2, truenorth   → RUN/loihi2.tsslc, RUN/truenorth.tsslc
4. run       — float interpreter and intsim on the whole test set, Lava (loihi2) on the
               first ``--lava-samples``
5. verify    — spikes compared layer by layer (float vs intsim, intsim vs Lava)
6. report    — counters, NeuroBench view, energy (JSON + table), figures, one HTML page
               → RUN/report.json, RUN/energy.json, RUN/figures/*.png, RUN/report.html

Every file is written atomically; a second run overwrites the first cleanly.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tsslc.errors import TsslcError

TARGETS = ("loihi2", "truenorth")
LAVA_TARGET = "loihi2"
CONFIG = Path(__file__).resolve().parents[2] / "examples" / "digits.yaml"


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the config's)")
    parser.add_argument("--lava-samples", type=int, default=150, help="test samples run on Lava (default 150)")
    parser.add_argument("--calibration", type=int, default=256, help="training samples to calibrate on (default 256)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stage_train(out: Path, epochs, progress: bool, config=CONFIG, datasets=None) -> dict:
    from tsslc.data.digits import load_digits_datasets
    from tsslc.train.run import train_run

    metrics = train_run(config, out, epochs=epochs, progress=progress, datasets=datasets or load_digits_datasets())
    say(f"trained: test accuracy {100 * metrics['final_test_acc']:.2f} % in {metrics['train_seconds']:.1f} s")
    return metrics


def stage_export(out: Path):
    from tsslc.ir import io
    from tsslc.ir.export import graph_from_network
    from tsslc.train.checkpoint import load_checkpoint

    net, _, _ = load_checkpoint(out / "checkpoint.pt")
    graph = graph_from_network(net)
    io.save(graph, out / "model.tsslc")
    say(f"exported {out / 'model.tsslc'}")
    return graph


def stage_compile(out: Path, graph, calibration: np.ndarray, targets=TARGETS) -> dict:
    from tsslc.commands.compile import compile_graph
    from tsslc.ir import io

    compiled = {}
    for t in targets:
        compiled[t] = compile_graph(graph, t, calibration)
        io.save(compiled[t], out / f"{t}.tsslc")
        say(f"compiled for {t}: {compiled[t].metadata['mapping']['cores']} cores → {out / (t + '.tsslc')}")
    return compiled


def stage_run(graph, compiled: dict, x: np.ndarray, lava_samples: int, progress: bool) -> dict:
    """{(back end, target): BackendResult}; 'lava' and its intsim twin on the first samples."""
    from tsslc.backends import get_backend

    results = {("float", None): get_backend("float")(graph, x)}
    for t, cg in compiled.items():
        results[("intsim", t)] = get_backend("intsim")(cg, x, progress=progress, batch_size=256)
    n = min(lava_samples, len(x))
    t0 = time.time()
    results[("lava", LAVA_TARGET)] = get_backend("lava")(compiled[LAVA_TARGET], x[:n], progress=progress)
    say(f"ran float, intsim ({', '.join(compiled)}) on {len(x)} samples, Lava on {n} in {time.time() - t0:.0f} s")
    return results


def _subset(res, n: int):
    from tsslc.backends import BackendResult

    return BackendResult({k: v[:, :n] for k, v in res.spikes.items()}, {}, res.output_population, res.backend)


def stage_verify(results: dict, y: np.ndarray) -> dict:
    """{target: [verify comparisons]}: float vs intsim (all samples), intsim vs Lava and
    float vs Lava (the Lava samples)."""
    from tsslc.commands.verify import compare

    ref = results[("float", None)]
    out = {t: [compare(ref, r, y, "float", "intsim")] for (b, t), r in results.items() if b == "intsim"}
    lava = results[("lava", LAVA_TARGET)]
    n = lava.output_spikes.shape[1]
    out[LAVA_TARGET].append(compare(_subset(results[("intsim", LAVA_TARGET)], n), lava, y[:n], "intsim", "lava"))
    out[LAVA_TARGET].append(compare(_subset(ref, n), lava, y[:n], "float", "lava"))
    for t, cs in out.items():
        for c in cs:
            say(f"{t}: {c['backend']} vs {c['reference']}: {100 * c['spike_agreement']:.3f} % spikes agree, "
                f"first divergence {c['first_divergence'] and (c['first_divergence']['layer'], c['first_divergence']['neuron'], c['first_divergence']['step'])}")
    return out


def stage_count(graph, compiled: dict, results: dict, x: np.ndarray) -> dict:
    """Counters per (back end, target) label, with each target's core assignment."""
    from tsslc.report.counters import count
    from tsslc.targets import get_target

    counters = {"float": count(graph, results[("float", None)].spikes, x)}
    for (b, t), r in results.items():
        if t is None:
            continue
        cg = compiled[t]
        n = r.output_spikes.shape[1]
        counters[f"{t}/{b}"] = count(cg, r.spikes, x[:n], cores=get_target(t).core_assignment(cg))
    n = results[("lava", LAVA_TARGET)].output_spikes.shape[1]
    cg = compiled[LAVA_TARGET]
    counters[f"{LAVA_TARGET}/intsim (Lava samples)"] = count(cg, _subset(results[("intsim", LAVA_TARGET)], n).spikes, x[:n],
                                                            cores=get_target(LAVA_TARGET).core_assignment(cg))
    return counters


def stage_report(out: Path, graph, compiled: dict, results: dict, counters: dict, equivalence: dict, y,
                 net: str = "digits MLP") -> Path:
    from tsslc.report import figures
    from tsslc.report.energy import energy_report, format_table, write_json
    from tsslc.report.html import FIGURES, REPORT_JSON, write_report
    from tsslc.report.neurobench import neurobench_view

    energy = energy_report({t: counters[f"{t}/intsim"] for t in compiled})
    write_json(out / "energy.json", energy)
    table = format_table(energy)
    print(table)
    lava_key = f"{LAVA_TARGET}/intsim (Lava samples)"
    lava_equal = counters[lava_key].to_dict() == counters[f"{LAVA_TARGET}/lava"].to_dict()
    accuracy = {}
    for (b, t), r in results.items():
        n = r.output_spikes.shape[1]
        accuracy[b if t is None else f"{t} / {b}"] = {"accuracy": float((r.predictions() == y[:n]).mean()), "samples": n}
    data = {
        "title": f"tsslc: {net} — train → export → compile → run → verify → report",
        "accuracy": accuracy,
        "quantization": {t: cg.metadata["quantization"] for t, cg in compiled.items()},
        "mapping": {t: {k: v for k, v in cg.metadata["mapping"].items() if not hasattr(v, "shape")}
                    for t, cg in compiled.items()},
        "equivalence": equivalence,
        "counters": {k: c.to_dict() for k, c in counters.items()},
        "counters_lava_equal_intsim": lava_equal,
        "neurobench": {f"{net} (float)": neurobench_view(graph, counters["float"]),
                       **{f"{net} ({t})": neurobench_view(compiled[t], counters[f"{t}/intsim"]) for t in compiled}},
        "energy": energy,
        "energy_table": table,
    }
    say(f"counters of Lava and intsim on the same samples are {'identical' if lava_equal else 'DIFFERENT'}")

    fig_dir = out / FIGURES
    fl = counters["float"]
    tag = net.split()[0].lower()
    pngs = {
        "training_curve": figures.training_curve(_history(out)),
        f"firing_counts_{tag}": figures.firing_counts({p: fl.spike_count_fractions(p) for p in fl.populations},
                                                      f"Fig. 7: share of neurons firing k times ({net}, float)"),
        f"firing_rates_{tag}": figures.firing_rates({p: fl.firing_rates(p) for p in fl.populations},
                                                    f"Fig. 8: firing rates ({net}, float)"),
        "raster_float": figures.raster(results[("float", None)].spikes, 0, "float interpreter, test sample 0"),
        "raster_lava": figures.raster(results[("lava", LAVA_TARGET)].spikes, 0, "Lava (loihi2), test sample 0"),
        "energy_per_layer": figures.energy_per_layer(energy),
        "agreement_per_layer": figures.agreement({f"{t}: {c['backend']} vs {c['reference']}":
                                                  {l: v["spike_agreement"] for l, v in c["layers"].items()}
                                                  for t, cs in equivalence.items() for c in cs}),
    }
    for name, png in pngs.items():
        figures.save(fig_dir / f"{name}.png", png)
    for stale in fig_dir.glob("*.png"):
        if stale.stem not in pngs:
            stale.unlink()
    from tsslc.commands.run import write_json as write_any_json

    write_any_json(out / REPORT_JSON, data)
    return write_report(out)


def _history(out: Path) -> list[dict]:
    import json

    return json.loads((out / "metrics.json").read_text())["epochs"]


def run(args) -> int:
    # Lava sets the multiprocessing start method when imported; that must happen before the
    # first progress bar (tqdm creates a multiprocessing lock, which fixes the method).
    import tsslc.backends.lava  # noqa: F401
    from tsslc.data.digits import digits_arrays

    if args.lava_samples < 1:
        raise TsslcError(f"--lava-samples must be >= 1, got {args.lava_samples}")
    if not CONFIG.is_file():
        raise TsslcError(f"the demo's config {CONFIG} is missing; run the demo from a tsslc checkout")
    out = Path(args.out)
    progress = not args.no_progress
    t0 = time.time()
    say(f"writing to {out}/")
    xtr, _, xte, yte = digits_arrays()
    stage_train(out, args.epochs, progress)
    graph = stage_export(out)
    compiled = stage_compile(out, graph, xtr[: args.calibration])
    results = stage_run(graph, compiled, xte, args.lava_samples, progress)
    equivalence = stage_verify(results, yte)
    counters = stage_count(graph, compiled, results, xte)
    page = stage_report(out, graph, compiled, results, counters, equivalence, yte)
    say(f"done in {time.time() - t0:.0f} s. Report: {page.resolve()}")
    return 0
