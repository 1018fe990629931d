"""Our NeuroBench view against the real ``neurobench`` package on the same trained net.

NeuroBench measures a torch module through hooks on its nn.Linear layers and activation
modules. The module here is the trained digits MLP written the way it is deployed (the
synapses fed by the input values and by spikes, the PSC filter moved into each
population's current), stepping through time; our counters are given the spikes that this
very module produced, so both sides count the same activity.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurobench.benchmarks import Benchmark
from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
from neurobench.models import TorchModel

from tsslc.ir import nodes as N
from tsslc.backends.counters import count
from tsslc.report.neurobench import neurobench_view


class StepLIF(nn.Module):
    """One step of the TSSL-BP LIF with its input current filtered by the synapse:
    I[t] = (1-θs)·I[t-1] + θs·x[t];  u = (1-θm)·u' + I;  s = u > V;  u' = u·(1-s)."""

    def __init__(self, tau_m, tau_s, threshold):
        super().__init__()
        self.tau_m, self.tau_s, self.threshold = tau_m, tau_s, threshold
        self.recorded: list[torch.Tensor] = []

    def reset(self):
        self.cur = self.mem = None

    def forward(self, x):
        if self.cur is None:
            self.cur, self.mem = torch.zeros_like(x), torch.zeros_like(x)
        self.cur = self.cur + (x - self.cur) / self.tau_s
        self.mem = self.mem - self.mem / self.tau_m + self.cur
        s = (self.mem > self.threshold).to(x.dtype)
        self.mem = self.mem * (1 - s)
        self.recorded.append(s)
        return s


class DeployedMLP(nn.Module):
    def __init__(self, graph):
        super().__init__()
        self.names = graph.of_type(N.LIF)
        self.fcs = nn.ModuleList()
        self.lifs = nn.ModuleList()
        for name in self.names:
            w = torch.from_numpy(graph[f"{name}.synapse"].weight)
            fc = nn.Linear(w.shape[1], w.shape[0], bias=False)
            fc.weight.data.copy_(w)
            lif = graph[name]
            self.fcs.append(fc)
            self.lifs.append(StepLIF(lif.tau_m, lif.tau_s, lif.threshold))
        self.n_steps = graph.metadata["n_steps"]

    def forward(self, x):  # x (B, 1, 8, 8) static image, the same value every step
        for lif in self.lifs:
            lif.reset()
        out = 0
        for _ in range(self.n_steps):
            a = x.flatten(1)
            for fc, lif in zip(self.fcs, self.lifs):
                a = lif(fc(a))
            out = out + a
        return out


def test_our_neurobench_view_equals_neurobench(digits_graph, digits_test_arrays):
    x, y = digits_test_arrays
    x, y = x[:120], y[:120]
    net = DeployedMLP(digits_graph)
    model = TorchModel(net)
    model.add_activation_module(StepLIF)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                         batch_size=len(x))
    bench = Benchmark(model, loader, [], [],
                      [[Footprint, ParameterCount, ConnectionSparsity], [SynapticOperations, ActivationSparsity]])
    theirs = bench.run(quiet=True)

    spikes = {name: torch.stack(lif.recorded[-digits_graph.metadata["n_steps"]:])
              for name, lif in zip(net.names, net.lifs)}
    ours = neurobench_view(digits_graph, count(digits_graph, spikes, x))

    syn_t, syn_o = theirs["SynapticOperations"], ours["SynapticOperations"]
    assert syn_o["Effective_MACs"] == pytest.approx(syn_t["Effective_MACs"], rel=1e-12)
    assert syn_o["Effective_ACs"] == pytest.approx(syn_t["Effective_ACs"], rel=1e-12)
    assert syn_o["Dense"] == pytest.approx(syn_t["Dense"], rel=1e-12)
    assert syn_o["Effective_MACs"] > 0 and syn_o["Effective_ACs"] > 0
    assert ours["ActivationSparsity"] == pytest.approx(theirs["ActivationSparsity"], abs=1e-12)
    assert 0 < ours["ActivationSparsity"] < 1
    assert ours["Footprint"] == theirs["Footprint"] == 4 * (64 * 100 + 100 * 10)
    assert ours["ParameterCount"] == theirs["ParameterCount"]
    assert round(ours["ConnectionSparsity"], 4) == theirs["ConnectionSparsity"]
    # the deployed module is the trained net: its predictions are as accurate
    pred = np.asarray(net(torch.from_numpy(x)).argmax(-1))
    assert (pred == y).mean() >= 0.9
