"""Figures as PNG bytes (matplotlib, Agg backend, no display needed).

* :func:`firing_counts` — the paper's Fig. 7: share of neurons firing 0..T times per layer;
* :func:`firing_rates` — the paper's Fig. 8: histogram of the neurons' firing rates;
* :func:`raster` — spike raster of every layer for one sample;
* :func:`energy_per_layer` — energy per layer, one panel per price table (never summed);
* :func:`training_curve` — accuracy and loss per epoch;
* :func:`agreement` — spike agreement per layer between back ends.

:func:`save` writes one atomically.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def save(path, png: bytes) -> None:
    from tsslc.atomic import atomic_write

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(png)

    atomic_write(path, write)


def firing_counts(fractions: dict[str, np.ndarray], title: str = "Share of neurons firing k times") -> bytes:
    """Fig. 7. ``fractions``: {label (e.g. 'digits/hidden'): shares of k = 0..T spikes}."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    n = len(fractions)
    width = 0.8 / max(n, 1)
    for i, (label, f) in enumerate(fractions.items()):
        k = np.arange(len(f))
        ax.bar(k + (i - (n - 1) / 2) * width, 100 * np.asarray(f), width, label=label)
    ax.set_xlabel("spikes per neuron in one sample (k)")
    ax.set_ylabel("% of neurons")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _png(fig)


def firing_rates(rates: dict[str, np.ndarray], title: str = "Firing rates of the neurons") -> bytes:
    """Fig. 8. ``rates``: {label: per-neuron rate in spikes per step (0..1)}."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bins = np.linspace(0, 1, 21)
    for label, r in rates.items():
        ax.hist(np.asarray(r), bins=bins, alpha=0.6, label=label,
                weights=np.full(len(r), 100.0 / max(len(r), 1)))
    ax.set_xlabel("firing rate (spikes per step, averaged over samples)")
    ax.set_ylabel("% of neurons")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _png(fig)


def raster(spikes: dict[str, np.ndarray], sample: int = 0, title: str = "") -> bytes:
    """One panel per layer: dots at (step, neuron) where neuron fired, for ``sample``."""
    names = list(spikes)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        s = np.asarray(spikes[name])
        s = s.reshape(s.shape[0], s.shape[1], -1)[:, sample]
        t, n = np.nonzero(s)
        ax.scatter(t, n, s=4, marker="|", color="k")
        ax.set_xlim(-0.5, s.shape[0] - 0.5)
        ax.set_ylim(-0.5, s.shape[1] - 0.5)
        ax.set_title(f"{name} ({int(s.sum())} spikes)", fontsize=9)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("neuron")
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)


def energy_per_layer(report: dict) -> bytes:
    """Energy per layer (nJ per sample), one panel per target table: different tables and
    scopes are never stacked or summed."""
    targets = {k: v for k, v in report.get("targets", {}).items() if v.get("per_layer_pJ")}
    fig, axes = plt.subplots(1, max(len(targets), 1), figsize=(3.8 * max(len(targets), 1), 3.4), squeeze=False)
    for ax, (name, r) in zip(axes[0], targets.items()):
        layers = list(r["per_layer_pJ"])
        ax.bar(layers, [r["per_layer_pJ"][l] / 1e3 for l in layers], color="tab:orange")
        scope = next(iter(r["totals_pJ"]), "")
        ax.set_title(f"{name} ({scope})", fontsize=9)
        ax.set_ylabel("nJ per sample")
        ax.tick_params(axis="x", rotation=30, labelsize=8)
    return _png(fig)


def training_curve(history: list[dict]) -> bytes:
    """Accuracy (train/test) and loss per epoch from the training metrics."""
    ep = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.2))
    for key in ("train_acc", "test_acc"):
        if any(key in h for h in history):
            a1.plot(ep, [100 * h.get(key, np.nan) for h in history], marker="o", ms=3, label=key)
    for key in ("train_loss", "test_loss"):
        if any(key in h for h in history):
            a2.plot(ep, [h.get(key, np.nan) for h in history], marker="o", ms=3, label=key)
    a1.set_xlabel("epoch"), a1.set_ylabel("accuracy (%)"), a1.legend(fontsize=8)
    a2.set_xlabel("epoch"), a2.set_ylabel("loss"), a2.legend(fontsize=8)
    return _png(fig)


def agreement(per_pair: dict[str, dict[str, float]]) -> bytes:
    """Grouped bars: share of (neuron, step, sample) spikes that agree, per layer, for each
    pair of back ends ({'intsim vs lava': {layer: fraction}})."""
    pairs = list(per_pair)
    layers = sorted({l for v in per_pair.values() for l in v}, key=lambda l: list(next(iter(per_pair.values()))).index(l)
                    if l in next(iter(per_pair.values())) else 99)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / max(len(pairs), 1)
    x = np.arange(len(layers))
    for i, p in enumerate(pairs):
        ax.bar(x + (i - (len(pairs) - 1) / 2) * width, [100 * per_pair[p].get(l, np.nan) for l in layers], width, label=p)
    ax.set_xticks(x, layers)
    ax.set_ylabel("% spikes agreeing")
    lo = min([100 * v for d in per_pair.values() for v in d.values()] + [100.0])
    ax.set_ylim(max(0.0, lo - 5), 100.5)
    ax.legend(fontsize=8)
    return _png(fig)
