"""Loaders on small files written here in the real formats, and on the real files in
../shared/data (full MNIST, the 1,100-sample N-MNIST subset)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from conftest import shared_data
from tsslc.config import load_config
from tsslc.data import load_dataset
from tsslc.data.cifar10 import MEAN, STD
from tsslc.data.idx import read_idx
from tsslc.data.nmnist import read_events
from tsslc.errors import TsslcError


def write_idx(path, arr: np.ndarray, gz: bool):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def make_mnist(folder, n_train=12, n_test=5, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sets = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        sfx = ".gz" if gz else ""
        write_idx(folder / f"{split}-images-idx3-ubyte{sfx}", x, gz)
        write_idx(folder / f"{split}-labels-idx1-ubyte{sfx}", y, gz)
        sets[split] = (x, y)
    return sets


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_small_files(tmp_path, gz):
    sets = make_mnist(tmp_path / "mnist", gz=gz)
    train, test = load_dataset("MNIST", tmp_path)  # found in the 'mnist' sub-folder
    assert len(train) == 12 and len(test) == 5
    x, y = train[3]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    expect = (sets["train"][0][3].astype(np.float32) / 255 - 0.1307) / 0.3081
    np.testing.assert_allclose(x[0].numpy(), expect, rtol=1e-6, atol=1e-6)
    assert int(y) == sets["train"][1][3]
    assert [int(test[i][1]) for i in range(5)] == list(sets["t10k"][1])


def test_fashion_mnist_normalisation(tmp_path):
    sets = make_mnist(tmp_path, gz=False, seed=1)
    train, _ = load_dataset("FashionMNIST", tmp_path)
    expect = (sets["train"][0][0].astype(np.float32) / 255 - 0.2860) / 0.3530
    np.testing.assert_allclose(train[0][0][0].numpy(), expect, rtol=1e-6, atol=1e-6)


def test_mnist_missing_and_corrupt_files_name_the_file(tmp_path):
    make_mnist(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(TsslcError, match="t10k-labels-idx1-ubyte"):
        load_dataset("MNIST", tmp_path)
    make_mnist(tmp_path, gz=True)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:200])  # truncated gzip stream
    with pytest.raises(TsslcError, match="train-images-idx3-ubyte.gz"):
        load_dataset("MNIST", tmp_path)
    raw = tmp_path / "raw-images"
    write_idx(raw, np.zeros((3, 28, 28), np.uint8), gz=False)
    raw.write_bytes(raw.read_bytes()[:-5])
    with pytest.raises(TsslcError, match="raw-images.*truncated"):
        read_idx(raw)
    with pytest.raises(TsslcError, match="data folder not found"):
        load_dataset("MNIST", tmp_path / "nowhere")
    with pytest.raises(TsslcError, match="--data-dir"):
        load_dataset("MNIST")


def event_bytes(events):
    """events: (x, y, p, ts_us) -> the 5-byte N-MNIST encoding."""
    out = bytearray()
    for x, y, p, ts in events:
        out += bytes([x, y, (p << 7) | ((ts >> 16) & 0x7F), (ts >> 8) & 0xFF, ts & 0xFF])
    return bytes(out)


def test_nmnist_small_files(tmp_path):
    root = tmp_path / "NMNIST"
    evs = {0: [(0, 0, 1, 0), (33, 2, 0, 150_000), (5, 7, 1, 299_999), (6, 6, 1, 400_000)],
           7: [(1, 2, 0, 8_388_607 % 300_000)]}
    for split in ("Train", "Test"):
        for label in range(10):
            (root / split / str(label)).mkdir(parents=True)
        for label, ev in evs.items():
            (root / split / str(label) / "00001.bin").write_bytes(event_bytes(ev))
    e = read_events(root / "Train" / "0" / "00001.bin")
    assert e.tolist() == [list(v) for v in evs[0]]
    train, test = load_dataset("NMNIST", tmp_path, n_steps=10)
    assert len(train) == len(test) == 2
    x, y = train[0]
    assert x.shape == (10, 2, 34, 34) and x.dtype == torch.float32 and int(y) == 0
    assert x.sum() == 3  # the event at 400 ms is outside the 300 ms window
    assert x[0, 1, 0, 0] == 1 and x[5, 0, 2, 33] == 1 and x[9, 1, 7, 5] == 1
    assert int(train[1][1]) == 7
    # the window is a Network key
    cfg = load_config_text(tmp_path, "nmnist_window_ms: 500")
    train, _ = load_dataset(cfg, tmp_path)
    assert train[0][0].shape[0] == cfg.n_steps and train[0][0].sum() == 4
    bad = root / "Test" / "3" / "00002.bin"
    bad.write_bytes(event_bytes([(1, 1, 1, 5)])[:-2])
    with pytest.raises(TsslcError, match="00002.bin"):
        load_dataset("NMNIST", tmp_path, n_steps=10)


def load_config_text(tmp_path, extra: str):
    p = tmp_path / "nm.yaml"
    p.write_text(f"""
Network: {{dataset: NMNIST, n_steps: 6, tau_m: 8, tau_s: 4, loss: count, n_class: 10, {extra}}}
Layers:
  out: {{type: linear, n_inputs: 2312, n_outputs: 10}}
""")
    return load_config(p)


def test_cifar10_binary_small_files(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    recs = {}
    for name, n in [(f"data_batch_{i}.bin", 2) for i in range(1, 6)] + [("test_batch.bin", 3)]:
        r = rng.integers(0, 256, (n, 3073), dtype=np.uint8)
        r[:, 0] = rng.integers(0, 10, n)
        (folder / name).write_bytes(r.tobytes())
        recs[name] = r
    train, test = load_dataset("CIFAR10", tmp_path)
    assert len(train) == 10 and len(test) == 3
    x, y = train[2]  # first record of data_batch_2
    r = recs["data_batch_2.bin"][0]
    assert x.shape == (3, 32, 32) and int(y) == r[0]
    img = r[1:].reshape(3, 32, 32).astype(np.float32) / 255
    expect = (img - np.array(MEAN, np.float32)[:, None, None]) / np.array(STD, np.float32)[:, None, None]
    np.testing.assert_allclose(x.numpy(), expect, rtol=1e-5, atol=1e-5)
    (folder / "data_batch_4.bin").write_bytes(recs["data_batch_4.bin"].tobytes()[:-1])
    with pytest.raises(TsslcError, match="data_batch_4.bin"):
        load_dataset("CIFAR10", tmp_path)
    (folder / "data_batch_4.bin").unlink()
    with pytest.raises(TsslcError, match="missing file data_batch_4.bin"):
        load_dataset("CIFAR10", tmp_path)


def test_unknown_dataset_and_config_without_one():
    with pytest.raises(TsslcError, match="unknown dataset 'SVHN'"):
        load_dataset("SVHN")


def test_real_mnist():
    train, test = load_dataset("MNIST", shared_data("mnist"))
    assert len(train) == 60000 and len(test) == 10000
    x = train.tensors[0]
    assert x.shape == (60000, 1, 28, 28)
    assert abs(float(x.mean())) < 0.01 and abs(float(x.std()) - 1) < 0.01  # the stated mean/std
    counts = torch.bincount(test.tensors[1], minlength=10)
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert [int(v) for v in train.tensors[1][:5]] == [5, 0, 4, 1, 9]


def test_real_nmnist_subset():
    train, test = load_dataset("NMNIST", shared_data("nmnist-subset"), n_steps=30)
    assert len(train) == 1000 and len(test) == 100
    assert sorted(set(train.labels.tolist())) == list(range(10))
    for ds, i in ((train, 0), (train, 999), (test, 50)):
        x, y = ds[i]
        assert x.shape == (30, 2, 34, 34)
        assert set(torch.unique(x).tolist()) <= {0.0, 1.0}
        active = x.sum((1, 2, 3))
        assert (active > 0).float().mean() > 0.9  # the saccades fill the 300 ms window
        assert x[:, 0].sum() > 0 and x[:, 1].sum() > 0  # both polarities
        assert int(y) == int(ds.files[i].parent.name)


def test_nmnist_stabilisation_by_hand():
    """Orchard's stabilize.m on 1-based coordinates, then round half away from zero: at the
    end of saccade 1 (t = 105 ms) a pixel has moved by (3.5, 7), at the end of saccade 2
    (210 ms) by (7, 0), at the end of saccade 3 (315 ms) back by (0, 0)."""
    from tsslc.data.nmnist import stabilize

    ev = np.array([[10, 10, 1, 0], [10, 10, 0, 105_000], [10, 10, 1, 210_000], [10, 10, 1, 315_000],
                   [10, 10, 1, 157_500],   # halfway through saccade 2: x 11-5.25 = 5.75 -> 6, y 11-3.5 = 7.5 -> 8
                   [0, 20, 1, 105_000],    # x 1 - 3.5 < 1: leaves the sensor
                   [33, 0, 0, 52_500]])    # y 1 - 3.5 < 1: leaves the sensor
    out = stabilize(ev)
    assert out.tolist() == [[10, 10, 1, 0], [7, 3, 0, 105_000], [3, 10, 1, 210_000], [10, 10, 1, 315_000],
                            [5, 7, 1, 157_500]]


def test_nmnist_options_reach_the_loader(tmp_path):
    root = tmp_path / "NMNIST"
    for split in ("Train", "Test"):
        for label in range(10):
            (root / split / str(label)).mkdir(parents=True)
        # one event at 100 ms, which a 90 ms window leaves out, one at 1.5 ms (step 0 of 3 ms bins)
        (root / split / "4" / "00001.bin").write_bytes(event_bytes([(12, 20, 1, 1_500), (12, 20, 1, 100_000)]))
    cfg = load_config_text(tmp_path, "nmnist_window_ms: 90, nmnist_stabilize: true, recipe: authors")
    train, _ = load_dataset(cfg, tmp_path)
    x = train[0][0]
    assert x.sum() == 1  # 1.5 ms: moved by 3.5·1.5/105 = 0.05 px in x, 0.1 in y: rounds back to (12, 20)
    assert x[0, 1, 20, 12] == 1
    plain, _ = load_dataset("NMNIST", tmp_path, n_steps=6)  # default: 300 ms, not stabilised
    assert plain[0][0].sum() == 2


def test_recipe_normalisation(tmp_path):
    sets = make_mnist(tmp_path, gz=False, seed=3)
    authors, _ = load_dataset("FashionMNIST", tmp_path, options={"recipe": "authors"})
    expect = (sets["train"][0][0].astype(np.float32) / 255 - 0.1307) / 0.3081  # MNIST's, as their loader
    np.testing.assert_allclose(authors[0][0][0].numpy(), expect, rtol=1e-6, atol=1e-6)
