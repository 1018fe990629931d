"""Speed of the integer simulator on the truenorth conv mapping (sample-steps per second),
against the same floor as benchmarks/intsim.py (whose helpers it imports: ``interleaved``,
``floor_fn``, ``mnist``): the synaptic work alone, the exact integer convs / matmuls over
all T·B on the spikes intsim produced, and the ratio intsim time / floor time.

Net: examples/mnist_cnn_truenorth.yaml (the paper's CNN reshaped for truenorth cores:
grouped conv_2 with the pool folded in, fan-in-limited dense layers), random weights
compiled for truenorth with tsslc's own pipeline (rate-encoded input, error-feedback
rounding, the core mapping), or a compiled model given with --model (e.g. the trained one
examples/mnist_cnn_truenorth.py writes, RUN/truenorth.tsslc); real MNIST test images when
/work/shared/data/mnist (or --data-dir) holds them, random images otherwise.

Run: ``python benchmarks/intsim_truenorth.py [--quick] [--model FILE]``. One table; every
timing from the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from intsim import floor_fn, interleaved, mnist  # noqa: E402 - the floor of benchmarks/intsim.py

from tsslc.api import compile as compile_graph  # noqa: E402
from tsslc.backends.intsim import run as intsim_run  # noqa: E402
from tsslc.config import load_config  # noqa: E402
from tsslc.ir.export import graph_from_network  # noqa: E402
from tsslc.network import Network  # noqa: E402


def compiled_net(model: str | None, calib):
    if model:
        from tsslc.ir import io

        return io.load(model)
    torch.manual_seed(0)
    net = Network(load_config(REPO / "examples" / "mnist_cnn_truenorth.yaml")).eval()
    return compile_graph(graph_from_network(net), "truenorth", calib)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, batches 1 and 32")
    ap.add_argument("--model", default=None, help="a model compiled for truenorth (default: random weights)")
    ap.add_argument("--data-dir", default=str(Path(os.environ.get("TSSLC_SHARED_DATA") or REPO.parent / "shared" / "data")
                                              / "mnist"), help="MNIST IDX folder (default: TSSLC_SHARED_DATA or ../shared/data, /mnist)")
    args = ap.parse_args(argv)
    batches = (1, 32) if args.quick else (1, 256)
    x_all = mnist(max(batches), args.data_dir)
    cg = compiled_net(args.model, x_all[:64])
    if cg.metadata.get("target") != "truenorth":
        raise SystemExit(f"{args.model}: compiled for {cg.metadata.get('target')}, not truenorth")
    m = cg.metadata["mapping"]
    T = int(cg.metadata["n_steps"])
    rep = 2 if args.quick else 5
    rows = []
    for B in batches:
        x = x_all[:B]
        t = interleaved({"sim": lambda: intsim_run(cg, x, counters=False), "counted": lambda: intsim_run(cg, x),
                         "floor": floor_fn(cg, x)}, rep)
        t_sim, t_cnt, t_floor = t["sim"], t["counted"], t["floor"]
        rows.append({"batch": B, "intsim_sps": B * T / t_sim, "floor_sps": B * T / t_floor,
                     "ratio_floor": t_sim / t_floor, "counted_sps": B * T / t_cnt})
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; mnist_cnn_truenorth on {m['cores']} truenorth "
          f"cores ({m['neuron_cores']} neuron + {m['splitter_cores']} splitter), T = {T}, "
          f"{'model ' + args.model if args.model else 'random weights'}")
    print(f"{'batch':>6}{'intsim sample-steps/s':>24}{'floor':>14}{'intsim/floor time':>19}{'with counters':>15}")
    for r in rows:
        print(f"{r['batch']:>6}{r['intsim_sps']:>24.0f}{r['floor_sps']:>14.0f}{r['ratio_floor']:>19.2f}"
              f"{r['counted_sps']:>15.0f}")
    print("sample-steps/s; 'with counters' also makes the activity counts (in the simulation's pass)")
    return rows


if __name__ == "__main__":
    main()
