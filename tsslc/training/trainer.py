"""The training engine (TSSLBP_SPEC.md §6): AdamW, gradient-norm clipping to 1, weights
clamped to ±4 after every step; prediction by the config's rule (spike count, or the summed
output PSC under ``recipe: authors``; :func:`tsslc.losses.predict`).

The same epoch loop serves :func:`fit` (in memory) and :func:`tsslc.training.run.train_run`
(files, checkpoints, DistributedDataParallel). Shuffling is derived from ``(seed, epoch)``
alone, so a run resumed from a checkpoint sees exactly the batches it would have seen.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from tqdm.auto import tqdm

from tsslc.config import NetworkConfig
from tsslc.errors import TsslcError
from tsslc.losses import compute_loss, predict
from tsslc.network import Network
from tsslc.training.health import TrainingHealthWarning, diagnose

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
        return self.all_reduce(values, device, "sum")

    def all_reduce(self, values: list[float], device, op: str = "sum") -> list[float]:
        """``values`` summed (``op="sum"``), or their ``min`` / ``max``, over the ranks."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        ops = {"sum": torch.distributed.ReduceOp.SUM, "min": torch.distributed.ReduceOp.MIN,
               "max": torch.distributed.ReduceOp.MAX}
        torch.distributed.all_reduce(t, op=ops[op])
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
    return value, int((predict(spikes, psc, config.prediction_rule) == y).sum())


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of one epoch, a function of (seed, epoch) only."""
    gen = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) % (2**63))
    return torch.randperm(n, generator=gen)


def iter_batches(dataset: Dataset, indices: torch.Tensor, batch_size: int) -> Iterator[tuple]:
    """Batches ``(x, y)`` of ``dataset`` in the order ``indices``, x in tsslc's time-first
    layout: static items stack to ``(B, *shape)``, the ``(T, *shape)`` items of a data set
    marked ``time_varying`` (N-MNIST; :func:`tsslc.data.time_varying`) to ``(T, B, *shape)``.
    TensorDatasets (and Subsets of them) are sliced directly."""
    from tsslc.data import stack, time_varying

    events = time_varying(dataset)
    if isinstance(dataset, Subset) and isinstance(dataset.dataset, TensorDataset):
        indices = torch.as_tensor(dataset.indices, dtype=torch.int64)[indices]
        dataset = dataset.dataset
    if isinstance(dataset, TensorDataset):
        for i in range(0, len(indices), batch_size):
            idx = indices[i:i + batch_size]
            x, *rest = (t[idx] for t in dataset.tensors)
            yield (x.transpose(0, 1) if events else x, *rest)
    else:
        yield from DataLoader(dataset, batch_size=batch_size, sampler=indices.tolist(), num_workers=0,
                              collate_fn=lambda items: (stack([i[0] for i in items], events),
                                                        torch.as_tensor([int(i[1]) for i in items])))


def train_epoch(net, opt, dataset, config, device, seed: int, epoch: int, shard: Shard | None = None,
                progress: bool = False, desc: str = "train") -> dict:
    """One epoch over this shard's part of ``dataset``; returns global train loss / accuracy
    and ``train_loss_range``: the lowest and highest loss per sample of any step (equal when
    the loss did not move, e.g. a silent network: :mod:`tsslc.training.health`).

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
    lo, hi = math.inf, -math.inf
    bar = tqdm(total=n_batches, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    try:
        for x, y in iter_batches(dataset, order, batch):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss, c = train_step(net, opt, x, y, config, float(shard.world), shard)
            loss_sum, correct, seen = loss_sum + loss, correct + c, seen + len(y)
            lo, hi = min(lo, loss / len(y)), max(hi, loss / len(y))
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
    finally:
        bar.close()
    loss_sum, correct, seen = shard.all_sum([loss_sum, float(correct), float(seen)], device)
    (lo,), (hi,) = shard.all_reduce([lo], device, "min"), shard.all_reduce([hi], device, "max")
    return {"train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
            "train_loss_range": [lo, hi] if seen else None}


@dataclass
class Evaluation:
    """One pass of the float model over a test set (:func:`evaluate_detailed`)."""

    loss: float                      # mean loss per sample
    accuracy: float                  # by the rule asked for (default: the config's)
    accuracy_by_rule: dict[str, float]  # {"spike_count": .., "psc": ..}: both rules, same pass
    firing_rates: dict[str, float]   # spiking layer -> spikes per neuron per step
    samples: int
    prediction: str                  # the rule of ``accuracy``

    def row(self, prefix: str = "test") -> dict:
        """The metrics-row fields: test_loss, test_acc, test_acc_spike_count, test_acc_psc,
        firing_rates, eval_samples."""
        return {f"{prefix}_loss": self.loss, f"{prefix}_acc": self.accuracy,
                **{f"{prefix}_acc_{k}": v for k, v in self.accuracy_by_rule.items()},
                "firing_rates": dict(self.firing_rates), "eval_samples": self.samples}


@torch.no_grad()
def evaluate_detailed(net, loader, config, device, shard: Shard | None = None, prediction: str | None = None,
                      progress: bool = False, desc: str = "test") -> Evaluation:
    """Loss, accuracy by both prediction rules and every spiking layer's firing rate over
    ``loader`` (an iterable of (x, y) batches, or a Dataset, split between ranks when
    distributed), with a progress bar when ``progress``. ``prediction``: ``spike_count`` or
    ``psc`` for :attr:`Evaluation.accuracy` (default: the config's rule)."""
    shard = shard or Shard()
    rule = prediction or config.prediction_rule
    if rule not in ("spike_count", "psc"):
        raise TsslcError(f"unknown prediction rule {rule!r} (expected spike_count or psc)")
    net.eval()
    total_batches = None
    if isinstance(loader, Dataset):
        idx = torch.arange(len(loader))[shard.rank::shard.world]
        total_batches = -(-len(idx) // EVAL_BATCH)
        loader = iter_batches(loader, idx, EVAL_BATCH)
    names = [l.name for l in bare(net).spiking_layers]
    fired = {n: 0.0 for n in names}
    slots = {n: 0.0 for n in names}
    total, loss_sum = 0, 0.0
    correct = {"spike_count": 0, "psc": 0}
    bar = tqdm(total=total_batches, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    try:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            psc, spikes, layers = net(x, record=True)
            loss_sum += float(compute_loss(config.loss, psc, spikes, y, config))
            for r in correct:
                correct[r] += int((predict(spikes, psc, r) == y).sum())
            for n in names:
                fired[n] += float(layers[n].sum())
                slots[n] += float(layers[n].numel())
            total += len(y)
            bar.update(1)
            bar.set_postfix(acc=f"{correct[rule] / total:.4f}", refresh=False)
    finally:
        bar.close()
    sums = shard.all_sum([loss_sum, float(total), *correct.values(), *fired.values(), *slots.values()], device)
    loss_sum, total = sums[0], sums[1]
    by_rule = {r: c / max(total, 1) for r, c in zip(correct, sums[2:4])}
    k = len(names)
    rates = {n: f / max(m, 1.0) for n, f, m in zip(names, sums[4:4 + k], sums[4 + k:4 + 2 * k])}
    return Evaluation(loss_sum / max(total, 1), by_rule[rule], by_rule, rates, int(total), rule)


def evaluate(net, loader, config, device, shard: Shard | None = None, prediction: str | None = None,
             progress: bool = False) -> tuple[float, float]:
    """(mean loss per sample, accuracy by ``prediction`` (default: the config's rule)) over
    ``loader``; :func:`evaluate_detailed` has the rest."""
    ev = evaluate_detailed(net, loader, config, device, shard, prediction, progress)
    return ev.loss, ev.accuracy


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
        row.update(evaluate_detailed(net, test_set, config, device, progress=progress).row())
        row["warnings"] = diagnose(row, result.history, net.output_name)
        for w in row["warnings"]:
            warnings.warn(w, TrainingHealthWarning, stacklevel=2)
        result.history.append(row)
    net.eval()
    return result
