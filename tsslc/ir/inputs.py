"""Input arrays for a graph from files: ``tsslc compile --calibration-data X.npy``.

An imported graph (``tsslc nir import``) has no data set, so its calibration inputs come from
a ``.npy`` file. The array must be what the back ends take as input, checked by the one
input-layout helper they all use (:func:`tsslc.ir.layout.time_input`): static values
``(B, *input_shape)`` (repeated every step), or time-first frames ``(T, B, *input_shape)``. The dtype must be boolean, integer or floating point; values must be finite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tsslc.errors import TsslcError
from tsslc.ir.graph import Graph


def load_input_array(path, graph: Graph, n_steps: int | None = None) -> np.ndarray:
    """The float32 array in ``path`` (a ``.npy`` file), checked against ``graph``'s input;
    any problem is one :class:`TsslcError` naming the file."""
    from tsslc.ir.layout import time_input

    path = Path(path)
    if not path.is_file():
        raise TsslcError(f"calibration data {path} {'is not a regular file' if path.exists() else 'does not exist'}")
    from tsslc import validate

    validate.npy_header(path)  # declared shape against the file's size and the byte cap, before loading
    try:
        x = np.load(path, allow_pickle=False)
    except Exception as e:  # not .npy, truncated, pickled objects
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise TsslcError(f"{path}: not a readable .npy array ({msg})") from None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
        raise TsslcError(f"{path}: dtype {getattr(x, 'dtype', type(x).__name__)} is not numeric (need bool, int or float)")
    if x.size == 0:
        raise TsslcError(f"{path}: the array is empty")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise TsslcError(f"{path}: the array holds NaN or infinite values")
    T = int(n_steps or graph.metadata.get("n_steps", 0) or 0)
    if T < 1:
        raise TsslcError(f"{path}: the model records no n_steps to check the data against")
    try:
        time_input(graph, x, T)
    except TsslcError as e:
        raise TsslcError(f"{path}: {e}") from None
    return x
