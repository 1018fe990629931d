"""``tsslc finetune RUN --target T``: hardware-aware fine-tuning of a trained run.

Loads ``RUN/checkpoint.pt`` (or a checkpoint file), measures the accuracy of the network
compiled for the target on the integer simulator, fine-tunes it through the target's
rounding (:mod:`tsslc.finetune`), measures again and writes a new run folder (default
``RUN/finetune-<target>``: config.yaml, checkpoint.pt, metrics.json with both accuracies),
which ``tsslc export`` / ``compile`` take like any run. A folder already holding a run is
refused unless ``--overwrite``; the folder is locked while the command runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from tsslc.errors import TsslcError


def add_arguments(parser) -> None:
    parser.add_argument("run", help="training run folder (with checkpoint.pt) or a checkpoint file")
    parser.add_argument("--target", required=True, help="loihi2 | truenorth")
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs (default 3)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the config's)")
    parser.add_argument("-o", "--out", default=None, help="run folder to write (default RUN/finetune-<target>)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in the --out folder (without it, such a folder is refused)")
    parser.add_argument("--data-dir", default=None, help="folder holding the data set's files (not needed for digits)")
    parser.add_argument("--calibration", type=int, default=256, help="training samples to calibrate on (default 256)")
    parser.add_argument("--eval-samples", type=int, default=1000,
                        help="test samples for the on-target accuracy before/after (default 1000; 0 = all)")
    parser.add_argument("--fold", action="store_true",
                        help="fine-tune the net with its pools folded into the next synapses (the chip's synapses; "
                             "the run written has the folded config)")
    parser.add_argument("--start", choices=("float", "compiled"), default="float",
                        help="start from the float weights or from the compiled integers (default float)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    from tsslc.atomic import refuse_clobber
    from tsslc.runlock import run_lock
    from tsslc.targets import get_target
    from tsslc.training.checkpoint import load_checkpoint
    from tsslc.training.run import CHECKPOINT, CONFIG, METRICS

    src = Path(args.run)
    ckpt_path = src / CHECKPOINT if src.is_dir() else src
    if not ckpt_path.is_file():
        raise TsslcError(f"{src}: no training checkpoint here (expected {ckpt_path}); train with 'tsslc train' first")
    if args.epochs < 1:
        raise TsslcError(f"--epochs must be >= 1, got {args.epochs}")
    from tsslc import validate

    validate.number(None, "--seed", args.seed, int, nonneg=True, hi=2**63 - 1)
    if args.lr is not None:
        validate.number(None, "--lr", args.lr, positive=True)
    target = get_target(args.target)
    net, config, _ = load_checkpoint(ckpt_path)
    out = Path(args.out) if args.out else (src if src.is_dir() else src.parent) / f"finetune-{target.name}"
    if out.exists() and not out.is_dir():
        raise TsslcError(f"--out {out} exists and is not a folder")
    outputs = [(f"--out's {n}", out / n) for n in (CONFIG, CHECKPOINT, METRICS)]
    inputs = [("checkpoint", ckpt_path), ("--data-dir", args.data_dir)]
    refuse_clobber(outputs, inputs)
    with run_lock(out, "finetune"):  # the whole run: a second fine-tuning into the folder is refused at once
        held = [p.name for _, p in outputs if p.exists()]
        if held and not args.overwrite:
            raise TsslcError(f"{out} already holds a run ({', '.join(held)}); --overwrite replaces it, or choose "
                             "another --out")
        return _finetune(args, net, config, target, out, ckpt_path)


def _finetune(args, net, config, target, out: Path, ckpt_path: Path) -> int:
    import yaml

    import torch

    from tsslc.atomic import atomic_write_text
    from tsslc.data import load_dataset, sample_arrays
    from tsslc.finetune import finetune, target_accuracy
    from tsslc.training.checkpoint import save_checkpoint
    from tsslc.training.run import CHECKPOINT, CONFIG, METRICS

    train_set, test_set = load_dataset(config, args.data_dir)
    calib = torch.from_numpy(sample_arrays(train_set, args.calibration, args.seed)[0])
    x_eval, y_eval = sample_arrays(test_set, args.eval_samples or None, args.seed)
    progress = not args.no_progress

    before, _, _ = target_accuracy(net, target, calib, x_eval, y_eval)
    print(f"{target.name}: accuracy before fine-tuning {before:.4f} on {len(y_eval)} test samples (intsim)")
    res = finetune(net, target, train_set, test_set, epochs=args.epochs, calibration=calib, seed=args.seed,
                   lr=args.lr, progress=progress, start=args.start, fold=args.fold)
    for name, p in res.network.named_parameters():
        if not torch.isfinite(p).all():
            raise TsslcError(f"fine-tuning diverged: weight '{name}' holds NaN or infinite values after "
                             f"{len(res.history)} epoch(s); lower --lr (was {args.lr if args.lr is not None else config.lr:g})")
    after, _, _ = target_accuracy(res.network, target, calib, x_eval, y_eval)
    print(f"{target.name}: accuracy after {args.epochs} epoch(s) {after:.4f} (intsim); "
          f"float model {res.history[-1]['test_acc']:.4f} through the target's rounding")

    cfg = res.network.config
    doc = {"source": str(ckpt_path), "target": target.name, "epochs": res.history,
           "eval_samples": int(len(y_eval)), "target_accuracy_before": before, "target_accuracy_after": after,
           "tau_m": cfg.tau_m, "tau_s": cfg.tau_s, "test_acc": res.history[-1]["test_acc"]}
    atomic_write_text(out / CONFIG, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    save_checkpoint(out / CHECKPOINT, res.network, res.optimizer, cfg, len(res.history), args.seed, res.history)
    atomic_write_text(out / METRICS, json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0

