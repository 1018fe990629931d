"""One self-contained HTML page for a run (no external files: images are embedded base64).

Inputs, all optional, read from the run folder ``RUN``:

* ``RUN/metrics.json`` — training (``tsslc train``): ``epochs`` (per-epoch dicts), accuracies;
* ``RUN/report.json`` — what the later stages measured (written by ``tsslc demo``)::

      {"title": str,
       "accuracy": {label: fraction},                       # per back end / target
       "quantization": {target: metadata["quantization"]},
       "mapping": {target: mapping report},
       "equivalence": {target: [comparison, ...]},         # tsslc verify's "comparisons"
       "counters": {label: Counters.to_dict()},
       "neurobench": {label: neurobench_view},
       "energy": energy_report (tsslc.report.energy),
       "energy_table": str}
* ``RUN/figures/*.png`` — embedded in file-name order.

Sections appear in pipeline order; a section whose data is missing says so.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from tsslc.errors import TsslcError

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
FIGURES = "figures"

CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #bbb;padding:3px 8px;font-size:13px}
th{background:#eee}td.n{text-align:right;font-variant-numeric:tabular-nums}h2{border-bottom:2px solid #444}
.src{color:#555;font-size:12px}img{max-width:100%;border:1px solid #ddd;margin:.4em 0}.missing{color:#a00}"""


def _e(x) -> str:
    return html.escape(str(x))


def _num(x) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x.is_integer() and abs(x) < 1e15:
            return f"{int(x):,}"
        return f"{x:,.1f}" if abs(x) >= 100 else f"{x:.4g}"
    return _e(x)


def table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{_num(c)}</td>' if isinstance(c, (int, float)) or c is None else f"<td>{_e(c)}</td>"
                         for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(name: str, png: bytes) -> str:
    return f'<figure><img alt="{_e(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"><figcaption>{_e(name)}</figcaption></figure>'


def _missing(what: str) -> str:
    return f'<p class="missing">No {_e(what)} in this run.</p>'


def render(metrics: dict | None, data: dict, figures: dict[str, bytes]) -> str:
    """The HTML page as a string."""
    title = data.get("title", "tsslc report")
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{_e(title)}</h1>"]

    out.append('<h2 id="training">Training</h2>')
    if metrics and metrics.get("epochs"):
        ep = metrics["epochs"]
        keys = [k for k in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds") if k in ep[0]]
        out.append(table(keys, [[h.get(k) for k in keys] for h in ep]))
        out.append(f"<p>Final test accuracy: <b>{100 * metrics.get('final_test_acc', ep[-1].get('test_acc', 0)):.2f} %</b></p>")
    else:
        out.append(_missing("training metrics (metrics.json)"))
    out += [_img(n, p) for n, p in figures.items() if n.startswith("training")]

    out.append('<h2 id="accuracy">Accuracy per back end</h2>')
    acc = data.get("accuracy")
    out.append(table(["model / back end", "test accuracy (%)", "samples"],
                     [[k, 100 * v["accuracy"], v.get("samples")] if isinstance(v, dict) else [k, 100 * v, None]
                      for k, v in acc.items()]) if acc else _missing("accuracy measurements"))

    out.append('<h2 id="quantization">Quantization</h2>')
    for tgt, q in (data.get("quantization") or {}).items():
        layers = q.get("layers", [])
        keys = [k for k in ("name", "kind", "scale", "weight_exp", "weight_error_rel_rms", "weight_saturated_fraction",
                            "rounding", "current_error_rel_rms", "current_error_rel_rms_nearest",
                            "decay_s_error", "decay_m_error") if any(l.get(k) is not None for l in layers)]
        out.append(f"<h3>{_e(tgt)}</h3>")
        inp = q.get("input", {})
        if inp:
            out.append("<p>input: " + ", ".join(f"{_e(k)} = {_num(v)}" for k, v in inp.items()) + "</p>")
        out.append(table(keys, [[l.get(k) for k in keys] for l in layers]))
    if not data.get("quantization"):
        out.append(_missing("quantization report"))

    out.append('<h2 id="mapping">Core mapping</h2>')
    for tgt, m in (data.get("mapping") or {}).items():
        out.append(f"<h3>{_e(tgt)}</h3>")
        scalars = {k: v for k, v in m.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
        out.append(table(list(scalars), [list(scalars.values())]))
        layers = m.get("layers") or {}
        if layers:
            keys = sorted({k for l in layers.values() for k, v in l.items() if isinstance(v, (int, float, str))})
            out.append(table(["layer"] + keys, [[n] + [l.get(k) for k in keys] for n, l in layers.items()]))
    if not data.get("mapping"):
        out.append(_missing("core mapping"))

    out.append('<h2 id="equivalence">Equivalence</h2>')
    eq = data.get("equivalence") or {}
    rows = []
    for tgt, comparisons in eq.items():
        for c in comparisons:
            fd = c.get("first_divergence")
            where = ("none: identical" if not fd else
                     f"({fd['layer']}, neuron {fd['neuron']}, step {fd['step']}) in sample {fd['sample']}")
            layers = "; ".join(f"{n} {100 * l['spike_agreement']:.3f} % ({l['mismatches']:,} of {l['total']:,} differ)"
                               for n, l in c["layers"].items())
            rows.append([tgt, f"{c['backend']} vs {c['reference']}", 100 * c["spike_agreement"], layers,
                         100 * c["classification_agreement"], where])
    out.append(table(["target", "back ends", "spikes agreeing (%)", "per layer", "same class (%)",
                      "first diverging (layer, neuron, step)"], rows) if rows else _missing("equivalence check"))
    out += [_img(n, p) for n, p in figures.items() if n.startswith("agreement")]

    out.append('<h2 id="finetune">Hardware-aware fine-tuning</h2>')
    ft = data.get("finetune") or {}
    out.append(table(["target", "epochs", "on-target accuracy before (%)", "on-target accuracy after (%)",
                      "float model after (%)", "spikes agreeing after (%)", "same class after (%)", "τm, τs realised"],
                     [[t, f["epochs"], None if f.get("target_acc_before") is None else 100 * f["target_acc_before"],
                       100 * f["target_acc_after"], 100 * f["float_acc_after"], 100 * f["spike_agreement_after"],
                       100 * f["classification_agreement_after"], f"{_num(f['tau_m'])}, {_num(f['tau_s'])}"]
                      for t, f in ft.items()]) if ft else _missing("fine-tuning (run with --finetune-epochs > 0)"))
    if ft:
        out.append("<p>Fine-tuning trains through the target's weight rounding, input encoding and realised decays "
                   "(straight-through); the fine-tuned float model keeps the on-grid weights, so it is the model the "
                   "chip runs.</p>")

    out.append('<h2 id="activity">Activity and counters</h2>')
    cnt = data.get("counters") or {}
    if cnt:
        keys = ["spikes", "synops", "macs", "acs", "dense_synops", "updates_active", "updates_idle", "spike_messages",
                "hops_x", "hops_y"]
        out.append("<p>Per sample (counts first; conventions in tsslc.backends.counters).</p>")
        out.append(table(["model / back end"] + keys, [[k] + [c["per_sample"].get(x) for x in keys] for k, c in cnt.items()]))
        for label, c in cnt.items():
            out.append(f"<h3>{_e(label)}: per layer (totals over {c['n_samples']} samples × {c['n_steps']} steps)</h3>")
            lk = ["n_neurons", "spikes", "synops", "macs", "events_in", "updates_active", "updates_idle", "spike_messages"]
            out.append(table(["layer"] + lk, [[n] + [l.get(k) for k in lk] for n, l in c["layers"].items()]))
    else:
        out.append(_missing("counters"))
    nb = data.get("neurobench") or {}
    if nb:
        out.append("<h3>NeuroBench view (computed by tsslc's counters, NeuroBench conventions)</h3>")
        out.append(table(["model", "Effective MACs", "Effective ACs", "Dense", "ActivationSparsity", "ConnectionSparsity",
                          "Footprint (bytes)"],
                         [[k, v["SynapticOperations"]["Effective_MACs"], v["SynapticOperations"]["Effective_ACs"],
                           v["SynapticOperations"]["Dense"], v["ActivationSparsity"], v["ConnectionSparsity"], v["Footprint"]]
                          for k, v in nb.items()]))
    if data.get("mnist_activity"):
        out.append(f"<p>MNIST CNN figures: {_e(data['mnist_activity']['note'])}.</p>")
    out += [_img(n, p) for n, p in figures.items() if n.startswith(("firing", "raster"))]

    out.append('<h2 id="energy">Energy</h2>')
    en = data.get("energy") or {}
    if en.get("targets"):
        out.append("<p>Counts first, prices second; every price names its source. Tables of different "
                   "targets and scopes are never added together.</p>")
        for tgt, r in en["targets"].items():
            out.append(f"<h3>{_e(tgt)}</h3><p class='src'>{_e(r.get('note', ''))}</p>")
            out.append(table(["term", "count / sample", "price (pJ)", "energy / sample (nJ)", "scope", "grade", "process", "source"],
                             [[l["figure"], l["count"], l["price"], None if l["energy_pJ"] is None else l["energy_pJ"] / 1e3,
                               l["scope"], l["grade"], l["process"], l["source"]] for l in r["lines"]]))
            for scope, tot in r["totals_pJ"].items():
                label = "total of the per-term figures above" if scope == "per-term" else "all-in figure (add nothing)"
                out.append(f"<p><b>{_e(tgt)}: {tot / 1e3:,.3f} nJ per sample</b> — {_e(label)} ({_e(scope)})</p>")
            for c in r.get("context", []):
                out.append(f"<p class='src'>context: {_e(c['figure'])} = {_num(c['price'])} {_e(c['unit'])} ({_e(c['source'])})</p>")
        a = en.get("ann")
        if a:
            out.append(f"<h3>Equivalent ANN vs SNN arithmetic</h3><p class='src'>{_e(a['note'])}</p>")
            out.append(table(["what", "count / sample", "price (pJ)", "energy / sample (nJ)", "source"],
                             [[l["what"], l["count"], l["price"], l["energy_pJ"] / 1e3, l["source"]] for l in a["lines"]]))
    else:
        out.append(_missing("energy estimate"))
    out += [_img(n, p) for n, p in figures.items() if n.startswith("energy")]
    out.append("</body></html>")
    return "\n".join(out)


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TsslcError(f"{path}: not valid JSON ({e}); re-create it (tsslc demo / tsslc train)") from None


def write_report(run_dir, out: str | Path | None = None) -> Path:
    """Render ``RUN`` (metrics.json, report.json, figures/*.png) to ``RUN/report.html``."""
    from tsslc.atomic import atomic_write_text

    run = Path(run_dir)
    if not run.is_dir():
        raise TsslcError(f"run folder not found: {run}")
    metrics = _read_json(run / "metrics.json")
    data = _read_json(run / REPORT_JSON) or {}
    if metrics is None and not data:
        raise TsslcError(f"{run}: nothing to report (no metrics.json or {REPORT_JSON}); run 'tsslc train' or 'tsslc demo' first")
    data.setdefault("title", f"tsslc report: {run.resolve().name}")
    figs = {p.stem: p.read_bytes() for p in sorted((run / FIGURES).glob("*.png"))} if (run / FIGURES).is_dir() else {}
    path = Path(out) if out else run / REPORT_HTML
    atomic_write_text(path, render(metrics, data, figs))
    return path
