"""Data sets: :func:`load_dataset` dispatches on a config's ``dataset`` (or a name).

==============  ===================================================  ======================
name            files (in the folder the user names)                 item
==============  ===================================================  ======================
digits          none (scikit-learn's 8×8 digits, /16)                 (1, 8, 8) float
MNIST           IDX ``train-images-idx3-ubyte[.gz]`` …                (1, 28, 28) float
FashionMNIST    IDX, same names                                       (1, 28, 28) float
NMNIST          ``Train|Test/<label>/*.bin`` 5-byte events            (T, 2, 34, 34) 0/1 float
CIFAR10         ``data_batch_1..5.bin``, ``test_batch.bin``           (3, 32, 32) float
==============  ===================================================  ======================

Normalisation: digits /16; MNIST (x/255-0.1307)/0.3081; Fashion-MNIST (x/255-0.2860)/0.3530;
CIFAR-10 per channel (x/255-mean)/std. N-MNIST frames bin the window ``nmnist_window_ms``
(a Network key, default 300 ms) into n_steps bins.
"""

from __future__ import annotations

from tsslc.config import NetworkConfig, canonical_dataset
from tsslc.errors import TsslcError

NAMES = {"digits": "digits", "mnist": "MNIST", "fashionmnist": "FashionMNIST", "nmnist": "NMNIST",
         "cifar10": "CIFAR10"}


def load_dataset(config_or_name, data_dir=None, n_steps: int | None = None):
    """``(train_set, test_set)`` torch Datasets of ``(x, label)`` items."""
    window_ms = None
    if isinstance(config_or_name, NetworkConfig):
        name = config_or_name.dataset
        if name is None:
            raise TsslcError(f"{config_or_name.source}: Network has no 'dataset' key "
                             "(one of digits, MNIST, FashionMNIST, NMNIST, CIFAR10)")
        n_steps = n_steps if n_steps is not None else config_or_name.n_steps
        window_ms = config_or_name.extra.get("nmnist_window_ms")
    else:
        name = config_or_name
    key = canonical_dataset(name)
    if key not in NAMES:
        raise TsslcError(f"unknown dataset {name!r} (expected one of {', '.join(NAMES.values())})")
    if key == "digits":
        from tsslc.data.digits import load_digits_datasets

        return load_digits_datasets()
    if key in ("mnist", "fashionmnist"):
        from tsslc.data.idx import load_idx_datasets

        return load_idx_datasets(NAMES[key], data_dir)
    if key == "cifar10":
        from tsslc.data.cifar10 import load_cifar10_datasets

        return load_cifar10_datasets(data_dir)
    from tsslc.data.nmnist import DEFAULT_WINDOW_MS, load_nmnist_datasets

    if n_steps is None:
        raise TsslcError("NMNIST: n_steps is needed to bin the events into frames")
    if window_ms is not None and (isinstance(window_ms, bool) or not isinstance(window_ms, (int, float))):
        raise TsslcError(f"Network: 'nmnist_window_ms' must be a number of milliseconds, got {window_ms!r}")
    return load_nmnist_datasets(data_dir, int(n_steps), float(window_ms or DEFAULT_WINDOW_MS))


def arrays(dataset="digits", split: str = "test", samples: int | None = None, data_dir=None,
           n_steps: int | None = None, seed: int = 0):
    """``(x, y)`` numpy arrays of a data set's ``split`` ("train" | "test") in the back ends'
    layout (:mod:`tsslc.ir.layout`): static items ``(B, *shape)`` float32, event items time
    first ``(T, B, *shape)``; labels ``(B,)`` int64. ``samples``: how many (default all).
    ``dataset`` is a name or a :class:`NetworkConfig`."""
    import numpy as np

    if split not in ("train", "test"):
        raise TsslcError(f"split must be 'train' or 'test', got {split!r}")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise TsslcError(f"samples must be a positive integer, got {samples!r}")
    train_set, test_set = load_dataset(dataset, data_dir, n_steps=n_steps)
    ds = train_set if split == "train" else test_set
    n = len(ds) if samples is None else min(int(samples), len(ds))
    idx = range(n)
    if hasattr(ds, "tensors"):
        x = ds.tensors[0][:n].numpy().astype(np.float32, copy=False)
        y = ds.tensors[1][:n].numpy().astype(np.int64)
    else:
        items = [ds[i] for i in idx]
        x = np.stack([np.asarray(a, dtype=np.float32) for a, _ in items]) if items else np.zeros((0,), np.float32)
        y = np.asarray([int(b) for _, b in items], dtype=np.int64)
    if canonical_dataset(dataset.dataset if isinstance(dataset, NetworkConfig) else dataset) == "nmnist":
        x = np.ascontiguousarray(x.swapaxes(0, 1))  # items are (T, *shape): time first
    return x, y
