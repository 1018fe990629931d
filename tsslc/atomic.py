"""Atomic file writes: every file tsslc writes goes through :func:`atomic_write`, so a crash,
a full disk or Ctrl-C never leaves a half-written file under the final name (temp file in the
same folder, fsync, then ``os.replace``); a Ctrl-C during the write is raised once the file is
in place or its temp removed (:func:`tsslc.interrupts.held`).

Temp files are named ``.<name>.<pid>-<host>.<random>.tmp``: the writer's process id and a
tag of its host. A writer killed before its ``os.replace`` leaves its temp behind; the next
write into that folder removes the temps of writers of this host that are no longer running
(and temps of the older unnamed form that are more than a day old).

:func:`refuse_clobber` is the check every command makes before writing: no output may be
one of its inputs (the same file, however it is named: relative, symlinked, hard-linked).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import tempfile
import time
from pathlib import Path

from tsslc import interrupts
from tsslc.errors import TsslcError

#: ``.<name>.<pid>-<host tag>.<mkstemp's 8 random characters>.tmp``
_TEMP = re.compile(r"^\..+\.(\d+)-([0-9a-f]{8})\.[a-z0-9_]{8}\.tmp$")
#: the temps of tsslc before they named their writer: ``.<name>.<8 random characters>.tmp``
_OLD_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
#: an unnamed temp older than this (seconds) is taken for a dead writer's
OLD_TEMP_AGE = 24 * 3600
_cleaned: set[str] = set()


def host_tag() -> str:
    """8 hex digits naming this host, so that a temp on a shared folder is judged only by a
    writer of the host that made it."""
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a process of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def stale_temps(folder: str | Path) -> list[Path]:
    """The temp files in ``folder`` left by dead writers (see the module doc)."""
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    tag, now, stale = host_tag(), time.time(), []
    for name in names:
        m = _TEMP.match(name)
        if m:
            if m.group(2) == tag and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
                stale.append(folder / name)
        elif _OLD_TEMP.match(name):
            try:
                if now - os.lstat(folder / name).st_mtime > OLD_TEMP_AGE:
                    stale.append(folder / name)
            except OSError:
                pass
    return stale


def clean_stale_temps(folder: str | Path) -> list[Path]:
    """Remove :func:`stale_temps` of ``folder``; returns those removed."""
    removed = []
    for p in stale_temps(folder):
        try:
            p.unlink()
            removed.append(p)
        except OSError:  # another writer cleaned it first, or the folder is read-only
            pass
    return removed


def _reason(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__


def atomic_write(path: str | Path, write, *, make_parents: bool = True, what: str = "file") -> Path:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, then replace ``path``.

    ``make_parents``: create missing folders; else a missing folder is a :class:`TsslcError`.
    Any ``OSError`` (a full disk, a read-only folder, a file where a folder should be)
    becomes one :class:`TsslcError` naming ``what`` and the path; ``path`` is then as it was.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        if make_parents:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            how = "is a file, not a folder" if folder.exists() else "does not exist"
            raise TsslcError(f"cannot write {what} {path}: folder {folder} {how}")
    except OSError as e:
        raise TsslcError(f"cannot write {what} {path}: cannot create folder {folder}: {_reason(e)}") from None
    key = os.path.abspath(folder)
    if key not in _cleaned:
        _cleaned.add(key)
        clean_stale_temps(folder)
    # Ctrl-C held from the temp's creation to its replace or removal (then raised): one landing
    # inside mkstemp, after the file exists but before its name is known here, left the temp
    # behind (a SIGINT during a training run's checkpoint write)
    with interrupts.held():
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-{host_tag()}.", suffix=".tmp", dir=folder)
            os.close(fd)
            write(tmp)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            raise TsslcError(f"cannot write {what} {path}: {_reason(e)}") from None
        finally:
            if tmp is not None and os.path.lexists(tmp):
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
    return path


def atomic_write_bytes(path: str | Path, data: bytes, *, make_parents: bool = True, what: str = "file") -> Path:
    """Write ``data`` (a file image built in memory: HDF5, torch) atomically. Libraries that
    write files themselves report a full disk in their own ways (HDF5 has died of a signal);
    writing their image from memory leaves only Python's ``OSError`` to handle."""

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write, make_parents=make_parents, what=what)


def atomic_write_text(path: str | Path, text: str, *, what: str = "file") -> Path:
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    return atomic_write(path, write, what=what)


def _jsonable(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | Path, obj, *, what: str = "JSON file") -> Path:
    """``obj`` as indented JSON (numpy scalars and arrays converted), atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n", what=what)


# --- outputs never clobber inputs ----------------------------------------------------------


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (or cannot be reached): not the same file
        return False


def _under(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return False


def refuse_clobber(outputs, inputs) -> None:
    """Refuse (one :class:`TsslcError` naming both) an output that is one of the inputs.

    ``outputs`` and ``inputs``: ``(label, path)`` pairs (``path`` None: not given). An
    output is an input when both exist and are the same file (also through a symlink or a
    hard link); an input that is a folder (a data folder) takes every existing file under
    it. Two outputs that name the same file are refused too."""
    outs = [(label, Path(p)) for label, p in outputs if p is not None]
    ins = [(label, Path(p)) for label, p in inputs if p is not None]
    for i, (label, out) in enumerate(outs):
        for label2, other in outs[:i]:
            if out == other or _same(out, other) or (out.resolve() == other.resolve()):
                raise TsslcError(f"{label2} {other} and {label} {out} name the same file; give them different paths")
        if not out.exists():
            continue
        for in_label, inp in ins:
            if inp.is_dir():
                if out.is_file() and _under(out, inp):
                    raise TsslcError(f"{label} {out} is a file of the {in_label} {inp}, an input of this command; "
                                     "choose another output path")
            elif _same(out, inp):
                how = "" if out.resolve() == inp.resolve() and str(out) == str(inp) else " (the same file)"
                raise TsslcError(f"{label} {out} is the {in_label} {inp}{how}, an input of this command; "
                                 "choose another output path (tsslc never overwrites its inputs)")
