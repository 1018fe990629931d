"""One process per run folder: ``RUN/.tsslc.lock``.

:func:`run_lock` holds an exclusive POSIX lock (``lockf``) on the lock file for as long as
a command writes the folder, and writes into it the holder's process id, host and command,
which a refused second writer names. The kernel releases the lock when its process dies,
however it dies, and processes it forks (Lava's, data loader workers) do not inherit it: a
lock file left by a killed run is stale and the next run takes it over (and says so). Where
the file system has no locks the process id decides: a lock naming a process of this host
that no longer runs is stale. (A POSIX lock also ends when its process closes any
descriptor of the file: nothing but this module opens it.) The lock file is removed when the holder ends
normally (and the folder too when the lock created it and nothing was written). The lock
is re-entrant within one process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import sys
import time
from pathlib import Path

from tsslc.atomic import pid_alive
from tsslc.errors import TsslcError

LOCK = ".tsslc.lock"
_held: dict[str, int] = {}  # resolved folder -> nesting depth in this process


def _describe(text: str) -> tuple[int | None, str]:
    """(pid, 'tsslc COMMAND, process PID on HOST') from a lock file's text."""
    fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
    try:
        pid = int(fields.get("pid", ""))
    except ValueError:
        pid = None
    who = f"tsslc {fields['command']}" if fields.get("command") else "another tsslc"
    where = f" on {fields['host']}" if fields.get("host") and fields["host"] != socket.gethostname() else ""
    return pid, f"{who} (process {pid if pid is not None else '?'}{where})"


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 4096).decode("utf-8", "replace")


def _acquire(folder: Path, command: str) -> int:
    path = folder / LOCK
    for _ in range(10):  # the holder may remove the file between our open and our lock
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise TsslcError(f"cannot lock run folder {folder}: {e.strerror or e}") from None
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                pid, who = _describe(_read(fd))
                if e.errno in (errno.EACCES, errno.EAGAIN) or (pid is not None and pid != os.getpid()
                                                               and pid_alive(pid)):
                    # held; or, on a file system without locks (ENOLCK), named by a live process
                    raise TsslcError(f"{folder} is in use by {who}: one process writes a run folder at a time "
                                     f"(lock {path}); wait for it or choose another --out") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # removed by its previous holder after our open: lock the new one
                os.close(fd)
                continue
            old = _read(fd).strip()
            if old:
                pid, who = _describe(old)
                print(f"tsslc: {folder}: taking over the stale lock of {who}, which no longer holds it",
                      file=sys.stderr)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (f"pid={os.getpid()} host={socket.gethostname()} command={command} "
                          f"since={time.strftime('%Y-%m-%dT%H:%M:%S')}\n").encode())
            return fd
        except BaseException:
            os.close(fd)
            raise
    raise TsslcError(f"cannot lock run folder {folder}: its lock file {path} keeps changing")


@contextlib.contextmanager
def run_lock(folder, command: str = "train"):
    """Hold ``folder``'s lock (creating the folder) for the ``with`` block; a
    :class:`TsslcError` naming the holder when another live process has it."""
    folder = Path(folder)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TsslcError(f"cannot create run folder {folder}: {e.strerror or e}") from None
    key = str(folder.resolve())
    if key in _held:
        _held[key] += 1
        try:
            yield folder
        finally:
            _held[key] -= 1
        return
    fd = _acquire(folder, command)
    _held[key] = 1
    try:
        yield folder
    finally:
        del _held[key]
        try:
            if os.fstat(fd).st_ino == os.stat(folder / LOCK).st_ino:
                os.unlink(folder / LOCK)
        except OSError:
            pass
        os.close(fd)
        if created:  # a run that failed before writing anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()
