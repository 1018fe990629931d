"""Trained :class:`tsslc.network.Network` → IR :class:`Graph`.

Naming: a spiking layer ``L`` of the config becomes a synapse node ``L.synapse`` (dense or
conv2d) and a LIF node ``L`` (so spikes are reported under the config's layer names);
pooling, dropout and flatten keep their names; the graph starts at ``input`` and ends at
``output_psc``.
"""

from __future__ import annotations

import numpy as np

from tsslc.config import canonical_dataset
from tsslc.data import data_options
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.layers import Flatten, SpikingConv2d, SpikingLinear, SumPool2d, TimeDropout


def _weight(layer) -> np.ndarray:
    return layer.weight.detach().cpu().numpy().copy()


def graph_from_network(net) -> Graph:
    cfg = net.config
    events = canonical_dataset(cfg.dataset) == "nmnist"
    g = Graph(
        {
            "n_steps": cfg.n_steps,
            "tau_m": cfg.tau_m,
            "tau_s": cfg.tau_s,
            "n_class": cfg.n_class,
            "dataset": cfg.dataset,
            "loss": cfg.loss,
            "data": data_options(cfg),  # recipe and binning: run/verify read the data as training did
        }
    )
    prev = g.add("input", N.Input(shape=tuple(net.input_shape), encoding="events" if events else "current", tau_s=cfg.tau_s))
    for name, layer in net.layers.items():
        if isinstance(layer, SpikingLinear):
            syn = g.add(f"{name}.synapse", N.Dense(weight=_weight(layer)), after=prev)
        elif isinstance(layer, SpikingConv2d):
            syn = g.add(
                f"{name}.synapse",
                N.Conv2d(weight=_weight(layer), stride=layer.stride, padding=layer.padding, groups=layer.groups),
                after=prev,
            )
        elif isinstance(layer, SumPool2d):
            prev = g.add(name, N.SumPool2d(kernel=layer.kernel_size, theta=layer.theta), after=prev)
            continue
        elif isinstance(layer, TimeDropout):
            prev = g.add(name, N.Dropout(p=layer.p), after=prev)
            continue
        elif isinstance(layer, Flatten):
            prev = g.add(name, N.Flatten(), after=prev)
            continue
        else:  # pragma: no cover - Network only builds the layers above
            raise TypeError(f"cannot export layer {name!r} of type {type(layer).__name__}")
        prev = g.add(name, N.LIF(shape=tuple(net.shapes[name]), tau_m=layer.tau_m, tau_s=layer.tau_s, threshold=layer.threshold), after=syn)
    g.add("output_psc", N.Output(shape=(cfg.n_class,)), after=prev)
    g.validate()
    return g
