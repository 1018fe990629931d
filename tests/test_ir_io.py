"""The model file format: exact round trips and one clear error for every bad file."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from tsslc.ir.neurons import Loihi2LIF
from tsslc.errors import TsslcError
from tsslc.ir import io
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.interpreter import run


def integer_graph() -> Graph:
    """A compiled-looking graph with every integer node type and nested metadata."""
    rng = np.random.default_rng(0)
    g = Graph(
        {
            "n_steps": 5,
            "target": "loihi2",
            "quantization": {"c": {"scale": 0.1 + 0.2, "bits": (8, 8), "clipped": None}, "order": ["c", "fc"]},
            "mapping": {0: [1, 2], "core_1": {"axons": 256}},
        }
    )
    g.add("input", N.IntInput(shape=(1, 8, 8), scale=3.5, bits=8))
    g.add("c.synapse", N.IntConv2d(weight=rng.integers(-128, 128, (4, 1, 3, 3)).astype(np.int8), padding=1, weight_exp=-3), after="input")
    g.add("c", N.IntLIF(shape=(4, 8, 8), params=Loihi2LIF(**{"du": 4095, "dv": 100, "vth": 77})), after="c.synapse")
    g.add("flat", N.Flatten(), after="c")
    g.add("fc.synapse", N.IntDense(weight=rng.integers(-2**20, 2**20, (10, 256)).astype(np.int32), weight_exp=2), after="flat")
    g.add("fc", N.IntLIF(shape=(10,), params=Loihi2LIF(**{"du": 1, "dv": 0, "vth": 5, "bias_mant": -7, "bias_exp": -2})), after="fc.synapse")
    g.add("output_psc", N.Output(shape=(10,)), after="fc")
    g.validate()
    return g


def float_conv_graph() -> Graph:
    rng = np.random.default_rng(1)
    g = Graph({"n_steps": 4, "tau_m": 5.0, "tau_s": 3.0})
    g.add("input", N.Input(shape=(2, 6, 6), encoding="events", tau_s=3.0))
    g.add("c.synapse", N.Conv2d(weight=rng.normal(size=(4, 1, 3, 3)).astype(np.float32), groups=2, padding=1), after="input")
    g.add("c", N.LIF(shape=(4, 6, 6), tau_m=5.0, tau_s=3.0, threshold=0.7), after="c.synapse")
    g.add("pool", N.SumPool2d(kernel=2, theta=1.1), after="c")
    g.add("drop", N.Dropout(p=0.25), after="pool")
    g.add("flat", N.Flatten(), after="drop")
    g.add("fc.synapse", N.Dense(weight=rng.normal(size=(3, 36)).astype(np.float64)), after="flat")
    g.add("fc", N.LIF(shape=(3,), tau_m=5.0, tau_s=3.0, threshold=1.0), after="fc.synapse")
    g.add("output_psc", N.Output(shape=(3,)), after="fc")
    g.validate()
    return g


@pytest.mark.parametrize("make", [integer_graph, float_conv_graph])
def test_round_trip_is_exact(make, tmp_path):
    g = make()
    path = io.save(g, tmp_path / "m.tsslc")
    h = io.load(path)
    assert h == g
    assert h.order() == g.order() and h.edges() == g.edges()
    for name, node in g.items():
        for key, a in node.arrays().items():
            b = getattr(h[name], key)
            assert b.dtype == a.dtype and b.tobytes() == a.tobytes()
    if make is integer_graph:
        assert h.metadata["quantization"]["c"]["bits"] == (8, 8)  # tuples stay tuples
        assert 0 in h.metadata["mapping"]  # non-string keys survive
        assert type(h["c"].params) is Loihi2LIF and all(type(v) is int for v in h["c"].params.to_dict().values())
    # saving the loaded graph gives the same bytes of description
    io.save(h, tmp_path / "m2.tsslc")
    with h5py.File(tmp_path / "m.tsslc") as a, h5py.File(tmp_path / "m2.tsslc") as b:
        assert a["graph.json"][()].tobytes() == b["graph.json"][()].tobytes()


def test_trained_digits_graph_round_trip_runs_identically(digits_graph, digits_test_arrays, tmp_path):
    io.save(digits_graph, tmp_path / "digits.tsslc")
    h = io.load(tmp_path / "digits.tsslc")
    assert h == digits_graph
    x = digits_test_arrays[0][:64]
    a, b = run(digits_graph, x), run(h, x)
    for name in a.spikes:
        assert np.array_equal(a.spikes[name].numpy(), b.spikes[name].numpy())


def test_metadata_arrays_and_floats_are_exact(tmp_path):
    g = integer_graph()
    g.metadata["table"] = np.array([[1, -2], [3, 4]], dtype=np.int16)
    g.metadata["weird_floats"] = [float("inf"), -0.0, 1e-310, 0.1]
    io.save(g, tmp_path / "m.tsslc")
    md = io.load(tmp_path / "m.tsslc").metadata
    assert md["table"].dtype == np.int16 and np.array_equal(md["table"], g.metadata["table"])
    assert md["weird_floats"][:3] == [float("inf"), -0.0, 1e-310] and np.signbit(md["weird_floats"][1])


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    g = integer_graph()
    target = tmp_path / "m.tsslc"
    target.write_bytes(b"old contents")
    bad = g.copy()
    bad.metadata["unsaveable"] = object()
    with pytest.raises(TsslcError, match="cannot store"):
        io.save(bad, target)
    assert target.read_bytes() == b"old contents"
    io.save(g, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tsslc"]
    with pytest.raises(TsslcError, match="does not exist"):
        io.save(g, tmp_path / "no" / "such" / "m.tsslc")


def _rewrite(path, mutate_doc=None, mutate_file=None):
    with h5py.File(path, "r+") as f:
        if mutate_doc is not None:
            doc = json.loads(f["graph.json"][()].tobytes())
            mutate_doc(doc)
            del f["graph.json"]
            f.create_dataset("graph.json", data=np.frombuffer(json.dumps(doc).encode(), np.uint8))
        if mutate_file is not None:
            mutate_file(f)


def _set_version(f):
    f.attrs["format_version"] = 7


def _set_kind(doc):
    doc["nodes"][1]["kind"] = "teleporter"


def _bad_shape(doc):
    doc["nodes"][2]["attrs"]["shape"]["__tuple__"] = [4, 9, 9]


def _bad_stride(doc):
    doc["nodes"][1]["attrs"]["stride"] = "two"


def _float_weight(f):
    del f["arrays/1/weight"]
    f["arrays/1/weight"] = np.zeros((4, 1, 3, 3), np.float32)


def _string_weight(f):
    del f["arrays/4/weight"]
    f["arrays/4/weight"] = np.array([b"abc"] * 3)


def _wrong_weight_shape(f):
    del f["arrays/4/weight"]
    f["arrays/4/weight"] = np.zeros((10, 255), np.int32)


def _dangling_edge(doc):
    doc["edges"].append(["fc", "nowhere"])


def _foreign(f):
    del f.attrs["format"]


@pytest.mark.parametrize(
    "mutate_doc, mutate_file, message",
    [
        (None, _set_version, "format version 7, newer than this tsslc reads"),
        (_set_kind, None, "unknown type 'teleporter'"),
        (_bad_shape, None, "node 'c' .*population shape"),
        (_bad_stride, None, "attribute stride must be an integer"),
        (None, _float_weight, "integer conv weight must be integer"),
        (None, _string_weight, "array 'weight' is missing or not numeric"),
        (None, _wrong_weight_shape, "node 'fc.synapse'.*does not fit"),
        (_dangling_edge, None, "unknown node 'nowhere'"),
        (None, _foreign, "not a tsslc model file"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, mutate_doc, mutate_file, message):
    path = io.save(integer_graph(), tmp_path / "m.tsslc")
    _rewrite(path, mutate_doc, mutate_file)
    with pytest.raises(io.ModelFileError, match=message) as info:
        io.load(path)
    assert str(path) in str(info.value)


def test_truncated_and_foreign_files(tmp_path):
    path = io.save(integer_graph(), tmp_path / "m.tsslc")
    data = path.read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.tsslc").write_bytes(data[:cut])
        with pytest.raises(io.ModelFileError, match="cut.tsslc"):
            io.load(tmp_path / "cut.tsslc")
    (tmp_path / "ckpt.pt").write_bytes(b"PK\x03\x04 a zip, e.g. a torch checkpoint")
    with pytest.raises(io.ModelFileError, match="not a tsslc model file"):
        io.load(tmp_path / "ckpt.pt")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["node/type"] = "Linear"
    with pytest.raises(io.ModelFileError, match="NIR"):
        io.load(tmp_path / "other.h5")
    with pytest.raises(io.ModelFileError, match="does not exist"):
        io.load(tmp_path / "missing.tsslc")
