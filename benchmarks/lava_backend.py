"""Lava back end speed: ms per sample-step on Lava (fixed_pt) beside the integer simulator.

    .venv/bin/python benchmarks/lava_backend.py [--samples 200] [--conv-samples 100]

Both networks are built from configs with seeded, untrained weights (speed does not depend
on training), quantized for loihi2 on digits training images, and run on digits test
images. The baseline is the integer simulator measured in the same run; the script prints
Lava's cost, intsim's, and their ratio, plus what reading the spikes costs: tsslc's
memory-mapped SpikeSink against Lava's own sink RingBuffer read with Var.get().
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on sys.path and the file is called
# lava.py: drop the folder so that `import lava` finds lava-nc.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import tsslc.backends.lava as lava_backend  # noqa: E402
from tsslc.backends import get_backend  # noqa: E402
from tsslc.backends.lava import runner  # noqa: E402
from tsslc.backends.lava.lowering import lava_shape  # noqa: E402
from tsslc.backends.lava.runner import lower  # noqa: E402
from tsslc.backends.lava.sink import create_record  # noqa: E402
from tsslc.config import load_config  # noqa: E402
from tsslc.data.digits import digits_arrays  # noqa: E402
from tsslc.ir.export import graph_from_network  # noqa: E402
from tsslc.network import Network  # noqa: E402
from tsslc.passes.structural import drop_dropout, fold_pooling  # noqa: E402
from tsslc.targets import get_target  # noqa: E402

CNN = load_config(REPO / "examples" / "digits_cnn.yaml")


def compiled(config, calibration):
    torch.manual_seed(0)
    g = fold_pooling(drop_dropout(graph_from_network(Network(config).eval())))
    return get_target("loihi2").quantize(g, calibration)


def bench(name, graph, x):
    T = int(graph.metadata["n_steps"])
    steps = len(x) * T
    t0 = time.perf_counter()
    ref = get_backend("intsim")(graph, x)
    t_int = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = lava_backend.run(graph, x)
    t_lava = time.perf_counter() - t0
    same = all(np.array_equal(res.spikes[k], ref.spikes[k]) for k in ref.spikes)
    lv = res.info["lava"]
    print(f"{name}: {len(x)} samples x T={T}, {lv['processes']} Lava processes, spikes identical to intsim: {same}")
    print(f"  intsim         {1e3 * t_int / steps:8.3f} ms per sample-step")
    print(f"  lava fixed_pt  {1e3 * t_lava / steps:8.3f} ms per sample-step (all in: build {lv['build_s']:.2f} s, "
          f"run {lv['run_s']:.2f} s, read {lv['read_s'] * 1e3:.1f} ms)")
    print(f"  lava run only  {1e3 * lv['run_s'] / lv['lava_steps']:8.3f} ms per Lava step")
    print(f"  ratio lava / intsim: {t_lava / t_int:.1f}x")
    return res


def reading(graph, x):
    """Read the same spikes through Lava's sink RingBuffer with Var.get()."""
    from lava.proc.io.sink import PyReceiveModelFixed
    from lava.proc.io.sink import RingBuffer as LavaSink

    T = int(graph.metadata["n_steps"])
    payloads = runner.input_payloads(graph, x, T, "fixed_pt")
    workdir = tempfile.mkdtemp()
    try:
        lowered = lower(graph, payloads, T, workdir)
        n_rows = len(x) * T + lowered.depth
        sinks = {}
        for name, pop in lowered.populations.items():
            create_record(lowered.record(name), n_rows, lava_shape(pop.ir_shape))
            sink = LavaSink(shape=lava_shape(pop.ir_shape), buffer=n_rows)
            pop.process.s_out.connect(sink.a_in)
            lowered.models[sink] = PyReceiveModelFixed
            sinks[name] = sink
        try:
            runner._run(lowered, n_rows, T, len(x), lowered.depth, False)
            t0 = time.perf_counter()
            got = {k: s.data.get() for k, s in sinks.items()}
            t_get = time.perf_counter() - t0
        finally:
            runner._abort(lowered)
        t0 = time.perf_counter()
        mine = {k: runner.read_record(lowered.record(k)) for k in lowered.populations}
        t_mm = time.perf_counter() - t0
        same = all(np.array_equal(got[k].reshape(-1, n_rows).T.astype(np.uint8), mine[k]) for k in mine)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    n = sum(v.size for v in mine.values())
    print(f"reading {n} spike values ({len(x)} samples): Lava sink + Var.get {t_get:.2f} s "
          f"({1e6 * t_get / n:.1f} us each), SpikeSink file {1e3 * t_mm:.1f} ms; same values: {same}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200, help="digits MLP test samples (default 200)")
    ap.add_argument("--conv-samples", type=int, default=100, help="conv net test samples (default 100)")
    ap.add_argument("--read-samples", type=int, default=20, help="samples for the Var.get reading comparison")
    args = ap.parse_args()
    xtr, _, xte, _ = digits_arrays()
    mlp = compiled(load_config(REPO / "examples" / "digits.yaml"), xtr[:256])
    cnn = compiled(CNN, xtr[:256])
    bench("digits MLP 64-100-10", mlp, xte[:args.samples])
    bench("conv net 6C3-P2-8C3-P2-10", cnn, xte[:args.conv_samples])
    reading(mlp, xte[:args.read_samples])


if __name__ == "__main__":
    main()
