"""The main job's pipeline (``tsslc demo``), end to end on the embedded digits set, in a
few minutes on 2 CPUs; ``examples/mnist_pipeline.py`` runs the same stages on MNIST. One
function per stage:

1. train     — TSSL-BP on examples/digits.yaml      → RUN/checkpoint.pt, RUN/metrics.json
2. export    — checkpoint → float IR                  → RUN/model.tsslc
3. compile   — quantize + map for loihi2, truenorth   → RUN/loihi2.tsslc, RUN/truenorth.tsslc
4. run       — float interpreter and intsim on the whole test set, Lava (loihi2) on the
               first ``--lava-samples``
5. verify    — spikes compared layer by layer (float vs intsim, intsim vs Lava)
6. finetune  — hardware-aware training through each target's rounding (``--finetune-epochs``),
               recompiled and compared again: the deployment path that recovers accuracy
7. activity  — if the MNIST files are there (``--mnist-dir``, default ../shared/data/mnist
               beside the checkout), the paper's MNIST CNN trained briefly on
               ``--mnist-train-samples`` images: its firing activity (Fig. 7, Fig. 8)

Sample subsets (calibration, MNIST images) are drawn evenly from every class with seed 0
(:func:`tsslc.data.stratified_indices`).
8. report    — counters, NeuroBench view, energy (JSON + table), figures, one HTML page
               → RUN/report.json, RUN/energy.json, RUN/figures/*.png, RUN/report.html

Every file is written atomically; a second run into the folder replaces the first cleanly (a
folder holding a plain training run is refused); the folder is locked while the demo runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tsslc.errors import TsslcError
from tsslc.examples import HERE as EXAMPLES  # the configs installed with tsslc

TARGETS = ("loihi2", "truenorth")
LAVA_TARGET = "loihi2"
CONFIG = EXAMPLES / "digits.yaml"
MNIST_CONFIG = EXAMPLES / "mnist_cnn.yaml"
MNIST_DIR = Path("..") / "shared" / "data" / "mnist"


def say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stage_train(out: Path, epochs, progress: bool, config=CONFIG, datasets=None, seed: int = 0) -> dict:
    from tsslc.data.digits import load_digits_datasets
    from tsslc.training.run import train_run

    metrics = train_run(config, out, epochs=epochs, seed=seed, progress=progress,
                        datasets=datasets or load_digits_datasets(), overwrite=True)  # a demo replaces its own run
    say(f"trained: test accuracy {100 * metrics['final_test_acc']:.2f} % in {metrics['train_seconds']:.1f} s")
    return metrics


def stage_export(out: Path):
    from tsslc.ir import io
    from tsslc.ir.export import graph_from_network
    from tsslc.training.checkpoint import load_checkpoint

    net, _, _ = load_checkpoint(out / "checkpoint.pt")
    graph = graph_from_network(net)
    io.save(graph, out / "model.tsslc")
    say(f"exported {out / 'model.tsslc'}")
    return graph


def stage_compile(out: Path, graph, calibration: np.ndarray, targets=TARGETS) -> dict:
    from tsslc.api import compile as compile_graph
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

    return BackendResult({k: v[:, :n] for k, v in res.spikes.items()}, None, res.output_population, res.backend)


def stage_verify(results: dict, y: np.ndarray) -> dict:
    """{target: [verify comparisons]}: float vs intsim (all samples), intsim vs Lava and
    float vs Lava (the Lava samples)."""
    from tsslc.equivalence import compare

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


def stage_finetune(out: Path, net, calibration: np.ndarray, x: np.ndarray, y: np.ndarray, epochs: int,
                   targets=TARGETS) -> dict:
    """Per target: fine-tune through its rounding, recompile, compare float vs intsim again.
    Returns {target: {epochs, float and on-target (intsim) accuracy after, agreement after}};
    the report adds the on-target accuracy before from the run stage."""
    import torch

    from tsslc.backends import get_backend
    from tsslc.api import compile as compile_graph
    from tsslc.equivalence import compare
    from tsslc.data.digits import load_digits_datasets
    from tsslc.finetune import finetune
    from tsslc.ir import io
    from tsslc.ir.export import graph_from_network
    from tsslc.targets import get_target

    train_set, test_set = load_digits_datasets()
    calib = torch.from_numpy(calibration)
    summary = {}
    for t in targets:
        res = finetune(net, get_target(t), train_set, test_set, epochs=epochs, calibration=calib)
        graph = graph_from_network(res.network)
        compiled = compile_graph(graph, t, calibration)
        io.save(compiled, out / f"{t}-finetuned.tsslc")
        ref = get_backend("float")(graph, x, counters=False)  # spikes only: agreement, accuracy
        got = get_backend("intsim")(compiled, x, batch_size=256, counters=False)
        c = compare(ref, got, y, "float", "intsim")
        summary[t] = {
            "epochs": epochs,
            "float_acc_after": float((ref.predictions() == y).mean()),
            "target_acc_after": float((got.predictions() == y).mean()),
            "spike_agreement_after": c["spike_agreement"],
            "classification_agreement_after": c["classification_agreement"],
            "tau_m": res.network.config.tau_m,
            "tau_s": res.network.config.tau_s,
        }
        say(f"{t} fine-tuned {epochs} epochs: intsim accuracy {100 * summary[t]['target_acc_after']:.2f} %, "
            f"float model {100 * summary[t]['float_acc_after']:.2f} %, "
            f"{100 * c['spike_agreement']:.3f} % spikes agree")
    return summary


def stage_mnist_activity(mnist_dir: Path, train_samples: int, test_samples: int = 500, progress: bool = False):
    """The paper's MNIST CNN trained one epoch on ``train_samples`` images, run by the float
    interpreter on ``test_samples`` test images (both drawn evenly from every class):
    (counters, accuracy, note)."""
    import torch

    from tsslc.config import load_config
    from tsslc.data import load_dataset, stratified_subset
    from tsslc.backends import get_backend
    from tsslc.ir.export import graph_from_network
    from tsslc.training.trainer import fit

    cfg = load_config(MNIST_CONFIG)
    train_set, test_set = load_dataset(cfg, mnist_dir)
    n_train, n_test = min(train_samples, len(train_set)), min(test_samples, len(test_set))
    t0 = time.time()
    train_sub, test_sub = stratified_subset(train_set, n_train), stratified_subset(test_set, n_test)
    res = fit(cfg, train_sub, test_sub, epochs=1, progress=progress)
    graph = graph_from_network(res.network)
    x = torch.stack([test_sub[i][0] for i in range(len(test_sub))]).numpy()
    counters = get_backend("float")(graph, x).counters
    note = (f"MNIST CNN 15C5-P2-40C5-P2-300-10 trained 1 epoch on {n_train:,} MNIST images "
            f"(test accuracy {100 * res.test_accuracy:.2f} % on {n_test} test images)")
    say(f"{note} in {time.time() - t0:.0f} s")
    return counters, res.test_accuracy, note


def stage_count(graph, compiled: dict, results: dict, x: np.ndarray) -> dict:
    """Counters per (back end, target) label: each run's own (per core on compiled graphs),
    and intsim's on the samples Lava ran, for the side-by-side comparison."""
    from tsslc.backends.counters import count_run

    counters = {"float": results[("float", None)].counters}
    for (b, t), r in results.items():
        if t is not None:
            counters[f"{t}/{b}"] = r.counters
    n = results[("lava", LAVA_TARGET)].output_spikes.shape[1]
    counters[f"{LAVA_TARGET}/intsim (Lava samples)"] = count_run(compiled[LAVA_TARGET],
                                                                _subset(results[("intsim", LAVA_TARGET)], n).spikes, x[:n])
    return counters


def _label(backend: str, target: str | None) -> str:
    return backend if target is None else f"{target} / {backend}"


def record_accuracy(results: dict, y: np.ndarray) -> dict:
    """{label: accuracy, samples, target, back end, predictions and labels} per run."""
    from tsslc.report.record import accuracy_entry

    return {_label(b, t): accuracy_entry(r.predictions(), y[: r.output_spikes.shape[1]], t, b)
            for (b, t), r in results.items()}


def record_run(out: Path, settings: dict, samples: dict, net: str) -> dict:
    """The report's run metadata: version, commit, date, config, seed, data, settings."""
    import json

    from tsslc.report.record import run_metadata

    metrics = json.loads((out / "metrics.json").read_text())
    settings = dict(settings)
    if settings.get("epochs") is None:  # the config's
        settings["epochs"] = len(metrics.get("epochs", []))
    return run_metadata(config=CONFIG, metrics=metrics, network=net, dataset="digits (scikit-learn 8×8, fixed split)",
                        samples=samples, settings=settings)


def figure_captions(net: str, mnist) -> dict:
    """Captions and sections of the figures the demo stores (RUN/figures/NAME.png)."""
    tag = net.split()[0].lower()
    caps = {
        f"firing_counts_{tag}": ("activity", f"Share of the {net}'s neurons firing k = 0…T times in one sample, per "
                                             "layer (float model, test set; the paper's Fig. 7)."),
        f"firing_rates_{tag}": ("activity", f"Histogram of the {net}'s firing rates (spikes per step per neuron, "
                                            "averaged over the test set; float model; the paper's Fig. 8)."),
        "raster_float": ("activity", "Spike raster of test sample 0 in the float interpreter: a dot where a "
                                     "neuron fired at a step, one panel per layer."),
        "raster_lava": ("activity", f"Spike raster of test sample 0 on Lava ({LAVA_TARGET}): the same sample "
                                    "as the float raster above, run by the chip's integer arithmetic."),
    }
    if mnist is not None:
        caps["firing_counts_mnist_cnn"] = ("activity", "Share of the MNIST CNN's neurons firing k times per layer "
                                                       "(float model; the paper's Fig. 7).")
        caps["firing_rates_mnist_cnn"] = ("activity", "Histogram of the MNIST CNN's firing rates per layer (float "
                                                      "model; the paper's Fig. 8).")
    return {k: {"section": s, "caption": c} for k, (s, c) in caps.items()}


def stage_report(out: Path, graph, compiled: dict, results: dict, counters: dict, equivalence: dict, y,
                 net: str = "digits MLP", finetuned: dict | None = None, mnist=None, run: dict | None = None) -> Path:
    from tsslc.report import figures
    from tsslc.report.energy import energy_report, format_table, write_json
    from tsslc.report.html import FIGURES, REPORT_JSON, write_report
    from tsslc.report.neurobench import neurobench_view
    from tsslc.report.record import finish

    energy = energy_report({t: counters[f"{t}/intsim"] for t in compiled},
                           runs={_label(b, t): (t, counters[f"{t}/{b}"]) for b, t in results if t is not None})
    write_json(out / "energy.json", energy)
    table = format_table(energy)
    print(table)
    lava_key = f"{LAVA_TARGET}/intsim (Lava samples)"
    lava_equal = counters[lava_key].to_dict() == counters[f"{LAVA_TARGET}/lava"].to_dict()
    accuracy = record_accuracy(results, y)
    data = {
        "title": f"tsslc: {net} — train → export → compile → run → verify → report",
        "run": run or {},
        "accuracy": accuracy,
        "quantization": {t: cg.metadata["quantization"] for t, cg in compiled.items()},
        "mapping": {t: {k: v for k, v in cg.metadata["mapping"].items() if not hasattr(v, "shape")}
                    for t, cg in compiled.items()},
        "equivalence": equivalence,
        "finetune": {t: {**f, "target_acc_before": accuracy.get(f"{t} / intsim", {}).get("accuracy")}
                     for t, f in (finetuned or {}).items()},
        "counters": {k: c.to_dict() for k, c in counters.items()},
        "counters_lava_equal_intsim": lava_equal,
        "neurobench": {f"{net} (float)": neurobench_view(graph, counters["float"]),
                       **{f"{net} ({t})": neurobench_view(compiled[t], counters[f"{t}/intsim"]) for t in compiled}},
        "energy": energy,
        "energy_table": table,
        "mnist_activity": None if mnist is None else {"note": mnist[2], "accuracy": mnist[1]},
    }
    say(f"counters of Lava and intsim on the same samples are {'identical' if lava_equal else 'DIFFERENT'}")

    fig_dir = out / FIGURES
    fl = counters["float"]
    tag = net.split()[0].lower()
    pngs = {
        f"firing_counts_{tag}": figures.firing_counts({p: fl.spike_count_fractions(p) for p in fl.populations},
                                                      f"Fig. 7: share of neurons firing k times ({net}, float)"),
        f"firing_rates_{tag}": figures.firing_rates({p: fl.firing_rates(p) for p in fl.populations},
                                                    f"Fig. 8: firing rates ({net}, float)"),
        "raster_float": figures.raster(results[("float", None)].spikes, 0, "float interpreter, test sample 0"),
        "raster_lava": figures.raster(results[("lava", LAVA_TARGET)].spikes, 0, "Lava (loihi2), test sample 0"),
        **({} if mnist is None else {
            "firing_counts_mnist_cnn": figures.firing_counts(
                {p: mnist[0].spike_count_fractions(p) for p in mnist[0].populations},
                f"Fig. 7: share of neurons firing k times\n(MNIST CNN, float, {100 * mnist[1]:.1f} % accurate)"),
            "firing_rates_mnist_cnn": figures.firing_rates(
                {p: mnist[0].firing_rates(p) for p in mnist[0].populations},
                f"Fig. 8: firing rates\n(MNIST CNN, float, {100 * mnist[1]:.1f} % accurate)"),
        }),
    }
    data["figures"] = figure_captions(net, mnist)
    for name, png in pngs.items():
        figures.save(fig_dir / f"{name}.png", png)
    for stale in fig_dir.glob("*.png"):
        if stale.stem not in pngs:
            stale.unlink()
    from tsslc.atomic import write_json as write_any_json

    write_any_json(out / REPORT_JSON, finish(data))
    return write_report(out)


def demo(out="runs/demo", epochs: int | None = None, lava_samples: int = 150, calibration: int = 256,
         finetune_epochs: int = 2, mnist_dir=MNIST_DIR, mnist_train_samples: int = 12000,
         progress: bool = True) -> Path:
    """Every stage on the digits set (the MNIST CNN's activity when ``mnist_dir`` holds the
    MNIST files); returns the path of the HTML report."""
    if finetune_epochs < 0:
        raise TsslcError(f"--finetune-epochs must be >= 0, got {finetune_epochs}")
    if lava_samples < 1:
        raise TsslcError(f"--lava-samples must be >= 1, got {lava_samples}")
    if not CONFIG.is_file():
        raise TsslcError(f"the demo's config {CONFIG} is missing from the installed tsslc.examples")
    from tsslc.runlock import run_lock

    out = Path(out)
    if (out / "checkpoint.pt").exists() and not (out / "report.json").exists():
        raise TsslcError(f"{out} holds a training run, not a demo's; choose another -o (the demo replaces its own "
                         "earlier runs only)")
    with run_lock(out, "demo"):
        return _demo(out, epochs, lava_samples, calibration, finetune_epochs, mnist_dir, mnist_train_samples, progress)


def _demo(out: Path, epochs, lava_samples, calibration, finetune_epochs, mnist_dir, mnist_train_samples,
          progress) -> Path:
    from tsslc.data.digits import digits_arrays

    t0 = time.time()
    say(f"writing to {out}/")
    from tsslc.data import stratified_indices

    xtr, ytr, xte, yte = digits_arrays()
    calib = xtr[stratified_indices(ytr, calibration)]
    samples = {"train": len(xtr), "test": len(xte), "calibration": min(calibration, len(xtr)),
               "lava": min(lava_samples, len(xte))}
    settings = {"epochs": epochs, "lava_samples": lava_samples, "calibration": calibration,
                "finetune_epochs": finetune_epochs, "mnist_train_samples": mnist_train_samples}
    stage_train(out, epochs, progress)
    graph = stage_export(out)
    compiled = stage_compile(out, graph, calib)
    results = stage_run(graph, compiled, xte, lava_samples, progress)
    equivalence = stage_verify(results, yte)
    finetuned = {}
    if finetune_epochs > 0:
        from tsslc.training.checkpoint import load_checkpoint

        net, _, _ = load_checkpoint(out / "checkpoint.pt")
        finetuned = stage_finetune(out, net, calib, xte, yte, finetune_epochs)
    mnist = None
    if mnist_train_samples > 0:
        if (Path(mnist_dir) / "train-images-idx3-ubyte.gz").is_file() or \
                (Path(mnist_dir) / "train-images-idx3-ubyte").is_file():
            mnist = stage_mnist_activity(Path(mnist_dir), mnist_train_samples, progress=progress)
        else:
            say(f"no MNIST files in {mnist_dir}: the MNIST CNN's activity figures are left out (--mnist-dir)")
    counters = stage_count(graph, compiled, results, xte)
    page = stage_report(out, graph, compiled, results, counters, equivalence, yte, finetuned=finetuned, mnist=mnist,
                        run=record_run(out, settings, samples, "digits MLP"))
    say(f"done in {time.time() - t0:.0f} s. Report: {page.resolve()}")
    return page
