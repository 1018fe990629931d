"""The reference interpreter reproduces a trained conv net with sum pooling exactly.

``trained_conv_net()`` (cached per process) is shared with tests/test_passes.py: a small conv
net really trained on digits, 1×8×8 → 8C3 → P2 → 16C3 (padding 1) → P2 (drops a remainder
row/column) → dropout → 10, about 85 % test accuracy after 6 epochs (~5 s on one core).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from tsslc.config import parse_config
from tsslc.ir import interpreter

CONV_CONFIG = {
    "Network": {"dataset": "digits", "n_steps": 5, "tau_m": 5, "tau_s": 3, "loss": "kernel", "n_class": 10,
                "desired_count": 4, "undesired_count": 1, "lr": 0.01, "batch_size": 32},
    "Layers": {
        "conv_1": {"type": "conv", "in_channels": 1, "out_channels": 8, "kernel_size": 3, "padding": 0, "threshold": 1},
        "pool_1": {"type": "pooling", "kernel_size": 2, "theta": 1.1},
        "conv_2": {"type": "conv", "in_channels": 8, "out_channels": 16, "kernel_size": 3, "padding": 1, "threshold": 1},
        "pool_2": {"type": "pooling", "kernel_size": 2, "theta": 1.1},
        "drop": {"type": "dropout", "p": 0.1},
        "output": {"type": "linear", "n_inputs": 16, "n_outputs": 10, "threshold": 1},
    },
}


@functools.lru_cache(maxsize=1)
def trained_conv_net():
    """(FitResult, graph, x_test, y_test) of the conv net above, trained with seed 0."""
    from tsslc.data.digits import digits_arrays, load_digits_datasets
    from tsslc.ir.export import graph_from_network
    from tsslc.training.trainer import fit

    train_set, test_set = load_digits_datasets()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a net this small trains fastest on one thread
    try:
        result = fit(parse_config(CONV_CONFIG, "conv-test"), train_set, test_set, epochs=6, seed=0)
    finally:
        torch.set_num_threads(threads)
    _, _, xte, yte = digits_arrays()
    return result, graph_from_network(result.network), xte, yte


def test_interpreter_reproduces_trained_conv_net_with_pooling():
    fit, graph, x, y = trained_conv_net()
    assert fit.test_accuracy >= 0.8, fit.history
    kinds = [graph[n].kind for n in graph.order()]
    assert kinds.count("sumpool2d") == 2 and "conv2d" in kinds and "dropout" in kinds
    with torch.no_grad():
        psc, _, rec = fit.network(torch.from_numpy(x), record=True)
    res = interpreter.run(graph, x)
    assert set(rec) == set(res.spikes) == {"conv_1", "conv_2", "output"}
    for name, s in rec.items():
        assert s.sum() > 0, name  # every layer really spikes
        assert torch.equal(s, res.spikes[name]), name
    assert torch.equal(psc, res.output_psc)
    assert np.mean(res.predictions().numpy() == y) == fit.test_accuracy


def test_float64_interpretation_agrees_with_float32():
    _, graph, x, _ = trained_conv_net()
    r32 = interpreter.run(graph, x)
    r64 = interpreter.run(graph, x, dtype=torch.float64)
    assert r64.output_psc.dtype == torch.float64
    total = sum(s.numel() for s in r32.spikes.values())
    same = sum(int((r32.spikes[n] == r64.spikes[n].float()).sum()) for n in r32.spikes)
    assert same / total > 0.999
