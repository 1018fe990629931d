"""tsslc: TSSL-BP training, a graph IR, and verified deployment of spiking networks.

The public API (:mod:`tsslc.api`), here at the top level::

    tsslc.load(path) / tsslc.save(graph, path)      model files
    tsslc.train(config, ...) -> TrainResult         TSSL-BP training (network, metrics, checkpoint)
    tsslc.export(result_or_checkpoint) -> Graph     the float IR
    tsslc.compile(graph, target, ...) -> Graph      quantize + map for loihi2 | truenorth
    tsslc.simulate(graph, x, backend=...)           float | intsim | lava -> BackendResult
    tsslc.verify(float_graph, compiled, x, y)       layer-by-layer equivalence -> EquivalenceReport
    tsslc.energy(result, target) -> EnergyReport    counts priced with the target's sourced table
    tsslc.load_data(dataset, split, samples)        (x, y) in simulate's layout

Tensors over time are time first, ``(T, B, *shape)``; a static input may be ``(B, *shape)``.
Names are imported on first use, so ``import tsslc`` (and the command line) stays light.
"""

__version__ = "0.2.0"

_API = ("TrainResult", "EquivalenceReport", "EnergyReport", "load", "save", "train", "export", "compile",
        "simulate", "verify", "energy", "load_data", "BACKENDS", "TARGETS")

__all__ = ["__version__", *_API]


def __getattr__(name):
    if name in _API:
        from tsslc import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tsslc' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))
