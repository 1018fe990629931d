"""A spike sink that records straight into a memory-mapped file.

Lava's own sink (``lava.proc.io.sink.RingBuffer``) is read back with ``Var.get()``, which
moves one element per message (about 45 µs each here: the 100 hidden neurons of the digits
net over 1400 steps take 6 s to read). :class:`SpikeSink` is the same kind of process (an
InPort that records what it receives, one row per time step) whose model writes each step's
spikes as one ``uint8`` row into a ``(n_steps, n_neurons)`` file that the caller created;
the caller reads the file after the run. Lava forks its process models, so the mapping is
shared through the page cache and nothing crosses Lava's message channels.
"""

from __future__ import annotations

import errno
import math
import os

import numpy as np

from tsslc.lava_compat import import_lava

import_lava()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402


def create_record(path: str, n_steps: int, shape: tuple[int, ...]) -> None:
    """Create the zero-filled ``(n_steps, prod(shape))`` uint8 file a :class:`SpikeSink` fills,
    its blocks allocated now: a full disk is an OSError here, not a SIGBUS in the Lava
    process that writes the memory map later."""
    np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n_steps, math.prod(shape))).flush()
    if not hasattr(os, "posix_fallocate"):  # not on macOS
        return
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # a file system that cannot: as before
                raise


def read_record(path: str) -> np.ndarray:
    """The recorded spikes, ``(n_steps, n_neurons)`` uint8 (a copy, the file may be deleted)."""
    return np.array(np.load(path, mmap_mode="r"))


class SpikeSink(AbstractProcess):
    """Records the spikes arriving at ``a_in`` (any shape, flattened in C order) into the
    ``.npy`` file at ``path``: row ``time_step - 1`` holds step ``time_step``. The file must
    exist (:func:`create_record`) with at least as many rows as the run has steps."""

    def __init__(self, *, shape: tuple[int, ...], path: str, name: str | None = None) -> None:
        super().__init__(shape=shape, path=str(path), name=name)
        self.shape = tuple(shape)
        self.a_in = InPort(shape=self.shape)


class _AbstractSpikeSinkModel(PyLoihiProcessModel):
    a_in = None

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._record = None

    def run_spk(self) -> None:
        data = self.a_in.recv()
        if self._record is None:
            self._record = np.load(self.proc_params["path"], mmap_mode="r+")
        self._record[self.time_step - 1] = np.asarray(data).reshape(-1) != 0


@implements(proc=SpikeSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeSinkModelFixed(_AbstractSpikeSinkModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)


@implements(proc=SpikeSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeSinkModelFloat(_AbstractSpikeSinkModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
