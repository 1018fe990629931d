"""Atomic file writes: every file tsslc writes goes through :func:`atomic_write`, so a crash
or Ctrl-C never leaves a half-written file under the final name (temp file in the same
folder, fsync, then ``os.replace``)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from tsslc.errors import TsslcError


def atomic_write(path: str | Path, write, *, make_parents: bool = True, what: str = "file") -> Path:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, then replace ``path``.

    ``make_parents``: create missing folders; else a missing folder is a :class:`TsslcError`.
    An ``OSError`` while writing becomes a :class:`TsslcError` naming ``what`` and the path.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if make_parents:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise TsslcError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise TsslcError(f"cannot write {what} {path}: {e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    return atomic_write(path, write)


def _jsonable(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | Path, obj) -> Path:
    """``obj`` as indented JSON (numpy scalars and arrays converted), atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")
