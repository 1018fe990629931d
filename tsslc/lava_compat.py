"""Make lava-nc 0.10.0 importable on Python 3.11, without touching site-packages.

lava-nc 0.10.0 declares Python < 3.11. On 3.11 exactly one module fails at import:
``lava/magma/compiler/var_model.py`` gives dataclass fields the mutable default
``ByteEncoder()``, which Python 3.11's dataclasses reject. :func:`install` puts a
meta-path finder in front of the normal import machinery that loads that one module from
its original source with those defaults rewritten as ``field(default_factory=ByteEncoder)``.
Every other module is imported untouched. Call :func:`install` (``import_lava`` does)
before the first ``import lava``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys

TARGET = "lava.magma.compiler.var_model"
_DEFAULT = re.compile(r"=\s*ByteEncoder\(\)")


class _VarModelLoader(importlib.abc.SourceLoader):
    def __init__(self, path: str):
        self.path = path

    def get_filename(self, fullname: str) -> str:
        return self.path

    def get_data(self, path: str) -> bytes:
        with open(path, "rb") as f:
            data = f.read()
        if path != self.path:
            return data
        source = data.decode("utf-8")
        patched = _DEFAULT.sub("= field(default_factory=ByteEncoder)", source)
        if patched != source:
            patched = patched.replace(
                "from dataclasses import dataclass, InitVar",
                "from dataclasses import dataclass, InitVar, field",
                1,
            )
        return patched.encode("utf-8")

    def path_stats(self, path: str):  # no bytecode cache for the patched module
        raise OSError


class _VarModelFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin:
            return None
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=_VarModelLoader(spec.origin)
        )


def install() -> None:
    """Install the import-time fix (idempotent)."""
    if sys.version_info < (3, 11):
        return
    if not any(isinstance(f, _VarModelFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _VarModelFinder())


def _allow_lava_start_method() -> None:
    """Lava's first import calls ``multiprocessing.set_start_method('fork')`` without
    ``force``, which raises "context has already been set" once anything has used the
    default context (a tqdm progress bar creates a multiprocessing lock). Before that first
    import, clear a context that was fixed to 'fork' (the Linux default, so nothing that
    already exists changes)."""
    import multiprocessing

    if "lava.magma.runtime.message_infrastructure.multiprocessing" in sys.modules:
        return
    method = multiprocessing.get_start_method(allow_none=True)
    if method == "fork":
        multiprocessing.set_start_method(None, force=True)
    elif method is not None:
        from tsslc.errors import TsslcError

        raise TsslcError(
            f"Lava needs the 'fork' multiprocessing start method, this process already uses {method!r}; "
            "import lava (tsslc.lava_compat.import_lava) before setting it"
        )


def import_lava():
    """Install the fix and import lava; a missing lava-nc is one clear error."""
    install()
    _allow_lava_start_method()
    try:
        import lava  # noqa: F401
        import lava.magma.compiler.var_model  # noqa: F401
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
        from tsslc.errors import TsslcError

        found = sys.modules.get("lava")
        if found is not None and not hasattr(found, "__path__"):
            raise TsslcError(
                f"'import lava' finds {getattr(found, '__file__', found)}, which shadows the lava-nc package; "
                "rename that file or run from another folder"
            ) from e
        raise TsslcError(
            "lava-nc is not installed; run the README set-up (scripts/setup.sh), which "
            "installs lava-nc 0.10.0 with --ignore-requires-python"
        ) from e
    return sys.modules["lava"]
