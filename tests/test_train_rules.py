"""TSSL-BP on the embedded digits set, and the BPTT baseline trained side by side."""

from __future__ import annotations

import copy

import torch

from conftest import EXAMPLES
from tsslc.config import load_config
from tsslc.data.digits import load_digits_datasets
from tsslc.losses import compute_loss
from tsslc.network import Network
from tsslc.training.trainer import fit


def last5(history):
    return sum(h["test_acc"] for h in history[-5:]) / 5


def test_digits_reaches_95_percent_at_T5(digits_fit):
    cfg = load_config(EXAMPLES / "digits.yaml")
    assert cfg.n_steps == 5 and cfg.rule == "tsslbp"
    assert len(digits_fit.history) == cfg.epochs
    assert digits_fit.test_accuracy >= 0.95, digits_fit.history[-1]
    assert last5(digits_fit.history) >= 0.95


def test_bptt_baseline_side_by_side(digits_fit):
    """Same config, seed and epochs with ``rule: bptt``. On this one-hidden-layer MLP the BPTT
    baseline is slightly *ahead*: benchmarks/rules.py over seeds 0-15 measured final
    accuracy TSSL-BP 96.42 ± 0.70 % vs BPTT 97.08 ± 0.57 % (paired difference -0.66 ± 0.20
    points), last five epochs 96.46 vs 97.01 % (-0.55 ± 0.13). The test therefore checks that
    both rules train and that TSSL-BP stays within 2 points of BPTT (mean of the last five
    epochs), not that it wins."""
    cfg = copy.deepcopy(load_config(EXAMPLES / "digits.yaml"))
    cfg.rule = "bptt"
    train, test = load_digits_datasets()
    bptt = fit(cfg, train, test, seed=0)
    assert bptt.network.spiking_layers[0].rule == "bptt"
    assert bptt.test_accuracy >= 0.9
    assert last5(digits_fit.history) >= last5(bptt.history) - 0.02, (digits_fit.history[-1], bptt.history[-1])


def test_rules_share_the_forward_but_not_the_gradient():
    cfg = load_config(EXAMPLES / "digits.yaml")
    x, y = load_digits_datasets()[0].tensors
    x, y = x[:64], y[:64]
    grads, outs = {}, {}
    for rule in ("tsslbp", "bptt"):
        c = copy.deepcopy(cfg)
        c.rule = rule
        torch.manual_seed(0)
        net = Network(c)
        psc, spikes = net(x)
        compute_loss(c.loss, psc, spikes, y, c).backward()
        grads[rule] = [p.grad.clone() for p in net.parameters()]
        outs[rule] = (psc.detach(), spikes)
    assert torch.equal(outs["tsslbp"][0], outs["bptt"][0]) and torch.equal(outs["tsslbp"][1], outs["bptt"][1])
    # the output layer sees the same loss gradient, the hidden layer's error differs
    assert not torch.allclose(grads["tsslbp"][0], grads["bptt"][0])


def test_tsslbp_keeps_up_with_bptt_on_the_deeper_digits_mlp():
    """64-100-100-100-10 at T=5, same seed and epochs. Over seeds 0-15
    (benchmarks/rules.py) the two rules tie: final accuracy TSSL-BP 96.37 ± 0.48 % vs
    BPTT 95.94 ± 1.15 % (+0.43 ± 0.34 points; TSSL-BP ahead or equal on 9 of 16 seeds, and
    steadier), last five epochs 96.06 vs 96.19 % (-0.13 ± 0.14). Seed 0 (96.7 vs 96.0 % over
    the last five epochs) is checked exactly: CPU training is deterministic."""
    cfg = load_config(EXAMPLES / "digits_deep.yaml")
    train, test = load_digits_datasets()
    tssl = fit(cfg, train, test, seed=0)
    b = copy.deepcopy(cfg)
    b.rule = "bptt"
    bptt = fit(b, train, test, seed=0)
    print(f"\ndeep digits MLP, last five epochs: TSSL-BP {last5(tssl.history):.4f}, BPTT {last5(bptt.history):.4f}")
    assert last5(tssl.history) >= 0.95
    assert last5(tssl.history) >= last5(bptt.history)
