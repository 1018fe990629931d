"""One self-contained HTML page for a run (no external files: images are embedded base64).

Inputs, all optional, read from the run folder ``RUN``:

* ``RUN/metrics.json`` — training (``tsslc train``): ``epochs`` (per-epoch dicts), seed, ...;
* ``RUN/report.json`` — what the later stages measured (written by ``tsslc demo``); its
  layout is the JSON Schema ``tsslc/report/report.schema.json`` (:mod:`tsslc.report.record`);
* ``RUN/figures/*.png`` — figures that need more than report.json holds (spike rasters,
  the MNIST CNN's activity), captioned by ``report.json["figures"]``.

The page reads top-down: a summary that fits one screen (per target and back end:
accuracy, spike agreement with the float model, energy per sample with its scope, cores;
each number links to its section), the contents, the run's metadata, then the stages in
pipeline order. Figures that report.json and metrics.json suffice for (training curve,
accuracy vs energy, confusion matrices, per-class accuracy, agreement per layer, energy
per layer) are drawn here, so ``tsslc report`` redraws them from the JSON alone. A section
whose data is missing says so.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

from tsslc.report.record import REPORT_JSON, load_run, summarize

REPORT_HTML = "report.html"
FIGURES = "figures"
__all__ = ["REPORT_JSON", "REPORT_HTML", "FIGURES", "render", "write_report"]

CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:1em auto;padding:0 12px;
color:#222;line-height:1.35}h1{font-size:1.55em;margin:.2em 0 .3em}h2{border-bottom:2px solid #444;margin-top:1.6em}
.scroll{overflow-x:auto;max-width:100%}table{border-collapse:collapse;margin:.4em 0}
td,th{border:1px solid #bbb;padding:3px 7px;font-size:13px;vertical-align:top}
th{background:#eee;font-weight:600;text-align:left;vertical-align:bottom;max-width:11em}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.long{min-width:14em;max-width:30em}td.short{white-space:nowrap}
tr:target,td:target{background:#fff6c8}.src,.note{color:#555;font-size:12px}.missing{color:#a00}
img{max-width:100%;border:1px solid #ddd}figure{margin:.8em 0}figcaption{font-size:13px;color:#333;max-width:820px}
#summary{background:#f5f8fc;border:1px solid #9ab;border-radius:4px;padding:.3em 1em .5em}
#summary h2{border:none;margin:.2em 0;font-size:1.2em}#summary table{background:#fff}#summary td,#summary th{font-size:14px}
#summary ul{margin:.3em 0;padding-left:1.2em;font-size:13px}.meta{font-size:13px;color:#333;margin:.2em 0 .4em}
.flag{color:#8a4b00;font-weight:600}.scope{color:#555;font-size:12px}a{color:#0645ad;text-decoration:none}
a:hover{text-decoration:underline}nav#contents{margin-top:.9em}nav#contents ol{columns:3;font-size:14px;margin:.3em 0}
dl.kv{display:grid;grid-template-columns:13em 1fr;gap:2px 12px;font-size:14px}dl.kv dt{color:#555}dl.kv dd{margin:0}
details{margin:.4em 0}summary{cursor:pointer}pre{white-space:pre-wrap;font-size:12px;background:#f6f6f6;padding:.5em}
.diff{background:#fff0a8}.better{color:#06702a}.worse{color:#b00020}"""


# --- cells and tables ---------------------------------------------------------------------
@dataclass
class Cell:
    """A cell given as HTML (links, flags); ``numeric`` right-aligns it."""

    html: str
    numeric: bool = True
    cls: str = ""


def _e(x) -> str:
    return html.escape(str(x))


def _num(x) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x != x:
            return "—"
        if x.is_integer() and abs(x) < 1e15:
            return f"{int(x):,}"
        return f"{x:,.1f}" if abs(x) >= 100 else f"{x:.4g}"
    return _e(x)


def pct(x, digits: int = 2) -> Cell:
    """A share (0..1) as a percentage."""
    return Cell("—" if x is None else f"{100 * float(x):.{digits}f}&nbsp;%")


def link(text: str, href: str, numeric: bool = True, cls: str = "") -> Cell:
    return Cell(f'<a href="#{_e(href)}">{text}</a>', numeric, cls)


def slug(*parts) -> str:
    return re.sub(r"[^a-z0-9]+", "-", "-".join(str(p) for p in parts if p is not None).lower()).strip("-")


def _td(c) -> str:
    if isinstance(c, Cell):
        cls = " ".join(x for x in ("n" if c.numeric else "", c.cls) if x)
        return f'<td class="{cls}">{c.html}</td>' if cls else f"<td>{c.html}</td>"
    if c is None or (isinstance(c, (int, float)) and not isinstance(c, bool)):
        return f'<td class="n">{_num(c)}</td>'
    s = str(c)
    if len(s) > 40:
        return f'<td class="long">{_e(s)}</td>'
    return f'<td class="short">{_e(s)}</td>' if len(s) <= 14 else f"<td>{_e(s)}</td>"


def table(header: list[str], rows: list[list], ids: list[str | None] | None = None, cls: str = "") -> str:
    """A table in its own horizontally scrolling box (never wider than the page)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        (f'<tr id="{_e(ids[i])}">' if ids and ids[i] else "<tr>") + "".join(_td(c) for c in r) + "</tr>"
        for i, r in enumerate(rows))
    return f'<div class="scroll"><table{f" class={cls!r}" if cls else ""}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def transposed(corner: str, columns: list[str], rows: list[tuple[str, list]]) -> str:
    """Quantities down, items (layers) across: readable however many quantities there are."""
    return table([corner] + columns, [[Cell(f"<b>{_e(label)}</b>", False)] + cells for label, cells in rows])


def _missing(what: str) -> str:
    return f'<p class="missing">No {_e(what)} in this run.</p>'


def _human(key: str) -> str:
    return key.replace("_", " ")


# --- figures ------------------------------------------------------------------------------
class Figures:
    """Numbered figures; every one has a caption that says what it shows."""

    def __init__(self):
        self.n = 0

    def __call__(self, name: str, png: bytes, caption: str) -> str:
        self.n += 1
        alt = caption.split(". ")[0]
        return (f'<figure id="fig-{_e(slug(name))}" data-name="{_e(name)}"><img alt="{_e(alt)}" '
                f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
                f"<figcaption><b>Figure {self.n}.</b> {_e(caption)}</figcaption></figure>")


#: where a stored figure (RUN/figures/NAME.png) goes when report.json does not say
_SECTION_OF_PREFIX = (("training", "training"), ("agreement", "equivalence"), ("firing", "activity"),
                      ("raster", "activity"), ("energy", "energy"), ("confusion", "accuracy"))
#: drawn by this module from the JSON; a stored PNG of the same name (older runs) is left out
DRAWN_HERE = {"training_curve", "agreement_per_layer", "energy_per_layer", "accuracy_vs_energy",
              "confusion_matrices", "per_class_accuracy"}


def _stored_section(name: str, info: dict) -> str:
    if info.get("section"):
        return info["section"]
    return next((s for p, s in _SECTION_OF_PREFIX if name.startswith(p)), "activity")


def _stored_caption(name: str, info: dict) -> str:
    return info.get("caption") or f"Figure stored with the run ({_human(name)}); this run's report.json gives no caption."


# --- the page -----------------------------------------------------------------------------
SECTIONS = [("run", "Run metadata"), ("training", "Training"), ("accuracy", "Accuracy per back end"),
            ("quantization", "Quantization"), ("mapping", "Core mapping"), ("equivalence", "Equivalence"),
            ("finetune", "Hardware-aware fine-tuning"), ("activity", "Activity and counters"), ("energy", "Energy")]

SCOPE_WORDS = {"per-term": "per-term sum", "all-in": "all-in"}


def energy_text(en: dict | None) -> tuple[str, str]:
    """(number, scope words) of a summary row's energy: '453.7 nJ', 'per-term sum'."""
    if not en or not en.get("totals_pJ"):
        return "—", ""
    parts = [(f"{v / 1e3:,.1f} nJ", SCOPE_WORDS.get(s, s)) for s, v in en["totals_pJ"].items()]
    return " + ".join(p[0] for p in parts), ", ".join(p[1] for p in parts)


def stand_in_short(text: str) -> str:
    return text.split(":")[0] if text else ""


def _samples_cell(r: dict) -> Cell:
    n, most = r.get("samples"), r.get("samples_most")
    if n is not None and most and n < most:
        return Cell(f'{n:,} <span class="flag" title="fewer samples than the other back ends">of {most:,} ⚑</span>')
    return Cell(_num(n))


def summary_rows(rows: list[dict]) -> tuple[list[str], list[list]]:
    header = ["Target", "Back end", "Test samples", "Accuracy", "Spikes agreeing with the float model",
              "Energy per sample (scope)", "Cores"]
    out = []
    for r in rows:
        t, b = r["target"], r["backend"]
        acc = link(f"{100 * r['accuracy']:.2f}&nbsp;%", f"acc-{slug(r['label'])}")
        if r["spike_agreement_vs_float"] is None:
            agree = Cell('<span class="scope">reference</span>') if t is None else Cell("—")
        else:
            agree = link(f"{100 * r['spike_agreement_vs_float']:.3f}&nbsp;%", f"eq-{slug(t, b, 'float')}")
        number, scope = energy_text(r.get("energy"))
        if number == "—":
            energy = Cell('<span class="scope">no chip: not priced</span>' if t is None else "—", False)
        else:
            anchor = f"energy-run-{slug(r['label'])}"
            extra = f' <span class="scope">({_e(scope)})</span>'
            si = stand_in_short((r.get("energy") or {}).get("stand_in", ""))
            if si:
                extra += f' <span class="flag">{_e(si)}</span>'
            energy = Cell(f'<a href="#{anchor}">{_e(number)}</a>{extra}', False)
        cores = link(_num(r["cores"]), f"mapping-{slug(t)}") if r.get("cores") is not None else Cell("—")
        out.append([t or "—", "float model" if t is None and b == "float" else b, _samples_cell(r), acc, agree,
                    energy, cores])
    return header, out


def _notes(data: dict, rows: list[dict]) -> list[str]:
    notes = []
    for r in rows:
        if r.get("samples") is not None and r.get("samples_most") and r["samples"] < r["samples_most"]:
            notes.append(f'<span class="flag">⚑</span> <b>{_e(r["label"])}</b> ran on {r["samples"]:,} of the '
                         f'{r["samples_most"]:,} test samples: its accuracy, agreement and energy cover those only.')
    seen = set()
    for r in rows:
        en = r.get("energy") or {}
        if en.get("stand_in") and en["stand_in"] not in seen:
            seen.add(en["stand_in"])
            notes.append(f'<span class="flag">{_e(r["target"])}</span> is priced with {_e(en["stand_in"])}.')
    scopes = {s for r in rows for s in ((r.get("energy") or {}).get("totals_pJ") or {})}
    if len(scopes) > 1:
        notes.append("Energy scopes differ: a <i>per-term sum</i> adds the listed terms (synaptic ops, neuron "
                     "updates, spike transport) at their minimum prices; an <i>all-in</i> figure is a whole chip's "
                     'energy per event. They are not like for like (<a href="#energy">Energy</a>).')
    ft = data.get("finetune") or {}
    if ft:
        parts = []
        for t, f in ft.items():
            before = f.get("target_acc_before")
            parts.append(f'{_e(t)} {"" if before is None else f"{100 * before:.2f} → "}'
                         f'{100 * f["target_acc_after"]:.2f} %')
        ep = sorted({f.get("epochs") for f in ft.values()})
        notes.append(f'<a href="#finetune">Hardware-aware fine-tuning</a> ({"/".join(map(str, ep))} epochs through '
                     f'the target\'s rounding), accuracy on intsim: {"; ".join(parts)}.')
    return notes


def _date(iso: str) -> str:
    """'2025-12-02T06:57:09+00:00' -> '2025-12-02 06:57 UTC' (other offsets kept)."""
    m = re.match(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(?::\d\d)?(.*)$", iso)
    if not m:
        return iso
    off = m.group(3)
    return f"{m.group(1)} {m.group(2)} " + ("UTC" if off in ("+00:00", "Z", "") else off)


def _meta_line(data: dict, metrics: dict | None) -> str:
    run = data.get("run") or {}
    bits = []
    if run.get("network"):
        bits.append(_e(run["network"]))
    ds = run.get("dataset") or (metrics or {}).get("dataset")
    if ds:
        bits.append(f"data set {_e(ds)}")
    seed = run.get("seed", (metrics or {}).get("seed"))
    if seed is not None:
        bits.append(f"seed {_e(seed)}")
    if run.get("threads"):
        bits.append(f"{run['threads']} threads")
    if run.get("tsslc_version"):
        g = run.get("git") or {}
        bits.append(f"tsslc {_e(run['tsslc_version'])}" + (f" @ {_e(g['commit'][:10])}" if g.get("commit") else "")
                    + (" (uncommitted changes)" if g.get("dirty") else ""))
    if run.get("date"):
        bits.append(_e(_date(run["date"])))
    bits.append('<a href="#run">run details</a>')
    return '<p class="meta">' + " · ".join(bits) + "</p>"


def section_summary(data: dict, metrics: dict | None, rows: list[dict]) -> str:
    out = ['<section id="summary"><h2>Summary</h2>', _meta_line(data, metrics)]
    if rows:
        h, r = summary_rows(rows)
        out.append(table(h, r, cls="summary"))
    elif metrics and metrics.get("epochs"):
        acc = metrics.get("final_test_acc", metrics["epochs"][-1].get("test_acc"))
        out.append(f'<p>Training only: final test accuracy <a href="#training"><b>{100 * acc:.2f} %</b></a>.</p>')
    notes = _notes(data, rows)
    if notes:
        out.append("<ul>" + "".join(f"<li>{n}</li>" for n in notes) + "</ul>")
    out.append("</section>")
    return "\n".join(out)


def section_contents() -> str:
    return ('<nav id="contents"><b>Contents</b><ol>' + "".join(f'<li><a href="#{i}">{_e(t)}</a></li>' for i, t in SECTIONS)
            + "</ol></nav>")


def section_run(data: dict, metrics: dict | None, rows: list[dict]) -> str:
    run = data.get("run") or {}
    m = metrics or {}
    kv = []
    if not run and not m:
        return _missing("run metadata")
    g = run.get("git")
    kv.append(("tsslc version", _e(run.get("tsslc_version", "not recorded"))))
    if "git" in run:
        kv.append(("git commit", "not a git checkout (or git not available)" if not g else
                   f'<code>{_e(g["commit"])}</code>' + (" with uncommitted changes" if g.get("dirty") else "")))
    kv.append(("date", _e(_date(run["date"])) if run.get("date") else "not recorded"))
    if run.get("config"):
        cfg = f"<code>{_e(run['config'])}</code>"
        if run.get("config_text"):
            cfg += f"<details><summary>show the config</summary><pre>{_e(run['config_text'])}</pre></details>"
        kv.append(("config", cfg))
    for label, key in (("seed", "seed"), ("training rule", "rule"), ("device", "device"), ("data set", "dataset"),
                       ("network", "network"), ("CPU threads (torch)", "threads")):
        v = run.get(key, m.get(key))
        if v is not None:
            kv.append((label, _e(v)))
    if run.get("samples"):
        kv.append(("data used", ", ".join(f"{_e(k)}: {_num(v)}" for k, v in run["samples"].items())))
    if run.get("settings"):
        kv.append(("settings", ", ".join(f"{_e(k)} = {_e(v)}" for k, v in run["settings"].items())))
    out = ['<dl class="kv">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in kv) + "</dl>"]
    if rows:
        out.append("<h3>Samples per back end</h3>")
        out.append(table(["run (target / back end)", "test samples", "note"],
                         [[r["label"], _samples_cell(r),
                           "fewer samples than the other back ends" if r["samples"] and r["samples_most"]
                           and r["samples"] < r["samples_most"] else ""] for r in rows]))
    return "\n".join(out)


def section_training(metrics: dict | None, fig: Figures) -> str:
    from tsslc.report import figures

    if not (metrics and metrics.get("epochs")):
        return _missing("training metrics (metrics.json)")
    ep = metrics["epochs"]
    cols = [("epoch", "epoch", None), ("train_loss", "training loss", None), ("train_acc", "training accuracy", "pct"),
            ("test_loss", "test loss", None), ("test_acc", "test accuracy", "pct"), ("seconds", "time (s)", None)]
    cols = [c for c in cols if any(c[0] in h for h in ep)]
    rows = [[pct(h.get(k)) if f == "pct" else h.get(k) for k, _, f in cols] for h in ep]
    out = [table([c[1] for c in cols], rows)]
    final = metrics.get("final_test_acc", ep[-1].get("test_acc"))
    if final is not None:
        out.append(f"<p>Final test accuracy (float model): <b>{100 * final:.2f} %</b> after {len(ep)} epochs"
                   + (f", {metrics['train_seconds']:.1f} s of training" if metrics.get("train_seconds") else "")
                   + ".</p>")
    out.append(fig("training_curve", figures.training_curve(ep),
                   "Training curve: accuracy (left) and loss (right) per epoch on the training and test sets."))
    return "\n".join(out)


def _runs_with_predictions(data: dict) -> dict[str, tuple[list[int], list[int]]]:
    return {k: (v["predictions"], v["labels"]) for k, v in (data.get("accuracy") or {}).items()
            if isinstance(v, dict) and v.get("predictions") is not None and v.get("labels") is not None}


def section_accuracy(data: dict, rows: list[dict], fig: Figures) -> str:
    from tsslc.report import figures

    if not rows:
        return _missing("accuracy measurements")
    acc = data.get("accuracy") or {}
    trows, ids = [], []
    for r in rows:
        e = acc.get(r["label"]) if isinstance(acc.get(r["label"]), dict) else {}
        right = sum(int(p == y) for p, y in zip(e.get("predictions") or [], e.get("labels") or [])) \
            if e.get("predictions") is not None else None
        trows.append([r["target"] or "—", "float model" if r["target"] is None and r["backend"] == "float"
                      else r["backend"], _samples_cell(r), pct(r["accuracy"]), right])
        ids.append(f"acc-{slug(r['label'])}")
    out = [table(["target", "back end", "test samples", "accuracy (%)", "samples classified right"], trows, ids)]
    if any(r.get("energy") for r in rows):
        out.append(fig("accuracy_vs_energy", figures.accuracy_vs_energy({"": rows}),
                       "Accuracy against energy per sample, one point per target and back end (circle: intsim, "
                       "square: Lava; dashed line: the float model, which no chip prices). Energy is each target's "
                       "own table: per-term sums and all-in figures are not like for like."))
    runs = _runs_with_predictions(data)
    if runs:
        out.append(fig("per_class_accuracy", figures.per_class_accuracy(runs),
                       "Accuracy per class: the share of each digit's test samples that each back end classified "
                       "right (a back end that ran on fewer samples has fewer per class)."))
        out.append(fig("confusion_matrices", figures.confusion_matrices(runs),
                       "Confusion matrix per back end: rows are the true class, columns the predicted class; each "
                       "cell counts samples, shaded by its share of the row."))
    return "\n".join(out)


QUANT_COLS = [
    ("name", "layer", None), ("kind", "kind", None), ("rounding", "weight rounding", None),
    ("scale", "scale (integer units per float unit)", None), ("weight_exp", "weight exponent", None),
    ("weight_levels", "weight levels", None), ("axons_per_input", "axons per input", None),
    ("weight_error_rel_rms", "weight error (relative RMS, %)", "pct"),
    ("weight_saturated_fraction", "weights saturated (%)", "pct"),
    ("weight_zeroed_fraction", "weights rounded to zero (%)", "pct"),
    ("current_error_rel_rms", "input-current error, this rounding (relative RMS, %)", "pct"),
    ("current_error_rel_rms_nearest", "input-current error, nearest rounding (relative RMS, %)", "pct"),
    ("threshold_error_rel", "threshold error (%)", "pct"),
    ("tau_s_effective", "τs realised (steps)", "tau_s"), ("tau_m_effective", "τm realised (steps)", "tau_m"),
    ("state_peak_fraction", "predicted state peak (% of the register range)", "pct"),
]


def _tau(layer: dict, which: str) -> str:
    eff, want = layer.get(f"{which}_effective"), layer.get(which)
    if eff is None:
        return "no leak" if which == "tau_m" else "—"
    return f"{eff:.4g}" + (f" (float {want:.4g})" if want is not None else "")


def section_quantization(data: dict) -> str:
    q_all = data.get("quantization") or {}
    if not q_all:
        return _missing("quantization report")
    out = []
    for tgt, q in q_all.items():
        layers = q.get("layers", [])
        out.append(f'<h3 id="quantization-{slug(tgt)}">{_e(tgt)}</h3>')
        inp = q.get("input") or {}
        if inp:
            out.append(f"<p>Input: {_e(inp.get('encoding', ''))} encoding, {_num(inp.get('bits'))} bits, scale "
                       f"{_num(inp.get('scale'))} integer units per float unit; "
                       + ("exact" if inp.get("exact") else f"largest rounding error {_num(inp.get('error_max'))}")
                       + (f"; calibrated on {q['calibration_samples']:,} training samples" if q.get("calibration_samples") else "")
                       + ".</p>")
        cols = [c for c in QUANT_COLS[1:] if any(l.get(c[0]) is not None for l in layers)]
        rows = []
        for k, header, f in cols:
            if f == "pct":
                cells = [pct(l.get(k), 3) for l in layers]
            elif f in ("tau_s", "tau_m"):
                cells = [Cell(_e(_tau(l, f))) for l in layers]
            else:
                cells = [l.get(k) for l in layers]
            rows.append((header, cells))
        out.append(transposed("layer", [l.get("name", "?") for l in layers], rows))
    return "\n".join(out)


#: (key in the network's mapping report, key in a layer's, row header); None: not reported there
MAP_ROWS = [
    ("cores", "cores", "cores"), ("neuron_cores", None, "neuron cores"), ("splitter_cores", "splitter_cores", "splitter cores"),
    ("neurons", "neurons", "neurons"), ("splitter_neurons", "splitter_neurons", "splitter neurons"),
    ("neuron_utilisation", None, "neuron slots used (%)"), ("axons", "axons", "axons"),
    ("axon_utilisation", None, "axons used (%)"), (None, "source", "fed by"), (None, "fan_in", "fan-in"),
    (None, "connected_inputs", "connected inputs"), (None, "axons_per_input", "axons per input"),
    (None, "splitter_levels", "splitter levels"), (None, "delay_padded_neurons", "delay-padding neurons"),
    ("hops", "hops", "hops (network: sum over layers)"), ("latency_ticks", "latency", "latency (ticks; network: sum)"),
    ("memory_bytes", "memory_bytes", "core memory used (bytes; network: sum)"),
    ("max_core_memory_bytes", "max_core_memory_bytes", "fullest core (bytes)"),
    ("memory_per_core_bytes", None, "memory per core (bytes)"), ("memory_utilisation", None, "memory of the used cores (%)"),
]


def _fmt_map(key: str | None, v):
    if v is None:
        return None if key is not None else Cell("")
    return pct(v) if key.endswith(("utilisation", "fraction")) else v


def section_mapping(data: dict) -> str:
    maps = data.get("mapping") or {}
    if not maps:
        return _missing("core mapping")
    out = []
    for tgt, m in maps.items():
        out.append(f'<h3 id="mapping-{slug(tgt)}">{_e(tgt)}</h3>')
        layers = m.get("layers") or {}
        known = {k for k, _, _ in MAP_ROWS} | {k for _, k, _ in MAP_ROWS}
        rows = [(h, [_fmt_map(nk, m.get(nk) if nk else None)] + [_fmt_map(lk, l.get(lk) if lk else None)
                                                                 for l in layers.values()])
                for nk, lk, h in MAP_ROWS if (nk and nk in m) or (lk and any(lk in l for l in layers.values()))]
        extra_net = [k for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in known]
        extra_layer = sorted({k for l in layers.values() for k, v in l.items()
                              if isinstance(v, (int, float, str)) and k not in known})
        rows += [(_human(k), [_fmt_map(k, m.get(k))] + [Cell("")] * len(layers)) for k in extra_net]
        rows += [(_human(k), [Cell("")] + [_fmt_map(k, l.get(k)) for l in layers.values()]) for k in extra_layer]
        out.append(transposed("", ["whole network"] + [f"layer {n}" for n in layers], rows))
    return "\n".join(out)


def section_equivalence(data: dict, fig: Figures) -> str:
    from tsslc.report import figures

    eq = data.get("equivalence") or {}
    rows, ids = [], []
    for tgt, comparisons in eq.items():
        for c in comparisons:
            fd = c.get("first_divergence")
            where = ("none: identical" if not fd else
                     f"layer {fd['layer']}, neuron {fd['neuron']}, step {fd['step']} of sample {fd['sample']}")
            layers = "; ".join(f"{n} {100 * l['spike_agreement']:.3f} % ({l['mismatches']:,} of {l['total']:,} differ)"
                               for n, l in c["layers"].items())
            rows.append([tgt, f"{c['backend']} vs {c['reference']}", pct(c["spike_agreement"], 3), layers,
                         pct(c["classification_agreement"]), where])
            ids.append(f"eq-{slug(tgt, c['backend'], c['reference'])}")
    if not rows:
        return _missing("equivalence check")
    out = ["<p>Spikes compared neuron by neuron, step by step, sample by sample; a spike agrees when both back ends "
           "fire or both stay silent.</p>",
           table(["target", "back ends", "spikes agreeing (%)", "per layer", "same class (%)",
                  "first diverging spike"], rows, ids)]
    out.append(fig("agreement_per_layer", figures.agreement(
        {f"{t}: {c['backend']} vs {c['reference']}": {l: v["spike_agreement"] for l, v in c["layers"].items()}
         for t, cs in eq.items() for c in cs}),
        "Spike agreement per layer for each pair of back ends compared (% of neuron-steps where both fire "
        "or both stay silent)."))
    return "\n".join(out)


def section_finetune(data: dict) -> str:
    ft = data.get("finetune") or {}
    if not ft:
        return _missing("fine-tuning (run with --finetune-epochs > 0)")
    rows = [[t, f["epochs"], pct(f.get("target_acc_before")), pct(f["target_acc_after"]), pct(f["float_acc_after"]),
             pct(f["spike_agreement_after"], 3), pct(f["classification_agreement_after"]),
             f"{_num(f['tau_m'])}, {_num(f['tau_s'])}"] for t, f in ft.items()]
    return "\n".join([
        table(["target", "epochs", "on-target accuracy before (%)", "on-target accuracy after (%)",
               "float model after (%)", "spikes agreeing after (%)", "same class after (%)",
               "τm, τs realised (steps)"], rows, [f"finetune-{slug(t)}" for t in ft]),
        "<p>Fine-tuning trains through the target's weight rounding, input encoding and realised decays "
        "(straight-through); the fine-tuned float model keeps the on-grid weights, so it is the model the "
        "chip runs. On-target accuracy is intsim's on the whole test set.</p>"])


COUNTER_COLS = [("spikes", "spikes"), ("synops", "synaptic ops"), ("macs", "of which MACs (graded input)"),
                ("acs", "of which ACs (spikes)"), ("dense_synops", "dense synaptic ops"),
                ("updates_active", "active neuron updates"), ("updates_idle", "idle neuron updates"),
                ("spike_messages", "spike messages between cores"), ("hops_x", "hops east-west"),
                ("hops_y", "hops north-south")]
LAYER_COUNTER_COLS = [("n_neurons", "neurons"), ("spikes", "spikes"), ("synops", "synaptic ops"), ("macs", "MACs"),
                      ("events_in", "synaptic events in"), ("updates_active", "active updates"),
                      ("updates_idle", "idle updates"), ("spike_messages", "spike messages")]


def section_activity(data: dict, stored: list[str]) -> str:
    cnt = data.get("counters") or {}
    out = []
    if cnt:
        out.append("<p>Counts per sample (conventions in <code>tsslc.backends.counters</code>): synaptic ops are "
                   "effective (zero inputs and weights skipped); dense ops count every connection.</p>")
        out.append(table(["model / back end (counts per sample)", "samples"] + [h for _, h in COUNTER_COLS],
                         [[k, c.get("n_samples")] + [c["per_sample"].get(x) for x, _ in COUNTER_COLS]
                          for k, c in cnt.items()]))
        inner = []
        for label, c in cnt.items():
            inner.append(f"<h4>{_e(label)}: totals over {c['n_samples']:,} samples × {c['n_steps']} steps</h4>")
            inner.append(table(["layer"] + [h for _, h in LAYER_COUNTER_COLS],
                               [[n] + [l.get(k) for k, _ in LAYER_COUNTER_COLS] for n, l in c["layers"].items()]))
        out.append("<details><summary>Counts per layer, for each model and back end</summary>" + "\n".join(inner)
                   + "</details>")
    else:
        out.append(_missing("counters"))
    nb = data.get("neurobench") or {}
    if nb:
        out.append("<h3>NeuroBench view (computed by tsslc's counters, NeuroBench conventions)</h3>")
        out.append(table(["model", "effective MACs / sample", "effective ACs / sample", "dense ops / sample",
                          "activation sparsity (%)", "connection sparsity (%)", "parameters", "footprint (bytes)"],
                         [[k, v["SynapticOperations"]["Effective_MACs"], v["SynapticOperations"]["Effective_ACs"],
                           v["SynapticOperations"]["Dense"], pct(v["ActivationSparsity"]),
                           pct(v["ConnectionSparsity"]), v.get("ParameterCount"), v["Footprint"]]
                          for k, v in nb.items()]))
    if data.get("mnist_activity"):
        out.append(f"<p>MNIST CNN figures: {_e(data['mnist_activity']['note'])}.</p>")
    out += stored
    return "\n".join(out)


ENERGY_TERMS = {"synaptic_op": "synaptic operation", "synaptic_event": "synaptic event",
                "neuron_update_active": "neuron update, active", "neuron_update_inactive": "neuron update, idle",
                "spike_in_tile": "spike within a tile", "tile_hop_ew": "tile hop east-west",
                "tile_hop_ns": "tile hop north-south"}


def section_energy(data: dict, rows: list[dict], fig: Figures, stored: list[str]) -> str:
    from tsslc.report import figures

    en = data.get("energy") or {}
    if not en.get("targets"):
        return _missing("energy estimate")
    out = ["<p>Counts first, prices second; every price names its source. Tables of different targets and scopes "
           "are never added together: a <b>per-term</b> total adds the listed terms; an <b>all-in</b> figure is "
           "the whole energy on its own.</p>"]
    for tgt, r in en["targets"].items():
        out.append(f'<h3 id="energy-{slug(tgt)}">{_e(tgt)}</h3><p class="src">{_e(r.get("note", ""))}</p>')
        totals = sum(v for v in r["totals_pJ"].values()) or None
        out.append(table(["term", "count per sample", "price (pJ)", "energy per sample (nJ)", "share of the total (%)",
                          "scope", "grade", "process", "source"],
                         [[ENERGY_TERMS.get(l["figure"], _human(l["figure"])), l["count"], l["price"],
                           None if l["energy_pJ"] is None else l["energy_pJ"] / 1e3,
                           pct(None if l["energy_pJ"] is None or not totals or len(r["totals_pJ"]) > 1
                               else l["energy_pJ"] / totals, 2),
                           l["scope"], l["grade"], l["process"], l["source"]] for l in r["lines"]]))
        for scope, tot in r["totals_pJ"].items():
            label = "total of the per-term figures above" if scope == "per-term" else "all-in figure (add nothing)"
            si = f' <span class="flag">— priced with {_e(r["stand_in"])}</span>' if r.get("stand_in") else ""
            out.append(f"<p><b>{_e(tgt)}: {tot / 1e3:,.3f} nJ per sample</b> — {_e(label)} ({_e(scope)}){si}</p>")
        for c in r.get("context", []):
            out.append(f"<p class='src'>context: {_e(c['figure'])} = {_num(c['price'])} {_e(c['unit'])} ({_e(c['source'])})</p>")
    priced = [r for r in rows if r.get("energy")]
    if priced:
        out.append('<h3 id="energy-runs">Energy per sample of each run</h3>')
        out.append(table(["run (target / back end)", "samples", "energy per sample (nJ)", "scope", "priced with"],
                         [[r["label"], r["energy"].get("samples", r["samples"]),
                           Cell(energy_text(r["energy"])[0].replace(" nJ", "")), energy_text(r["energy"])[1],
                           f"{r['energy']['table']} table" + (f" ({r['energy']['stand_in']})"
                                                               if r["energy"].get("stand_in") else "")]
                          for r in priced], [f"energy-run-{slug(r['label'])}" for r in priced]))
    a = en.get("ann")
    if a:
        out.append(f"<h3 id=\"energy-ann\">Equivalent ANN vs SNN arithmetic</h3><p class='src'>{_e(a['note'])}</p>")
        out.append(table(["what", "count per sample", "price (pJ)", "energy per sample (nJ)", "source"],
                         [[l["what"], l["count"], l["price"], l["energy_pJ"] / 1e3, l["source"]] for l in a["lines"]]))
    if any(r.get("per_layer_pJ") for r in en["targets"].values()):
        out.append(fig("energy_per_layer", figures.energy_per_layer(en),
                       "Energy per layer of each target side by side: nJ per sample (left) and each layer's share "
                       "of its own target's total (right). Hatched bars are all-in figures; the targets' totals "
                       "are never added together."))
    out += stored
    return "\n".join(out)


def render(metrics: dict | None, data: dict, figures: dict[str, bytes]) -> str:
    """The HTML page as a string. ``figures``: stored PNGs by name (RUN/figures/*.png)."""
    title = data.get("title", "tsslc report")
    rows = data.get("summary") or summarize(data)
    fig = Figures()
    info = data.get("figures") or {}
    # stored figures, numbered where they land
    stored_by_section: dict[str, list[tuple[str, bytes]]] = {}
    order = {n: i for i, n in enumerate(info)}
    for name, png in sorted(figures.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])):
        if name in DRAWN_HERE:
            continue
        stored_by_section.setdefault(_stored_section(name, info.get(name) or {}), []).append((name, png))

    def stored(section: str) -> list[str]:
        return [fig(n, p, _stored_caption(n, info.get(n) or {})) for n, p in stored_by_section.get(section, [])]

    body = {
        "run": lambda: section_run(data, metrics, rows),
        "training": lambda: section_training(metrics, fig) + "\n".join(stored("training")),
        "accuracy": lambda: section_accuracy(data, rows, fig) + "\n".join(stored("accuracy")),
        "quantization": lambda: section_quantization(data),
        "mapping": lambda: section_mapping(data),
        "equivalence": lambda: section_equivalence(data, fig) + "\n".join(stored("equivalence")),
        "finetune": lambda: section_finetune(data),
        "activity": lambda: section_activity(data, stored("activity")),
        "energy": lambda: section_energy(data, rows, fig, stored("energy")),
    }
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
           f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_e(title)}</title>"
           f"<style>{CSS}</style></head><body>",
           f"<h1>{_e(title)}</h1>", section_summary(data, metrics, rows), section_contents()]
    for sid, heading in SECTIONS:
        out.append(f'<section><h2 id="{sid}">{_e(heading)}</h2>')
        out.append(body[sid]())
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


def _check_out(out: Path, runs: list[Path]) -> None:
    """The report never replaces a file it reads (:func:`tsslc.atomic.refuse_clobber`)."""
    from tsslc.atomic import refuse_clobber
    from tsslc.report.record import METRICS_JSON

    inputs = [(f"run {run}'s", run / name) for run in runs for name in (METRICS_JSON, REPORT_JSON, "energy.json")]
    inputs += [(f"run {run}'s figure", p) for run in runs for p in sorted((run / FIGURES).glob("*.png"))]
    refuse_clobber([("-o", out)], inputs)


def stored_figures(run: Path) -> dict[str, bytes]:
    d = run / FIGURES
    return {p.stem: p.read_bytes() for p in sorted(d.glob("*.png"))} if d.is_dir() else {}


def write_report(run_dir, out: str | Path | None = None) -> Path:
    """Render ``RUN`` (metrics.json, report.json, figures/*.png) to ``RUN/report.html``."""
    from tsslc.atomic import atomic_write_text

    run = Path(run_dir)
    metrics, data = load_run(run)
    data.setdefault("title", f"tsslc report: {run.resolve().name}")
    path = Path(out) if out else run / REPORT_HTML
    _check_out(path, [run])
    atomic_write_text(path, render(metrics, data, stored_figures(run)), what="report")
    return path
