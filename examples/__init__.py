"""The example configs (the paper's networks, digits) and scripts, installed with tsslc as
``tsslc.examples``: :func:`path` finds one by file name (``tsslc.train("digits")`` takes a
config by its name)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def names() -> list[str]:
    """The bundled configs, by name (file name without ``.yaml``)."""
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def path(name: str) -> Path:
    """The bundled file ``name`` (``"digits"`` or ``"digits.yaml"``, ``"mnist_pipeline.py"``)."""
    from tsslc.errors import TsslcError

    p = HERE / name
    if not p.suffix:
        p = p.with_suffix(".yaml")
    if not p.is_file():
        raise TsslcError(f"no bundled example {name!r} (configs: {', '.join(names())})")
    return p
