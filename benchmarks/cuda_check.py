"""The training engine's GPU criterion as one prepared run, for a machine with CUDA.

Checks (each prints a line; the figures go to a JSON file; exit status 1 if any fails):

1. ``tssl_lif`` on random currents, T = 5..30, varied τm, τs, thresholds: CUDA forward
   gives the same spikes as the CPU, and the TSSL-BP gradient of a random loss equals the
   CPU's to ≤ 1e-9 relative (float64) and ≤ 1e-4 (float32).
2. The paper's MNIST CNN, one batch of 8 images, float64: every weight gradient on CUDA
   equals the CPU's to ≤ 1e-8 relative, for TSSL-BP and for the BPTT baseline.
3. The digits config trained on CUDA (``fit(..., device="cuda")``) passes 95 %.
4. intsim on CUDA: the digits net compiled for loihi2 gives bit-identical spikes on the
   GPU and on the CPU (int64 arithmetic either way).
5. The fused neuron (Triton on CUDA) against the pure-torch reference path on the same
   device: spikes and PSC bit for bit, the gradient to ≤ 1e-9 (float64) / 2e-5 (float32)
   relative, on shapes from one neuron to the MNIST CNN's first layer, T = 1..100,
   contiguous or not; and the time of one forward + backward of the neuron on the MNIST
   CNN's conv_1 currents (T = 5, batch 50, float32), fused vs reference.
6. Step time: ``benchmarks/train_step.py --device cuda`` (MNIST CNN and 784-400-400-10,
   batch 50, T = 5: the fused and the reference TSSL-BP path, BPTT, the time-loop baseline
   and the no-neuron floor, with the ratios).
7. Paper scale: the paper's MNIST CNN (examples/mnist_cnn.yaml, the authors' recipe) trained
   on the real MNIST IDX files (``--mnist-dir``; default ``shared/data/mnist`` in the
   checkout, else ``../shared/data/mnist`` beside it) for as many epochs as fit in
   ``--paper-seconds`` (default 300), printing each epoch's test accuracy beside the paper's
   99.53 % and the mean training-step time on the device beside the CPU's (measured in the
   same run on the same batches). Skipped with a note when the files are absent. On CPU,
   ``--paper-train-samples 200 --paper-test-samples 100 --paper-epochs 1`` make it a smoke
   run (tests/test_cuda_check.py).

    python benchmarks/cuda_check.py [--out cuda_check.json] [--skip-bench] [--device cuda]
        [--skip-paper] [--paper-seconds 300] [--mnist-dir DIR]

``scripts/gpu_check.sh`` installs tsslc (no dependencies fetched) on a machine whose Python
already has torch and runs this.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    return float((a - b).abs().max() / (b.abs().max() + 1e-30))


def check_tssl_lif(dev) -> dict:
    from tsslc.functional import tssl_lif

    gen = torch.Generator().manual_seed(0)
    worst = {"float64": 0.0, "float32": 0.0}
    spikes_equal = True
    cases = 0
    for T in (5, 10, 20, 30):
        for tau_m, tau_s, thr in ((5, 3, 1.0), (8, 4, 0.5), (3, 2, 1.5)):
            for dtype in (torch.float64, torch.float32):
                x = (torch.rand(T, 64, 33, generator=gen, dtype=torch.float64) * 1.2 - 0.2).to(dtype)
                w = torch.randn(T, 64, 33, generator=gen, dtype=torch.float64).to(dtype)
                out = {}
                for d in ("cpu", dev):
                    xi = x.to(d).requires_grad_(True)
                    a, s = tssl_lif(xi, tau_m, tau_s, thr, return_spikes=True)
                    (a * w.to(d)).sum().backward()
                    out[d] = (a, s, xi.grad)
                spikes_equal &= torch.equal(out["cpu"][1], out[dev][1].cpu())
                key = "float64" if dtype == torch.float64 else "float32"
                worst[key] = max(worst[key], rel(out[dev][0], out["cpu"][0]), rel(out[dev][2], out["cpu"][2]))
                cases += 1
    ok = spikes_equal and worst["float64"] <= 1e-9 and worst["float32"] <= 1e-4
    return {"ok": ok, "cases": cases, "spikes_equal": spikes_equal, "max_rel_float64": worst["float64"],
            "max_rel_float32": worst["float32"]}


def check_fused_vs_reference(dev, reps: int = 20) -> dict:
    from tsslc.functional import fused_unavailable_reason, tssl_lif

    reason = fused_unavailable_reason(dev)
    if reason is not None:
        return {"ok": False, "fused_available": False, "reason": reason}
    gen = torch.Generator().manual_seed(2)
    worst = {"float64": 0.0, "float32": 0.0}
    equal = True
    cases = 0
    for shape, T, tau_m, tau_s, thr in (((1,), 1, 5, 3, 1.0), ((255,), 17, 8, 4, 0.1), ((3, 7, 11), 100, 20, 5, 2.0),
                                        ((8, 15, 24, 24), 5, 5, 3, 1.0), ((2, 300), 30, 1.5, 1.2, 0.3)):
        for dtype in (torch.float64, torch.float32):
            for strided in (False, True):
                full = (T, *shape[:-1], 2 * shape[-1]) if strided else (T, *shape)
                x = ((torch.rand(full, generator=gen, dtype=torch.float64) * 1.6 - 0.3) * thr).to(dtype).to(dev)
                if strided:
                    x = x[..., ::2]
                w = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(dtype).to(dev)
                out = {}
                for impl in ("fused", "reference"):
                    xi = x.detach().clone().requires_grad_(True) if not strided else x.detach().requires_grad_(True)
                    a, s = tssl_lif(xi, tau_m, tau_s, thr, return_spikes=True, impl=impl)
                    (a * w).sum().backward()
                    out[impl] = (a, s, xi.grad)
                equal &= torch.equal(out["fused"][0], out["reference"][0]) and torch.equal(out["fused"][1], out["reference"][1])
                key = "float64" if dtype == torch.float64 else "float32"
                worst[key] = max(worst[key], rel(out["fused"][2], out["reference"][2]))
                cases += 1
    # time: one forward + backward of the MNIST CNN's first spiking layer
    x = (torch.rand(5, 50, 15, 24, 24, generator=gen) * 1.5).to(dev)
    g = torch.randn(x.shape, generator=gen).to(dev)
    ms = {}
    for impl in ("fused", "reference"):
        times = []
        for i in range(reps + 3):
            xi = x.detach().requires_grad_(True)
            if dev.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            a = tssl_lif(xi, 5, 3, 1.0, impl=impl)
            a.backward(g)
            if dev.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= 3:
                times.append(time.perf_counter() - t0)
        ms[impl] = 1000 * sorted(times)[len(times) // 2]
    ok = equal and worst["float64"] <= 1e-9 and worst["float32"] <= 2e-5
    return {"ok": ok, "fused_available": True, "cases": cases, "spikes_and_psc_equal": equal,
            "max_rel_grad_float64": worst["float64"], "max_rel_grad_float32": worst["float32"],
            "conv1_fwd_bwd_ms": ms, "reference_over_fused": ms["reference"] / ms["fused"]}


def check_mnist_cnn_gradients(dev) -> dict:
    from tsslc.config import load_config
    from tsslc.losses import compute_loss
    from tsslc.network import Network

    cfg = load_config(REPO / "examples" / "mnist_cnn.yaml")
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(8, 1, 28, 28, generator=gen, dtype=torch.float64)
    y = torch.arange(8) % 10
    res = {}
    for rule in ("tsslbp", "bptt"):
        c = copy.deepcopy(cfg)
        c.rule = rule
        grads = {}
        for d in ("cpu", dev):
            torch.manual_seed(0)
            net = Network(c).double().to(d)
            net.eval()  # no dropout in this net; eval keeps the two runs the same anyway
            a, s = net(x.to(d))
            compute_loss(c.loss, a, s, y.to(d), c).backward()
            grads[d] = [p.grad for p in net.parameters()]
        res[rule] = max(rel(g, h) for g, h in zip(grads[dev], grads["cpu"]))
    return {"ok": all(v <= 1e-8 for v in res.values()), "max_rel": res}


def check_digits_training(dev) -> dict:
    from tsslc.config import load_config
    from tsslc.data.digits import load_digits_datasets
    from tsslc.training.trainer import fit

    train, test = load_digits_datasets()
    t0 = time.perf_counter()
    r = fit(load_config(REPO / "examples" / "digits.yaml"), train, test, seed=0, device=dev)
    return {"ok": r.test_accuracy >= 0.95, "test_accuracy": r.test_accuracy, "seconds": time.perf_counter() - t0,
            "network": r.network}


def check_intsim(network, dev) -> dict:
    from tsslc.backends.intsim import run
    from tsslc.api import compile as compile_graph
    from tsslc.data.digits import digits_arrays
    from tsslc.ir.export import graph_from_network

    xtr, _, xte, _ = digits_arrays()
    compiled = compile_graph(graph_from_network(network.cpu()), "loihi2", xtr[:256])
    a = run(compiled, xte, device="cpu")
    b = run(compiled, xte, device=dev)
    same = all(a.spikes[k].shape == b.spikes[k].shape and (a.spikes[k] == b.spikes[k]).all() for k in a.spikes)
    return {"ok": bool(same), "samples": int(xte.shape[0]),
            "spikes": {k: int(v.sum()) for k, v in a.spikes.items()}}


PAPER_MNIST_ACC = 0.9953  # Table 1 of the paper, best of its runs


def mnist_dir_default() -> Path:
    for p in (REPO / "shared" / "data" / "mnist", REPO.parent / "shared" / "data" / "mnist"):
        if p.is_dir():
            return p
    return REPO.parent / "shared" / "data" / "mnist"


def step_time(net, opt, cfg, batches, dev) -> float:
    """Mean seconds per training step over ``batches`` (after one warm-up step)."""
    from tsslc.training.trainer import train_step

    def sync():
        if torch.device(dev).type == "cuda":
            torch.cuda.synchronize()

    x, y = batches[0]
    train_step(net, opt, x.to(dev), y.to(dev), cfg)
    sync()
    t0 = time.perf_counter()
    for x, y in batches:
        train_step(net, opt, x.to(dev), y.to(dev), cfg)
    sync()
    return (time.perf_counter() - t0) / len(batches)


def check_paper_mnist(dev, mnist_dir, seconds: float, max_epochs: int, train_samples: int, test_samples: int,
                      cpu_steps: int = 5) -> dict:
    """The paper's MNIST CNN trained on real MNIST for as many epochs as fit in ``seconds``."""
    from tsslc.config import load_config
    from tsslc.data import load_dataset, stratified_subset
    from tsslc.network import Network
    from tsslc.training.trainer import epoch_order, evaluate_detailed, make_optimizer, train_epoch

    mnist_dir = Path(mnist_dir)
    if not (mnist_dir / "train-images-idx3-ubyte.gz").is_file() and not (mnist_dir / "train-images-idx3-ubyte").is_file():
        return {"ok": True, "skipped": f"no MNIST IDX files in {mnist_dir}"}
    cfg = load_config(REPO / "examples" / "mnist_cnn.yaml")
    train, test = load_dataset(cfg, mnist_dir)
    train = stratified_subset(train, train_samples or None)
    test = stratified_subset(test, test_samples or None)
    x_all, y_all = (train.dataset.tensors if hasattr(train, "dataset") else train.tensors)
    idx = epoch_order(len(x_all), 0, 0)[:cfg.batch_size * cpu_steps]
    batches = [(x_all[idx[i:i + cfg.batch_size]], y_all[idx[i:i + cfg.batch_size]])
               for i in range(0, len(idx), cfg.batch_size)]
    torch.manual_seed(0)
    cpu_net = Network(cfg)
    cpu_s = step_time(cpu_net, make_optimizer(cpu_net, cfg), cfg, batches, "cpu")
    torch.manual_seed(0)
    net = Network(cfg).to(dev)
    opt = make_optimizer(net, cfg)
    dev_s = step_time(net, opt, cfg, batches, dev) if torch.device(dev).type == "cuda" else cpu_s
    torch.manual_seed(0)  # the run itself starts from fresh weights
    net = Network(cfg).to(dev)
    opt = make_optimizer(net, cfg)
    steps = -(-len(train) // cfg.batch_size)
    epochs, t_start = [], time.perf_counter()
    for epoch in range(1, max_epochs + 1):
        t0 = time.perf_counter()
        row = train_epoch(net, opt, train, cfg, dev, 0, epoch)
        if torch.device(dev).type == "cuda":
            torch.cuda.synchronize()
        train_s = time.perf_counter() - t0
        ev = evaluate_detailed(net, test, cfg, dev)
        epochs.append({"epoch": epoch, "train_loss": row["train_loss"], "test_acc": ev.accuracy,
                       "test_acc_spike_count": ev.accuracy_by_rule["spike_count"], "step_ms": 1e3 * train_s / steps,
                       "seconds": time.perf_counter() - t0})
        e = epochs[-1]
        print(f"      epoch {epoch}: test accuracy {100 * e['test_acc']:.2f} % (paper 99.53 %), "
              f"{e['step_ms']:.1f} ms per step on {dev} vs {1e3 * cpu_s:.1f} ms on the CPU, {e['seconds']:.0f} s",
              flush=True)
        elapsed = time.perf_counter() - t_start
        if elapsed + elapsed / epoch > seconds:  # the next epoch would not fit
            break
    last = epochs[-1]
    full = len(train) >= 60000 and len(test) >= 10000
    return {"ok": all(math.isfinite(e["train_loss"]) for e in epochs) and (not full or last["test_acc"] >= 0.97),
            "device": str(dev), "threads": torch.get_num_threads(), "train_samples": len(train),
            "test_samples": len(test), "batch_size": cfg.batch_size, "recipe": cfg.recipe,
            "prediction": cfg.prediction_rule, "paper_test_acc": PAPER_MNIST_ACC, "epochs": epochs,
            "best_test_acc": max(e["test_acc"] for e in epochs), "cpu_step_ms": 1e3 * cpu_s,
            "device_step_ms": 1e3 * dev_s, "speedup": cpu_s / dev_s, "budget_seconds": seconds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "cuda_check.json"))
    ap.add_argument("--skip-bench", action="store_true", help="leave out the step-time benchmark")
    ap.add_argument("--device", default="cuda", help="the device compared with the CPU (cpu: a smoke run of this script)")
    ap.add_argument("--skip-paper", action="store_true", help="leave out the paper-scale MNIST CNN training")
    ap.add_argument("--mnist-dir", default=str(mnist_dir_default()), help="MNIST IDX folder (default: %(default)s)")
    ap.add_argument("--paper-seconds", type=float, default=300.0,
                    help="time budget of the MNIST CNN training: epochs are run while the next fits (default 300)")
    ap.add_argument("--paper-epochs", type=int, default=200, help="at most this many epochs (default 200, the paper's)")
    ap.add_argument("--paper-train-samples", type=int, default=0,
                    help="training images drawn from every class (default 0: all 60,000)")
    ap.add_argument("--paper-test-samples", type=int, default=0,
                    help="test images drawn from every class (default 0: all 10,000)")
    args = ap.parse_args()
    dev = args.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        print("cuda_check: no CUDA GPU is visible to torch on this machine", file=sys.stderr)
        return 2
    report = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if dev.startswith("cuda") else dev}
    print(f"torch {report['torch']} on {report['gpu']}")
    checks = [("tssl_lif CPU vs CUDA", lambda: check_tssl_lif(dev)),
              ("fused vs reference neuron", lambda: check_fused_vs_reference(dev, 20 if dev != "cpu" else 3)),
              ("MNIST CNN gradients CPU vs CUDA", lambda: check_mnist_cnn_gradients(dev))]
    ok = True
    for name, fn in checks:
        r = fn()
        report[name] = r
        ok &= r["ok"]
        print(f"{'PASS' if r['ok'] else 'FAIL'}  {name}: {json.dumps(r)}")
    r = check_digits_training(dev)
    net = r.pop("network")
    report["digits on CUDA"] = r
    ok &= r["ok"]
    print(f"{'PASS' if r['ok'] else 'FAIL'}  digits on CUDA: {json.dumps(r)}")
    r = check_intsim(net, dev)
    report["intsim CPU vs CUDA"] = r
    ok &= r["ok"]
    print(f"{'PASS' if r['ok'] else 'FAIL'}  intsim CPU vs CUDA: {json.dumps(r)}")
    if not args.skip_paper:
        print(f"....  paper's MNIST CNN on {dev}, up to {args.paper_seconds:.0f} s of training:", flush=True)
        r = check_paper_mnist(dev, args.mnist_dir, args.paper_seconds, args.paper_epochs, args.paper_train_samples,
                              args.paper_test_samples)
        report["paper MNIST CNN"] = r
        ok &= r["ok"]
        print(f"{'PASS' if r['ok'] else 'FAIL'}  paper MNIST CNN: {json.dumps(r)}")
    if not args.skip_bench:
        p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "train_step.py"), "--device", dev],
                           capture_output=True, text=True)
        print(p.stdout + p.stderr)
        report["train_step benchmark"] = p.stdout
        ok &= p.returncode == 0
    report["ok"] = bool(ok)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"{'all checks passed' if ok else 'SOME CHECKS FAILED'}; figures in {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
