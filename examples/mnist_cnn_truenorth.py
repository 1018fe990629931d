"""The paper's MNIST CNN reshaped for TrueNorth-like cores (examples/mnist_cnn_truenorth.yaml),
end to end on real MNIST: train a few epochs on CPU → compile for truenorth (cores, axons,
splitters per layer) → float vs on-target (intsim) accuracy → hardware-aware fine-tuning
(tsslc.finetune: weight levels per axon type, binary input encoding, realised decays) →
compile and run again → energy per sample. Writes RUN/summary.json and prints the figures.

    .venv/bin/python examples/mnist_cnn_truenorth.py --data-dir ../shared/data/mnist \\
        --out runs/mnist_tn --threads 1        # the README's figures: every default, ~30 min on one thread

``--stages train`` only trains (checkpoint in RUN/); ``--stages target`` takes the run's
checkpoint and does the rest. Every subset is drawn from every class with ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("TSSLC_SHARED_DATA") or REPO.parent / "shared" / "data") / "mnist"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()),
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data-dir", default=str(MNIST_DIR), help="folder with the MNIST IDX files")
    ap.add_argument("--config", default=str(REPO / "examples" / "mnist_cnn_truenorth.yaml"))
    ap.add_argument("--out", default="runs/mnist_tn", help="run folder")
    ap.add_argument("--epochs", type=int, default=6, help="training epochs")
    ap.add_argument("--train-samples", type=int, default=0, help="training images (0: all 60,000)")
    ap.add_argument("--test-samples", type=int, default=2000, help="test images (0: all 10,000)")
    ap.add_argument("--finetune-epochs", type=int, default=3, help="hardware-aware fine-tuning epochs (0: none)")
    ap.add_argument("--finetune-samples", type=int, default=20000, help="training images the fine-tuning sees")
    ap.add_argument("--finetune-start", choices=("float", "compiled"), default="compiled",
                    help="fine-tuning starts from the float weights or from the compile's (error-feedback) integers")
    ap.add_argument("--finetune-fold", type=int, choices=(0, 1), default=1,
                    help="1: fine-tune the network with its pools folded into the next synapses (what the chip runs)")
    ap.add_argument("--finetune-lr", type=float, default=None, help="fine-tuning learning rate (default: the config's)")
    ap.add_argument("--calibration", type=int, default=256, help="training images the quantizer calibrates on")
    ap.add_argument("--stages", default="train,target", help="train and/or target")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    return ap


def say(msg: str) -> None:
    print(f"[mnist_tn {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.time()
    import torch

    from tsslc.config import load_config
    from tsslc.data import dataset_labels, load_dataset, stratified_indices, stratified_subset
    from tsslc.errors import TsslcError

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    stages = set(args.stages.split(","))
    out = Path(args.out)
    summary_path = out / "summary.json"
    try:
        config = load_config(args.config)
        train_all, test_all = load_dataset(config, args.data_dir)
        train_set = stratified_subset(train_all, args.train_samples or None, args.seed)
        test_set = stratified_subset(test_all, args.test_samples or None, args.seed)
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        summary.update(seed=args.seed, threads=torch.get_num_threads(), config=str(args.config))
        if "train" in stages:
            from tsslc.training.run import train_run

            say(f"training {args.epochs} epoch(s) on {len(train_set)} images, testing on {len(test_set)}")
            metrics = train_run(config, out, epochs=args.epochs, seed=args.seed, progress=False,
                                datasets=(train_set, test_set))
            summary["train"] = {"epochs": args.epochs, "train_samples": len(train_set), "test_samples": len(test_set),
                                "float_test_acc": metrics["final_test_acc"], "seconds": metrics["train_seconds"]}
            say(f"trained: float test accuracy {100 * metrics['final_test_acc']:.2f} % in "
                f"{metrics['train_seconds']:.0f} s")
        if "target" in stages:
            # one entry per fine-tuning setting: target-START[-fold]
            tag = f"target-{args.finetune_start}{'-fold' if args.finetune_fold else ''}"
            summary[tag] = target_stage(args, out, train_set, test_set)
        from tsslc.atomic import write_json

        write_json(summary_path, summary)
    except TsslcError as e:
        print(f"mnist_cnn_truenorth: error: {e}", file=sys.stderr)
        return 1
    say(f"whole run: {time.time() - t0:.0f} s with {torch.get_num_threads()} torch thread(s) → {summary_path}")
    return 0


def _on_target(net, calib, x, y, label: str) -> tuple[dict, object]:
    from tsslc.api import compile as compile_graph
    from tsslc.backends import get_backend
    from tsslc.ir.export import graph_from_network
    from tsslc.report.energy import energy_report, format_table

    graph = graph_from_network(net)
    compiled = compile_graph(graph, "truenorth", calib)
    flt = get_backend("float")(graph, x, counters=False)
    t1 = time.time()
    tn = get_backend("intsim")(compiled, x, batch_size=250)
    sim_s = time.time() - t1
    m = compiled.metadata["mapping"]
    energy = energy_report({"truenorth": tn.counters})
    from tsslc.targets.truenorth import splitter_events

    split = splitter_events(compiled, tn.spikes)  # the splitter cores' events, not in the counters
    row = {
        "float_acc": float((flt.predictions() == y).mean()),
        "truenorth_acc": float((tn.predictions() == y).mean()),
        "intsim_seconds": sim_s,
        "cores": m["cores"], "neuron_cores": m["neuron_cores"], "splitter_cores": m["splitter_cores"],
        "splitter_neurons": m["splitter_neurons"], "latency_ticks": m["latency_ticks"],
        "layers": {k: {kk: v[kk] for kk in ("cores", "neurons", "fan_in", "axons_per_input", "axons",
                                              "splitter_neurons", "splitter_cores", "latency")}
                   for k, v in m["layers"].items()},
        "quantization": [{k: r[k] for k in ("name", "fan_in", "axons_per_input", "weight_levels", "weight_error",
                                            "rounding", "scale_bound")} for r in compiled.metadata["quantization"]["layers"]],
        "energy": energy,
        "splitter_events_per_sample": split,
        "splitter_energy_nJ_per_sample": sum(split.values()) * 26.0 / 1e3,
    }
    say(f"{label}: float {100 * row['float_acc']:.2f} %, truenorth (intsim) {100 * row['truenorth_acc']:.2f} % on "
        f"{len(y)} test images; {m['cores']} cores ({m['neuron_cores']} neuron + {m['splitter_cores']} splitter)")
    print(format_table(energy))
    say(f"splitter cores: {sum(split.values()):,.0f} synaptic events per sample more "
        f"({row['splitter_energy_nJ_per_sample']:,.1f} nJ at 26 pJ; not in the table above)")
    return row, compiled


def target_stage(args, out: Path, train_set, test_set) -> dict:
    import torch

    from tsslc.data import dataset_labels, stratified_indices, stratified_subset
    from tsslc.finetune import finetune
    from tsslc.ir import io
    from tsslc.targets import get_target
    from tsslc.training.checkpoint import load_checkpoint

    net, _, _ = load_checkpoint(out / "checkpoint.pt")
    net.eval()
    idx = stratified_indices(dataset_labels(train_set), args.calibration, args.seed)
    calib = np.stack([np.asarray(train_set[int(i)][0], np.float32) for i in idx])
    x = np.stack([np.asarray(test_set[i][0], np.float32) for i in range(len(test_set))])
    y = dataset_labels(test_set)
    res = {}
    res["before"], compiled = _on_target(net, calib, x, y, "trained")
    io.save(compiled, out / "truenorth.tsslc")
    if args.finetune_epochs > 0:
        ft_set = stratified_subset(train_set, min(args.finetune_samples, len(train_set)), args.seed + 1)
        t1 = time.time()
        ft = finetune(net, get_target("truenorth"), ft_set, test_set, epochs=args.finetune_epochs,
                      calibration=torch.from_numpy(calib), seed=args.seed, start=args.finetune_start,
                      fold=bool(args.finetune_fold), lr=args.finetune_lr)
        res["finetune"] = {"epochs": args.finetune_epochs, "samples": len(ft_set), "seconds": time.time() - t1,
                           "start": args.finetune_start, "fold": bool(args.finetune_fold), "lr": args.finetune_lr,
                           "history": ft.history}
        res["after"], compiled = _on_target(ft.network, calib, x, y, f"fine-tuned {args.finetune_epochs} epoch(s)")
        io.save(compiled, out / f"truenorth-finetuned-{args.finetune_start}{'-fold' if args.finetune_fold else ''}.tsslc")
    from tsslc.report.energy import write_json as write_energy

    # the energy table of the last compile, where `tsslc report RUN` finds one
    write_energy(out / "energy.json", res["after" if "after" in res else "before"]["energy"])
    return res


if __name__ == "__main__":
    sys.exit(main())
