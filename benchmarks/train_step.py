"""ms per training step and peak memory: TSSL-BP (tsslc, fused neuron and the reference
path), BPTT (tsslc, rule: bptt), a straightforward time-loop implementation of
TSSLBP_SPEC.md §5 in the authors' style (the baseline), and the no-neuron floor, on the
paper's MNIST CNN (15C5-P2-40C5-P2-300-10) and on 784-400-400-10, batch 50, T = 5. Prints the
ratios baseline / tsslc and tsslc / floor.

The floor is the same training step with every spiking neuron replaced by the identity
(the layer's PSC is its input current): the convolutions, matmuls, pooling, input filter,
loss and optimiser that any implementation of these networks pays, and nothing else.

The baseline is written as the authors' code is: tensors time-last ``(B, C, H, W, T)``, the
input PSC and the forward in per-step Python loops, conv layers as conv3d with a (k, k, 1)
kernel, and a backward that for every step t multiplies the error by the PSC kernel κ
repeated over every neuron and the remaining T - t steps (the T×T kernel matrix, row by row).
Its weight gradient is checked against tsslc's before timing: it is the same algorithm.

Each (network, method) is measured in its own subprocess so that peak memory (max RSS growth
over the steps; on CUDA the allocator's peak) is not mixed up.

    python benchmarks/train_step.py [--steps 20] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
MLP_YAML = """
Network: {dataset: MNIST, n_steps: 5, tau_m: 5, tau_s: 3, loss: kernel, n_class: 10, lr: 0.0005, batch_size: 50}
Layers:
  FC_1: {type: linear, n_inputs: 784, n_outputs: 400}
  FC_2: {type: linear, n_inputs: 400, n_outputs: 400}
  output: {type: linear, n_inputs: 400, n_outputs: 10}
"""
NETS = {"mnist_cnn": "examples/mnist_cnn.yaml", "mlp_784_400_400_10": MLP_YAML}
METHODS = ("baseline", "tsslbp", "tsslbp_ref", "bptt", "floor")
LABELS = {"baseline": "baseline", "tsslbp": "TSSL-BP", "tsslbp_ref": "TSSL-BP (reference path)",
          "bptt": "BPTT", "floor": "floor (no neuron)"}


def without_neurons(net):
    """Replace every spiking layer's neuron by the identity, in place (the floor)."""
    import types

    from tsslc.layers import SpikingLayer

    def forward(self, a_in):
        x = self.current(a_in)
        return x, x.detach()

    for layer in net.modules():
        if isinstance(layer, SpikingLayer):
            layer.forward = types.MethodType(forward, layer)
    return net


# ----------------------------------------------------------------------------- baseline
def syn_kernel(n_steps, tau_s, device, dtype):
    """The authors' glv.syn_a: κ[k] = (1 - 1/τs)^k / τs as a (1,1,1,1,T) tensor."""
    a = torch.zeros(1, 1, 1, 1, n_steps, device=device, dtype=dtype)
    a[..., 0] = 1
    for t in range(n_steps - 1):
        a[..., t + 1] = a[..., t] - a[..., t] / tau_s
    return a / tau_s


class BaselineTSSLBP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs, tau_m, tau_s, threshold):
        shape = inputs.shape
        n_steps = shape[4]
        theta_m, theta_s = 1 / tau_m, 1 / tau_s
        mem = torch.zeros(shape[:4], device=inputs.device, dtype=inputs.dtype)
        syn = torch.zeros(shape[:4], device=inputs.device, dtype=inputs.dtype)
        syns_posts, mems, mem_updates, outputs = [], [], [], []
        for t in range(n_steps):
            mem_update = (-theta_m) * mem + inputs[..., t]
            mem = mem + mem_update
            out = (mem > threshold).to(inputs.dtype)
            mems.append(mem)
            mem = mem * (1 - out)
            outputs.append(out)
            mem_updates.append(mem_update)
            syn = syn + (out - syn) * theta_s
            syns_posts.append(syn)
        mems, mem_updates = torch.stack(mems, 4), torch.stack(mem_updates, 4)
        outputs, syns_posts = torch.stack(outputs, 4), torch.stack(syns_posts, 4)
        ctx.save_for_backward(mem_updates, outputs, mems, syns_posts)
        ctx.params = (threshold, tau_s, theta_m)
        ctx.mark_non_differentiable(outputs)
        return syns_posts, outputs

    @staticmethod
    def backward(ctx, grad_delta, _grad_out):
        delta_u, outputs, u, syns = ctx.saved_tensors
        threshold, tau_s, theta_m = ctx.params
        shape = grad_delta.shape
        n_steps = shape[4]
        th = 1 / (4 * tau_s)
        grad = torch.zeros_like(grad_delta)
        kappa = syn_kernel(n_steps, tau_s, grad.device, grad.dtype)
        syn_a = kappa.repeat(shape[0], shape[1], shape[2], shape[3], 1)
        partial_a = (kappa / (-tau_s)).repeat(shape[0], shape[1], shape[2], shape[3], 1)
        theta = torch.zeros(shape[:4], device=grad.device, dtype=grad.dtype)
        for t in range(n_steps - 1, -1, -1):
            time_len = n_steps - t
            out = outputs[..., t]
            partial_u = torch.clamp(-1 / delta_u[..., t], -8, 0) * out
            partial_a_partial_u = partial_u.unsqueeze(-1).repeat(1, 1, 1, 1, time_len) * partial_a[..., 0:time_len]
            grad_tmp = torch.sum(partial_a_partial_u * grad_delta[..., t:n_steps] * tau_s, dim=4)
            if t != n_steps - 1:
                grad_tmp += theta * u[..., t] * (-1) * theta_m * partial_u
                grad_tmp += theta * (1 - theta_m) * (1 - out)
            theta = grad_tmp * out + theta * (1 - out) * (1 - theta_m)
            grad_a = torch.sum(syn_a[..., 0:time_len] * grad_delta[..., t:n_steps], dim=-1)
            f = torch.clamp((-1 * u[..., t] + threshold) / 0.2, -8, 8)
            f = torch.exp(f)
            f = f / ((1 + f) * (1 + f) * 0.2)
            grad_a = grad_a * f
            syn = syns[..., t]
            grad_tmp[syn < th] = grad_a[syn < th]
            grad[..., t] = grad_tmp
        return grad, None, None, None


class BaselineNet(torch.nn.Module):
    """The authors' layout over the weights of a tsslc Network (shared Parameters)."""

    def __init__(self, net):
        super().__init__()
        from tsslc.layers import Flatten, SpikingConv2d, SpikingLinear, SumPool2d

        self.net, self.cfg = net, net.config
        self.ops = []
        for layer in net.layers.values():
            if isinstance(layer, SpikingConv2d):
                self.ops.append(("conv", layer))
            elif isinstance(layer, SpikingLinear):
                self.ops.append(("linear", layer))
            elif isinstance(layer, SumPool2d):
                self.ops.append(("pool", layer))
            elif isinstance(layer, Flatten):
                self.ops.append(("flatten", layer))
            else:
                self.ops.append(("dropout", layer))

    def psp(self, inputs):
        tau_s = self.cfg.tau_s
        syn = torch.zeros(inputs.shape[:4], device=inputs.device, dtype=inputs.dtype)
        syns = torch.zeros_like(inputs)
        for t in range(inputs.shape[4]):
            syn = syn - syn / tau_s + inputs[..., t]
            syns[..., t] = syn / tau_s
        return syns

    def forward(self, x):
        T = self.cfg.n_steps
        if x.dim() == 2:
            x = x.view(x.shape[0], -1, 1, 1)
        a = self.psp(x.unsqueeze(-1).repeat(1, 1, 1, 1, T))
        s = None
        for kind, layer in self.ops:
            if kind == "conv":
                w = layer.weight.unsqueeze(-1)
                x = F.conv3d(a, w, None, (layer.stride, layer.stride, 1), (layer.padding, layer.padding, 0))
                a, s = BaselineTSSLBP.apply(x, self.cfg.tau_m, self.cfg.tau_s, layer.threshold)
            elif kind == "linear":
                B = a.shape[0]
                flat = a.reshape(B, -1, T).transpose(1, 2)  # (B, T, N)
                x = flat.matmul(layer.weight.t()).transpose(1, 2).reshape(B, -1, 1, 1, T)
                a, s = BaselineTSSLBP.apply(x, self.cfg.tau_m, self.cfg.tau_s, layer.threshold)
            elif kind == "pool":
                k = layer.kernel_size
                a = F.avg_pool3d(a, (k, k, 1)) * (k * k * layer.theta)
            elif kind == "flatten":
                a = a.reshape(a.shape[0], -1, 1, 1, T)
        return a, s

    def loss(self, a, y):
        from tsslc.functional import input_psc
        from tsslc.losses import desired_train

        T = self.cfg.n_steps
        target_psc = input_psc(desired_train(T, a.dtype, a.device)[:, None], self.cfg.tau_s)[:, 0]
        a = a.reshape(a.shape[0], -1, T)
        target = torch.zeros_like(a)
        target[torch.arange(a.shape[0]), y] = target_psc
        return 0.5 * ((a - target) ** 2).sum()


# ----------------------------------------------------------------------------- measuring
def load_config_any(spec):
    from tsslc.config import load_config, parse_config
    import yaml

    if spec.endswith(".yaml"):
        return load_config(REPO / spec)
    return parse_config(yaml.safe_load(spec), "784-400-400-10")


def batch(cfg, B, device):
    """A real MNIST batch when ../shared/data/mnist exists, else normalised noise."""
    mnist = REPO.parent / "shared" / "data" / "mnist"
    try:
        from tsslc.data.idx import load_idx_split

        test = load_idx_split("MNIST", mnist, "test")
        x, y = test.tensors[0][:B], test.tensors[1][:B]
    except Exception:
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(B, 1, 28, 28, generator=g), torch.randint(0, 10, (B,), generator=g)
    if cfg.layers[0].type == "linear":
        x = x.reshape(B, -1)
        cfg.input_shape = (784,)
    return x.to(device), y.to(device)


def check_baseline_gradient(spec, device):
    """The baseline's weight gradient equals tsslc's TSSL-BP gradient (float64)."""
    from tsslc.losses import compute_loss
    from tsslc.network import Network

    cfg = load_config_any(spec)
    x, y = batch(cfg, 4, device)
    torch.manual_seed(0)
    net = Network(cfg).to(device).double()
    a, s = net(x.double())
    compute_loss("kernel", a, s, y, cfg).backward()
    ours = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    base = BaselineNet(net)
    a2, _ = base(x.double())
    base.loss(a2, y).backward()
    for g1, p in zip(ours, net.parameters()):
        err = float((g1 - p.grad).abs().max() / (g1.abs().max() + 1e-30))
        assert err < 1e-9, f"baseline gradient differs from tsslc's (rel {err:.2e})"


def peak_rss_mb(reset: bool = False) -> float:
    """Peak resident memory of this process in MB; ``reset`` restarts the peak (Linux)."""
    try:
        if reset:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(net_name, method, steps, device):
    from tsslc.network import Network
    from tsslc.training.trainer import make_optimizer, train_step

    dev = torch.device(device)
    cfg = load_config_any(NETS[net_name])
    cfg.rule = "bptt" if method == "bptt" else "tsslbp"
    if method == "tsslbp_ref":
        from tsslc.functional import set_neuron_impl

        set_neuron_impl("reference")
    x, y = batch(cfg, 50, dev)
    torch.manual_seed(0)
    net = Network(cfg).to(dev)
    if method == "floor":
        without_neurons(net)
    opt = make_optimizer(net, cfg)
    if method == "baseline":
        base = BaselineNet(net)

        def step():
            a, s = base(x)
            loss = base.loss(a, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            net.clamp_weights(4.0)
    else:
        def step():
            train_step(net, opt, x, y, cfg)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    sync()
    import gc

    gc.collect()
    rss0 = peak_rss_mb(reset=True)  # model, optimiser and batch in place
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_alloc = torch.cuda.memory_allocated()
    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    if dev.type == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated() - base_alloc) / 2**20
    else:
        peak_mb = max(peak_rss_mb() - rss0, 0.0)
    return {"ms": 1000 * times[len(times) // 2], "peak_mb": peak_mb}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--one", nargs=2, metavar=("NET", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure(*args.one, args.steps, args.device)))
        return
    for name, spec in NETS.items():
        check_baseline_gradient(spec, "cpu")
    print(f"device {args.device}, threads {args.threads or torch.get_num_threads()}, batch 50, T 5, "
          f"median of {args.steps} steps; baseline gradient == tsslc gradient (checked, float64)")
    print(f"{'network':22s} {'method':25s} {'ms/step':>9s} {'peak MB':>9s} {'baseline/this':>14s} {'this/floor':>11s}")
    for name in NETS:
        res = {}
        for method in METHODS:
            cmd = [sys.executable, __file__, "--one", name, method, "--steps", str(args.steps), "--device", args.device]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            res[method] = json.loads(out.strip().splitlines()[-1])
        for method in METHODS:
            r = res[method]
            ratio = res["baseline"]["ms"] / r["ms"]
            print(f"{name:22s} {LABELS[method]:25s} {r['ms']:9.1f} {r['peak_mb']:9.1f} {ratio:13.2f}x "
                  f"{r['ms'] / res['floor']['ms']:10.2f}x")
        print(f"{name:22s} speed-up of TSSL-BP over the time-loop baseline: "
              f"{res['baseline']['ms'] / res['tsslbp']['ms']:.2f}x; BPTT / TSSL-BP time: "
              f"{res['bptt']['ms'] / res['tsslbp']['ms']:.2f}; TSSL-BP / floor: "
              f"{res['tsslbp']['ms'] / res['floor']['ms']:.2f}")


if __name__ == "__main__":
    main()
