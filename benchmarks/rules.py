"""TSSL-BP against the BPTT baseline on one config, over many seeds.

For each seed, the config is trained twice from the same initial weights and the same batch
order, once with ``rule: tsslbp`` and once with ``rule: bptt``, for the config's epochs.
Prints, per seed, the final test accuracy and the mean of the last five epochs for both
rules, then the mean, the standard deviation and the paired difference (TSSL-BP - BPTT)
with its standard error, and the ratio of the mean accuracies, all measured in this run.
The two rules share the forward pass bit for bit (same spikes for the same weights), so the
difference is the learning rule alone.

    python benchmarks/rules.py [--config examples/digits.yaml] [--seeds 16] [--jobs 2]
    python benchmarks/rules.py --config examples/mnist_mlp.yaml --data-dir ../shared/data/mnist \
        --epochs 5 --seeds 3 --jobs 1 --threads 2

``--train-samples N`` trains on the first N training samples (the whole test set is used).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def one_seed(config: str, seed: int, data_dir=None, epochs=None, train_samples=None, threads=1) -> dict:
    import torch
    from torch.utils.data import Subset

    torch.set_num_threads(threads)
    from tsslc.config import load_config
    from tsslc.data import load_dataset
    from tsslc.training.trainer import fit

    cfg = load_config(config)
    if epochs:
        cfg.epochs = int(epochs)
    train, test = load_dataset(cfg, data_dir)
    if train_samples:
        train = Subset(train, range(min(int(train_samples), len(train))))
    row = {"seed": seed}
    for rule in ("tsslbp", "bptt"):
        c = copy.deepcopy(cfg)
        c.rule = rule
        t0 = time.perf_counter()
        hist = [h["test_acc"] for h in fit(c, train, test, seed=seed).history]
        row[rule] = {"final": hist[-1], "last5": sum(hist[-5:]) / len(hist[-5:]), "s": time.perf_counter() - t0}
    return row


def summary(rows: list[dict], key: str) -> dict:
    t = [r["tsslbp"][key] for r in rows]
    b = [r["bptt"][key] for r in rows]
    d = [x - y for x, y in zip(t, b)]
    n = len(rows)
    sd = statistics.stdev(d) if n > 1 else float("nan")
    return {"tsslbp_mean": statistics.fmean(t), "bptt_mean": statistics.fmean(b),
            "tsslbp_sd": statistics.stdev(t) if n > 1 else float("nan"),
            "bptt_sd": statistics.stdev(b) if n > 1 else float("nan"),
            "diff_mean": statistics.fmean(d), "diff_se": sd / math.sqrt(n),
            "tsslbp_ahead_or_equal": sum(x >= 0 for x in d), "n": n}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "examples" / "digits.yaml"))
    ap.add_argument("--seeds", type=int, default=16, help="how many seeds")
    ap.add_argument("--first-seed", type=int, default=0, help="seeds FIRST..FIRST+N-1")
    ap.add_argument("--jobs", type=int, default=2, help="processes")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--data-dir", default=None, help="data folder (not needed for digits)")
    ap.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    ap.add_argument("--train-samples", type=int, default=None, help="first N training samples only")
    ap.add_argument("--json", help="write the rows and the summary here")
    args = ap.parse_args()
    rows = []
    print(f"{args.config}: TSSL-BP vs BPTT, same seed, same epochs{f' ({args.epochs})' if args.epochs else ''}, "
          f"seeds {args.first_seed}..{args.first_seed + args.seeds - 1}")
    print(f"{'seed':>4s} {'TSSL-BP final':>14s} {'BPTT final':>11s} {'TSSL-BP last5':>14s} {'BPTT last5':>11s}")
    with ProcessPoolExecutor(args.jobs) as pool:
        n = args.seeds
        seeds = range(args.first_seed, args.first_seed + n)
        for r in pool.map(one_seed, [args.config] * n, seeds, [args.data_dir] * n, [args.epochs] * n,
                          [args.train_samples] * n, [args.threads] * n):
            rows.append(r)
            print(f"{r['seed']:4d} {100 * r['tsslbp']['final']:13.2f}% {100 * r['bptt']['final']:10.2f}% "
                  f"{100 * r['tsslbp']['last5']:13.2f}% {100 * r['bptt']['last5']:10.2f}%", flush=True)
    out = {}
    for key in ("final", "last5"):
        s = out[key] = summary(rows, key)
        print(f"{key:>5s}: TSSL-BP {100 * s['tsslbp_mean']:.2f} ± {100 * s['tsslbp_sd']:.2f} %, "
              f"BPTT {100 * s['bptt_mean']:.2f} ± {100 * s['bptt_sd']:.2f} %, "
              f"paired difference {100 * s['diff_mean']:+.2f} ± {100 * s['diff_se']:.2f} points (SE), "
              f"TSSL-BP ahead or equal on {s['tsslbp_ahead_or_equal']}/{s['n']} seeds, "
              f"ratio TSSL-BP/BPTT {s['tsslbp_mean'] / s['bptt_mean']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": args.config, "rows": rows, "summary": out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
