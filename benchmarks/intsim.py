"""Speed of the integer simulator (sample-steps per second), against the floor and Lava.

Nets: 784-400-10 (dense) and the paper's MNIST CNN (examples/mnist_cnn.yaml), random
weights, compiled for loihi2 with tsslc's own pipeline, fed real MNIST test images when
/work/shared/data/mnist (or --data-dir) holds them, random images otherwise.

* intsim: ``tsslc.backends.intsim.run`` (spikes of every layer) at batch 1 and 256, without
  and with the activity counters (``tsslc.backends.counters``: per layer, per core, hops);
* floor: the synaptic work alone — the same exact integer matmuls / convs over all T·B
  (float32 when provably exact, as intsim does), and, for reference, the dense matmuls in
  torch int64;
* Lava: ``tsslc.backends.lava.run`` (fixed_pt) on a few samples, when available.

Run: ``python benchmarks/intsim.py [--quick] [--lava-samples N]``. Prints one table and the
ratios; all timings are measured in the same run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from tsslc.backends import get_backend
from tsslc.backends.intsim import run as intsim_run
from tsslc.api import compile as compile_graph
from tsslc.config import load_config, parse_config
from tsslc.ir import nodes as N
from tsslc.ir.export import graph_from_network
from tsslc.network import Network
from tsslc.targets.loihi2 import dense_weights, exact_conv, exact_matmul

REPO = Path(__file__).resolve().parent.parent
MLP = {"Network": {"dataset": "MNIST", "n_steps": 5, "tau_m": 5, "tau_s": 3, "loss": "kernel", "n_class": 10},
       "Layers": {"hidden": {"type": "linear", "n_inputs": 784, "n_outputs": 400},
                  "output": {"type": "linear", "n_inputs": 400, "n_outputs": 10}}}


def mnist(n: int, data_dir) -> np.ndarray:
    try:
        from tsslc.data import load_dataset

        _, test = load_dataset("MNIST", data_dir)
        return np.stack([np.asarray(test[i][0], np.float32) for i in range(n)])
    except Exception as e:  # noqa: BLE001 - the benchmark still runs on random images
        print(f"(MNIST not available: {e}; random images)")
        return ((np.random.default_rng(0).random((n, 1, 28, 28)) - 0.1307) / 0.3081).astype(np.float32)


def best(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def floor_fn(cg, x: np.ndarray, use_int64: bool = False):
    """The synaptic work of ``cg`` on the spikes intsim produced (same shapes, same T·B)."""
    spikes = intsim_run(cg, x).spikes
    T = int(cg.metadata["n_steps"])
    tgt_inputs = {}
    prev = None
    for name in cg.order():
        node = cg[name]
        if isinstance(node, N.IntInput):
            from tsslc.ir.interpreter import time_input
            from tsslc.targets import get_target

            prev = get_target("loihi2").input_spikes(node, time_input(cg, x, T))
        elif isinstance(node, N.Flatten):
            prev = prev.reshape(prev.shape[0], prev.shape[1], -1)
        elif isinstance(node, (N.IntDense, N.IntConv2d)):
            tgt_inputs[name] = (node, prev)
        elif isinstance(node, N.IntLIF):
            prev = torch.as_tensor(spikes[name]).to(torch.int64)
    ws = {n: torch.as_tensor(dense_weights(nd.weight) if isinstance(nd, N.IntDense) else nd.weight.astype(np.int64))
          for n, (nd, _) in tgt_inputs.items()}

    def run():
        for n, (nd, s) in tgt_inputs.items():
            if isinstance(nd, N.IntDense):
                if use_int64:
                    torch.matmul(s, ws[n].T)
                else:
                    exact_matmul(s, ws[n])
            else:
                exact_conv(s, ws[n], nd.stride, nd.padding, nd.groups)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--lava-samples", type=int, default=8, help="samples for the Lava run (0: skip)")
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
    args = ap.parse_args()
    torch.manual_seed(0)
    x_all = mnist(256, args.data_dir)
    nets = {
        "784-400-10": graph_from_network(Network(parse_config(MLP, "784-400-10")).eval()),
        "mnist_cnn": graph_from_network(Network(load_config(REPO / "examples" / "mnist_cnn.yaml")).eval()),
    }
    rep = 2 if args.quick else 5
    rows = []
    for name, g in nets.items():
        cg = compile_graph(g, "loihi2", x_all[:64])
        T = int(cg.metadata["n_steps"])
        for B in (1, 256):
            x = x_all[:B]
            t_sim = best(lambda: intsim_run(cg, x, counters=False), rep)
            t_cnt = best(lambda: intsim_run(cg, x), rep)
            t_floor = best(floor_fn(cg, x), rep)
            row = {"net": name, "batch": B, "intsim_sps": B * T / t_sim, "floor_sps": B * T / t_floor,
                   "ratio_floor": t_sim / t_floor, "counted_sps": B * T / t_cnt}
            if name == "784-400-10":
                row["int64_sps"] = B * T / best(floor_fn(cg, x, use_int64=True), rep)
            rows.append(row)
        if args.lava_samples > 0:
            try:
                lava = get_backend("lava")
                xl = x_all[:args.lava_samples]
                t0 = time.perf_counter()
                lava(cg, xl)
                t_lava = time.perf_counter() - t0
                lava_sps = len(xl) * T / t_lava
                for r in rows:
                    if r["net"] == name:
                        r["lava_sps"] = lava_sps
                        r["speedup_vs_lava"] = r["intsim_sps"] / lava_sps
            except Exception as e:  # noqa: BLE001 - report, keep benchmarking
                print(f"(Lava not run for {name}: {e})")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'net':<12}{'batch':>6}{'intsim sample-steps/s':>24}{'floor':>14}{'intsim/floor time':>19}"
          f"{'int64 matmul':>14}{'Lava':>10}{'intsim/Lava':>13}{'with counters':>15}")
    for r in rows:
        print(f"{r['net']:<12}{r['batch']:>6}{r['intsim_sps']:>24.0f}{r['floor_sps']:>14.0f}{r['ratio_floor']:>19.2f}"
              f"{r.get('int64_sps', float('nan')):>14.0f}{r.get('lava_sps', float('nan')):>10.1f}"
              f"{r.get('speedup_vs_lava', float('nan')):>13.0f}{r['counted_sps']:>15.0f}")
    print("sample-steps/s; 'with counters' also makes the activity counts (a second pass over the spikes)")


if __name__ == "__main__":
    main()
