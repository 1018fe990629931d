"""Two runs side by side (``tsslc report --compare RUN_A RUN_B``): one self-contained page.

Read from each run folder's report.json (and metrics.json), nothing else: the summary of
both (per target and back end: samples, accuracy, spike agreement with the float model,
energy per sample, cores) with A → B and the change, differences highlighted; accuracy vs
energy of both runs in one chart; the runs' metadata side by side; fine-tuning and
equivalence when either run has them.
"""

from __future__ import annotations

from pathlib import Path

from tsslc.report.html import CSS, Cell, Figures, _check_out, _date, _e, _missing, energy_text, stand_in_short, table
from tsslc.report.record import load_run, summarize


class Run:
    def __init__(self, tag: str, path: Path):
        self.tag, self.path = tag, path
        self.metrics, self.data = load_run(path)
        self.rows = self.data.get("summary") or summarize(self.data)
        self.by_label = {r["label"]: r for r in self.rows}


def _pair(a, b, fmt, better: str | None = None, delta=None) -> Cell:
    """'A → B (Δ)' highlighted when they differ; ``better``: 'up' or 'down' colours Δ."""
    fa, fb = fmt(a), fmt(b)
    if fa == fb:
        return Cell(fa)
    d = ""
    if delta is not None and a is not None and b is not None:
        dv, dtext = delta(a, b)
        cls = ""
        if better and dv != 0:
            cls = "better" if (dv > 0) == (better == "up") else "worse"
        d = f'<br><span class="{cls}">{dtext}</span>'
    return Cell(f"{fa} → {fb}{d}", True, "diff")


def _acc(x):
    return "—" if x is None else f"{100 * x:.2f} %"


def _agree(x):
    return "—" if x is None else f"{100 * x:.3f} %"


def _points(a, b):
    d = 100 * (b - a)
    return d, f"{d:+.2f} points"


def _energy_of(r):
    en = (r or {}).get("energy")
    if not en or len(en.get("totals_pJ") or {}) != 1:
        return None
    return next(iter(en["totals_pJ"].values()))


def summary_table(a: Run, b: Run) -> str:
    labels = list(a.by_label) + [l for l in b.by_label if l not in a.by_label]
    rows = []
    for label in labels:
        ra, rb = a.by_label.get(label), b.by_label.get(label)

        def get(r, k):
            return None if r is None else r.get(k)

        ea, eb = _energy_of(ra), _energy_of(rb)
        (na, sa), (nb, sb) = energy_text((ra or {}).get("energy")), energy_text((rb or {}).get("energy"))
        if (na, sa) == (nb, sb):
            en = Cell(_e(na))
        elif ea and eb is not None:
            en = Cell(f'{_e(na)} → {_e(nb)}<br><span class="{"better" if eb < ea else "worse"}">'
                      f"{100 * (eb - ea) / ea:+.1f} %</span>", True, "diff")
        else:
            en = Cell(f"{_e(na)} → {_e(nb)}", True, "diff")
        scope = sa if sa == sb else " → ".join(x or "—" for x in (sa, sb))
        si = stand_in_short(((ra or rb).get("energy") or {}).get("stand_in", ""))
        if scope or si:
            en.html += f'<br><span class="scope">{_e(scope)}</span>' + (f' <span class="flag">{_e(si)}</span>' if si else "")
        rows.append([
            label + ("" if ra else " (only in B)") + ("" if rb else " (only in A)"),
            _pair(get(ra, "samples"), get(rb, "samples"), lambda x: "—" if x is None else f"{x:,}"),
            _pair(get(ra, "accuracy"), get(rb, "accuracy"), _acc, "up", _points),
            _pair(get(ra, "spike_agreement_vs_float"), get(rb, "spike_agreement_vs_float"), _agree, "up", _points)
            if (get(ra, "target") or get(rb, "target")) else Cell('<span class="scope">reference</span>'),
            en,
            _pair(get(ra, "cores"), get(rb, "cores"), lambda x: "—" if x is None else str(x), "down",
                  lambda x, y: (y - x, f"{y - x:+d}")),
        ])
    return table(["run (target / back end)", "test samples A → B", "accuracy A → B",
                  "spikes agreeing with the float model A → B", "energy per sample A → B", "cores A → B"], rows)


def _meta(r: Run) -> dict[str, str]:
    run, m = r.data.get("run") or {}, r.metrics or {}
    g = run.get("git") or {}
    ep = m.get("epochs") or []
    final = m.get("final_test_acc", ep[-1].get("test_acc") if ep else None)
    return {
        "folder": str(r.path),
        "tsslc version": run.get("tsslc_version", "not recorded"),
        "git commit": (g["commit"][:12] + (" (uncommitted changes)" if g.get("dirty") else "")) if g else "—",
        "date": _date(run["date"]) if run.get("date") else "not recorded",
        "config": run.get("config") or "—",
        "seed": str(run.get("seed", m.get("seed", "—"))),
        "data set": str(run.get("dataset", m.get("dataset", "—"))),
        "network": str(run.get("network") or "—"),
        "CPU threads": str(run.get("threads", "—")),
        "data used": ", ".join(f"{k}: {v:,}" if isinstance(v, int) else f"{k}: {v}"
                               for k, v in (run.get("samples") or {}).items()) or "—",
        "settings": ", ".join(f"{k} = {v}" for k, v in (run.get("settings") or {}).items()) or "—",
        "training epochs": str(len(ep)) if ep else "—",
        "float model test accuracy": _acc(final),
    }


def metadata_table(a: Run, b: Run) -> str:
    ma, mb = _meta(a), _meta(b)
    rows = []
    for k in ma:
        same = ma[k] == mb[k] or k == "folder"
        rows.append([Cell(f"<b>{_e(k)}</b>", False), Cell(_e(ma[k]), False, "" if same else "diff"),
                     Cell(_e(mb[k]), False, "" if same else "diff")])
    return table(["", "A", "B"], rows)


def finetune_table(a: Run, b: Run) -> str:
    fa, fb = a.data.get("finetune") or {}, b.data.get("finetune") or {}
    if not fa and not fb:
        return _missing("fine-tuning in either run")
    rows = []
    for t in list(fa) + [t for t in fb if t not in fa]:
        x, y = fa.get(t) or {}, fb.get(t) or {}
        rows.append([t, _pair(x.get("epochs"), y.get("epochs"), lambda v: "—" if v is None else str(v)),
                     _pair(x.get("target_acc_after"), y.get("target_acc_after"), _acc, "up", _points),
                     _pair(x.get("float_acc_after"), y.get("float_acc_after"), _acc, "up", _points),
                     _pair(x.get("spike_agreement_after"), y.get("spike_agreement_after"), _agree, "up", _points)])
    return table(["target", "epochs A → B", "on-target accuracy after A → B", "float model after A → B",
                  "spikes agreeing after A → B"], rows)


def equivalence_table(a: Run, b: Run) -> str:
    def flat(r: Run):
        return {(t, c["backend"], c["reference"]): c for t, cs in (r.data.get("equivalence") or {}).items() for c in cs}

    ea, eb = flat(a), flat(b)
    if not ea and not eb:
        return _missing("equivalence check in either run")
    rows = []
    for k in list(ea) + [k for k in eb if k not in ea]:
        x, y = ea.get(k) or {}, eb.get(k) or {}
        rows.append([k[0], f"{k[1]} vs {k[2]}",
                     _pair(x.get("spike_agreement"), y.get("spike_agreement"), _agree, "up", _points),
                     _pair(x.get("classification_agreement"), y.get("classification_agreement"), _acc, "up", _points)])
    return table(["target", "back ends", "spikes agreeing A → B", "same class A → B"], rows)


def render_compare(a: Run, b: Run) -> str:
    from tsslc.report import figures

    fig = Figures()
    title = f"tsslc: comparing {a.path.name} (A) and {b.path.name} (B)"
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
           f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_e(title)}</title>"
           f"<style>{CSS}</style></head><body>", f"<h1>{_e(title)}</h1>",
           '<section id="summary"><h2>Summary</h2>',
           f'<p class="meta">A = <code>{_e(a.path)}</code> · B = <code>{_e(b.path)}</code> · a cell shows A → B '
           'and the change where they differ (highlighted; green better, red worse).</p>',
           summary_table(a, b)]
    flags = []
    for r in (a, b):
        for row in r.rows:
            if row.get("samples") and row.get("samples_most") and row["samples"] < row["samples_most"]:
                flags.append(f'<span class="flag">⚑</span> {r.tag}: <b>{_e(row["label"])}</b> ran on '
                             f'{row["samples"]:,} of {row["samples_most"]:,} test samples.')
    if flags:
        out.append("<ul>" + "".join(f"<li>{f}</li>" for f in flags) + "</ul>")
    out.append("</section>")
    out.append('<nav id="contents"><b>Contents</b><ol><li><a href="#run">Runs</a></li>'
               '<li><a href="#accuracy">Accuracy vs energy</a></li><li><a href="#finetune">Fine-tuning</a></li>'
               '<li><a href="#equivalence">Equivalence</a></li></ol></nav>')
    out.append('<section><h2 id="run">Runs</h2>' + metadata_table(a, b) + "</section>")
    out.append('<section><h2 id="accuracy">Accuracy vs energy</h2>')
    if any(r.get("energy") for r in a.rows + b.rows):
        out.append(fig("accuracy_vs_energy", figures.accuracy_vs_energy({"A": a.rows, "B": b.rows}),
                       "Accuracy against energy per sample of both runs, one point per target and back end "
                       "(filled: A, open: B; circle: intsim, square: Lava; dashed and dotted lines: the float "
                       "models of A and B)."))
    else:
        out.append(_missing("energy estimate in either run"))
    out.append("</section>")
    out.append('<section><h2 id="finetune">Hardware-aware fine-tuning</h2>' + finetune_table(a, b) + "</section>")
    out.append('<section><h2 id="equivalence">Equivalence</h2>' + equivalence_table(a, b) + "</section>")
    out.append("</body></html>")
    return "\n".join(out)


def write_compare(run_a, run_b, out: str | Path | None = None) -> Path:
    """Render the comparison of two run folders; default file: ``compare_A_vs_B.html`` in the
    current folder."""
    from tsslc.atomic import atomic_write_text

    a, b = Run("A", Path(run_a)), Run("B", Path(run_b))
    path = Path(out) if out else Path(f"compare_{a.path.resolve().name}_vs_{b.path.resolve().name}.html")
    _check_out(path, [a.path, b.path])
    atomic_write_text(path, render_compare(a, b), what="report")
    return path

