"""Quantization pass: float graph → integer (compiled) graph for a target.

Generic part (here): structure checks, calibration of every spiking layer on a few
batches with the float model's own kernels, the graded-input scale, assembling the
compiled graph and its per-layer report. Target part (``target.quantize_layer``, see
:class:`tsslc.targets.base.Target`): the integer synapse and neuron parameters of one
layer. The target object is passed in (this module never imports the targets).

Accepted graphs: ``Input → [Flatten] → (Dense|Conv2d → LIF → [Flatten])+ → Output``, with
pooling already folded into the next synapse and dropout dropped (``tsslc compile`` runs
:mod:`tsslc.passes.structural` first).

The mapping (docs/DESIGN.md): the float current ``x[t] = W·a[t]`` of a layer becomes the
target's current state fed by ``W_int·s[t]``; a per-layer scale λ (integer units per
float unit of current and membrane) is chosen as large as the target's state widths allow
on the calibration set (with headroom), and thresholds, decays and weights are rounded for
it. ``metadata["quantization"]``::

    {"target": name, "calibration_samples": n,
     "input": {"encoding", "scale", "bits", "exact", "max_abs", "error_max"},
     "layers": [{"name", "synapse", "kind", "scale", "weight_exp", "weight_error_rel_rms",
                 "weight_saturated_fraction", "decay_s_error", "decay_m_error",
                 "rounding", "current_error_rel_rms", ...}, ...]}

For targets that use it (``Target.uses_input_gram``: loihi2) the pass also calibrates each
synapse's input Gram matrix (dense: of its inputs; conv: of its input patches;
``LayerStats.input_gram``), so that ``rounding="gptq"`` (default) can round the weights to
keep the current error small and the report can give that error; ``rounding="nearest"``
rounds weight by weight.
"""

from __future__ import annotations

import copy
from typing import Iterable

import numpy as np
import torch

from tsslc.errors import TsslcError
from tsslc.functional import lif_forward
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.interpreter import FloatInterpreter, n_steps_of
from tsslc.ir.layout import time_input
from tsslc.targets.base import LayerStats, QuantizationError

#: synapses with at most this many inputs per neuron get their input Gram matrix calibrated
MAX_GRAM_INPUTS = 4096
#: scales tried (in order) for an exact graded input: pixel grids such as k/16 (digits)
EXACT_SCALES = (1, 2, 4, 8, 16, 32, 64, 127)


def _batches(calibration) -> list[torch.Tensor]:
    if isinstance(calibration, (np.ndarray, torch.Tensor)):
        return [torch.as_tensor(calibration)]
    out = []
    for b in calibration:
        if isinstance(b, (tuple, list)):  # (x, y) pairs from a loader
            b = b[0]
        out.append(torch.as_tensor(b))
    if not out:
        raise TsslcError("quantization needs at least one calibration batch")
    return out


def layer_chain(graph: Graph) -> list[tuple[str, str]]:
    """(synapse, lif) pairs in order; raises naming the first node the quantizer cannot take."""
    graph.validate()
    pairs = []
    for name in graph.order():
        node = graph[name]
        if isinstance(node, (N.SumPool2d, N.Dropout)):
            raise QuantizationError(
                f"node '{name}' ({node.kind}): the quantizer takes graphs with pooling folded into the next "
                "synapse and dropout dropped; run tsslc.passes.structural (fold_pooling, drop_dropout) first "
                "(tsslc compile does)"
            )
        if isinstance(node, (N.IntInput, N.IntDense, N.IntConv2d, N.IntLIF)):
            raise QuantizationError(f"node '{name}' ({node.kind}): the graph is already compiled; give the float model")
        if isinstance(node, (N.Dense, N.Conv2d)):
            succ = graph.successors(name)
            if len(succ) != 1 or not isinstance(graph[succ[0]], N.LIF) or len(graph.predecessors(succ[0])) != 1:
                raise QuantizationError(f"node '{name}' ({node.kind}): must feed exactly one LIF population alone")
            pairs.append((name, succ[0]))
        elif isinstance(node, N.LIF):
            preds = graph.predecessors(name)
            if len(preds) != 1 or not isinstance(graph[preds[0]], (N.Dense, N.Conv2d)):
                raise QuantizationError(f"node '{name}' (lif): must be fed by exactly one dense or conv synapse")
        elif not isinstance(node, (N.Input, N.Flatten, N.Output)):
            raise QuantizationError(f"node '{name}' ({node.kind}): not supported by the quantizer")
        if not isinstance(node, (N.Output,)) and len(graph.successors(name)) > 1:
            raise QuantizationError(f"node '{name}' ({node.kind}): fan-out to several nodes is not supported")
    return pairs


def _patch_gram(v: torch.Tensor, kernel: tuple[int, int], stride: int, padding: int) -> torch.Tensor:
    """Σ p pᵀ over every (step, sample, output position) of the conv's input patches p
    (C·kh·kw each, in the weight's flattening order), float64."""
    T, B = v.shape[:2]
    x = v.reshape(T * B, *v.shape[2:])
    gram = None
    # chunks keep the unfolded patches (rows × C·kh·kw × positions) near 2^24 values
    per_row = x.shape[1] * kernel[0] * kernel[1] * (x.shape[2] + 2 * padding) * (x.shape[3] + 2 * padding)
    step = max(1, (1 << 24) // max(per_row, 1))
    for i in range(0, x.shape[0], step):
        cols = torch.nn.functional.unfold(x[i:i + step], kernel, padding=padding, stride=stride)
        flat = cols.transpose(1, 2).reshape(-1, cols.shape[1]).to(torch.float64)
        g = flat.T @ flat
        gram = g if gram is None else gram + g
    return gram


class Calibrator(FloatInterpreter):
    """The float interpreter, recording per LIF the maxima of |current| and |membrane|, the
    99.9th percentile of |current|, the spike rate, the input's values and (``with_gram``)
    each synapse's input Gram matrix."""

    what = "calibration"

    def __init__(self, graph: Graph, x, n_steps: int, stats: dict, grams: dict, with_gram: bool):
        super().__init__(graph, x, n_steps)
        self.stats, self.grams, self.with_gram = stats, grams, with_gram
        self.input_values: torch.Tensor | None = None

    def input(self, name, node, x):
        self.input_values = time_input(self.graph, self.x, self.n_steps).to(torch.float32)
        return super().input(name, node, x)

    def _add_gram(self, name, gram):
        self.grams[name] = gram if name not in self.grams else self.grams[name] + gram

    def dense(self, name, node: N.Dense, x):
        if self.with_gram and x.shape[-1] <= MAX_GRAM_INPUTS:
            flat = x.reshape(-1, x.shape[-1]).to(torch.float64)
            self._add_gram(name, flat.T @ flat)
        return super().dense(name, node, x)

    def conv2d(self, name, node: N.Conv2d, x):
        w = node.weight
        if self.with_gram and w[0].size <= MAX_GRAM_INPUTS:
            args = (tuple(w.shape[2:]), int(node.stride), int(node.padding))
            g = int(node.groups)
            if g == 1:
                self._add_gram(name, _patch_gram(x, *args))
            else:  # one Gram per group, stacked (G, n, n): a group's channels see their own patches
                cg = x.shape[2] // g
                self._add_gram(name, torch.stack([_patch_gram(x[:, :, k * cg:(k + 1) * cg], *args) for k in range(g)]))
        return super().conv2d(name, node, x)

    def lif_forward(self, name, node: N.LIF, x):
        a, s, u, _ = lif_forward(x, node.tau_m, node.tau_s, node.threshold)
        st = self.stats.setdefault(name, {"max_abs_current": 0.0, "max_abs_membrane": 0.0, "p999": [], "spikes": 0.0,
                                          "count": 0, "samples": 0})
        st["max_abs_current"] = max(st["max_abs_current"], float(x.abs().max()))
        st["max_abs_membrane"] = max(st["max_abs_membrane"], float(u.abs().max()))
        flat = x.abs().flatten()
        k = max(1, int(round(0.999 * flat.numel())))
        st["p999"].append(float(flat.kthvalue(k).values))
        st["spikes"] += float(s.sum())
        st["count"] += s.numel()
        st["samples"] += int(x.shape[1])
        return a, s


@torch.no_grad()
def calibrate(graph: Graph, batches: list[torch.Tensor], n_steps: int, with_gram: bool = False) -> tuple[dict, dict]:
    """Run the float model (the interpreter's kernels) on the batches and collect per-LIF
    maxima of |current|, |membrane|, the 99.9th percentile of |current|, the spike rate,
    with ``with_gram`` the Gram matrix of each synapse's input (``"gram"``), and the input's
    values. Returns (stats per LIF, input info)."""
    stats: dict[str, dict] = {}
    grams: dict[str, torch.Tensor] = {}
    inp_vals = []
    for xb in batches:
        walker = Calibrator(graph, xb, n_steps, stats, grams, with_gram)
        walker.run()
        inp_vals.append(walker.input_values)
    for syn, gram in grams.items():
        stats[graph.successors(syn)[0]]["gram"] = gram.numpy()
    return stats, {"values": torch.cat([p.flatten() for p in inp_vals])}


def choose_input(node: N.Input, values: torch.Tensor, bits: int) -> tuple[N.IntInput, dict]:
    """Graded input for analog data (an exact power-of-two-like grid when the data lies on
    one, e.g. digits k/16 → scale 16), binary for 0/1 event frames."""
    vals = values.to(torch.float64)
    max_abs = float(vals.abs().max()) if vals.numel() else 0.0
    lim = 2 ** (bits - 1) - 1
    binary = node.encoding == "events" and bool(((vals == 0) | (vals == 1)).all())
    if binary:
        return N.IntInput(shape=tuple(node.shape), encoding="binary", scale=1.0, bits=1), {
            "encoding": "binary", "scale": 1.0, "bits": 1, "exact": True, "max_abs": max_abs, "error_max": 0.0}
    if max_abs == 0.0:
        raise TsslcError(f"input '{node.shape}': the calibration data are all zero")
    scale, exact = None, False
    for k in EXACT_SCALES:
        if k * max_abs <= lim and bool(((vals * k) - torch.round(vals * k)).abs().max() < 1e-6):
            scale, exact = float(k), True
            break
    if scale is None:
        scale = lim / max_abs
    q = torch.sign(vals * scale) * torch.floor((vals * scale).abs() + 0.5)
    err = float((q / scale - vals).abs().max())
    return N.IntInput(shape=tuple(node.shape), encoding="graded", scale=scale, bits=bits), {
        "encoding": "graded", "scale": scale, "bits": bits, "exact": exact, "max_abs": max_abs, "error_max": err}


ROUNDINGS = ("gptq", "nearest")


def quantize(graph: Graph, target, calibration: np.ndarray | torch.Tensor | Iterable, *, n_steps: int | None = None,
             rounding: str = "gptq") -> Graph:
    """Float ``graph`` → compiled graph for ``target`` (a :class:`tsslc.targets.base.Target`),
    calibrated on ``calibration`` (one input batch, or an iterable of batches / (x, y) pairs,
    in the float interpreter's input layout). ``rounding``: ``"gptq"`` rounds each layer's
    weights so that the current error over the calibration inputs stays small
    (where the target supports it; the report says per layer what was used), ``"nearest"``
    rounds every weight on its own."""
    if rounding not in ROUNDINGS:
        raise TsslcError(f"unknown rounding {rounding!r} (expected one of {', '.join(ROUNDINGS)})")
    graph.validate()  # values first (NaN weights, threshold <= 0, ...): one error naming the node
    pairs = layer_chain(graph)
    if not pairs:
        raise QuantizationError("the graph has no spiking layer to quantize")
    T = n_steps_of(graph, n_steps)
    batches = _batches(calibration)
    raw, inp = calibrate(graph, batches, T, with_gram=bool(getattr(target, "uses_input_gram", False)))
    in_name = graph.input_name
    int_input, input_report = target.choose_input(graph[in_name], inp["values"], T)

    out = Graph(copy.deepcopy(graph.metadata))
    out.metadata["target"] = target.name
    layers = []
    replaced: dict[str, N.Node] = {in_name: int_input}
    in_scale = input_report["scale"]
    in_tau = graph[in_name].tau_s
    for syn, lif in pairs:
        st = raw[lif]
        stats = LayerStats(
            name=lif, synapse=syn, in_scale=in_scale, in_tau_s=in_tau,
            max_abs_current=st["max_abs_current"], max_abs_membrane=st["max_abs_membrane"],
            p999_abs_current=max(st["p999"]), spike_rate=st["spikes"] / max(1, st["count"]), n_samples=st["samples"],
            input_gram=st.get("gram"), rounding=rounding,
        )
        if not (np.isfinite(stats.max_abs_current) and np.isfinite(stats.max_abs_membrane)):
            raise TsslcError(f"layer '{lif}': its currents overflow on the calibration data (max |current| "
                             f"{stats.max_abs_current:g}): the weights of '{syn}' or the calibration inputs are too large to quantize")
        q = target.quantize_layer(graph[syn], graph[lif], stats)
        replaced[syn], replaced[lif] = q.synapse, q.lif
        row = {"name": lif, "synapse": syn, "kind": graph[syn].kind, "calibration_max_current": stats.max_abs_current,
               "calibration_max_membrane": stats.max_abs_membrane, "calibration_spike_rate": stats.spike_rate}
        row.update(q.report)
        layers.append(row)
        in_scale, in_tau = 1.0, graph[lif].tau_s  # the next synapse sees this layer's binary spikes
    for name, node in graph.items():
        out.add(name, replaced.get(name, node))
    for s, d in graph.edges():
        out.connect(s, d)
    out.metadata["quantization"] = {
        "target": target.name,
        "variant": getattr(target, "variant_name", "") or None,
        "calibration_samples": int(sum(int(b.shape[0]) for b in batches)),
        "input": input_report,
        "layers": layers,
    }
    out.validate()
    return out
