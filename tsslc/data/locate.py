"""Finding a data set's files inside the folder the user names."""

from __future__ import annotations

from pathlib import Path

from tsslc.errors import TsslcError


def data_root(data_dir, dataset: str) -> Path:
    """The user's folder, which must exist."""
    if data_dir is None:
        raise TsslcError(f"{dataset} needs a data folder: pass --data-dir D (data_dir=...) holding its files")
    root = Path(data_dir)
    if not root.is_dir():
        raise TsslcError(f"{dataset}: data folder not found: {root}")
    return root


def find_file(root: Path, subdirs: tuple[str, ...], names: tuple[str, ...], dataset: str) -> Path:
    """The first of ``root/<subdir>/<name>`` that exists (subdir '' is root itself)."""
    tried = []
    for sub in subdirs:
        folder = root / sub if sub else root
        for name in names:
            p = folder / name
            if p.is_file():
                return p
        tried.append(folder)
    where = ", ".join(str(t) for t in tried)
    raise TsslcError(f"{dataset}: missing file {names[0]} (looked in {where})")


def find_dir(root: Path, subdirs: tuple[str, ...], name: str, dataset: str) -> Path:
    for sub in subdirs:
        p = (root / sub if sub else root) / name
        if p.is_dir():
            return p
    raise TsslcError(f"{dataset}: missing folder '{name}' under {root} (expected {root / subdirs[0] / name if subdirs[0] else root / name})")
