"""tsslc's training step beside snnTorch, SpikingJelly and Norse: the same networks, the same
initial weights, in one process, interleaved rounds, wall and CPU time, ratios.

Networks: the paper's MNIST CNN (15C5-P2-40C5-P2-300-10) and 784-400-400-10, batch 50, T = 5,
τm = 5, τs = 3, threshold 1, one real MNIST batch (../shared/data/mnist; normalised noise
when it is absent).

Methods (each its own copy of the same initial weights and its own AdamW, lr 5e-4; every
step: forward, loss, backward, gradient-norm clipping to 1, optimiser step, weight clamp):

* ``tsslc TSSL-BP``: ``tsslc.training.trainer.train_step`` with the fused neuron;
  ``tsslc TSSL-BP ref``: the same through the pure-torch reference path;
  ``tsslc BPTT``: ``rule: bptt`` (surrogate gradient through autograd);
* ``floor``: tsslc's step with every neuron replaced by the identity
  (``benchmarks/train_step.py``): the synaptic work (conv, matmul, pooling), loss and
  optimiser alone;
* ``snnTorch`` (``snn.Synaptic``), ``SpikingJelly`` (``layer.SynapseFilter`` +
  ``neuron.LIFNode`` in multi-step mode, which on the CPU runs SpikingJelly's own time-loop
  autograd function) and ``Norse`` (``norse.torch.LIF``): each library's current-based LIF
  neuron, the same model class as TSSL-BP's (a LIF membrane fed through a first-order
  synapse; zero reset), trained by BPTT with its default surrogate. Their fastest CPU form
  for a feed-forward net: every conv / linear / pool applied to all T·B frames at once
  (as tsslc does), only the neuron walks over time; the loss is the MSE of the output spike
  count against the label's.

Each round runs every method once (the order rotates between rounds); the table gives the
median over rounds of the wall time and of the process CPU time (all threads), for 1 and 2
threads, and the ratios to tsslc TSSL-BP and to the floor.

A peer that is not installed is reported and left out. snnTorch and Norse are in
scripts/setup.sh's pins (NeuroBench's and the NIR tests'); SpikingJelly is benchmark-only,
installed without letting it replace torch::

    .venv/bin/python -m pip install --no-deps spikingjelly==2.0.0 loguru

    python benchmarks/peers.py [--rounds 15] [--threads 1 2] [--nets mnist_cnn mlp_784_400_400_10] [--json F]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import NETS, batch, load_config_any, without_neurons  # noqa: E402

TSSLC = ("tsslc TSSL-BP", "tsslc TSSL-BP ref", "tsslc BPTT", "floor")
PEERS = ("snnTorch", "SpikingJelly", "Norse")
INSTALL = {"snnTorch": "snntorch==1.0.0", "SpikingJelly": "spikingjelly==2.0.0 loguru", "Norse": "norse==1.1.0"}


# ----------------------------------------------------------------------------- peers
def make_neuron(lib: str, cfg, threshold: float):
    """One layer of the library's current-based LIF neuron: (T, B, ...) current -> spikes."""
    tau_m, tau_s = cfg.tau_m, cfg.tau_s
    if lib == "snnTorch":
        import snntorch as snn

        lif = snn.Synaptic(alpha=1 - 1 / tau_s, beta=1 - 1 / tau_m, threshold=threshold, reset_mechanism="zero")

        def run(x):
            lif.reset_mem()
            return torch.stack([lif(x[t])[0] for t in range(x.shape[0])])

        return lif, run
    if lib == "SpikingJelly":
        from spikingjelly.activation_based import functional, layer, neuron

        mod = torch.nn.Sequential(layer.SynapseFilter(tau=tau_s, step_mode="m"),
                                  neuron.LIFNode(tau=tau_m, decay_input=False, v_threshold=threshold, v_reset=0.0,
                                                 step_mode="m"))

        def run(x):
            functional.reset_net(mod)
            return mod(x)

        return mod, run
    if lib == "Norse":
        from norse.torch import LIF, LIFParameters

        dt = 1e-3
        mod = LIF(p=LIFParameters(tau_syn_inv=torch.as_tensor(1 / (tau_s * dt)),
                                  tau_mem_inv=torch.as_tensor(1 / (tau_m * dt)),
                                  v_leak=torch.as_tensor(0.0), v_th=torch.as_tensor(threshold),
                                  v_reset=torch.as_tensor(0.0)), dt=dt)

        def run(x):
            return mod(x)[0]

        return mod, run
    raise ValueError(lib)


class PeerNet(torch.nn.Module):
    """A tsslc network's layers and weights, with the library's neuron in place of tsslc's."""

    def __init__(self, lib: str, net):
        super().__init__()
        from tsslc.layers import Flatten, SpikingConv2d, SpikingLinear, SumPool2d

        self.cfg = net.config
        self.ops = []
        self.weights = torch.nn.ParameterList()
        self.neurons = torch.nn.ModuleList()
        for layer in net.layers.values():
            if isinstance(layer, (SpikingConv2d, SpikingLinear)):
                self.weights.append(torch.nn.Parameter(layer.weight.detach().clone()))
                mod, run = make_neuron(lib, self.cfg, layer.threshold)
                self.neurons.append(mod)
                self.ops.append(("conv" if isinstance(layer, SpikingConv2d) else "linear",
                                 len(self.weights) - 1, run, layer))
            elif isinstance(layer, SumPool2d):
                self.ops.append(("pool", None, None, layer))
            elif isinstance(layer, Flatten):
                self.ops.append(("flatten", None, None, layer))

    def forward(self, x):
        T = self.cfg.n_steps
        s = x.unsqueeze(0).expand(T, *x.shape)  # the static image as the input current at every step
        for kind, i, run, layer in self.ops:
            if kind == "conv":
                B = s.shape[1]
                cur = F.conv2d(s.reshape(T * B, *s.shape[2:]), self.weights[i], None, layer.stride, layer.padding)
                s = run(cur.reshape(T, B, *cur.shape[1:]))
            elif kind == "linear":
                s = run(F.linear(s, self.weights[i]))
            elif kind == "pool":
                B = s.shape[1]
                k = layer.kernel_size
                p = F.avg_pool2d(s.reshape(T * B, *s.shape[2:]), k, k, 0, divisor_override=1) * layer.theta
                s = p.reshape(T, B, *p.shape[1:])
            else:
                s = s.reshape(T, s.shape[1], -1)
        return s

    def loss(self, spikes, y):
        counts = spikes.sum(0)
        target = torch.full_like(counts, float(self.cfg.undesired_count))
        target[torch.arange(len(y)), y] = float(self.cfg.desired_count)
        return 0.5 * ((counts - target) ** 2).sum() / self.cfg.n_steps


# ----------------------------------------------------------------------------- methods
def make_steps(net_name: str, x, y, cfg, base_state, wanted):
    """{method: step function}; each method gets its own copy of the same initial weights."""
    from tsslc.functional import neuron_impl
    from tsslc.network import Network
    from tsslc.training.trainer import make_optimizer, train_step

    steps = {}

    def tsslc_step(rule, impl, floor=False):
        c = copy.deepcopy(cfg)
        c.rule = rule
        net = Network(c)
        net.load_state_dict(base_state)
        if floor:
            without_neurons(net)
        opt = make_optimizer(net, c)

        def step():
            with neuron_impl(impl):
                train_step(net, opt, x, y, c)
        return step

    steps["tsslc TSSL-BP"] = tsslc_step("tsslbp", "fused")
    steps["tsslc TSSL-BP ref"] = tsslc_step("tsslbp", "reference")
    steps["tsslc BPTT"] = tsslc_step("bptt", "reference")
    steps["floor"] = tsslc_step("tsslbp", "fused", floor=True)
    for lib in wanted:
        try:
            ref = Network(copy.deepcopy(cfg))
            ref.load_state_dict(base_state)
            peer = PeerNet(lib, ref)
        except ImportError as e:
            print(f"{lib}: not installed ({e.name}); install it with: "
                  f".venv/bin/python -m pip install --no-deps {INSTALL[lib]}")
            continue
        opt = torch.optim.AdamW(peer.parameters(), lr=cfg.lr, betas=(0.9, 0.999))

        def step(peer=peer, opt=opt):
            spikes = peer(x)
            loss = peer.loss(spikes, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(peer.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                for w in peer.weights:
                    w.clamp_(-4.0, 4.0)
        steps[lib] = step
    return steps


def measure(steps: dict, rounds: int, warmup: int = 3) -> dict:
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            steps[name]()
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            c0, t0 = time.process_time(), time.perf_counter()
            steps[n]()
            wall[n].append(time.perf_counter() - t0)
            cpu[n].append(time.process_time() - c0)
    return {n: {"ms": 1000 * statistics.median(wall[n]), "cpu_ms": 1000 * statistics.median(cpu[n])} for n in names}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps of every method first")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS))
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--markdown", action="store_true", help="also print the figures as README's table")
    args = ap.parse_args()
    import platform

    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)  # "Triton not available" on CPU builds
    from tsslc.functional import neuron_path
    from tsslc.network import Network

    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{len(__import__('os').sched_getaffinity(0))} CPUs visible; batch 50, T = 5; median of {args.rounds} "
          f"interleaved rounds; fused neuron: {neuron_path(torch.zeros(1, 1), 'fused')}")
    report = {}
    for net_name in args.nets:
        cfg = load_config_any(NETS[net_name])
        x, y = batch(cfg, 50, "cpu")
        torch.manual_seed(0)
        base_state = Network(cfg).state_dict()
        for threads in args.threads:
            torch.set_num_threads(threads)
            steps = make_steps(net_name, x, y, cfg, base_state, args.peers)
            res = measure(steps, args.rounds, args.warmup)
            report[f"{net_name}/{threads}"] = res
            ours, floor = res["tsslc TSSL-BP"]["ms"], res["floor"]["ms"]
            print(f"\n{net_name}, {threads} thread{'s' if threads > 1 else ''}")
            print(f"{'method':20s} {'wall ms':>9s} {'CPU ms':>9s} {'vs TSSL-BP':>11s} {'vs floor':>9s}")
            for n, r in res.items():
                print(f"{n:20s} {r['ms']:9.1f} {r['cpu_ms']:9.1f} {r['ms'] / ours:10.2f}x {r['ms'] / floor:8.2f}x")
            peers = {n: r["ms"] for n, r in res.items() if n in PEERS}
            if peers:
                fastest = min(peers, key=peers.get)
                line = f"TSSL-BP / fastest peer ({fastest}) = {ours / peers[fastest]:.2f}"
                if "snnTorch" in peers:
                    line += f"; TSSL-BP / snnTorch = {ours / peers['snnTorch']:.2f}"
                print(line + f"; TSSL-BP / floor = {ours / floor:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.markdown:
        print("\n" + markdown(report))
    return 0


def markdown(report: dict) -> str:
    """README's table: wall ms per step (median), ratios to snnTorch and to the floor."""
    methods = [m for m in TSSLC + PEERS if all(m in r for r in report.values())]
    head = "| network | threads | " + " | ".join(methods) + " | TSSL-BP / snnTorch | TSSL-BP / floor |"
    lines = [head, "|" + "---|" * (len(methods) + 4)]
    for key, res in report.items():
        net, threads = key.split("/")
        ours = res["tsslc TSSL-BP"]["ms"]
        snn = f"{ours / res['snnTorch']['ms']:.2f}" if "snnTorch" in res else "–"
        cells = " | ".join(f"{res[m]['ms']:.1f}" for m in methods)
        lines.append(f"| {net} | {threads} | {cells} | {snn} | {ours / res['floor']['ms']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
