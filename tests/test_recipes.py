"""The two recipes (TSSLBP_SPEC.md §4 and its §4.1 erratum) against numbers written by hand.

§4.1: at T = 5, τs = 3, the desired train d = [0,1,1,1,1] filtered once is
[0, .333, .556, .704, .802] (``paper``) and twice [0, .111, .259, .407, .539] (``authors``);
the authors predict by the argmax of the output PSC summed over time, the paper by spike
count. The exact fractions below are those decimals (b[t] = b[t-1]·2/3 + p[t], a = b/3).
"""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from tsslc.config import parse_config
from tsslc.losses import count_loss, kernel_loss, kernel_target, predict
from tsslc.network import Network
from tsslc.training.trainer import evaluate, evaluate_detailed

ONCE = [F(0), F(1, 3), F(5, 9), F(19, 27), F(65, 81)]           # 0, .333, .556, .704, .802
TWICE = [F(0), F(1, 9), F(7, 27), F(11, 27), F(131, 243)]       # 0, .111, .259, .407, .539


def test_the_fractions_are_the_spec_decimals():
    assert [round(float(v), 3) for v in ONCE] == [0, .333, .556, .704, .802]
    assert [round(float(v), 3) for v in TWICE] == [0, .111, .259, .407, .539]


@pytest.mark.parametrize("recipe,expect", [("paper", ONCE), ("authors", TWICE)])
def test_kernel_target(recipe, expect):
    got = kernel_target(5, 3.0, recipe, dtype=torch.float64)
    np.testing.assert_allclose(got.numpy(), [float(v) for v in expect], rtol=0, atol=1e-12)


@pytest.mark.parametrize("recipe,expect", [("paper", ONCE), ("authors", TWICE)])
def test_kernel_loss_of_a_silent_output_is_half_the_target_energy(recipe, expect):
    psc = torch.zeros(5, 1, 3, dtype=torch.float64)
    loss = kernel_loss(psc, psc, torch.tensor([1]), tau_s=3.0, recipe=recipe)
    assert float(loss) == pytest.approx(float(sum(v * v for v in expect) / 2), abs=1e-12)


def test_count_loss_counts_spikes_or_summed_psc():
    # label 0 fires the desired train [0,1,1,1,1]: 4 spikes (= desired 4: no error, paper);
    # its PSC [0, 1/3, 5/9, 19/27, 65/81] sums to 194/81 < 4 (authors: e = (194/81 - 4)/5)
    spikes = torch.zeros(5, 1, 2, dtype=torch.float64)
    spikes[1:, 0, 0] = 1
    psc = torch.zeros(5, 1, 2, dtype=torch.float64)
    psc[:, 0, 0] = torch.tensor([float(v) for v in ONCE], dtype=torch.float64)
    psc.requires_grad_(True)
    y = torch.tensor([0])
    assert float(count_loss(psc, spikes, y, desired_count=4, undesired_count=1, recipe="paper").detach()) == 0.0
    e = (F(194, 81) - 4) / 5
    loss = count_loss(psc, spikes, y, desired_count=4, undesired_count=1, recipe="authors")
    assert float(loss.detach()) == pytest.approx(float(F(5, 2) * e * e), abs=1e-12)  # ½ Σ_t e², T = 5
    loss.backward()
    np.testing.assert_allclose(psc.grad[:, 0, 0].numpy(), [float(e)] * 5, atol=1e-12)
    assert float(psc.grad[:, 0, 1].abs().sum()) == 0.0  # silent wrong class: better than asked


# Neuron A spikes at t = 0, 1; neuron B at t = 2, 3, 4 (T = 5, τs = 3). Their PSCs, by hand:
PSC_A = [F(1, 3), F(5, 9), F(10, 27), F(20, 81), F(40, 243)]    # Σ = 406/243 ≈ 1.671
PSC_B = [F(0), F(0), F(1, 3), F(5, 9), F(19, 27)]               # Σ = 43/27 ≈ 1.593


def test_prediction_rules_disagree_where_they_should():
    spikes = torch.zeros(5, 1, 2)
    spikes[:2, 0, 0] = 1
    spikes[2:, 0, 1] = 1
    psc = torch.tensor([[[float(a), float(b)]] for a, b in zip(PSC_A, PSC_B)])
    assert sum(PSC_A) == F(406, 243) and sum(PSC_B) == F(43, 27)
    assert predict(spikes).tolist() == [1]                        # 3 spikes beat 2
    assert predict(spikes, psc, "spike_count").tolist() == [1]
    assert predict(spikes, psc, "psc").tolist() == [0]            # 1.671 beats 1.593
    with pytest.raises(ValueError, match="needs the output PSC"):
        predict(spikes, None, "psc")


def one_layer(rule: str, recipe: str, prediction: str | None = None) -> Network:
    """A 2→2 dense layer, W = 4·I, threshold 1, on event input: fed p_A = [1, 1, -2, 0, 0] and
    p_B = [0, 0, 1, 1, 1], neuron A fires at t = 0, 1 and B at t = 2, 3, 4 (see PSC_A/PSC_B)."""
    net_cfg = {"n_steps": 5, "tau_m": 5, "tau_s": 3, "loss": "kernel", "n_class": 2, "input_shape": [2],
               "rule": rule, "recipe": recipe}
    if prediction:
        net_cfg["prediction"] = prediction
    cfg = parse_config({"Network": net_cfg,
                        "Layers": {"out": {"type": "linear", "n_inputs": 2, "n_outputs": 2, "threshold": 1}}})
    net = Network(cfg).double()
    with torch.no_grad():
        net.layers["out"].weight.copy_(4 * torch.eye(2, dtype=torch.float64))
    return net


EVENTS = torch.tensor([[[1, 0]], [[1, 0]], [[-2, 1]], [[0, 1]], [[0, 1]]], dtype=torch.float64)  # (T=5, B=1, 2), time first


@pytest.mark.parametrize("rule", ["tsslbp", "bptt"])
@pytest.mark.parametrize("recipe,target,predicted", [("paper", ONCE, 1), ("authors", TWICE, 0)])
def test_network_loss_and_prediction_follow_the_recipe(rule, recipe, target, predicted):
    net = one_layer(rule, recipe)
    psc, spikes = net(EVENTS)
    assert spikes[:, 0].tolist() == [[1, 0], [1, 0], [0, 1], [0, 1], [0, 1]]
    np.testing.assert_allclose(psc[:, 0].detach().numpy(), [[float(a), float(b)] for a, b in zip(PSC_A, PSC_B)],
                               atol=1e-12)
    # label 0 (neuron A): ½ Σ_t (a_A - ā)² + ½ Σ_t a_B², from the fractions above
    expect = sum((a - t) ** 2 for a, t in zip(PSC_A, target)) / 2 + sum(b * b for b in PSC_B) / 2
    loss = kernel_loss(psc, spikes, torch.tensor([0]), tau_s=3.0, recipe=recipe)
    assert float(loss.detach()) == pytest.approx(float(expect), abs=1e-12)
    loss.backward()  # both learning rules carry the recipe's loss back
    assert torch.isfinite(net.layers["out"].weight.grad).all()
    # evaluation predicts by the recipe's rule, or the rule asked for
    data = TensorDataset(EVENTS.transpose(0, 1), torch.tensor([0]))  # one item (T, 2) per sample
    data.time_varying = True  # its items vary over time: batches are stacked time first
    cfg = net.config
    ev = evaluate_detailed(net, data, cfg, "cpu")
    assert ev.prediction == cfg.prediction_rule == ("psc" if recipe == "authors" else "spike_count")
    assert ev.accuracy == float(predicted == 0)
    assert ev.accuracy_by_rule == {"spike_count": 0.0, "psc": 1.0}
    assert evaluate(net, data, cfg, "cpu", prediction="psc")[1] == 1.0
    assert evaluate(net, data, cfg, "cpu", prediction="spike_count")[1] == 0.0
    assert ev.firing_rates == {"out": 5 / 10}  # 5 spikes over 2 neurons × 5 steps
    # a config's own 'prediction' key overrides its recipe's rule
    assert one_layer(rule, recipe, "spike_count").config.prediction_rule == "spike_count"


def test_default_recipe_is_paper_and_round_trips():
    cfg = one_layer("tsslbp", "paper").config
    raw = cfg.to_dict()
    assert raw["Network"]["recipe"] == "paper" and "prediction" not in raw["Network"]
    del raw["Network"]["recipe"]
    again = parse_config(raw)
    assert again.recipe == "paper" and again.prediction_rule == "spike_count"
    authors = one_layer("bptt", "authors", "spike_count").config
    assert parse_config(authors.to_dict()).to_dict() == authors.to_dict()
