"""The main job end to end (1 epoch, 30 Lava samples, 1 fine-tuning epoch, the MNIST CNN on
300 real MNIST images when ../shared/data/mnist is there), its report opened in headless
Chromium at 1200×900: the summary on the first screen, no table wider than the page, every
figure captioned in words. A second, cheaper run (10 Lava samples, no fine-tuning) is
compared with the first by ``tsslc report --compare``."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, SHARED_DATA

HAVE_MNIST = (SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file()
WIDTH, HEIGHT = 1200, 900


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "headless Chromium is needed to check the report (Debian: apt-get install -y chromium; .ci/run does it)"
    return exe


def _demo(out, *extra):
    cmd = [sys.executable, "-m", "tsslc", "demo", "--out", str(out), "--epochs", "1", "--no-progress", *extra]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    mnist = ["--mnist-train-samples", "300", "--mnist-dir", str(SHARED_DATA / "mnist")] if HAVE_MNIST else \
        ["--mnist-train-samples", "0"]  # ../shared absent: the MNIST CNN's figures are checked where it is there
    stdout = _demo(out, "--lava-samples", "30", "--finetune-epochs", "1", *mnist)
    return out, stdout


@pytest.fixture(scope="module")
def demo_run_b(tmp_path_factory):
    """A second, cheaper run to compare with: 10 Lava samples, no fine-tuning, no MNIST."""
    out = tmp_path_factory.mktemp("demo_b") / "run_b"
    _demo(out, "--lava-samples", "10", "--finetune-epochs", "0", "--mnist-train-samples", "0", "--calibration", "64")
    return out


# --- the browser: layout measured by the page itself, in a copy that carries a probe ----
PROBE = """<script>addEventListener('load', () => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const de = document.documentElement, s = document.getElementById('summary');
  const out = {vw: innerWidth, vh: innerHeight, cw: de.clientWidth, sw: de.scrollWidth, sy: scrollY,
    summary: s ? box(s) : null,
    tables: [...document.querySelectorAll('table')].filter(t => t.offsetParent !== null).map(t =>
      ({box: box(t), boxParent: box(t.parentElement), text: t.rows[0].textContent.slice(0, 60)})),
    figures: [...document.querySelectorAll('figure')].map(f => ({name: f.dataset.name,
      alt: f.querySelector('img') && f.querySelector('img').alt,
      caption: f.querySelector('figcaption') && f.querySelector('figcaption').textContent,
      decoded: f.querySelector('img') ? f.querySelector('img').naturalWidth : 0}))};
  const pre = document.createElement('pre'); pre.id = 'tsslc-probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});</script>"""


def measure(page, tmp_path) -> tuple[dict, str]:
    """(layout measured by Chromium at 1200×900, the rendered DOM)."""
    probe = tmp_path / f"probe_{page.stem}.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={WIDTH},{HEIGHT}",
                          "--dump-dom", probe.resolve().as_uri()], capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'<pre id="tsslc-probe">(.*?)</pre>', dom, re.S)
    assert m, "the page's load handler did not run in Chromium"
    import html as _html

    return json.loads(_html.unescape(m.group(1))), dom


def screenshot(page, path):
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={WIDTH},{HEIGHT}",
                    f"--screenshot={path}", page.resolve().as_uri()], capture_output=True, timeout=120)
    from PIL import Image

    return np.asarray(Image.open(path).convert("L"))


def assert_readable_layout(lay: dict):
    assert lay["vw"] == WIDTH and 0 < lay["vh"] <= HEIGHT and lay["sy"] == 0
    assert lay["sw"] <= lay["cw"], f"the page scrolls sideways: {lay['sw']} px content in {lay['cw']} px"
    for t in lay["tables"]:
        assert t["box"][2] <= lay["cw"] + 0.5, f"table wider than the page: {t['text']!r} ends at {t['box'][2]}"
        assert t["box"][2] <= t["boxParent"][2] + 0.5, f"table wider than its box (columns hidden): {t['text']!r}"


def assert_captioned(lay: dict, stems: set[str]):
    assert lay["figures"], "no figures"
    for f in lay["figures"]:
        cap = re.sub(r"^Figure \d+\.\s*", "", f["caption"] or "")
        assert f["decoded"] > 0, f"figure {f['name']} did not decode"
        assert len(cap) >= 30 and " " in cap, f"figure {f['name']}: caption {cap!r} says nothing"
        assert not re.fullmatch(r"[\w.\-]+", cap) and cap.strip(". ") not in stems | {f["name"]}, cap
        assert f["alt"] and f["alt"] != f["name"]


# --- the tests -----------------------------------------------------------------------------
def test_demo_writes_every_stage_and_a_report_chromium_renders(demo_run, tmp_path):
    out, stdout = demo_run
    for f in ("checkpoint.pt", "metrics.json", "model.tsslc", "loihi2.tsslc", "truenorth.tsslc", "energy.json",
              "report.json", "report.html"):
        assert (out / f).is_file(), f
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*.tmp"))
    assert f"Report: {(out / 'report.html').resolve()}" in stdout
    data = json.loads((out / "report.json").read_text())
    assert data["counters_lava_equal_intsim"] is True
    lava_vs_intsim = [c for c in data["equivalence"]["loihi2"] if c["backend"] == "lava" and c["reference"] == "intsim"]
    assert lava_vs_intsim[0]["spike_agreement"] == 1.0 and lava_vs_intsim[0]["first_divergence"] is None

    lay, dom = measure(out / "report.html", tmp_path)
    text = re.sub(r"<[^>]+>", " ", re.sub(r"base64,[^\"]+", "", dom))
    for section in ("Summary", "Contents", "Run metadata", "Training", "Accuracy per back end", "Quantization",
                    "Core mapping", "Equivalence", "Hardware-aware fine-tuning", "Activity and counters",
                    "NeuroBench view", "Energy"):
        assert section in text, section
    assert 'class="missing"' not in dom  # every section has its data
    assert "Davies et al., IEEE Micro 2018" in text and "Merolla et al., Science 2014" in text and "Horowitz" in text
    assert "first diverging spike" in text
    # numbers, not placeholders: the energy totals in nJ, Loihi 2's beside the words that it is Loihi 1's
    assert re.search(r"loihi2: [\d,]+\.\d{3} nJ per sample</b>[^<]*<span class=\"flag\">— priced with Loihi 1 figures", dom)
    assert re.search(r"truenorth: [\d,]+\.\d{3} nJ per sample", text)
    assert "current_error_rel_rms" not in text and "weight_saturated_fraction" not in text  # human headers

    # the summary: on the first screen at 1200×900, one row per run, every number a link to its row
    assert_readable_layout(lay)
    left, top, right, bottom = lay["summary"]
    assert 0 <= left and right <= lay["cw"] and 0 <= top and bottom <= lay["vh"], (lay["summary"], lay["vh"])
    shot = screenshot(out / "report.html", tmp_path / "first_screen.png")
    assert shot.shape == (HEIGHT, WIDTH)
    region = shot[int(top):int(bottom), int(left):int(right)]
    assert (region < 100).mean() > 0.01, "no text drawn where the summary is"
    summary = dom[dom.index('id="summary"'):dom.index('id="contents"')]
    ids = set(re.findall(r'id="([^"]+)"', dom))
    links = re.findall(r'href="#([^"]+)"', summary)
    assert len(links) >= 10 and all(l in ids for l in links), [l for l in links if l not in ids]
    rows = {r["label"]: r for r in data["summary"]}
    assert set(rows) == {"float", "loihi2 / intsim", "truenorth / intsim", "loihi2 / lava"}
    for r in rows.values():
        assert f"{100 * r['accuracy']:.2f}&nbsp;%" in summary
    assert "Loihi 1 figures" in summary and "per-term sum" in summary and "all-in" in summary
    assert rows["loihi2 / lava"]["samples"] == 30 and "of 360 ⚑" in summary  # fewer samples, flagged
    # figures: every one captioned in words; the expected charts are there
    stems = {p.stem for p in (out / "figures").glob("*.png")}
    assert_captioned(lay, stems)
    names = {f["name"] for f in lay["figures"]}
    expect = {"training_curve", "accuracy_vs_energy", "confusion_matrices", "per_class_accuracy", "energy_per_layer",
              "agreement_per_layer", "firing_counts_digits", "firing_rates_digits", "raster_lava", "raster_float"}
    if HAVE_MNIST:
        expect |= {"firing_counts_mnist_cnn", "firing_rates_mnist_cnn"}
    assert expect <= names, expect - names
    # fine-tuned through loihi2's rounding, the float model is the one the chip runs
    ft = data["finetune"]
    assert set(ft) == {"loihi2", "truenorth"}
    assert ft["loihi2"]["spike_agreement_after"] >= 0.999 and ft["loihi2"]["classification_agreement_after"] >= 0.99
    if HAVE_MNIST:
        assert data["mnist_activity"]["note"].startswith("MNIST CNN") and 0.1 < data["mnist_activity"]["accuracy"] <= 1


def test_report_json_follows_its_schema_and_records_what_the_charts_need(demo_run, demo_run_b):
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in requirements-test.txt")
    from tsslc.data.digits import digits_arrays
    from tsslc.report.record import schema

    v = jsonschema.Draft202012Validator(schema())
    data = json.loads((demo_run[0] / "report.json").read_text())
    for run in (demo_run[0], demo_run_b):
        errors = [f"{e.json_path}: {e.message[:120]}" for e in v.iter_errors(json.loads((run / "report.json").read_text()))]
        assert not errors, errors
    # the schema can fail: a share outside 0..1, a missing part, a label that is not a class
    for path, value in ((("summary", 0, "accuracy"), 96.9), (("run",), None), (("accuracy", "float", "labels", 0), -1)):
        bad = copy.deepcopy(data)
        node = bad
        for k in path[:-1]:
            node = node[k]
        if value is None:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        assert not v.is_valid(bad), path
    # predictions and labels per back end: the labels are the digits test set's own
    _, _, _, yte = digits_arrays()
    for label, e in data["accuracy"].items():
        assert e["labels"] == yte[: e["samples"]].tolist(), label
        assert e["accuracy"] == pytest.approx(np.mean(np.asarray(e["predictions"]) == yte[: e["samples"]]))
    run = data["run"]
    assert run["seed"] == 0 and run["samples"]["test"] == 360 and run["samples"]["lava"] == 30
    assert run["settings"]["epochs"] == 1 and run["config"] == "examples/digits.yaml"
    if (REPO / ".git").exists() and shutil.which("git"):
        assert re.fullmatch(r"[0-9a-f]{40}", run["git"]["commit"])


def test_report_command_rerenders_and_names_a_missing_run(demo_run, tmp_path, capsys):
    from tsslc.cli import main

    out, _ = demo_run
    assert main(["report", str(out), "-o", str(tmp_path / "r.html")]) == 0
    printed = capsys.readouterr().out
    assert "all-in (add nothing)" in printed and f"wrote {tmp_path / 'r.html'}" in printed
    assert (tmp_path / "r.html").read_text().count("data:image/png;base64,") >= 10
    assert main(["report", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert "run folder not found" in err and "Traceback" not in err


def test_report_compare_renders_two_demo_runs_side_by_side(demo_run, demo_run_b, tmp_path, capsys, monkeypatch):
    from tsslc.cli import main

    a, b = demo_run[0], demo_run_b
    page = tmp_path / "cmp.html"
    assert main(["report", "--compare", str(a), str(b), "-o", str(page)]) == 0
    assert f"wrote {page}" in capsys.readouterr().out
    lay, dom = measure(page, tmp_path)
    assert_readable_layout(lay)
    assert lay["summary"][3] <= lay["vh"]
    assert_captioned(lay, set())
    text = re.sub(r"<[^>]+>", " ", re.sub(r"base64,[^\"]+", "", dom))
    assert str(a) in text and str(b) in text
    da, db = (json.loads((r / "report.json").read_text()) for r in (a, b))
    summary = dom[dom.index('id="summary"'):dom.index('id="contents"')]
    # Lava ran on 30 samples in A and 10 in B: the cell shows both, highlighted, and both are flagged
    assert re.search(r'<td class="n diff">30 → 10</td>', summary)
    assert "A: <b>loihi2 / lava</b> ran on 30 of 360" in summary and "B: <b>loihi2 / lava</b> ran on 10 of 360" in summary
    acc = lambda d, k: f"{100 * d['accuracy'][k]['accuracy']:.2f} %"  # noqa: E731
    for k in da["accuracy"]:
        if acc(da, k) != acc(db, k):
            assert f"{acc(da, k)} → {acc(db, k)}" in summary, k
    # metadata side by side, differing settings highlighted; B did no fine-tuning
    assert re.search(r'<td class="diff">[^<]*lava_samples = 30[^<]*</td><td class="diff">[^<]*lava_samples = 10', dom)
    assert "→ —" in dom[dom.index('id="finetune"'):]
    # no output file given: one in the current folder, named after both runs; inputs never overwritten
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--compare", str(a), str(b)]) == 0
    assert (tmp_path / "compare_run_vs_run_b.html").is_file()
    assert main(["report", "--compare", str(a), str(b), "-o", str(b / "report.json")]) == 1
    assert "an input of this command" in capsys.readouterr().err
    assert main(["report", "--compare", str(a), str(tmp_path / "missing")]) == 1
    assert "run folder not found" in capsys.readouterr().err
