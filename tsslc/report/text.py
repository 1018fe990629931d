"""Plain-text tables for the terminal: the compile report (quantization and mapping per
layer), a run's per-layer activity, a verification's comparisons. The command line prints
them; the HTML report (:mod:`tsslc.report.html`) shows the same data as tables."""

from __future__ import annotations

import math


def _rounding(row: dict) -> str:
    r = row.get("rounding", "")
    cur, near = row.get("current_error_rel_rms"), row.get("current_error_rel_rms_nearest")
    if r in ("gptq", "error_feedback") and cur is not None and near is not None:
        return f"{r} ({100 * cur:.2f} %, nearest {100 * near:.2f} %)"
    return f"{r} ({100 * cur:.2f} %)" if cur is not None else r


def compile_lines(compiled) -> list[str]:
    """The quantization and mapping report of a compiled graph, one line per layer."""
    q = compiled.metadata["quantization"]
    m = compiled.metadata.get("mapping", {})
    inp = q["input"]
    variant = f" (variant {q['variant']})" if q.get("variant") else ""
    lines = [f"target {q['target']}{variant}; input {inp['encoding']} scale {inp['scale']:g} ({'exact' if inp['exact'] else 'max error ' + format(inp['error_max'], '.3g')}); "
             f"calibrated on {q['calibration_samples']} samples"]
    head = (f"{'layer':<14}{'kind':<12}{'neurons':>8}{'cores':>6}{'KiB/core':>9}{'scale':>11}{'w_exp':>6}{'w err':>8}{'sat':>6}{'vth':>7}"
            f"{'du':>6}{'dv':>6}  rounding (current error)")
    lines.append(head)
    layers = m.get("layers", {})
    for row in q["layers"]:
        n = math.prod(int(d) for d in compiled[row["name"]].shape)
        cores = layers.get(row["name"], {}).get("cores", "")
        mem = layers.get(row["name"], {}).get("max_core_memory_bytes")
        mem = "" if mem is None else f"{mem / 1024:.1f}"
        lines.append(
            f"{row['name']:<14}{row['kind']:<12}{n:>8}{cores!s:>6}{mem:>9}{row.get('scale', 0):>11.4g}{row.get('weight_exp', 0):>6}"
            f"{row.get('weight_error_rel_rms', 0) * 100:>7.2f}%{row.get('weight_saturated_fraction', 0) * 100:>5.1f}%"
            f"{row.get('vth', '')!s:>7}"
            f"{row.get('du', '')!s:>6}{row.get('dv', '')!s:>6}  {_rounding(row)}"
        )
    if m:
        lines.append(f"mapping: {m.get('cores')} cores ({m.get('neuron_cores')} neuron, {m.get('splitter_cores')} splitter), "
                     f"{m.get('neurons')} neurons, utilisation {m.get('neuron_utilisation', 0) * 100:.1f} %, "
                     f"latency {m.get('latency_ticks')} ticks")
        if m.get("axons"):  # cores with an axon limit (truenorth): per layer its axons and splitters
            lines.append(f"axons: {m['axons']} in all ({m.get('axon_utilisation', 0) * 100:.1f} % of the cores' axons); "
                         "per layer: cores, fan-in x axons per input, axons, splitters (of its spikes)")
            for name, lay in layers.items():
                lines.append(f"  {name:<12}{lay['cores']:>5} cores  {lay['fan_in']:>4} x {lay['axons_per_input']} axons"
                             f"{lay['axons']:>8} axons  splitters {lay['splitter_neurons']} neurons on "
                             f"{lay['splitter_cores']} cores, {lay['splitter_levels']} level(s); latency {lay['latency']}")
        if m.get("memory_per_core_bytes"):
            lines.append(f"memory: {m['memory_bytes'] / 1024:.1f} KiB in all, at most {m['max_core_memory_bytes'] / 1024:.1f} "
                         f"KiB on one core of {m['memory_per_core_bytes'] / 1024:.0f} KiB "
                         f"({m['memory_utilisation'] * 100:.1f} % of the used cores' memory); "
                         f"KiB/core: the layer's fullest core")
    return lines




def run_lines(result, labels=None, source: str = "") -> list[str]:
    """Accuracy and per-layer activity per sample of one back-end run."""
    n = int(result.output_spikes.shape[1])
    head = f"{source} on {result.backend}" + (f" ({result.target})" if result.target else "") + f": {n} samples"
    if labels is not None:
        head += f", accuracy {float((result.predictions() == labels).mean()) * 100:.2f} %"
    lines = [head]
    if result.counters is None:
        return lines
    lines.append(f"  {'per sample':<20} {'spikes':>10} {'synops':>12} {'active updates':>15}")
    for name, layer in result.counters.layers.items():
        spikes = f"{layer.spikes / n:10.1f}" if layer.kind == "lif" else f"{'':>10}"
        active = f"{layer.updates_active / n:15.1f}" if layer.kind == "lif" else ""
        lines.append(f"  {name:<20} {spikes} {layer.synops / n:12.1f} {active}")
    return lines


def verify_lines(report: dict) -> list[str]:
    """A verification (``EquivalenceReport.to_dict()``): accuracies, agreement per layer,
    the first divergence."""
    lines = [f"{report.get('model', '')} → {report['target']}: {report['samples']} test samples, T={report['n_steps']}"]
    for name, b in report["backends"].items():
        acc = b.get("accuracy")
        lines.append(f"  {name:<8} accuracy {acc * 100:6.2f} %" if acc is not None else f"  {name}")
    for c in report["comparisons"]:
        delta = c.get("accuracy_delta_points")
        lines.append(f"  {c['backend']} vs {c['reference']}: spikes {c['spike_agreement'] * 100:.3f} % equal, "
                     f"classification agreement {c['classification_agreement'] * 100:.2f} %"
                     + (f", accuracy {delta:+.2f} points" if delta is not None else ""))
        for lif, l in c["layers"].items():
            lines.append(f"    {lif:<18} {l['spike_agreement'] * 100:8.3f} %  ({l['mismatches']} of {l['total']} differ)")
        f = c["first_divergence"]
        lines.append("    first divergence: none" if f is None else
                     f"    first divergence: layer {f['layer']}, step {f['step']}, neuron {f['neuron']}, sample {f['sample']}")
    return lines
