"""The fused TSSL-BP neuron on the CPU: loads the compiled kernel (``tsslc/csrc``).

Where the library comes from, first that works:

1. the extension built at install (``pip install .`` / ``-e .`` / a wheel: ``setup.py``),
   if its stamp matches the source beside it;
2. a copy built earlier into the cache folder (``$TSSLC_CACHE_DIR``, else
   ``$XDG_CACHE_HOME/tsslc``, else ``~/.cache/tsslc``), named by the source's hash;
3. a fresh build into that folder with the system's C++ compiler (about a second).

If none works, :func:`load` returns ``None`` and :data:`error` says why in one line; the
caller (:mod:`tsslc.functional`) then runs the reference path.

The same library holds the Loihi 2 integer LIF over all steps (:func:`loihi2_lif`), which
``tsslc.targets.loihi2.Loihi2.run_population`` uses for the integer simulator (without the
library it runs ``neuron_step`` once per step).

:func:`forward`, :func:`forward_train` and :func:`backward` take contiguous time-first ``(T, *neurons)`` float32 or
float64 tensors and use ``torch.get_num_threads()`` OpenMP threads.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
import weakref
from pathlib import Path

import numpy as np
import torch

from tsslc.csrc import build
from tsslc.errors import TsslcError

_lib: ctypes.CDLL | None = None
_tried = False
#: Why the kernel is unavailable (one line), or ``None``.
error: str | None = None
#: Where the loaded library came from ("installed" or the cache path).
origin: str | None = None

_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_D = ctypes.c_double


def cache_dir() -> Path:
    if os.environ.get("TSSLC_CACHE_DIR"):
        return Path(os.environ["TSSLC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tsslc"


def _installed() -> list[Path]:
    """The library built at install, whatever Python version named it (it is loaded through
    ctypes and uses no Python ABI)."""
    here = Path(__file__).resolve().parent
    name = build.MODULE.rsplit(".", 1)[1]
    own = [here / f"{name}{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    return own + sorted(p for p in here.glob(f"{name}.*") if p.suffix in (".so", ".pyd") and p not in own)


def _open(path: Path, want: str | None) -> ctypes.CDLL | None:
    lib = ctypes.CDLL(str(path))
    lib.tsslc_src_hash.restype = ctypes.c_char_p
    if want is not None and lib.tsslc_src_hash().decode() != want:
        return None  # built from another version of the source
    for dt in ("f32", "f64"):
        f = getattr(lib, f"tsslc_forward_{dt}")
        f.argtypes = [_P, _P, _P, _P, _P, _I64, _I64, _D, _D, _D, ctypes.c_int]
        f.restype = None
        b = getattr(lib, f"tsslc_backward_{dt}")
        b.argtypes = [_P, _P, _P, _I64, _I64, _D, _D, _D, ctypes.c_int]
        b.restype = None
    for dt in ("i64", "f32"):
        f = getattr(lib, f"tsslc_loihi2_lif_{dt}")
        f.argtypes = [_P, _I64, _P, _P, _P, _P, _I64, _I64, _I64, _I64, _I64, _I64, ctypes.c_int, ctypes.c_int]
        f.restype = None
    lib.tsslc_loihi2_dense.argtypes = [_P, _I64, _I64, _I64, _P, _P, _D, _P, _I64, _I64, ctypes.c_int, _I64, _I64, _I64,
                                       _I64, _P, _P, _P, _P, _P, _P, _P, _I64, _P, ctypes.c_int]
    lib.tsslc_loihi2_dense.restype = _I64
    lib.tsslc_loihi2_chain.argtypes = [_P, ctypes.c_int, _I64, _D, _D, _I64, _I64, _P, _P, _P, _P, _P, _P, _P, _P,
                                       _P, _P, ctypes.c_int, _P, _I64, _P, _I64, ctypes.c_int]
    lib.tsslc_loihi2_chain.restype = _I64
    lib.tsslc_conv_events.argtypes = [_P, ctypes.c_int, _I64, _I64, _I64, _I64, _P, _P, _I64, _I64, _I64, _I64, _I64,
                                      _I64, _P, ctypes.c_int, _I64, _I64, _P, ctypes.c_int]
    lib.tsslc_conv_events.restype = None
    lib.tsslc_weighted_sums.argtypes = [_P, _P, _I64, _I64, _P]
    lib.tsslc_weighted_sums.restype = None
    lib.tsslc_spike_tally.argtypes = [_P, _I64, _I64, _P, _I64, _P, _I64, _P, _P, _P]
    lib.tsslc_spike_tally.restype = _I64
    lib.tsslc_input_tally.argtypes = [_P, ctypes.c_int, _I64, _I64, _P, _I64, _P, _P]
    lib.tsslc_input_tally.restype = None
    for dt in ("f32", "f64"):
        f = getattr(lib, f"tsslc_graded_{dt}")
        f.argtypes = [_P, _P, _I64, _D, _D]
        f.restype = _I64
    return lib


def load() -> ctypes.CDLL | None:
    """The kernel library, built if need be; ``None`` (and :data:`error`) if it cannot be had."""
    global _lib, _tried, error, origin
    if _tried:
        return _lib
    _tried = True
    want = build.source_hash() if build.SOURCE.exists() else None
    try:
        for path in _installed():
            if path.exists():
                lib = _open(path, want)
                if lib is not None:
                    _lib, origin = lib, "installed"
                    return _lib
        if want is None:
            raise RuntimeError(f"neither an installed kernel nor its source {build.SOURCE} is there")
        path = cache_dir() / f"tsslbp_cpu-{want}.so"
        if not path.exists():
            build.build_shared_library(path)
        _lib, origin = _open(path, want), str(path)
        if _lib is None:
            raise RuntimeError(f"{path} does not match its source")
    except (OSError, RuntimeError) as e:
        _lib, error = None, " ".join(str(e).split())
    return _lib


def _ptr(t: torch.Tensor):
    return ctypes.c_void_p(t.data_ptr())


def _dims(x: torch.Tensor) -> tuple[int, int]:
    return x.shape[0], x.numel() // x.shape[0] if x.shape[0] else 0


def _suffix(x: torch.Tensor) -> str:
    return "f32" if x.dtype == torch.float32 else "f64"


def forward(x: torch.Tensor, tau_m: float, tau_s: float, threshold: float, with_membrane: bool = False):
    """§1 on a contiguous ``x``: ``(a, s)``, or ``(a, s, u, du)`` with ``with_membrane``."""
    lib = load()
    T, N = _dims(x)
    a, s = torch.empty_like(x), torch.empty_like(x)
    u = du = None
    if with_membrane:
        u, du = torch.empty_like(x), torch.empty_like(x)
    getattr(lib, f"tsslc_forward_{_suffix(x)}")(
        _ptr(x), _ptr(a), _ptr(s), _ptr(u) if u is not None else None, _ptr(du) if du is not None else None,
        T, N, float(tau_m), float(tau_s), float(threshold), torch.get_num_threads())
    return (a, s, u, du) if with_membrane else (a, s)


def forward_train(x: torch.Tensor, tau_m: float, tau_s: float, threshold: float):
    """``(a, s, saved)``: the outputs and what :func:`backward` needs (only ``x``)."""
    a, s = forward(x, tau_m, tau_s, threshold)
    return a, s, (x,)


def backward(saved, g: torch.Tensor, tau_m: float, tau_s: float, threshold: float) -> torch.Tensor:
    """§5: δ = ∂L/∂x from ``saved`` = (x,) and ``g`` = ∂L/∂a (both contiguous): the kernel
    recomputes the forward of each block of neurons, then sweeps back over time."""
    (x,) = saved
    lib = load()
    T, N = _dims(x)
    delta = torch.empty_like(x)
    getattr(lib, f"tsslc_backward_{_suffix(x)}")(
        _ptr(x), _ptr(g), _ptr(delta), T, N, float(tau_m), float(tau_s), float(threshold), torch.get_num_threads())
    return delta


def loihi2_lif(current: torch.Tensor, uv: torch.Tensor | None, du: int, dv: int, vth: int, bias: int,
               with_float: bool = False, fresh: bool = False):
    """The Loihi 2 LIF (``targets/loihi2.md`` §1) over all steps of ``current`` ``(T, ...)``
    (int64, or float32 holding exact integers below 2^31 in magnitude; each step's values
    contiguous, the time stride that of a contiguous tensor or 0: the same current every
    step); ``uv`` ``(2, N)`` int64 contiguous, the state u and v, updated in place
    (``fresh``: starting from zero, whatever ``uv`` holds; ``uv`` may then be None: the final
    state is not kept). Returns the spikes (``current``'s shape, uint8) and, with
    ``with_float``, the same as float32 (else ``None``); ``None`` without the kernel."""
    lib = _lib if _tried else load()
    if lib is None:
        return None
    shape = current.shape
    T = shape[0]
    N = current.numel() // T if T else 0
    if T > 1 and current.stride(0) == 0:
        if not current[0].is_contiguous():
            current = current.contiguous()
    elif not current.is_contiguous():
        current = current.contiguous()
    stride = 0 if T > 1 and current.stride(0) == 0 else N
    # numpy's allocations are several times cheaper than torch.empty on small tensors
    s8 = torch.from_numpy(np.empty(shape, np.uint8))
    sf = torch.from_numpy(np.empty(shape, np.float32)) if with_float else None
    fn = lib.tsslc_loihi2_lif_f32 if current.dtype == torch.float32 else lib.tsslc_loihi2_lif_i64
    u = uv.data_ptr() if uv is not None else None
    fn(current.data_ptr(), stride, u, None if u is None else u + 8 * N, s8.data_ptr(),
       sf.data_ptr() if sf is not None else None, T, N, du, dv, vth, bias, int(fresh or uv is None),
       torch.get_num_threads())
    return s8, sf


def loihi2_dense(a: torch.Tensor, n_steps: int, wt: torch.Tensor, wr: torch.Tensor | None, scale: float,
                 mask: torch.Tensor | None, zmax: int, floor: bool, du: int, dv: int, vth: int, bias: int,
                 count: bool = False, out_shape=None, fan: np.ndarray | None = None, M: np.ndarray | None = None):
    """One dense Loihi 2 layer of one sample, synapse and population in one compiled pass
    (streaming): ``a`` ``(T_in, ...)`` float32 exact integers, the synapse's input, N_in per
    step (``T_in`` = 1: the same at every one of the ``n_steps`` steps), ``wt``
    ``(N_in, N_out)`` float32 the weights (``wr``: the same ``(N_out, N_in)``, or None: read
    for the steps whose inputs are mostly active), ``scale`` = 2^weight_exp, every partial sum
    proven an integer below 2^24 and the scaled sum below 2^31 (``floor``: the scaled sum
    floored, a negative exponent); the LIF from the zero state.
    Returns ``(s8, sf, ns, active, stats, hist, vals)``: spikes uint8 and float32 (shape
    ``out_shape``, default ``(T, N_out)``), and with ``count`` the spikes per neuron (int64),
    the active neuron updates (a step with an event — an active input on a non-zero ``mask``
    ``(N_in, N_out)`` uint8 entry, more active inputs than ``zmax`` always — or a spike) and
    the neurons by spike count 0..T (a list); with ``fan`` (int64 per input, contiguous) also
    the input's counts per input step ``(T_in, 3)`` int64: active inputs, Σ fan over them, the
    MACs among those (all of them when one active input is not ±1, else 0) (else None); with
    ``M`` ``(N_out, k)`` float64 (counting) the spikes per neuron times ``M`` (a list, else
    None). ``None`` without the kernel."""
    lib = _lib if _tried else load()
    if lib is None:
        return None
    if a.dtype != torch.float32 or not a.is_contiguous():
        a = a.to(torch.float32).contiguous()
    t_in = a.shape[0]
    n_in = a.numel() // t_in if t_in else 0
    n_out = wt.shape[1]
    shape = out_shape or (n_steps, n_out)
    s8 = torch.from_numpy(np.empty(shape, np.uint8))
    sf = torch.from_numpy(np.empty(shape, np.float32))
    stats = np.empty((t_in, 3), np.int64) if fan is not None else None
    k = M.shape[1] if count and M is not None else 0
    if k:
        M = _float64(M)
    if count:  # one buffer for the counts: ns (N_out), hist (T + 1), then the product (k, float64)
        buf = np.empty(n_out + n_steps + 1 + k, np.int64)
        base = _np_addr(buf)
        ns_a, hist_a, vals_a = base, base + 8 * n_out, base + 8 * (n_out + n_steps + 1)
    else:
        ns_a = hist_a = vals_a = None
    active = lib.tsslc_loihi2_dense(a.data_ptr(), t_in, n_steps, n_in, wt.data_ptr(),
                                    None if wr is None else wr.data_ptr(), scale,
                                    mask.data_ptr() if count else None, zmax, n_out, int(floor), du, dv, vth, bias,
                                    s8.data_ptr(), sf.data_ptr(), ns_a,
                                    None if fan is None else _np_addr(fan),
                                    None if fan is None else _np_addr(stats), hist_a,
                                    _address(M) if k else None, k, vals_a, torch.get_num_threads())
    if active == -2:
        raise _no_memory(n_steps, n_out)
    if not count:
        return s8, sf, None, None, stats, None, None
    return (s8, sf, buf[:n_out], int(active), stats, buf[n_out:n_out + n_steps + 1].tolist(),
            buf[n_out + n_steps + 1:].view(np.float64).tolist() if k else None)


def _no_memory(n_steps: int, n_out: int) -> TsslcError:
    return TsslcError(f"not enough memory for a streamed layer's buffers ({n_steps} steps x {n_out} neurons)")


class Loihi2Chain:
    """A network of dense Loihi 2 layers for one static graded sample in one compiled call
    (streaming): the input's graded payloads, then each layer as :func:`loihi2_dense`.
    ``specs``: per layer a function giving ``(wt, wr, scale, mask, zmax, floor, du, dv, vth,
    bias)`` as :func:`loihi2_dense` takes them (``mask`` not None: every layer counts). The
    arrays that describe the layers are made on the first call (so a plan that never
    streams does not hold them); a call allocates one buffer for all its outputs."""

    def __init__(self, specs: list):
        self._specs = specs
        self.L = len(specs)
        self.specs: list | None = None  # the layers' arrays, kept alive while the chain lives
        self._layouts: dict = {}

    def _ready(self) -> None:
        specs = self.specs = [f() for f in self._specs]
        self.n_out = [int(sp[0].shape[1]) for sp in specs]
        self.ip = np.array([[sp[0].shape[0], sp[0].shape[1], sp[4], int(sp[5]), *sp[6:]] for sp in specs], np.int64)
        self.scales = np.array([sp[2] for sp in specs], np.float64)
        self.ptrs = np.array([[sp[0].data_ptr(), 0 if sp[1] is None else sp[1].data_ptr(), sp[3].data_ptr()]
                              for sp in specs], np.uint64)
        self._addr = (self.ip.ctypes.data, self.scales.ctypes.data, self.ptrs.ctypes.data)

    def matrices(self, mats: list, fan: np.ndarray, filing=None) -> tuple:
        """What counting needs, made ready for the kernel once (:meth:`__call__`'s
        ``mats``): per layer a float64 matrix (N_out, k) or None, and the input's fan-out
        (int64 per input); ``filing`` (every layer with its matrix): a function of the step
        count T giving ``(per layer [(source, index, weight)], the input's [(source, index,
        weight)], size)``, how the kernel makes the counters' totals itself
        (:meth:`tsslc.backends.counters.CountPlan.filing`: sources ``("vals", c)``,
        ``("hist", k)``, ``("active",)``, ``("in", j)``, ``("one",)``), ``size`` of them."""
        if self.specs is None:
            self._ready()
        keep = [None if m is None else np.ascontiguousarray(m, dtype=np.float64) for m in mats]
        fan = np.ascontiguousarray(fan, dtype=np.int64)
        ptrs = np.array([0 if m is None else m.ctypes.data for m in keep], np.uint64)
        ks = np.array([0 if m is None else m.shape[1] for m in keep], np.int64)
        if filing is not None and any(m is None for m in keep):
            raise ValueError("filing needs every layer's matrix")
        return ((keep, fan, ptrs, ks), ptrs.ctypes.data, ks.ctypes.data, tuple(ks.tolist()), fan.ctypes.data,
                filing, {})

    def _layout(self, T: int, ks: tuple, n_packed: int = 0):
        """Where a call's outputs go in its one buffer: the spikes (T, N) uint8 of every layer,
        then (at a multiple of 8) an int64 region: the active updates (L), the input's counts
        (3), per layer its neurons by spike count (T + 1) (the small numbers, read back as one
        list), then per layer its spikes per neuron (N, read back as arrays); then a float64
        region: per layer its product with its matrix (k); then the filed totals (int64,
        ``n_packed``). Byte offsets for the kernel (4 a layer), element offsets for reading
        the regions back."""
        lay = self._layouts.get((T, ks, n_packed))
        if lay is None:
            spikes, pos = [], 0
            for n in self.n_out:
                spikes.append(pos)
                pos += T * n
            i_base = (pos + 7) // 8 * 8
            hists, pos = [], self.L + 3
            for _ in self.n_out:
                hists.append(pos)
                pos += T + 1
            small = pos
            ints = []
            for n, h in zip(self.n_out, hists):
                ints.append((pos, pos + n, h))
                pos += n
            f_base = i_base + 8 * pos
            flts, fpos = [], 0
            for k in ks:
                flts.append((fpos, fpos + k))
                fpos += k
            p_base = f_base + 8 * fpos
            offs = []
            for s8, (ns, _, hist), (vals, _) in zip(spikes, ints, flts):
                offs += [s8, i_base + 8 * ns, i_base + 8 * hist, f_base + 8 * vals]
            arr = np.array(offs, np.int64)
            lay = self._layouts[(T, ks, n_packed)] = (arr, arr.ctypes.data, p_base + 8 * n_packed, spikes, i_base,
                                                      f_base, ints, flts, small, p_base)
        return lay

    def _file(self, T: int, ks: tuple, filing) -> tuple:
        """The kernel's filing rows (:meth:`matrices`) for T steps: ``(rows (nf, 4) int64, its
        address, nf, size)``."""
        per_layer, inp, size = filing
        _, _, _, _, i_base, f_base, ints, flts, _, _ = self._layout(T, ks, size)
        rows = []
        for l, fl in enumerate(per_layer):
            where = {"vals": lambda c, l=l: (f_base + 8 * (flts[l][0] + c), 1),
                     "hist": lambda k, l=l: (i_base + 8 * (ints[l][2] + k), 0),
                     "active": lambda l=l: (i_base + 8 * l, 0), "one": lambda: (0, 2)}
            rows += [(*where[src[0]](*src[1:]), i, w) for src, i, w in fl]
        where = {"in": lambda j: (i_base + 8 * (self.L + j), 0), "one": lambda: (0, 2)}
        rows += [(*where[src[0]](*src[1:]), i, w) for src, i, w in inp]
        arr = np.array(rows, np.int64).reshape(-1, 4)
        return arr, arr.ctypes.data, len(rows), size

    def __call__(self, x: torch.Tensor, scale: float, lim: int, n_steps: int, mats: tuple | None = None):
        """``x`` one contiguous CPU float32/float64 sample; ``mats``: counting, what
        :meth:`matrices` made; ``(layers, stats, packed)`` with per layer ``(spikes (T, 1, N)
        uint8 numpy array, spikes per neuron (an int64 array), active updates, neurons by
        spike count 0..T, spikes per neuron times its matrix)`` (counting; else the last four
        None; the product None for a layer without a matrix) and the input's counts
        ``[(active inputs, synops, MACs)]`` (counting) or None; with a filing (counting,
        :meth:`matrices`) the counters' totals made by the kernel as ``packed`` (int64), the
        active updates, input's counts and products then left out (None, read from
        ``packed``) and the neurons by spike count an int64 array; else ``packed`` None.
        ``None`` when ``x`` holds a NaN (the caller's reference path decides its payload) or
        without the kernel."""
        lib = _lib if _tried else load()
        if lib is None or lim >= 1 << 24:
            return None
        if self.specs is None:
            self._ready()
        T, L = n_steps, self.L
        count = mats is not None
        ks = mats[3] if count else (0,) * L
        filing = mats[5] if count else None
        fl = None
        if filing is not None:
            fl = mats[6].get(T)
            if fl is None:
                fl = mats[6][T] = self._file(T, ks, filing(T))
        # the offsets' array itself stays in the cache
        _, offs_addr, total, spikes, i_base, f_base, ints, flts, small, p_base = self._layout(
            T, ks, fl[3] if fl is not None else 0)
        buf = np.empty(total, np.uint8)
        base = torch.from_numpy(buf).data_ptr()
        ip, sc, pt = self._addr
        rc = lib.tsslc_loihi2_chain(x.data_ptr(), int(x.dtype == torch.float64), x.numel(), float(scale), float(lim),
                                    T, L, ip, sc, pt, mats[4] if count else None, base + i_base + 8 * L, base,
                                    offs_addr, base + i_base, mats[1] if count else None, mats[2] if count else None,
                                    int(count), fl[1] if fl is not None else None, fl[2] if fl is not None else 0,
                                    base + p_base, fl[3] if fl is not None else 0, torch.get_num_threads())
        if rc == -2:
            raise _no_memory(T, max(self.n_out))
        if rc:
            return None
        # numpy arrays: a streaming call's spikes go back to the caller as numpy anyway, and
        # numpy's slicing costs less than torch's on these small pieces
        s8 = [buf[o: o + T * n].reshape(T, 1, n) for o, n in zip(spikes, self.n_out)]
        if not count:
            return [(s, None, None, None, None) for s in s8], None, None
        iv = buf[i_base:f_base].view(np.int64)
        if fl is not None:  # the kernel filed the totals: the per-neuron arrays only
            layers = [(s, iv[a:b], None, iv[h:h + T + 1], None) for s, (a, b, h) in zip(s8, ints)]
            return layers, None, buf[p_base:total].view(np.int64)
        # the small counts as Python numbers in one conversion, then sliced; the spikes per
        # neuron as arrays (views of this call's own buffer)
        i64 = iv[:small].tolist()
        f64 = buf[f_base:p_base].view(np.float64).tolist()
        layers = [(s, iv[a:b], act, i64[h:h + T + 1], f64[d:e] if e > d else None)
                  for s, act, (a, b, h), (d, e) in zip(s8, i64, ints, flts)]
        return layers, [i64[L:L + 3]], None


def conv_events(act: torch.Tensor, mask: torch.Tensor, current: torch.Tensor | None, stride: int, padding: int,
                groups: int, out_hw: tuple[int, int]) -> np.ndarray | None:
    """Which output positions of a convolution receive at least one synaptic event
    (:class:`tsslc.backends.counters.Tally`): ``act`` ``(F, C, H, W)`` the frames' inputs
    (non-zero: active; float32 read as it is, uint8 / bool spikes as bytes, else made
    float32), ``mask`` ``(O, C / groups, kh, kw)`` the non-zero weights (non-zero: a
    synapse), ``current`` ``(F, O, Ho, Wo)`` the synapse's current (exact integers, float32
    or int64) or None (non-zero proves an event). ``(F, O, Ho, Wo)`` bool, or None without
    the kernel (CPU tensors only)."""
    lib = _lib if _tried else load()
    if lib is None:
        return None
    u8 = act.dtype in (torch.uint8, torch.bool)
    act = (act if u8 or act.dtype == torch.float32 else act.to(torch.float32)).contiguous()
    F_, C, H, W = act.shape
    O, _, kh, kw = mask.shape
    Ho, Wo = out_hw
    kind = 0
    if current is not None:
        if current.dtype not in (torch.float32, torch.int64):
            current = current.to(torch.int64)
        current = current.contiguous()
        kind = 1 if current.dtype == torch.float32 else 2
    zoff, zidx = _zero_weights(mask)
    hit = np.empty((F_, O, Ho, Wo), np.bool_)
    lib.tsslc_conv_events(act.data_ptr(), int(u8), F_, C, H, W, _np_addr(zoff), _np_addr(zidx), O, kh, kw,
                          int(stride), int(padding), int(groups), None if current is None else current.data_ptr(),
                          kind, Ho, Wo, _np_addr(hit), torch.get_num_threads())
    return hit


#: id -> (weak reference to the mask, offsets, indices) of the zero weights of the conv masks
#: seen (the reference tells a reused id; a dead mask holds nothing)
_zeros_of: dict = {}


def _zero_weights(mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The zero weights of each output channel of a conv ``mask`` ``(O, Cg, kh, kw)``:
    offsets ``(O + 1,)`` int64 into the flat ``(c, ky, kx)`` indices ``int32`` of them, made
    once per mask tensor."""
    hit = _zeros_of.get(id(mask))
    if hit is not None and hit[0]() is mask:
        return hit[1], hit[2]
    z = (mask.detach().cpu().reshape(mask.shape[0], -1) == 0).numpy()
    rows, cols = np.nonzero(z)
    zoff = np.zeros(mask.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=mask.shape[0]), out=zoff[1:])
    zidx = np.ascontiguousarray(cols, dtype=np.int32)
    if len(_zeros_of) > 256:  # plans come and go: forget the oldest
        _zeros_of.pop(next(iter(_zeros_of)))
    _zeros_of[id(mask)] = (weakref.ref(mask), zoff, zidx)
    return zoff, zidx


def weighted_sums(w: np.ndarray, M: np.ndarray) -> list | None:
    """``w @ M`` for an integer vector ``w`` and an ``(n, k)`` ``M`` (made int64 and C-contiguous
    float64 if need be; exact integers below 2^53) as a list, on one thread (numpy's product goes to a threaded BLAS,
    whose threads cost far more than such small products); None without the kernel."""
    lib = _lib if _tried else load()
    if lib is None:
        return None
    if w.dtype != np.int64 or not w.flags.c_contiguous:
        w = np.ascontiguousarray(w, dtype=np.int64)
    if M.dtype != np.float64 or not M.flags.c_contiguous:
        M = np.ascontiguousarray(M, dtype=np.float64)
    out = np.empty(M.shape[1], np.float64)
    lib.tsslc_weighted_sums(_np_addr(w), _np_addr(M), M.shape[0], M.shape[1], _np_addr(out))
    return out.tolist()


def spike_tally(fired: np.ndarray, events: np.ndarray | None, M: np.ndarray | None):
    """One sample's population counts (:meth:`tsslc.backends.counters.Tally.population`) in one
    pass: ``fired`` ``(T, n)`` its spikes (uint8, non-zero: a spike), ``events`` ``(1 | T, n)``
    uint8/bool the neurons receiving a synaptic event (one row: the same at every step) or
    None (none), ``M`` ``(n, k)`` float64 (:meth:`~tsslc.backends.counters.CountPlan.tally_matrix`)
    or None. Returns ``(spikes per neuron int64 array, neurons by spike count 0..T (list),
    active updates (an event or a spike), spikes per neuron @ M (list, or None))``, or None
    without the kernel."""
    lib = _lib if _tried else load()
    if lib is None:
        return None
    T, n = fired.shape
    if isinstance(fired, torch.Tensor):
        fired = fired.contiguous()
        if fired.dtype not in (torch.uint8, torch.bool) or fired.device.type != "cpu":
            raise ValueError(f"spikes of dtype {fired.dtype} on {fired.device}")
        f_addr = fired.data_ptr()
    else:
        fired = np.ascontiguousarray(fired).view(np.uint8)
        f_addr = _np_addr(fired)
    e_addr = None
    if events is not None:
        events = np.ascontiguousarray(events).view(np.uint8)
        if events.shape[1:] != (n,) or events.shape[0] not in (1, T):
            raise ValueError(f"events of shape {events.shape} for spikes of shape {(T, n)}")
        e_addr = _np_addr(events)
    k, m_addr = 0, None
    if M is not None:
        if M.shape[0] != n:
            raise ValueError(f"a tally matrix of shape {M.shape} for {n} neurons")
        M = _float64(M)
        k, m_addr = M.shape[1], _address(M)
    # one buffer for every output: ns (n), hist (T + 1), then the product (k, float64)
    buf = np.empty(n + T + 1 + k, np.int64)
    a = _np_addr(buf)
    active = lib.tsslc_spike_tally(f_addr, T, n, e_addr, 0 if events is None else events.shape[0], m_addr, k, a,
                                   a + 8 * n, a + 8 * (n + T + 1))
    return (buf[:n], buf[n:n + T + 1].tolist(), int(active),
            buf[n + T + 1:].view(np.float64).tolist() if M is not None else None)


_INPUT_KINDS = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.int64): 2}


def input_tally(x: np.ndarray, MT: np.ndarray, rows: int = 1):
    """Input values ``x`` (``rows`` steps or samples of ``x.size / rows`` values each) counted
    (:meth:`tsslc.backends.counters.Tally.input`): ``(counts, sums)``, ``counts`` ``(rows, 2)``
    int64 per row its active values and 1 when one of them is not ±1 (the step counts MACs),
    ``sums`` ``(rows, k)`` float64 the rows of ``MT`` ``(k, values per row)`` summed over its
    active values (each projection's synaptic operations; exact). None without the kernel or
    for another dtype than float32, float64, int64."""
    lib = _lib if _tried else load()
    kind = _INPUT_KINDS.get(x.dtype)
    if lib is None or kind is None:
        return None
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    n = x.size // rows if rows else 0
    if rows < 0 or n * rows != x.size or MT.ndim != 2 or MT.shape[1] != n:
        raise ValueError(f"a fan-out matrix of shape {MT.shape} for {rows} rows of {x.size} inputs")
    k = MT.shape[0]
    MT = _float64(MT)
    buf = np.empty(rows * (2 + k), np.int64)
    a = _np_addr(buf)
    lib.tsslc_input_tally(_np_addr(x), kind, rows, n, _address(MT), k, a, a + 16 * rows)
    return buf[:2 * rows].reshape(rows, 2), buf[2 * rows:].view(np.float64).reshape(rows, k)


#: id -> (weak reference to the array, address) of the matrices the kernels read, each call
#: (the reference tells a reused id; a dead array holds nothing)
_addresses: dict = {}


def _np_addr(a: np.ndarray) -> int:
    """The address of a C-contiguous numpy array's data: through a ctypes view of its buffer
    (~0.5 µs) rather than ``a.ctypes.data`` (~2 µs, several per streaming call); a read-only
    or empty array takes the slow way."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data


def _float64(M: np.ndarray) -> np.ndarray:
    """``M`` as a C-contiguous float64 array (itself when it is one)."""
    return M if M.dtype == np.float64 and M.flags.c_contiguous else np.ascontiguousarray(M, dtype=np.float64)


def _address(M: np.ndarray) -> int:
    """The address of a C-contiguous float64 ``M`` (:func:`_float64`), remembered: numpy's
    ``ctypes.data`` costs ~1 µs, much of a streaming call's counting, and the count plan's
    matrices are read every call."""
    hit = _addresses.get(id(M))
    if hit is not None and hit[0]() is M:
        return hit[1]
    if M.dtype != np.float64 or not M.flags.c_contiguous:
        raise ValueError(f"a C-contiguous float64 matrix, not {M.dtype}")
    if len(_addresses) > 1024:  # plans come and go: forget the oldest
        _addresses.pop(next(iter(_addresses)))
    _addresses[id(M)] = (weakref.ref(M), M.ctypes.data)
    return _addresses[id(M)][1]


def graded(x, scale: float, lim: int):
    """The graded payloads of :meth:`tsslc.targets.base.Target.input_spikes` on a CPU float32
    or float64 array / tensor ``x``, bit for bit, as a float32 tensor of its shape (exact:
    ``lim`` < 2^24); ``None`` without the kernel, for another dtype or when ``x`` holds a NaN
    (the caller's reference path then decides)."""
    lib = _lib if _tried else load()
    if lib is None or lim >= 1 << 24:
        return None
    if isinstance(x, torch.Tensor):
        if x.dtype not in (torch.float32, torch.float64):
            return None
        if not x.is_contiguous():
            x = x.contiguous()
        f32, ptr = x.dtype == torch.float32, x.data_ptr()
    else:
        if x.dtype not in (np.float32, np.float64):
            return None
        x = np.ascontiguousarray(x)
        f32, ptr = x.dtype == np.float32, _np_addr(x)
    out = torch.from_numpy(np.empty(x.shape, np.float32))
    fn = lib.tsslc_graded_f32 if f32 else lib.tsslc_graded_f64
    if fn(ptr, out.data_ptr(), out.numel(), float(scale), float(lim)):
        return None
    return out
