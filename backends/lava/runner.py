"""Run a loihi2-compiled graph on Lava: a whole batch in one Lava run (the simulation back end).

The network is :func:`tsslc.backends.lava.lowering.build_network`'s (standard ``lava.proc``
processes); this module attaches the input (a ``io.source.RingBuffer``) and, to each
population, tsslc's memory-mapped :class:`~tsslc.backends.lava.sink.SpikeSink` — only here,
never in the network a user gets. The samples of the batch are laid end to end in time,
``n_steps`` Lava steps each; every population is a ``LIFReset`` whose reset offset is
staggered by its synaptic depth, and the run lasts ``B·n_steps + depth`` steps so the
deepest layer finishes the last sample. Spikes are read from the sinks and shifted back by
each population's depth, so they sit on the float model's time axis ``(T, B, *shape)``,
the axis of the integer simulator.

Lava processes are OS processes: they are stopped in ``finally``, also on errors and
Ctrl-C.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
import tempfile
import time

import numpy as np
import torch
from tqdm import tqdm

from tsslc.backends import BackendResult
from tsslc.backends.counters import count_run
from tsslc import interrupts
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.interpreter import n_steps_of
from tsslc.ir.layout import time_input
from tsslc.lava_compat import import_lava
from tsslc.targets import get_target

import_lava()

from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402

from tsslc.backends.lava.lowering import LavaNetwork, build_network, check_runnable, lava_shape, from_lava_layout  # noqa: E402
from tsslc.backends.lava.sink import PySpikeSinkModelFixed, PySpikeSinkModelFloat, SpikeSink  # noqa: E402
from tsslc.backends.lava.sink import create_record, read_record  # noqa: E402

SINK_MODELS = {"fixed_pt": PySpikeSinkModelFixed, "floating_pt": PySpikeSinkModelFloat}

#: progress-bar / run-call granularity: about this many Lava run() calls per batch
N_CHUNKS = 20
#: ... and at most this many steps per run() call (a Ctrl-C waits for the current call)
MAX_CHUNK_STEPS = 500


def input_payloads(graph: Graph, x, n_steps: int, select_tag: str) -> np.ndarray:
    """The source's payloads, time-first ``(T, B, *shape)``: the target's integer input
    spikes for ``fixed_pt``; for ``floating_pt`` the same values before rounding (x·scale
    for graded input, 0/1 for binary)."""
    node = graph[graph.input_name]
    if not isinstance(node, N.IntInput):
        raise TsslcError(f"input '{graph.input_name}' is not an integer input; compile the model for loihi2 first")
    raw = time_input(graph, x, n_steps)
    if select_tag == "fixed_pt":
        return get_target("loihi2").input_spikes(node, raw).cpu().numpy()
    raw = raw.to(dtype=torch.float64).cpu().numpy()
    if node.encoding == "binary":
        return (raw != 0).astype(np.float64)
    return raw * float(node.scale)


@dataclass
class Lowered:
    """What a simulation runs: the standard network, its source and one SpikeSink per
    population (``sinks``: population -> (sink, path of its record file))."""

    network: LavaNetwork
    sinks: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)  # process instance -> process model class

    @property
    def source(self):
        return self.network.source

    @property
    def select_tag(self) -> str:
        return self.network.select_tag

    @property
    def populations(self):
        return self.network.populations

    @property
    def depth(self) -> int:
        return self.network.depth

    @property
    def n_processes(self) -> int:
        return len(self.models)

    def record(self, name: str) -> str:
        return self.sinks[name][1]


def lower(graph: Graph, payloads: np.ndarray, period: int, record_dir: str, select_tag: str = "fixed_pt") -> Lowered:
    """The simulation of ``graph``: :func:`build_network` with samples back to back
    (``period`` steps each), a RingBuffer source replaying ``payloads`` (time-first
    ``(T, B, *input shape)``, integer for fixed_pt) and a SpikeSink per population recording
    into ``record_dir/<i>.npy``, which the caller creates (:func:`create_record`) before
    running."""
    net = build_network(graph, select_tag, reset_interval=period)
    net.attach_source(net.source_data(payloads, period))
    lowered = Lowered(net, models=dict(net.models))
    for i, (name, pop) in enumerate(net.populations.items()):
        path = os.path.join(record_dir, f"{i}.npy")
        sink = SpikeSink(shape=tuple(pop.out.shape), path=path, name=f"{name}.sink")
        pop.out.connect(sink.a_in)
        lowered.sinks[name] = (sink, path)
        lowered.models[sink] = SINK_MODELS[select_tag]
    return lowered


def run(compiled_graph: Graph, x, n_steps: int | None = None, select_tag: str = "fixed_pt",
        progress: bool = False, counters: bool = True) -> BackendResult:
    """Run ``compiled_graph`` (target loihi2) on Lava for the batch ``x`` (static
    ``(B, *shape)`` or time-first ``(T, B, *shape)``, raw floats as the float model sees them).

    Returns every IntLIF's spikes as uint8 ``(T, B, *shape)`` on the float model's time
    axis, the counters of :func:`tsslc.backends.counters.count_run` (``counters=False``:
    none) and ``info["lava"]`` (select_tag, Lava steps, processes, depth, seconds to build,
    run, read).
    """
    graph = compiled_graph
    check_runnable(graph, select_tag)
    T = n_steps_of(graph, n_steps)
    graph.validate()
    payloads = input_payloads(graph, x, T, select_tag)
    B = int(payloads.shape[1])
    if B < 1:
        raise TsslcError("the batch is empty")

    try:
        workdir = tempfile.mkdtemp(prefix="tsslc-lava-")
    except OSError as e:
        raise TsslcError(f"cannot create a folder for Lava's spike records in {tempfile.gettempdir()}: "
                         f"{e.strerror or e}") from None
    lowered: Lowered | None = None
    timing = {}
    try:
        t0 = time.perf_counter()
        lowered = lower(graph, payloads, T, workdir, select_tag)
        depth = lowered.depth
        n_rows = B * T + depth  # the deepest layer finishes the last sample at this step
        for name, pop in lowered.populations.items():
            try:
                create_record(lowered.record(name), n_rows, lava_shape(pop.ir_shape))
            except OSError as e:  # a full temp folder
                raise TsslcError(f"cannot create Lava's spike record {lowered.record(name)}: {e.strerror or e}") \
                    from None
        timing["build_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        execute(lowered, n_rows, T, B, progress)
        timing["run_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        spikes = {name: aligned(read_record(lowered.record(name)), pop.depth, T, B, pop.ir_shape)
                  for name, pop in lowered.populations.items()}
        timing["read_s"] = time.perf_counter() - t0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    info = {"lava": {"select_tag": select_tag, "lava_steps": n_rows, "processes": lowered.n_processes,
                     "depth": depth, **{k: round(v, 6) for k, v in timing.items()}}}
    c = count_run(graph, spikes, x, n_steps=T) if counters else None
    return BackendResult(spikes, c, graph.output_population, "lava", info, target="loihi2")


def _start(lowered: Lowered) -> None:
    """Compile and spawn the Lava processes with Ctrl-C held (:func:`tsslc.interrupts.held`); a Ctrl-C during the
    start-up is raised as KeyboardInterrupt once the processes exist, so that
    :func:`execute` stops them (it used to be ignored, and the run went on to the end)."""
    cfg = Loihi2SimCfg(select_tag=lowered.select_tag, exception_proc_model_map=dict(lowered.models))
    # the processes are forked under the holding handler and keep it: a Ctrl-C in the terminal
    # (sent to the whole process group) is a no-op in them, and this process, which noted it,
    # stops them all (a process model killed by KeyboardInterrupt mid-step would leave Lava's
    # runtime waiting forever)
    with interrupts.held():
        lowered.source.create_runtime(run_cfg=cfg)


def execute(lowered: Lowered, n_rows: int, T: int, B: int, progress: bool = False) -> None:
    """Run ``lowered`` for ``n_rows`` steps (B samples of T steps, then the pipeline's
    depth); every Lava process is stopped afterwards, also on errors and Ctrl-C."""
    try:
        _run(lowered, n_rows, T, B, lowered.depth, progress)
        _stop(lowered)
    except BaseException:
        _abort(lowered)
        raise


def _run(lowered: Lowered, n_rows: int, T: int, B: int, depth: int, progress: bool) -> None:
    """Run all steps in short run() calls: the progress bar moves between them, and a
    pending Ctrl-C is raised at the latest when the current call returns."""
    _start(lowered)
    per_chunk = max(1, min(math.ceil(B / N_CHUNKS), max(1, MAX_CHUNK_STEPS // T))) * T
    done = 0
    with tqdm(total=B, unit="sample", desc=f"lava {lowered.select_tag}", disable=not progress, leave=False) as bar:
        while done < n_rows:
            steps = min(per_chunk, n_rows - done)
            try:
                lowered.source.run(condition=RunSteps(num_steps=steps))
            except RuntimeError as e:  # Lava's report that a process model raised
                raise _failure(lowered, e) from e
            done += steps
            bar.update(min(B, (done - depth) // T if done > depth else 0) - bar.n)


def _stop(lowered: Lowered) -> None:
    """Stop the run's OS processes after a complete run (a no-op without a runtime)."""
    lowered.source.stop()


def _abort(lowered: Lowered) -> None:
    """Stop the run's OS processes after an error or Ctrl-C. Lava's ``stop()`` waits for
    every process to acknowledge, which never happens when one of them has died (it hangs);
    so the process models and runtime services are terminated first, then ``stop()`` only
    releases the shared memory. (Uses lava-nc 0.10.0's runtime internals.) A second Ctrl-C
    meanwhile is dropped: the first is already on its way up, and stopping must finish."""
    runtime = lowered.source.runtime
    if runtime is None:
        return
    with interrupts.held(replay=False):
        _terminate(lowered, runtime)


def _terminate(lowered: Lowered, runtime) -> None:
    infrastructure = getattr(runtime, "_messaging_infrastructure", None)
    for actor in getattr(infrastructure, "actors", []):
        try:
            if actor.is_alive():
                actor.terminate()
        except ValueError:  # already closed
            pass
    runtime._is_started = False
    runtime._is_running = False
    lowered.source.stop()


def _failure(lowered: Lowered, error: Exception) -> TsslcError:
    """A Lava process raised: name it and its exception (Lava only logs the traceback)."""
    infrastructure = getattr(lowered.source.runtime, "_messaging_infrastructure", None)
    reasons = []
    for actor in getattr(infrastructure, "actors", []):
        exc = actor.exception
        if exc:
            reasons.append(f"{type(exc[0]).__name__}: {exc[0]}")
    detail = "; ".join(reasons) or str(error)
    return TsslcError(f"a Lava process failed during the run ({detail})")


def aligned(rows: np.ndarray, depth: int, T: int, B: int, ir_shape) -> np.ndarray:
    """Sink rows (n_rows, N) -> (T, B, *ir_shape): sample b's step t is row b·T + t + depth."""
    s = rows[depth:depth + B * T].reshape(B, T, -1).transpose(1, 0, 2)
    return np.ascontiguousarray(from_lava_layout(s, tuple(ir_shape))).astype(np.uint8)
