"""The fused TSSL-BP neuron on CUDA, as two Triton kernels (imported only for CUDA tensors).

Each program owns a block of neurons and walks over time: the forward (§1) writes the PSC,
the spikes, and u and Δu for the backward; the backward (§5) walks back over time once,
carrying G and ρ in registers. There is no T×T work and no intermediate tensor besides
u and Δu. The constants reach the kernels as one tensor of the input's dtype (a Python
float would be passed as float32), cast exactly as torch casts them in the reference, and
the kernels are compiled without fused multiply-add, so the forward is bit for bit the
reference's op-by-op arithmetic.

:func:`available` imports Triton and runs both kernels once on a small problem against the
reference; any failure makes it return ``False`` with the reason in :data:`error`.
"""

from __future__ import annotations

import torch

#: Why the kernels are unavailable (one line), or ``None``.
error: str | None = None
_state: bool | None = None
_kernels = None
BLOCK = 256


def _compile():
    import triton
    import triton.language as tl

    @triton.jit(do_not_specialize=["T", "N"])
    def forward_kernel(x_ptr, a_ptr, s_ptr, u_ptr, du_ptr, c_ptr, T, N, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        neg_thm = tl.load(c_ptr + 0)
        ths = tl.load(c_ptr + 1)
        V = tl.load(c_ptr + 2)
        zero = tl.zeros([BLOCK], dtype=neg_thm.dtype)
        one = zero + 1
        mem = zero
        syn = zero
        o = offs
        for _ in range(T):
            x = tl.load(x_ptr + o, mask=mask, other=0)
            du = mem * neg_thm          # Δu = -θm·u' + x
            du = du + x
            u = mem + du                # u = u' + Δu
            fire = u > V                # s = u > V
            sp = tl.where(fire, one, zero)
            mem = tl.where(fire, zero, u)
            step = sp - syn             # a = a + (s - a)·θs
            step = step * ths
            syn = syn + step
            tl.store(a_ptr + o, syn, mask=mask)
            tl.store(s_ptr + o, sp, mask=mask)
            tl.store(u_ptr + o, u, mask=mask)
            tl.store(du_ptr + o, du, mask=mask)
            o += N

    @triton.jit(do_not_specialize=["T", "N", "last"])
    def backward_kernel(g_ptr, u_ptr, du_ptr, a_ptr, d_ptr, c_ptr, T, N, last, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        thm = tl.load(c_ptr + 3)
        one_m_thm = tl.load(c_ptr + 4)
        ths = tl.load(c_ptr + 1)
        one_m_ths = tl.load(c_ptr + 5)
        V = tl.load(c_ptr + 2)
        inactive = tl.load(c_ptr + 6)
        beta = tl.load(c_ptr + 7)
        zero = tl.zeros([BLOCK], dtype=thm.dtype)
        one = zero + 1
        G = zero
        rho = zero
        o = offs + last  # (T - 1)·N: offsets stay int64 (no int32 overflow on big tensors)
        for _ in range(T):
            g = tl.load(g_ptr + o, mask=mask, other=0)
            u = tl.load(u_ptr + o, mask=mask, other=0)
            du = tl.load(du_ptr + o, mask=mask, other=1)
            a = tl.load(a_ptr + o, mask=mask, other=0)
            G = g * ths + one_m_ths * G                 # G[t] = θs·g[t] + (1-θs)·G[t+1]
            fire = u > V
            sp = tl.where(fire, one, zero)
            r = -one / du                               # q = -clip(-1/Δu, -8, 0)·s
            r = tl.where(r < -8.0, zero - 8.0, r)
            r = tl.where(r > 0.0, zero, r)
            q = -(r * sp)
            A = u * thm * q + (one - sp) * one_m_thm
            d = q * G + rho * A
            rho = tl.where(fire, d, rho * one_m_thm)
            z = (V - u) / beta                          # fallback σ'((V-u)/β)/β
            z = tl.where(z < -8.0, zero - 8.0, z)
            z = tl.where(z > 8.0, zero + 8.0, z)
            sig = one / (one + tl.exp(-z))
            sur = (one - sig) * sig / beta
            tl.store(d_ptr + o, tl.where(a < inactive, G * sur, d), mask=mask)
            o -= N

    return forward_kernel, backward_kernel


_const_cache: dict = {}


def _constants(x: torch.Tensor, tau_m: float, tau_s: float, threshold: float) -> torch.Tensor:
    """The kernels' constants in x's dtype on x's device (kept: one copy per layer setting)."""
    key = (tau_m, tau_s, threshold, x.dtype, x.device)
    c = _const_cache.get(key)
    if c is None:
        theta_m, theta_s = 1.0 / tau_m, 1.0 / tau_s
        vals = [-theta_m, theta_s, threshold, theta_m, 1 - theta_m, 1 - theta_s, 1.0 / (4.0 * tau_s), 0.2]
        c = _const_cache[key] = torch.tensor(vals, dtype=x.dtype, device=x.device)
    return c


def _grid(N: int):
    return (max(1, -(-N // BLOCK)),)


def forward(x: torch.Tensor, tau_m: float, tau_s: float, threshold: float, with_membrane: bool = False):
    """§1 on a contiguous CUDA ``x``: ``(a, s)``, or ``(a, s, u, du)`` with ``with_membrane``."""
    a, s, (u, du, _) = forward_train(x, tau_m, tau_s, threshold)
    return (a, s, u, du) if with_membrane else (a, s)


def forward_train(x: torch.Tensor, tau_m: float, tau_s: float, threshold: float):
    """``(a, s, saved)``: the outputs and what :func:`backward` needs (u, Δu, a)."""
    T = x.shape[0]
    N = x.numel() // T
    a, s, u, du = (torch.empty_like(x) for _ in range(4))
    if N:
        _kernels[0][_grid(N)](x, a, s, u, du, _constants(x, tau_m, tau_s, threshold), T, N, BLOCK=BLOCK,
                              enable_fp_fusion=False)
    return a, s, (u, du, a)


def backward(saved, g: torch.Tensor, tau_m: float, tau_s: float, threshold: float) -> torch.Tensor:
    u, du, a = saved
    T = u.shape[0]
    N = u.numel() // T
    delta = torch.empty_like(u)
    if N:
        _kernels[1][_grid(N)](g, u, du, a, delta, _constants(u, tau_m, tau_s, threshold), T, N,
                              (T - 1) * N, BLOCK=BLOCK)
    return delta


def available() -> bool:
    """Triton importable, CUDA present, and both kernels agree with the reference on a small
    problem (spikes and PSC bit for bit, gradient to float32 rounding)."""
    global _state, error, _kernels
    if _state is not None:
        return _state
    try:
        if not torch.cuda.is_available():
            raise RuntimeError("no CUDA device")
        try:
            import triton  # noqa: F401
        except ImportError as e:
            raise RuntimeError(f"Triton is not installed ({e})") from None
        _kernels = _compile()
        from tsslc.functional import lif_forward, tsslbp_backward

        gen = torch.Generator().manual_seed(0)
        x = (torch.rand(7, 1000, generator=gen) * 1.5).cuda()
        g = torch.randn(7, 1000, generator=gen).cuda()
        a, s, saved = forward_train(x, 5.0, 3.0, 1.0)
        ra, rs, ru, rdu = lif_forward(x, 5.0, 3.0, 1.0)
        if not (torch.equal(a, ra) and torch.equal(s, rs)):
            raise RuntimeError("the Triton forward differs from the reference")
        d = backward(saved, g, 5.0, 3.0, 1.0)
        rd = tsslbp_backward(g, rs, ru, rdu, ra, 5.0, 3.0, 1.0)
        if not float((d - rd).abs().max()) <= 1e-4 * float(rd.abs().max()):
            raise RuntimeError("the Triton backward differs from the reference")
        _state = True
    except Exception as e:  # any failure (compile, launch, mismatch) means: use the reference
        error, _state = " ".join(f"{type(e).__name__}: {e}".split())[:300], False
    return _state
