"""The training engine (TSSLBP_SPEC.md §6): AdamW, gradient-norm clipping to 1, weights
clamped to ±4 after every step, prediction by spike count."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader

from tsslc.config import NetworkConfig
from tsslc.losses import compute_loss, predict
from tsslc.network import Network


@dataclass
class FitResult:
    network: Network
    history: list[dict] = field(default_factory=list)

    @property
    def test_accuracy(self) -> float:
        return self.history[-1]["test_acc"]


def make_optimizer(net: Network, config: NetworkConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(net.parameters(), lr=config.lr, betas=(0.9, 0.999))


def train_step(net, opt, x, y, config) -> tuple[float, int]:
    """One step; returns (loss, number correct)."""
    psc, spikes = net(x)
    loss = compute_loss(config.loss, psc, spikes, y, config)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    net.clamp_weights(4.0)
    return float(loss.detach()), int((predict(spikes) == y).sum())


@torch.no_grad()
def evaluate(net, loader, config, device) -> tuple[float, float]:
    """(mean loss per sample, accuracy)."""
    net.eval()
    total, correct, loss_sum = 0, 0, 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        psc, spikes = net(x)
        loss_sum += float(compute_loss(config.loss, psc, spikes, y, config))
        correct += int((predict(spikes) == y).sum())
        total += len(y)
    return loss_sum / max(total, 1), correct / max(total, 1)


def fit(config: NetworkConfig, train_set, test_set, epochs: int | None = None, seed: int = 0,
        device: str = "cpu") -> FitResult:
    """Train a fresh network in memory (no files); deterministic for a seed on CPU."""
    torch.manual_seed(seed)
    net = Network(config).to(device)
    opt = make_optimizer(net, config)
    gen = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, generator=gen)
    test_loader = DataLoader(test_set, batch_size=256)
    result = FitResult(net)
    for epoch in range(epochs if epochs is not None else config.epochs):
        net.train()
        seen, correct, loss_sum = 0, 0, 0.0
        for x, y in train_loader:
            loss, c = train_step(net, opt, x.to(device), y.to(device), config)
            loss_sum, correct, seen = loss_sum + loss, correct + c, seen + len(y)
        test_loss, test_acc = evaluate(net, test_loader, config, device)
        result.history.append({"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                               "test_loss": test_loss, "test_acc": test_acc})
    net.eval()
    return result
