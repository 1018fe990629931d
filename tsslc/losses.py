"""Losses of TSSL-BP (TSSLBP_SPEC.md §4) and prediction by spike count.

All take the output layer's time-first PSC and spikes, (T, B, n_class), and integer labels
(B,). As in the authors' code the loss is summed over the batch (it matters: gradients are
clipped to norm 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tsslc.functional import input_psc


def desired_train(n_steps: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """[0,1,1,1,1] repeated for T < 10, [0,1,0,1,...] for T ≥ 10 (T a multiple of 5)."""
    pattern = [0, 1, 1, 1, 1] if n_steps < 10 else [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    reps = -(-n_steps // len(pattern))
    return torch.tensor((pattern * reps)[:n_steps], dtype=dtype, device=device)


def kernel_loss(psc, spikes, labels, tau_s: float, **_) -> torch.Tensor:
    """½ Σ_t Σ_i (a_i[t] - ā_i[t])²: ā is the §2-filtered desired train for the label, 0 else."""
    T, B = psc.shape[:2]
    target_psc = input_psc(desired_train(T, psc.dtype, psc.device)[:, None], tau_s)[:, 0]
    target = torch.zeros_like(psc)
    target[:, torch.arange(B, device=psc.device), labels] = target_psc[:, None]
    return 0.5 * ((psc - target) ** 2).sum()


def count_error(spikes, labels, desired_count: int, undesired_count: int) -> torch.Tensor:
    """e_i = (n_i - c_i)/T, zeroed where the neuron already does better than asked; (B, n_class)."""
    T = spikes.shape[0]
    n = spikes.sum(0)
    c = torch.full_like(n, float(undesired_count))
    c[torch.arange(n.shape[0], device=n.device), labels] = float(desired_count)
    e = (n - c) / T
    is_desired = c == float(desired_count)
    if desired_count == undesired_count:  # degenerate config: mark by label only
        is_desired = torch.zeros_like(n, dtype=torch.bool)
        is_desired[torch.arange(n.shape[0], device=n.device), labels] = True
    better = (is_desired & (e > 0)) | (~is_desired & (e < 0))
    return torch.where(better, torch.zeros_like(e), e)


def count_loss(psc, spikes, labels, desired_count: int, undesired_count: int, **_) -> torch.Tensor:
    """½ Σ_t Σ_i e_i², with ∂L/∂a_i[t] = e_i at every step (a straight-through on the PSC)."""
    e = count_error(spikes.detach(), labels, desired_count, undesired_count)
    delta = psc - psc.detach() + e.unsqueeze(0)  # value e, gradient identity
    return 0.5 * (delta ** 2).sum()


def spike_softmax_loss(psc, spikes, labels, **_) -> torch.Tensor:
    """Cross-entropy of a softmax over the output PSC summed in time (a differentiable spike count)."""
    return F.cross_entropy(psc.sum(0), labels, reduction="sum")


LOSSES = {"kernel": kernel_loss, "count": count_loss, "spike_softmax": spike_softmax_loss}


def compute_loss(name: str, psc, spikes, labels, config) -> torch.Tensor:
    return LOSSES[name](psc, spikes, labels, tau_s=config.tau_s, desired_count=config.desired_count,
                        undesired_count=config.undesired_count)


def predict(spikes: torch.Tensor) -> torch.Tensor:
    """Class = the output neuron that fires most often over the window (ties: lowest index)."""
    return spikes.sum(0).argmax(-1)
