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

Normalisation (by the config's ``recipe``, TSSLBP_SPEC.md §4.1): digits /16; MNIST
(x/255-0.1307)/0.3081; Fashion-MNIST (x/255-0.2860)/0.3530 (``paper``) or MNIST's
(``authors``); CIFAR-10 per channel (x/255-mean)/std with std (0.2470, 0.2435, 0.2616)
(``paper``) or the authors' (0.2023, 0.1994, 0.2010). N-MNIST frames bin the window
``nmnist_window_ms`` (a Network key, default 300 ms) into n_steps bins, after undoing the
sensor's saccades when ``nmnist_stabilize`` is true (:mod:`tsslc.data.nmnist`).

:func:`data_options` names what of a config shapes its data (the exported model keeps it in
its metadata, so ``tsslc run``/``verify`` load the test set as training saw it), and
:func:`stratified_indices` picks a fair, seeded subset for ``--samples``/``--calibration``.
"""

from __future__ import annotations

import numpy as np

from tsslc.config import NetworkConfig, canonical_dataset
from tsslc.errors import TsslcError

NAMES = {"digits": "digits", "mnist": "MNIST", "fashionmnist": "FashionMNIST", "nmnist": "NMNIST",
         "cifar10": "CIFAR10"}


#: the data-shaping keys of a config's Network section (besides dataset and n_steps)
DATA_KEYS = ("recipe", "nmnist_window_ms", "nmnist_stabilize")


def data_options(config: NetworkConfig) -> dict:
    """What of ``config`` decides how its data set is read: ``{"recipe": .., and the
    N-MNIST binning keys it sets}`` (stored in an exported model's metadata as ``data``)."""
    out = {"recipe": config.recipe}
    for key in DATA_KEYS[1:]:
        if key in config.extra:
            out[key] = config.extra[key]
    return out


def load_dataset(config_or_name, data_dir=None, n_steps: int | None = None, options: dict | None = None):
    """``(train_set, test_set)`` torch Datasets of ``(x, label)`` items.

    ``config_or_name``: a :class:`NetworkConfig` (its dataset, n_steps and
    :func:`data_options`) or a data-set name with ``n_steps`` and ``options`` (a model's
    ``metadata["data"]``; default: the ``paper`` recipe, 300 ms unstabilised N-MNIST)."""
    if isinstance(config_or_name, NetworkConfig):
        name = config_or_name.dataset
        if name is None:
            raise TsslcError(f"{config_or_name.source}: Network has no 'dataset' key "
                             "(one of digits, MNIST, FashionMNIST, NMNIST, CIFAR10)")
        n_steps = n_steps if n_steps is not None else config_or_name.n_steps
        options = {**data_options(config_or_name), **(options or {})}
    else:
        name = config_or_name
    options = dict(options or {})
    recipe = options.get("recipe", "paper")
    key = canonical_dataset(name)
    if key not in NAMES:
        raise TsslcError(f"unknown dataset {name!r} (expected one of {', '.join(NAMES.values())})")
    if key == "digits":
        from tsslc.data.digits import load_digits_datasets

        return load_digits_datasets()
    if key in ("mnist", "fashionmnist"):
        from tsslc.data.idx import load_idx_datasets

        return load_idx_datasets(NAMES[key], data_dir, recipe)
    if key == "cifar10":
        from tsslc.data.cifar10 import load_cifar10_datasets

        return load_cifar10_datasets(data_dir, recipe)
    from tsslc.data.nmnist import DEFAULT_WINDOW_MS, load_nmnist_datasets

    if n_steps is None:
        raise TsslcError("NMNIST: n_steps is needed to bin the events into frames")
    window_ms = options.get("nmnist_window_ms")
    if window_ms is not None and (isinstance(window_ms, bool) or not isinstance(window_ms, (int, float))):
        raise TsslcError(f"Network: 'nmnist_window_ms' must be a number of milliseconds, got {window_ms!r}")
    return load_nmnist_datasets(data_dir, int(n_steps), float(window_ms or DEFAULT_WINDOW_MS),
                                bool(options.get("nmnist_stabilize", False)))


def dataset_labels(dataset) -> np.ndarray:
    """Every item's label as an int64 array, without reading the items where the data set
    keeps its labels apart (TensorDataset, N-MNIST, Subset of those)."""
    from torch.utils.data import Subset, TensorDataset

    if isinstance(dataset, TensorDataset):
        return np.asarray(dataset.tensors[1], dtype=np.int64)
    if isinstance(dataset, Subset):
        return dataset_labels(dataset.dataset)[np.asarray(dataset.indices, dtype=np.int64)]
    labels = getattr(dataset, "labels", None)
    if labels is not None and len(labels) == len(dataset):
        return np.asarray(labels, dtype=np.int64)
    return np.asarray([int(dataset[i][1]) for i in range(len(dataset))], dtype=np.int64)


def stratified_indices(labels, n: int | None, seed: int = 0) -> np.ndarray:
    """``n`` item indices drawn fairly from every class, ascending; all when ``n`` is None
    or not below the number of items.

    Each class's items are shuffled with ``seed``; the classes, in a seeded order, then give
    one item each in turn (a class that runs out drops out), so every class present gets
    ⌊n/k⌋ or ⌈n/k⌉ items when it has them, and ``n`` ≥ k draws every one of the k classes,
    however the set is ordered (N-MNIST is stored by label: the first N would be zeros)."""
    labels = np.asarray(labels)
    total = len(labels)
    if n is None or n >= total:
        return np.arange(total)
    if n < 1:
        raise TsslcError(f"a sample count must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(labels))
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    picked: list[int] = []
    depth = 0
    while len(picked) < n:
        for pool in pools:
            if depth < len(pool):
                picked.append(int(pool[depth]))
                if len(picked) == n:
                    break
        depth += 1
    return np.sort(np.asarray(picked, dtype=np.int64))


def stratified_subset(dataset, n: int | None, seed: int = 0):
    """``dataset`` itself, or a ``torch.utils.data.Subset`` of :func:`stratified_indices`."""
    from torch.utils.data import Subset

    if n is None or n >= len(dataset):
        return dataset
    return Subset(dataset, stratified_indices(dataset_labels(dataset), n, seed).tolist())


def arrays(dataset="digits", split: str = "test", samples: int | None = None, data_dir=None,
           n_steps: int | None = None, seed: int = 0, options: dict | None = None):
    """``(x, y)`` numpy arrays of a data set's ``split`` ("train" | "test") in the back ends'
    layout (:mod:`tsslc.ir.layout`): static items ``(B, *shape)`` float32, event items time
    first ``(T, B, *shape)``; labels ``(B,)`` int64. ``samples``: how many (default all),
    drawn from every class by :func:`stratified_indices` with ``seed`` — never the first N
    of a set stored by label. ``dataset`` is a name or a :class:`NetworkConfig`;
    ``options``: :func:`data_options` (a model's ``metadata["data"]``: recipe, N-MNIST
    binning), so that a model sees its data as it did in training."""
    if split not in ("train", "test"):
        raise TsslcError(f"split must be 'train' or 'test', got {split!r}")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise TsslcError(f"samples must be a positive integer, got {samples!r}")
    train_set, test_set = load_dataset(dataset, data_dir, n_steps=n_steps, options=options)
    return sample_arrays(train_set if split == "train" else test_set, samples, seed)


def sample_arrays(ds, samples: int | None = None, seed: int = 0):
    """``(x, y)`` numpy arrays of ``samples`` items of a Dataset (all when None), drawn from
    every class by :func:`stratified_indices`, in the back ends' time-first layout (:func:`stack`)."""
    idx = stratified_indices(dataset_labels(ds), samples, seed)
    if hasattr(ds, "tensors"):
        x = ds.tensors[0][idx].numpy().astype(np.float32, copy=False)
        y = ds.tensors[1][idx].numpy().astype(np.int64)
        return x, y
    items = [ds[int(i)] for i in idx]
    if not items:
        raise TsslcError("the data set holds no samples")
    x = stack([np.asarray(a, dtype=np.float32) for a, _ in items], time_varying(ds)).numpy()
    return x, np.asarray([int(b) for _, b in items], dtype=np.int64)


def time_varying(dataset) -> bool:
    """Whether a data set's items are time-varying frames ``(T, *shape)`` (N-MNIST) rather
    than static ``(*shape)``: a data set says so with ``time_varying = True`` (a user's own
    event data set too); Subsets are looked through."""
    from torch.utils.data import Subset

    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return bool(getattr(dataset, "time_varying", False))


def stack(xs, time_varying_items: bool):
    """One batch in tsslc's time-first layout (:mod:`tsslc.ir.layout`): static items stacked
    ``(B, *shape)``; time-varying items ``(T, *shape)`` stacked along the second axis,
    ``(T, B, *shape)``."""
    import torch

    return torch.stack([torch.as_tensor(x) for x in xs], dim=1 if time_varying_items else 0)
