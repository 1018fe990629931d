"""Energy: counts (:mod:`tsslc.backends.counters`) priced with each target's labelled table.

Rules
-----
* The prices are the target's own :class:`~tsslc.targets.base.EnergyTable` (every figure
  carries source, scope, grade, process); nothing here repeats a chip's figures. The one
  table defined here is Horowitz's (ISSCC 2014, 45 nm) for the equivalent ANN, because no
  target owns it.
* Counts first, prices second: every line shows the count per sample, the price and the
  product, and names its figure's source.
* Never a sum across scopes: a total is given per scope of the table's figures
  (``per-term`` figures add up to a total of the listed terms; an ``all-in`` figure is the
  whole energy on its own — add nothing to it), and reports of different tables are never
  added together.

Which count a figure prices (its ``counter``; hop figures by name):

=========================  ===================================================
``synaptic_events``        synaptic operations of all sources (input MACs too)
``active_neuron_updates``  neuron updates that received input or spiked
``inactive_neuron_updates`` the other neuron updates
``neuron_updates``         all neuron updates
``spikes``                 spikes of the spiking populations
``tile_hop_ew`` / ``_ns``  east-west / north-south hops (needs a core assignment)
=========================  ===================================================

Equivalent ANN (same layers, one pass, no time): MACs per sample = all connections of the
synapse layers (NeuroBench's *Dense* divided by the steps), priced at Horowitz's fp32 MAC
(4.6 pJ) and int8 MAC (0.2 + 0.03 pJ); the SNN's own effective operations on the same
logic: ACs × 0.9 pJ + MACs × 4.6 pJ.
"""

from __future__ import annotations

import json

from tsslc.errors import TsslcError
from tsslc.backends.counters import Counters
from tsslc.targets.base import EnergyFigure, EnergyTable

HOROWITZ_SOURCE = "Horowitz, ISSCC 2014, 'Computing's energy problem' (45 nm, 0.9 V)"
HOROWITZ = EnergyTable(
    "ann-45nm",
    (
        EnergyFigure("fp32_mac", 4.6, "pJ", HOROWITZ_SOURCE, "per-term", "simulated", "45 nm",
                     "fp32 mult 3.7 + add 0.9; arithmetic only, no memory access", "macs"),
        EnergyFigure("fp32_ac", 0.9, "pJ", HOROWITZ_SOURCE, "per-term", "simulated", "45 nm",
                     "fp32 add; arithmetic only", "acs"),
        EnergyFigure("int8_mac", 0.23, "pJ", HOROWITZ_SOURCE, "per-term", "simulated", "45 nm",
                     "int8 mult 0.2 + add 0.03; arithmetic only", "macs"),
    ),
    note="Energy of the arithmetic alone on a generic 45 nm digital chip (no memory, no data movement).",
)


def _count_of(figure: EnergyFigure, c: Counters) -> float | None:
    t = c.per_sample()
    by_counter = {
        "synaptic_events": t["synops"],
        "active_neuron_updates": t["updates_active"],
        "inactive_neuron_updates": t["updates_idle"],
        "neuron_updates": t["updates_active"] + t["updates_idle"],
        "spikes": t["spikes"],
    }
    if figure.counter in by_counter:
        return by_counter[figure.counter]
    if figure.name.endswith("hop_ew") or figure.name.endswith("hop_ns"):
        if c.mesh_width is None:
            return None  # no core assignment: hops unknown
        return t["hops_x"] if figure.name.endswith("ew") else t["hops_y"]
    return None


def _layer_counts(figure: EnergyFigure, c: Counters) -> dict[str, float]:
    n = max(c.n_samples, 1)
    key = {"synaptic_events": "synops", "active_neuron_updates": "updates_active",
           "inactive_neuron_updates": "updates_idle", "spikes": "spikes"}.get(figure.counter)
    if figure.name.endswith("hop_ew"):
        key = "hops_x"
    elif figure.name.endswith("hop_ns"):
        key = "hops_y"
    out = {}
    for name, layer in c.layers.items():
        if key == "spikes" and layer.kind != "lif":
            continue
        if figure.counter == "neuron_updates":
            out[name] = (layer.updates_active + layer.updates_idle) / n
        elif key is not None:
            out[name] = getattr(layer, key) / n
    return out


def price(counters: Counters, table: EnergyTable) -> dict:
    """Counts priced with ``table``: lines (count, price, energy, source, scope, grade) and one
    total per scope, per sample; energy per layer (pJ per sample) when all figures share a
    scope."""
    lines, context = [], []
    per_layer: dict[str, float] = {}
    for f in table.figures:
        n = _count_of(f, counters)
        row = {"figure": f.name, "counter": f.counter or f.name, "price": f.value, "unit": f.unit,
               "source": f.source, "scope": f.scope, "grade": f.grade, "process": f.process, "note": f.note}
        if f.unit != "pJ":
            context.append(row)  # e.g. chip power in mW: context, not a per-count price
            continue
        if n is None:
            row.update(count=None, energy_pJ=None, note=(f.note + "; " if f.note else "") + "not counted here")
            lines.append(row)
            continue
        row.update(count=n, energy_pJ=n * f.value)
        lines.append(row)
        for layer, k in _layer_counts(f, counters).items():
            per_layer[layer] = per_layer.get(layer, 0.0) + k * f.value
    scopes = sorted({r["scope"] for r in lines})
    totals = {s: sum(r["energy_pJ"] for r in lines if r["scope"] == s and r["energy_pJ"] is not None) for s in scopes}
    return {"table": table.target, "note": table.note, "stand_in": table.stand_in, "lines": lines,
            "context": context, "totals_pJ": totals, "per_layer_pJ": per_layer if len(scopes) == 1 else {},
            "n_samples": counters.n_samples}


def ann_equivalent(counters: Counters) -> dict:
    """The equivalent ANN (one pass) and the SNN's own operations priced with Horowitz's
    45 nm arithmetic (same table, same scope: comparable with each other, not with chips)."""
    t = counters.per_sample()
    ann_macs = t["dense_synops"] / max(counters.n_steps, 1)
    fp32_mac, fp32_ac, int8_mac = HOROWITZ["fp32_mac"], HOROWITZ["fp32_ac"], HOROWITZ["int8_mac"]
    rows = [
        {"what": "ANN fp32 (MACs)", "count": ann_macs, "figure": fp32_mac.name, "price": fp32_mac.value,
         "energy_pJ": ann_macs * fp32_mac.value},
        {"what": "ANN int8 (MACs)", "count": ann_macs, "figure": int8_mac.name, "price": int8_mac.value,
         "energy_pJ": ann_macs * int8_mac.value},
        {"what": "SNN effective MACs (graded input)", "count": t["macs"], "figure": fp32_mac.name,
         "price": fp32_mac.value, "energy_pJ": t["macs"] * fp32_mac.value},
        {"what": "SNN effective ACs (spikes)", "count": t["acs"], "figure": fp32_ac.name, "price": fp32_ac.value,
         "energy_pJ": t["acs"] * fp32_ac.value},
    ]
    for r in rows:
        r.update(source=HOROWITZ_SOURCE, scope="per-term", grade="simulated", process="45 nm")
    return {"table": HOROWITZ.target, "note": HOROWITZ.note, "lines": rows,
            "ann_fp32_pJ": rows[0]["energy_pJ"], "ann_int8_pJ": rows[1]["energy_pJ"],
            "snn_fp32_pJ": rows[2]["energy_pJ"] + rows[3]["energy_pJ"]}


def energy_report(counters_by_target: dict[str, Counters], tables: dict[str, EnergyTable] | None = None,
                  runs: dict[str, tuple[str, Counters]] | None = None) -> dict:
    """{target: price(...)} for each target's counters (tables default to the targets'
    own), plus the Horowitz ANN comparison of the first target's counters.

    ``runs`` ({label: (target, counters)}, e.g. every back end that ran a target, each on its
    own samples) adds ``"runs"``: {label: {target, table, stand_in, totals_pJ, n_samples}},
    the same pricing reduced to its totals, for summaries."""
    from tsslc.targets import get_target

    def table_of(name):
        return (tables or {}).get(name) or get_target(name).energy

    out: dict = {"targets": {}}
    for name, c in counters_by_target.items():
        out["targets"][name] = price(c, table_of(name))
    if counters_by_target:
        out["ann"] = ann_equivalent(next(iter(counters_by_target.values())))
    if runs:
        out["runs"] = {}
        for label, (target, c) in runs.items():
            p = price(c, table_of(target))
            out["runs"][label] = {"target": target, "table": p["table"], "stand_in": p["stand_in"],
                                  "totals_pJ": p["totals_pJ"], "n_samples": p["n_samples"]}
    return out


def _fmt(x, digits=4) -> str:
    if x is None:
        return "—"
    if isinstance(x, float) and not x.is_integer():
        return f"{x:,.1f}" if abs(x) >= 10 else f"{x:.{digits}g}"
    return f"{int(x):,}"


def format_table(report: dict) -> str:
    """Plain-text tables (counts first, then prices), one per table, never summed across."""
    out = []
    for name, r in report.get("targets", {}).items():
        out.append(f"{name}: energy per sample ({r['table']} table)")
        out.append(f"  {'term':<26}{'count/sample':>16}{'price':>10}{'energy/sample':>16}  scope     source")
        for l in r["lines"]:
            en = "—" if l["energy_pJ"] is None else f"{l['energy_pJ'] / 1e3:,.3f} nJ"
            out.append(f"  {l['figure']:<26}{_fmt(l['count']):>16}{l['price']:>7g} pJ{en:>16}  {l['scope']:<9} {l['source']}")
        for scope, tot in r["totals_pJ"].items():
            label = "total of the terms above" if scope == "per-term" else "all-in (add nothing)"
            out.append(f"  {'= ' + label:<52}{tot / 1e3:>16,.3f} nJ  {scope}"
                       + (f"  ({r['stand_in']})" if r.get("stand_in") else ""))
    if "ann" in report:
        a = report["ann"]
        out.append(f"equivalent ANN and SNN arithmetic ({a['table']}: {HOROWITZ_SOURCE})")
        for l in a["lines"]:
            out.append(f"  {l['what']:<36}{_fmt(l['count']):>16}{l['price']:>7g} pJ{l['energy_pJ'] / 1e3:>13,.3f} nJ")
    return "\n".join(out)


def write_json(path, report: dict) -> None:
    from tsslc.atomic import atomic_write_text

    try:
        text = json.dumps(report, indent=1, sort_keys=False)
    except TypeError as e:
        raise TsslcError(f"energy report for {path} is not JSON-serialisable: {e}") from None
    atomic_write_text(path, text + "\n")
