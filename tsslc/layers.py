"""Spiking layers. All tensors are time-first: ``(T, B, *features)``.

The current kernels (:func:`dense_current`, :func:`conv_current`, :func:`sum_pool`) are
plain functions shared with the IR's reference interpreter, so that the interpreter and
the trained model compute bit-identical currents.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tsslc.functional import lif


def dense_current(a_in: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x[t] = W·a_in[t];  a_in (T, B, N_in), weight (N_out, N_in)."""
    return F.linear(a_in, weight)


def conv_current(a_in: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, groups: int = 1) -> torch.Tensor:
    """x[t] = conv2d(a_in[t], W) (torch cross-correlation, no bias); a_in (T, B, C, H, W)."""
    T, B = a_in.shape[:2]
    y = F.conv2d(a_in.reshape(T * B, *a_in.shape[2:]), weight, None, stride, padding, 1, groups)
    return y.reshape(T, B, *y.shape[1:])


def sum_pool(a_in: torch.Tensor, kernel: int, theta: float) -> torch.Tensor:
    """θp · Σ over non-overlapping k×k windows (stride k); a_in (T, B, C, H, W)."""
    T, B = a_in.shape[:2]
    y = F.avg_pool2d(a_in.reshape(T * B, *a_in.shape[2:]), kernel, kernel, 0, divisor_override=1)
    return (y * theta).reshape(T, B, *y.shape[1:])


def conv_out_hw(h: int, w: int, kernel: int, stride: int, padding: int) -> tuple[int, int]:
    return (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1


class SpikingLayer(nn.Module):
    """A synapse (dense or conv) followed by a LIF population; output is the PSC."""

    def __init__(self, name: str, threshold: float, tau_m: float, tau_s: float, rule: str = "tsslbp"):
        super().__init__()
        self.name = name
        self.threshold = float(threshold)
        self.tau_m = float(tau_m)
        self.tau_s = float(tau_s)
        self.rule = rule

    def current(self, a_in: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, a_in: torch.Tensor):
        """Returns ``(psc, spikes)``."""
        return lif(self.current(a_in), self.tau_m, self.tau_s, self.threshold, self.rule, return_spikes=True)


def block_sparse_mask(n_outputs: int, n_inputs: int, fan_in: int) -> torch.Tensor:
    """0/1 mask (n_outputs, n_inputs): the inputs split into B = ceil(n_inputs / fan_in)
    contiguous blocks of near-equal size, output j sees block floor(j·B / n_outputs) only,
    so every output has <= fan_in inputs and outputs of one block share their inputs."""
    blocks = -(-n_inputs // fan_in)
    in_block = torch.arange(n_inputs) * blocks // n_inputs
    out_block = torch.arange(n_outputs) * blocks // n_outputs
    return (out_block[:, None] == in_block[None, :]).to(torch.float32)


class SpikingLinear(SpikingLayer):
    def __init__(self, name, n_inputs, n_outputs, threshold, tau_m, tau_s, weight_scale=1.0, rule="tsslbp",
                 fan_in=None):
        super().__init__(name, threshold, tau_m, tau_s, rule)
        w = torch.empty(n_outputs, n_inputs)
        nn.init.kaiming_normal_(w)
        self.fan_in = None if fan_in is None or fan_in >= n_inputs else int(fan_in)
        if self.fan_in is not None:  # fixed block-sparse mask on the weight and its gradient
            mask = block_sparse_mask(n_outputs, n_inputs, self.fan_in)
            self.register_buffer("mask", mask)
            w = w * mask * (n_inputs / self.fan_in) ** 0.5  # keep kaiming's output variance
        self.weight = nn.Parameter(w * weight_scale)

    def current(self, a_in):
        if self.fan_in is not None:  # the mask zeroes the gradient outside it; the weight stays 0 there
            return dense_current(a_in, self.weight * self.mask)
        return dense_current(a_in, self.weight)


class SpikingConv2d(SpikingLayer):
    def __init__(self, name, in_channels, out_channels, kernel_size, threshold, tau_m, tau_s,
                 stride=1, padding=0, weight_scale=1.0, groups=1, rule="tsslbp"):
        super().__init__(name, threshold, tau_m, tau_s, rule)
        w = torch.empty(out_channels, in_channels // groups, kernel_size, kernel_size)
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # PyTorch's default conv init
        self.weight = nn.Parameter(w * weight_scale)
        self.stride, self.padding, self.groups = int(stride), int(padding), int(groups)

    def current(self, a_in):
        return conv_current(a_in, self.weight, self.stride, self.padding, self.groups)


class SumPool2d(nn.Module):
    def __init__(self, name: str, kernel_size: int, theta: float = 1.1):
        super().__init__()
        self.name, self.kernel_size, self.theta = name, int(kernel_size), float(theta)

    def forward(self, a_in):
        return sum_pool(a_in, self.kernel_size, self.theta)


class TimeDropout(nn.Module):
    """Dropout whose mask is drawn once per sample and feature, the same at every step."""

    def __init__(self, name: str, p: float):
        super().__init__()
        self.name, self.p = name, float(p)

    def forward(self, a_in):
        if not self.training or self.p == 0:
            return a_in
        keep = torch.empty(a_in.shape[1:], device=a_in.device, dtype=a_in.dtype).bernoulli_(1 - self.p)
        return a_in * (keep / (1 - self.p))


class Flatten(nn.Module):
    def __init__(self, name: str = "flatten"):
        super().__init__()
        self.name = name

    def forward(self, a_in):
        return a_in.reshape(a_in.shape[0], a_in.shape[1], -1)
