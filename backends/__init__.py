"""Back ends that execute graphs, all returning one result type.

* ``"float"``  — the reference interpreter (:mod:`tsslc.ir.interpreter`) on a *float*
  graph (the yardstick);
* ``"intsim"`` — the integer simulator (:mod:`tsslc.backends.intsim`) on a *compiled*
  graph, using the target's arithmetic (``graph.metadata["target"]``);
* ``"lava"``   — Lava processes (:mod:`tsslc.backends.lava`, imported lazily) on a compiled
  loihi2 graph; its ``run(compiled_graph, x, n_steps, select_tag="fixed_pt",
  progress=False) -> BackendResult`` aligns Lava's spikes to the float time axis.

Every back end's ``run(graph, x, n_steps=None, progress=False, **kw)`` takes ``x`` as
static ``(B, *input_shape)`` or event ``(B, T, *input_shape)`` float data (as the float
interpreter) and returns a :class:`BackendResult`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tsslc.errors import TsslcError


@dataclass
class BackendResult:
    """spikes: {LIF/IntLIF node: (T, B, *shape) uint8}; counters: totals over the batch::

        {"samples": B, "steps": T,
         "spikes": {lif: int},                  # spikes emitted per population
         "synaptic_events": {synapse: int},     # presynaptic spike × non-zero synapse
         "neuron_updates": {lif: int},          # T·B·N (every neuron updates every step)
         "active_neuron_updates": {lif: int},   # (neuron, step) with a non-zero input current
         "inactive_neuron_updates": {lif: int}, # neuron_updates - active_neuron_updates
         "per_core": {"spikes": [..], "synaptic_events": [..], "neuron_updates": [..]}}
                                                # indexed by core (target.core_assignment)

    A back end may leave out counters it cannot measure (the float one reports none but
    spikes)."""

    spikes: dict[str, np.ndarray]
    counters: dict = field(default_factory=dict)
    output_population: str = ""
    backend: str = ""

    @property
    def output_spikes(self) -> np.ndarray:
        return self.spikes[self.output_population]

    def spike_counts(self) -> np.ndarray:
        """(B, n_out) spike counts of the output population."""
        s = self.output_spikes
        return s.reshape(s.shape[0], s.shape[1], -1).sum(0, dtype=np.int64)

    def predictions(self) -> np.ndarray:
        """Class = output neuron with the most spikes (ties: lowest index), (B,) int64."""
        return self.spike_counts().argmax(-1).astype(np.int64)


def _run_float(graph, x, n_steps=None, progress=False, device="cpu", **kw) -> BackendResult:
    from tsslc.ir.interpreter import run

    if kw:
        raise TsslcError(f"float back end: unknown option(s) {', '.join(kw)}")
    res = run(graph, x, n_steps, device=device)
    spikes = {k: v.detach().cpu().numpy().astype(np.uint8) for k, v in res.spikes.items()}
    counters = {"samples": int(next(iter(spikes.values())).shape[1]), "steps": int(next(iter(spikes.values())).shape[0]),
                "spikes": {k: int(v.sum(dtype=np.int64)) for k, v in spikes.items()}}
    return BackendResult(spikes, counters, res.output_population, "float")


def _run_intsim(graph, x, n_steps=None, progress=False, **kw) -> BackendResult:
    from tsslc.backends.intsim import run

    return run(graph, x, n_steps, progress=progress, **kw)


def _lava_module():
    try:
        mod = importlib.import_module("tsslc.backends.lava")
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the checkout
        raise TsslcError(f"the lava back end is not available ({e})") from None
    if not hasattr(mod, "run"):
        raise TsslcError("the lava back end is not available in this version (tsslc.backends.lava has no run())")
    return mod


def _run_lava(graph, x, n_steps=None, progress=False, **kw) -> BackendResult:
    return _lava_module().run(graph, x, n_steps, progress=progress, **kw)


BACKENDS: dict[str, Callable[..., BackendResult]] = {
    "float": _run_float,
    "intsim": _run_intsim,
    "lava": _run_lava,
}


def get_backend(name: str) -> Callable[..., BackendResult]:
    """The ``run`` function of back end ``name``; TsslcError listing the known ones."""
    try:
        fn = BACKENDS[name]
    except KeyError:
        raise TsslcError(f"unknown back end {name!r} (known: {', '.join(BACKENDS)})") from None
    return fn
