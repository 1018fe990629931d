"""The main job's chain on MNIST from a data folder (the paper's CNN, examples/mnist_cnn.yaml):
train → export → compile → run (float, intsim, Lava) → verify → report, with the same stage
functions as ``tsslc demo``.

    .venv/bin/python examples/mnist_pipeline.py                       # every flag has a default
    .venv/bin/python examples/mnist_pipeline.py --data-dir ../shared/data/mnist --out runs/mnist \\
        --epochs 1 --train-samples 6000 --test-samples 1000 --lava-samples 50 --targets loihi2

The data folder holds the original IDX files (train-images-idx3-ubyte.gz, ...). The paper
trains 200 epochs on all 60,000 images; on 2 CPUs one epoch takes several minutes, so by
default the network trains one epoch on 6,000 images drawn evenly from every class (seeded),
enough to see the chain work end to end. Every subset (training, test, calibration) is drawn
from every class with ``--seed``. TrueNorth-like cores cannot take the CNN's 640-input fully
connected layer (fan-in > 256 axons): compile it for truenorth only with a fan_in limit in
the config (see targets/truenorth.md). The run ends with its wall time and thread count.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()),
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data-dir", default=str(MNIST_DIR), help="folder with the MNIST IDX files")
    ap.add_argument("--config", default=str(REPO / "examples" / "mnist_cnn.yaml"), help="network config to train")
    ap.add_argument("--out", default="runs/mnist", help="run folder (checkpoint, models, report)")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs")
    ap.add_argument("--train-samples", type=int, default=6000,
                    help="training images, drawn evenly from every class (0: all 60,000)")
    ap.add_argument("--test-samples", type=int, default=1000,
                    help="test images evaluated each epoch and run on every back end (0: all 10,000)")
    ap.add_argument("--calibration", type=int, default=256, help="training images the quantizer calibrates on")
    ap.add_argument("--lava-samples", type=int, default=50, help="test images also run on Lava (the slow back end)")
    ap.add_argument("--targets", default="loihi2", help="comma-separated targets (loihi2 runs on Lava too)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the training run and of the subset draws")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.time()

    import torch

    from tsslc import pipeline as demo
    from tsslc.config import load_config
    from tsslc.data import load_dataset, stratified_indices, dataset_labels, stratified_subset
    from tsslc.errors import TsslcError

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        for flag in ("epochs", "calibration", "lava_samples"):
            if getattr(args, flag) < 1:
                raise TsslcError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
        out = Path(args.out)
        config = load_config(args.config)
        train_set, test_set = load_dataset(config, args.data_dir)
        train_set = stratified_subset(train_set, args.train_samples or None, args.seed)
        test_set = stratified_subset(test_set, args.test_samples or None, args.seed)
        demo.say(f"MNIST from {args.data_dir}: training on {len(train_set)} images, testing on {len(test_set)} → {out}/")
        demo.stage_train(out, args.epochs, True, config=config, datasets=(train_set, test_set), seed=args.seed)
        graph = demo.stage_export(out)
        calib = stratified_indices(dataset_labels(train_set), args.calibration, args.seed)
        xtr = np.stack([np.asarray(train_set[int(i)][0], np.float32) for i in calib])
        xte = np.stack([np.asarray(test_set[i][0], np.float32) for i in range(len(test_set))])
        yte = dataset_labels(test_set)
        compiled = demo.stage_compile(out, graph, xtr, targets=tuple(args.targets.split(",")))
        results = demo.stage_run(graph, compiled, xte, args.lava_samples, True)
        equivalence = demo.stage_verify(results, yte)
        counters = demo.stage_count(graph, compiled, results, xte)
        page = demo.stage_report(out, graph, compiled, results, counters, equivalence, yte, net="MNIST CNN")
    except TsslcError as e:
        print(f"mnist_pipeline: error: {e}", file=sys.stderr)
        return 1
    demo.say(f"Report: {page.resolve()}")
    demo.say(f"whole run: {time.time() - t0:.0f} s with {torch.get_num_threads()} torch thread(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
