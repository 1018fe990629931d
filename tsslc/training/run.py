"""A training run on disk: ``RUN/config.yaml``, ``RUN/metrics.json``, ``RUN/checkpoint.pt``.

:func:`train_run` is what ``tsslc train`` does. A checkpoint (weights, optimiser, RNG state,
config, metrics) is written atomically after every epoch; ``resume=True`` continues from it
and, on CPU with the same seed, ends with bitwise the same weights as an uninterrupted run.
Started under ``torchrun --nproc_per_node=K`` (``WORLD_SIZE`` > 1 in the environment) it
trains with DistributedDataParallel — gloo on CPU, nccl on GPU — each rank taking 1/K of
every batch; rank 0 writes the files.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from tsslc.config import NetworkConfig, load_config, parse_config
from tsslc.errors import TsslcError
from tsslc.network import Network
from tsslc.atomic import atomic_write_text
from tsslc.training.checkpoint import read_checkpoint, rng_state, save_checkpoint, set_rng_state
from tsslc.training.trainer import NonFiniteLoss, Shard, evaluate, make_optimizer, train_epoch

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
    final = history[-1]["test_acc"] if history else None
    return {
        "rule": config.rule, "dataset": config.dataset, "seed": seed, "device": str(device), "world_size": world,
        "epochs": history, "final_test_acc": final, "test_acc": final,
        "best_test_acc": max((h["test_acc"] for h in history), default=None),
        "train_seconds": sum(h["seconds"] for h in history),
    }


def _write_metrics(out: Path, doc: dict) -> None:
    atomic_write_text(out / METRICS, json.dumps(doc, indent=2) + "\n")


def train_run(config_path_or_config, out_dir, data_dir=None, epochs: int | None = None, seed: int = 0,
              device: str = "auto", resume: bool = False, progress: bool = True, datasets=None) -> dict:
    """Train (or with ``resume`` continue) a run in ``out_dir``; returns the final metrics.

    ``datasets`` = ``(train_set, test_set)`` overrides :func:`tsslc.data.load_dataset`. With
    ``resume`` the checkpoint's seed is used, and the config must be the run's own."""
    config = (config_path_or_config if isinstance(config_path_or_config, NetworkConfig)
              else load_config(config_path_or_config))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TsslcError(f"--out {out} exists and is not a folder")
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
        n_epochs = int(epochs if epochs is not None else config.epochs)
        if n_epochs < 1:
            raise TsslcError(f"epochs must be >= 1, got {n_epochs}")
        if start >= n_epochs:
            return _metrics_doc(config, history, seed, dev, world)
        train_set, test_set = datasets if datasets is not None else _load_data(config, data_dir)

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
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / CONFIG, yaml.safe_dump(config.to_dict(), sort_keys=False))
        show = progress and rank == 0
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
            row["test_loss"], row["test_acc"] = evaluate(model, test_set, config, dev, shard)
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            rng_ranks = None
            if world > 1:  # every rank's RNG state, so that a resume is exact on each
                rng_ranks = [None] * world
                torch.distributed.all_gather_object(rng_ranks, rng_state())
            if rank == 0:
                save_checkpoint(ckpt_path, net, opt, config, epoch, seed, history, rng_ranks)
                _write_metrics(out, _metrics_doc(config, history, seed, dev, world))
                if show:
                    tqdm.write(f"epoch {epoch}/{n_epochs}: train loss {row['train_loss']:.4f} "
                               f"acc {row['train_acc']:.4f} | test loss {row['test_loss']:.4f} "
                               f"acc {row['test_acc']:.4f} | {row['seconds']:.1f} s")
        if world > 1:
            # rank 0 may still be writing the last checkpoint: tearing the group down under
            # it aborts the other ranks' communication threads
            torch.distributed.barrier()
        return _metrics_doc(config, history, seed, dev, world)
    finally:
        if created_group:
            torch.distributed.destroy_process_group()


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
