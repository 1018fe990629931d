"""Back ends that execute graphs, all returning one result type.

* ``"float"``  — the reference interpreter (:mod:`tsslc.ir.interpreter`) on a *float*
  graph (the yardstick);
* ``"intsim"`` — the integer simulator (:mod:`tsslc.backends.intsim`) on a *compiled*
  graph, using the target's arithmetic (``graph.metadata["target"]``);
* ``"lava"``   — Lava processes (:mod:`tsslc.backends.lava`, imported lazily) on a compiled
  loihi2 graph; its ``run(compiled_graph, x, n_steps, select_tag="fixed_pt",
  progress=False) -> BackendResult`` aligns Lava's spikes to the float time axis.

Every back end's ``run(graph, x, n_steps=None, progress=False, counters=True, **kw)`` takes
``x`` as static ``(B, *input_shape)`` or event ``(B, T, *input_shape)`` float data (as the
float interpreter) and returns a :class:`BackendResult` whose counters all come from
:mod:`tsslc.backends.counters`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tsslc.backends.counters import Counters, count_run
from tsslc.errors import TsslcError


@dataclass
class BackendResult:
    """What a back end returns for one batch.

    * ``spikes``: {LIF/IntLIF node: (T, B, *shape) uint8} on the float model's time axis;
    * ``counters``: the activity of the run (:class:`tsslc.backends.counters.Counters`:
      spikes, synaptic operations, MAC/AC, neuron updates, per core and hops when the graph
      is compiled for a target), made by :func:`tsslc.backends.counters.count` from the
      spikes, the input and the graph — one implementation for every back end, so two back
      ends whose spikes agree report identical counters; ``None`` when counting was turned
      off (``counters=False``);
    * ``info``: what the back end adds about the run itself (Lava: select_tag, Lava steps,
      processes, depth, seconds to build, run and read);
    * ``target``: the target of the compiled graph that ran ("" for the float model)."""

    spikes: dict[str, np.ndarray]
    counters: Counters | None = None
    output_population: str = ""
    backend: str = ""
    info: dict = field(default_factory=dict)
    target: str = ""  # the target a compiled graph was run for ("" for the float model)

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


def _run_float(graph, x, n_steps=None, progress=False, device="cpu", counters=True, **kw) -> BackendResult:
    from tsslc.ir.interpreter import run

    if kw:
        _options("float", kw, ())
    res = run(graph, x, n_steps, device=device)
    spikes = {k: v.detach().cpu().numpy().astype(np.uint8) for k, v in res.spikes.items()}
    c = count_run(graph, spikes, x) if counters else None
    return BackendResult(spikes, c, res.output_population, "float")


def _options(what: str, kw: dict, known: tuple[str, ...]) -> None:
    unknown = [k for k in kw if k not in known]
    if unknown:
        raise TsslcError(f"{what} back end: unknown option(s) {', '.join(unknown)} (known: {', '.join(known)})")


def _run_intsim(graph, x, n_steps=None, progress=False, **kw) -> BackendResult:
    from tsslc.backends.intsim import run

    _options("intsim", kw, ("device", "batch_size", "counters"))
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
    _options("lava", kw, ("select_tag", "counters"))
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
