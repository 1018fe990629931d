"""The TSSL-BP neuron as tensor functions (``docs/`` and TSSLBP_SPEC.md §1, §2, §5).

Everything here is time-first: a tensor of shape ``(T, *neurons)``. The forward step is one
function (:func:`lif_forward`) shared by the TSSL-BP autograd function, the BPTT baseline
and the reference interpreter of the IR, so that all three produce bit-identical spikes
for the same input current.

Forward, per neuron, with u'[-1] = 0 and a[-1] = 0 (θm = 1/τm, θs = 1/τs, V threshold)::

    Δu[t] = -θm·u'[t-1] + x[t]
    u[t]  = u'[t-1] + Δu[t]
    s[t]  = u[t] > V
    u'[t] = u[t]·(1 - s[t])
    a[t]  = a[t-1] + (s[t] - a[t-1])·θs

Backward (§5): given g = ∂L/∂a, δ = ∂L/∂x is computed in one reverse sweep over time, with
G[t] = θs·g[t] + (1-θs)·G[t+1] (the error seen through the PSC kernel κ[k] = θs(1-θs)^k),
the inter-neuron term q·G at spikes (q = min(1/Δu, 8)), the intra-neuron term carried by
ρ through resets and leaks, and the inactive-neuron fallback G·σ'((V-u)/β)/β where
a[t] < 1/(4τs). O(T) per neuron, vectorised over neurons.

Two implementations of the TSSL-BP neuron, chosen by ``impl`` (``neuron_impl``):

* ``"fused"`` (the default where it is available): the forward and the backward each one
  pass over time per neuron in a compiled kernel: C++/OpenMP on the CPU
  (:mod:`tsslc.fused_cpu`), Triton on CUDA (:mod:`tsslc.fused_triton`). On the CPU only the
  input current is kept for the backward (the backward kernel recomputes the forward of each
  block of neurons); on CUDA u and Δu.
  Same spikes, PSC, u and Δu bit for bit as the reference; the gradient equal to float
  rounding.
* ``"reference"``: :func:`lif_forward` and :func:`tsslbp_backward` below, pure torch.

The default comes from :func:`set_neuron_impl`, else the environment variable
``TSSLC_NEURON_IMPL``, else ``"fused"``. When the fused kernel cannot be had on a device
(no compiler, no Triton), the reference path runs and one line on stderr says why (once
per process and device); float16/bfloat16 always take the reference path.
"""

from __future__ import annotations

import contextlib
import os
import sys

import torch

from tsslc.errors import TsslcError

#: β of the inactive-neuron fallback (TSSLBP_SPEC.md §5).
FALLBACK_BETA = 0.2
#: Clip of ∂t/∂u (-1/Δu) to [-CLIP, 0].
DT_DU_CLIP = 8.0


def input_psc(p: torch.Tensor, tau_s: float) -> torch.Tensor:
    """The input synaptic filter of §2: ``b[t] = b[t-1] - b[t-1]/τs + p[t]``, returns ``b/τs``.

    ``p`` is time-first ``(T, *shape)`` (static images repeated over T, or event frames).
    The same filter turns the desired spike train of the kernel loss into its target PSC.
    """
    b = torch.zeros_like(p[0])
    out = torch.empty_like(p)
    for t in range(p.shape[0]):
        b = b - b / tau_s + p[t]
        out[t] = b / tau_s
    return out


def lif_forward(x: torch.Tensor, tau_m: float, tau_s: float, threshold: float):
    """Run the §1 dynamics on a time-first current ``x``.

    Returns ``(a, s, u, du)``: PSC, spikes (0/1 in x's dtype), pre-reset membrane and
    membrane increment, all of x's shape. The arithmetic is exactly the §1 order (no fused
    ops), written into preallocated outputs to keep the per-step work small.
    """
    theta_m = 1.0 / tau_m
    theta_s = 1.0 / tau_s
    T = x.shape[0]
    u = torch.empty_like(x)
    du = torch.empty_like(x)
    fired = torch.empty(x.shape, dtype=torch.bool, device=x.device)
    mem = torch.zeros_like(x[0])
    for t in range(T):
        torch.mul(mem, -theta_m, out=du[t])
        du[t].add_(x[t])                      # Δu = -θm·u' + x
        torch.add(mem, du[t], out=u[t])       # u = u' + Δu
        torch.gt(u[t], threshold, out=fired[t])
        mem = u[t].masked_fill(fired[t], 0.0)  # u' = u·(1 - s)
    s = fired.to(x.dtype)
    a = torch.empty_like(x)
    syn = torch.zeros_like(x[0])
    step = torch.empty_like(syn)
    for t in range(T):
        torch.sub(s[t], syn, out=step)
        step.mul_(theta_s)
        torch.add(syn, step, out=a[t])        # a = a + (s - a)·θs
        syn = a[t]
    return a, s, u, du


def tsslbp_backward(g, s, u, du, a, tau_m: float, tau_s: float, threshold: float):
    """δ = ∂L/∂x from g = ∂L/∂a by §5: O(T) per neuron, no T×T tensor.

    G comes from the recursion G[t] = θs·g[t] + (1-θs)·G[t+1] (the PSC kernel
    κ[k] = θs(1-θs)^k summed backwards). What does not depend on the carried error ρ is
    computed for all steps at once: q, the reset/leak factor and the fallback surrogate.
    The reverse sweep then only carries ρ: d[t] = q[t]·G[t] + ρ·A[t] with
    A = u·θm·q + (1-θm)(1-s), and ρ ← d at a spike, ρ·(1-θm) otherwise.
    """
    theta_m = 1.0 / tau_m
    theta_s = 1.0 / tau_s
    T = g.shape[0]
    G = torch.mul(g, theta_s)
    for t in range(T - 2, -1, -1):
        G[t].add_(G[t + 1], alpha=1 - theta_s)
    # in-place chains: these are T×N tensors, fresh allocations cost as much as the arithmetic
    q = torch.reciprocal(du).neg_().clamp_(-DT_DU_CLIP, 0.0).mul_(s).neg_()  # -clip(-1/Δu, -8, 0)·s
    A = torch.mul(u, theta_m).mul_(q).add_(torch.sub(1.0, s).mul_(1 - theta_m))
    d = q.mul_(G)                                                  # q·G, then the carried part
    fired = s > 0
    rho = torch.zeros_like(g[0])
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            d[t].addcmul_(rho, A[t])
        rho = torch.where(fired[t], d[t], rho * (1 - theta_m))
    sig = torch.sub(threshold, u).div_(FALLBACK_BETA).clamp_(-8.0, 8.0).sigmoid_()
    surrogate = torch.sub(1.0, sig).mul_(sig).div_(FALLBACK_BETA)  # σ'(z)/β = e^z/((1+e^z)²β)
    return torch.where(a < 1.0 / (4.0 * tau_s), G.mul_(surrogate), d)


class _TSSLLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, tau_m, tau_s, threshold):
        a, s, u, du = lif_forward(x.detach(), tau_m, tau_s, threshold)
        ctx.save_for_backward(s, u, du, a)
        ctx.params = (tau_m, tau_s, threshold)
        ctx.mark_non_differentiable(s)
        return a, s

    @staticmethod
    def backward(ctx, grad_a, grad_s):
        s, u, du, a = ctx.saved_tensors
        if grad_a is None:
            return None, None, None, None
        delta = tsslbp_backward(grad_a.contiguous(), s, u, du, a, *ctx.params)
        return delta, None, None, None


class _FusedTSSLLIF(torch.autograd.Function):
    """The same neuron through a fused kernel (CPU: saves only the input current)."""

    @staticmethod
    def forward(ctx, x, tau_m, tau_s, threshold, kernel):
        a, s, saved = kernel.forward_train(x.detach().contiguous(), tau_m, tau_s, threshold)
        ctx.save_for_backward(*saved)
        ctx.params = (tau_m, tau_s, threshold)
        ctx.kernel = kernel
        ctx.mark_non_differentiable(s)
        return a, s

    @staticmethod
    def backward(ctx, grad_a, grad_s):
        if grad_a is None:
            return None, None, None, None, None
        delta = ctx.kernel.backward(ctx.saved_tensors, grad_a.contiguous(), *ctx.params)
        return delta, None, None, None, None


NEURON_IMPLS = ("fused", "reference")
_impl_override: str | None = None
_noted: set[str] = set()


class NeuronImplError(TsslcError, ValueError):
    """An unknown neuron implementation (a user mistake: one line, no traceback in the CLI)."""


def _valid_impl(name: str, where: str) -> str:
    if name not in NEURON_IMPLS:
        raise NeuronImplError(f"{where}: unknown neuron implementation {name!r} (expected 'fused' or 'reference')")
    return name


def default_neuron_impl() -> str:
    """The implementation used when ``impl`` is not given: :func:`set_neuron_impl`'s, else
    ``$TSSLC_NEURON_IMPL``, else ``"fused"``."""
    if _impl_override is not None:
        return _impl_override
    return _valid_impl(os.environ.get("TSSLC_NEURON_IMPL", "fused").strip().lower(), "TSSLC_NEURON_IMPL")


def set_neuron_impl(name: str | None) -> None:
    """Set the process-wide default (``None``: back to ``$TSSLC_NEURON_IMPL`` / ``"fused"``)."""
    global _impl_override
    _impl_override = None if name is None else _valid_impl(name, "set_neuron_impl")


@contextlib.contextmanager
def neuron_impl(name: str):
    """``with neuron_impl("reference"): ...`` runs the block on that implementation."""
    global _impl_override
    old, _impl_override = _impl_override, _valid_impl(name, "neuron_impl")
    try:
        yield
    finally:
        _impl_override = old


def _fused_module(device: torch.device):
    """(kernel module or None, why not)."""
    if device.type == "cpu":
        from tsslc import fused_cpu

        return (fused_cpu, None) if fused_cpu.load() is not None else (None, fused_cpu.error)
    if device.type == "cuda":
        from tsslc import fused_triton

        return (fused_triton, None) if fused_triton.available() else (None, fused_triton.error)
    return None, f"no fused kernel for device type {device.type!r}"


def fused_unavailable_reason(device: torch.device | str) -> str | None:
    """``None`` when the fused kernel runs on ``device``, else why not (one line)."""
    return _fused_module(torch.device(device))[1]


def fused_kernel(device: torch.device | str, dtype: torch.dtype = torch.float32, note: bool = True):
    """The fused kernel module for tensors on ``device`` of ``dtype``, or ``None`` (then one
    line on stderr says why, once per device kind, unless ``note`` is false)."""
    device = torch.device(device)
    if dtype not in (torch.float32, torch.float64):
        return None  # float16/bfloat16: the reference path, as documented
    module, reason = _fused_module(device)
    if module is None and note and device.type not in _noted:
        _noted.add(device.type)
        print(f"tsslc: fused neuron unavailable on {device.type} ({reason}); using the reference path",
              file=sys.stderr)
    return module


def neuron_path(x: torch.Tensor, impl: str | None = None) -> str:
    """Which implementation :func:`tssl_lif` runs for ``x``: ``"fused"`` or ``"reference"``."""
    impl = default_neuron_impl() if impl is None else _valid_impl(impl, "impl")
    if impl == "fused" and fused_kernel(x.device, x.dtype) is not None:
        return "fused"
    return "reference"


def _check(x: torch.Tensor, tau_m, tau_s, threshold):
    if not torch.is_floating_point(x):
        raise TypeError(f"input current must be a float tensor, got {x.dtype}")
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"input current must be time-first (T, *neurons), got shape {tuple(x.shape)}")
    for name, v in (("tau_m", tau_m), ("tau_s", tau_s)):
        if not float(v) > 0:
            raise ValueError(f"{name} must be > 0, got {v}")


def tssl_lif(x: torch.Tensor, tau_m: float, tau_s: float, threshold: float, return_spikes: bool = False,
             impl: str | None = None):
    """LIF layer with first-order synapse, trained by TSSL-BP.

    ``x``: input current, time first ``(T, *neurons)``, any float dtype and device, any
    strides. Returns the PSC ``a`` (same shape), or ``(a, spikes)`` with ``return_spikes=True``.
    The gradient is TSSL-BP's (§5), not the derivative of the step function. ``impl``:
    ``"fused"`` or ``"reference"`` (default: :func:`default_neuron_impl`).
    """
    _check(x, tau_m, tau_s, threshold)
    impl = default_neuron_impl() if impl is None else _valid_impl(impl, "impl")
    kernel = fused_kernel(x.device, x.dtype) if impl == "fused" else None
    if kernel is not None:
        a, s = _FusedTSSLLIF.apply(x, float(tau_m), float(tau_s), float(threshold), kernel)
    else:
        a, s = _TSSLLIF.apply(x, float(tau_m), float(tau_s), float(threshold))
    return (a, s) if return_spikes else a


class _SurrogateSpike(torch.autograd.Function):
    """Heaviside step forward, logistic surrogate σ'((u-V)/β)/β backward (BPTT baseline)."""

    @staticmethod
    def forward(ctx, mem, threshold):
        ctx.save_for_backward(mem)
        ctx.threshold = threshold
        return (mem > threshold).to(mem.dtype)

    @staticmethod
    def backward(ctx, grad):
        (mem,) = ctx.saved_tensors
        z = torch.clamp((ctx.threshold - mem) / FALLBACK_BETA, -8.0, 8.0)
        ez = torch.exp(z)
        return grad * ez / ((1 + ez) * (1 + ez) * FALLBACK_BETA), None


def bptt_lif(x: torch.Tensor, tau_m: float, tau_s: float, threshold: float, return_spikes: bool = False):
    """The same neuron as :func:`tssl_lif` (identical forward arithmetic, hence identical
    spikes), differentiated by ordinary backpropagation through time with a surrogate spike
    derivative: the baseline TSSL-BP is compared against."""
    _check(x, tau_m, tau_s, threshold)
    theta_m = 1.0 / float(tau_m)
    theta_s = 1.0 / float(tau_s)
    mem = torch.zeros_like(x[0])
    syn = torch.zeros_like(x[0])
    a_list, s_list = [], []
    for t in range(x.shape[0]):
        upd = (-theta_m) * mem + x[t]
        mem = mem + upd
        out = _SurrogateSpike.apply(mem, float(threshold))
        mem = mem * (1 - out)
        syn = syn + (out - syn) * theta_s
        a_list.append(syn)
        s_list.append(out.detach())
    a = torch.stack(a_list)
    return (a, torch.stack(s_list)) if return_spikes else a


def lif(x, tau_m, tau_s, threshold, rule: str = "tsslbp", return_spikes: bool = False, impl: str | None = None):
    """Dispatch on the learning rule: ``"tsslbp"`` or ``"bptt"`` (``impl``: TSSL-BP's implementation)."""
    if rule == "tsslbp":
        return tssl_lif(x, tau_m, tau_s, threshold, return_spikes, impl)
    if rule == "bptt":
        return bptt_lif(x, tau_m, tau_s, threshold, return_spikes)
    raise ValueError(f"unknown learning rule {rule!r} (expected 'tsslbp' or 'bptt')")
