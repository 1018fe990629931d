"""Hardware targets: each describes a chip as data plus its exact integer arithmetic.

``get_target(name)`` returns an instance; the interface is :class:`tsslc.targets.base.Target`.
Targets are found by module: ``tsslc.targets.<name>`` defines ``TARGET`` (an instance).
"""

from __future__ import annotations

import importlib

from tsslc.errors import TsslcError

#: known target names (each a module tsslc.targets.<name> with a TARGET instance)
KNOWN_TARGETS = ("loihi2", "truenorth")


def get_target(name: str):
    """The target called ``name``; TsslcError listing the known targets otherwise."""
    key = str(name).lower()
    if key not in KNOWN_TARGETS:
        raise TsslcError(f"unknown target {name!r} (known: {', '.join(KNOWN_TARGETS)})")
    try:
        mod = importlib.import_module(f"tsslc.targets.{key}")
    except ModuleNotFoundError as e:
        if e.name == f"tsslc.targets.{key}":
            raise TsslcError(f"target {key!r} is not available in this version") from None
        raise
    return mod.TARGET
