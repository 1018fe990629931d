"""NIR interchange: tsslc → NIR → tsslc is exact; hand-built and snnTorch-written NIR graphs
import and simulate as their equations (tsslc.ir.nir_io's documented discretisation) say."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from test_ir_interpreter_conv import trained_conv_net
from tsslc.ir import interpreter, nir_io
from tsslc.passes.structural import drop_dropout


def _identical(a, b):
    assert set(a.spikes) == set(b.spikes)
    for n in a.spikes:
        assert torch.equal(a.spikes[n], b.spikes[n]), n


def test_digits_round_trip_through_a_nir_file_is_exact(digits_graph, digits_test_arrays, tmp_path):
    path = nir_io.write(digits_graph, tmp_path / "digits.nir", dt=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.nir"]
    ng = nir.read(path)  # a plain NIR file nir itself reads, with typed CubaLIF nodes and the recorded dt
    assert isinstance(ng.nodes["hidden"], nir.CubaLIF) and isinstance(ng.nodes["hidden.synapse"], nir.Linear)
    assert np.allclose(ng.nodes["hidden"].tau_syn, 3e-3) and np.allclose(ng.nodes["hidden"].r, 5.0)
    assert float(ng.metadata["dt"]) == 1e-3 and "Euler" in str(ng.metadata["discretization"])
    back = nir_io.read(path)
    assert back == digits_graph
    x = digits_test_arrays[0]
    _identical(interpreter.run(digits_graph, x), interpreter.run(back, x))


@pytest.mark.parametrize("dt", [1e-3, 1e-4, 0.37, 1.0])
def test_conv_net_with_pooling_round_trip_is_exact(dt):
    _, graph, x, _ = trained_conv_net()
    ng = nir_io.to_nir(graph, dt=dt)
    kinds = {type(v).__name__ for v in ng.nodes.values()}
    assert {"Conv2d", "SumPool2d", "Scale", "Flatten", "CubaLIF", "LI"} <= kinds
    back = nir_io.from_nir(ng)
    assert back == drop_dropout(graph)  # dropout is the identity at inference
    if dt == 1e-3:
        _identical(interpreter.run(graph, x), interpreter.run(back, x))


# --- foreign graphs, simulated by the NIR equations directly ----------------------------


def nir_reference(ng, x, dt, n_steps):
    """Plain numpy (float64) simulation of a NIR graph by the discretisation tsslc documents:
    forward Euler, synaptic current before voltage, no delay. x: (B, T, *input shape)."""
    order, done = [], set()
    preds = {k: [s for s, d in ng.edges if d == k] for k in ng.nodes}
    while len(order) < len(ng.nodes):
        for k in sorted(ng.nodes):
            if k not in done and all(p in done for p in preds[k]):
                order.append(k)
                done.add(k)
    state: dict = {}
    spikes: dict = {k: [] for k, v in ng.nodes.items() if isinstance(v, (nir.LIF, nir.IF, nir.CubaLIF))}
    out = []
    for t in range(n_steps):
        val = {}
        for k in order:
            node = ng.nodes[k]
            inp = sum(val[p] for p in preds[k]) if preds[k] else None
            if isinstance(node, nir.Input):
                val[k] = x[:, t].astype(np.float64)
            elif isinstance(node, (nir.Linear, nir.Affine)):
                val[k] = inp @ np.asarray(node.weight, np.float64).T + (node.bias if isinstance(node, nir.Affine) else 0)
            elif isinstance(node, nir.Conv2d):
                w = torch.from_numpy(np.asarray(node.weight, np.float64))
                val[k] = torch.nn.functional.conv2d(torch.from_numpy(inp), w, None, int(np.ravel(node.stride)[0]),
                                                    int(np.ravel(node.padding)[0]), 1, node.groups).numpy()
            elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
                kk = int(np.ravel(node.kernel_size)[0])
                b, c, h, w_ = inp.shape
                s = inp[:, :, : h // kk * kk, : w_ // kk * kk].reshape(b, c, h // kk, kk, w_ // kk, kk).sum((3, 5))
                val[k] = s / (kk * kk) if isinstance(node, nir.AvgPool2d) else s
            elif isinstance(node, nir.Flatten):
                val[k] = inp.reshape(inp.shape[0], -1)
            elif isinstance(node, nir.Scale):
                val[k] = inp * node.scale
            elif isinstance(node, nir.Output):
                val[k] = inp
                out.append(inp)
            else:  # neurons
                v = state.get(k, np.zeros_like(inp))
                if isinstance(node, nir.CubaLIF):
                    i_syn = state.get(k + ".I", np.zeros_like(inp))
                    i_syn = i_syn + dt / node.tau_syn * (-i_syn + node.w_in * inp)
                    state[k + ".I"] = i_syn
                    v = v + dt / node.tau_mem * (node.v_leak - v + node.r * i_syn)
                elif isinstance(node, nir.LIF):
                    v = v + dt / node.tau * (node.v_leak - v + node.r * inp)
                else:  # IF
                    v = v + dt * node.r * inp
                z = (v > node.v_threshold).astype(np.float64)
                state[k] = np.where(z > 0, node.v_reset, v)
                spikes[k].append(z)
                val[k] = z
    return {k: np.stack(v) for k, v in spikes.items()}


def hand_built_graph():
    """Input(1×6×6) → Conv2d → IF → AvgPool2d → Flatten → Affine(zero bias) → CubaLIF → Linear → LIF → Output,
    dt = 0.5 s (time constants 1.5 s and 2 s are 3 and 4 steps)."""
    rng = np.random.default_rng(7)
    f = np.full
    nodes = {
        "in": nir.Input(input_type={"input": np.array([1, 6, 6])}),
        "conv": nir.Conv2d(input_shape=(6, 6), weight=rng.normal(0, 0.6, (4, 1, 3, 3)), stride=1, padding=1, dilation=1,
                           groups=1, bias=np.zeros(4)),
        "if": nir.IF(r=f((4, 6, 6), 2.0), v_threshold=f((4, 6, 6), 1.0)),
        "pool": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([4, 3, 3])}, start_dim=0, end_dim=-1),
        "fc1": nir.Affine(weight=rng.normal(0, 1.5, (8, 36)), bias=np.zeros(8)),
        "cuba": nir.CubaLIF(tau_syn=f(8, 1.5), tau_mem=f(8, 2.0), r=np.linspace(1, 3, 8), v_leak=f(8, 0.0),
                            v_threshold=f(8, 0.4), w_in=f(8, 1.5)),
        "fc2": nir.Linear(weight=rng.normal(0, 1.5, (3, 8))),
        "lif": nir.LIF(tau=f(3, 2.0), r=f(3, 1.0), v_leak=f(3, 0.0), v_threshold=f(3, 0.3)),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])))


def test_hand_built_nir_graph_simulates_as_its_equations_say(tmp_path):
    ng = hand_built_graph()
    nir.write(tmp_path / "hand.nir", ng)
    with pytest.raises(nir_io.NIRError, match="does not record its time step.*--dt"):
        nir_io.read(tmp_path / "hand.nir")
    g = nir_io.read(tmp_path / "hand.nir", dt=0.5, n_steps=12)
    assert g["cuba"].tau_m == 4.0 and g["if"].tau_m == float("inf") and g["if"].tau_s == 3.0  # CubaLIF's tau_syn
    x = np.random.default_rng(1).uniform(0, 1.5, (16, 12, 1, 6, 6))
    ref = nir_reference(ng, x, 0.5, 12)
    res = interpreter.run(g, x.swapaxes(0, 1), dtype=torch.float64)  # tsslc takes time-first input
    for name in ("if", "cuba", "lif"):
        got = res.spikes[name].numpy()
        assert ref[name].sum() > 0 and got.sum() > 0, name
        assert np.array_equal(got, ref[name]), name


def test_unsupported_and_unconvertible_graphs_are_one_clear_error():
    nodes = {
        "in": nir.Input(input_type={"input": np.array([3])}),
        "delay": nir.Delay(delay=np.ones(3)),
        "thr": nir.Threshold(threshold=np.ones(3)),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }
    ng = nir.NIRGraph(nodes=nodes, edges=[("in", "delay"), ("delay", "thr"), ("thr", "out")], type_check=False)
    with pytest.raises(nir_io.NIRError, match=r"unsupported NIR node\(s\): 'delay' \(Delay\), 'thr' \(Threshold\)"):
        nir_io.from_nir(ng, dt=1e-3)
    ok = hand_built_graph()
    ok.nodes["fc1"] = nir.Affine(weight=ok.nodes["fc1"].weight, bias=np.ones(8))
    with pytest.raises(nir_io.NIRError, match="'fc1' \\(Affine\\): a non-zero bias"):
        nir_io.from_nir(ok, dt=0.5)
    with pytest.raises(nir_io.NIRError, match="unknown dt convention 'brian'"):
        nir_io.from_nir(ok, convention="brian")


def test_bad_nir_files(tmp_path, digits_graph):
    from tsslc.ir import io

    (tmp_path / "junk.nir").write_bytes(b"not a file at all")
    with pytest.raises(nir_io.NIRError, match="junk.nir is not a NIR file"):
        nir_io.read(tmp_path / "junk.nir")
    io.save(digits_graph, tmp_path / "model.tsslc")
    with pytest.raises(nir_io.NIRError, match="it is a tsslc model file"):
        nir_io.read(tmp_path / "model.tsslc")
    good = nir_io.write(digits_graph, tmp_path / "d.nir").read_bytes()
    (tmp_path / "cut.nir").write_bytes(good[: len(good) // 2])
    with pytest.raises(nir_io.NIRError, match="cut.nir"):
        nir_io.read(tmp_path / "cut.nir")


def test_graph_written_by_snntorch_imports_and_matches_snntorch():
    """snnTorch 1.0 (installed with NeuroBench; its exporter needs nirtorch 2.6) writes Leaky as
    NIR LIF with dt = 1e-4 and r = τ/dt; reset_mechanism='zero' is tsslc's (and NIR's) reset."""
    import snntorch as snn
    from snntorch import utils as snn_utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(6, 12, bias=False),
        snn.Leaky(beta=torch.full((12,), 0.75), threshold=torch.ones(12), init_hidden=True, reset_mechanism="zero"),
        torch.nn.Linear(12, 4, bias=False),
        snn.Leaky(beta=torch.full((4,), 0.5), threshold=torch.full((4,), 0.5), init_hidden=True,
                  reset_mechanism="zero", output=True),
    )
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.mul_(3.0)
    # snnTorch exports per-neuron parameters only when given as tensors; the sample has no batch dim
    ng = export_to_nir(net, torch.randn(6))
    assert {type(v).__name__ for v in ng.nodes.values()} == {"Input", "Linear", "LIF", "Output"}
    g = nir_io.from_nir(ng, convention="snntorch", n_steps=20)
    x = torch.rand(64, 20, 6) * 1.5
    snn_utils.reset(net)
    with torch.no_grad():
        theirs = torch.stack([net(x[:, t])[0] for t in range(20)])
    ref = nir_reference(ng, x.numpy(), nir_io.CONVENTIONS["snntorch"].dt, 20)
    ours = interpreter.run(g, x.transpose(0, 1).numpy(), dtype=torch.float64)  # time first
    out = g.output_population
    assert theirs.sum() > 100 and ours.spikes["1"].sum() > 100
    assert np.array_equal(ours.spikes[out].numpy(), ref[out])  # the NIR equations, exactly
    agreement = float((ours.spikes[out].float() == theirs).float().mean())
    print(f"snnTorch vs tsslc spike agreement: {agreement:.5f}")
    assert agreement > 0.99  # snnTorch's float32 β vs τ = dt/(1-β) rounded to float32 by its exporter
