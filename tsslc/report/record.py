"""What a run's ``report.json`` holds, and how it is read back.

The file's layout is documented as a JSON Schema, ``report.schema.json`` beside this module
(:data:`SCHEMA_PATH`); ``schema_version`` names its version (:data:`SCHEMA_VERSION`). The
parts every page starts from:

* ``run`` — metadata (:func:`run_metadata`): tsslc version, git commit of the checkout if
  there is one, date, config, seed, data set, sample counts, settings, threads;
* ``accuracy`` — one entry per (target, back end) run (:func:`accuracy_entry`): its
  predictions and the labels it was scored on, so that confusion matrices and per-class
  accuracy can be drawn and two runs compared sample by sample;
* ``summary`` — one row per run (:func:`summarize`): accuracy, spike agreement with the
  float model, energy per sample with its scope, cores. Derived from the other parts, so
  :func:`summarize` also works on a report.json written before the summary existed.

:func:`load_run` reads a run folder (metrics.json, report.json) with one-line errors.
"""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
from pathlib import Path

from tsslc.errors import TsslcError

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
REPORT_JSON = "report.json"
METRICS_JSON = "metrics.json"


def git_commit(root: str | Path | None = None) -> dict | None:
    """{"commit": sha, "dirty": bool} of the tsslc checkout this code runs from (``root``
    defaults to the folder above the package); None when that is not a tsslc git checkout
    (an installed wheel, no git, any git error)."""
    if root is None:
        root = Path(__file__).resolve().parents[2]
    root = Path(root)
    pyproject = root / "pyproject.toml"
    try:
        if not pyproject.is_file() or 'name = "tsslc"' not in pyproject.read_text():
            return None  # installed, not a checkout: a git repository around it is someone else's
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return None
    if len(sha) != 40:
        return None
    return {"commit": sha, "dirty": dirty}


def run_metadata(*, config: str | Path | None = None, metrics: dict | None = None, dataset: str | None = None,
                 network: str | None = None, samples: dict | None = None, settings: dict | None = None,
                 date: _dt.datetime | None = None) -> dict:
    """The ``run`` part of report.json. ``metrics``: the run's metrics.json (seed, rule,
    device, data set); ``samples``: {"train", "test", "calibration", ...} counts of the data
    the stages used; ``settings``: the options the run was made with (e.g. epochs)."""
    import torch

    import tsslc

    metrics = metrics or {}
    config_text = None
    if config is not None and Path(config).is_file():
        config_text = Path(config).read_text()
        root = Path(__file__).resolve().parents[2]
        try:  # a config of the checkout: its path in the repository, the same on every machine
            config = Path(config).resolve().relative_to(root)
        except ValueError:
            pass
    return {
        "tsslc_version": tsslc.__version__,
        "git": git_commit(),
        "date": (date or _dt.datetime.now(_dt.timezone.utc)).isoformat(timespec="seconds"),
        "config": None if config is None else str(config),
        "config_text": config_text,
        "seed": metrics.get("seed"),
        "rule": metrics.get("rule"),
        "device": metrics.get("device"),
        "dataset": dataset or metrics.get("dataset"),
        "network": network,
        "samples": dict(samples or {}),
        "settings": dict(settings or {}),
        "threads": torch.get_num_threads(),
    }


def accuracy_entry(predictions, labels, target: str | None, backend: str) -> dict:
    """One run's accuracy with what it was computed from (predicted class per sample, the
    labels of those samples)."""
    import numpy as np

    p = np.asarray(predictions).astype(int).ravel()
    y = np.asarray(labels).astype(int).ravel()
    if p.shape != y.shape:
        raise TsslcError(f"{target or ''}/{backend}: {p.size} predictions for {y.size} labels")
    return {"target": target, "backend": backend, "accuracy": float((p == y).mean()) if y.size else 0.0,
            "samples": int(y.size), "predictions": p.tolist(), "labels": y.tolist()}


def _target_backend(label: str, entry: dict) -> tuple[str | None, str]:
    if "backend" in entry:
        return entry.get("target"), entry["backend"]
    if " / " in label:  # report.json before schema 1: "loihi2 / intsim"
        t, b = label.split(" / ", 1)
        return t, b
    return None, label


def _comparison(data: dict, target: str | None, backend: str, reference: str = "float") -> dict | None:
    for c in (data.get("equivalence") or {}).get(target, []) if target else []:
        if c.get("backend") == backend and c.get("reference") == reference:
            return c
    return None


def _energy(data: dict, label: str, target: str | None, backend: str) -> dict | None:
    en = data.get("energy") or {}
    r = (en.get("runs") or {}).get(label)
    if r is None and backend == "intsim" and target in (en.get("targets") or {}):
        r = en["targets"][target]  # before schema 1: intsim's counts were the ones priced
    if r is None:
        return None
    return {"table": r.get("table", target), "totals_pJ": dict(r["totals_pJ"]), "stand_in": r.get("stand_in", ""),
            "samples": r.get("n_samples")}


def summarize(data: dict) -> list[dict]:
    """One row per run of ``data["accuracy"]``: target, back end, samples (and the most any
    run used), accuracy, spike and class agreement with the float model (None for the float
    model itself), energy per sample per scope, cores."""
    acc = data.get("accuracy") or {}
    most = max([e.get("samples") or 0 for e in acc.values() if isinstance(e, dict)] + [0])
    rows = []
    for label, e in acc.items():
        if not isinstance(e, dict):
            e = {"accuracy": e}
        target, backend = _target_backend(label, e)
        c = _comparison(data, target, backend)
        mapping = (data.get("mapping") or {}).get(target) or {}
        rows.append({
            "label": label, "target": target, "backend": backend,
            "samples": e.get("samples"), "samples_most": most,
            "accuracy": e["accuracy"],
            "spike_agreement_vs_float": None if c is None else c["spike_agreement"],
            "class_agreement_vs_float": None if c is None else c.get("classification_agreement"),
            "energy": _energy(data, label, target, backend),
            "cores": mapping.get("cores"),
        })
    return rows


def finish(data: dict) -> dict:
    """``data`` with ``schema_version`` and ``summary`` set (the summary from the rest)."""
    data["schema_version"] = SCHEMA_VERSION
    data["summary"] = summarize(data)
    return data


def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TsslcError(f"{path}: not valid JSON ({e}); re-create it (tsslc demo / tsslc train)") from None
    if not isinstance(d, dict):
        raise TsslcError(f"{path}: expected a JSON object, found {type(d).__name__}")
    return d


def _check_metrics(metrics: dict, path: Path) -> None:
    """The values of metrics.json the report reads: ``epochs`` a list of objects whose numbers
    are finite (or null), ``final_test_acc`` in [0, 1] (a null one is dropped: the last epoch's
    figure is used), ``train_seconds`` >= 0."""
    from tsslc import validate

    epochs = metrics.get("epochs", [])
    if not isinstance(epochs, list) or not all(isinstance(e, dict) for e in epochs):
        raise TsslcError(f"{path}: 'epochs' must be a list of per-epoch objects")
    for i, e in enumerate(epochs):
        for key, v in e.items():
            if v is not None and not isinstance(v, (str, dict, list)):
                validate.number(f"{path}: epochs[{i}]", key, v)
    for key, hi in (("final_test_acc", 1), ("train_seconds", None)):
        if key in metrics:
            if metrics[key] is None:
                del metrics[key]
            else:
                validate.number(str(path), key, metrics[key], nonneg=True, hi=hi)


def load_run(run_dir) -> tuple[dict | None, dict]:
    """(metrics.json or None, report.json or {}) of a run folder; one-line errors for a
    missing folder, an empty one, unreadable JSON or a report from a newer tsslc."""
    run = Path(run_dir)
    if not run.is_dir():
        raise TsslcError(f"run folder not found: {run}")
    metrics = _read_json(run / METRICS_JSON)
    if metrics is not None:
        _check_metrics(metrics, run / METRICS_JSON)
    data = _read_json(run / REPORT_JSON) or {}
    if metrics is None and not data:
        raise TsslcError(f"{run}: nothing to report (no {METRICS_JSON} or {REPORT_JSON}); "
                         "run 'tsslc train' or 'tsslc demo' first")
    v = data.get("schema_version", 0)
    if not isinstance(v, int) or v > SCHEMA_VERSION:
        raise TsslcError(f"{run / REPORT_JSON}: schema_version {v!r} is newer than this tsslc reads "
                         f"({SCHEMA_VERSION}); update tsslc")
    for key in ("accuracy", "equivalence", "energy", "mapping", "quantization", "counters", "finetune", "run"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise TsslcError(f"{run / REPORT_JSON}: '{key}' must be an object, found {type(data[key]).__name__}")
    return metrics, data
