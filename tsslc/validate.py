"""One validation layer for every value that enters tsslc from a file or the command line.

Configs (:mod:`tsslc.config`), checkpoints (:mod:`tsslc.training.checkpoint`), model files
(:mod:`tsslc.ir.io`), NIR files (:mod:`tsslc.ir.nir_io`), data headers (``.npy``, IDX) and
command-line numbers all go through the helpers here, so a bad value is always the same
kind of one-line :class:`~tsslc.errors.TsslcError` naming the file, key or node:

* :func:`number` — type (no bools, no strings), whole numbers where an integer is meant,
  finite, and a range;
* :func:`check_keys` — unknown keys are an error with a did-you-mean (:mod:`difflib`);
* :func:`finite_array` — no NaN or infinite values in a float array;
* :func:`check_bytes` — the bytes a load or a run will need, estimated from declared shapes
  *before* anything is allocated, against one cap (:func:`max_bytes`): 8 GiB by default,
  raised with ``tsslc --max-memory SIZE`` (any command, e.g. ``--max-memory 64G``) or the
  environment variable ``TSSLC_MAX_MEMORY``.

Declared limits that are not sizes: at most :data:`MAX_STEPS` time steps, core indices below
:data:`MAX_CORES`, weight exponents within ±\\ :data:`MAX_WEIGHT_EXP`.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from typing import Any, Iterable

import numpy as np

from tsslc.errors import TsslcError

#: time steps per sample: more is a typo or a hostile file (a digits net at 10^6 steps runs for hours)
MAX_STEPS = 1_000_000
#: core indices in a compiled model's mapping
MAX_CORES = 1 << 20
#: |weight_exp| of an integer synapse (a shift of an int64 accumulator)
MAX_WEIGHT_EXP = 62
#: a config's sizes and counts (channels, features, kernel, classes, batch, epochs)
MAX_DIM = 2**31 - 1
#: the cap on the estimated bytes of one load or run, unless raised
DEFAULT_MAX_BYTES = 8 << 30
ENV_MAX_BYTES = "TSSLC_MAX_MEMORY"
FLAG_MAX_BYTES = "--max-memory"

_override: int | None = None
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


# --- sizes -----------------------------------------------------------------------------------


def parse_size(text, what: str = FLAG_MAX_BYTES) -> int:
    """``"8G"``, ``"512MiB"``, ``"1.5e10"`` → bytes (binary units: K = 1024)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(text))
    if not m:
        raise TsslcError(f"{what}: {text!r} is not a size (e.g. 16G, 512M, 2000000000)")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not math.isfinite(value) or value < 1:
        raise TsslcError(f"{what}: {text!r} must be at least one byte")
    return int(value)


def set_max_bytes(nbytes: int | None) -> None:
    """Set (or with None reset) the cap for this process; ``tsslc --max-memory`` calls it."""
    global _override
    _override = None if nbytes is None else int(nbytes)


def max_bytes() -> int:
    """The cap: :func:`set_max_bytes`, else ``$TSSLC_MAX_MEMORY``, else 8 GiB."""
    if _override is not None:
        return _override
    env = os.environ.get(ENV_MAX_BYTES)
    if env:
        return parse_size(env, f"${ENV_MAX_BYTES}")
    return DEFAULT_MAX_BYTES


def fmt_bytes(n: float) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def check_bytes(nbytes: float, what: str) -> None:
    """Refuse ``what`` (a phrase naming the file/node and the thing) when ``nbytes`` is past the cap."""
    cap = max_bytes()
    if nbytes > cap:
        raise TsslcError(f"{what} would need {fmt_bytes(nbytes)}, over the {fmt_bytes(cap)} limit "
                         f"(raise it with 'tsslc {FLAG_MAX_BYTES} SIZE ...' or ${ENV_MAX_BYTES})")


def shape_bytes(shape: Iterable[int], itemsize: int) -> int:
    """Bytes of an array of ``shape`` (Python ints: no overflow)."""
    n = 1
    for d in shape:
        n *= int(d)
    return n * int(itemsize)


# --- numbers and keys --------------------------------------------------------------------------


def number(where: str | None, key: str, value, kind=float, *, positive: bool = False, nonneg: bool = False,
           lo: float | None = None, hi: float | None = None, allow_inf: bool = False, error=TsslcError):
    """``value`` as ``kind`` (int or float) after checking it: a real number (not a bool or a
    string), a whole number for ``int``, finite (unless ``allow_inf``), > 0 (``positive``),
    >= 0 (``nonneg``), within [lo, hi]. The error (``error``, a TsslcError unless a caller such
    as a node's check adds the name itself) names ``where`` and ``key``."""
    where = f"{where}: " if where else ""
    if isinstance(value, np.generic) and value.shape == ():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{where}'{key}' must be a number, got {value!r:.60}")
    if isinstance(value, float):
        if math.isnan(value) or (math.isinf(value) and (not allow_inf or kind is int)):
            raise error(f"{where}'{key}' must be finite, got {_short(value)}")
        if kind is int and not value.is_integer():
            raise error(f"{where}'{key}' must be an integer, got {_short(value)}")
        v = value if math.isinf(value) else kind(value)
    elif kind is float and abs(value) > 1e308:  # an int too large for a float
        raise error(f"{where}'{key}' must be finite, got {_short(value)}")
    else:
        v = kind(value)  # Python ints: exact, whatever their size
    if positive and not v > 0:
        raise error(f"{where}'{key}' must be > 0, got {_short(value)}")
    if nonneg and v < 0:
        raise error(f"{where}'{key}' must be >= 0, got {_short(value)}")
    if lo is not None and v < lo:
        raise error(f"{where}'{key}' must be >= {_short(lo)}, got {_short(value)}")
    if hi is not None and v > hi:
        raise error(f"{where}'{key}' must be <= {_short(hi)}, got {_short(value)}")
    return v


def _short(value) -> str:
    text = f"{value:g}" if isinstance(value, float) else repr(value)
    return text if len(text) <= 24 else f"{text[:12]}... ({len(text)} digits)"


def steps(where: str, key: str, value) -> int:
    """A number of time steps: an integer in 1 .. :data:`MAX_STEPS`."""
    return number(where, key, value, int, lo=1, hi=MAX_STEPS)


def suggest(name, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a known option is close to ``name``, else ``""``."""
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_keys(where: str, given: Iterable, known: Iterable[str], what: str = "key") -> None:
    """Unknown keys are an error naming the first one, with a did-you-mean."""
    known = list(known)
    for key in given:
        if key not in known:
            raise TsslcError(f"{where}: unknown {what} {key!r}{suggest(key, known)} "
                             f"(known: {', '.join(sorted(map(str, known)))})")


def choice(where: str, key: str, value, options: Iterable[str]) -> str:
    options = list(options)
    if value not in options:
        raise TsslcError(f"{where}: unknown {key} {value!r:.60}{suggest(value, options)} "
                         f"(expected one of {', '.join(options)})")
    return value


def device(label: str, value) -> None:
    """A torch device this machine has, for tsslc's back ends (cpu or cuda); ``label`` names
    the argument (``--device``, ``simulate: device``)."""
    import torch

    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise TsslcError(f"{label} {value!r:.40} is not a torch device (cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TsslcError(f"{label} {value}: no CUDA device on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise TsslcError(f"{label} {value}: tsslc runs on cpu or cuda")


def finite_array(where: str, a: np.ndarray, error=TsslcError, why: str = "NaN and infinite values are not weights") -> None:
    """NaN or infinite values in a float array are an error naming ``where`` and the first one
    (``why``: what such a value cannot be)."""
    a = np.asarray(a)
    if a.dtype.kind in "fc" and a.size and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise error(f"{where} holds {a[tuple(bad)]} at index {tuple(int(i) for i in bad)} ({why})")


# --- data headers --------------------------------------------------------------------------------


def npy_header(path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of a ``.npy`` file from its header, checked against the file's size and
    the byte cap before :func:`numpy.load` allocates anything."""
    from numpy.lib import format as npf

    try:
        with open(path, "rb") as fh:
            version = npf.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = npf.read_array_header_1_0(fh, max_header_size=10000)
            else:
                shape, _, dtype = npf.read_array_header_2_0(fh, max_header_size=10000)
            offset = fh.tell()
    except OSError as e:
        raise TsslcError(f"cannot read {path}: {e.strerror or e}") from None
    except Exception as e:  # bad magic, bad header dict
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise TsslcError(f"{path}: not a readable .npy array ({msg})") from None
    nbytes = shape_bytes(shape, dtype.itemsize)
    have = os.path.getsize(path) - offset
    if dtype.hasobject:
        raise TsslcError(f"{path}: dtype {dtype} is not numeric (need bool, int or float)")
    if nbytes > have:
        raise TsslcError(f"{path}: the header declares shape {tuple(shape)} of {dtype} ({fmt_bytes(nbytes)}) but the "
                         f"file holds {fmt_bytes(have)} of data (truncated or forged)")
    check_bytes(nbytes, f"{path}: loading the array of shape {tuple(shape)}")
    return tuple(int(d) for d in shape), dtype


def torch_rng_state_ok(state: Any) -> bool:
    """A CPU torch RNG state: a uint8 tensor of the size this torch uses."""
    import torch

    return (isinstance(state, torch.Tensor) and state.dtype == torch.uint8 and state.dim() == 1
            and state.numel() == torch.get_rng_state().numel())
