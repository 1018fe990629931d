"""The Lava back end: loihi2-compiled graphs as Lava processes (lava-nc 0.10.0).

``run(compiled_graph, x, n_steps=None, select_tag="fixed_pt", progress=False)`` runs a
batch in one Lava run and returns a :class:`tsslc.backends.BackendResult` whose spikes sit
on the float model's time axis (see :mod:`.runner`); :mod:`.lowering` builds the processes,
:mod:`.sink` records spikes. Lava is imported through :func:`tsslc.lava_compat.import_lava`.
"""

from tsslc.backends.lava.runner import run

__all__ = ["run"]
