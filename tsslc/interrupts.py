"""Ctrl-C held over a block that must finish once started.

:func:`held` installs a SIGINT handler that only notes the signal, runs the block, restores
the previous handler and then acts on a noted signal as the previous handler would have
(``replay``) or drops it. Used where an interrupt half-way would leave a mess behind: an
atomic file write between its temp file and ``os.replace`` (:mod:`tsslc.atomic`), and the
Lava back end while it forks its processes or stops them (``tsslc.backends.lava.runner``).
Only the main thread can install handlers; elsewhere the block runs as it is.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class Deferred:
    """A SIGINT handler that only notes the signal (processes forked while it is installed
    keep it: a Ctrl-C sent to the whole process group is then a no-op in them)."""

    def __init__(self):
        self.pending = False

    def __call__(self, signum, frame):
        self.pending = True


@contextmanager
def held(replay: bool = True):
    """Run the block with Ctrl-C noted, not raised; afterwards a noted Ctrl-C is raised as the
    previous handler would have raised it (``replay``) or dropped. An exception from the block
    goes up as it is (the noted Ctrl-C is then dropped: something is already on its way up).
    Yields the :class:`Deferred` handler, or None outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    deferred = Deferred()
    previous = signal.signal(signal.SIGINT, deferred)
    try:
        yield deferred
    finally:
        signal.signal(signal.SIGINT, previous)
    if replay and deferred.pending:  # now as it would have been then
        if callable(previous):
            previous(signal.SIGINT, None)
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt
