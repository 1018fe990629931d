"""tsslc.backends.lava.build_network: a compiled graph as standard lava.proc processes only,
with its ports handed back. Here a user's set-up: Lava's own source and sinks
(``lava.proc.io.source.RingBuffer``, ``lava.proc.io.sink.RingBuffer``), Lava's own run
configuration without any model map, spikes read with ``Var.get`` — compared with intsim.
"""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
import torch

import tsslc
from tsslc.backends.lava import build_network
from tsslc.backends.lava import runner
from tsslc.data.digits import digits_arrays
from tsslc.errors import TsslcError
from tsslc.targets import get_target

from lava.magma.core.run_conditions import RunSteps  # noqa: E402  (tsslc.backends.lava imported lava)
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402
from lava.proc.io.sink import RingBuffer as LavaSink  # noqa: E402
from lava.proc.io.source import RingBuffer as LavaSource  # noqa: E402


def reachable(start_processes) -> set:
    """Every process connected to ``start_processes`` through any port, found with Lava's own
    port API (virtual ports — reshape, flatten — resolved to the processes behind them)."""
    seen, todo = set(), list(start_processes)
    while todo:
        proc = todo.pop()
        if proc in seen:
            continue
        seen.add(proc)
        for port in proc.out_ports.members:
            todo.extend(p.process for p in port.get_dst_ports())
        for port in proc.in_ports.members:
            todo.extend(p.process for p in port.get_src_ports())
    return seen


def _only_lava_proc(processes) -> None:
    for proc in processes:
        module = type(proc).__module__
        assert module.startswith("lava.proc."), f"{type(proc).__name__} from {module} is not a standard Lava process"


def _run_with_lava_sinks(compiled, x):
    """A user's run: build_network, Lava's RingBuffer source into .inp, one Lava sink per
    population, Loihi2SimCfg(select_tag='fixed_pt') with no model map; spikes aligned by
    the documented timing (population at depth d emits (b, t) at Lava step b·T + t + 1 + d)."""
    T = int(compiled.metadata["n_steps"])
    net = build_network(compiled, "fixed_pt", reset_interval=T)
    _only_lava_proc(reachable(net.processes))
    payloads = get_target("loihi2").input_spikes(compiled[compiled.input_name],
                                                 torch.as_tensor(x)[None].expand(T, *x.shape)).numpy()
    B = len(x)
    source = LavaSource(data=net.source_data(payloads))
    source.s_out.connect(net.inp)
    n_steps = B * T + net.depth
    sinks = {}
    for name, port in net.outputs.items():
        sinks[name] = LavaSink(shape=port.shape, buffer=n_steps)
        port.connect(sinks[name].a_in)
    _only_lava_proc(reachable([source]))  # the whole run: still nothing outside lava.proc
    try:
        source.run(condition=RunSteps(num_steps=n_steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        data = {name: s.data.get() for name, s in sinks.items()}  # (*lava shape, n_steps), one element per message
    finally:
        source.stop()
    spikes = {}
    for name, d in data.items():
        rows = d.reshape(-1, n_steps).T  # (n_steps, neurons) in Lava's C-order of (W, H, C)
        pop = net.populations[name]
        spikes[name] = runner.aligned(rows, pop.depth, T, B, pop.ir_shape)  # row = step - 1
    return net, spikes


def test_digits_mlp_with_lava_sinks_spikes_like_intsim(digits_loihi2, digits_test_arrays):
    x = digits_test_arrays[0][:100]
    net, spikes = _run_with_lava_sinks(digits_loihi2, x)
    ref = tsslc.simulate(digits_loihi2, x)
    assert set(spikes) == {"hidden", "output"}
    for name, s in spikes.items():
        assert np.array_equal(s, ref.spikes[name]), f"{name}: {(s != ref.spikes[name]).sum()} spikes differ"
        assert s.any()
    assert {type(p).__name__ for p in net.processes} == {"Dense", "LIFReset"}
    assert not multiprocessing.active_children()


def test_pooled_cnn_with_lava_sinks_spikes_like_intsim(digits_cnn_graph, digits_test_arrays):
    compiled = tsslc.compile(digits_cnn_graph, "loihi2", digits_arrays()[0][:256])
    x = digits_test_arrays[0][:30]
    net, spikes = _run_with_lava_sinks(compiled, x)
    ref = tsslc.simulate(compiled, x)
    for name, s in spikes.items():
        assert np.array_equal(s, ref.spikes[name]), f"{name}: {(s != ref.spikes[name]).sum()} spikes differ"
        assert s.any()
    assert tuple(net.inp.shape) == (8, 8, 1)  # a conv reads the input: W, H, C
    assert {type(p).__name__ for p in net.processes} == {"Conv", "Dense", "LIFReset"}


def test_the_network_holds_nothing_outside_lava_proc_and_streams_without_reset(digits_loihi2):
    """Without a reset interval every population is a plain LIF (a stream); the network has
    no source and no sink, its open input port takes the IR's flatten order; the
    simulation back end's network is the same plus its own source and SpikeSinks."""
    net = build_network(digits_loihi2)
    procs = reachable(net.processes)
    assert procs == set(net.processes)
    _only_lava_proc(procs)
    assert {type(p).__name__ for p in procs} == {"Dense", "LIF"}
    assert tuple(net.inp.shape) == (64,) and net.input_layout == "flat" and net.input_message_bits == 8
    assert net.out is net.populations["output"].process.s_out
    lowered = runner.lower(digits_loihi2, np.zeros((5, 2, 1, 8, 8), np.int64), 5, "/nonexistent")
    kinds = {type(p).__name__ for p in reachable(lowered.network.processes)}
    assert kinds == {"Dense", "LIFReset", "RingBuffer", "SpikeSink"}
    assert {type(p).__module__ for p in lowered.models if type(p).__name__ == "SpikeSink"} == \
        {"tsslc.backends.lava.sink"}


def test_build_network_refuses_what_lava_cannot_run(digits_graph, digits_loihi2):
    with pytest.raises(TsslcError, match="compiled for loihi2"):
        build_network(digits_graph)
    with pytest.raises(TsslcError, match="reset_interval must be >= 1"):
        build_network(digits_loihi2, reset_interval=0)
    net = build_network(digits_loihi2, reset_interval=5)
    with pytest.raises(TsslcError, match="source data of shape"):
        net.attach_source(np.zeros((8, 8, 10), np.int32))
