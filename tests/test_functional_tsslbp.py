"""tssl_lif against a slow, obviously-correct implementation written from TSSLBP_SPEC.md,
on both implementations of the neuron (the fused kernel and the pure-torch reference)."""

import math

import numpy as np
import pytest
import torch

from tsslc.functional import bptt_lif, input_psc, neuron_path, tssl_lif


@pytest.fixture(params=["fused", "reference"])
def impl(request):
    """Each test below runs on both paths; "fused" must really be the compiled kernel."""
    if request.param == "fused":
        assert neuron_path(torch.zeros(1, 1), "fused") == "fused", "the fused CPU kernel did not load"
    return request.param


def ref_forward(x, tau_m, tau_s, V):
    """§1, one neuron at a time, plain Python floats."""
    T, N = x.shape
    th_m, th_s = 1 / tau_m, 1 / tau_s
    a = np.zeros((T, N)); s = np.zeros((T, N)); u = np.zeros((T, N)); du = np.zeros((T, N))
    for n in range(N):
        up, ap = 0.0, 0.0
        for t in range(T):
            du[t, n] = -th_m * up + x[t, n]
            u[t, n] = up + du[t, n]
            s[t, n] = 1.0 if u[t, n] > V else 0.0
            up = u[t, n] * (1 - s[t, n])
            ap = ap + th_s * (s[t, n] - ap)
            a[t, n] = ap
    return a, s, u, du


def ref_backward(g, a, s, u, du, tau_m, tau_s, V):
    """§5 literally: κ and G by the explicit sum, ρ carried backwards, fallback last."""
    T, N = g.shape
    th_m, th_s = 1 / tau_m, 1 / tau_s
    kappa = [th_s * (1 - th_s) ** k for k in range(T)]
    delta = np.zeros((T, N))
    for n in range(N):
        rho = 0.0
        for t in range(T - 1, -1, -1):
            G = sum(kappa[k - t] * g[k, n] for k in range(t, T))
            if s[t, n] == 1:
                q = -min(max(-1 / du[t, n], -8.0), 0.0)
            else:
                q = 0.0
            d = q * G
            if t < T - 1:
                d += rho * u[t, n] * (-th_m) * (-q)
                d += rho * (1 - th_m) * (1 - s[t, n])
            rho = d if s[t, n] == 1 else rho * (1 - th_m)
            if a[t, n] < 1 / (4 * tau_s):
                z = min(max((V - u[t, n]) / 0.2, -8.0), 8.0)
                sig_prime = math.exp(z) / (1 + math.exp(z)) ** 2
                delta[t, n] = G * sig_prime / 0.2
            else:
                delta[t, n] = d
    return delta


@pytest.mark.parametrize("T,tau_m,tau_s,V", [(5, 5, 3, 1.0), (10, 8, 4, 0.5), (17, 3, 2, 1.5), (30, 8, 4, 1.0), (30, 20, 5, 2.0)])
def test_forward_and_gradient_match_spec(T, tau_m, tau_s, V, impl):
    gen = torch.Generator().manual_seed(T * 7 + tau_m)
    N = 64
    x = (torch.rand(T, N, generator=gen, dtype=torch.float64) * 1.4 * V).requires_grad_()
    g = torch.randn(T, N, generator=gen, dtype=torch.float64)
    a, s = tssl_lif(x, tau_m, tau_s, V, return_spikes=True, impl=impl)
    ra, rs, ru, rdu = ref_forward(x.detach().numpy(), tau_m, tau_s, V)
    np.testing.assert_array_equal(s.numpy(), rs)
    np.testing.assert_allclose(a.detach().numpy(), ra, rtol=1e-12, atol=1e-14)
    assert 0.05 < rs.mean() < 0.95, "test currents must make neurons both fire and stay silent"
    assert (ra < 1 / (4 * tau_s)).any() and (ra >= 1 / (4 * tau_s)).any(), "both branches exercised"
    (a * g).sum().backward()
    ref = ref_backward(g.numpy(), ra, rs, ru, rdu, tau_m, tau_s, V)
    got = x.grad.numpy()
    rel = np.abs(got - ref).max() / np.abs(ref).max()
    assert rel <= 1e-5
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


def test_any_shape_and_float32(impl):
    x = torch.rand(5, 2, 3, 4, 4) * 1.5
    a, s = tssl_lif(x.requires_grad_(), 5, 3, 1.0, return_spikes=True, impl=impl)
    assert a.shape == x.shape and s.dtype == torch.float32
    a.sum().backward()
    assert x.grad.shape == x.shape and torch.isfinite(x.grad).all()


def test_bptt_has_identical_forward(impl):
    x = torch.rand(5, 100, dtype=torch.float32) * 2
    a1, s1 = tssl_lif(x, 5, 3, 1.0, return_spikes=True, impl=impl)
    a2, s2 = bptt_lif(x, 5, 3, 1.0, return_spikes=True)
    assert torch.equal(s1, s2) and torch.equal(a1, a2)


def test_input_psc_is_the_spec_filter():
    p = torch.tensor([[1.0], [1.0], [0.0], [2.0]], dtype=torch.float64)
    b, out = 0.0, []
    for v in [1.0, 1.0, 0.0, 2.0]:
        b = b - b / 3 + v
        out.append(b / 3)
    np.testing.assert_allclose(input_psc(p, 3).numpy()[:, 0], out)


def test_bad_input_is_clear_error(impl):
    with pytest.raises(TypeError, match="float"):
        tssl_lif(torch.zeros(5, 3, dtype=torch.int64), 5, 3, 1, impl=impl)
    with pytest.raises(ValueError, match="tau_s"):
        tssl_lif(torch.zeros(5, 3), 5, 0, 1, impl=impl)
    with pytest.raises(ValueError, match="'fast'"):
        tssl_lif(torch.zeros(5, 3), 5, 3, 1, impl="fast")
