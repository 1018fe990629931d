"""The report's parts that need no demo run: run metadata, the JSON layout, the summary,
the figures' arithmetic against scikit-learn, one-line errors. The page of a real demo run
is checked in a browser in tests/test_demo.py."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from conftest import REPO
from tsslc.errors import TsslcError
from tsslc.report import figures
from tsslc.report.record import SCHEMA_VERSION, accuracy_entry, git_commit, load_run, run_metadata, schema, summarize


def test_schema_is_a_valid_json_schema_and_documents_every_part():
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in requirements-test.txt")
    s = schema()
    jsonschema.Draft202012Validator.check_schema(s)
    assert s["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    for part in ("run", "summary", "accuracy", "quantization", "mapping", "equivalence", "finetune", "counters",
                 "neurobench", "energy", "figures"):
        assert part in s["properties"], part


def test_git_commit_of_the_checkout_and_none_elsewhere(tmp_path):
    assert git_commit(tmp_path) is None  # no tsslc checkout here
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    assert git_commit(tmp_path) is None  # a tsslc tree, but no git repository
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    head = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%H"], capture_output=True, text=True).stdout.strip()
    g = git_commit(REPO)
    assert g["commit"] == head and isinstance(g["dirty"], bool)


def test_run_metadata_names_the_config_in_the_repository_and_reads_the_metrics():
    meta = run_metadata(config=REPO / "examples" / "digits.yaml", metrics={"seed": 3, "rule": "tsslbp", "dataset": "digits"},
                        samples={"test": 360}, settings={"epochs": 1})
    assert meta["config"] == "examples/digits.yaml" and "n_steps" in meta["config_text"]
    assert meta["seed"] == 3 and meta["dataset"] == "digits" and meta["samples"] == {"test": 360}
    import datetime

    assert datetime.datetime.fromisoformat(meta["date"]).utcoffset() == datetime.timedelta(0)
    assert meta["threads"] >= 1 and meta["tsslc_version"]


def test_accuracy_entry_refuses_mismatched_lengths():
    e = accuracy_entry([1, 2, 3], [1, 2, 0], "loihi2", "lava")
    assert e["accuracy"] == pytest.approx(2 / 3) and e["samples"] == 3
    with pytest.raises(TsslcError, match="3 predictions for 2 labels"):
        accuracy_entry([1, 2, 3], [1, 2], "loihi2", "lava")


def test_confusion_and_class_accuracy_match_scikit_learn():
    from sklearn.metrics import confusion_matrix, recall_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 500)
    p = np.where(rng.random(500) < 0.8, y, rng.integers(0, 10, 500))
    np.testing.assert_array_equal(figures.confusion_counts(p, y, 10), confusion_matrix(y, p, labels=range(10)))
    np.testing.assert_allclose(figures.class_accuracy(p, y, 10), recall_score(y, p, labels=range(10), average=None))
    assert np.isnan(figures.class_accuracy([0, 0], [0, 0], 3)[1:]).all()  # classes without samples


def test_summary_of_a_report_written_before_the_schema():
    old = {"accuracy": {"float": {"accuracy": 0.9, "samples": 100}, "loihi2 / intsim": {"accuracy": 0.8, "samples": 100},
                        "loihi2 / lava": {"accuracy": 0.7, "samples": 20}},
           "equivalence": {"loihi2": [{"backend": "intsim", "reference": "float", "spike_agreement": 0.99,
                                       "classification_agreement": 0.98}]},
           "energy": {"targets": {"loihi2": {"table": "loihi2", "totals_pJ": {"per-term": 1000.0}, "n_samples": 100}}},
           "mapping": {"loihi2": {"cores": 2}}}
    rows = {r["label"]: r for r in summarize(old)}
    assert rows["loihi2 / intsim"]["target"] == "loihi2" and rows["loihi2 / intsim"]["backend"] == "intsim"
    assert rows["loihi2 / intsim"]["spike_agreement_vs_float"] == 0.99 and rows["loihi2 / intsim"]["cores"] == 2
    assert rows["loihi2 / intsim"]["energy"]["totals_pJ"] == {"per-term": 1000.0}
    assert rows["loihi2 / lava"]["energy"] is None  # not priced in that run: not borrowed from intsim
    assert rows["loihi2 / lava"]["samples"] == 20 and rows["loihi2 / lava"]["samples_most"] == 100
    assert rows["float"]["target"] is None and rows["float"]["spike_agreement_vs_float"] is None


def test_train_only_run_renders_and_errors_are_one_line(tmp_path, capsys):
    from tsslc.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"seed": 0, "dataset": "digits", "final_test_acc": 0.5,
                                                  "epochs": [{"epoch": 1, "train_acc": 0.4, "test_acc": 0.5,
                                                              "train_loss": 1.0, "test_loss": 0.9, "seconds": 1.0}]}))
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert 'id="summary"' in page and "final test accuracy" in page and "50.00 %" in page
    assert "Figure 1.</b> Training curve" in page
    # never overwrite an input
    assert main(["report", str(run), "-o", str(run / "metrics.json")]) == 1
    assert "an input of this command" in capsys.readouterr().err
    # a report from a newer tsslc, broken JSON, a run and --compare at once
    (run / "report.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(TsslcError, match="newer than this tsslc reads"):
        load_run(run)
    (run / "report.json").write_text("{")
    assert main(["report", str(run)]) == 1
    assert main(["report", str(run), "--compare", str(run), str(run)]) == 1
    assert main(["report"]) == 1
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "not both" in err and "needs a run folder" in err and "Traceback" not in err
