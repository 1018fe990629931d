"""Losses of TSSL-BP (TSSLBP_SPEC.md §4) and the prediction rules, for both recipes.

All take the output layer's time-first PSC and spikes, (T, B, n_class), and integer labels
(B,). As in the authors' code the loss is summed over the batch (it matters: gradients are
clipped to norm 1).

The recipe (``Network.recipe``, :mod:`tsslc.config`) decides three things here (§4.1):

- ``paper``: kernel target ā = psc(d) (eq. 7 as written); count loss on the spike count
  Σ_t s; prediction by spike count.
- ``authors``: kernel target ā = psc(psc(d)) (their main loop filters d once, their kernel
  loss filters it again); count loss on the summed output PSC Σ_t a (their ``loss_count``
  sums the layer output, which is the PSC); prediction by the summed output PSC.

The compiled back ends (intsim, Lava) always predict by spike count: a chip emits spikes,
not PSCs. The ``psc`` rule applies to the float model's evaluation (training, ``fit``).
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


def kernel_target(n_steps: int, tau_s: float, recipe: str = "paper", dtype=torch.float32, device=None) -> torch.Tensor:
    """ā[t] for the correct class: the desired train through the §2 filter once (``paper``)
    or twice (``authors``); (T,)."""
    target = desired_train(n_steps, dtype, device)[:, None]
    for _ in range(FILTER_PASSES[recipe]):
        target = input_psc(target, tau_s)
    return target[:, 0]


#: how many times the kernel loss's desired train goes through the PSC filter
FILTER_PASSES = {"paper": 1, "authors": 2}


def kernel_loss(psc, spikes, labels, tau_s: float, recipe: str = "paper", **_) -> torch.Tensor:
    """½ Σ_t Σ_i (a_i[t] - ā_i[t])²: ā is :func:`kernel_target` for the label, 0 else."""
    T, B = psc.shape[:2]
    target_psc = kernel_target(T, tau_s, recipe, psc.dtype, psc.device)
    target = torch.zeros_like(psc)
    target[:, torch.arange(B, device=psc.device), labels] = target_psc[:, None]
    return 0.5 * ((psc - target) ** 2).sum()


def count_error(spikes, labels, desired_count: int, undesired_count: int) -> torch.Tensor:
    """e_i = (n_i - c_i)/T, zeroed where the neuron already does better than asked; (B, n_class).

    ``spikes`` is what is counted, (T, B, n_class): the spikes (``paper``) or the output PSC
    (``authors``)."""
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


def count_loss(psc, spikes, labels, desired_count: int, undesired_count: int, recipe: str = "paper",
               **_) -> torch.Tensor:
    """½ Σ_t Σ_i e_i², with ∂L/∂a_i[t] = e_i at every step (a straight-through on the PSC).
    n_i counts spikes (``paper``) or sums the output PSC (``authors``)."""
    counted = psc if recipe == "authors" else spikes
    e = count_error(counted.detach(), labels, desired_count, undesired_count)
    delta = psc - psc.detach() + e.unsqueeze(0)  # value e, gradient identity
    return 0.5 * (delta ** 2).sum()


def spike_softmax_loss(psc, spikes, labels, **_) -> torch.Tensor:
    """Cross-entropy of a softmax over the output PSC summed in time (a differentiable spike count)."""
    return F.cross_entropy(psc.sum(0), labels, reduction="sum")


LOSSES = {"kernel": kernel_loss, "count": count_loss, "spike_softmax": spike_softmax_loss}


def compute_loss(name: str, psc, spikes, labels, config) -> torch.Tensor:
    return LOSSES[name](psc, spikes, labels, tau_s=config.tau_s, desired_count=config.desired_count,
                        undesired_count=config.undesired_count, recipe=getattr(config, "recipe", "paper"))


def predict(spikes: torch.Tensor, psc: torch.Tensor | None = None, rule: str = "spike_count") -> torch.Tensor:
    """The predicted class per sample, (B,), ties to the lowest index.

    ``spike_count``: the output neuron that fires most often over the window (what the
    compiled back ends do). ``psc``: the largest output PSC summed over time (the authors'
    evaluation, §4.1; needs ``psc``)."""
    if rule == "spike_count":
        return spikes.sum(0).argmax(-1)
    if rule == "psc":
        if psc is None:
            raise ValueError("prediction rule 'psc' needs the output PSC")
        return psc.sum(0).argmax(-1)
    raise ValueError(f"unknown prediction rule {rule!r} (expected spike_count or psc)")
