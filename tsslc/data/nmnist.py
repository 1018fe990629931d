"""N-MNIST in its original event format (Orchard et al. 2015).

Layout: ``Train/<label>/*.bin`` and ``Test/<label>/*.bin``. Each file is a sequence of
5-byte events, 40 bits big-endian: x (8), y (8), polarity (1), timestamp in µs (23).
A sample becomes ``T`` binary frames of shape (2, 34, 34): the window [0, window_ms) is cut
into T equal bins and frame[t, p, y, x] = 1 if at least one event of polarity p hit pixel
(x, y) in bin t. Files are read lazily (one per item); their sizes are checked up front.

Stabilisation (``stabilize=True``, the authors' preprocessing): the sensor moved in three
straight 105 ms saccades while recording, so a digit drifts by up to 3.5 pixels in x and 7
in y. :func:`stabilize` subtracts that motion (Orchard's ``stabilize.m``, which the TSSL-BP
authors run before binning): with t in µs and 1-based coordinates,

    t ≤ 105e3:          x -= 3.5·t/105e3,                y -= 7·t/105e3
    105e3 < t ≤ 210e3:  x -= 3.5 + 3.5·(t-105e3)/105e3,  y -= 7 - 7·(t-105e3)/105e3
    t > 210e3:          x -= 7 - 7·(t-210e3)/105e3

then rounds (half away from zero) and drops events that leave the sensor. The authors bin
3 ms per step with T = 30 (the first 90 ms: ``nmnist_window_ms: 90``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tsslc.data.locate import data_root, find_dir
from tsslc.errors import TsslcError

SENSOR = (34, 34)
SUBDIRS = ("", "nmnist", "NMNIST", "N-MNIST", "nmnist-subset")
DEFAULT_WINDOW_MS = 300.0


def read_events(path: str | Path) -> np.ndarray:
    """Events of one file as an int64 array (N, 4): x, y, polarity, timestamp µs."""
    p = Path(path)
    try:
        raw = np.fromfile(p, np.uint8)
    except FileNotFoundError:
        raise TsslcError(f"N-MNIST file not found: {p}") from None
    if raw.size % 5:
        raise TsslcError(f"{p}: {raw.size} bytes is not a whole number of 5-byte N-MNIST events (truncated?)")
    ev = raw.reshape(-1, 5).astype(np.int64)
    out = np.empty((len(ev), 4), np.int64)
    out[:, 0] = ev[:, 0]
    out[:, 1] = ev[:, 1]
    out[:, 2] = ev[:, 2] >> 7
    out[:, 3] = ((ev[:, 2] & 0x7F) << 16) | (ev[:, 3] << 8) | ev[:, 4]
    if len(out) and (out[:, 0].max() >= SENSOR[1] or out[:, 1].max() >= SENSOR[0]):
        raise TsslcError(f"{p}: event coordinate ({int(out[:, 0].max())}, {int(out[:, 1].max())}) outside "
                         f"the {SENSOR[1]}x{SENSOR[0]} sensor (not an N-MNIST file?)")
    return out


def stabilize(events: np.ndarray) -> np.ndarray:
    """Events (N, 4) with the saccade motion removed (see the module docstring); events
    pushed off the 34×34 sensor are dropped."""
    ts = events[:, 3].astype(np.float64)
    x = events[:, 0].astype(np.float64) + 1.0  # stabilize.m works on 1-based coordinates
    y = events[:, 1].astype(np.float64) + 1.0
    s1 = ts <= 105e3
    s2 = (ts > 105e3) & (ts <= 210e3)
    s3 = ts > 210e3
    x[s1] -= 3.5 * ts[s1] / 105e3
    y[s1] -= 7.0 * ts[s1] / 105e3
    x[s2] -= 3.5 + 3.5 * (ts[s2] - 105e3) / 105e3
    y[s2] -= 7.0 - 7.0 * (ts[s2] - 105e3) / 105e3
    x[s3] -= 7.0 - 7.0 * (ts[s3] - 210e3) / 105e3
    x, y = np.floor(x + 0.5), np.floor(y + 0.5)  # MATLAB round; negatives are dropped below
    keep = (x >= 1) & (y >= 1) & (x <= SENSOR[1]) & (y <= SENSOR[0])
    out = events[keep].copy()
    out[:, 0] = x[keep].astype(np.int64) - 1
    out[:, 1] = y[keep].astype(np.int64) - 1
    return out


def bin_events(events: np.ndarray, n_steps: int, window_ms: float = DEFAULT_WINDOW_MS) -> np.ndarray:
    """Binary frames (T, 2, 34, 34) float32 from events (N, 4) as returned by :func:`read_events`."""
    frames = np.zeros((n_steps, 2, *SENSOR), np.float32)
    ts = events[:, 3]
    keep = ts < window_ms * 1000.0
    ev = events[keep]
    t = np.minimum((ev[:, 3] * n_steps / (window_ms * 1000.0)).astype(np.int64), n_steps - 1)
    frames[t, ev[:, 2], ev[:, 1], ev[:, 0]] = 1.0
    return frames


class NMNISTDataset(Dataset):
    """One split; items ``(frames (T, 2, 34, 34) float32, label int64)`` (batches of them are
    time first, ``(T, B, 2, 34, 34)``: :func:`tsslc.data.stack`)."""

    time_varying = True

    def __init__(self, split_dir: str | Path, n_steps: int, window_ms: float = DEFAULT_WINDOW_MS,
                 stabilize: bool = False):
        self.split_dir = Path(split_dir)
        self.stabilize = bool(stabilize)
        if n_steps < 1:
            raise TsslcError(f"N-MNIST: n_steps must be >= 1, got {n_steps}")
        if not window_ms > 0:
            raise TsslcError(f"N-MNIST: the binning window must be > 0 ms, got {window_ms}")
        self.n_steps, self.window_ms = int(n_steps), float(window_ms)
        files, labels = [], []
        for label in range(10):
            d = self.split_dir / str(label)
            if not d.is_dir():
                raise TsslcError(f"N-MNIST: missing class folder {d}")
            for f in sorted(d.glob("*.bin")):
                if f.stat().st_size % 5:
                    raise TsslcError(f"{f}: {f.stat().st_size} bytes is not a whole number of 5-byte "
                                     "N-MNIST events (truncated?)")
                files.append(f)
                labels.append(label)
        if not files:
            raise TsslcError(f"N-MNIST: no .bin event files under {self.split_dir}/<label>/")
        self.files = files
        self.labels = torch.tensor(labels, dtype=torch.int64)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        events = read_events(self.files[i])
        if self.stabilize:
            events = stabilize(events)
        frames = bin_events(events, self.n_steps, self.window_ms)
        return torch.from_numpy(frames), self.labels[i]


def load_nmnist_datasets(data_dir, n_steps: int, window_ms: float = DEFAULT_WINDOW_MS, stabilize: bool = False):
    root = data_root(data_dir, "NMNIST")
    return (NMNISTDataset(find_dir(root, SUBDIRS, "Train", "NMNIST"), n_steps, window_ms, stabilize),
            NMNISTDataset(find_dir(root, SUBDIRS, "Test", "NMNIST"), n_steps, window_ms, stabilize))
