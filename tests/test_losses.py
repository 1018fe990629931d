"""Losses of §4 against values computed by hand, and prediction by spike count."""

from __future__ import annotations

import torch

from tsslc.losses import count_loss, desired_train, kernel_loss, predict, spike_softmax_loss


def test_desired_trains():
    assert desired_train(5).tolist() == [0, 1, 1, 1, 1]
    assert desired_train(10).tolist() == [0, 1] * 5
    assert desired_train(30).tolist() == [0, 1] * 15


def test_kernel_loss_by_hand():
    T, tau_s = 5, 3.0
    psc = torch.rand(T, 2, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([2, 0])
    target = []
    b = 0.0
    for d in [0, 1, 1, 1, 1]:
        b = b - b / tau_s + d
        target.append(b / tau_s)
    target = torch.tensor(target, dtype=torch.float64)
    expect = 0.0
    for n, lab in enumerate(labels.tolist()):
        for i in range(3):
            want = target if i == lab else torch.zeros(T, dtype=torch.float64)
            expect += 0.5 * float(((psc.detach()[:, n, i] - want) ** 2).sum())
    loss = kernel_loss(psc, None, labels, tau_s=tau_s)
    assert abs(float(loss.detach()) - expect) < 1e-12


def test_count_loss_value_and_gradient():
    T = 10
    spikes = torch.zeros(T, 1, 3)
    spikes[:6, 0, 0] = 1  # label 0, desired 4: fires 6 (better than asked -> no error)
    spikes[:2, 0, 1] = 1  # wrong class, undesired 1: fires 2 -> e = (2-1)/10
    # class 2 fires 0 < 1: better than asked -> no error
    psc = torch.rand(T, 1, 3, requires_grad=True)
    loss = count_loss(psc, spikes, torch.tensor([0]), desired_count=4, undesired_count=1)
    loss.backward()
    assert abs(float(loss.detach()) - 0.5 * T * 0.1 ** 2) < 1e-7
    expect = torch.zeros(T, 1, 3)
    expect[:, 0, 1] = 0.1
    assert torch.allclose(psc.grad, expect)
    spikes[:, 0, 0] = 0  # now the correct class is silent: e = -4/10 at every step
    psc.grad = None
    count_loss(psc, spikes, torch.tensor([0]), desired_count=4, undesired_count=1).backward()
    assert torch.allclose(psc.grad[:, 0, 0], torch.full((T,), -0.4))


def test_spike_softmax_and_prediction():
    spikes = torch.zeros(5, 2, 4)
    spikes[:3, 0, 2] = 1
    spikes[:1, 0, 1] = 1
    spikes[:2, 1, 0] = 1
    spikes[:2, 1, 3] = 1  # tie: lowest index wins
    assert predict(spikes).tolist() == [2, 0]
    psc = torch.zeros(5, 1, 4)
    psc[:, 0, 1] = 1.0
    loss = spike_softmax_loss(psc, None, torch.tensor([1]))
    z = torch.tensor([0.0, 5.0, 0.0, 0.0])
    assert abs(float(loss) - float(-torch.log_softmax(z, 0)[1])) < 1e-6
