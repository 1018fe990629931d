"""The public Python API of tsslc (re-exported at the package top level: ``tsslc.load`` …).

One convention everywhere: tensors over time are **time first**, ``(T, B, *shape)`` —
inputs to :func:`simulate` and :func:`verify`, the event arrays :func:`load_data` returns, the
spikes that come back. A static input (an image shown at every step) may be given as
``(B, *shape)``. Shapes never hold batch or time (:mod:`tsslc.ir.layout`).

The pipeline, each step one call::

    import tsslc
    result = tsslc.train("examples/digits.yaml", out="runs/digits")   # TSSL-BP
    graph = tsslc.export(result)                                       # float IR
    chip = tsslc.compile(graph, "loihi2")                              # quantize + map
    x, y = tsslc.load_data("digits", split="test")
    run = tsslc.simulate(chip, x, backend="intsim")                    # spikes + counters
    print((run.predictions() == y).mean())
    report = tsslc.verify(graph, chip, x, y)                           # layer by layer
    print(tsslc.energy(run, "loihi2"))                                 # priced counts

The command line (``tsslc …``) is a thin layer over these functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tsslc.errors import TsslcError

__all__ = ["TrainResult", "EquivalenceReport", "EnergyReport", "load", "save", "train", "export", "compile",
           "simulate", "verify", "energy", "load_data", "BACKENDS", "TARGETS"]

#: back end names :func:`simulate` takes
BACKENDS = ("float", "intsim", "lava")
#: target names :func:`compile` takes
TARGETS = ("loihi2", "truenorth")


# --- files ------------------------------------------------------------------------------------


def load(path):
    """The graph in a tsslc model file (float or compiled; :mod:`tsslc.ir.io`). Loading never
    executes code from the file; anything wrong is one :class:`TsslcError` naming the file."""
    from tsslc.ir import io

    return io.load(path)


def _graph(graph, what: str):
    """``graph`` itself when it is a :class:`~tsslc.ir.graph.Graph`, else one error."""
    from tsslc.ir.graph import Graph

    if not isinstance(graph, Graph):
        raise TsslcError(f"{what}: expected a Graph (tsslc.load(path), tsslc.export(...)), got {type(graph).__name__}")
    return graph


def save(graph, path) -> Path:
    """Write ``graph`` to the model file ``path`` atomically (HDF5); returns the path."""
    from tsslc.ir import io

    return io.save(graph, path)


# --- train and export --------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained network (a torch module; its forward takes
    static ``(B, *shape)`` input), the metrics (``metrics.json``'s document), the checkpoint
    file and the run folder."""

    network: Any
    metrics: dict
    checkpoint: Path
    out: Path

    @property
    def test_accuracy(self) -> float | None:
        return self.metrics.get("final_test_acc")


def train(config, *, out=None, data_dir=None, epochs: int | None = None, seed: int = 0, device: str = "auto",
          resume: bool = False, progress: bool = True, datasets=None, eval_samples: int | None = None,
          overwrite: bool = False) -> TrainResult:
    """Train a network with TSSL-BP (or the config's ``rule``) from a YAML config path, the
    name of a bundled example config (``"digits"``, ``"mnist_cnn"``, … :mod:`tsslc.examples`),
    the config's mapping (a dict as the YAML reads) or a parsed :class:`~tsslc.config.NetworkConfig`; a run folder ``out`` (default
    ``runs/<config name>``) receives config.yaml, metrics.json and a checkpoint per epoch.
    ``datasets`` = ``(train_set, test_set)`` replaces the config's data set; ``eval_samples``
    evaluates each epoch on that many test samples drawn from every class (default: all).
    An epoch whose output layer stays silent or whose loss does not move is reported
    (``metrics["warnings"]``, :mod:`tsslc.training.health`). A folder already holding a run
    is refused unless ``resume`` (continue it) or ``overwrite`` (replace it)."""
    from tsslc.config import NetworkConfig, parse_config
    from tsslc.training.checkpoint import load_checkpoint
    from tsslc.training.run import CHECKPOINT, train_run

    if isinstance(config, dict):  # the parsed YAML mapping itself
        config = parse_config(config, "<config>")
    elif not isinstance(config, (NetworkConfig, str, Path)):
        raise TsslcError(f"train: config must be a YAML path, a bundled config's name, a mapping or a NetworkConfig, "
                         f"got {type(config).__name__}")
    if out is None:
        stem = Path(config.source).stem if isinstance(config, NetworkConfig) else Path(str(config)).stem
        out = Path("runs") / (stem if stem and not stem.startswith("<") else "run")
    out = Path(out)
    metrics = train_run(config, out, data_dir=data_dir, epochs=epochs, seed=seed, device=device, resume=resume,
                        progress=progress, datasets=datasets, eval_samples=eval_samples, overwrite=overwrite)
    net, _, _ = load_checkpoint(out / CHECKPOINT)
    return TrainResult(net, metrics, out / CHECKPOINT, out)


def export(source):
    """The float IR graph of a trained network: a :class:`TrainResult`, a
    :class:`~tsslc.network.Network`, a checkpoint file or a run folder holding one. The
    graph's metadata records the epoch and test accuracy when the source has them."""
    from tsslc.ir.export import graph_from_network
    from tsslc.network import Network
    from tsslc.training.checkpoint import load_checkpoint
    from tsslc.training.run import CHECKPOINT

    ckpt = None
    if isinstance(source, TrainResult):
        source = source.checkpoint
    if isinstance(source, Network):
        net = source
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            path = path / CHECKPOINT
        net, _, ckpt = load_checkpoint(path)
    else:
        raise TsslcError(f"export takes a TrainResult, a Network, a checkpoint or a run folder, got {type(source).__name__}")
    graph = graph_from_network(net)
    if ckpt is not None:
        graph.metadata["epoch"] = int(ckpt["epoch"])
        metrics = ckpt.get("metrics") or []
        acc = metrics[-1].get("test_acc") if metrics and isinstance(metrics[-1], dict) else None
        if isinstance(acc, (int, float)) and not isinstance(acc, bool):
            graph.metadata["test_acc"] = float(acc)
    return graph


# --- compile --------------------------------------------------------------------------------


def compile(graph, target: str, calibration=None, *, rounding: str = "gptq", variant: str | None = None,
            data_dir=None, samples: int = 256, seed: int = 0):
    """Quantize and map a float ``graph`` for ``target`` (``"loihi2"`` | ``"truenorth"``):
    dropout dropped and pooling folded (:mod:`tsslc.passes.structural`), calibrated and
    quantized (:mod:`tsslc.targets.quantize`, ``rounding`` ``"gptq"`` | ``"nearest"``),
    mapped onto cores (:mod:`tsslc.targets.mapping`). ``calibration``: input in
    :func:`simulate`'s layout; by default ``samples`` training samples of the graph's data
    set (:func:`load_data`). ``variant``: one of the target's quantizer variants (loihi2:
    ``"netx"``, every Dense weight exponent 0 so that :func:`tsslc.backends.netx.export`'s
    file runs exactly as intsim). Returns a new graph; ``graph`` is not changed."""
    from tsslc.ir.layout import check_input
    from tsslc.passes.structural import drop_dropout, fold_pooling
    from tsslc.targets import get_target
    from tsslc.targets.mapping import attach

    _graph(graph, "compile")
    if graph.metadata.get("target"):
        raise TsslcError(f"the graph is already compiled for {graph.metadata['target']}; give the float model")
    tgt = get_target(target).variant(variant)
    if calibration is None:
        calibration, _ = load_data(graph.metadata.get("dataset") or "digits", split="train", samples=samples,
                                   data_dir=data_dir, n_steps=graph.metadata.get("n_steps"), seed=seed,
                                   options=graph.metadata.get("data"))
    else:
        calibration = check_input(calibration, "calibration")
    check_run_bytes(graph, calibration)
    prepared = fold_pooling(drop_dropout(graph))
    return attach(tgt.quantize(prepared, calibration, rounding=rounding), tgt)


# --- simulate and verify ----------------------------------------------------------------------


def simulate(graph, x, backend: str | None = None, *, n_steps: int | None = None, batch_size: int | None = None,
             device: str = "cpu", progress: bool = False, counters: bool = True, **options):
    """Run ``graph`` on input ``x`` (static ``(B, *shape)`` or time-first ``(T, B, *shape)``)
    on a back end: ``"float"`` (the reference interpreter; float graphs), ``"intsim"`` (the
    bit-accurate integer simulator; compiled graphs) or ``"lava"`` (Lava processes; graphs
    compiled for loihi2; ``select_tag="fixed_pt"|"floating_pt"``). Default: float for a
    float graph, intsim for a compiled one. Returns a
    :class:`~tsslc.backends.BackendResult`: ``spikes`` {population: (T, B, *shape) uint8},
    ``counters``, ``predictions()``."""
    from tsslc import validate
    from tsslc.backends import get_backend
    from tsslc.ir.layout import check_input

    compiled = bool(_graph(graph, "simulate").metadata.get("target"))
    name = backend or ("intsim" if compiled else "float")
    fn = get_backend(name)
    x = check_input(x)
    if batch_size is not None:
        batch_size = validate.number("simulate", "batch_size", batch_size, int, positive=True)
    validate.device("simulate: device", device)
    check_run_bytes(graph, x, n_steps, batch_size if name == "intsim" else None, value_bytes=4 if name == "float" else 8)
    if name == "float":
        if compiled:
            raise TsslcError("the float back end runs float graphs; this one is compiled (use intsim or lava)")
        return fn(graph, x, n_steps, progress=progress, device=device, counters=counters, **options)
    if not compiled:
        raise TsslcError(f"the {name} back end runs compiled graphs; compile the model first (tsslc.compile)")
    if name == "intsim":
        return fn(graph, x, n_steps, progress=progress, device=device, batch_size=batch_size, counters=counters,
                  **options)
    return fn(graph, x, n_steps, progress=progress, counters=counters, **options)


def check_run_bytes(graph, x, n_steps: int | None = None, batch_size: int | None = None, value_bytes: int = 4) -> None:
    """Refuse a run whose estimated memory is past the cap (:func:`tsslc.validate.check_bytes`)
    before it allocates: the spikes kept for every population (T·B·neurons bytes) and every
    node's outputs for one batch (``value_bytes`` · T · batch · values: float32 for the float
    interpreter and calibration, int64 for intsim; the whole input is one batch unless
    ``batch_size``)."""
    from tsslc import validate
    from tsslc.ir.nodes import LIF, IntLIF

    shapes = graph.validate()
    T = n_steps if n_steps is not None else graph.metadata.get("n_steps")
    if isinstance(T, bool) or not isinstance(T, int) or not hasattr(x, "shape"):
        return  # the back end reports a missing n_steps
    validate.steps("the run", "n_steps", T)
    in_rank = len(shapes[graph.input_name])
    B = int(x.shape[1] if len(x.shape) == in_rank + 2 else x.shape[0]) if len(x.shape) > in_rank else 1
    b = min(int(batch_size), B) if batch_size else B
    neurons = sum(validate.shape_bytes(s, 1) for s in shapes.values())
    pops = sum(validate.shape_bytes(shapes[n], 1) for n in graph.of_type((LIF, IntLIF)))
    validate.check_bytes(T * B * pops + value_bytes * T * b * neurons,
                         f"running {B} samples x {T} steps through {neurons:,} neurons (batch {b})")


@dataclass
class EquivalenceReport:
    """What :func:`verify` returns: per back end its accuracy, counters and run info; the
    layer-by-layer comparisons (float vs each back end, intsim vs lava); the compiled
    graph's quantization report. ``to_dict()`` is ``tsslc verify --json``'s document."""

    target: str
    samples: int
    n_steps: int
    dataset: str | None
    backends: dict
    comparisons: list
    quantization: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict, repr=False)  # back end -> BackendResult

    def comparison(self, backend: str, reference: str = "float") -> dict:
        for c in self.comparisons:
            if c["backend"] == backend and c["reference"] == reference:
                return c
        raise TsslcError(f"no comparison of {backend} against {reference} (have: "
                         f"{', '.join(c['backend'] + ' vs ' + c['reference'] for c in self.comparisons)})")

    def to_dict(self) -> dict:
        return {"target": self.target, "dataset": self.dataset, "samples": self.samples, "n_steps": self.n_steps,
                "backends": self.backends, "comparisons": self.comparisons, "quantization": self.quantization}

    def lines(self) -> list[str]:
        out = [f"{self.target}: {self.samples} samples"]
        for b, r in self.backends.items():
            out.append(f"  {b:<8} accuracy {100 * r['accuracy']:.2f} %" if r["accuracy"] is not None else f"  {b}")
        for c in self.comparisons:
            fd = c["first_divergence"]
            where = "none" if fd is None else f"layer {fd['layer']}, step {fd['step']}, neuron {fd['neuron']}"
            out.append(f"  {c['backend']} vs {c['reference']}: {100 * c['spike_agreement']:.4f} % of spikes equal, "
                       f"{100 * c['classification_agreement']:.2f} % same class; first divergence: {where}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def verify(float_graph, compiled_graph, x, y=None, *, backends: Sequence[str] = ("intsim",), batch_size: int = 256,
           progress: bool = False) -> EquivalenceReport:
    """Run the float graph (the reference) and the compiled graph on each of ``backends``
    (``"intsim"``, ``"lava"``) on the same input ``x`` and compare their spikes population
    by population on the (step, sample, neuron) grid; with labels ``y`` also accuracies."""
    from tsslc.equivalence import compare
    from tsslc.ir.layout import batch_size as batch_of, check_input

    if _graph(float_graph, "verify").metadata.get("target"):
        raise TsslcError("verify: the first graph must be the float model (it is the reference)")
    _graph(compiled_graph, "verify")
    if not compiled_graph.metadata.get("target"):
        raise TsslcError("verify: the second graph must be compiled (tsslc.compile)")
    if isinstance(backends, str):  # one back end named alone
        backends = (backends,)
    names = [b for b in dict.fromkeys(backends) if b != "float"]
    for b in names:
        if b not in BACKENDS:
            raise TsslcError(f"unknown back end {b!r} (known: {', '.join(BACKENDS)})")
    x = check_input(x)
    if y is not None:
        yy = np.asarray(y)
        rank = len(float_graph[float_graph.input_name].shape)
        n = batch_of(float_graph, x) if getattr(x, "ndim", 0) in (rank + 1, rank + 2) else None
        if yy.ndim != 1 or yy.dtype.kind not in "iu" or (n is not None and len(yy) != n):
            raise TsslcError(f"verify: y must be integer labels, one per sample ({n}), got {yy.dtype} of shape "
                             f"{yy.shape}")
    results = {"float": simulate(float_graph, x, "float", progress=progress)}
    for b in names:
        results[b] = simulate(compiled_graph, x, b, batch_size=batch_size, progress=progress)
    yy = None if y is None else np.asarray(y)

    def acc(r):
        return None if yy is None else float((r.predictions() == yy).mean())

    comparisons = [compare(results["float"], results[b], yy, "float", b) for b in names]
    if "intsim" in results and "lava" in results:
        comparisons.append(compare(results["intsim"], results["lava"], yy, "intsim", "lava"))
    return EquivalenceReport(
        target=compiled_graph.metadata["target"], samples=int(results["float"].output_spikes.shape[1]),
        n_steps=int(results["float"].output_spikes.shape[0]), dataset=float_graph.metadata.get("dataset"),
        backends={b: {"accuracy": acc(r), "counters": r.counters.to_dict() if r.counters else None, "info": r.info}
                  for b, r in results.items()},
        comparisons=comparisons, quantization=compiled_graph.metadata.get("quantization", {}), results=results)


# --- energy -----------------------------------------------------------------------------------


@dataclass
class EnergyReport:
    """Energy per sample of a run on a target, priced from the target's sourced table
    (:mod:`tsslc.report.energy`): one line per figure (count per sample × price, with its
    source, scope and grade), a total per scope (per-term figures add up; an all-in
    figure stands alone — never summed across scopes) and pJ per layer."""

    target: str
    totals_pJ: dict
    lines: list
    per_layer_pJ: dict
    n_samples: int
    note: str = ""

    def to_dict(self) -> dict:
        return {"target": self.target, "totals_pJ": self.totals_pJ, "lines": self.lines,
                "per_layer_pJ": self.per_layer_pJ, "n_samples": self.n_samples, "note": self.note}

    def __str__(self) -> str:
        from tsslc.report.energy import format_table

        return format_table({"targets": {self.target: {"table": self.target, **self.to_dict()}}})


def energy(result, target: str | None = None) -> EnergyReport:
    """Price a back-end result's counters (``result``: a BackendResult, or its Counters) with
    ``target``'s energy table (default: the target the result's graph was compiled for)."""
    from tsslc.backends.counters import Counters
    from tsslc.report.energy import price
    from tsslc.targets import get_target

    counters = result if isinstance(result, Counters) else getattr(result, "counters", None)
    if counters is None:
        raise TsslcError("energy needs a result with counters (simulate(..., counters=True))")
    name = target or getattr(result, "target", "")
    if not name:
        raise TsslcError("energy: name the target whose table prices the counts (loihi2, truenorth)")
    table = get_target(name).energy
    p = price(counters, table)
    return EnergyReport(table.target, p["totals_pJ"], p["lines"], p["per_layer_pJ"], p["n_samples"], p["note"])


# --- data --------------------------------------------------------------------------------------


def load_data(dataset: str = "digits", split: str = "test", samples: int | None = None, *, data_dir=None,
         n_steps: int | None = None, seed: int = 0, options: dict | None = None):
    """``(x, y)`` numpy arrays of a data set's split in :func:`simulate`'s layout: static
    images ``(B, *shape)`` float32, event data time first ``(T, B, *shape)``; labels int64.
    ``samples`` takes that many, drawn evenly from every class with ``seed``
    (:func:`tsslc.data.stratified_indices`), default all. Data sets other than the embedded
    digits read their files from ``data_dir``. ``options``: how the model's training read
    the data (a model's ``metadata["data"]``: recipe, N-MNIST binning)."""
    from tsslc.data import arrays

    return arrays(dataset, split=split, samples=samples, data_dir=data_dir, n_steps=n_steps, seed=seed,
                  options=options)
