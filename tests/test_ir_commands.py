"""`tsslc export`, `tsslc inspect` and `tsslc nir` on real files."""

from __future__ import annotations

import torch

from tsslc.cli import main
from tsslc.config import load_config
from tsslc.ir import io
from tsslc.ir.export import graph_from_network
from tsslc.network import Network
from tsslc.passes.structural import drop_dropout
from tsslc.training.checkpoint import save_checkpoint
from tsslc.training.trainer import make_optimizer

from conftest import EXAMPLES


def test_export_inspect_and_nir_round_trip(digits_fit, tmp_path, capsys):
    net = digits_fit.network
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.parent.mkdir()
    save_checkpoint(ckpt, net, make_optimizer(net, net.config), net.config, epoch=15, seed=0, metrics=digits_fit.history)
    model = tmp_path / "digits.tsslc"
    assert main(["export", str(ckpt.parent), "-o", str(model)]) == 0
    graph = io.load(model)
    expected = graph_from_network(net)
    assert graph.metadata.pop("epoch") == 15 and graph.metadata.pop("test_acc") == digits_fit.test_accuracy
    assert graph == expected

    capsys.readouterr()
    assert main(["inspect", str(model), "--png", str(tmp_path / "g.png")]) == 0
    out = capsys.readouterr().out
    assert "hidden.synapse" in out and "  110  " in out  # 100 + 10 neurons
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(["nir", "export", str(model), "-o", str(tmp_path / "d.nir"), "--dt", "0.001"]) == 0
    assert main(["nir", "import", str(tmp_path / "d.nir"), "-o", str(tmp_path / "back.tsslc")]) == 0
    assert io.load(tmp_path / "back.tsslc") == drop_dropout(io.load(model))


def test_inspect_counts_the_papers_mnist_cnn(tmp_path, capsys):
    torch.manual_seed(0)
    graph = graph_from_network(Network(load_config(EXAMPLES / "mnist_cnn.yaml")))
    io.save(graph, tmp_path / "mnist.tsslc")
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "mnist.tsslc")]) == 0
    total = [l for l in capsys.readouterr().out.splitlines() if l.startswith("total")][0].split()
    # neurons 15·24·24 + 40·8·8 + 300 + 10; synapses 8640·25 + 2560·15·25 + 640·300 + 300·10
    assert total[1:3] == ["11,510", "1,371,000"]


def test_errors_are_one_line_without_traceback(tmp_path, capsys):
    (tmp_path / "bad.tsslc").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    assert main(["inspect", str(tmp_path / "bad.tsslc")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tsslc inspect: error:") and "bad.tsslc" in err[0]
    assert main(["export", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "m.tsslc")]) == 1
    assert "missing.pt" in capsys.readouterr().err
    assert main(["nir", "import", str(tmp_path / "bad.tsslc"), "-o", str(tmp_path / "m.tsslc")]) == 1
    assert "bad.tsslc" in capsys.readouterr().err
    assert not (tmp_path / "m.tsslc").exists()
