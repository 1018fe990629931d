"""Loihi 2 on the chip's terms: what the netx variant costs in accuracy, how many cores the
memory model gives the paper's networks, and how fast lava-dl netx runs tsslc's files.

    .venv/bin/python benchmarks/loihi2_netx.py [--data-dir ../shared/data] [--mnist-train 3000]
        [--mnist-test 1000] [--seed 0] [--threads 2] [--netx-samples 20] [--skip-mnist]

1. Accuracy cost of ``--variant netx`` (every Dense weight_exp 0, so that lava-dl netx
   runs the exported file exactly as intsim) against today's loihi2 compile: intsim
   accuracy and spike agreement with the float model, on the digits MLP (examples/digits.yaml
   trained 15 epochs) and the paper's MNIST CNN (examples/mnist_cnn.yaml trained one epoch on
   the first ``--mnist-train`` training images: minutes instead of an hour on 2 CPUs).
2. Cores of the paper's MNIST CNN (15C5-P2-40C5-P2-300-10) and the 784-400-400-10 MLP
   (examples/mnist_mlp.yaml) under loihi2's per-core memory model against the neuron count
   alone (8,192 per core); structure only, so seeded untrained weights suffice.
3. lava-dl netx on Lava (fixed_pt) running tsslc's file of the paper's N-MNIST CNN
   (examples/nmnist_cnn.yaml, 12C5-P2-64C5-P2-10, T = 30; seeded and untrained, weight_scale
   3 so that every layer spikes) on
   ``--netx-samples`` real N-MNIST test samples: seconds per sample beside intsim's in the
   same run, and the spikes compared layer by layer. Not a CI test (minutes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import tsslc  # noqa: E402
from tsslc.config import load_config  # noqa: E402
from tsslc.ir.export import graph_from_network  # noqa: E402
from tsslc.network import Network  # noqa: E402


def _agreement(a, b) -> float:
    return float(np.mean([np.mean(a.spikes[k] == b.spikes[k]) for k in a.spikes]))


def accuracy_cost(name, graph, xcal, xte, yte):
    flt = tsslc.simulate(graph, xte)
    print(f"{name}: float {100 * (flt.predictions() == yte).mean():.2f} % on {len(yte)} test samples")
    for variant in (None, "netx"):
        c = tsslc.compile(graph, "loihi2", xcal, variant=variant)
        r = tsslc.simulate(c, xte, batch_size=200)
        exps = [row["weight_exp"] for row in c.metadata["quantization"]["layers"]]
        print(f"  loihi2{'' if variant is None else ' --variant netx':<16} intsim {100 * (r.predictions() == yte).mean():6.2f} %, "
              f"spikes equal to float {100 * _agreement(flt, r):.2f} %, same class {100 * (r.predictions() == flt.predictions()).mean():.2f} %, "
              f"weight_exp per layer {exps}")


def core_counts(data_dir):
    from tsslc.targets import get_target
    from tsslc.targets.mapping import map_graph

    loihi2 = get_target("loihi2")
    for cfg_name in ("mnist_cnn.yaml", "mnist_mlp.yaml"):
        torch.manual_seed(0)
        g = graph_from_network(Network(load_config(REPO / "examples" / cfg_name)).eval())
        xcal, _ = tsslc.load_data("MNIST", split="train", samples=64, data_dir=Path(data_dir) / "mnist")
        c = tsslc.compile(g, "loihi2", xcal)
        m = c.metadata["mapping"]
        by_neurons = sum(-(-int(np.prod(c[n].shape)) // loihi2.geometry.neurons_per_core) for n in m["layers"])
        print(f"{cfg_name}: {m['cores']} cores under the memory model (neurons alone: {by_neurons}); "
              f"fullest core {m['max_core_memory_bytes'] / 1024:.1f} KiB of {m['memory_per_core_bytes'] / 1024:.0f} KiB")
        for name, layer in m["layers"].items():
            print(f"  {name:<8} {layer['neurons']:>6} neurons, {layer['cores']} cores, {layer['memory_bytes'] / 1024:8.1f} KiB, "
                  f"fullest core {layer['max_core_memory_bytes'] / 1024:.1f} KiB")


def netx_speed(data_dir, n):
    from tsslc.backends.lava import netx as lava_netx
    from tsslc.backends.netx import export

    nm = Path(data_dir) / "nmnist-subset"
    cfg = load_config(REPO / "examples" / "nmnist_cnn.yaml")
    for layer in cfg.layers:
        if "weight_scale" in layer.params:
            layer.params["weight_scale"] = 3.0  # untrained: large enough weights that every layer spikes
    torch.manual_seed(0)
    g = graph_from_network(Network(cfg).eval())
    xtr, _ = tsslc.load_data("nmnist", split="train", samples=64, data_dir=nm, n_steps=cfg.n_steps)
    xte, _ = tsslc.load_data("nmnist", split="test", samples=n, data_dir=nm, n_steps=cfg.n_steps)
    c = tsslc.compile(g, "loihi2", xtr, variant="netx")
    with tempfile.TemporaryDirectory() as d:
        done = export(c, Path(d) / "nmnist.net")
        t0 = time.perf_counter()
        ref = tsslc.simulate(c, xte)
        t_int = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = lava_netx.run(done.path, xte, progress=True)
        t_netx = time.perf_counter() - t0
    same = {k: bool(np.array_equal(got.spikes[k], ref.spikes[k])) for k in ref.spikes}
    spikes = {k: int(v.sum()) for k, v in got.spikes.items()}
    print(f"N-MNIST paper CNN through netx, {n} samples x T={cfg.n_steps}: identical to intsim per layer {same}, "
          f"spikes {spikes}")
    print(f"  netx on Lava fixed_pt {t_netx / n:.2f} s per sample (run {got.info['netx']['run_s']:.1f} s), "
          f"intsim {t_int / n * 1e3:.1f} ms per sample: ratio {t_netx / t_int:.0f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--mnist-train", type=int, default=3000)
    ap.add_argument("--mnist-test", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--netx-samples", type=int, default=20)
    ap.add_argument("--skip-mnist", action="store_true", help="only the digits MLP and the core counts")
    ap.add_argument("--only-netx", action="store_true", help="only part 3 (netx's speed on the N-MNIST CNN)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"seed {args.seed}, {torch.get_num_threads()} threads")
    if args.only_netx:
        return netx_speed(args.data_dir, args.netx_samples)
    from tsslc.data.digits import digits_arrays, load_digits_datasets
    from tsslc.training.trainer import fit

    train_set, test_set = load_digits_datasets()
    res = fit(load_config(REPO / "examples" / "digits.yaml"), train_set, test_set, seed=args.seed)
    xtr, _, xte, yte = digits_arrays()
    accuracy_cost("digits MLP (64-100-10, 15 epochs)", graph_from_network(res.network), xtr[:256], xte, yte)
    core_counts(args.data_dir)
    if args.skip_mnist:
        return
    from torch.utils.data import Subset

    from tsslc.data import load_dataset

    mnist = Path(args.data_dir) / "mnist"
    tr, te = load_dataset("MNIST", mnist)
    t0 = time.perf_counter()
    res = fit(load_config(REPO / "examples" / "mnist_cnn.yaml"), Subset(tr, range(args.mnist_train)),
              Subset(te, range(args.mnist_test)), epochs=1, seed=args.seed)
    print(f"MNIST CNN trained 1 epoch on {args.mnist_train} images in {time.perf_counter() - t0:.0f} s")
    xcal, _ = tsslc.load_data("MNIST", split="train", samples=256, data_dir=mnist)
    xte, yte = tsslc.load_data("MNIST", split="test", samples=args.mnist_test, data_dir=mnist)
    accuracy_cost(f"MNIST CNN (15C5-P2-40C5-P2-300-10, {args.mnist_train} training images)",
                  graph_from_network(res.network), xcal, xte, yte)
    if args.netx_samples:
        netx_speed(args.data_dir, args.netx_samples)


if __name__ == "__main__":
    main()
