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
5. Step time: ``benchmarks/train_step.py --device cuda`` (MNIST CNN and 784-400-400-10,
   batch 50, T = 5, with the time-loop baseline and the ratios).

    python benchmarks/cuda_check.py [--out cuda_check.json] [--skip-bench] [--device cuda]

``scripts/gpu_check.sh`` installs tsslc (no dependencies fetched) on a machine whose Python
already has torch and runs this.
"""

from __future__ import annotations

import argparse
import copy
import json
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "cuda_check.json"))
    ap.add_argument("--skip-bench", action="store_true", help="leave out the step-time benchmark")
    ap.add_argument("--device", default="cuda", help="the device compared with the CPU (cpu: a smoke run of this script)")
    args = ap.parse_args()
    dev = args.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        print("cuda_check: no CUDA GPU is visible to torch on this machine", file=sys.stderr)
        return 2
    report = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if dev.startswith("cuda") else dev}
    print(f"torch {report['torch']} on {report['gpu']}")
    checks = [("tssl_lif CPU vs CUDA", lambda: check_tssl_lif(dev)),
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
