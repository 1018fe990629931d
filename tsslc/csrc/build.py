"""How the CPU kernel of the fused neuron (``tsslbp_cpu.cpp``) is compiled.

Standard library only: ``setup.py`` loads this file on its own (without importing tsslc or
torch) to build the kernel at install time, and :mod:`tsslc.fused_cpu` uses it to build the
kernel on first use into a cache folder when the installed one is missing or stale.

The library is plain C++ with a C interface (no torch or Python headers), so it builds in
about a second with the system's g++ and does not depend on torch's C++ ABI. Each build is
stamped with :func:`source_hash` (source text + flags); a library whose stamp differs from
the source beside it is not used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().with_name("tsslbp_cpu.cpp")
#: -ffp-contract=off: every multiply and add rounded on its own (no FMA), which is what makes
#: the forward bit-identical to torch's op-by-op reference. -fno-trapping-math only lets the
#: compiler evaluate both sides of a select (needed to vectorise); it changes no result.
COMPILE_FLAGS = ["-O3", "-std=c++17", "-fPIC", "-fopenmp", "-ffp-contract=off", "-fno-trapping-math"]
LINK_FLAGS = ["-fopenmp"]
#: Name of the extension module built at install (``tsslc/_tsslbp_cpu*.so``).
MODULE = "tsslc._tsslbp_cpu"


def source_hash(source: Path = SOURCE) -> str:
    h = hashlib.sha256(source.read_bytes())
    h.update(" ".join(COMPILE_FLAGS + LINK_FLAGS).encode())
    return h.hexdigest()[:16]


def hash_macro(source: Path = SOURCE) -> tuple[str, str]:
    return "TSSLC_SRC_HASH", f'"{source_hash(source)}"'


def setuptools_extension(relative_source: str = "tsslc/csrc/tsslbp_cpu.cpp"):
    """The optional extension for ``setup.py`` (``relative_source`` relative to setup.py's
    folder, as setuptools wants it). ``optional``: a failed build leaves the install working,
    and the kernel is then built on first use (or the reference path is used)."""
    from setuptools import Extension

    return Extension(MODULE, sources=[relative_source], language="c++", extra_compile_args=COMPILE_FLAGS,
                     extra_link_args=LINK_FLAGS, define_macros=[hash_macro()], optional=True)


def compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def build_shared_library(dest: Path, extra_flags: tuple[str, ...] = ()) -> None:
    """Compile the kernel to ``dest`` (written beside it, then renamed: never half-written).
    Raises ``RuntimeError`` with the compiler's last line when there is no compiler or it fails.
    ``extra_flags`` (tests): e.g. ``-DTSSLC_NO_CLONES`` builds only the baseline x86-64 code."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX or install g++)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    name, value = hash_macro()
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        cmd = [cxx, *COMPILE_FLAGS, "-shared", f"-D{name}={value}", *extra_flags, str(SOURCE), "-o", tmp,
               *LINK_FLAGS]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            last = (p.stderr.strip().splitlines() or ["exit status %d" % p.returncode])[-1]
            raise RuntimeError(f"{cxx} failed: {last}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
