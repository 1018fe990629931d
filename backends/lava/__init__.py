"""The Lava back end: loihi2-compiled graphs as Lava processes (lava-nc 0.10.0).

* :func:`build_network` (:mod:`.lowering`): the compiled graph as standard ``lava.proc``
  processes only, with its input and output ports, for a user to attach their own I/O and
  run configuration (a Loihi 2 hardware one included);
* ``run(compiled_graph, x, n_steps=None, select_tag="fixed_pt", progress=False)``
  (:mod:`.runner`, the simulation back end): that network plus a source and tsslc's
  memory-mapped spike sinks (:mod:`.sink`), a batch in one Lava run, returning a
  :class:`tsslc.backends.BackendResult` whose spikes sit on the float model's time axis.

Lava is imported through :func:`tsslc.lava_compat.import_lava`.
"""

from tsslc.backends.lava.lowering import LavaNetwork, build_network
from tsslc.backends.lava.runner import run

__all__ = ["run", "build_network", "LavaNetwork"]
