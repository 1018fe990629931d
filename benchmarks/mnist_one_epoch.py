"""The paper's MNIST CNN (examples/mnist_cnn.yaml, 15C5-P2-40C5-P2-300-10, T = 5, batch 50)
trained for one epoch with TSSL-BP on the full MNIST set; prints test accuracy and time.

    python benchmarks/mnist_one_epoch.py [--data-dir ../shared/data/mnist] [--device cpu]
        [--threads N] [--rule tsslbp|bptt] [--seed 0] [--out RUN]

Not a CI test (minutes on a CPU). Target: > 97 % test accuracy after one epoch.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rule", default="tsslbp", choices=("tsslbp", "bptt"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from tsslc.config import load_config
    from tsslc.training.run import train_run

    cfg = load_config(REPO / "examples" / "mnist_cnn.yaml")
    cfg.rule = args.rule
    out = args.out or tempfile.mkdtemp(prefix="mnist_one_epoch_")
    t0 = time.perf_counter()
    m = train_run(cfg, out, data_dir=args.data_dir, epochs=1, seed=args.seed, device=args.device, progress=True)
    total = time.perf_counter() - t0
    e = m["epochs"][-1]
    print(f"MNIST CNN, {args.rule}, 1 epoch on {m['device']} ({torch.get_num_threads()} threads): "
          f"test accuracy {e['test_acc'] * 100:.2f} % (train {e['train_acc'] * 100:.2f} %), "
          f"epoch {e['seconds']:.0f} s, total with data loading {total:.0f} s; run folder {out}")
    print("PASS" if e["test_acc"] > 0.97 else "BELOW the 97 % target")


if __name__ == "__main__":
    main()
