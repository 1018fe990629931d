"""The Lava back end: loihi2-compiled graphs as Lava processes (lava-nc 0.10.0).

``run(compiled_graph, x, n_steps=None, select_tag="fixed_pt", progress=False)`` runs a
batch in one Lava run and returns a :class:`tsslc.backends.BackendResult` whose spikes sit
on the float model's time axis (see :mod:`.runner`); :mod:`.lowering` builds the processes,
:mod:`.sink` records spikes. Lava is imported through :func:`tsslc.lava_compat.import_lava`.
"""

import multiprocessing
import sys


def _allow_lava_start_method() -> None:
    """Lava's first import calls ``multiprocessing.set_start_method('fork')`` without
    ``force``, which raises "context has already been set" once anything has used the
    default context (a tqdm progress bar creates a multiprocessing lock). Before that first
    import, clear a context that was fixed to 'fork' (the Linux default, so nothing that
    already exists changes)."""
    if "lava.magma.runtime.message_infrastructure.multiprocessing" in sys.modules:
        return
    method = multiprocessing.get_start_method(allow_none=True)
    if method == "fork":
        multiprocessing.set_start_method(None, force=True)
    elif method is not None:
        from tsslc.errors import TsslcError

        raise TsslcError(
            f"Lava needs the 'fork' multiprocessing start method, this process already uses {method!r}; "
            "import tsslc.backends.lava before setting it"
        )


_allow_lava_start_method()

from tsslc.backends.lava.runner import run  # noqa: E402

__all__ = ["run"]
