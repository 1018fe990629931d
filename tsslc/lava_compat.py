"""Make lava-nc 0.10.0 and lava-dl 0.6.0's netx importable on Python 3.11 beside the CPU
torch 2.13, without touching site-packages.

lava-nc 0.10.0 declares Python < 3.11. On 3.11 exactly one module fails at import:
``lava/magma/compiler/var_model.py`` gives dataclass fields the mutable default
``ByteEncoder()``, which Python 3.11's dataclasses reject. :func:`install` puts a
meta-path finder in front of the normal import machinery that loads that one module from
its original source with those defaults rewritten as ``field(default_factory=ByteEncoder)``.

lava-dl 0.6.0 (installed without its dependencies, which pin torch 2.3) has one import
problem here: ``lava.lib.dl.netx.hdf5`` imports ``lava.lib.dl.slayer.neuron.rf``, so the
package ``lava/lib/dl/slayer/__init__.py`` runs, and its last line imports SLAYER's YOLO
object-detection subpackage (``object_detection``), which needs torchvision and OpenCV.
There is no torchvision for the CPU build of torch 2.13 on PyPI (its wheel is linked
against CUDA torch and fails to import), and netx uses nothing from that subpackage. The
same finder loads ``slayer/__init__.py`` with that one import line left out (``obd`` is
then not an attribute of the package; ``import lava.lib.dl.slayer.object_detection``
still works where torchvision is installed). Every other module is imported untouched.
Call :func:`install` (``import_lava`` and ``import_netx`` do) before the first
``import lava``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys

TARGET = "lava.magma.compiler.var_model"
SLAYER = "lava.lib.dl.slayer"
_DEFAULT = re.compile(r"=\s*ByteEncoder\(\)")
_OBD = re.compile(r"^from \. import object_detection as obd\s*$", re.M)


def _patch_var_model(source: str) -> str:
    patched = _DEFAULT.sub("= field(default_factory=ByteEncoder)", source)
    if patched != source:
        patched = patched.replace(
            "from dataclasses import dataclass, InitVar",
            "from dataclasses import dataclass, InitVar, field",
            1,
        )
    return patched


def _patch_slayer(source: str) -> str:
    return _OBD.sub("", source)


#: module -> source patch (each a no-op on a source that does not have the problem)
PATCHES = {TARGET: _patch_var_model, SLAYER: _patch_slayer}


class _PatchedLoader(importlib.abc.SourceLoader):
    def __init__(self, fullname: str, path: str):
        self.fullname, self.path = fullname, path

    def get_filename(self, fullname: str) -> str:
        return self.path

    def get_data(self, path: str) -> bytes:
        with open(path, "rb") as f:
            data = f.read()
        if path != self.path:
            return data
        return PATCHES[self.fullname](data.decode("utf-8")).encode("utf-8")

    def path_stats(self, path: str):  # no bytecode cache for the patched module
        raise OSError


class _PatchFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in PATCHES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin:
            return None
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=_PatchedLoader(fullname, spec.origin),
            submodule_search_locations=spec.submodule_search_locations,
        )


def install() -> None:
    """Install the import-time fixes (idempotent)."""
    if not any(isinstance(f, _PatchFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchFinder())


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


def import_netx():
    """lava-dl's netx (``lava.lib.dl.netx``), imported through :func:`import_lava`'s fixes;
    a missing lava-dl is one clear error."""
    import_lava()
    try:
        import lava.lib.dl.netx as netx
    except ModuleNotFoundError as e:
        from tsslc.errors import TsslcError

        if e.name and e.name.startswith("lava.lib"):
            raise TsslcError(
                "lava-dl is not installed; run the README set-up (scripts/setup.sh), which installs lava-dl 0.6.0 "
                "with --no-deps (requirements-nodeps.txt)"
            ) from e
        raise TsslcError(f"lava-dl's netx cannot be imported: module {e.name!r} is missing") from e
    return netx
