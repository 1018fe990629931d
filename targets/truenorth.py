"""The TrueNorth-like target: core geometry, the axon-type weight decomposition and the
integer LIF neuron, exactly as stated in ``targets/truenorth.md`` (the document is the
specification; this module implements it once, vectorised over neurons).

Summary (see the document for the equations with their bit widths):

* core: 256 axons x 256 neurons, binary crossbar, 4 axon types, per-neuron table of four
  signed 9-bit weights; a neuron sees only its own core's axons (fan-in <= 256 axons);
* an input with a signed multi-level weight takes ``m`` axons (2 <= m <= 4) of types
  0..m-1 whose digits are ``[1, -1]``, ``[1, 2, -3]`` or ``[1, 2, 4, -7]``; neuron j's table is
  ``s_j[g] = a_j * d_g`` so its effective weight on input i is ``a_j * q_ji`` with
  ``|q_ji| <= 2**(m-1) - 1``;
* neuron: synaptic current I and membrane V, both 20-bit signed and saturating, decays by
  a sum of two right shifts of the magnitude, strict threshold, reset to zero.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tsslc.errors import TsslcError
from tsslc.ir.neurons import TRUENORTH_MAX_SHIFT, TRUENORTH_SHIFT_OFF, TRUENORTH_VTH_MAX, TrueNorthLIF, decay_fraction
from tsslc.ir.nodes import Conv2d, Dense, IntConv2d, IntDense, IntLIF
from tsslc.ir.nodes import IntInput as N_IntInput
from tsslc.targets.base import (CoreGeometry, exact_sum, EnergyFigure, EnergyTable, LayerStats, NumberFormat,
                                QuantizedLayer, Target)

NAME = "truenorth"

#: core geometry (TrueNorth, Merolla et al. 2014)
AXONS_PER_CORE = 256
NEURONS_PER_CORE = 256
N_AXON_TYPES = 4
#: weight table entries: 9-bit signed, -255..255
WEIGHT_BITS = 9
WEIGHT_MAX = 2 ** (WEIGHT_BITS - 1) - 1
#: state widths (signed, saturating) and threshold width (unsigned)
I_BITS = 20
V_BITS = 20
VTH_BITS = 18
VTH_MAX = TRUENORTH_VTH_MAX  # 2^(VTH_BITS-1) - 1
#: decay shifts: 0..MAX_SHIFT; SHIFT_OFF disables a term
MAX_SHIFT = TRUENORTH_MAX_SHIFT
SHIFT_OFF = TRUENORTH_SHIFT_OFF
#: routing: each neuron has one destination; a spike takes one tick per hop
DESTINATIONS_PER_NEURON = 1
#: IntInput of this target: binary spikes (TrueNorth axons carry 1-bit events)
INPUT_BITS = 2  # signed 2-bit payload -> values 0/1 after round(p * 1) for p in [0, 1]


def state_limits(bits: int) -> tuple[int, int]:
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


I_MIN, I_MAX = state_limits(I_BITS)
V_MIN, V_MAX = state_limits(V_BITS)


# --- decays by shifts ------------------------------------------------------------------------


def best_shifts(tau: float) -> tuple[int, int]:
    """The shift pair (a, b), a <= b, whose fraction 2^-a + 2^-b is closest to 1/tau
    (ties: the single shift, then the smaller shifts). tau <= 1 gives full decay (0, off)."""
    target = 1.0 / float(tau)
    best, best_err = (0, SHIFT_OFF), abs(1.0 - target)
    for a in range(0, MAX_SHIFT + 1):
        for b in [SHIFT_OFF, *range(max(a, 1), MAX_SHIFT + 1)]:
            if a == 0 and b != SHIFT_OFF:
                continue
            err = abs(decay_fraction(a, b) - target)
            if err < best_err - 1e-15:
                best, best_err = (a, b), err
    return best


# --- the neuron --------------------------------------------------------------------------------


def neuron_params(tau_m: float, tau_s: float | None, vth: int) -> TrueNorthLIF:
    """Integer parameters of an IntLIF population for the float time constants (tau_s of
    the synapse's input PSC; None = unfiltered input, the current state decays fully)."""
    ia, ib = best_shifts(tau_s) if tau_s is not None else (0, SHIFT_OFF)
    va, vb = best_shifts(tau_m)
    try:
        return TrueNorthLIF(i_shift_a=ia, i_shift_b=ib, v_shift_a=va, v_shift_b=vb, vth=int(vth))
    except ValueError as e:
        raise TsslcError(str(e)) from None


def effective_taus(params: TrueNorthLIF) -> tuple[float, float]:
    """(tau_m, tau_s) the integer decays realise: 1 / decay fraction."""
    fm = decay_fraction(params.v_shift_a, params.v_shift_b)
    fs = decay_fraction(params.i_shift_a, params.i_shift_b)
    return (1.0 / fm if fm else math.inf), (1.0 / fs if fs else math.inf)


def init_state(shape, device=None) -> dict[str, torch.Tensor]:
    return {"I": torch.zeros(shape, dtype=torch.int64, device=device),
            "V": torch.zeros(shape, dtype=torch.int64, device=device)}


def neuron_step(state: dict[str, torch.Tensor], acc: torch.Tensor, params: TrueNorthLIF):
    """One tick of a population; ``acc`` is the integer synaptic input Σ c·s_j[G] of this
    tick (int64). Returns ``(new state, spikes int64 0/1)``; ``state`` is not modified.

        I  = sat_I(I - leak_s(I) + acc)
        V  = sat_V(V - leak_m(V) + I)
        s  = V > vth
        V  = 0 where s
    """
    acc = torch.as_tensor(acc, dtype=torch.int64)
    i = _leaked(state["I"], params.i_shift_a, params.i_shift_b).add_(acc).clamp_(I_MIN, I_MAX)
    v = _leaked(state["V"], params.v_shift_a, params.v_shift_b).add_(i).clamp_(V_MIN, V_MAX)
    s = v > params.vth
    v.masked_fill_(s, 0)
    return {"I": i, "V": v}, s.to(torch.int64)


def _leaked(x: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """x − sgn(x)((|x| >> a) + (|x| >> b)) as a new int64 tensor (a term with shift
    SHIFT_OFF is 0): sgn(x)·(|x| >> k) is x / 2^k rounded toward zero, one integer
    division per term."""
    out = x.clone()
    for k in (int(a), int(b)):
        if k != SHIFT_OFF:
            out -= torch.div(x, 1 << k, rounding_mode="trunc")
    return out


# --- axon types: the weight decomposition -------------------------------------------------------


def axon_digits(m: int) -> list[int]:
    """Digit value of axon type g for an input that takes m axons (types 0..m-1):
    m=2 [1, -1]; m=3 [1, 2, -3]; m=4 [1, 2, 4, -7]. Every integer in ±(2^(m-1)-1) is a sum
    of a subset of the digits."""
    if not 2 <= m <= N_AXON_TYPES:
        raise ValueError(f"axons per input must be 2..{N_AXON_TYPES}, got {m}")
    if m == 2:
        return [1, -1]
    return [2 ** k for k in range(m - 1)] + [-(2 ** (m - 1) - 1)]


def level_max(m: int) -> int:
    """Largest |q| reachable with m axons: 2^(m-1) - 1 (m=2: 1, m=3: 3, m=4: 7)."""
    return 2 ** (m - 1) - 1


def scale_max(m: int) -> int:
    """Largest per-neuron step a_j so that every table entry a_j * d_g fits 9 bits."""
    return WEIGHT_MAX // max(abs(d) for d in axon_digits(m))


def axons_per_input(fan_in: int) -> int:
    """The most axons (weight levels) each input can take so that fan_in inputs fit one core."""
    return min(N_AXON_TYPES, AXONS_PER_CORE // max(int(fan_in), 1))


def check_fan_in(fan_in: int, layer: str) -> int:
    """Axons per input for a layer, or the fan-in error naming the layer and the limit."""
    m = axons_per_input(fan_in)
    if m < 2:
        raise TsslcError(
            f"layer '{layer}': fan-in {fan_in} inputs needs {2 * fan_in} axons (signed weights take 2 axon types "
            f"per input) > {AXONS_PER_CORE} axons per truenorth core; remedy: retrain with a fan-in limit "
            f"<= {AXONS_PER_CORE // 2} (linear: 'fan_in: {AXONS_PER_CORE // 2}'; conv: more 'groups' so "
            f"in_channels/groups x receptive field <= {AXONS_PER_CORE // 2}, the field being kernel_size^2, "
            f"(kernel_size x pool)^2 after a pooling layer)"
        )
    return m


def digit_bits(q: np.ndarray, m: int) -> np.ndarray:
    """Connectivity bits (..., m) of integer levels q (|q| <= level_max(m)): c[..., g] = 1
    when input i's axon of type g connects to the neuron; Σ_g c_g d_g = q exactly."""
    q = np.asarray(q, dtype=np.int64)
    qm = level_max(m)
    if np.any(np.abs(q) > qm):
        raise ValueError(f"levels beyond ±{qm} do not fit {m} axons")
    neg = q < 0
    rest = np.where(neg, q + qm, q)  # non-negative part carried by the positive digits
    bits = np.zeros(q.shape + (m,), np.uint8)
    if m == 2:
        bits[..., 0] = q > 0
        bits[..., 1] = neg
        return bits
    for k in range(m - 1):
        bits[..., k] = (rest >> k) & 1
    bits[..., m - 1] = neg
    return bits


@dataclass
class LayerWeights:
    """A synapse quantized for truenorth cores."""

    weight: np.ndarray  # effective integer weights a_j * q_ji (N_out, N_in...), int32
    levels: np.ndarray  # q_ji, int8
    step: np.ndarray  # a_j per output neuron (per output channel for convs), int32
    axons_per_input: int
    report: dict


def _inv_chol(h: np.ndarray, damp: float) -> np.ndarray:
    """Upper Cholesky factor of the damped, normalised inverse of Gram block ``h``."""
    n = h.shape[0]
    h = h / max(float(np.trace(h)) / n, 1e-30)
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    h = h + damp * np.mean(np.diag(h)) * np.eye(n)
    return np.linalg.cholesky(np.linalg.inv(h)).T


def feedback_levels(rows: np.ndarray, step: np.ndarray, qm: int, gram: np.ndarray, groups: int = 1,
                    damp: float = 0.01) -> np.ndarray:
    """Levels q (|q| <= qm) of ``rows`` (n_out x n_in, integer-scale weights) at per-row steps
    ``step``, rounded one input at a time with error feedback (GPTQ / Optimal Brain
    Quantization, as loihi2's ``_gptq_round``): each input's rounding error, in level units
    of its row, is pushed onto the inputs not yet rounded so that the current error
    ``(a·q − w)·x`` stays small over the calibration inputs (Gram ``gram`` = Σ x xᵀ; a
    grouped conv's (G, n, n) stack, one per group of ``n_out / G`` rows). Feedback stays
    inside each row's connected inputs (non-zero weights: a fan-in mask is kept), so the
    rows are processed in blocks of equal support."""
    lv = rows / step[:, None].astype(np.float64)
    q = np.zeros(rows.shape, np.int64)
    per_group = rows.shape[0] // max(int(groups), 1)
    support = rows != 0
    for g in range(max(int(groups), 1)):
        h_full = gram[g] if gram.ndim == 3 else gram
        r0 = g * per_group
        pats, inv = np.unique(support[r0:r0 + per_group], axis=0, return_inverse=True)
        for k, pat in enumerate(pats):
            r = r0 + np.flatnonzero(np.asarray(inv).ravel() == k)
            cols = np.flatnonzero(pat)
            if not len(cols):
                continue
            hinv = _inv_chol(h_full[np.ix_(cols, cols)].astype(np.float64), damp)
            w = lv[np.ix_(r, cols)].copy()
            out = np.zeros(w.shape, np.int64)
            for j in range(len(cols)):
                qj = np.clip(np.rint(w[:, j]), -qm, qm)
                out[:, j] = qj
                err = (w[:, j] - qj) / hinv[j, j]
                w[:, j + 1:] -= np.outer(err, hinv[j, j + 1:])
            q[np.ix_(r, cols)] = out
    return q


def current_error(w: np.ndarray, rows: np.ndarray, gram: np.ndarray, groups: int = 1) -> float:
    """RMS of the current error (w − rows)·x over the calibration inputs relative to the RMS
    of the current rows·x (Gram ``gram``; a grouped conv's per-group stack)."""
    e = w - rows
    grams = gram if gram.ndim == 3 else gram[None]
    per = rows.shape[0] // grams.shape[0]
    num = den = 0.0
    for g, h in enumerate(grams):
        sl = slice(g * per, (g + 1) * per)
        num += float(np.sum((e[sl] @ h) * e[sl]))
        den += float(np.sum((rows[sl] @ h) * rows[sl]))
    return float(np.sqrt(max(num, 0.0) / den)) if den > 0 else 0.0


def quantize_weights(target: np.ndarray, fan_in: int, layer: str, gram: np.ndarray | None = None,
                     groups: int = 1) -> LayerWeights:
    """Choose per output neuron the step a_j (1..scale_max) and levels q_ji minimising the
    squared error to ``target`` (real-valued integer-scale weights, output neurons first),
    with m axons per input as many as fit. With ``gram`` (the synapse's input Gram matrix
    from calibration) the levels at the chosen steps are then rounded with error feedback
    (:func:`feedback_levels`) instead of each to its nearest. Reports axon cost, weight
    error and (with ``gram``) the current error of both roundings."""
    m = check_fan_in(fan_in, layer)
    qm, amax = level_max(m), scale_max(m)
    t = np.asarray(target, dtype=np.float64)
    rows = t.reshape(t.shape[0], -1)
    cand = np.arange(1, amax + 1, dtype=np.float64)
    best_err = np.full(rows.shape[0], np.inf)
    step = np.ones(rows.shape[0], np.int64)
    # a zero weight costs nothing at any step: search on each row's non-zeros only (a
    # block-sparse dense row has fan-in of them), packed to the widest row's count
    nz = rows != 0
    width = int(nz.sum(1).max()) if rows.size else 0
    if 0 < width < rows.shape[1]:
        order = np.argsort(~nz, axis=1, kind="stable")[:, :width]
        packed = np.take_along_axis(rows, order, axis=1)
    else:
        packed = rows
    for a in cand:  # at most 255 candidates, vectorised over the layer
        q = np.clip(np.rint(packed / a), -qm, qm)
        err = ((q * a - packed) ** 2).sum(1)
        better = err < best_err
        best_err[better], step[better] = err[better], int(a)
    levels = np.clip(np.rint(rows / step[:, None]), -qm, qm).astype(np.int64)
    current = {}
    rounding = "nearest"
    if gram is not None:
        current["nearest"] = current_error(levels * step[:, None], rows, gram, groups)
        fb = feedback_levels(rows, step, qm, gram, groups)
        current["error_feedback"] = current_error(fb * step[:, None], rows, gram, groups)
        if current["error_feedback"] <= current["nearest"]:
            levels, rounding = fb, "error_feedback"
    w = levels * step[:, None]
    norm = float(np.sqrt((rows ** 2).sum()))
    report = {
        "rounding": rounding, "current_error": current,
        "axons_per_input": m,
        "axon_types": axon_digits(m),
        "weight_levels": 2 * qm + 1,
        "axons": int(fan_in) * m,
        "axon_limit": AXONS_PER_CORE,
        "weight_error": float(np.sqrt(((w - rows) ** 2).sum())) / norm if norm else 0.0,
        "saturated": float(np.mean(np.abs(rows) > (qm + 0.5) * step[:, None])),
        "table_max": int(np.max(np.abs(step)) * max(abs(d) for d in axon_digits(m))),
    }
    return LayerWeights(w.reshape(t.shape).astype(np.int32), levels.reshape(t.shape).astype(np.int8),
                        step.astype(np.int32), m, report)


def weight_table(step: np.ndarray, m: int) -> np.ndarray:
    """Per-neuron 4-entry table s_j[g] = a_j * d_g (unused types 0), int16 (N, 4)."""
    d = np.zeros(N_AXON_TYPES, np.int64)
    d[:m] = axon_digits(m)
    return (np.asarray(step, np.int64)[:, None] * d[None, :]).astype(np.int16)


# --- the target ---------------------------------------------------------------------------------

#: int64 torch copies of compiled synapses' weights, per node and device (nodes are frozen:
#: a node's weights never change; entries go with their node)
_WEIGHTS: dict[int, tuple] = {}


def _weight_tensor(node, device) -> torch.Tensor:
    entry = _WEIGHTS.get(id(node))
    if entry is None or entry[0]() is not node:
        entry = (weakref.ref(node, lambda _, k=id(node): _WEIGHTS.pop(k, None)), {})
        _WEIGHTS[id(node)] = entry
    per_device = entry[1]
    key = str(device)
    if key not in per_device:
        per_device[key] = torch.as_tensor(np.asarray(node.weight, dtype=np.int64), device=device)
    return per_device[key]



def synapse_fan_in(synapse) -> int:
    """Inputs one neuron of the synapse sees: non-zero columns of a dense row (block-sparse
    nets trained with a fan-in limit), C_in/groups * K * K of a conv."""
    w = np.asarray(synapse.weight)
    if isinstance(synapse, (Dense, IntDense)):
        return int((w != 0).sum(1).max()) if w.size else 0
    return int(w.shape[1] * w.shape[2] * w.shape[3])


class TrueNorth(Target):
    name = NAME
    description = ("TrueNorth-like cores: 256 axons x 256 neurons, binary crossbar, 4 axon types with "
                   "per-neuron signed 9-bit weight tables, integer LIF with shift decays, one destination per neuron")
    doc_file = "truenorth.md"
    geometry = CoreGeometry(neurons_per_core=NEURONS_PER_CORE, axons_per_core=AXONS_PER_CORE,
                            max_fan_in=AXONS_PER_CORE, max_fan_out=DESTINATIONS_PER_NEURON, n_cores=4096)
    formats = NumberFormat(
        weight_bits=WEIGHT_BITS,
        weight_encoding=("binary crossbar x per-neuron table s_j[G] of 4 signed 9-bit weights (-255..255) indexed "
                         "by axon type; an input takes m = 2..4 axons with digits [1,-1] / [1,2,-3] / [1,2,4,-7], "
                         "so w_ji = a_j * q_ji, |q| <= 2^(m-1)-1"),
        state_bits={"I": I_BITS, "V": V_BITS, "vth": VTH_BITS},
        overflow={"I": "saturate", "V": "saturate"},
        decay="x -= sgn(x)((|x| >> a) + (|x| >> b)), shifts 0..15 or off: decay fraction 2^-a + 2^-b",
    )
    latency_per_hop = 1
    energy = EnergyTable(NAME, (
        EnergyFigure("synaptic_event", 26.0, "pJ",
                     "Merolla et al., Science 2014 (total chip energy / synaptic events at 20 Hz, 128 active "
                     "synapses per neuron, 0.775 V)", "all-in", "measured", "28 nm",
                     note="all-in: add nothing to it", counter="synaptic_events"),
        EnergyFigure("chip_power_realtime", 70.0, "mW", "Merolla et al., Science 2014 (65-72 mW, 1 ms tick)",
                     "all-in", "measured", "28 nm", note="context: whole chip, 4,096 cores, real time"),
    ), note="TrueNorth publishes one all-in figure per synaptic event; tsslc's TrueNorth-like neuron (I state, "
            "shift decays) is not TrueNorth's, so the figure is an order of magnitude, not a prediction.")
    neuron_type = TrueNorthLIF
    input_bits = INPUT_BITS
    #: how a static analog input reaches the axons: "rate" (sigma-delta spikes, §3) or
    #: "graded" (round(p) at every step, the variant ``graded-input``)
    input_encoding = "rate"
    uses_input_gram = True  # error-feedback rounding of the axon-type levels
    variants = {"graded-input": "static pixels as round(p) at every step instead of sigma-delta rate spikes"}

    def _make_variant(self, name: str) -> "TrueNorth":
        t = type(self)()
        t.variant_name, t.input_encoding = name, "graded"
        return t

    def choose_input(self, node, values: torch.Tensor, n_steps: int):
        """§3: event frames pass as binary spikes; a static non-negative analog input (an
        image) becomes sigma-delta rate spikes, 0/1 per step with scale 1/max(1, max p), so
        the count over the T steps is round(p·scale·T); with the ``graded-input`` variant (or
        negative values) the payload is round(p) at every step (2-bit graded)."""
        from tsslc.targets.quantize import choose_input

        vals = values.to(torch.float64)
        if (self.input_encoding != "rate" or getattr(node, "encoding", "current") != "current" or not vals.numel()
                or float(vals.min()) < 0):
            return choose_input(node, values, int(self.input_bits))
        max_abs = float(vals.abs().max())
        if max_abs == 0.0:
            raise TsslcError(f"input '{node.shape}': the calibration data are all zero")
        scale = 1.0 / max(1.0, max_abs)
        n = int(n_steps)
        return N_IntInput(shape=tuple(node.shape), encoding="rate", scale=scale, bits=1, n_steps=n), {
            "encoding": "rate", "scale": scale, "bits": 1, "n_steps": n, "exact": False, "max_abs": max_abs,
            # the spike count over T steps is round(p·scale·T): at most 1/(2T) off p·scale per step on average
            "error_max": 0.5 / (n * scale)}

    # --- quantization ---------------------------------------------------------------------
    def quantize_layer(self, synapse, lif, stats: LayerStats) -> QuantizedLayer:
        name = stats.name
        fan_in = synapse_fan_in(synapse)
        m = check_fan_in(fan_in, name)
        theta_in = 1.0 / float(stats.in_tau_s) if stats.in_tau_s is not None else 1.0
        w = np.asarray(synapse.weight, dtype=np.float64) * theta_in / float(stats.in_scale)
        wmax = float(np.abs(w).max()) if w.size else 0.0
        if wmax == 0.0:
            raise TsslcError(f"layer '{name}': all weights are zero; nothing to quantize")
        limits = {"weights": scale_max(m) * level_max(m) / wmax}
        if lif.threshold > 0:
            limits["threshold"] = VTH_MAX / float(lif.threshold)
        if stats.max_abs_current > 0:
            limits["current"] = I_MAX / float(stats.max_abs_current)
        if stats.max_abs_membrane > 0:
            limits["membrane"] = V_MAX / float(stats.max_abs_membrane)
        bound = min(limits, key=limits.get)
        scale = limits[bound]
        if stats.scale is not None:  # fine-tuning: the compile's scale, so the grid stays put
            bound, scale = "fixed", float(stats.scale)
        gram = stats.input_gram if stats.rounding == "gptq" else None
        if gram is not None and gram.shape[-1] != w[0].size:
            gram = None
        lw = quantize_weights(w * scale, fan_in, name, gram, int(getattr(synapse, "groups", 1) or 1))
        vth = int(round(scale * float(lif.threshold)))
        if vth < 1:
            raise TsslcError(f"layer '{name}': threshold {lif.threshold} rounds to {vth} at scale {scale:.3g}; "
                             f"truenorth needs a positive threshold")
        params = neuron_params(lif.tau_m, stats.in_tau_s, vth)
        tau_m_eff, tau_s_eff = effective_taus(params)
        if isinstance(synapse, Dense):
            syn = IntDense(weight=lw.weight, weight_exp=0)
        elif isinstance(synapse, Conv2d):
            syn = IntConv2d(weight=lw.weight, stride=synapse.stride, padding=synapse.padding,
                            groups=synapse.groups, weight_exp=0)
        else:
            raise TsslcError(f"layer '{name}': truenorth cannot quantize a {synapse.kind} synapse")
        report = {
            "scale": float(scale), "scale_bound": bound, "weight_exp": 0, "fan_in": fan_in,
            "weight_unit": float(stats.in_scale) / (scale * theta_in),  # float weight of one integer step
            "weight_error": lw.report["weight_error"], "weight_error_rel_rms": lw.report["weight_error"],
            "saturated_fraction": lw.report["saturated"], "weight_saturated_fraction": lw.report["saturated"],
            "axons_per_input": m, "axon_types": lw.report["axon_types"], "weight_levels": lw.report["weight_levels"],
            # "error_feedback": levels rounded input by input with the calibrated input Gram
            # (GPTQ-like, per block of neurons sharing a core's inputs) when it lowers the
            # current error; "nearest" otherwise (or with rounding="nearest")
            "rounding": lw.report["rounding"],
            "current_error_rel_rms": lw.report["current_error"].get(
                "error_feedback" if lw.report["rounding"] == "error_feedback" else "nearest"),
            "current_error_rel_rms_nearest": lw.report["current_error"].get("nearest"),
            "axons": lw.report["axons"], "axon_limit": AXONS_PER_CORE, "table_max": lw.report["table_max"],
            "vth": vth, "shifts_s": [params.i_shift_a, params.i_shift_b],
            "shifts_m": [params.v_shift_a, params.v_shift_b],
            "tau_s": stats.in_tau_s, "tau_s_effective": tau_s_eff,
            "decay_error_s": (abs(1 / tau_s_eff - theta_in) / theta_in) if stats.in_tau_s is not None else 0.0,
            "tau_m": float(lif.tau_m), "tau_m_effective": tau_m_eff,
            "decay_error_m": abs(1 / tau_m_eff - 1 / float(lif.tau_m)) * float(lif.tau_m),
        }
        return QuantizedLayer(syn, IntLIF(shape=tuple(lif.shape), params=params), report)

    # --- arithmetic -------------------------------------------------------------------------
    def synapse(self, node, s_in: torch.Tensor) -> torch.Tensor:
        """acc = Σ_i s_i * w_ji (= Σ over the neuron's active connected axons of s_j[G]),
        exactly (:func:`~tsslc.targets.base.exact_sum`: float32 when every partial sum is
        provably below 2^24 — always, for compiled graphs: |w| <= 255 over <= 128 inputs —
        else float64)."""
        w = _weight_tensor(node, s_in.device)
        if isinstance(node, IntDense):
            y = exact_sum(s_in, w)
        elif isinstance(node, IntConv2d):
            y = exact_sum(s_in, w, (int(node.stride), int(node.padding), int(node.groups)))
        else:
            raise TsslcError(f"truenorth: a {node.kind} node is not a synapse")
        if node.weight_exp > 0:
            y = y << int(node.weight_exp)
        elif node.weight_exp < 0:
            y = y >> int(-node.weight_exp)
        return y

    def init_state(self, params: TrueNorthLIF, shape: tuple, batch: int, device) -> dict[str, torch.Tensor]:
        return init_state((int(batch), *tuple(shape)), device)

    def neuron_step(self, state: dict, current: torch.Tensor, params: TrueNorthLIF):
        return neuron_step(state, current, params)

    def core_assignment(self, graph) -> dict[str, np.ndarray]:
        """The mapping pass's placement (``metadata["mapping"]["assignment"]``) when present."""
        mapping = graph.metadata.get("mapping")
        if mapping and "assignment" in mapping:
            return {k: np.asarray(v, dtype=np.int64) for k, v in mapping["assignment"].items()}
        return super().core_assignment(graph)


def splitter_events(graph, spikes: dict) -> dict[str, float]:
    """Synaptic events per sample on the splitter cores (§4), which the activity counters
    (the layers' own synapses) leave out: every spike of a neuron with splitters lands on
    one splitter axon connected to k splitter neurons (k copies), k events. ``spikes``:
    {population: (T, B, *shape)} of a run on ``graph`` (compiled and mapped for truenorth).
    {source population: events per sample}."""
    copies = graph.metadata.get("mapping", {}).get("splitter_copies", {})
    out = {}
    for src, k in copies.items():
        s = np.asarray(spikes[src])
        per_neuron = s.reshape(s.shape[0], s.shape[1], -1).sum((0, 1), dtype=np.int64)
        out[src] = float(per_neuron @ np.asarray(k, np.int64)) / max(int(s.shape[1]), 1)
    return out


TARGET = TrueNorth()
