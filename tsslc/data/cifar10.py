"""CIFAR-10, binary version (no pickle): ``data_batch_1..5.bin`` and ``test_batch.bin``.

Each record is 1 label byte followed by 3,072 pixel bytes (1,024 red, then green, then blue,
each 32×32 row-major). Normalisation per channel: ``(x/255 - mean[c]) / std[c]`` with the
training set's mean (0.4914, 0.4822, 0.4465) and std (0.2470, 0.2435, 0.2616) under the
``paper`` recipe, the authors' loader's std (0.2023, 0.1994, 0.2010) under ``authors``.
Items are ``(3, 32, 32)`` float32 and int64 labels. (The authors also augment the training
images with a random 32×32 crop of the image padded by 4 and a random horizontal flip;
tsslc does not.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from tsslc.data.locate import data_root, find_file
from tsslc.errors import TsslcError

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
#: the std in the authors' CIFAR-10 loader (a widely copied figure, not the data's std)
AUTHORS_STD = (0.2023, 0.1994, 0.2010)
RECORD = 1 + 3 * 32 * 32
SUBDIRS = ("", "cifar-10-batches-bin", "cifar10", "CIFAR10", "cifar-10")
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels uint8 (N,)) of one binary batch file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise TsslcError(f"CIFAR-10 file not found: {p}") from None
    if not raw or len(raw) % RECORD:
        raise TsslcError(f"{p}: {len(raw)} bytes is not a whole number of {RECORD}-byte CIFAR-10 records "
                         "(truncated or not the binary version)")
    rec = np.frombuffer(raw, np.uint8).reshape(-1, RECORD)
    labels = rec[:, 0]
    if labels.max() > 9:
        raise TsslcError(f"{p}: label {int(labels.max())} out of range 0..9 (not a CIFAR-10 binary batch)")
    return rec[:, 1:].reshape(-1, 3, 32, 32), labels


def _load(root: Path, files: tuple[str, ...], recipe: str = "paper") -> TensorDataset:
    xs, ys = [], []
    for name in files:
        x, y = read_cifar_batch(find_file(root, SUBDIRS, (name,), "CIFAR10"))
        xs.append(x)
        ys.append(y)
    x = torch.from_numpy(np.concatenate(xs).astype(np.float32)).div_(255.0)
    std = AUTHORS_STD if recipe == "authors" else STD
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return TensorDataset(x, torch.from_numpy(np.concatenate(ys).astype(np.int64)))


def load_cifar10_datasets(data_dir, recipe: str = "paper"):
    root = data_root(data_dir, "CIFAR10")
    return _load(root, TRAIN_FILES, recipe), _load(root, TEST_FILES, recipe)
