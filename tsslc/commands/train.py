"""``tsslc train CONFIG``: train a network from a YAML config (TSSL-BP or ``rule: bptt``).

Writes RUN/config.yaml, RUN/metrics.json and RUN/checkpoint.pt (every epoch, atomically,
once when its training ends and again after its evaluation); ``--resume`` continues a stopped
run exactly, also one stopped during an evaluation. A folder holding a run is refused unless
``--resume`` or ``--overwrite``; one process writes a run folder at a time (RUN/.tsslc.lock).
``--eval-samples N`` evaluates on N test samples drawn from every class. A silent output layer or a loss that does not move is
reported as a warning (and in metrics.json). Under ``torchrun --nproc_per_node=K -m tsslc
train …`` it trains data-parallel (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import os
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("config", help="network config in the TSSL-BP authors' YAML schema (see examples/)")
    parser.add_argument("--data-dir", default=None, help="folder holding the data set's files (not needed for digits)")
    parser.add_argument("-o", "--out", default=None, help="run folder to write (default: runs/<config name>)")
    parser.add_argument("--epochs", type=int, default=None, help="number of epochs (default: the config's)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: auto")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in the folder (without it, and without --resume, a folder "
                             "holding a run is refused)")
    parser.add_argument("--eval-samples", type=int, default=None,
                        help="evaluate each epoch on N test samples drawn evenly from every class with the seed "
                             "(default: the whole test set)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's; 1 is fastest for small nets on busy machines)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import torch

    from tsslc.errors import TsslcError
    from tsslc.training.run import train_run

    from tsslc import validate

    validate.number(None, "--seed", args.seed, int, nonneg=True, hi=2**63 - 1)
    if args.threads is not None:
        cpus = os.cpu_count() or 1  # OpenMP allocates per thread: a million threads abort the process
        validate.number(None, "--threads", args.threads, int, lo=1, hi=4 * cpus)
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    metrics = train_run(args.config, out, data_dir=args.data_dir, epochs=args.epochs, seed=args.seed,
                        device=args.device, resume=args.resume, progress=not args.no_progress,
                        eval_samples=args.eval_samples, overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) == 0:
        acc = metrics["final_test_acc"]
        done = len(metrics["epochs"])
        print(f"{out}: {done} epoch(s), rule {metrics['rule']}, final test accuracy "
              f"{acc * 100:.2f} %" if acc is not None else f"{out}: nothing trained")
    return 0
