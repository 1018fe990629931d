"""Equivalence, layer by layer: two back ends' spikes compared on the (step, sample, neuron)
grid of every population, the first divergence located, classifications compared.

:func:`compare` takes two :class:`~tsslc.backends.BackendResult` of the same samples (on
the float model's time axis, as every back end returns them); :func:`tsslc.verify` (the
API) runs the back ends and compares them. The comparison's dictionary is what
``tsslc verify --json`` writes (schema in :mod:`tsslc.commands.verify`).
"""

from __future__ import annotations

import numpy as np

from tsslc.errors import TsslcError


def compare(ref, res, y, ref_name: str, name: str) -> dict:
    """Layer-by-layer comparison of two BackendResults on the same samples (``y``: labels,
    or None to leave the accuracies out)."""
    layers, first = {}, None
    eq_all = tot_all = 0
    for lif, a in ref.spikes.items():
        if lif not in res.spikes:
            raise TsslcError(f"back end {name!r} reports no spikes for population '{lif}'")
        b = res.spikes[lif]
        if a.shape != b.shape:
            raise TsslcError(f"population '{lif}': {ref_name} spikes {a.shape} vs {name} {b.shape}")
        diff = a != b
        n_diff, total = int(diff.sum()), int(diff.size)
        layers[lif] = {"spike_agreement": 1.0 - n_diff / total if total else 1.0, "mismatches": n_diff, "total": total,
                       "spikes_reference": int(a.sum(dtype=np.int64)), "spikes_backend": int(b.sum(dtype=np.int64))}
        eq_all += total - n_diff
        tot_all += total
        if n_diff and first is None:
            T, B = a.shape[:2]
            flat = diff.reshape(T, B, -1)
            t = int(np.argmax(flat.any(axis=(1, 2))))
            sample = int(np.argmax(flat[t].any(axis=1)))
            neuron = int(np.argmax(flat[t, sample]))
            first = {"layer": lif, "step": t, "sample": sample, "neuron": neuron,
                     "neuron_index": [int(i) for i in np.unravel_index(neuron, a.shape[2:])]}
    pa, pb = ref.predictions(), res.predictions()
    if y is None:
        acc_a = acc_b = delta = None
    else:
        acc_a, acc_b = float((pa == y).mean()), float((pb == y).mean())
        delta = (acc_b - acc_a) * 100
    return {"reference": ref_name, "backend": name, "spike_agreement": eq_all / tot_all if tot_all else 1.0,
            "layers": layers, "first_divergence": first, "classification_agreement": float((pa == pb).mean()),
            "accuracy_reference": acc_a, "accuracy_backend": acc_b, "accuracy_delta_points": delta}


