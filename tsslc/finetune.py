"""Hardware-aware fine-tuning: train a float network through a target's rounding.

The forward pass sees what the chip computes, the backward pass is TSSL-BP's as before
(straight-through estimator for the rounding):

* **weights**: every access to a spiking layer's weight returns ``w + (w_q - w).detach()``,
  where ``w_q`` is the target's own quantization of the current weights
  (:meth:`Target.quantize_layer`, scaled back by its report's ``weight_unit``) — for
  truenorth the per-neuron table step and axon-type levels, for loihi2 the 8-bit grid;
* **input**: the network input goes through the target's input encoding
  (:meth:`Target.input_spikes` / scale), e.g. 0/1 pixels on truenorth;
* **decays**: the float time constants become the ones the chip's integer decays realise
  (report ``tau_m_effective`` / ``tau_s_effective``, e.g. τs 3 → 3.2 on truenorth's
  shift decays), so the fine-tuned float model has the chip's dynamics.

Calibration (the scale bounds from currents and membranes) is measured once with the
quantize pass, the weights are requantized at every step. The returned network is a plain
float :class:`~tsslc.network.Network` (config with the effective time constants), to be
compiled as usual. (It sits above the pipeline, like the commands: it trains through
the passes and targets.)
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.export import graph_from_network
from tsslc.network import Network
from tsslc.targets.base import LayerStats
from tsslc.targets.quantize import quantize
from tsslc.passes.structural import drop_dropout, fold_pooling
from tsslc.training.trainer import WEIGHT_LIMIT, evaluate, make_optimizer, train_epoch


@dataclass
class FinetuneResult:
    network: Network
    history: list[dict] = field(default_factory=list)
    compiled_before: object = None  # the compiled graph of the network given
    optimizer: object = None


class _TargetRounding(nn.Module):
    """Parametrization: the target's quantization of the weight, straight-through."""

    def __init__(self, target, synapse, lif, stats: LayerStats, unit_key: str = "weight_unit"):
        super().__init__()
        self.target, self.synapse, self.lif, self.stats, self.unit_key = target, synapse, lif, stats, unit_key

    def quantized(self, w: torch.Tensor) -> torch.Tensor:
        if not torch.isfinite(w).all():
            raise TsslcError(f"fine-tuning diverged: the weights of layer '{self.stats.name}' hold NaN or infinite "
                             f"values (lower --lr)")
        syn = dataclasses.replace(self.synapse, weight=w.detach().cpu().numpy().astype(np.float32))
        q = self.target.quantize_layer(syn, self.lif, self.stats)
        unit = q.report.get(self.unit_key)
        if unit is None:
            raise TsslcError(f"target '{self.target.name}' does not report '{self.unit_key}' for layer "
                             f"'{self.stats.name}'; fine-tuning needs it to scale the integer weights back")
        wq = np.asarray(q.synapse.weight, dtype=np.float64) * float(unit)
        return torch.as_tensor(wq, dtype=w.dtype, device=w.device)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w + (self.quantized(w) - w).detach()


def _rows(compiled) -> dict[str, dict]:
    return {row["name"]: row for row in compiled.metadata["quantization"]["layers"]}


def _tau(v) -> float:
    return math.inf if v is None else float(v)


def hardware_view(network: Network, target, calibration) -> tuple[Network, list, object]:
    """A copy of ``network`` whose forward computes through ``target``'s rounding; returns
    ``(copy, handles to remove, compiled graph of the original)``."""
    float_graph = graph_from_network(network)
    pools = float_graph.of_type(N.SumPool2d)
    if pools:
        raise TsslcError(f"fine-tuning through pooling is not supported (layer '{pools[0]}'): the target rounds the "
                         f"folded synapse after it; fine-tune a net without pooling, or compile without fine-tuning")
    compiled = quantize(drop_dropout(float_graph), target, calibration)
    rows = _rows(compiled)
    net = copy.deepcopy(network)
    first = next(iter(rows.values()))
    taus_m = {_tau(r.get("tau_m_effective")) for r in rows.values()}
    taus_s = {_tau(r.get("tau_s_effective")) for r in rows.values() if r.get("tau_s") is not None}
    if len(taus_m) != 1 or len(taus_s) > 1:
        raise TsslcError(f"fine-tuning for '{target.name}' needs one effective tau_m/tau_s for all layers, got "
                         f"{sorted(taus_m)} / {sorted(taus_s)}")
    tau_m, tau_s = taus_m.pop(), (taus_s.pop() if taus_s else net.config.tau_s)
    net.config = dataclasses.replace(net.config, tau_m=tau_m, tau_s=tau_s)
    in_node = compiled[compiled.input_name]
    in_scale = float(compiled.metadata["quantization"]["input"]["scale"])
    handles = []
    if isinstance(in_node, N.IntInput):
        def encode_input(module, args):
            x = args[0]
            xq = target.input_spikes(in_node, x).to(x.dtype) / in_scale
            return (xq, *args[1:])
        handles.append(net.register_forward_pre_hook(encode_input))
    for layer in net.spiking_layers:
        row = rows.get(layer.name)
        if row is None:
            raise TsslcError(f"layer '{layer.name}' is missing from the quantization report")
        layer.tau_m, layer.tau_s = tau_m, tau_s
        stats = LayerStats(
            name=layer.name, synapse=row["synapse"],
            in_scale=in_scale if layer.name == first["name"] else 1.0,
            in_tau_s=(tau_s if row.get("tau_s") is not None else None),
            max_abs_current=float(row.get("calibration_max_current", 0.0)),
            max_abs_membrane=float(row.get("calibration_max_membrane", 0.0)),
        )
        lif = dataclasses.replace(float_graph[layer.name], tau_m=tau_m, tau_s=tau_s)
        parametrize.register_parametrization(layer, "weight", _TargetRounding(target, float_graph[row["synapse"]],
                                                                              lif, stats))
    return net, handles, compiled


def strip(net: Network, handles, snap: bool = True) -> Network:
    """Back to a plain float network without the input hook. ``snap``: keep the weights the
    forward pass used (on the target's grid, so the network compiles back to exactly these
    integers and the float model is the one the chip runs); else the unrounded shadow
    weights."""
    for h in handles:
        h.remove()
    for layer in net.spiking_layers:
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=snap)
    return net


def finetune(network: Network, target, train_set, test_set, epochs: int = 3, calibration=None, seed: int = 0,
             lr: float | None = None, device: str = "cpu", progress: bool = False, snap: bool = True) -> FinetuneResult:
    """Fine-tune ``network`` through ``target``'s rounding for ``epochs`` epochs.

    ``calibration``: input batch for the quantize pass (default: 256 training samples drawn
    evenly from every class, :func:`tsslc.data.stratified_indices`). ``history`` rows: train loss/accuracy and test accuracy *under the target's
    rounding* (the float forward with quantized weights, input and decays). The returned
    network holds the on-grid weights its forward pass used (``snap``, see :func:`strip`)."""
    if epochs < 1:
        raise TsslcError(f"epochs must be >= 1, got {epochs}")
    if calibration is None:
        from tsslc.data import sample_arrays

        calibration = torch.from_numpy(sample_arrays(train_set, 256)[0])
    net, handles, compiled = hardware_view(network, target, calibration)
    if lr is not None:
        net.config = dataclasses.replace(net.config, lr=float(lr))
    net.to(device)
    opt = make_optimizer(net, net.config)
    result = FinetuneResult(net, compiled_before=compiled, optimizer=opt)
    try:
        for epoch in range(1, epochs + 1):
            row = {"epoch": epoch}
            row.update(train_epoch(net, opt, train_set, net.config, device, seed, epoch, progress=progress,
                                   desc=f"finetune {epoch}/{epochs}"))
            with torch.no_grad():
                for layer in net.spiking_layers:  # clamp the float weights (clamp_weights sees the rounded ones)
                    layer.parametrizations.weight.original.clamp_(-WEIGHT_LIMIT, WEIGHT_LIMIT)
            row["test_loss"], row["test_acc"] = evaluate(net, test_set, net.config, device)
            result.history.append(row)
    finally:
        strip(net, handles, snap)
        net.eval()
    return result


def target_accuracy(network: Network, target, calibration, x, y, backend: str = "intsim"):
    """(accuracy, compiled graph, back-end result without counters) of ``network`` compiled
    for ``target`` and run on ``backend`` over the samples ``x`` with labels ``y``."""
    from tsslc.backends import get_backend

    compiled = quantize(fold_pooling(graph_from_network(network)), target, calibration)
    res = get_backend(backend)(compiled, x, counters=False)
    acc = float((res.predictions() == np.asarray(y)).mean())
    return acc, compiled, res


__all__ = ["finetune", "FinetuneResult", "hardware_view", "strip", "target_accuracy"]
