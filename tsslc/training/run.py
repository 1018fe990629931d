"""A training run on disk: ``RUN/config.yaml``, ``RUN/metrics.json``, ``RUN/checkpoint.pt``.

:func:`train_run` is what ``tsslc train`` does. A checkpoint (weights, optimiser, RNG state,
config, metrics) is written atomically when an epoch's training ends — before its
evaluation, so that stopping during a long evaluation keeps the trained epoch — and again
with the test figures; ``resume=True`` continues from it (first evaluating an epoch that was
trained but not evaluated) and, on CPU with the same seed, ends with bitwise the same
weights and metrics as an uninterrupted run. Evaluation shows a progress bar and can take a
fair subset of the test set (``eval_samples``, :func:`tsslc.data.stratified_indices`).
After every epoch :func:`tsslc.training.health.diagnose` checks for a silent output layer or
a loss that does not move; its warnings are printed and kept in metrics.json.
Started under ``torchrun --nproc_per_node=K`` (``WORLD_SIZE`` > 1 in the environment) it
trains with DistributedDataParallel — gloo on CPU, nccl on GPU — each rank taking 1/K of
every batch; rank 0 writes the files.

The run folder is locked for the whole run (:func:`tsslc.runlock.run_lock`, taken by rank
0: a second process writing it is refused). A folder that already holds a run (its
checkpoint, metrics or config) is refused unless ``resume`` (continue it; the config must be
the same) or ``overwrite`` (its run files are removed first).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from tsslc.config import NetworkConfig, load_config, parse_config
from tsslc.errors import TsslcError
from tsslc.network import Network, check_train_bytes
from tsslc.atomic import atomic_write_text
from tsslc.training.checkpoint import read_checkpoint, rng_state, save_checkpoint, set_rng_state
from tsslc.training.health import diagnose
from tsslc.training.trainer import NonFiniteLoss, Shard, bare, evaluate_detailed, make_optimizer, train_epoch
from tsslc.atomic import refuse_clobber
from tsslc.runlock import run_lock

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
CONFIG = "config.yaml"


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    device = str(device or "auto").lower()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TsslcError(f"device '{device}' requested but no CUDA GPU is available; use --device cpu or auto")
        if device == "cuda":
            device = f"cuda:{local_rank % torch.cuda.device_count()}"
        dev = torch.device(device)
        torch.cuda.set_device(dev)
        return dev
    if device != "cpu":
        raise TsslcError(f"unknown device {device!r} (expected auto, cpu or cuda)")
    return torch.device("cpu")


def _distributed_env() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def _metrics_doc(config: NetworkConfig, history: list[dict], seed: int, device, world: int) -> dict:
    done = [h for h in history if "test_acc" in h]
    final = done[-1]["test_acc"] if done else None
    return {
        "rule": config.rule, "recipe": config.recipe, "prediction": config.prediction_rule,
        "dataset": config.dataset, "seed": seed, "device": str(device), "world_size": world,
        "threads": torch.get_num_threads(),
        "epochs": history, "final_test_acc": final, "test_acc": final,
        "best_test_acc": max((h["test_acc"] for h in done), default=None),
        "train_seconds": sum(h.get("seconds", 0.0) for h in history),
        "warnings": [w for h in history for w in h.get("warnings", [])],
    }


def _write_metrics(out: Path, doc: dict) -> None:
    atomic_write_text(out / METRICS, json.dumps(doc, indent=2) + "\n")


def train_run(config_path_or_config, out_dir, data_dir=None, epochs: int | None = None, seed: int = 0,
              device: str = "auto", resume: bool = False, progress: bool = True, datasets=None,
              eval_samples: int | None = None, overwrite: bool = False) -> dict:
    """Train (or with ``resume`` continue) a run in ``out_dir``; returns the final metrics.

    ``datasets`` = ``(train_set, test_set)`` overrides :func:`tsslc.data.load_dataset`. With
    ``resume`` the checkpoint's seed is used, and the config must be the run's own.
    ``eval_samples``: evaluate on that many test samples, drawn from every class with the
    run's seed (the same ones every epoch); default: the whole test set."""
    config = (config_path_or_config if isinstance(config_path_or_config, NetworkConfig)
              else load_config(config_path_or_config))
    check_train_bytes(config)  # before any folder, data set or weight
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TsslcError(f"--out {out} exists and is not a folder")
    if resume and overwrite:
        raise TsslcError("--resume continues the run in the folder, --overwrite replaces it: give one of them")
    rank = _distributed_env()[0]
    with run_lock(out, "train") if rank == 0 else contextlib.nullcontext():
        _claim(out, config, data_dir, resume, overwrite, rank)
        return _train(config, out, data_dir, epochs, seed, device, resume, progress, datasets, eval_samples)


def _claim(out: Path, config: NetworkConfig, data_dir, resume: bool, overwrite: bool, rank: int) -> None:
    """Refuse a folder that holds another run (unless ``resume`` or ``overwrite``), and an
    input among the run's files; with ``overwrite`` remove the old run's files."""
    files = [out / n for n in (CHECKPOINT, METRICS, CONFIG)]
    refuse_clobber([("--out's " + p.name, p) for p in files] if overwrite else [],
                   [("config", None if config.source.startswith("<") else config.source), ("--data-dir", data_dir)])
    held = [p for p in files if p.exists()]
    if not held:
        return
    saved = _saved_config(out)
    other = saved is not None and saved != config.to_dict()
    if resume and other:
        raise TsslcError(f"{config.source} differs from the config of the run in {out} ({out / CONFIG}); "
                         "resume with that config or train into a new --out")
    if resume:
        return
    if not overwrite:
        raise TsslcError(f"{out} already holds {_describe_run(out, other, held)}; --resume continues it, "
                         "--overwrite replaces it, or choose another --out")
    if rank == 0:
        for p in held:
            try:
                p.unlink()
            except OSError as e:
                raise TsslcError(f"--overwrite: cannot remove {p}: {e.strerror or e}") from None


def _saved_config(out: Path):
    """The config dict in ``out/config.yaml``; None when there is none or it does not parse."""
    try:
        return yaml.safe_load((out / CONFIG).read_text()) if (out / CONFIG).is_file() else None
    except (OSError, yaml.YAMLError):
        return None


def _describe_run(out: Path, other_config: bool, held: list[Path]) -> str:
    """'a run (3 epoch(s), test accuracy 91.20 %)' and the like, for a refusal."""
    if other_config:
        return f"a run of another config ({out / CONFIG})"
    try:
        doc = json.loads((out / METRICS).read_text())
        epochs = [r for r in doc["epochs"] if "test_acc" in r]
        acc = doc.get("final_test_acc")
        if epochs and acc is not None:
            return f"a run ({len(epochs)} epoch(s), test accuracy {100 * float(acc):.2f} %)"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return "the files of a run (" + ", ".join(p.name for p in held) + ")"


def _train(config, out: Path, data_dir, epochs, seed, device, resume, progress, datasets, eval_samples) -> dict:
    ckpt_path = out / CHECKPOINT
    rank, world, local_rank = _distributed_env()
    shard = Shard(rank, world)
    dev = resolve_device(device, local_rank)
    created_group = False
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        created_group = True
    try:
        ckpt = None
        history: list[dict] = []
        if resume and ckpt_path.is_file():
            ckpt = read_checkpoint(ckpt_path)
            saved = parse_config(ckpt["config"], f"{ckpt_path}: config")
            if saved.to_dict() != config.to_dict():
                raise TsslcError(f"{config.source} differs from the config of the run in {out} "
                                 f"({out / CONFIG}); resume with that config or train into a new --out")
            seed = int(ckpt.get("seed", seed))
            history = [dict(m) for m in ckpt["metrics"]]
        start = int(ckpt["epoch"]) if ckpt is not None else 0
        pending = bool(history) and "test_acc" not in history[-1]  # trained, never evaluated
        n_epochs = int(epochs if epochs is not None else config.epochs)
        if n_epochs < 1:
            raise TsslcError(f"epochs must be >= 1, got {n_epochs}")
        if eval_samples is not None and eval_samples < 1:
            raise TsslcError(f"eval_samples must be >= 1, got {eval_samples}")
        if start >= n_epochs and not pending:
            return _metrics_doc(config, history, seed, dev, world)
        train_set, test_set = datasets if datasets is not None else _load_data(config, data_dir)
        if eval_samples is not None:
            from tsslc.data import stratified_subset

            test_set = stratified_subset(test_set, eval_samples, seed)

        torch.manual_seed(seed)
        net = Network(config).to(dev)
        opt = make_optimizer(net, config)
        if ckpt is not None:
            net.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            _restore_rng(ckpt, rank, world, seed, start)
        elif world > 1:
            torch.manual_seed(seed * 7919 + rank)  # per-rank dropout masks
        model = net
        if world > 1:
            model = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[dev.index] if dev.type == "cuda" else None)
        if rank == 0 and _saved_config(out) != config.to_dict():  # (a resumed run's holds it already)
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / CONFIG, yaml.safe_dump(config.to_dict(), sort_keys=False))
        show = progress and rank == 0
        run = _Run(out, ckpt_path, net, opt, config, seed, history, dev, world, rank, shard, show)
        if pending:
            if show:
                tqdm.write(f"epoch {start} was trained but not evaluated: evaluating it first")
            run.evaluate(model, test_set, start, n_epochs, time.perf_counter() - history[-1].get("seconds", 0.0))
        for epoch in range(start + 1, n_epochs + 1):
            t0 = time.perf_counter()
            try:
                row = {"epoch": epoch}
                row.update(train_epoch(model, opt, train_set, config, dev, seed, epoch, shard, show,
                                       desc=f"epoch {epoch}/{n_epochs}"))
            except NonFiniteLoss as e:
                kept = (f"the last good checkpoint {ckpt_path} (epoch {epoch - 1}) is kept"
                        if epoch > 1 else "no checkpoint was written")
                raise TsslcError(f"training stopped in epoch {epoch}: {e}; {kept}. "
                                 "Lower 'lr' in the config or check the input data") from None
            except KeyboardInterrupt:
                if rank == 0:
                    kept = (f"{ckpt_path} holds epoch {epoch - 1}; --resume continues from it" if epoch > 1
                            else "no epoch was completed")
                    tqdm.write(f"interrupted while training epoch {epoch}: {kept}", file=sys.stderr)
                raise
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            run.save()  # the trained epoch is safe before the (possibly long) evaluation
            run.evaluate(model, test_set, epoch, n_epochs, t0)
        if world > 1:
            # rank 0 may still be writing the last checkpoint: tearing the group down under
            # it aborts the other ranks' communication threads
            torch.distributed.barrier()
        return _metrics_doc(config, history, seed, dev, world)
    finally:
        if created_group:
            torch.distributed.destroy_process_group()


class _Run:
    """The files of a run and the end of every epoch: checkpoint, evaluation, health check."""

    def __init__(self, out, ckpt_path, net, opt, config, seed, history, dev, world, rank, shard, show):
        self.out, self.ckpt_path, self.net, self.opt, self.config = out, ckpt_path, net, opt, config
        self.seed, self.history, self.dev, self.world, self.rank = seed, history, dev, world, rank
        self.shard, self.show = shard, show
        self.rng_ranks = None

    def save(self, gather: bool = True) -> None:
        if self.world > 1 and gather:  # every rank's RNG state, so that a resume is exact on each
            self.rng_ranks = [None] * self.world
            torch.distributed.all_gather_object(self.rng_ranks, rng_state())
        if self.rank == 0:
            save_checkpoint(self.ckpt_path, self.net, self.opt, self.config, self.history[-1]["epoch"], self.seed,
                            self.history, self.rng_ranks if self.world > 1 else None)

    def evaluate(self, model, test_set, epoch: int, n_epochs: int, t0: float) -> None:
        """Evaluate the epoch just trained (the last history row), check its health, save."""
        row = self.history[-1]
        try:
            ev = evaluate_detailed(model, test_set, self.config, self.dev, self.shard, progress=self.show,
                                   desc=f"test {epoch}/{n_epochs}")
        except KeyboardInterrupt:
            if self.rank == 0:
                tqdm.write(f"interrupted while evaluating epoch {epoch}: its training is kept in {self.ckpt_path}; "
                           "--resume evaluates it and continues", file=sys.stderr)
            raise
        row.update(ev.row())
        row["seconds"] = time.perf_counter() - t0
        row["warnings"] = diagnose(row, self.history[:-1], bare(model).output_name)
        # evaluation draws no random numbers: the RNG states gathered before it still hold
        self.save(gather=self.rng_ranks is None)
        if self.rank == 0:
            _write_metrics(self.out, _metrics_doc(self.config, self.history, self.seed, self.dev, self.world))
            for w in row["warnings"]:
                tqdm.write(f"warning: {w}", file=sys.stderr)
            if self.show:
                tqdm.write(f"epoch {epoch}/{n_epochs}: train loss {row['train_loss']:.4f} "
                           f"acc {row['train_acc']:.4f} | test loss {row['test_loss']:.4f} "
                           f"acc {row['test_acc']:.4f} ({ev.prediction}) | {row['seconds']:.1f} s")


def _restore_rng(ckpt: dict, rank: int, world: int, seed: int, start: int) -> None:
    """This rank's RNG state from the checkpoint. A run resumed with another number of
    processes than it was saved with gets fresh per-rank streams (it cannot be exact)."""
    ranks = ckpt.get("rng_ranks")
    if world == 1 and not ranks:
        set_rng_state(ckpt["rng"])
    elif ranks and len(ranks) == world:
        set_rng_state(ranks[rank])
    else:
        saved = len(ranks) if ranks else 1
        if rank == 0:
            tqdm.write(f"resuming a run saved by {saved} process(es) with {world}: the data order is the "
                       f"same, the dropout masks are not those of an uninterrupted run")
        torch.manual_seed(seed * 7919 + rank + 104729 * start)


def _load_data(config, data_dir):
    from tsslc.data import load_dataset

    return load_dataset(config, data_dir)


__all__ = ["train_run", "resolve_device", "CHECKPOINT", "METRICS", "CONFIG"]
