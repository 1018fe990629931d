"""The training engine (TSSLBP_SPEC.md §6): AdamW, gradient-norm clipping to 1, weights
clamped to ±4 after every step, prediction by spike count.

The same epoch loop serves :func:`fit` (in memory) and :func:`tsslc.training.run.train_run`
(files, checkpoints, DistributedDataParallel). Shuffling is derived from ``(seed, epoch)``
alone, so a run resumed from a checkpoint sees exactly the batches it would have seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from tsslc.config import NetworkConfig
from tsslc.errors import TsslcError
from tsslc.losses import compute_loss, predict
from tsslc.network import Network

#: §6: gradient-norm clip and weight clamp.
GRAD_CLIP = 1.0
WEIGHT_LIMIT = 4.0
EVAL_BATCH = 256


class NonFiniteLoss(TsslcError):
    """A NaN/inf loss or gradient; raised before the optimiser touches the weights."""


@dataclass
class FitResult:
    network: Network
    history: list[dict] = field(default_factory=list)

    @property
    def test_accuracy(self) -> float:
        return self.history[-1]["test_acc"]


@dataclass
class Shard:
    """This process's part of a data-parallel job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1

    def all_sum(self, values: list[float], device) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return t.tolist()


def bare(net) -> Network:
    """The Network inside a DistributedDataParallel wrapper (or the network itself)."""
    return getattr(net, "module", net)


def make_optimizer(net: Network, config: NetworkConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(net.parameters(), lr=config.lr, betas=(0.9, 0.999))


def train_step(net, opt, x, y, config, loss_scale: float = 1.0, shard: Shard | None = None) -> tuple[float, int]:
    """One step; returns (loss, number correct). Raises :class:`NonFiniteLoss` (weights
    untouched) when the loss or the gradient norm is NaN/inf. ``loss_scale`` multiplies the
    summed loss (data-parallel: the world size, so DDP's gradient mean is the batch sum)."""
    psc, spikes = net(x)
    loss = compute_loss(config.loss, psc, spikes, y, config)
    opt.zero_grad(set_to_none=True)
    (loss * loss_scale if loss_scale != 1.0 else loss).backward()
    norm = torch.nn.utils.clip_grad_norm_(net.parameters(), GRAD_CLIP)
    value = float(loss.detach())
    bad = not (math.isfinite(value) and math.isfinite(float(norm)))
    if shard is not None and shard.world > 1:
        bad = shard.all_sum([float(bad)], x.device)[0] > 0
    if bad:
        opt.zero_grad(set_to_none=True)
        raise NonFiniteLoss(f"non-finite loss {value} (gradient norm {float(norm)})")
    opt.step()
    bare(net).clamp_weights(WEIGHT_LIMIT)
    return value, int((predict(spikes) == y).sum())


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of one epoch, a function of (seed, epoch) only."""
    gen = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) % (2**63))
    return torch.randperm(n, generator=gen)


def iter_batches(dataset: Dataset, indices: torch.Tensor, batch_size: int) -> Iterator[tuple]:
    """Batches of ``dataset`` in the order ``indices``; TensorDatasets are sliced directly."""
    if isinstance(dataset, TensorDataset):
        for i in range(0, len(indices), batch_size):
            idx = indices[i:i + batch_size]
            yield tuple(t[idx] for t in dataset.tensors)
    else:
        yield from DataLoader(dataset, batch_size=batch_size, sampler=indices.tolist(), num_workers=0)


def train_epoch(net, opt, dataset, config, device, seed: int, epoch: int, shard: Shard | None = None,
                progress: bool = False, desc: str = "train") -> dict:
    """One epoch over this shard's part of ``dataset``; returns global train loss / accuracy.

    Every rank takes the same number of samples (the tail that does not divide is dropped)
    and a per-rank batch of ``batch_size / world`` so that a step covers ``batch_size``."""
    shard = shard or Shard()
    net.train()
    order = epoch_order(len(dataset), seed, epoch)
    if shard.world > 1:
        per_rank = len(order) // shard.world
        order = order[shard.rank::shard.world][:per_rank]
    batch = max(1, -(-config.batch_size // shard.world))
    n_batches = -(-len(order) // batch)
    seen, correct, loss_sum = 0, 0, 0.0
    bar = tqdm(total=n_batches, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    try:
        for x, y in iter_batches(dataset, order, batch):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss, c = train_step(net, opt, x, y, config, float(shard.world), shard)
            loss_sum, correct, seen = loss_sum + loss, correct + c, seen + len(y)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
    finally:
        bar.close()
    loss_sum, correct, seen = shard.all_sum([loss_sum, float(correct), float(seen)], device)
    return {"train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1)}


@torch.no_grad()
def evaluate(net, loader, config, device, shard: Shard | None = None) -> tuple[float, float]:
    """(mean loss per sample, accuracy) over ``loader`` (an iterable of (x, y) batches, or a
    Dataset, split between ranks when distributed)."""
    shard = shard or Shard()
    net.eval()
    if isinstance(loader, Dataset):
        idx = torch.arange(len(loader))[shard.rank::shard.world]
        loader = iter_batches(loader, idx, EVAL_BATCH)
    total, correct, loss_sum = 0, 0, 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        psc, spikes = net(x)
        loss_sum += float(compute_loss(config.loss, psc, spikes, y, config))
        correct += int((predict(spikes) == y).sum())
        total += len(y)
    loss_sum, correct, total = shard.all_sum([loss_sum, float(correct), float(total)], device)
    return loss_sum / max(total, 1), correct / max(total, 1)


def fit(config: NetworkConfig, train_set, test_set, epochs: int | None = None, seed: int = 0,
        device: str = "cpu", progress: bool = False) -> FitResult:
    """Train a fresh network in memory (no files); deterministic for a seed on CPU."""
    torch.manual_seed(seed)
    net = Network(config).to(device)
    opt = make_optimizer(net, config)
    result = FitResult(net)
    n_epochs = epochs if epochs is not None else config.epochs
    for epoch in range(1, n_epochs + 1):
        row = {"epoch": epoch}
        row.update(train_epoch(net, opt, train_set, config, device, seed, epoch, progress=progress,
                               desc=f"epoch {epoch}/{n_epochs}"))
        test_loss, test_acc = evaluate(net, test_set, config, device)
        row.update(test_loss=test_loss, test_acc=test_acc)
        result.history.append(row)
    net.eval()
    return result
