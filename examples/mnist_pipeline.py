"""The main job's chain on MNIST from a data folder (the paper's CNN, examples/mnist_cnn.yaml):
train → export → compile → run (float, intsim, Lava) → verify → report, with the same stage
functions as ``tsslc demo``.

    .venv/bin/python examples/mnist_pipeline.py --data-dir ../shared/data/mnist --out runs/mnist \
        [--epochs 1] [--train-samples 6000] [--test-samples 1000] [--lava-samples 50] [--targets loihi2]

The data folder holds the original IDX files (train-images-idx3-ubyte.gz, ...). The paper
trains 100 epochs; on 2 CPUs one epoch over 60,000 images takes long, so --train-samples
trains on the first N for a quick look. TrueNorth-like cores cannot take the CNN's 640-input
fully connected layer (fan-in > 256 axons): compile it for truenorth only with a fan_in
limit in the config (see targets/truenorth.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="folder with the MNIST IDX files")
    ap.add_argument("--config", default=str(REPO / "examples" / "mnist_cnn.yaml"))
    ap.add_argument("--out", default="runs/mnist")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train-samples", type=int, default=6000)
    ap.add_argument("--test-samples", type=int, default=1000)
    ap.add_argument("--calibration", type=int, default=256)
    ap.add_argument("--lava-samples", type=int, default=50)
    ap.add_argument("--targets", default="loihi2", help="comma-separated (loihi2 runs on Lava too)")
    args = ap.parse_args(argv)

    from torch.utils.data import Subset

    from tsslc import pipeline as demo
    from tsslc.config import load_config
    from tsslc.data import load_dataset
    from tsslc.errors import TsslcError

    try:
        out = Path(args.out)
        config = load_config(args.config)
        train_set, test_set = load_dataset(config, args.data_dir)
        train_set = Subset(train_set, range(min(args.train_samples, len(train_set))))
        demo.say(f"MNIST from {args.data_dir}: training on {len(train_set)} images → {out}/")
        demo.stage_train(out, args.epochs, True, config=config, datasets=(train_set, test_set))
        graph = demo.stage_export(out)
        xtr = np.stack([np.asarray(train_set[i][0], np.float32) for i in range(args.calibration)])
        n = min(args.test_samples, len(test_set))
        xte = np.stack([np.asarray(test_set[i][0], np.float32) for i in range(n)])
        yte = np.asarray([int(test_set[i][1]) for i in range(n)], np.int64)
        compiled = demo.stage_compile(out, graph, xtr, targets=tuple(args.targets.split(",")))
        results = demo.stage_run(graph, compiled, xte, args.lava_samples, True)
        equivalence = demo.stage_verify(results, yte)
        counters = demo.stage_count(graph, compiled, results, xte)
        page = demo.stage_report(out, graph, compiled, results, counters, equivalence, yte, net="MNIST CNN")
    except TsslcError as e:
        print(f"mnist_pipeline: error: {e}", file=sys.stderr)
        return 1
    demo.say(f"Report: {page.resolve()}")
    return 0


if __name__ == "__main__":
    t0 = time.time()
    sys.exit(main())
