"""Sinabs <-> tsslc over NIR, in three steps (run by scripts/interop_check.sh):

  prepare  (tsslc's .venv):     input data and tsslc's generic NIR file of a small trained net
  sinabs   (.venv-sinabs, nir 1.0.4, Sinabs 3.1.3): Sinabs nets exported with sinabs.to_nir,
           simulated by Sinabs itself; and what sinabs.from_nir says to tsslc's file
  compare  (tsslc's .venv):     tsslc imports Sinabs' files with --convention sinabs and
           compares its float spikes with Sinabs'; prints one line per net; exits 1 when a
           TSSL-BP-compatible Sinabs net does not agree 100 %.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np

T = 5
N = 120
# (name, Sinabs neuron, TSSL-BP-compatible?)
NETS = [("mlp_iaf_single_reset", True), ("cnn_iaf_single_reset", True), ("mlp_lif_single_reset", True),
        ("mlp_iaf_default", False)]


def prepare(work: Path) -> None:
    from tsslc.data.digits import digits_arrays
    from tsslc.ir import nir_io
    from tsslc.ir.export import graph_from_network
    from tsslc.config import load_config
    from tsslc.data.digits import load_digits_datasets
    from tsslc.training.trainer import fit

    np.save(work / "x.npy", digits_arrays()[2][:N])
    train_set, test_set = load_digits_datasets()
    cfg = load_config(Path(__file__).resolve().parent.parent / "examples" / "digits.yaml")
    graph = graph_from_network(fit(cfg, train_set, test_set, epochs=1, seed=0).network)
    nir_io.write(graph, work / "tsslc_generic.nir")
    try:
        nir_io.to_nir(graph, consumer="sinabs")
    except nir_io.NIRError as e:
        (work / "refusal.txt").write_text(str(e))


def sinabs_side(work: Path) -> None:
    import nir
    import sinabs
    import sinabs.layers as sl
    import torch
    from sinabs.activation import MembraneReset, SingleSpike

    x = torch.from_numpy(np.load(work / "x.npy"))
    report = {}
    try:
        sinabs.from_nir(nir.read(work / "tsslc_generic.nir"), num_timesteps=T)
        report["tsslc_generic"] = "loaded"
    except Exception as e:  # what a user meets with a generic file
        report["tsslc_generic"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
    single = dict(spike_fn=SingleSpike, reset_fn=MembraneReset())
    torch.manual_seed(0)
    for name, _ in NETS:
        neuron = (lambda: sl.IAFSqueeze(num_timesteps=T)) if name.endswith("default") else \
            (lambda: sl.LIFSqueeze(tau_mem=5.0, num_timesteps=T, **single)) if "_lif_" in name else \
            (lambda: sl.IAFSqueeze(num_timesteps=T, **single))
        if name.startswith("cnn"):
            net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), neuron(), sl.SumPool2d(2),
                                      torch.nn.Flatten(), torch.nn.Linear(64, 10, bias=False), neuron())
            inp = x
        else:
            net = torch.nn.Sequential(torch.nn.Linear(64, 40, bias=False), neuron(),
                                      torch.nn.Linear(40, 10, bias=False), neuron())
            inp = x.reshape(len(x), -1)
        with torch.no_grad():
            for p in (m.weight for m in net if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))):
                p.mul_(8.0 if name.startswith("cnn") else 20.0 if "_lif_" in name else 6.0)
            rep = inp[:, None].expand(-1, T, *inp.shape[1:]).reshape(-1, *inp.shape[1:])  # (B*T, ...)
            ng = sinabs.to_nir(net, rep[:T])
            for m in net.modules():
                if hasattr(m, "reset_states"):
                    m.reset_states()
            out = net(rep).reshape(len(inp), T, 10)
        try:  # as a user would; Sinabs leaves some types empty, which nir.write cannot store
            nir.write(work / f"{name}.nir", ng)
            report[name] = "file"
        except Exception as e:
            (work / f"{name}.nir").unlink(missing_ok=True)  # nir.write leaves its partial file
            report[name] = f"graph object (nir.write: {type(e).__name__}: {str(e).splitlines()[0]})"
            with open(work / f"{name}.pkl", "wb") as fh:  # the graph object, handed to tsslc's process
                pickle.dump(ng, fh)
        np.save(work / f"{name}.npy", out.numpy())
    (work / "sinabs.json").write_text(json.dumps(report))


def compare(work: Path) -> int:
    import torch

    from tsslc.ir import interpreter, nir_io

    x = np.load(work / "x.npy")
    report = json.loads((work / "sinabs.json").read_text())
    refusal = (work / "refusal.txt").read_text() if (work / "refusal.txt").exists() else "written (!)"
    print(f"tsslc -> Sinabs: tsslc nir export --for sinabs: {refusal}")
    print(f"tsslc -> Sinabs: sinabs.from_nir on tsslc's generic file: {report['tsslc_generic']}")
    status = 0
    for name, compatible in NETS:
        if (work / f"{name}.nir").exists():
            g = nir_io.read(work / f"{name}.nir", convention="sinabs", n_steps=T)
        else:
            with open(work / f"{name}.pkl", "rb") as fh:
                g = nir_io.from_nir(pickle.load(fh), convention="sinabs", n_steps=T)
        inp = x if name.startswith("cnn") else x.reshape(len(x), -1)
        ours = interpreter.run(g, inp).output_spikes
        theirs = torch.from_numpy(np.load(work / f"{name}.npy")).transpose(0, 1)
        agree = float((ours == theirs).float().mean())
        print(f"Sinabs {name} -> tsslc (--convention sinabs): {agree * 100:.2f} % of output spikes agree "
              f"({int(ours.sum())} tsslc, {int(theirs.sum())} Sinabs spikes; via {report[name]}; "
              f"{'TSSL-BP-compatible' if compatible else 'measured'})")
        if compatible and agree != 1.0 or ours.sum() < 50:
            status = 1
    return status


if __name__ == "__main__":
    step, work = sys.argv[1], Path(sys.argv[2])
    if step == "prepare":
        prepare(work)
    elif step == "sinabs":
        sinabs_side(work)
    else:
        sys.exit(compare(work))
