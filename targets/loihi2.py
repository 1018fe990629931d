"""Loihi 2 as Lava's fixed-point models compute it (``targets/loihi2.md`` states the
equations; this module implements them once, vectorised on torch int64).

Bit-exact with lava-nc 0.10.0 ``PyLifModelBitAcc`` (LIF), ``PyDenseModelBitAcc`` (Dense,
binary or graded input) and ``PyConvModelFixed`` (Conv), including Lava's int32 message
and state storage, on the float model's time axis (Lava adds ``latency_per_hop`` = 1 step
per synapse layer, which the Lava back end removes when it aligns spikes).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F

from tsslc import fused_cpu
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.neurons import LOIHI2_DU_MAX, LOIHI2_DV_MAX, LOIHI2_VTH_MAX, Loihi2LIF
from tsslc.targets.base import NO_CONTEXT, exact_float, full_float32
from tsslc.targets.base import CoreGeometry, CoreMemory, EnergyFigure, EnergyTable, LayerStats, NumberFormat, QuantizedLayer, Target

# --- constants of the arithmetic (loihi2.md §1) --------------------------------------------
DECAY_BITS = 12
DECAY_UNITY = 1 << DECAY_BITS  # 4096
ACT_SHIFT = 6  # synaptic input a is MSB-aligned: a << 6
VTH_SHIFT = 6  # threshold vth << 6
UV_BITS = 24
UV_MAX = 1 << (UV_BITS - 1)  # 2^23
V_LIMIT = UV_MAX - 1  # v clipped to ±(2^23 − 1)
VTH_MAX = LOIHI2_VTH_MAX  # 17-bit unsigned (the ranges of the neuron's fields: tsslc.ir.neurons.Loihi2LIF)
DU_MAX, DV_MAX = LOIHI2_DU_MAX, LOIHI2_DV_MAX  # 12-bit unsigned
WEIGHT_EXP_RANGE = (-8, 7)  # the Dense weight exponent tsslc emits
W_MIN, W_MAX = -256, 254  # 8-bit mixed-sign weights as Dense keeps them (even)
_I32 = 1 << 32


def wrap32(x: torch.Tensor) -> torch.Tensor:
    """Two's-complement wrap of an int64 tensor to int32 (Lava's int32 storage)."""
    return ((x + (1 << 31)) & (_I32 - 1)) - (1 << 31)


def dense_weights(w) -> np.ndarray:
    """The weights Lava's Dense really uses (weightutils, num_weight_bits=8): sign mode from
    the matrix (all ≥ 0 excitatory, all ≤ 0 inhibitory, else mixed); clip to [0, 255],
    [−255, 0] or [−256, 255]; mixed drops the lowest bit by a floor shift (even values)."""
    w = np.asarray(w).astype(np.int64)
    if w.size == 0:
        return w
    if w.min() >= 0:
        return np.clip(w, 0, 255)
    if w.max() <= 0:
        return np.clip(w, -255, 0)
    return (np.clip(w, -256, 255) >> 1) << 1


def _shift(acc: torch.Tensor, exp: int) -> torch.Tensor:
    return acc << exp if exp > 0 else acc >> (-exp)


def wrap24(x: torch.Tensor) -> torch.Tensor:
    """Signed 24-bit wrap (Lava Conv's signed_clamp)."""
    return ((x + UV_MAX) & ((1 << UV_BITS) - 1)) - UV_MAX


def _round_even(x: np.ndarray) -> np.ndarray:
    """Nearest even integer (ties away from zero on the half-grid)."""
    h = x / 2.0
    return (2 * (np.sign(h) * np.floor(np.abs(h) + 0.5))).astype(np.int64)


def _current_error(w_int: np.ndarray, raw: np.ndarray, gram: np.ndarray) -> float:
    """RMS of the current error (W_int - W)·a over the calibration inputs, relative to the
    RMS of the current W·a itself (from the Gram matrix Σ a aᵀ)."""
    e = w_int - raw
    num = float(np.sum((e @ gram) * e))
    den = float(np.sum((raw @ gram) * raw))
    return float(np.sqrt(max(num, 0.0) / den)) if den > 0 else 0.0


def _gptq_round(raw: np.ndarray, gram: np.ndarray, damp: float = 0.01) -> np.ndarray:
    """Round the weights ``raw`` (out × in, in integer steps; a conv's kernels flattened to
    one row per output channel) to the even 8-bit grid
    one input column at a time, pushing each column's rounding error onto the columns not
    yet rounded so that the current error ``(W_int - W)·a`` stays small over the
    calibration inputs (Gram matrix ``Σ a aᵀ``): GPTQ (Frantar et al., ICLR 2023) /
    Optimal Brain Quantization, with the Cholesky form of the inverse Hessian."""
    W = raw.astype(np.float64).copy()
    n = W.shape[1]
    H = gram.astype(np.float64) / max(float(np.trace(gram)) / n, 1e-30)
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    H += damp * np.mean(np.diag(H)) * np.eye(n)
    Hinv = np.linalg.cholesky(np.linalg.inv(H)).T  # upper Cholesky factor of H⁻¹
    Q = np.zeros(W.shape, dtype=np.int64)
    for j in range(n):
        q = np.clip(_round_even(W[:, j]), W_MIN, W_MAX)
        Q[:, j] = q
        err = (W[:, j] - q) / Hinv[j, j]
        W[:, j + 1:] -= np.outer(err, Hinv[j, j + 1:])
    return Q


class Loihi2(Target):
    name = "loihi2"
    description = "Intel Loihi 2 through Lava 0.10 fixed-point LIF/Dense/Conv (bit-accurate models)"
    doc_file = "loihi2.md"
    geometry = CoreGeometry(neurons_per_core=8192, axons_per_core=None, max_fan_in=None, max_fan_out=None, n_cores=128)
    #: loihi2.md §3: 192 KB per neuro core for synapses and neuron state (Intel's brief;
    #: unconfirmed here), 8-bit synapses, 64 bits of state per LIF neuron (u, v 24-bit,
    #: bias 13-bit in a 16-bit word: a model, not a published figure)
    memory = CoreMemory(
        bytes_per_core=192 * 1024, neuron_state_bits=64, synapse_bits=8, shared_conv_weights=True,
        source="Intel, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', technology brief (2021): "
               "128 neuro cores, up to 8,192 neurons per core, 192 KB of memory per core shared flexibly by "
               "synapses, neuron state and configuration (192 KB: unconfirmed here, see targets/loihi2.md)",
        note="synapses at 8 bits (a dense neuron's non-zero weights; a conv kernel once per core and output "
             "channel) + 64 bits of LIF state per neuron; axon, routing and sparse-index tables are not modelled "
             "(no published sizes)",
    )
    formats = NumberFormat(
        weight_bits=8,
        weight_encoding="8-bit mixed-sign, even values in [-256, 254] (Dense drops the lowest bit), "
        "Dense current (W·s) << weight_exp, weight_exp in [-8, 7]; Conv: same weights, weight_exp = 0",
        state_bits={"u": 24, "v": 24, "vth": 17, "du": 12, "dv": 12, "bias_mant": 13, "message": 32},
        overflow={"u": "wrap", "v": "saturate", "conv_current": "wrap", "message": "wrap"},
        decay="12-bit: u·(4096-(du+1)) and v·(4096-dv), then >>12 rounding toward zero",
    )
    latency_per_hop = 1
    neuron_type = Loihi2LIF
    input_bits = 8
    uses_input_gram = True  # GPTQ rounding and the current-error report
    #: calibrated |u|, |v| must stay below 2^23 / headroom
    headroom = 2.0
    #: the Dense weight exponents the quantizer may choose (loihi2.md §4)
    dense_exp_range = WEIGHT_EXP_RANGE
    variants = {
        "netx": "every Dense weight_exp = 0 (as Conv), so that lava-dl netx, which recomputes the exponent from "
                "the integer weights, runs the exported .net file exactly as intsim (loihi2.md §6)",
    }
    energy = EnergyTable(
        "loihi2",
        (
            EnergyFigure("synaptic_op", 23.6, "pJ", "Davies et al., IEEE Micro 2018, Table 2 (Loihi 1, min.)",
                         "per-term", "simulated", "Intel 14 nm", "pre-silicon at 0.75 V; no Loihi 2 per-op "
                         "table has been published, Loihi 1's figures stand in", "synaptic_events"),
            EnergyFigure("neuron_update_active", 81.0, "pJ", "Davies et al., IEEE Micro 2018, Table 2 (Loihi 1)",
                         "per-term", "simulated", "Intel 14 nm", "pre-silicon at 0.75 V; Loihi 1 stand-in",
                         "active_neuron_updates"),
            EnergyFigure("neuron_update_inactive", 52.0, "pJ", "Davies et al., IEEE Micro 2018, Table 2 (Loihi 1)",
                         "per-term", "simulated", "Intel 14 nm", "pre-silicon at 0.75 V; Loihi 1 stand-in; "
                         "applies to neuron_updates - active_neuron_updates", "inactive_neuron_updates"),
            EnergyFigure("spike_in_tile", 1.7, "pJ", "Davies et al., IEEE Micro 2018, Table 2 (Loihi 1)",
                         "per-term", "simulated", "Intel 14 nm", "pre-silicon; Loihi 1 stand-in", "spikes"),
            EnergyFigure("tile_hop_ew", 3.0, "pJ", "Davies et al., IEEE Micro 2018, Table 2 (Loihi 1)",
                         "per-term", "simulated", "Intel 14 nm", "per east-west hop of a spike; Loihi 1 stand-in"),
            EnergyFigure("tile_hop_ns", 4.0, "pJ", "Davies et al., IEEE Micro 2018, Table 2 (Loihi 1)",
                         "per-term", "simulated", "Intel 14 nm", "per north-south hop of a spike; Loihi 1 stand-in"),
        ),
        note="Per-term minimum prices: total = synaptic ops + neuron updates + spike transport. "
        "Not comparable with all-in figures such as TrueNorth's 26 pJ per synaptic event.",
        stand_in="Loihi 1 figures (Davies et al. 2018): no Loihi 2 per-op energy has been published",
    )

    def _make_variant(self, name: str) -> "Loihi2":
        out = copy.copy(self)
        out.variant_name = name
        out.dense_exp_range = (0, 0)  # "netx", the one variant
        return out

    # --- arithmetic -------------------------------------------------------------------------
    def synapse(self, node, s_in: torch.Tensor) -> torch.Tensor:
        return self.prepare_synapse(node, None, s_in.device)(s_in).to(torch.int64)

    def prepare_synapse(self, node, in_bound=None, device="cpu"):
        """Dense: wrap32((W_lava·s) << weight_exp); Conv: wrap24(W * s) (loihi2.md §2-3), with
        the weights converted once. The sums are made in float32 when every partial sum is
        provably below 2^24 (|s| ≤ ``in_bound``, or its measured maximum when None, times the
        largest row sum of |W|), else in float64 (below 2^53): exact integers either way, so
        no rounding is needed; the shift is exact in floating point (a power of two, floored
        when negative); the wraps are skipped where the bound shows they change nothing, and
        the current stays float32 when it is exact there."""
        if isinstance(node, N.IntDense):
            w = dense_weights(node.weight)
            conv, exp, lim = False, int(node.weight_exp), 1 << 31
        elif isinstance(node, N.IntConv2d):
            if int(node.weight_exp) != 0:
                raise TsslcError(
                    f"loihi2 conv with weight_exp={node.weight_exp}: Lava's Conv ignores weight_exp; "
                    "fold the exponent into the integer weights (tsslc's quantizer emits weight_exp=0)"
                )
            w = np.asarray(node.weight).astype(np.int64)
            conv, exp, lim = True, 0, UV_MAX
            stride, padding, groups = int(node.stride), int(node.padding), int(node.groups)
        else:
            raise TsslcError(f"loihi2 has no synapse of kind {getattr(node, 'kind', type(node).__name__)!r}")
        k_sum = float(np.abs(w).reshape(w.shape[0], -1).sum(1).max()) if w.size else 0.0
        weights: dict = {}
        scale = 2.0**exp
        on_cuda = torch.device(device).type == "cuda"

        def run(s_in: torch.Tensor, m: float | None = in_bound) -> torch.Tensor:
            if m is None:
                m = float(s_in.abs().max()) if s_in.numel() else 0.0
            bound = m * k_sum
            dt = exact_float(bound, "conv" if conv else "matmul")
            wt = weights.get(dt)
            if wt is None:
                wt = weights[dt] = torch.as_tensor(w, dtype=dt, device=device)
            x = s_in if s_in.dtype == dt else s_in.to(dt)
            with full_float32() if on_cuda and dt == torch.float32 else NO_CONTEXT:
                if conv:
                    T, B = x.shape[:2]
                    y = F.conv2d(x.reshape(T * B, *x.shape[2:]), wt, None, stride, padding, 1, groups)
                    y = y.reshape(T, B, *y.shape[1:])
                else:
                    y = F.linear(x, wt)
            if exp > 0:
                y *= scale
            elif exp < 0:
                y = torch.floor_(y.mul_(scale))
            out_bound = bound * scale if exp > 0 else bound
            if dt == torch.float32 and out_bound < lim:  # exact, and the wrap changes nothing
                return y
            y = y.to(torch.int64)
            return y if out_bound < lim else (wrap24(y) if conv else wrap32(y))

        if in_bound is None or conv or on_cuda:
            return run
        # a proven bound on a CPU dense synapse: every choice made now, the call only computes
        bound = float(in_bound) * k_sum
        dt = exact_float(bound, "matmul")
        out_bound = bound * scale if exp > 0 else bound
        if not (dt == torch.float32 and out_bound < lim):
            return run
        # the power of two goes into the weights: every product and partial sum only changes
        # its exponent, so the sums stay exact and equal (W·s)·2^exp
        wt = torch.as_tensor(w, dtype=dt, device=device) * scale
        linear = F.linear

        def run_dense(s_in: torch.Tensor) -> torch.Tensor:
            y = linear(s_in if s_in.dtype == dt else s_in.to(dt), wt)
            return torch.floor_(y) if exp < 0 else y

        return run_dense

    def prepare_layer(self, node, params, in_bound=None, device="cpu"):
        """A dense synapse and its LIF in one compiled pass for one sample
        (:func:`tsslc.fused_cpu.loihi2_dense`): on the CPU, with the kernel, when the input
        bound proves every partial sum an integer below 2^24 and the current below 2^31 (the
        float32 path of :meth:`prepare_synapse`, no wrap: the same sums, so the same
        current), else None. Counting needs the graph's non-zero weights to be the ones Lava
        keeps (a mixed-sign ±1 weight becomes 0 there); where they are not, the function's
        ``counts`` is False and the caller counts the unfused way. Its arrays (the weights
        twice, the binarised weights) are made on first use, so a run that never streams
        does not hold them; ``spec()`` gives them to :meth:`prepare_chain`."""
        if (not isinstance(node, N.IntDense) or not isinstance(params, Loihi2LIF) or in_bound is None
                or torch.device(device).type != "cpu"):
            return None
        if fused_cpu.load() is None:
            return None
        w = dense_weights(node.weight)
        exp = int(node.weight_exp)
        k_sum = float(np.abs(w).sum(1).max()) if w.size else 0.0
        bound = float(in_bound) * k_sum
        out_bound = bound * 2.0**exp if exp > 0 else bound
        if not (bound < 2**24 and out_bound < 1 << 31):
            return None
        nz = np.asarray(node.weight) != 0
        same = bool(np.array_equal(nz, w != 0))
        zmax = int((nz.shape[1] - nz.sum(1)).max()) if nz.size else 0
        del nz
        params_ = (2.0**exp, zmax, exp < 0, int(params.du), int(params.dv), int(params.vth), int(params.bias))
        weight, graded, kernel, made = node.weight, in_bound > 1, fused_cpu.loihi2_dense, []

        def spec() -> tuple:
            """``(wt, wr, scale, mask, zmax, floor, du, dv, vth, bias)`` as the kernel takes them."""
            if not made:
                w_ = dense_weights(weight)
                wt = torch.from_numpy(np.ascontiguousarray(w_.T, dtype=np.float32))
                # a graded input (most inputs active every step) is read by rows: a second copy
                wr = torch.from_numpy(np.ascontiguousarray(w_, dtype=np.float32)) if graded else None
                mask = (torch.from_numpy(np.ascontiguousarray(np.asarray(weight).T != 0).view(np.uint8))
                        if same else None)
                scale, zmax_, floor, du, dv, vth, bias = params_
                made.append((wt, wr, scale, mask, zmax_, floor, du, dv, vth, bias))
            return made[0]

        def layer(s_in: torch.Tensor, n_steps: int, count: bool = False, out_shape=None, fan=None, M=None):
            if (count or fan is not None) and not same:
                raise TsslcError("this fused layer cannot count (Lava zeroes some of its synapses): see its 'counts'")
            return kernel(s_in, n_steps, *spec(), count, out_shape, fan, M)

        layer.counts = same
        layer.spec = spec
        return layer

    def prepare_chain(self, layers: list):
        """Fused layers (:meth:`prepare_layer`, every one counting) that make a whole network
        fed a static graded image, as one compiled call (:class:`tsslc.fused_cpu.Loihi2Chain`)."""
        if not layers or not all(callable(getattr(l, "spec", None)) and l.counts for l in layers):
            return None
        return fused_cpu.Loihi2Chain([l.spec for l in layers])

    def run_population(self, params, current, with_float=False):
        """The compiled kernel (tsslc.fused_cpu.loihi2_lif: :meth:`neuron_step` T times, bit
        for bit) on the CPU; the step-by-step default elsewhere or without the kernel."""
        if current.device.type == "cpu" and current.dtype in (torch.int64, torch.float32):
            res = fused_cpu.loihi2_lif(current, None, params.du, params.dv, params.vth, params.bias, with_float)
            if res is not None:
                return res
        return super().run_population(params, current, with_float)

    def init_state(self, params, shape, batch, device):
        z = torch.zeros((batch, *shape), dtype=torch.int64, device=device)
        return {"u": z, "v": z.clone()}

    def neuron_step(self, state, current, params):
        """loihi2.md §1. While |a| ≤ 2^17 and |u| ≤ 2^23 (always, for calibrated graphs) none
        of Lava's int32 wraps can occur (|u·| ≤ 2^24, |v·| < 2^25), so they are skipped;
        otherwise every int32 wrap is applied as Lava's storage does."""
        du, dv, vth, bias = params.du, params.dv, params.vth, params.bias
        fast = state.get("bounded", True) and (current.numel() == 0 or int(current.abs().max()) <= 1 << 17)
        act = current << ACT_SHIFT
        uc = torch.div(state["u"] * (DECAY_UNITY - (du + 1)), DECAY_UNITY, rounding_mode="trunc")  # rz12
        if fast:
            uc += act
        else:
            uc = wrap32(uc + wrap32(act))
        u = torch.where(uc > UV_MAX, uc - 2 * UV_MAX, uc)
        u = torch.where(u <= -UV_MAX, uc + 2 * UV_MAX, u)
        v = torch.div(state["v"] * (DECAY_UNITY - dv), DECAY_UNITY, rounding_mode="trunc")
        v += u
        if bias:
            v += bias
        if not fast:
            v = wrap32(v)
        v.clamp_(-V_LIMIT, V_LIMIT)
        s = v > (vth << VTH_SHIFT)
        v.masked_fill_(s, 0)
        bounded = fast or u.numel() == 0 or int(u.abs().max()) <= UV_MAX
        return {"u": u, "v": v, "bounded": bounded}, s.to(torch.int64)

    # --- quantization -------------------------------------------------------------------------
    def quantize_layer(self, synapse, lif, stats: LayerStats) -> QuantizedLayer:
        where = f"layer '{stats.name}'"
        V = float(lif.threshold)
        if not V > 0:
            raise TsslcError(f"{where}: threshold {V} must be > 0 on loihi2 (v > vth<<6 with unsigned vth)")
        # decays
        theta_in = 1.0 if stats.in_tau_s is None else 1.0 / float(stats.in_tau_s)
        du = int(np.clip(round(DECAY_UNITY * theta_in) - 1, 0, DU_MAX))
        dv = int(np.clip(round(DECAY_UNITY / float(lif.tau_m)), 0, DV_MAX))
        d_u = (du + 1) / DECAY_UNITY  # effective current decay fraction
        d_v = dv / DECAY_UNITY
        w = np.asarray(synapse.weight, dtype=np.float64)
        w_max = float(np.abs(w).max()) if w.size else 0.0
        if w_max == 0.0:
            raise TsslcError(f"{where}: all weights of '{stats.synapse}' are zero; nothing to quantize")
        S = float(stats.in_scale)
        # largest λ (integer units per float unit) that keeps u, v below 2^23/headroom and vth in 17 bits
        peak = max(stats.max_abs_current, stats.max_abs_membrane, V)
        lam_max = min((UV_MAX - 1) / (self.headroom * peak), VTH_MAX * 64.0 / V)
        conv = isinstance(synapse, N.Conv2d)

        def lam_fit(e):  # largest λ at which the weights fit [-256, 254] with exponent e
            return 254.0 * S * 2.0 ** (e + ACT_SHIFT) / (d_u * w_max)

        if conv:
            exp = 0
        else:
            # the exponent at which the largest weight lands in [254, 508) at λ_max, so that
            # lowering λ by less than 2x makes the weights use the full 8-bit range
            m = lam_max * d_u * w_max / (S * 2.0**ACT_SHIFT)
            exp = int(np.clip(math.floor(math.log2(m / 254.0)), *self.dense_exp_range))
        lam = min(lam_max, lam_fit(exp))
        vth = int(round(lam * V / 64.0))
        if vth < 1:
            raise TsslcError(
                f"{where}: threshold rounds to vth=0 at scale {lam:.3g} (weights of '{stats.synapse}' too large "
                f"for 8-bit {'conv weights with weight_exp=0' if conv else 'weights'} relative to the threshold {V}); "
                "remedy: retrain with a smaller weight_scale or a larger threshold"
            )
        lam_eff = vth * 64.0 / V  # exact threshold ratio
        unit = S * 2.0 ** (exp + ACT_SHIFT) / (lam_eff * d_u)  # float weight of one integer step
        raw = w / unit
        w_int = _round_even(raw)
        saturated = (w_int > W_MAX) | (w_int < W_MIN)
        w_int = np.clip(w_int, W_MIN, W_MAX)
        rounding = "nearest"
        current_err = {}
        if stats.input_gram is not None and stats.input_gram.ndim == 2:  # conv: one row per output channel, (C, kh, kw) flattened; grouped convs' per-group Grams are not used here
            raw2 = raw.reshape(raw.shape[0], -1)
            current_err["nearest"] = _current_error(w_int.reshape(raw2.shape), raw2, stats.input_gram)
            if stats.rounding == "gptq":
                w_int = _gptq_round(raw2, stats.input_gram).reshape(raw.shape)
                rounding = "gptq"
                current_err["gptq"] = _current_error(w_int.reshape(raw2.shape), raw2, stats.input_gram)
        w_back = w_int * unit
        err = w_back - w
        rel_rms = float(np.sqrt((err**2).mean()) / np.sqrt((w**2).mean()))
        params = Loihi2LIF(du=du, dv=dv, vth=vth, bias_mant=0, bias_exp=0)
        if conv:
            int_syn = N.IntConv2d(weight=w_int.astype(np.int32), stride=synapse.stride, padding=synapse.padding,
                                  groups=synapse.groups, weight_exp=0)
        else:
            int_syn = N.IntDense(weight=w_int.astype(np.int32), weight_exp=exp)
        int_lif = N.IntLIF(shape=tuple(lif.shape), params=params)
        tau_s_eff = 1.0 / d_u
        tau_m_eff = DECAY_UNITY / dv if dv else None  # None: no leak
        report = {
            "scale": lam_eff,
            "per_channel": False,
            "per_channel_note": "loihi2 (Lava LIF) has one vth/du/dv per population: one scale per layer",
            "weight_exp": exp,
            "weight_int_max": int(np.abs(w_int).max()),
            "weight_unit": unit,
            "weight_error_rel_rms": rel_rms,
            "weight_error_max": float(np.abs(err).max()),
            # rounding: "gptq" (layers with a calibrated input Gram matrix) or "nearest";
            # the current error (W_int - W)·a relative to W·a over the calibration
            # inputs is what the rounding minimises (GPTQ trades weight error for it)
            "rounding": rounding,
            "current_error_rel_rms": current_err.get(rounding),
            "current_error_rel_rms_nearest": current_err.get("nearest"),
            "weight_saturated_fraction": float(saturated.mean()),
            "weight_zeroed_fraction": float(((w_int == 0) & (w != 0)).mean()),
            "vth": vth,
            "threshold_error_rel": abs(vth * 64.0 / lam_eff - V) / V,
            "du": du,
            "dv": dv,
            "tau_s": stats.in_tau_s,
            "tau_s_effective": tau_s_eff,
            "decay_s_error": abs(d_u - theta_in),
            "tau_m": float(lif.tau_m),
            "tau_m_effective": tau_m_eff,
            "decay_m_error": abs(d_v - 1.0 / float(lif.tau_m)),
            "state_peak_predicted": lam_eff * peak,
            "state_peak_fraction": lam_eff * peak / UV_MAX,
        }
        return QuantizedLayer(int_syn, int_lif, report)


TARGET = Loihi2()
