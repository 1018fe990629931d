"""A spiking network built from a :class:`~tsslc.config.NetworkConfig`.

Input handling (§2): a static input ``(B, *input_shape)`` is presented as the same value p at
every one of the T steps; event input ``(B, T, *input_shape)`` supplies p[t] per step. Either
is passed through the input PSC filter (:func:`tsslc.functional.input_psc`) before the first
layer. A flatten is inserted automatically before the first linear layer that follows a
spatial layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from tsslc.config import NetworkConfig
from tsslc.errors import TsslcError
from tsslc.functional import input_psc
from tsslc.layers import Flatten, SpikingConv2d, SpikingLayer, SpikingLinear, SumPool2d, TimeDropout, conv_out_hw


class Network(nn.Module):
    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        if config.input_shape is None:
            first = next(l for l in config.layers if l.type in ("conv", "linear"))
            if first.type == "linear":
                in_shape: tuple[int, ...] = (first["n_inputs"],)
            else:
                raise TsslcError(
                    f"{config.source}: the first layer is a conv, so Network needs 'dataset' or 'input_shape'"
                )
        else:
            in_shape = tuple(config.input_shape)
        self.input_shape = in_shape
        self.layers = nn.ModuleDict()
        self.shapes: dict[str, tuple[int, ...]] = {}  # output shape of each layer (no T, B)
        shape = in_shape
        for lc in config.layers:
            where = f"{config.source}: layer '{lc.name}' ({lc.type})"
            if lc.type == "conv":
                if len(shape) != 3:
                    raise TsslcError(f"{where}: needs a (C, H, W) input, got shape {shape}")
                if shape[0] != lc["in_channels"]:
                    raise TsslcError(f"{where}: in_channels is {lc['in_channels']} but its input has {shape[0]} channels (shape {shape})")
                h, w = conv_out_hw(shape[1], shape[2], lc["kernel_size"], lc["stride"], lc["padding"])
                if h < 1 or w < 1:
                    raise TsslcError(f"{where}: kernel {lc['kernel_size']} does not fit input {shape}")
                layer = SpikingConv2d(lc.name, lc["in_channels"], lc["out_channels"], lc["kernel_size"],
                                      lc["threshold"], config.tau_m, config.tau_s, lc["stride"], lc["padding"],
                                      lc["weight_scale"], lc["groups"], config.rule)
                shape = (lc["out_channels"], h, w)
            elif lc.type == "linear":
                n_in = math.prod(shape)
                if len(shape) > 1:
                    self.layers[f"{lc.name}_flatten"] = Flatten(f"{lc.name}_flatten")
                    self.shapes[f"{lc.name}_flatten"] = (n_in,)
                if n_in != lc["n_inputs"]:
                    raise TsslcError(f"{where}: n_inputs is {lc['n_inputs']} but its input has {n_in} features (shape {shape})")
                layer = SpikingLinear(lc.name, lc["n_inputs"], lc["n_outputs"], lc["threshold"], config.tau_m,
                                      config.tau_s, lc["weight_scale"], config.rule, lc.params.get("fan_in"))
                shape = (lc["n_outputs"],)
            elif lc.type == "pooling":
                if len(shape) != 3:
                    raise TsslcError(f"{where}: needs a (C, H, W) input, got shape {shape}")
                k = lc["kernel_size"]
                if shape[1] < k or shape[2] < k:
                    raise TsslcError(f"{where}: kernel {k} does not fit input {shape}")
                layer = SumPool2d(lc.name, k, lc["theta"])
                shape = (shape[0], shape[1] // k, shape[2] // k)
            else:  # dropout
                layer = TimeDropout(lc.name, lc["p"])
            self.layers[lc.name] = layer
            self.shapes[lc.name] = shape
        last = [l for l in self.layers.values() if isinstance(l, SpikingLayer)][-1]
        if shape != (config.n_class,) or not isinstance(last, SpikingLayer):
            raise TsslcError(f"{config.source}: the network's output shape is {shape}, but n_class is {config.n_class}")
        self.output_name = last.name

    @property
    def spiking_layers(self) -> list[SpikingLayer]:
        return [l for l in self.layers.values() if isinstance(l, SpikingLayer)]

    def time_input(self, x: torch.Tensor) -> torch.Tensor:
        """Raw input p as a time-first tensor (T, B, *input_shape), from static (B, *input_shape)
        or time-first (T, B, *input_shape) input (tsslc's one layout, :mod:`tsslc.ir.layout`)."""
        T = self.config.n_steps
        nd = len(self.input_shape)
        dims = ", ".join(map(str, self.input_shape))
        if x.dim() == nd + 1 and tuple(x.shape[1:]) == self.input_shape:
            return x.unsqueeze(0).expand(T, *x.shape)
        if x.dim() == nd + 2 and tuple(x.shape[2:]) == self.input_shape:
            if x.shape[0] != T:
                raise TsslcError(f"input of shape {tuple(x.shape)} has {x.shape[0]} time steps (time first: "
                                 f"(T, B, {dims})), the network runs n_steps={T}")
            return x
        raise TsslcError(f"input of shape {tuple(x.shape)} fits neither static (B, {dims}) nor time-first "
                         f"(T={T}, B, {dims}) data")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The input PSC a_in[t] fed to the first layer (§2)."""
        return input_psc(self.time_input(x), self.config.tau_s)

    def forward(self, x: torch.Tensor, record: bool = False):
        """Returns ``(out_psc, out_spikes)`` time-first, plus ``{layer: spikes}`` if ``record``."""
        a = self.encode(x)
        spikes: dict[str, torch.Tensor] = {}
        s = None
        for name, layer in self.layers.items():
            if isinstance(layer, SpikingLayer):
                a, s = layer(a)
                if record:
                    spikes[name] = s
            else:
                a = layer(a)
        return (a, s, spikes) if record else (a, s)

    @torch.no_grad()
    def clamp_weights(self, limit: float = 4.0) -> None:
        """§6: weights clamped to [-limit, limit] after every optimiser step."""
        for layer in self.spiking_layers:
            layer.weight.clamp_(-limit, limit)


@dataclass(frozen=True)
class LayerShape:
    """One row of :func:`describe`: a layer of the config (and the flatten before a dense
    layer), its output shape without time and batch, and its stored weights."""

    name: str
    type: str  # conv | linear | pooling | dropout | flatten
    shape: tuple[int, ...]
    parameters: int


def describe(config: NetworkConfig) -> list[LayerShape]:
    """The network a config builds, layer by layer, without allocating its weights
    (``tsslc inspect CONFIG.yaml``); raises the same one-line errors as :class:`Network`."""
    with torch.device("meta"), torch.random.fork_rng(devices=[]):
        net = Network(config)
    kinds = {lc.name: lc.type for lc in config.layers}
    rows = [LayerShape("input", "input", tuple(net.input_shape), 0)]
    for name, layer in net.layers.items():
        params = sum(p.numel() for p in layer.parameters())
        rows.append(LayerShape(name, kinds.get(name, "flatten"), tuple(net.shapes[name]), int(params)))
    return rows


def check_train_bytes(config: NetworkConfig) -> None:
    """Refuse a config whose training is estimated past the byte cap (:mod:`tsslc.validate`),
    before anything is allocated: 16 bytes a parameter (weight, gradient, AdamW's two moments)
    and 12 a neuron, step and sample of a batch (membrane, spike and PSC kept for the backward)."""
    from tsslc import validate

    rows = describe(config)
    params = sum(r.parameters for r in rows)
    neurons = sum(validate.shape_bytes(r.shape, 1) for r in rows)
    validate.check_bytes(16 * params + 12 * config.batch_size * config.n_steps * neurons,
                         f"{config.source}: training {params:,} parameters and {neurons:,} neurons "
                         f"(batch {config.batch_size}, {config.n_steps} steps)")


def format_description(config: NetworkConfig, rows: list[LayerShape] | None = None) -> str:
    """:func:`describe` as a text table with the config's recipe and training settings."""
    rows = describe(config) if rows is None else rows
    head = ("layer", "type", "output shape", "parameters")
    body = [(r.name, r.type, "x".join(map(str, r.shape)), f"{r.parameters:,}") for r in rows]
    foot = ("total", "", "", f"{sum(r.parameters for r in rows):,}")
    widths = [max(len(x[i]) for x in (head, *body, foot)) for i in range(4)]

    def line(cells):
        return "  ".join(c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    c = config
    info = (f"dataset={c.dataset}, n_steps={c.n_steps}, tau_m={c.tau_m:g}, tau_s={c.tau_s:g}, loss={c.loss}"
            + (f" ({c.desired_count}/{c.undesired_count})" if c.loss == "count" else "")
            + f", rule={c.rule}, recipe={c.recipe}, prediction={c.prediction_rule}, "
            f"batch={c.batch_size}, epochs={c.epochs}, lr={c.lr:g}")
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([info, line(head), sep, *map(line, body), sep, line(foot)])
