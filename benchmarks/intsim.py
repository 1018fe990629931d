"""Speed of the integer simulator (sample-steps per second), against the floor and Lava.

Nets: 784-400-10 (dense) and the paper's MNIST CNN (examples/mnist_cnn.yaml), random
weights, compiled for loihi2 with tsslc's own pipeline, fed real MNIST test images when
/work/shared/data/mnist (or --data-dir) holds them, random images otherwise.

* intsim: ``tsslc.backends.intsim.run`` (spikes of every layer) at batch 1 and 256, without
  and with the activity counters (``tsslc.backends.counters``: per layer, per core, hops);
* floor: the synaptic work alone — intsim's own exact synapses (``Target.prepare_synapse``,
  float32 where provably exact) on the values intsim feeds them (a static input's payload
  once, as intsim sends it); beside it the bare float32 matmul / conv of the same shapes
  (how close the exact path is to the float one) and, for reference, the dense matmuls in
  torch int64;
* Lava: ``tsslc.backends.lava.run`` (fixed_pt) on a few samples, when available.

Run: ``python benchmarks/intsim.py [--quick] [--lava-samples N] [--markdown]``. Prints one
table and the ratios; all timings are measured in the same run, the intsim and floor
timings best of interleaved rounds, the load average beside them.
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
from tsslc.backends.intsim import IntSim
from tsslc.targets import get_target
from tsslc.targets.loihi2 import dense_weights

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


def interleaved(fns: dict, repeat: int) -> dict:
    """Best seconds of each function over interleaved rounds (one of each per round, so that
    a busy machine slows them alike; the best round is the least disturbed by other jobs); each is repeated within a round until it has
    run 50 ms, so fast calls are not lost in the timer's resolution."""
    for f in fns.values():
        f()  # warm-up (and the per-graph plan)
    inner = {}
    for k, f in fns.items():
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < 0.05:
            f()
            n += 1
        inner[k] = n
    times: dict = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner[k]):
                f()
            times[k].append((time.perf_counter() - t0) / inner[k])
    return {k: float(np.min(v)) for k, v in times.items()}


def floor_fn(cg, x: np.ndarray, use_int64: bool = False, plain_float: bool = False):
    """The synaptic work of ``cg`` alone, on the values intsim feeds its synapses (the
    payloads, the spikes it produced; a static input's payload once, as intsim sends it):
    intsim's own exact synapses (``Target.prepare_synapse``, made once per graph), or
    ``plain_float``: the bare float32 matmul / conv of the same shapes, or ``use_int64``:
    the dense matmuls in torch int64."""
    T = int(cg.metadata["n_steps"])
    target = get_target(cg.metadata["target"])
    walker = IntSim(cg, target, x, T)
    env = walker.run()
    work = []
    for name, node, preds in walker.plan.steps:
        if isinstance(node, (N.IntDense, N.IntConv2d)):
            v = env[preds[0]]
            if v.shape[0] > 1 and v.stride(0) == 0:
                v = v[:1]
            v = v.contiguous()
            if use_int64:
                work.append((node, v.to(torch.int64), torch.as_tensor(dense_weights(node.weight))))
            elif plain_float:
                work.append((node, v.to(torch.float32), torch.as_tensor(np.asarray(node.weight), dtype=torch.float32)))
            else:
                work.append((node, v, walker.plan.synapses[name]))

    def run():
        for nd, v, w in work:
            if use_int64:
                torch.matmul(v, w.T)
            elif plain_float:
                if isinstance(nd, N.IntDense):
                    torch.nn.functional.linear(v, w)
                else:
                    torch.nn.functional.conv2d(v.reshape(-1, *v.shape[2:]), w, None, nd.stride, nd.padding, 1, nd.groups)
            else:
                w(v)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--rounds", type=int, default=21, help="interleaved rounds (best of; fewer move a ratio by ±10 points on a shared machine)")
    ap.add_argument("--lava-samples", type=int, default=8, help="samples for the Lava run (0: skip)")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    shared = [p / "shared" / "data" / "mnist" for p in (REPO.parent, REPO.parent.parent)]
    ap.add_argument("--data-dir", default=str(next((p for p in shared if p.exists()), shared[0])))
    args = ap.parse_args()
    torch.manual_seed(0)
    x_all = mnist(256, args.data_dir)
    nets = {
        "784-400-10": graph_from_network(Network(parse_config(MLP, "784-400-10")).eval()),
        "mnist_cnn": graph_from_network(Network(load_config(REPO / "examples" / "mnist_cnn.yaml")).eval()),
    }
    rep = 2 if args.quick else args.rounds
    rows = []
    for name, g in nets.items():
        cg = compile_graph(g, "loihi2", x_all[:64])
        T = int(cg.metadata["n_steps"])
        for B in (1, 256):
            x = x_all[:B]
            fns = {"sim": lambda: intsim_run(cg, x, counters=False), "cnt": lambda: intsim_run(cg, x),
                   "floor": floor_fn(cg, x), "float": floor_fn(cg, x, plain_float=True)}
            if name == "784-400-10":
                fns["int64"] = floor_fn(cg, x, use_int64=True)
            t = interleaved(fns, rep)
            row = {"net": name, "batch": B, "intsim_sps": B * T / t["sim"], "floor_sps": B * T / t["floor"],
                   "ratio_floor": t["sim"] / t["floor"], "counted_sps": B * T / t["cnt"],
                   "float_sps": B * T / t["float"], "exact_vs_float": t["floor"] / t["float"],
                   "counters_add": t["cnt"] / t["sim"] - 1}
            if "int64" in t:
                row["int64_sps"] = B * T / t["int64"]
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
    import os

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'net':<12}{'batch':>6}{'intsim':>10}{'floor':>10}{'intsim/floor':>14}{'float':>10}{'exact/float':>13}"
          f"{'int64':>9}{'Lava':>8}{'intsim/Lava':>13}{'counted':>10}{'counters add':>14}")
    for r in rows:
        print(f"{r['net']:<12}{r['batch']:>6}{r['intsim_sps']:>10.0f}{r['floor_sps']:>10.0f}{r['ratio_floor']:>14.2f}"
              f"{r['float_sps']:>10.0f}{r['exact_vs_float']:>13.2f}{r.get('int64_sps', float('nan')):>9.0f}"
              f"{r.get('lava_sps', float('nan')):>8.1f}{r.get('speedup_vs_lava', float('nan')):>13.0f}"
              f"{r['counted_sps']:>10.0f}{100 * r['counters_add']:>13.0f}%")
    print("sample-steps/s (best of interleaved rounds). floor: intsim's exact synapses alone on the values it feeds "
          "them; float: the bare float32 matmul/conv of the same shapes; counted: intsim with the activity counters "
          "(tallied in the same pass)")
    if args.markdown:
        print("\n| net | batch | intsim | floor | intsim / floor | exact / float synapse | Lava | intsim / Lava | "
              "with counters | counters add |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['net']} | {r['batch']} | {r['intsim_sps']:,.0f} | {r['floor_sps']:,.0f} | {r['ratio_floor']:.2f} | "
                  f"{r['exact_vs_float']:.2f} | {r.get('lava_sps', float('nan')):.1f} | "
                  f"{r.get('speedup_vs_lava', float('nan')):,.0f} | {r['counted_sps']:,.0f} | {100 * r['counters_add']:.0f} % |")

if __name__ == "__main__":
    main()
