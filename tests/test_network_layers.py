"""Layers of §3 and the input encoding of §2, on real tensors."""

from __future__ import annotations

import pytest
import torch

from tsslc.config import parse_config
from tsslc.errors import TsslcError
from tsslc.functional import input_psc, lif_forward
from tsslc.layers import TimeDropout, sum_pool
from tsslc.network import Network


def small_cnn(**net):
    raw = {"Network": {"n_steps": 5, "tau_m": 5, "tau_s": 3, "loss": "kernel", "n_class": 3,
                       "input_shape": [2, 8, 8], **net},
           "Layers": {"conv": {"type": "conv", "in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": 1},
                      "pool": {"type": "pooling", "kernel_size": 2, "theta": 1.1},
                      "drop": {"type": "dropout", "p": 0.5},
                      "out": {"type": "linear", "n_inputs": 64, "n_outputs": 3, "weight_scale": 2}}}
    return parse_config(raw, "small")


def test_dropout_mask_is_the_same_at_every_step():
    torch.manual_seed(0)
    d = TimeDropout("d", 0.5).train()
    y = d(torch.ones(5, 3, 200))
    assert torch.equal(y, y[:1].expand_as(y))
    kept = (y[0] > 0).float().mean()
    assert 0.35 < kept < 0.65 and torch.allclose(y[y > 0], torch.tensor(2.0))
    d.eval()
    x = torch.rand(5, 3, 200)
    assert torch.equal(d(x), x)


def test_sum_pool_is_theta_times_window_sum():
    x = torch.arange(2 * 1 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 1, 4, 4)
    y = sum_pool(x, 2, 1.1)
    assert y.shape == (2, 1, 1, 2, 2)
    assert abs(float(y[0, 0, 0, 0, 0]) - 1.1 * (0 + 1 + 4 + 5)) < 1e-5
    assert abs(float(y[1, 0, 0, 1, 1]) - 1.1 * (26 + 27 + 30 + 31)) < 1e-4


def test_forward_is_the_layers_composed_by_hand():
    torch.manual_seed(1)
    net = Network(small_cnn()).eval()
    x = torch.rand(6, 2, 8, 8) * 3
    with torch.no_grad():
        psc, spikes, rec = net(x, record=True)
        # §2: a static image is p at every step through the input filter
        a_in = input_psc(x.unsqueeze(0).expand(5, *x.shape).contiguous(), 3.0)
        conv = net.layers["conv"]
        cur = torch.nn.functional.conv2d(a_in.reshape(30, 2, 8, 8), conv.weight, None, 1, 1).reshape(5, 6, 4, 8, 8)
        a1, s1, _, _ = lif_forward(cur, 5, 3, 1.0)
        p = 1.1 * torch.nn.functional.avg_pool2d(a1.reshape(30, 4, 8, 8), 2, divisor_override=1).reshape(5, 6, -1)
        a2, s2, _, _ = lif_forward(p @ net.layers["out"].weight.T, 5, 3, 1.0)
    assert torch.equal(rec["conv"], s1) and torch.equal(spikes, s2)
    assert torch.allclose(psc, a2, atol=1e-6)
    assert set(rec) == {"conv", "out"} and net.output_name == "out"


def test_event_input_uses_one_frame_per_step():
    raw = {"Network": {"n_steps": 4, "tau_m": 8, "tau_s": 4, "loss": "count", "n_class": 2, "dataset": "NMNIST"},
           "Layers": {"out": {"type": "linear", "n_inputs": 2312, "n_outputs": 2}}}
    net = Network(parse_config(raw, "ev"))
    frames = (torch.rand(4, 3, 2, 34, 34) > 0.9).float()  # time first: (T, B, C, H, W)
    a_in = net.encode(frames)
    assert a_in.shape == (4, 3, 2, 34, 34)
    b = torch.zeros(3, 2, 34, 34)  # §2 by hand: b[t] = b[t-1] - b[t-1]/τs + e[t], a_in = b/τs
    for t in range(4):
        b = b - b / 4.0 + frames[t]
        assert torch.allclose(a_in[t], b / 4.0, atol=1e-6)
    with pytest.raises(TsslcError, match=r"time first.*n_steps=4"):
        net.encode(frames.transpose(0, 1))  # batch first (B=3, T=4) is refused, with the layout named


def test_weight_init_scale_and_clamp():
    torch.manual_seed(0)
    net = Network(small_cnn())
    w = net.layers["out"].weight.detach()
    assert abs(float(w.std()) - 2 * (2 / 64) ** 0.5) < 0.05  # Kaiming-normal × weight_scale 2
    with torch.no_grad():
        w.mul_(100)
    net.clamp_weights(4.0)
    assert float(w.abs().max()) == 4.0
