"""The NIR road with the real packages (snnTorch 1.0.0, Norse 1.1.0, Rockpool 3.1.0; Sinabs
needs nir <= 1.0.4 and runs in scripts/interop_check.sh): tsslc's files load in each
framework as written and its own simulation spikes as tsslc's float interpreter does; each
framework's own export imports with a documented ``--convention`` and no edit. Figures are
printed (``-s``) for the README table."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import nir
import numpy as np
import pytest
import torch

from tsslc.cli import main
from tsslc.ir import interpreter, nir_io
from tsslc.ir import io as model_io

T = 5


def quiet():
    """The frameworks print and warn on every import (snnTorch's "[warning] scaling ...")."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    stack.callback(logging.disable, logging.NOTSET)
    return stack


def agreement(a, b) -> float:
    return float((torch.as_tensor(a).float() == torch.as_tensor(b).float()).float().mean())


def export_cli(graph, tmp_path, consumer, *extra):
    model = model_io.save(graph, tmp_path / "m.tsslc")
    out = tmp_path / f"m_{consumer}.nir"
    assert main(["nir", "export", str(model), "-o", str(out), "--for", consumer, *extra]) == 0
    with quiet():
        return nir.read(out)  # as a user would: nir's own reader, type check on


def step_each(module, xs, fresh):
    """(T, B, ...) outputs of a stepped module ``out, state = m(x, state)``: batched when
    ``xs`` is (B, n) input, else one unbatched sample at a time (NIR Flatten(start_dim=0) in
    the net; see tsslc.ir.nir_io)."""
    outs = []
    with torch.no_grad(), quiet():
        for x in xs:
            fresh()
            state, seq = None, []
            for _ in range(T):
                o, state = module(x, state)
                seq.append(o)
            outs.append(torch.stack(seq))
    return torch.stack(outs, 1) if len(outs) > 1 else outs[0]


# --- tsslc -> frameworks ------------------------------------------------------------------

NETS = ["digits_graph", "digits_cnn_graph"]


def _inputs(graph, digits_test_arrays, ng):
    x = torch.from_numpy(digits_test_arrays[0])
    shape = tuple(int(d) for d in np.asarray(next(iter(ng.inputs.values())).input_type["input"]))
    batched = len(shape) == 1  # a flat input: the importers' Flatten is not involved
    xs = [x.reshape(len(x), -1)] if batched else list(x)
    return x, xs


@pytest.mark.parametrize("net", NETS)
def test_snntorch_simulates_tsslc_export_exactly(net, request, digits_test_arrays, tmp_path):
    from snntorch import utils as snn_utils
    from snntorch.import_nir import import_from_nir

    graph = request.getfixturevalue(net)
    ng = export_cli(graph, tmp_path, "snntorch")
    with quiet():
        m = import_from_nir(ng)
    x, xs = _inputs(graph, digits_test_arrays, ng)
    theirs = step_each(m, xs, lambda: snn_utils.reset(m))
    ours = interpreter.run(graph, x.numpy()).output_spikes
    print(f"tsslc -> snnTorch {net}: {agreement(theirs, ours) * 100:.2f} % of output spikes agree "
          f"({int(ours.sum())} spikes)")
    assert ours.sum() > 100 and torch.equal(theirs, ours)


@pytest.mark.parametrize("net", NETS)
def test_norse_simulates_tsslc_export_exactly(net, request, digits_test_arrays, tmp_path):
    import norse.torch as nt

    graph = request.getfixturevalue(net)
    ng = export_cli(graph, tmp_path, "norse")
    assert not any(isinstance(v, nir.LI) for v in ng.nodes.values())
    with quiet():
        m = nt.from_nir(ng)
    x, xs = _inputs(graph, digits_test_arrays, ng)
    theirs = step_each(m, xs, lambda: None)
    ours = interpreter.run(graph, x.numpy()).output_spikes
    print(f"tsslc -> Norse {net}: {agreement(theirs, ours) * 100:.2f} % of output spikes agree ({int(ours.sum())} spikes)")
    assert ours.sum() > 100 and torch.equal(theirs, ours)


def test_generic_export_names_survive_nirtorch(digits_graph, tmp_path):
    """The output PSC node no longer becomes 'output_psc' (the Output's name) under nirtorch."""
    ng = nir_io.to_nir(digits_graph)
    names = [nir_io.torch_name(n) for n in ng.nodes]
    assert len(set(names)) == len(names) and isinstance(ng.nodes["output.li"], nir.LI)
    import norse.torch as nt

    with quiet():
        nt.from_nir(ng)  # the generic file loads in Norse too (it maps LI to nothing)


def test_rockpool_loads_approximate_mlp_and_agreement_is_measured(digits_graph, digits_test_arrays, tmp_path, capsys):
    from rockpool.nn.modules import from_nir

    model = model_io.save(digits_graph, tmp_path / "m.tsslc")
    assert main(["nir", "export", str(model), "-o", str(tmp_path / "r.nir"), "--for", "rockpool"]) == 1
    err = capsys.readouterr().err
    assert "refused" in err and "floor(v/threshold)" in err and not (tmp_path / "r.nir").exists()
    ng = export_cli(digits_graph, tmp_path, "rockpool", "--approximate")
    with quiet():
        m = from_nir(ng)
        x = torch.from_numpy(digits_test_arrays[0]).reshape(-1, 64)
        theirs, _ = m(x[:, None].expand(-1, T, -1).contiguous())  # Rockpool runs (B, T, n) at once
    theirs = theirs.detach().transpose(0, 1)
    ours = interpreter.run(digits_graph, x.reshape(-1, 1, 8, 8).numpy()).output_spikes
    agree = agreement(theirs, ours)
    multi = float((theirs > 1).float().mean())
    print(f"tsslc -> Rockpool digits_graph (--approximate): {agree * 100:.2f} % of output spike counts agree, "
          f"{multi * 100:.2f} % of entries with several spikes")
    assert 0.5 < agree < 1.0  # measured, not exact: several spikes per step and subtract-reset


def test_refusals_name_the_mismatch(digits_graph, digits_cnn_graph):
    for graph in (digits_graph, digits_cnn_graph):
        with pytest.raises(nir_io.NIRError, match="--for sinabs: refused, .*MultiSpike and MembraneSubtract"):
            nir_io.to_nir(graph, consumer="sinabs", approximate=True)
    with pytest.raises(nir_io.NIRError, match=r"no Conv2d, SumPool2d or Flatten mapping \(node 'conv_1.synapse'"):
        nir_io.to_nir(digits_cnn_graph, consumer="rockpool", approximate=True)
    with pytest.raises(nir_io.NIRError, match="--for snntorch: its importer assumes dt = 0.0001 s"):
        nir_io.to_nir(digits_graph, dt=1e-3, consumer="snntorch")


# --- frameworks -> tsslc ------------------------------------------------------------------


def _digits(n=120):
    from tsslc.data.digits import digits_arrays

    return torch.from_numpy(digits_arrays()[2][:n])


def _import(ng, tmp_path, convention, n_steps=T):
    """Through a file when nir can write the graph, as a user would; else the graph object."""
    try:
        with quiet():
            nir.write(tmp_path / "f.nir", ng)
    except Exception:  # Norse's conv exports (Conv2d input_shape None, Flatten as None)
        return nir_io.from_nir(ng, convention=convention, n_steps=n_steps), "graph object"
    out = tmp_path / "f.tsslc"
    assert main(["nir", "import", str(tmp_path / "f.nir"), "-o", str(out), "--convention", convention,
                 "--n-steps", str(n_steps)]) == 0
    return model_io.load(out), "file"


def _snn_nets():
    import snntorch as snn

    def leaky(shape, out=False):
        return snn.Leaky(beta=torch.full(shape, 0.8), threshold=torch.ones(shape), init_hidden=True,
                         reset_mechanism="zero", output=out)

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 40, bias=False), leaky((40,)), torch.nn.Linear(40, 10, bias=False),
                              leaky((10,), True))
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), leaky((4, 8, 8)), torch.nn.AvgPool2d(2),
                              torch.nn.Flatten(start_dim=0), torch.nn.Linear(64, 10, bias=False), leaky((10,), True))
    with torch.no_grad():
        for net, k in ((mlp, 0.4), (cnn, 0.12)):
            for p in net.parameters():
                if p.dim() > 1:
                    p.mul_(1.0 / k)
    return {"mlp": mlp, "cnn": cnn}


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_snntorch_export_imports_and_matches(kind, tmp_path):
    """snnTorch's exporter needs tensor beta/threshold and an unbatched sample; Leaky with
    reset_mechanism='zero' is TSSL-BP's neuron, so the spikes agree exactly."""
    from snntorch import utils as snn_utils
    from snntorch.export_nir import export_to_nir

    net = _snn_nets()[kind]
    x = _digits()
    xs = list(x.reshape(len(x), -1)) if kind == "mlp" else list(x)
    with quiet():
        ng = export_to_nir(net, xs[0])
    g, how = _import(ng, tmp_path, "snntorch")

    def run_net(inp, state):
        out = net(inp)
        return out[0], None

    theirs = step_each(run_net, xs, lambda: snn_utils.reset(net))
    ours = interpreter.run(g, (x.reshape(len(x), -1) if kind == "mlp" else x).numpy()).output_spikes
    print(f"snnTorch {kind} -> tsslc ({how}, --convention snntorch): {agreement(theirs, ours) * 100:.2f} % "
          f"({int(ours.sum())} spikes)")
    assert ours.sum() > 50 and torch.equal(theirs, ours)


def _norse_nets():
    import norse.torch as nt

    def box(shape):
        return nt.LIFBoxCell(nt.LIFBoxParameters(tau_mem_inv=torch.full(shape, 200.0), v_th=torch.full(shape, 0.2),
                                                 v_leak=torch.zeros(shape)))

    torch.manual_seed(1)
    mlp = nt.SequentialState(torch.nn.Linear(64, 40, bias=False), box((40,)), torch.nn.Linear(40, 10, bias=False),
                             box((10,)))
    cnn = nt.SequentialState(torch.nn.Conv2d(1, 4, 3, padding=1), box((4, 8, 8)), torch.nn.Flatten(),
                             torch.nn.Linear(256, 10, bias=False), box((10,)))
    torch.nn.init.zeros_(cnn[0].bias)  # Norse's exporter needs a conv bias; TSSL-BP has none
    cuba = nt.SequentialState(torch.nn.Linear(64, 40, bias=False),
                              nt.LIFCell(nt.LIFParameters(tau_mem_inv=torch.full((40,), 200.0),
                                                          tau_syn_inv=torch.full((40,), 1000.0 / 3),
                                                          v_th=torch.full((40,), 0.2), v_leak=torch.zeros(40))),
                              torch.nn.Linear(40, 10, bias=False),
                              nt.LIFCell(nt.LIFParameters(tau_mem_inv=torch.full((10,), 200.0),
                                                          tau_syn_inv=torch.full((10,), 1000.0 / 3),
                                                          v_th=torch.full((10,), 0.2), v_leak=torch.zeros(10))))
    with torch.no_grad():
        for net, k in ((mlp, 3.0), (cnn, 8.0), (cuba, 3.0)):
            for p in net.parameters():
                if p.dim() > 1:
                    p.mul_(k)
    return {"mlp": mlp, "cnn": cnn, "cubalif": cuba}


@pytest.mark.parametrize("kind", ["mlp", "cnn", "cubalif"])
def test_norse_export_imports(kind, tmp_path):
    """Norse writes tau = dt*tau (``--convention norse``), Input/Output with the sample's batch
    dimension, and a None node for Flatten; LIFBoxCell is TSSL-BP's neuron (exact), LIFCell
    updates the voltage with the previous step's current (measured)."""
    import norse.torch as nt

    net = _norse_nets()[kind]
    x = _digits()
    inp = x.reshape(len(x), -1) if kind != "cnn" else x
    with quiet():
        ng = nt.to_nir(net, inp[:1])
    g, how = _import(ng, tmp_path, "norse")
    theirs = step_each(lambda a, s: net(a, s), [inp], lambda: None)
    ours = interpreter.run(g, inp.numpy()).output_spikes
    agree = agreement(theirs, ours)
    print(f"Norse {kind} -> tsslc ({how}, --convention norse): {agree * 100:.2f} % ({int(ours.sum())} spikes)")
    assert ours.sum() > 50
    if kind == "cubalif":
        assert 0.5 < agree < 1.0
    else:
        assert torch.equal(theirs, ours)


def test_rockpool_export_imports_and_agreement_is_measured(tmp_path):
    """Rockpool writes a leading batch dimension and r = tau*exp(-dt/tau)/dt (``--convention
    rockpool`` solves dt from it); its LIFTorch spikes several times per step and subtracts
    (measured). It has no conv layers to export."""
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch, to_nir

    torch.manual_seed(2)
    net = Sequential(LinearTorch((64, 40)), LIFTorch(40, tau_mem=0.005, tau_syn=0.003, threshold=1.0),
                     LinearTorch((40, 10)), LIFTorch(10, tau_mem=0.005, tau_syn=0.003, threshold=1.0))
    with torch.no_grad():
        for mod in (net[0], net[2]):
            mod.weight.mul_(2.0)
    with quiet():
        ng = to_nir(net)
    g, how = _import(ng, tmp_path, "rockpool")
    x = _digits().reshape(-1, 64)
    with quiet(), torch.no_grad():
        theirs, _, _ = net(x[:, None].expand(-1, T, -1).contiguous())
    theirs = theirs.transpose(0, 1)
    ours = interpreter.run(g, x.numpy()).output_spikes
    agree = agreement(theirs, ours)
    print(f"Rockpool mlp -> tsslc ({how}, --convention rockpool): {agree * 100:.2f} % "
          f"({int(ours.sum())} tsslc spikes, {int(theirs.sum())} Rockpool spikes)")
    assert ours.sum() > 50 and 0.5 < agree <= 1.0


# --- clear errors on what cannot be imported ------------------------------------------------


def test_import_errors_are_one_line(tmp_path, digits_graph):
    ng = nir_io.to_nir(digits_graph)
    ng.metadata["dt"] = "fast"
    with pytest.raises(nir_io.NIRError, match="metadata dt 'fast' is not a number"):
        nir_io.from_nir(ng)
    with pytest.raises(nir_io.NIRError, match="'n_steps' must be <= 1000000"):
        nir_io.from_nir(ng, dt=1e-3, n_steps=10**12)
    nodes = dict(ng.nodes)
    nodes["hidden"] = nir.Threshold(threshold=np.ones(100))
    bad = nir.NIRGraph(nodes=nodes, edges=ng.edges, type_check=False)
    with pytest.raises(nir_io.NIRError, match=r"unsupported NIR node\(s\): 'hidden' \(Threshold\)"):
        nir_io.from_nir(bad, dt=1e-3)


def test_compile_an_imported_graph_with_calibration_data(digits_graph, digits_test_arrays, tmp_path, capsys):
    """An imported graph names no data set: compile takes --calibration-data (static (B, *shape))."""
    ng = nir_io.to_nir(digits_graph, consumer="snntorch")
    for key in ("tsslc_metadata", "tsslc_order"):  # as a foreign file: no tsslc metadata (no data set)
        del ng.metadata[key]
    path = nir_io.write_graph(ng, tmp_path / "d.nir")
    model = tmp_path / "imp.tsslc"
    assert main(["nir", "import", str(path), "-o", str(model), "--n-steps", "5"]) == 0
    out = tmp_path / "c.tsslc"
    assert main(["compile", str(model), "--target", "loihi2", "-o", str(out)]) == 1
    assert "names no data set" in capsys.readouterr().err and not out.exists()
    x = digits_test_arrays[0][:64]
    np.save(tmp_path / "bad.npy", x)  # (B, 1, 8, 8): the imported graph's input is flat (64,)
    assert main(["compile", str(model), "--target", "loihi2", "-o", str(out), "--calibration-data",
                 str(tmp_path / "bad.npy")]) == 1
    err = capsys.readouterr().err
    assert "bad.npy: input of shape (64, 1, 8, 8) fits neither static (B, 64) nor time-first (T=5, B, 64)" in err \
        and not out.exists()
    np.save(tmp_path / "words.npy", np.array(["a", "b"]))
    assert main(["compile", str(model), "--target", "loihi2", "-o", str(out), "--calibration-data",
                 str(tmp_path / "words.npy")]) == 1
    assert "is not numeric" in capsys.readouterr().err
    np.save(tmp_path / "cal.npy", x.reshape(64, -1))
    assert main(["compile", str(model), "--target", "loihi2", "-o", str(out), "--calibration-data",
                 str(tmp_path / "cal.npy")]) == 0
    compiled = model_io.load(out)
    assert compiled.metadata["quantization"]["calibration_samples"] == 64
