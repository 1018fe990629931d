"""Hostile and clumsy values and sizes (issue 12, items 1 and 5): a table of bad inputs, each
run through the real command line (``tsslc.cli.main`` in this process, a few as ``python -m
tsslc`` subprocesses). Every case must exit non-zero with exactly one error line that names
the file, key or node, print no traceback, and leave its input files byte for byte as they
were. The bad files are made from one small digits run (1 epoch, seed 0)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from tsslc.cli import main

REPO = Path(__file__).resolve().parent.parent
DIGITS = REPO / "examples" / "digits.yaml"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A digits run (1 epoch), its float model, the loihi2 compile and the NIR export."""
    d = tmp_path_factory.mktemp("hostile_base")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for argv in (["train", str(DIGITS), "-o", str(d / "run"), "--epochs", "1", "--eval-samples", "50", "--no-progress"],
                 ["export", str(d / "run"), "-o", str(d / "float.tsslc")],
                 ["compile", str(d / "float.tsslc"), "--target", "loihi2", "-o", str(d / "l2.tsslc"), "--calibration", "32"],
                 ["nir", "export", str(d / "float.tsslc"), "-o", str(d / "m.nir")]):
        assert main(argv) == 0, argv
    torch.set_num_threads(threads)
    return d


# --- builders: each writes one bad input into the case folder and returns its path ------------


def config(w: Path, edit=None, text: str | None = None) -> Path:
    p = w / "net.yaml"
    if text is not None:
        p.write_text(text)
        return p
    raw = yaml.safe_load(DIGITS.read_text())
    if edit:
        edit(raw)
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


def net(**kv):
    return lambda r: r["Network"].update(kv)


def layer(name="hidden", **kv):
    return lambda r: r["Layers"][name].update(kv)


def model(w: Path, base: Path, doc=None, h5=None, src="float.tsslc", name="m.tsslc") -> Path:
    p = w / name
    shutil.copy(base / src, p)
    with h5py.File(p, "r+") as f:
        if doc is not None:
            d = json.loads(f["graph.json"][()].tobytes())
            doc(d)
            del f["graph.json"]
            f.create_dataset("graph.json", data=np.frombuffer(json.dumps(d).encode(), np.uint8))
        if h5 is not None:
            h5(f)
    return p


def node(d, name):
    return next(n for n in d["nodes"] if n["name"] == name)


def attr(name, **kv):
    return lambda d: node(d, name)["attrs"].update(kv)


def meta(**kv):
    return lambda d: d["metadata"].update(kv)


def array(i, key, value):
    """Replace array ``key`` of node index ``i`` (graph order) by ``value`` (a function of the old one)."""
    def edit(f):
        old = f[f"arrays/{i}/{key}"][()]
        del f[f"arrays/{i}/{key}"]
        new = value(old)
        f.create_dataset(f"arrays/{i}/{key}", data=new)
    return edit


def set_at(v):
    def f(a):
        a = a.copy()
        a.flat[3] = v
        return a
    return f


def huge_array(i, key, shape, dtype="float32"):
    def edit(f):
        del f[f"arrays/{i}/{key}"]
        f.create_dataset(f"arrays/{i}/{key}", shape=shape, dtype=dtype, chunks=(1,) * len(shape))  # no data written
    return edit


def assignment(name, value):
    def edit(d):
        a = d["metadata"]["mapping"]["assignment"]
        a[name] = value(a[name]) if callable(value) else value
    return edit


def ckpt(w: Path, base: Path, edit) -> Path:
    p = w / "checkpoint.pt"
    c = torch.load(base / "run" / "checkpoint.pt", weights_only=True)
    edit(c)
    torch.save(c, p)
    return p


def cset(**kv):
    return lambda c: c.update(kv)


def nirfile(w: Path, base: Path, edit) -> Path:
    p = w / "m.nir"
    shutil.copy(base / "m.nir", p)
    with h5py.File(p, "r+") as f:
        edit(f)
    return p


def nir_set(path, value):
    def edit(f):
        del f[path]
        f.create_dataset(path, data=value)
    return edit


def npy(w: Path, array=None, header_shape=None, raw: bytes | None = None) -> Path:
    p = w / "x.npy"
    if raw is not None:
        p.write_bytes(raw)
    elif header_shape is not None:  # a forged header: declares a huge array, holds 64 bytes
        from numpy.lib import format as npf

        with open(p, "wb") as fh:
            npf.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": header_shape})
            fh.write(b"\0" * 64)
    else:
        np.save(p, array)
    return p


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


# --- the table: (id, argv builder(w, base) -> list, substrings the error line must hold) -----

CASES: list[tuple[str, object, tuple[str, ...]]] = []


def case(cid: str, build, *expect: str):
    CASES.append((cid, build, expect))


# config values (tsslc inspect CONFIG reads and validates it, as train does first)
def insp(edit=None, text=None):
    return lambda w, b: ["inspect", str(config(w, edit, text))]


def train_cfg(edit):
    return lambda w, b: ["train", str(config(w, edit)), "-o", str(w / "run"), "--no-progress"]


case("cfg-typo-n_stpes", insp(lambda r: r["Network"].update(n_stpes=r["Network"].pop("n_steps"))), "n_stpes", "did you mean 'n_steps'")
case("cfg-unknown-network-key", insp(net(leraning_rate=0.1)), "leraning_rate", "Network")
case("cfg-typo-batchsize", insp(net(batchsize=4)), "batchsize", "did you mean 'batch_size'")
case("cfg-unknown-section", insp(lambda r: r.update(Layer={})), "Layer", "did you mean 'Layers'")
case("cfg-layer-key-typo", insp(layer(n_output=10)), "n_output", "did you mean 'n_outputs'")
case("cfg-layer-type-typo", insp(layer(type="linaer")), "linaer", "did you mean 'linear'")
for v in (0, -1, "5", 2.5, 10**9, None, True):
    case(f"cfg-n_steps-{v}", insp(net(n_steps=v)), "n_steps", "net.yaml")
for key in ("tau_m", "tau_s"):
    for v in (0.5, 0, -3, float("nan"), float("inf"), "5"):
        case(f"cfg-{key}-{v}", insp(net(**{key: v})), key)
for v in (0, -1, float("nan"), float("inf"), "high"):
    case(f"cfg-threshold-{v}", insp(layer(threshold=v)), "hidden", "threshold")
for v in (0, -2, float("nan")):
    case(f"cfg-weight_scale-{v}", insp(layer(weight_scale=v)), "hidden", "weight_scale")
case("cfg-n_outputs-huge", insp(layer(n_outputs=10**30)), "hidden")
case("cfg-tau-1e400", insp(text=DIGITS.read_text().replace("tau_m: 5", "tau_m: 1e400")), "tau_m")
case("train-batch-huge", train_cfg(net(batch_size=10**6)), "net.yaml", "limit")
case("cfg-batch-past-int32", insp(net(batch_size=10**30)), "batch_size", "2147483647")
case("cfg-batch_size-0", insp(net(batch_size=0)), "batch_size")
case("cfg-batch_size-neg", insp(net(batch_size=-4)), "batch_size")
case("cfg-epochs-neg", insp(net(epochs=-5)), "epochs")
case("cfg-epochs-str", insp(net(epochs="many")), "epochs")
case("cfg-desired>n_steps", insp(net(desired_count=6)), "desired_count", "n_steps")
case("cfg-undesired>desired", insp(net(undesired_count=5, desired_count=2)), "undesired_count")
case("cfg-lr-0", insp(net(lr=0)), "'lr'")
case("cfg-lr-nan", insp(net(lr=float("nan"))), "'lr'")
case("cfg-loss-typo", insp(net(loss="kernal")), "kernal")
case("cfg-rule", insp(net(rule="sgd")), "sgd")
case("cfg-dataset", insp(net(dataset="mnits")), "mnits")
case("cfg-n_class-0", insp(net(n_class=0)), "n_class")
case("cfg-n_inputs-0", insp(layer(n_inputs=0)), "n_inputs")
case("cfg-n_outputs-frac", insp(layer(n_outputs=2.5)), "n_outputs")
case("cfg-dropout-p1", insp(lambda r: r["Layers"].update(drop={"type": "dropout", "p": 1.0})), "drop", "'p'")
case("cfg-input_shape-0", insp(net(input_shape=[0, 8, 8])), "input_shape")
case("cfg-yaml-python-tag", insp(text="Network: !!python/object/apply:os.system ['echo pwned']\n"), "net.yaml", "YAML")
case("cfg-not-mapping", insp(text="- 1\n- 2\n"), "net.yaml", "mapping")
case("cfg-empty", insp(text=""), "net.yaml")
case("cfg-missing-file", lambda w, b: ["inspect", str(w / "nope.yaml")], "nope.yaml")
case("cfg-layers-empty", insp(lambda r: r.update(Layers={})), "Layers")
case("train-typo-key", train_cfg(lambda r: r["Network"].update(n_stpes=r["Network"].pop("n_steps"))), "n_stpes", "did you mean")
case("train-threshold-0", train_cfg(layer(threshold=0)), "threshold")
case("train-huge-layer", train_cfg(lambda r: (r["Layers"]["hidden"].update(n_outputs=10**8),
                                            r["Layers"]["output"].update(n_inputs=10**8))), "net.yaml", "limit")
case("train-batch-0", train_cfg(net(batch_size=0)), "batch_size")

# model files: values of nodes and metadata (each through a command that reads it)
F = "float.tsslc"


def cmd(command, doc=None, h5=None, src=F, extra=()):
    def build(w, b):
        m = str(model(w, b, doc, h5, src))
        if command == "compile":
            return ["compile", m, "--target", "loihi2", "-o", str(w / "out.tsslc"), "--calibration", "16", *extra]
        if command == "verify":
            return ["verify", m, "--target", "loihi2", "--calibration", "16", "--samples", "10", "--no-progress", *extra]
        if command == "nir":
            return ["nir", "export", m, "-o", str(w / "out.nir"), *extra]
        if command == "run":
            return ["run", m, "--samples", "10", "--no-progress", *extra]
        return [command, m, *extra]
    return build


for c in ("compile", "verify", "inspect", "run", "nir"):
    case(f"model-nan-weight-{c}", cmd(c, h5=array(2, "weight", set_at(np.nan))), "hidden.synapse", "weight")
case("model-inf-weight", cmd("compile", h5=array(4, "weight", set_at(np.inf))), "output.synapse")
case("model-neginf-weight", cmd("inspect", h5=array(2, "weight", set_at(-np.inf))), "hidden.synapse")
for v in (float("inf"), float("nan"), 0.0, -1.0, "1"):
    case(f"model-threshold-{v}", cmd("compile", attr("hidden", threshold=v)), "hidden", "threshold")
for v in (0.5, 0.0, -5.0, float("nan")):
    case(f"model-tau_m-{v}", cmd("run", attr("output", tau_m=v)), "output", "tau_m")
case("model-tau_s-0", cmd("run", attr("hidden", tau_s=0.0)), "hidden", "tau_s")
for v in (0.0, 0.5, float("nan"), -3.0):
    case(f"model-input-tau_s-{v}", cmd("run", attr("input", tau_s=v)), "input", "tau_s")
for v in (None, 10**9, 0, -1, "5", 2.5, True, [5]):
    case(f"model-n_steps-{v}", cmd("run", meta(n_steps=v)), "n_steps", "m.tsslc")
case("model-threshold-huge-int", cmd("inspect", attr("hidden", threshold=10**400)), "hidden", "threshold")
case("model-n_steps-huge-int", cmd("inspect", meta(n_steps=10**400)), "n_steps")
case("model-weight-3e38", cmd("compile", h5=array(2, "weight", lambda a: np.full_like(a, 3e38))), "hidden", "overflow")
case("model-meta-data-str", cmd("run", meta(data="x")), "metadata", "'data'")
case("model-n_class-str", cmd("inspect", meta(n_class="ten")), "n_class")
case("model-target-int", cmd("inspect", meta(target=5)), "target")
case("model-weight-str-dtype", cmd("compile", h5=array(2, "weight", lambda a: np.array([b"ab"] * 4))), "hidden.synapse", "weight")
case("model-weight-complex", cmd("compile", h5=array(2, "weight", lambda a: a.astype(np.complex64))), "hidden.synapse")
case("model-weight-wrong-shape", cmd("compile", h5=array(2, "weight", lambda a: a[:, :5])), "hidden.synapse")
case("model-weight-missing", cmd("inspect", h5=lambda f: f.__delitem__("arrays/2/weight")), "hidden.synapse")
case("model-weight-37GB", cmd("inspect", h5=huge_array(2, "weight", (100_000, 100_000))), "hidden.synapse", "limit")
case("model-weight-37GB-nir", cmd("nir", h5=huge_array(2, "weight", (100_000, 100_000))), "hidden.synapse", "limit")
case("model-node-kind-typo", cmd("inspect", lambda d: node(d, "hidden").update(kind="lfi")), "hidden", "lfi")
case("model-missing-nodes", cmd("inspect", lambda d: d.pop("nodes")), "m.tsslc")
case("model-edge-unknown", cmd("inspect", lambda d: d["edges"].append(["hidden", "ghost"])), "ghost")
case("model-attr-missing", cmd("inspect", lambda d: node(d, "hidden")["attrs"].pop("threshold")), "hidden", "threshold")
case("model-version-99", cmd("inspect", h5=lambda f: f.attrs.__setitem__("format_version", 99)), "m.tsslc", "99")
case("model-not-hdf5", lambda w, b: ["inspect", str((w / "m.tsslc").write_text("hello") and w / "m.tsslc")], "m.tsslc")
case("model-empty", lambda w, b: ["compile", str((w / "m.tsslc").write_bytes(b"") or w / "m.tsslc"), "--target", "loihi2",
                                  "-o", str(w / "o.tsslc")], "m.tsslc")
case("model-missing", lambda w, b: ["run", str(w / "ghost.tsslc")], "ghost.tsslc")
case("model-folder", lambda w, b: ["inspect", str(w)], str("is a folder"))


def big_conv(w, b):
    """A tiny file declaring a 1.6·10⁹-neuron convolution."""
    from tsslc.ir import io, nodes as N
    from tsslc.ir.graph import Graph

    g = Graph({"n_steps": 5})
    g.add("input", N.Input(shape=(1, 40_000, 40_000)))
    g.add("c.synapse", N.Conv2d(weight=np.ones((1, 1, 1, 1), np.float32)), after="input")
    g.add("c", N.LIF(shape=(1, 40_000, 40_000)), after="c.synapse")
    g.add("o", N.Output(shape=(1, 40_000, 40_000)), after="c")
    return io.save(g, w / "m.tsslc")


case("model-1.6e9-neurons-inspect", lambda w, b: ["inspect", str(big_conv(w, b))], "m.tsslc", "node outputs", "limit")
case("model-1.6e9-neurons-nir", lambda w, b: ["nir", "export", str(big_conv(w, b)), "-o", str(w / "o.nir")], "m.tsslc", "limit")

# compiled models: integer values and the core mapping
L2 = "l2.tsslc"
case("l2-weight_exp-huge", cmd("run", attr("hidden.synapse", weight_exp=1000), src=L2), "hidden.synapse", "weight_exp")
case("l2-bits-0", cmd("run", attr("input", bits=0), src=L2), "input", "bits")
case("l2-scale-nan", cmd("run", attr("input", scale=float("nan")), src=L2), "input", "scale")
case("l2-vth-neg", cmd("run", lambda d: node(d, "hidden")["attrs"]["params"]["fields"].update(vth=-5), src=L2), "hidden", "vth")
case("l2-du-str", cmd("run", lambda d: node(d, "hidden")["attrs"]["params"]["fields"].update(du="x"), src=L2), "hidden", "du")
case("l2-mapping-list", cmd("run", meta(mapping=[1, 2]), src=L2), "mapping")
case("l2-mapping-str", cmd("inspect", meta(mapping="cores"), src=L2), "mapping")
case("l2-assignment-list", cmd("run", lambda d: d["metadata"]["mapping"].update(assignment=[0]), src=L2), "assignment")
ND = lambda v: {"__ndarray__": {"dtype": "<i8", "shape": [len(v)], "data": v}}  # noqa: E731
case("l2-core-negative", cmd("run", assignment("hidden", ND([-1] * 100)), src=L2), "hidden", "core index -1")
case("l2-core-huge", cmd("run", assignment("hidden", ND([10**12] * 100)), src=L2), "hidden", "core index")
case("l2-core-wrong-size", cmd("run", assignment("hidden", ND([0] * 3)), src=L2), "hidden", "core indices")
case("l2-core-unknown-node", cmd("run", assignment("ghost", ND([0])), src=L2), "ghost")
case("l2-core-float", cmd("run", assignment("hidden", {"__ndarray__": {"dtype": "<f8", "shape": [100], "data": [0.5] * 100}}),
                         src=L2), "hidden")
case("l2-n_steps-1e9", cmd("run", meta(n_steps=10**9), src=L2), "n_steps")
case("l2-n_steps-run-past-cap", cmd("run", meta(n_steps=900_000), src=L2, extra=("--samples", "360")), "limit")
case("verify-nan-against", lambda w, b: ["verify", str(b / L2), "--against", str(model(w, b, h5=array(2, "weight", set_at(np.nan)))),
                                         "--samples", "10", "--no-progress"], "hidden.synapse")

# checkpoints (tsslc export reads and checks them; finetune too)


def exp(edit):
    return lambda w, b: ["export", str(ckpt(w, b, edit)), "-o", str(w / "out.tsslc")]


for v in ("three", -5, 2.5, None, True):
    case(f"ckpt-epoch-{v}", exp(cset(epoch=v)), "checkpoint.pt", "epoch")
case("ckpt-seed-str", exp(cset(seed="x")), "seed")
case("ckpt-rng-str", exp(cset(rng="abc")), "'rng'")
case("ckpt-rng-short", exp(lambda c: c["rng"].update(torch=torch.zeros(10, dtype=torch.uint8))), "'rng'")
case("ckpt-rng-float", exp(lambda c: c["rng"].update(torch=c["rng"]["torch"].float())), "'rng'")
case("ckpt-rng-invalid-state", exp(lambda c: c["rng"].update(torch=torch.zeros(5056, dtype=torch.uint8))), "'rng'", "mt19937")
case("ckpt-rng-ranks-bad", exp(cset(rng_ranks=[{"torch": torch.zeros(3)}])), "rng_ranks")
case("ckpt-rng-cuda-bad", exp(lambda c: c["rng"].update(cuda=["x"])), "cuda")
case("ckpt-metrics-dict", exp(cset(metrics={"a": 1})), "metrics")
case("ckpt-optimizer-none", exp(cset(optimizer=None)), "'optimizer'")
case("ckpt-optimizer-no-groups", exp(lambda c: c["optimizer"].pop("param_groups")), "'optimizer'")
case("ckpt-optimizer-lr-nan", exp(lambda c: c["optimizer"]["param_groups"][0].update(lr=float("nan"))), "'optimizer'", "lr")
case("ckpt-optimizer-extra-param", exp(lambda c: c["optimizer"]["param_groups"][0]["params"].append(7)), "'optimizer'")
case("ckpt-optimizer-moment-shape", exp(lambda c: c["optimizer"]["state"][0].update(exp_avg=torch.zeros(3))), "exp_avg")
case("ckpt-optimizer-moment-nan", exp(lambda c: c["optimizer"]["state"][0]["exp_avg"].fill_(float("nan"))), "exp_avg")
case("ckpt-weight-shape", exp(lambda c: c["model"].update({"layers.hidden.weight": torch.zeros(3, 3)})), "layers.hidden.weight")
case("ckpt-weight-nan", exp(lambda c: c["model"]["layers.hidden.weight"].view(-1).__setitem__(0, float("nan"))),
     "layers.hidden.weight")
case("ckpt-weight-int", exp(lambda c: c["model"].update({"layers.hidden.weight": c["model"]["layers.hidden.weight"].long()})),
     "layers.hidden.weight", "dtype")
case("ckpt-weight-complex", exp(lambda c: c["model"].update({"layers.hidden.weight": c["model"]["layers.hidden.weight"].to(torch.complex64)})),
     "layers.hidden.weight")
case("ckpt-weight-missing", exp(lambda c: c["model"].pop("layers.output.weight")), "layers.output.weight")
case("ckpt-weight-extra", exp(lambda c: c["model"].update({"layers.hiden.weight": torch.zeros(1)})), "layers.hiden.weight")
case("ckpt-config-typo", exp(lambda c: c["config"]["Network"].update(n_stpes=4)), "n_stpes")
case("ckpt-config-threshold", exp(lambda c: c["config"]["Layers"]["hidden"].update(threshold=-1)), "threshold")
case("ckpt-format", exp(cset(format="other")), "checkpoint.pt")
case("ckpt-version", exp(cset(version=2)), "version")
case("ckpt-version-tensor", exp(cset(version=torch.zeros(3))), "version")
case("ckpt-version-true", exp(cset(version=True)), "version")
case("ckpt-optimizer-step-frac", exp(lambda c: c["optimizer"]["state"][0].update(step=torch.tensor(2.5))), "step")
case("ckpt-missing-key", exp(lambda c: c.pop("metrics")), "metrics")


def evil(w, b):
    p = w / "checkpoint.pt"
    torch.save({"format": "tsslc-checkpoint", "x": Evil()}, p)
    return ["export", str(p), "-o", str(w / "out.tsslc")]


def evil_pickle(w, b):
    p = w / "checkpoint.pt"
    p.write_bytes(pickle.dumps(Evil()))
    return ["export", str(p), "-o", str(w / "out.tsslc")]




def resume(edit):
    def build(w, b):
        run = w / "run"
        shutil.copytree(b / "run", run)
        c = torch.load(run / "checkpoint.pt", weights_only=True)
        edit(c)
        torch.save(c, run / "checkpoint.pt")
        return ["train", str(run / "config.yaml"), "-o", str(run), "--resume", "--epochs", "2", "--no-progress"]
    return build


case("resume-rng-garbage", resume(lambda c: c["rng"].update(torch=torch.full((5056,), 255, dtype=torch.uint8)[:7])),
     "checkpoint.pt", "'rng'")
case("resume-optimizer-shape", resume(lambda c: c["optimizer"]["state"][1].update(exp_avg_sq=torch.zeros(2, 2))),
     "checkpoint.pt", "exp_avg_sq")
case("resume-epoch-str", resume(cset(epoch="three")), "checkpoint.pt", "epoch")
case("ckpt-malicious-reduce", evil, "checkpoint.pt", "refused")
case("ckpt-malicious-raw-pickle", evil_pickle, "checkpoint.pt")
case("ckpt-garbage", lambda w, b: ["export", str((w / "c.pt").write_bytes(b"\x00garbage" * 9) and w / "c.pt"), "-o",
                                   str(w / "o.tsslc")], "c.pt")
case("finetune-nan-weight", lambda w, b: ["finetune", str(ckpt(w, b, lambda c: c["model"]["layers.output.weight"].fill_(float("inf")))),
                                          "--target", "loihi2", "-o", str(w / "ft"), "--no-progress"], "layers.output.weight")
case("finetune-epoch-neg", lambda w, b: ["finetune", str(ckpt(w, b, cset(epoch=-5))), "--target", "loihi2", "-o", str(w / "ft")],
     "epoch")

# NIR files


def nimp(edit=None, extra=()):
    return lambda w, b: ["nir", "import", str(nirfile(w, b, edit or (lambda f: None))), "-o", str(w / "o.tsslc"), *extra]


case("nir-dt-string", nimp(nir_set("node/metadata/dt", "fast")), "dt")
case("nir-dt-neg", nimp(nir_set("node/metadata/dt", -0.001)), "dt")
case("nir-dt-nan", nimp(nir_set("node/metadata/dt", np.nan)), "dt")
case("nir-dt-inf", nimp(nir_set("node/metadata/dt", np.inf)), "dt")
case("nir-dt-array", nimp(nir_set("node/metadata/dt", np.ones(3))), "dt")
case("nir-n_steps-1e12", nimp(extra=("--n-steps", str(10**12))), "n_steps")
case("nir-n_steps-0", nimp(extra=("--n-steps", "0")), "n_steps")
case("nir-n_steps-meta-huge", nimp(nir_set("node/metadata/n_steps", 10**12)), "n_steps")
case("nir-cli-dt-nan", nimp(extra=("--dt", "nan")), "dt")
case("nir-cli-dt-neg", nimp(extra=("--dt", "-1")), "dt")
case("nir-unknown-type", nimp(nir_set("node/nodes/hidden/type", b"CubaLIFF")), "hidden", "CubaLIFF", "did you mean 'CubaLIF'")
case("nir-unknown-type-2", nimp(nir_set("node/nodes/hidden.synapse/type", b"Transformer")), "hidden.synapse", "Transformer")
case("nir-no-type", nimp(lambda f: f.__delitem__("node/nodes/output/type")), "output")
case("nir-nan-weight", nimp(lambda f: f["node/nodes/hidden.synapse/weight"][0, 0].__class__ and
                            f["node/nodes/hidden.synapse/weight"].__setitem__((0, 0), np.nan)), "hidden")
case("nir-tau-neg", nimp(lambda f: f["node/nodes/hidden/tau_mem"].__setitem__(slice(None), -1.0)), "hidden")
case("nir-huge-dataset", nimp(lambda f: (f.__delitem__("node/nodes/hidden.synapse/weight"),
                                         f.create_dataset("node/nodes/hidden.synapse/weight", shape=(10**5, 10**5),
                                                          dtype="f4", chunks=(1, 1)))), "hidden.synapse", "limit")
case("nir-meta-n_class", nimp(nir_set("node/metadata/tsslc_metadata", json.dumps({"n_steps": 5, "n_class": "ten"}))), "n_class")
case("nir-meta-tau-nan", nimp(nir_set("node/metadata/tsslc_metadata", '{"n_steps": 5, "tau_m": NaN}')), "tau_m")
case("nir-dt-numeric-string-neg", nimp(nir_set("node/metadata/dt", b"-0.5")), "dt")
case("nir-tau-strings", nimp(nir_set("node/nodes/hidden/tau_mem", np.array([b"a"] * 100))), "hidden", "tau_mem")
case("nir-tau-str-scalar", nimp(nir_set("node/nodes/hidden/tau_mem", b"abc")), "m.nir", "hidden", "tau_mem")
case("nir-tau-wrong-shape", nimp(nir_set("node/nodes/hidden/tau_mem", np.zeros((100, 3)))), "m.nir", "hidden", "shapes")
case("nir-input-shape-nan", nimp(nir_set("node/nodes/input/shape", np.array([np.nan, 8, 8]))), "input")
case("nir-n_steps-meta-inf", nimp(nir_set("node/metadata/n_steps", np.inf)), "n_steps")
case("nir-n_steps-meta-frac", nimp(nir_set("node/metadata/n_steps", 2.5)), "n_steps")
case("nir-encoding-array", nimp(nir_set("node/metadata/input_encoding", np.array([1, 2]))), "input_encoding")
case("nir-flatten-end_dim-empty", nimp(nir_set("node/nodes/hidden_flatten/end_dim", np.zeros(0))), "hidden_flatten")
case("nir-is-tsslc", lambda w, b: ["nir", "import", str(b / F), "-o", str(w / "o.tsslc")], "float.tsslc")
case("nir-not-a-regular-file", lambda w, b: ["nir", "import", "/dev/null", "-o", str(w / "o.tsslc")], "/dev/null",
     "not a regular file")
case("nir-not-hdf5", lambda w, b: ["nir", "import", str((w / "x.nir").write_text("{}") and w / "x.nir"), "-o",
                                   str(w / "o.tsslc")], "x.nir")

# data headers and command-line values


def calib(**kw):
    return lambda w, b: ["compile", str(b / F), "--target", "loihi2", "-o", str(w / "o.tsslc"),
                         "--calibration-data", str(npy(w, **kw))]


case("npy-forged-header", calib(header_shape=(10**6, 1, 8, 8 * 10**4)), "x.npy", "truncated")
case("npy-forged-header-ok-size", calib(header_shape=(3, 1, 8, 8)), "x.npy")
case("npy-object", calib(raw=b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (2,), }" + b" " * 54 + b"\n"),
     "x.npy")
case("npy-nan", calib(array=np.full((4, 1, 8, 8), np.nan, np.float32)), "x.npy", "NaN")
case("npy-wrong-shape", calib(array=np.zeros((4, 3), np.float32)), "x.npy")
case("npy-not-npy", calib(raw=b"PK\x03\x04 not numpy"), "x.npy")
case("npy-strings", calib(array=np.array(["a", "b"])), "x.npy")
case("cli-calibration-0", lambda w, b: ["compile", str(b / F), "--target", "loihi2", "-o", str(w / "o"), "--calibration", "0"],
     "--calibration")
case("cli-samples-0", lambda w, b: ["run", str(b / F), "--samples", "0"], "--samples")
case("cli-train-seed-neg", lambda w, b: ["train", str(DIGITS), "-o", str(w / "r"), "--seed", "-1"], "--seed")
case("cli-train-seed-huge", lambda w, b: ["train", str(DIGITS), "-o", str(w / "r"), "--seed", str(2**70)], "--seed")
case("cli-finetune-seed-neg", lambda w, b: ["finetune", str(b / "run"), "--target", "loihi2", "--seed", "-3", "-o", str(w / "ft")],
     "--seed")
case("cli-verify-batch-0", lambda w, b: ["verify", str(b / L2), "--against", str(b / F), "--batch-size", "0"], "--batch-size")
case("cli-verify-samples-0", lambda w, b: ["verify", str(b / L2), "--against", str(b / F), "--samples", "0"], "--samples")
case("ckpt-past-cap", lambda w, b: ["export", str(b / "run"), "-o", str(w / "o.tsslc"), "--max-memory", "2k"], "checkpoint.pt",
     "limit")
case("cli-train-threads-million", lambda w, b: ["train", str(DIGITS), "-o", str(w / "r"), "--threads", str(10**6)], "--threads")
case("cli-run-device-bad", lambda w, b: ["run", str(b / L2), "--device", "tpu"], "--device", "tpu")
case("cli-finetune-lr-diverges", lambda w, b: ["finetune", str(b / "run"), "--target", "loihi2", "--lr", "1e308", "--epochs", "1",
                                               "--eval-samples", "10", "--calibration", "32", "-o", str(w / "ft"), "--no-progress"],
     "diverged", "hidden")
case("cli-batch-0", lambda w, b: ["run", str(b / L2), "--batch-size", "0"], "--batch-size")
case("cli-finetune-lr-nan", lambda w, b: ["finetune", str(b / "run"), "--target", "loihi2", "--lr", "nan", "-o", str(w / "ft")],
     "--lr")
case("cli-finetune-lr-neg", lambda w, b: ["finetune", str(b / "run"), "--target", "loihi2", "--lr", "-1", "-o", str(w / "ft")],
     "--lr")
case("cli-finetune-epochs-0", lambda w, b: ["finetune", str(b / "run"), "--target", "loihi2", "--epochs", "0"], "--epochs")
case("cli-nir-export-dt-nan", lambda w, b: ["nir", "export", str(b / F), "-o", str(w / "o.nir"), "--dt", "nan"], "dt")
case("cli-nir-export-dt-0", lambda w, b: ["nir", "export", str(b / F), "-o", str(w / "o.nir"), "--dt", "0"], "dt")
case("cli-train-threads-0", lambda w, b: ["train", str(DIGITS), "-o", str(w / "r"), "--threads", "0"], "--threads")
case("cli-train-eval-samples-0", lambda w, b: ["train", str(DIGITS), "-o", str(w / "r"), "--eval-samples", "0"], "eval_samples")
case("cli-max-memory-bad", lambda w, b: ["--max-memory", "lots", "inspect", str(b / F)], "--max-memory", "lots")
case("cli-max-memory-tiny", lambda w, b: ["inspect", str(b / F), "--max-memory", "1k"], "float.tsslc", "--max-memory")
case("cli-run-past-cap", lambda w, b: ["run", str(b / L2), "--max-memory", "100k", "--no-progress"], "limit", "samples")
case("cli-compile-past-cap", lambda w, b: ["--max-memory=300k", "compile", str(b / F), "--target", "loihi2",
                                           "-o", str(w / "o.tsslc")], "limit")




def idx_dir(w: Path, images: bytes, labels: bytes | None = None, gz=False) -> Path:
    import gzip

    d = w / "mnist"
    d.mkdir()
    lab = labels if labels is not None else b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + b"\x01\x02"
    for split in ("train", "t10k"):  # both splits: a run reads the training split's statistics too
        name = f"{split}-images-idx3-ubyte" + (".gz" if gz else "")
        (d / name).write_bytes(gzip.compress(images) if gz else images)
        (d / f"{split}-labels-idx1-ubyte").write_bytes(lab)
    return d


def idx_run(images: bytes, labels: bytes | None = None, gz=False, extra=()):
    return lambda w, b: ["run", str(b / F), "--dataset", "mnist", "--data-dir", str(idx_dir(w, images, labels, gz)),
                         "--no-progress", *extra]


IMG_HEAD = b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
case("idx-bad-magic", idx_run(b"\x01\x02\x03\x04" * 8), "images-idx3-ubyte", "magic")
case("idx-truncated", idx_run(IMG_HEAD + b"\x00" * 5), "images-idx3-ubyte", "truncated")
case("idx-huge-dims", idx_run(b"\x00\x00\x08\x03" + (2**32 - 1).to_bytes(4, "big") * 3), "images-idx3-ubyte")
case("idx-not-bytes", idx_run(b"\x00\x00\x0d\x01" + (1).to_bytes(4, "big") + b"\x00" * 4), "images-idx3-ubyte", "0x0d")
case("idx-gzip-bomb", idx_run(b"\x00" * (8 << 20), gz=True, extra=("--max-memory", "4M")), "images-idx3-ubyte.gz", "limit")
case("idx-gzip-truncated", lambda w, b: idx_run(IMG_HEAD + b"\x00" * 1568)(w, b) if False else
     ["run", str(b / F), "--dataset", "mnist", "--data-dir", str(_cut_gz(idx_dir(w, IMG_HEAD + b"\x00" * 1568, gz=True)))],
     "images-idx3-ubyte.gz", "gzip")
case("idx-label-range", idx_run(IMG_HEAD + b"\x00" * 1568, b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + b"\x01\xc8"),
     "labels-idx1-ubyte", "200")


def _cut_gz(d: Path) -> Path:
    for split in ("train", "t10k"):
        p = d / f"{split}-images-idx3-ubyte.gz"
        p.write_bytes(p.read_bytes()[:-10])
    return d


# run folders the report reads


def report(metrics):
    def build(w, b):
        run = w / "run"
        shutil.copytree(b / "run", run)
        (run / "metrics.json").write_text(metrics if isinstance(metrics, str) else json.dumps(metrics))
        return ["report", str(run), "-o", str(w / "r.html")]
    return build




def report_json(edit):
    def build(w, b):
        run = w / "run"
        shutil.copytree(b / "run", run)
        doc = {"schema_version": 1, "title": "t", "run": {"git": {"commit": "abc"}, "date": "2026-01-01"},
               "accuracy": {}, "summary": []}
        edit(doc)
        (run / "report.json").write_text(json.dumps(doc))
        return ["report", str(run), "-o", str(w / "r.html")]
    return build


case("report-json-git-str", report_json(lambda d: d["run"].update(git="x")), "run")
case("report-json-date-int", report_json(lambda d: d["run"].update(date=-1)), "run")
case("report-json-version-new", report_json(lambda d: d.update(schema_version=99)), "report.json", "99")
case("report-json-accuracy-list", report_json(lambda d: d.update(accuracy=[1])), "report.json", "accuracy")
case("report-metrics-not-json", report("[1, 2"), "metrics.json")
case("report-metrics-list", report([1, 2]), "metrics.json")
case("report-epochs-str", report({"epochs": "x"}), "metrics.json", "epochs")
case("report-epoch-not-obj", report({"epochs": [1, 2]}), "metrics.json", "epochs")
case("report-epoch-acc-str", report({"epochs": [{"epoch": 1, "test_acc": True}]}), "metrics.json", "test_acc")
case("report-final-acc-nan", report({"epochs": [{"epoch": 1}], "final_test_acc": float("nan")}), "final_test_acc")
case("report-final-acc-2", report({"epochs": [{"epoch": 1}], "final_test_acc": 2}), "final_test_acc")
case("report-seconds-neg", report({"epochs": [{"epoch": 1}], "train_seconds": -5}), "train_seconds")


# --- the checks ------------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _check(rc: int, err: str, expect, before: dict, after: dict, cid: str):
    assert rc != 0, f"{cid}: exit code 0"
    assert "Traceback" not in err, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, f"{cid}: expected one error line, got:\n{err}"
    assert lines[0].startswith("tsslc"), lines[0]
    assert "weights_only=False" not in lines[0]
    for s in expect:
        assert s in lines[0], f"{cid}: {s!r} not in {lines[0]!r}"
    changed = [str(p) for p, data in before.items() if after.get(p) != data]
    assert not changed, f"{cid}: inputs changed: {changed}"


def test_enough_cases():
    assert len(CASES) >= 120, len(CASES)
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("cid,build,expect", CASES, ids=[c[0] for c in CASES])
def test_hostile_value(cid, build, expect, base, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a malicious file that ran would write pwned.txt here
    monkeypatch.delenv("TSSLC_MAX_MEMORY", raising=False)
    argv = build(tmp_path, base)
    base_before = _snapshot(base)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    _check(rc, err, expect, {**before, **base_before}, {**_snapshot(tmp_path), **_snapshot(base)}, cid)
    assert not (tmp_path / "pwned.txt").exists()


SUBPROCESS = ("cfg-typo-n_stpes", "model-nan-weight-compile", "model-weight-37GB", "ckpt-malicious-reduce", "ckpt-malicious-raw-pickle",
              "nir-unknown-type", "nir-n_steps-1e12", "l2-core-huge", "npy-forged-header", "cli-max-memory-tiny",
              "idx-gzip-bomb", "cli-train-threads-million")


@pytest.mark.parametrize("cid", SUBPROCESS)
def test_hostile_value_subprocess(cid, base, tmp_path):
    """The same cases through ``python -m tsslc``: the real exit code and stderr."""
    build, expect = next((b, e) for c, b, e in CASES if c == cid)
    argv = [str(a) for a in build(tmp_path, base)]
    before = _snapshot(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("TSSLC_MAX_MEMORY", None)
    p = subprocess.run([sys.executable, "-m", "tsslc", *argv], capture_output=True, text=True, cwd=tmp_path, env=env,
                       timeout=120)
    _check(p.returncode, p.stderr, expect, before, _snapshot(tmp_path), cid)
    assert not (tmp_path / "pwned.txt").exists()


def test_env_cap_is_read(base, tmp_path, capsys, monkeypatch):
    """$TSSLC_MAX_MEMORY caps like --max-memory, and raising the cap lets the same load through."""
    monkeypatch.setenv("TSSLC_MAX_MEMORY", "2k")
    assert main(["inspect", str(base / F)]) == 1
    assert "TSSLC_MAX_MEMORY" in capsys.readouterr().err
    monkeypatch.setenv("TSSLC_MAX_MEMORY", "1G")
    assert main(["inspect", str(base / F)]) == 0
    assert main(["inspect", str(base / F), "--max-memory", "2k"]) == 1  # the flag wins over the environment
