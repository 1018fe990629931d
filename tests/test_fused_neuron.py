"""The fused TSSL-BP neuron (compiled kernel) against the pure-torch reference path.

The reference path itself is checked against a scalar implementation of the spec in
test_functional_tsslbp.py (on both paths). Here: seeded sweeps and hypothesis over shapes,
strides, T = 1..100, τm, τs, thresholds and dtypes (spikes, PSC, u, Δu bit for bit; the
gradient to ≤ 1e-9 in float64 and float32 rounding), small dense and conv nets trained a few
steps on each path (same spikes, same weights), the thread count, the selection of the
path, and how the kernel is built and what happens when it cannot be.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tsslc import fused_cpu
from tsslc.functional import (
    default_neuron_impl,
    lif_forward,
    neuron_impl,
    neuron_path,
    set_neuron_impl,
    tssl_lif,
    tsslbp_backward,
)

from conftest import REPO

F32_TOL = 2e-5  # float32: max |fused - reference| relative to max |reference|
F64_TOL = 1e-9


@pytest.fixture(scope="module", autouse=True)
def kernel_loaded():
    assert fused_cpu.load() is not None, f"the fused CPU kernel did not load: {fused_cpu.error}"


def currents(shape, dtype, V, gen):
    """Currents that make neurons both fire and stay silent, with some exactly at V."""
    x = torch.rand(shape, generator=gen, dtype=torch.float64) * 1.6 * abs(V) - 0.3 * abs(V)
    x = x.to(dtype)
    flat = x.view(-1)
    flat[:: 7] = V  # u == V at t = 0 must not fire (strictly greater)
    return x


def both_paths(x, g, tau_m, tau_s, V):
    out = {}
    for impl in ("fused", "reference"):
        xi = x.detach().clone().requires_grad_(True) if x.is_contiguous() else x.detach().requires_grad_(True)
        a, s = tssl_lif(xi, tau_m, tau_s, V, return_spikes=True, impl=impl)
        (a * g).sum().backward()
        out[impl] = (a.detach(), s, xi.grad)
    return out


def assert_same(out, dtype):
    fa, fs, fg = out["fused"]
    ra, rs, rg = out["reference"]
    assert torch.equal(fs, rs), "spikes differ"
    assert torch.equal(fa, ra), "PSC differs"
    tol = F64_TOL if dtype == torch.float64 else F32_TOL
    scale = float(rg.abs().max()) or 1.0
    assert float((fg - rg).abs().max()) <= tol * scale, float((fg - rg).abs().max()) / scale


CASES = [  # shape after T, T, tau_m, tau_s, threshold
    ((64,), 5, 5, 3, 1.0),
    ((3, 5, 7), 1, 5, 3, 1.0),
    ((2,), 2, 2, 2, 0.5),
    ((255,), 17, 8, 4, 0.1),      # 0.1 is not a float: compared as torch does, in the dtype
    ((257,), 30, 20, 5, 2.0),
    ((2, 300), 100, 1.5, 1.2, 0.3),
    ((50, 15, 6, 6), 5, 5, 3, 1.0),  # enough work for the threads
    ((1,), 100, 3, 8, -0.25),     # a negative threshold: spikes with Δu < 0 at t = 0
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape,T,tau_m,tau_s,V", CASES)
def test_random_currents_same_on_both_paths(shape, T, tau_m, tau_s, V, dtype):
    gen = torch.Generator().manual_seed(hash((shape, T)) % 2**31)
    x = currents((T, *shape), dtype, V, gen)
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(dtype)
    out = both_paths(x, g, tau_m, tau_s, V)
    assert_same(out, dtype)
    s = out["reference"][1]
    if s.numel() >= 64:
        assert 0.02 < float(s.mean()) < 0.98, "the currents must make neurons fire and stay silent"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_membrane_bit_for_bit(dtype):
    gen = torch.Generator().manual_seed(3)
    x = currents((9, 4, 77), dtype, 1.0, gen)
    fused = fused_cpu.forward(x, 5, 3, 1.0, with_membrane=True)
    for f, r, name in zip(fused, lif_forward(x, 5, 3, 1.0), ("a", "s", "u", "du")):
        assert torch.equal(f, r), name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_kernel_backward_equals_reference_backward(dtype):
    """The kernel's backward on its own, fed the same g as tsslbp_backward."""
    gen = torch.Generator().manual_seed(4)
    x = currents((12, 600), dtype, 1.0, gen)
    g = torch.randn(x.shape, generator=gen, dtype=dtype)
    a, s, u, du = lif_forward(x, 4, 2, 1.0)
    ref = tsslbp_backward(g.clone(), s, u, du, a, 4, 2, 1.0)
    got = fused_cpu.backward((x,), g, 4, 2, 1.0)
    tol = F64_TOL if dtype == torch.float64 else F32_TOL
    assert float((got - ref).abs().max()) <= tol * float(ref.abs().max())


def test_non_contiguous_input_and_gradient():
    gen = torch.Generator().manual_seed(5)
    base = currents((6, 40, 30), torch.float64, 1.0, gen)
    for x in (base.transpose(1, 2), base[:, ::3], base.permute(2, 1, 0)[:6].transpose(0, 1)[:, :7]):
        assert not x.is_contiguous()
        g = torch.randn(x.shape, generator=gen, dtype=torch.float64).transpose(-1, -2).contiguous().transpose(-1, -2)
        assert_same(both_paths(x, g, 5, 3, 1.0), torch.float64)


def test_thread_count_does_not_change_results():
    gen = torch.Generator().manual_seed(6)
    x = currents((5, 50, 1000), torch.float32, 1.0, gen)
    g = torch.randn(x.shape, generator=gen)
    old = torch.get_num_threads()
    res = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            a, s = fused_cpu.forward(x, 5, 3, 1.0)
            res.append((a, s, fused_cpu.backward((x,), g, 5, 3, 1.0)))
    finally:
        torch.set_num_threads(old)
    for p, q in zip(*res):
        assert torch.equal(p, q)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(T=st.integers(1, 100), n=st.integers(1, 600), f64=st.booleans(),
       tau_m=st.floats(1.1, 30), tau_s=st.floats(1.1, 10), V=st.sampled_from([1.0, 0.7, 0.1, 1.3, 3.0]),
       seed=st.integers(0, 2**16))
def test_hypothesis_same_on_both_paths(T, n, f64, tau_m, tau_s, V, seed):
    dtype = torch.float64 if f64 else torch.float32
    gen = torch.Generator().manual_seed(seed)
    x = currents((T, n), dtype, V, gen)
    g = torch.randn(x.shape, generator=gen, dtype=dtype)
    assert_same(both_paths(x, g, tau_m, tau_s, V), dtype)


DENSE = """
Network: {n_steps: 5, tau_m: 5, tau_s: 3, loss: kernel, n_class: 10, lr: 0.005, batch_size: 16}
Layers:
  hidden: {type: linear, n_inputs: 64, n_outputs: 80}
  output: {type: linear, n_inputs: 80, n_outputs: 10}
"""
CONV = """
Network: {n_steps: 6, tau_m: 4, tau_s: 2, loss: kernel, n_class: 10, lr: 0.005, batch_size: 16, input_shape: [1, 8, 8]}
Layers:
  conv_1: {type: conv, in_channels: 1, out_channels: 6, kernel_size: 3, padding: 1, threshold: 0.8}
  pooling_1: {type: pooling, kernel_size: 2, theta: 1.1}
  conv_2: {type: conv, in_channels: 6, out_channels: 8, kernel_size: 3}
  fc: {type: linear, n_inputs: 32, n_outputs: 10}
"""


@pytest.mark.parametrize("yaml_text", [DENSE, CONV], ids=["dense", "conv"])
def test_small_nets_train_the_same_on_both_paths(yaml_text):
    """Four AdamW steps from the same weights in float64: the same spikes in every layer at
    every step, and the same weights to 1e-9 after every step."""
    from tsslc.config import parse_config
    from tsslc.data.digits import digits_arrays
    from tsslc.network import Network
    from tsslc.training.trainer import make_optimizer, train_step

    cfg = parse_config(yaml.safe_load(yaml_text), "test")
    xtr, ytr, _, _ = digits_arrays()
    runs = {}
    for impl in ("fused", "reference"):
        torch.manual_seed(0)
        net = Network(cfg).double()
        opt = make_optimizer(net, cfg)
        spikes, weights = [], []
        with neuron_impl(impl):
            for step in range(4):
                x = torch.as_tensor(xtr[16 * step:16 * step + 16], dtype=torch.float64)
                if cfg.layers[0].type == "linear":
                    x = x.reshape(16, -1)
                y = torch.as_tensor(ytr[16 * step:16 * step + 16])
                _, _, rec = net(x, record=True)
                spikes.append({k: v.clone() for k, v in rec.items()})
                train_step(net, opt, x, y, cfg)
                weights.append([p.detach().clone() for p in net.parameters()])
        runs[impl] = (spikes, weights)
    (fs, fw), (rs, rw) = runs["fused"], runs["reference"]
    fired = 0
    for a, b in zip(fs, rs):
        for k in a:
            assert torch.equal(a[k], b[k]), k
            fired += int(a[k].sum())
    assert fired > 0
    for a, b in zip(fw, rw):
        for p, q in zip(a, b):
            assert float((p - q).abs().max()) <= 1e-9 * float(q.abs().max())
    assert any(not torch.equal(p, q) for p, q in zip(fw[0], fw[-1])), "the weights must move"


def test_selecting_the_path(monkeypatch):
    x = torch.rand(5, 10)
    monkeypatch.delenv("TSSLC_NEURON_IMPL", raising=False)
    assert default_neuron_impl() == "fused" and neuron_path(x) == "fused"
    monkeypatch.setenv("TSSLC_NEURON_IMPL", "reference")
    assert neuron_path(x) == "reference"
    with neuron_impl("fused"):
        assert neuron_path(x) == "fused"
    set_neuron_impl("fused")
    try:
        assert neuron_path(x) == "fused"
    finally:
        set_neuron_impl(None)
    assert neuron_path(x.half()) == "reference"  # only float32 and float64 are fused
    monkeypatch.setenv("TSSLC_NEURON_IMPL", "quick")
    with pytest.raises(ValueError, match="TSSLC_NEURON_IMPL.*'quick'"):
        default_neuron_impl()


def _run(code, env_extra, tmp_path):
    import os

    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)


def test_kernel_built_on_first_use_into_the_cache(tmp_path):
    """No installed library: the loader compiles the source into $TSSLC_CACHE_DIR, stamped."""
    code = """
        import torch
        from tsslc import fused_cpu
        from tsslc.csrc import build
        fused_cpu._installed = lambda: []
        lib = fused_cpu.load()
        assert lib is not None, fused_cpu.error
        assert fused_cpu.origin.startswith(%r), fused_cpu.origin
        assert lib.tsslc_src_hash().decode() == build.source_hash()
        print("built", fused_cpu.origin)
    """ % str(tmp_path / "cache")
    p = _run(code, {"TSSLC_CACHE_DIR": str(tmp_path / "cache")}, tmp_path)
    assert p.returncode == 0, p.stderr
    assert list((tmp_path / "cache").glob("tsslbp_cpu-*.so"))


def test_no_compiler_falls_back_to_reference_with_one_line(tmp_path):
    code = """
        import torch
        from tsslc import fused_cpu
        from tsslc.csrc import build
        from tsslc.functional import tssl_lif, neuron_path
        fused_cpu._installed = lambda: []
        build.compiler = lambda: None
        x = torch.rand(5, 30) * 1.5
        a = tssl_lif(x, 5, 3, 1.0, impl="fused")
        b = tssl_lif(x, 5, 3, 1.0, impl="reference")
        assert torch.equal(a, b)
        assert neuron_path(x, "fused") == "reference"
    """
    p = _run(code, {"TSSLC_CACHE_DIR": str(tmp_path / "empty")}, tmp_path)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.strip().splitlines()
    assert lines == ["tsslc: fused neuron unavailable on cpu (no C++ compiler found (set CXX or install g++)); "
                     "using the reference path"], p.stderr


def test_stale_library_is_not_used(tmp_path):
    from tsslc.csrc import build

    path = tmp_path / "lib.so"
    build.build_shared_library(path)
    assert fused_cpu._open(path, build.source_hash()) is not None
    assert fused_cpu._open(path, "0" * 16) is None


def test_setup_py_builds_the_extension(tmp_path):
    """What `pip install` runs (setup.py's optional extension) compiles and loads."""
    p = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path / "lib"),
                        "--build-temp", str(tmp_path / "tmp")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    (so,) = (tmp_path / "lib" / "tsslc").glob("_tsslbp_cpu*.so")
    from tsslc.csrc import build

    assert fused_cpu._open(so, build.source_hash()) is not None


def test_triton_kernels_in_the_interpreter(tmp_path):
    """The CUDA kernels (tsslc/fused_triton.py) run on the CPU through Triton's interpreter
    (TRITON_INTERPRET=1) against the reference path: spikes, PSC, u, Δu bit for bit, the
    gradient to float rounding. The real GPU run is benchmarks/cuda_check.py."""
    import importlib.util

    if importlib.util.find_spec("triton") is None:
        pytest.skip("Triton is not installed (a CUDA build of torch brings it; CPU-only CI has none)")
    code = """
        import torch
        from tsslc import fused_triton as ft
        from tsslc.functional import lif_forward, tsslbp_backward
        ft._kernels = ft._compile()
        gen = torch.Generator().manual_seed(0)
        for dt, tol in ((torch.float32, 2e-5), (torch.float64, 1e-12)):
            for T, N, V in ((1, 5, 1.0), (5, 700, 0.1), (23, 300, 1.5)):
                x = ((torch.rand(T, N, generator=gen, dtype=torch.float64) * 1.6 - 0.3) * V).to(dt)
                g = torch.randn(T, N, generator=gen).to(dt)
                a, s, saved = ft.forward_train(x, 4.0, 3.0, V)
                ra, rs, ru, rdu = lif_forward(x, 4.0, 3.0, V)
                assert torch.equal(a, ra) and torch.equal(s, rs), (dt, T, N)
                assert torch.equal(saved[0], ru) and torch.equal(saved[1], rdu), (dt, T, N)
                d = ft.backward(saved, g, 4.0, 3.0, V)
                rd = tsslbp_backward(g, rs, ru, rdu, ra, 4.0, 3.0, V)
                assert float((d - rd).abs().max()) <= tol * float(rd.abs().max()), (dt, T, N)
        print("ok")
    """
    p = _run(code, {"TRITON_INTERPRET": "1"}, tmp_path)
    assert p.returncode == 0 and "ok" in p.stdout, p.stderr[-3000:]


def test_baseline_instruction_set_is_bit_identical_too(tmp_path, monkeypatch):
    """This machine runs the AVX-512 clone; the x86-64 baseline build (what an old CPU gets)
    must give the same bits."""
    from tsslc.csrc import build

    path = tmp_path / "baseline.so"
    build.build_shared_library(path, ("-DTSSLC_NO_CLONES",))
    lib = fused_cpu._open(path, build.source_hash())
    monkeypatch.setattr(fused_cpu, "_lib", lib)
    gen = torch.Generator().manual_seed(8)
    for dtype in (torch.float32, torch.float64):
        x = currents((7, 3, 301), dtype, 0.1, gen)
        for f, r in zip(fused_cpu.forward(x, 3, 2, 0.1, with_membrane=True), lif_forward(x, 3, 2, 0.1)):
            assert torch.equal(f, r)
        g = torch.randn(x.shape, generator=gen, dtype=dtype)
        a, s, u, du = lif_forward(x, 3, 2, 0.1)
        ref = tsslbp_backward(g.clone(), s, u, du, a, 3, 2, 0.1)
        got = fused_cpu.backward((x,), g, 3, 2, 0.1)
        tol = F64_TOL if dtype == torch.float64 else F32_TOL
        assert float((got - ref).abs().max()) <= tol * float(ref.abs().max())
