"""MNIST and Fashion-MNIST in their original IDX files (gzip-compressed or raw).

IDX: a big-endian header — magic 0x0000_08_<ndim> (uint8 data), then ``ndim`` uint32
dimension sizes — followed by the uint8 data. Normalisation (TSSLBP_SPEC.md §2, §4.1):

- MNIST: ``(x/255 - 0.1307) / 0.3081``
- Fashion-MNIST: ``(x/255 - 0.2860) / 0.3530`` (its own training-set mean and std) under the
  ``paper`` recipe; MNIST's under ``authors`` (their loader uses MNIST's transform for both)

Items are ``(1, 28, 28)`` float32 images and int64 labels.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from tsslc.data.locate import data_root, find_file
from tsslc.errors import TsslcError

#: name -> (folder names tried under the data folder, mean, std)
IDX_SETS = {
    "MNIST": (("", "mnist", "MNIST", "MNIST/raw", "mnist/raw"), 0.1307, 0.3081),
    "FashionMNIST": (("", "fashion-mnist", "fashionmnist", "FashionMNIST", "FashionMNIST/raw", "fashion_mnist"),
                     0.2860, 0.3530),
}
SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (``.gz`` or raw) as a uint8 array of its declared shape."""
    p = Path(path)
    from tsslc import validate

    try:
        validate.check_bytes(p.stat().st_size, f"{p}: reading the IDX file")
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # decompressed up to the byte cap: a gzip bomb stops there
            cap = validate.max_bytes()
            z = zlib.decompressobj(wbits=31)
            raw = z.decompress(raw, cap + 1)
            if len(raw) > cap:
                raise TsslcError(f"{p}: the gzip data expands past the {validate.fmt_bytes(cap)} limit (raise it "
                                 f"with 'tsslc {validate.FLAG_MAX_BYTES} SIZE ...' or ${validate.ENV_MAX_BYTES})")
            if not z.eof:
                raise EOFError("compressed data ended before the end-of-stream marker")
    except FileNotFoundError:
        raise TsslcError(f"IDX file not found: {p}") from None
    except (OSError, EOFError, zlib.error) as e:
        raise TsslcError(f"{p}: corrupt gzip data ({e}); replace the file with the original") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise TsslcError(f"{p}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise TsslcError(f"{p}: IDX data type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise TsslcError(f"{p}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    n = int(np.prod(dims))
    if len(raw) - header != n:
        raise TsslcError(f"{p}: IDX header declares {dims} = {n} bytes of data but the file holds "
                         f"{len(raw) - header} (truncated or corrupt)")
    return np.frombuffer(raw, np.uint8, n, header).reshape(dims)


def normalization(name: str, recipe: str = "paper") -> tuple[float, float]:
    """(mean, std) of the pixels /255 for ``name`` under ``recipe``."""
    if recipe == "authors":
        return IDX_SETS["MNIST"][1:]
    return IDX_SETS[name][1:]


def load_idx_split(name: str, data_dir, split: str, recipe: str = "paper") -> TensorDataset:
    """One split ("train" or "test") of MNIST or FashionMNIST as a TensorDataset."""
    subdirs = IDX_SETS[name][0]
    mean, std = normalization(name, recipe)
    root = data_root(data_dir, name)
    img_name, lab_name = SPLITS[split]
    img_path = find_file(root, subdirs, (img_name + ".gz", img_name, img_name.replace("-idx", ".idx")), name)
    lab_path = find_file(root, subdirs, (lab_name + ".gz", lab_name, lab_name.replace("-idx", ".idx")), name)
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise TsslcError(f"{img_path}: expected images of shape (N, 28, 28), got {images.shape}")
    if labels.ndim != 1:
        raise TsslcError(f"{lab_path}: expected a vector of labels, got shape {labels.shape}")
    if len(labels) != len(images):
        raise TsslcError(f"{lab_path}: {len(labels)} labels for {len(images)} images in {img_path}")
    if labels.size and labels.max() > 9:
        raise TsslcError(f"{lab_path}: label {int(labels.max())} out of range 0..9")
    x = torch.from_numpy(images.astype(np.float32)).div_(255.0).sub_(mean).div_(std).unsqueeze(1)
    return TensorDataset(x, torch.from_numpy(labels.astype(np.int64)))


def load_idx_datasets(name: str, data_dir, recipe: str = "paper"):
    return load_idx_split(name, data_dir, "train", recipe), load_idx_split(name, data_dir, "test", recipe)
