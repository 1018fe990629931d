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
