"""NeuroBench's metrics (Yik et al., Nat. Commun. 2025; ``neurobench`` 2.3) computed by our own
counters (:mod:`tsslc.backends.counters`), with NeuroBench's exact conventions:

* ``Effective_MACs`` / ``Effective_ACs``: per sample, Σ over synapse layers and steps of
  binarised input × binarised weights (zeros skipped, bias-free); a layer call whose inputs
  are all in {-1, 0, 1} counts ACs, otherwise MACs. In the deployed view that tsslc
  counts — synapses fed by the input values and by spikes, the PSC filter moved into the
  next population — this is exactly our synaptic operations, split as our counters split
  them (graded input steps → MACs, spikes → ACs). Pooling is not counted.
* ``Dense``: the same with every input and weight taken as non-zero, per sample.
* ``ActivationSparsity`` = 1 − spikes / (neurons × steps × samples) over all spiking
  populations.
* ``ConnectionSparsity`` = zero weights / all weights of the synapse layers (NeuroBench
  rounds it to 4 decimals; here unrounded).
* ``Footprint``: bytes of all parameter arrays of the graph (weights, in their dtype);
  ``ParameterCount``: their number of elements.
"""

from __future__ import annotations

import numpy as np

from tsslc.ir.graph import Graph
from tsslc.backends.counters import SYNAPSES, Counters


def static_metrics(graph: Graph) -> dict:
    """Footprint, ParameterCount, ConnectionSparsity of a graph."""
    footprint = params = 0
    zeros = weights = 0
    for name, node in graph.items():
        for arr in node.arrays().values():
            arr = np.asarray(arr)
            footprint += arr.nbytes
            params += arr.size
        if isinstance(node, SYNAPSES):
            w = np.asarray(node.weight)
            zeros += int((w == 0).sum())
            weights += w.size
    return {"Footprint": int(footprint), "ParameterCount": int(params),
            "ConnectionSparsity": zeros / weights if weights else 0.0}


def workload_metrics(counters: Counters) -> dict:
    """SynapticOperations (per sample) and ActivationSparsity of counted activity."""
    n = max(counters.n_samples, 1)
    t = counters.totals()
    slots = t["neurons"] * counters.n_steps * counters.n_samples
    return {
        "SynapticOperations": {"Effective_MACs": t["macs"] / n, "Effective_ACs": t["acs"] / n,
                               "Dense": t["dense_synops"] / n},
        "ActivationSparsity": 1.0 - t["spikes"] / slots if slots else 0.0,
    }


def neurobench_view(graph: Graph, counters: Counters) -> dict:
    """All of the above in one dict, keyed as NeuroBench's ``Benchmark.run`` results."""
    return {**static_metrics(graph), **workload_metrics(counters)}
