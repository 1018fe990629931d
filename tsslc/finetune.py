"""Hardware-aware fine-tuning: train a float network through a target's rounding.

The forward pass sees what the chip computes, the backward pass is TSSL-BP's as before
(straight-through estimator for the rounding):

* **weights**: every access to a spiking layer's weight returns ``w + (w_q - w).detach()``,
  where ``w_q`` is the target's own quantization of the current weights
  (:meth:`Target.quantize_layer`, scaled back by its report's ``weight_unit``) — for
  truenorth the per-neuron table step and axon-type levels, for loihi2 the 8-bit grid;
* **input**: the network input goes through the target's input encoding
  (:meth:`Target.input_spikes` / scale), e.g. sigma-delta rate spikes on truenorth (a
  static image becomes (T, B, ...) 0/1 frames);
* **pooling**: the target rounds the synapse the pool is folded into (what the chip
  runs); the float layer after the pool reads the rounded weight back from one copy of
  each pooled block, or (``fold=True``, :func:`fold_network`) the net is trained as its
  folded synapses, which also hold the compile's error-feedback levels
  (``start="compiled"``);
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
from tsslc.passes.structural import drop_dropout, fold_pooling, fold_synapse
from tsslc.training.trainer import WEIGHT_LIMIT, evaluate, make_optimizer, train_epoch


@dataclass
class FinetuneResult:
    network: Network
    history: list[dict] = field(default_factory=list)
    compiled_before: object = None  # the compiled graph of the network given
    optimizer: object = None


class _TargetRounding(nn.Module):
    """Parametrization: the target's quantization of the weight, straight-through. With
    ``pool`` = (SumPool2d node, its input shape) the synapse follows a sum pool: the target
    rounds the folded synapse (:func:`tsslc.passes.structural.fold_pooling`, what the chip
    runs), and the rounded weight is read back from one copy of each pooled input's k x k
    block (the copies are equal under per-weight rounding, which fine-tuning uses: the
    calibration carries no Gram matrix), divided by the pool's θ."""

    def __init__(self, target, synapse, lif, stats: LayerStats, unit_key: str = "weight_unit", pool=None):
        super().__init__()
        self.target, self.synapse, self.lif, self.stats, self.unit_key = target, synapse, lif, stats, unit_key
        self.pool = pool

    def quantized(self, w: torch.Tensor) -> torch.Tensor:
        if not torch.isfinite(w).all():
            raise TsslcError(f"fine-tuning diverged: the weights of layer '{self.stats.name}' hold NaN or infinite "
                             f"values (lower --lr)")
        syn = dataclasses.replace(self.synapse, weight=w.detach().cpu().numpy().astype(np.float32))
        if self.pool is not None:
            syn = fold_synapse(self.pool[0], syn, self.pool[1], self.stats.name)
        q = self.target.quantize_layer(syn, self.lif, self.stats)
        unit = q.report.get(self.unit_key)
        if unit is None:
            raise TsslcError(f"target '{self.target.name}' does not report '{self.unit_key}' for layer "
                             f"'{self.stats.name}'; fine-tuning needs it to scale the integer weights back")
        wq = np.asarray(q.synapse.weight, dtype=np.float64) * float(unit)
        if self.pool is not None:
            wq = unfold_synapse(self.pool[0], wq, self.pool[1], tuple(w.shape))
        return torch.as_tensor(wq, dtype=w.dtype, device=w.device)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w + (self.quantized(w) - w).detach()


def unfold_synapse(pool, folded: np.ndarray, in_shape, shape: tuple) -> np.ndarray:
    """The inverse of folding ``pool`` into a synapse: one copy of every k x k block, / θ
    (conv: ``folded`` (O, C, K·k, K·k); dense: (O, C·H·W) over the pool's input)."""
    k, th = int(pool.kernel), float(pool.theta)
    if len(shape) == 4:
        return folded[:, :, ::k, ::k] / th
    c, h, wd = in_shape
    ph, pw = h // k, wd // k
    full = folded.reshape(folded.shape[0], c, h, wd)
    return full[:, :, : ph * k: k, : pw * k: k].reshape(shape) / th


def _pools(graph) -> dict[str, tuple]:
    """{synapse: (SumPool2d node, its input shape)} for the synapses a sum pool feeds
    (directly, or through a flatten)."""
    shapes = graph.shapes()
    out = {}
    for name in graph.of_type(N.SumPool2d):
        src = graph.predecessors(name)[0]
        for succ in graph.successors(name):
            targets = graph.successors(succ) if isinstance(graph[succ], N.Flatten) else [succ]
            for syn in targets:
                out[syn] = (graph[name], tuple(shapes[src]))
    return out


def _rows(compiled) -> dict[str, dict]:
    return {row["name"]: row for row in compiled.metadata["quantization"]["layers"]}


def _tau(v) -> float:
    return math.inf if v is None else float(v)


def fold_network(network: Network) -> Network:
    """A float network computing what ``network`` computes with every sum pool folded into
    the synapse after it (:func:`tsslc.passes.structural.fold_pooling`, the synapses the chip
    runs): a conv after a pool of k gets kernel K·k, stride s·k, padding P·k; a dense after
    pool + flatten sees the unpooled inputs (a fan-in mask is folded likewise). Its config
    is the folded one; its weights are the folded weights. ``network`` itself if it has no
    pooling layer."""
    from tsslc.config import parse_config
    from tsslc.ir.nodes import Dense, SumPool2d

    cfg = network.config
    if not any(lc.type == "pooling" for lc in cfg.layers):
        return network
    folded = fold_pooling(drop_dropout(graph_from_network(network)))
    raw = cfg.to_dict()
    layers, pool, pooled_shape, masks = {}, None, None, {}
    prev_shape = tuple(network.input_shape)
    for lc in cfg.layers:
        params = raw["Layers"][lc.name]
        if lc.type == "pooling":
            if pool is not None:
                raise TsslcError(f"{cfg.source}: pooling '{lc.name}' follows another pool; merge the pools first")
            pool, pooled_shape = lc, prev_shape
            prev_shape = network.shapes[lc.name]
            continue
        if pool is not None and lc.type in ("conv", "linear"):
            k = int(pool["kernel_size"])
            if lc.type == "conv":
                params.update(kernel_size=int(lc["kernel_size"]) * k, stride=int(lc["stride"]) * k,
                              padding=int(lc["padding"]) * k)
            else:
                w = folded[f"{lc.name}.synapse"].weight
                params["n_inputs"] = int(w.shape[1])
                layer = network.layers[lc.name]
                if getattr(layer, "fan_in", None) is not None:
                    mask = fold_synapse(SumPool2d(kernel=k, theta=1.0), Dense(weight=layer.mask.cpu().numpy()),
                                        pooled_shape, lc.name).weight
                    masks[lc.name] = mask != 0
                    params["fan_in"] = int(masks[lc.name].sum(1).max())
            pool = None
        layers[lc.name] = params
        prev_shape = network.shapes[lc.name]
    raw["Layers"] = layers
    out = Network(parse_config(raw, f"{cfg.source} (pooling folded)"))
    with torch.no_grad():
        for layer in out.spiking_layers:
            layer.weight.copy_(torch.as_tensor(np.array(folded[f"{layer.name}.synapse"].weight), dtype=layer.weight.dtype))
            if layer.name in masks:
                layer.mask.copy_(torch.as_tensor(masks[layer.name], dtype=layer.mask.dtype))
    return out.train(network.training)


def hardware_view(network: Network, target, calibration, start: str = "float") -> tuple[Network, list, object]:
    """A copy of ``network`` whose forward computes through ``target``'s rounding; returns
    ``(copy, handles to remove, compiled graph of the original)``. ``start="compiled"``:
    the copy starts from the compiled integers (the compile's rounding, e.g. error
    feedback, rather than the per-weight rounding the forward applies) wherever the float
    layer can hold them (not behind a pool: see :func:`fold_network`), and the rounding
    keeps the compile's scale, so the starting weights are on the grid."""
    if start not in ("float", "compiled"):
        raise TsslcError(f"unknown start {start!r} (expected 'float' or 'compiled')")
    float_graph = drop_dropout(graph_from_network(network))
    pools = _pools(float_graph)
    for p in float_graph.of_type(N.SumPool2d):
        if any(isinstance(float_graph[s], N.SumPool2d) for s in float_graph.successors(p)):
            raise TsslcError(f"fine-tuning through pool '{p}' that feeds another pool is not supported; merge the pools")
    compiled = quantize(fold_pooling(float_graph), target, calibration)
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
            if in_node.encoding == "rate" and x.dim() == len(in_node.shape) + 1:  # static: spikes over time
                x = x.unsqueeze(0).expand(int(in_node.n_steps), *x.shape)
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
            scale=float(row["scale"]) if start == "compiled" and "scale" in row else None,
        )
        if start == "compiled" and row["synapse"] not in pools and row.get("weight_unit"):
            with torch.no_grad():
                wq = np.asarray(compiled[row["synapse"]].weight, np.float64) * float(row["weight_unit"])
                layer.weight.copy_(torch.as_tensor(wq, dtype=layer.weight.dtype).reshape(layer.weight.shape))
        lif = dataclasses.replace(float_graph[layer.name], tau_m=tau_m, tau_s=tau_s)
        parametrize.register_parametrization(layer, "weight", _TargetRounding(target, float_graph[row["synapse"]],
                                                                              lif, stats, pool=pools.get(row["synapse"])))
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
             lr: float | None = None, device: str = "cpu", progress: bool = False, snap: bool = True,
             start: str = "float", fold: bool = False) -> FinetuneResult:
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
    if fold:
        network = fold_network(network)
    net, handles, compiled = hardware_view(network, target, calibration, start=start)
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


__all__ = ["finetune", "FinetuneResult", "fold_network", "hardware_view", "strip", "target_accuracy"]
