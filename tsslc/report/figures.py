"""Figures as PNG bytes (matplotlib, Agg backend, no display needed).

* :func:`firing_counts` — the paper's Fig. 7: share of neurons firing 0..T times per layer;
* :func:`firing_rates` — the paper's Fig. 8: histogram of the neurons' firing rates;
* :func:`raster` — spike raster of every layer for one sample;
* :func:`energy_per_layer` — the targets' energy per layer side by side (never summed);
* :func:`accuracy_vs_energy` — accuracy against energy per sample, one point per run;
* :func:`confusion_matrices` / :func:`per_class_accuracy` — from each run's predictions;
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


def _png(fig, extra=()) -> bytes:
    """PNG bytes; ``extra``: artists outside the layout (legends below the axes) the image
    grows to hold."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", bbox_extra_artists=list(extra))
    plt.close(fig)
    return buf.getvalue()


def save(path, png: bytes) -> None:
    from tsslc.atomic import atomic_write_bytes

    atomic_write_bytes(path, png, what="figure")


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


def _energy_label(name: str, r: dict) -> str:
    scope = next(iter(r.get("totals_pJ") or {}), "")
    what = {"per-term": "sum of per-term figures", "all-in": "all-in figure"}.get(scope, scope)
    return f"{name} ({what}" + (f"; {r['stand_in'].split(':')[0]}" if r.get("stand_in") else "") + ")"


def energy_per_layer(report: dict) -> bytes:
    """The targets' energy per layer side by side: nJ per sample (left) and each layer's share
    of its own target's total (right, comparable across scopes). Bars of all-in tables are
    hatched; nothing is stacked or summed across tables."""
    targets = {k: v for k, v in report.get("targets", {}).items() if v.get("per_layer_pJ")}
    layers: list[str] = []
    for r in targets.values():
        layers += [l for l in r["per_layer_pJ"] if l not in layers]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    n = max(len(targets), 1)
    width = 0.8 / n
    x = np.arange(len(layers))
    for i, (name, r) in enumerate(targets.items()):
        e = np.array([r["per_layer_pJ"].get(l, 0.0) for l in layers]) / 1e3
        total = e.sum() or 1.0
        hatch = "//" if "all-in" in r.get("totals_pJ", {}) else None
        kw = dict(width=width, label=_energy_label(name, r), color=f"C{i}", hatch=hatch, edgecolor="k", linewidth=0.5)
        a1.bar(x + (i - (n - 1) / 2) * width, e, **kw)
        a2.bar(x + (i - (n - 1) / 2) * width, 100 * e / total, **kw)
    for ax in (a1, a2):
        ax.set_xticks(x, layers)
        ax.set_xlabel("layer (energy of the synapses leaving it and of its neurons)")
    a1.set_ylabel("nJ per sample")
    a1.set_title("energy per sample", fontsize=10)
    a2.set_ylabel("% of the target's total")
    a2.set_title("share of each target's own total", fontsize=10)
    a2.set_ylim(0, 105)
    a1.legend(fontsize=7)
    return _png(fig)


def accuracy_vs_energy(series: dict[str, list[dict]]) -> bytes:
    """One point per run (target / back end): energy per sample (nJ, x) against accuracy (%,
    y), each named in the legend with its numbers, scope and samples. ``series``: {name:
    summary rows (tsslc.report.record.summarize)}; several series (runs being compared) get
    filled, open, ... markers. Rows without energy (the float model) are dashed lines."""
    fig, ax = plt.subplots(figsize=(8.5, 3.6))
    fills = ["full", "none", "left", "bottom"]
    colors: dict[str, str] = {}
    xmax = 0.0
    for si, (sname, rows) in enumerate(series.items()):
        tag = f"[{sname}] " if sname else ""
        for r in rows:
            acc = 100 * r["accuracy"]
            if not r.get("energy") or not r["energy"].get("totals_pJ"):
                ax.axhline(acc, ls="--" if si == 0 else ":", lw=1, color="0.45",
                           label=f"{tag}{r['label']} model: {acc:.1f} % (no chip, not priced)")
                continue
            scope, pj = next(iter(r["energy"]["totals_pJ"].items()))
            nj = pj / 1e3
            xmax = max(xmax, nj)
            color = colors.setdefault(r["target"] or r["label"], f"C{len(colors)}")
            marker = "s" if r["backend"] == "lava" else "o"
            note = {"per-term": "per-term sum", "all-in": "all-in"}.get(scope, scope)
            if r["energy"].get("stand_in"):
                note += ", " + r["energy"]["stand_in"].split(":")[0]
            ax.plot([nj], [acc], marker=marker, ms=9, color=color, fillstyle=fills[si % len(fills)], ls="none",
                    label=f"{tag}{r['label']}: {acc:.1f} %, {nj:,.0f} nJ ({note}; {r['samples']} samples)")
    ax.set_xlim(0, 1.15 * xmax if xmax else 1)
    ax.set_xlabel("energy per sample (nJ); per-term sums and all-in figures are not like for like")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    # outside the axes, below; not part of the layout (the saved image grows to hold it)
    leg = ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.17), frameon=False)
    leg.set_in_layout(False)
    return _png(fig, [leg])


def confusion_counts(pred, y, n: int) -> np.ndarray:
    """(n, n) counts: row = true class, column = predicted class."""
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (np.asarray(y, dtype=int), np.asarray(pred, dtype=int)), 1)
    return m


def class_accuracy(pred, y, n: int) -> np.ndarray:
    """Share of each class's samples predicted right (NaN for a class with no samples)."""
    m = confusion_counts(pred, y, n)
    rows = m.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, np.diag(m) / np.maximum(rows, 1), np.nan)


def _n_class(runs: dict[str, tuple]) -> int:
    return int(max([max(max(p, default=0), max(y, default=0)) for p, y in runs.values()] + [0])) + 1


def confusion_matrices(runs: dict[str, tuple[list[int], list[int]]]) -> bytes:
    """One confusion matrix per run ({label: (predictions, labels)}): rows the true class,
    columns the predicted one, cells the number of samples, shaded by the share of the row."""
    n = _n_class(runs)
    cols = min(len(runs), 4)
    nrows = -(-len(runs) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(2.75 * cols, 2.9 * nrows), squeeze=False)
    for ax in axes.ravel()[len(runs):]:
        ax.axis("off")
    for ax, (label, (p, y)) in zip(axes.ravel(), runs.items()):
        m = confusion_counts(p, y, n)
        share = m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i, j in zip(*np.nonzero(m)):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=6,
                    color="w" if share[i, j] > 0.5 else "k")
        ax.set_xticks(range(n)), ax.set_yticks(range(n))
        ax.tick_params(labelsize=6)
        ax.set_title(f"{label} ({len(y)} samples, {100 * float((np.asarray(p) == np.asarray(y)).mean()):.1f} %)",
                     fontsize=7)
        ax.set_xlabel("predicted class", fontsize=7)
        ax.set_ylabel("true class", fontsize=7)
    return _png(fig)


def per_class_accuracy(runs: dict[str, tuple[list[int], list[int]]]) -> bytes:
    """Grouped bars: % of each class's test samples classified right, one bar per run."""
    n = _n_class(runs)
    fig, ax = plt.subplots(figsize=(9, 3.4))
    width = 0.8 / max(len(runs), 1)
    lo = 100.0
    for i, (label, (p, y)) in enumerate(runs.items()):
        acc = 100 * class_accuracy(p, y, n)
        lo = min(lo, np.nanmin(acc)) if np.isfinite(acc).any() else lo
        ax.bar(np.arange(n) + (i - (len(runs) - 1) / 2) * width, acc, width, label=f"{label} ({len(y)} samples)")
    ax.set_xticks(range(n))
    ax.set_xlabel("class")
    ax.set_ylabel("% of the class's samples right")
    ax.set_ylim(max(0.0, lo - 10), 101)
    leg = ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(len(runs), 4),
                    frameon=False)
    leg.set_in_layout(False)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig, [leg])


def training_curve(history: list[dict]) -> bytes:
    """Accuracy (train/test) and loss per epoch from the training metrics."""
    ep = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.2))
    names = {"train": "training set", "test": "test set"}
    for key in ("train_acc", "test_acc"):
        if any(key in h for h in history):
            a1.plot(ep, [100 * h.get(key, np.nan) for h in history], marker="o", ms=3, label=names[key.split("_")[0]])
    for key in ("train_loss", "test_loss"):
        if any(key in h for h in history):
            a2.plot(ep, [h.get(key, np.nan) for h in history], marker="o", ms=3, label=names[key.split("_")[0]])
    a1.xaxis.get_major_locator().set_params(integer=True)
    a2.xaxis.get_major_locator().set_params(integer=True)
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
    leg = ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    leg.set_in_layout(False)
    return _png(fig, [leg])
