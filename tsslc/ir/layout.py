"""The one input layout of tsslc: time first.

Every tensor over time is ``(T, B, *shape)`` — inputs given to a back end, spikes and PSCs
coming back, the data helpers' event arrays (``tsslc.data.arrays``). A static input (an
image presented at every step) may also be given without a time axis, ``(B, *shape)``; it
is then the same at each of the T steps. ``shape`` is the graph's input shape (no batch,
no time), so the two forms never look alike (they differ in rank).
"""

from __future__ import annotations

import numpy as np
import torch

from tsslc import validate
from tsslc.errors import TsslcError


def check_input(x, what: str = "input"):
    """``x`` as the back ends take it (a numpy array or a torch tensor, else made a numpy
    array): numbers (bool, integer or floating point; not complex, strings, objects or ragged
    lists) and finite (a NaN has no spike code, and the float model would carry it through
    every layer), as a data file must be (:func:`tsslc.ir.inputs.load_input_array`). Any
    problem is one :class:`TsslcError` naming ``what`` and, for a value, its index."""
    if isinstance(x, (str, bytes)):
        raise TsslcError(f"{what}: a string, not an array of numbers")
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise TsslcError(f"{what}: not an array of numbers ({msg})") from None
    if isinstance(x, torch.Tensor):
        numeric = not x.is_complex()
        # the tensor's values read back (exactly, as float64) only to name a bad one
        floats = (x.detach().cpu().double().numpy() if x.is_floating_point() and not torch.isfinite(x).all()
                  else None) if numeric else None
    else:
        numeric, floats = x.dtype.kind in "biuf", x
    if not numeric:
        raise TsslcError(f"{what}: dtype {x.dtype} is not numeric (need bool, integer or floating point values)")
    if floats is not None:
        validate.finite_array(what, floats, why="NaN and infinite values have no spike code")
    return x


def time_input(graph, x, n_steps: int) -> torch.Tensor:
    """``(T, B, *shape)`` float input p[t] of ``graph`` from static ``(B, *shape)`` data (a
    zero-stride view over T) or time-first ``(T, B, *shape)`` data."""
    shape = tuple(graph[graph.input_name].shape)
    x = torch.as_tensor(x)
    if not torch.is_floating_point(x):
        x = x.to(torch.float32)
    if x.dim() == len(shape) + 1 and tuple(x.shape[1:]) == shape:
        return x.unsqueeze(0).expand(n_steps, *x.shape)
    if x.dim() == len(shape) + 2 and tuple(x.shape[2:]) == shape:
        if x.shape[0] != n_steps:
            raise TsslcError(f"input of shape {tuple(x.shape)} has {x.shape[0]} time steps (time first: "
                             f"(T, B, {', '.join(map(str, shape))})), the graph runs T={n_steps}")
        return x
    dims = ", ".join(map(str, shape))
    raise TsslcError(f"input of shape {tuple(x.shape)} fits neither static (B, {dims}) nor time-first "
                     f"(T={n_steps}, B, {dims}) data")


def batch_size(graph, x) -> int:
    """B of an input in either layout."""
    x_shape = tuple(x.shape)
    rank = len(graph[graph.input_name].shape)
    return int(x_shape[0] if len(x_shape) == rank + 1 else x_shape[1])


def batch_slice(graph, x, start: int, stop: int):
    """Samples ``start:stop`` of an input in either layout (same layout back)."""
    rank = len(graph[graph.input_name].shape)
    return x[start:stop] if x.ndim == rank + 1 else x[:, start:stop]
