"""The tsslc model file: one HDF5 file per graph, loaded without executing code.

Layout (format version 2; version 1 files still load)::

    /                      attrs: format = "tsslc-graph", format_version = 2, tsslc_version
    /graph.json            uint8 dataset: UTF-8 JSON document (below)
    /arrays/<i>/<field>    one dataset per array parameter of node i, dtype kept exactly

written with HDF5's newest layout (``libver="latest"``: checksummed metadata) and a Fletcher-32
checksum on every non-empty dataset, so damage anywhere is detected on load.

The JSON document is ``{"nodes": [{"name", "kind", "attrs", "arrays"}], "edges":
[[src, dst], ...], "metadata": {...}}`` with nodes in the graph's canonical order. Values
that JSON cannot tell apart are tagged: a tuple is ``{"__tuple__": [...]}``, a dict with a
non-string or reserved key ``{"__items__": [[k, v], ...]}``, a numpy array inside metadata
``{"__ndarray__": {"dtype", "shape", "data"}}``, an integer neuron model (an IntLIF's
``params``, :mod:`tsslc.ir.neurons`) ``{"__neuron__": kind, "fields": {name: int}}`` —
checked against the model's field ranges on load (format 1 stored a target name and an
untyped dict, converted on load); floats are written with ``repr`` precision,
so every value comes back equal and every array bit-identical.

Loading checks everything (format tag, version, node kinds and field types, array dtypes,
then :meth:`Graph.validate` for the shapes) and turns any problem into one
:class:`TsslcError` naming the file. Saving writes a temporary file in the same folder and
renames it into place, so a crash never leaves half a file behind.
"""

from __future__ import annotations

import io as _io
import json
import types
import typing
from dataclasses import fields
from pathlib import Path

import h5py
import numpy as np

import tsslc
from tsslc import validate
from tsslc.atomic import atomic_write_bytes
from tsslc.errors import TsslcError
from tsslc.ir.graph import Graph
from tsslc.ir.neurons import NEURON_TYPES, IntNeuron, neuron_from_dict
from tsslc.ir.nodes import NODE_TYPES, IntLIF, Node

FORMAT = "tsslc-graph"
#: 2: an IntLIF's parameters are a typed neuron model ({"__neuron__": kind, "fields": {...}},
#: tsslc.ir.neurons) instead of a target name and an untyped dict (format 1, still read)
FORMAT_VERSION = 2

_TAGS = ("__tuple__", "__items__", "__ndarray__", "__neuron__")
#: node attributes added after a format version, with a default: files written before them
#: load with the default (kind -> names)
LATER_ATTRS = {"int_input": ("n_steps",)}


class ModelFileError(TsslcError):
    """A model file that cannot be read: missing, truncated, corrupt, foreign or too new."""


# --- value encoding ------------------------------------------------------------------------


def _encode(v):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, tuple):
        return {"__tuple__": [_encode(x) for x in v]}
    if isinstance(v, list):
        return [_encode(x) for x in v]
    if isinstance(v, dict):
        if all(isinstance(k, str) and k not in _TAGS for k in v):
            return {k: _encode(x) for k, x in v.items()}
        return {"__items__": [[_encode(k), _encode(x)] for k, x in v.items()]}
    if isinstance(v, IntNeuron):
        return {"__neuron__": v.kind, "fields": {k: int(x) for k, x in v.to_dict().items()}}
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in "biuf":
            raise TsslcError(f"cannot store an array of dtype {v.dtype} in a model file")
        return {"__ndarray__": {"dtype": v.dtype.str, "shape": list(v.shape), "data": v.ravel().tolist()}}
    raise TsslcError(f"cannot store a value of type {type(v).__name__} ({v!r:.60}) in a model file")


def _hashable(k):
    if isinstance(k, (list, dict)):
        raise ValueError(f"a dict key cannot be {type(k).__name__}")
    return k


def _decode(v):
    if isinstance(v, list):
        return [_decode(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1 and "__tuple__" in v:
            if not isinstance(v["__tuple__"], list):
                raise ValueError("malformed tuple")
            return tuple(_decode(x) for x in v["__tuple__"])
        if len(v) == 1 and "__items__" in v:
            items = v["__items__"]
            if not isinstance(items, list) or not all(isinstance(p, list) and len(p) == 2 for p in items):
                raise ValueError("malformed dict items")
            return {_hashable(_decode(k)): _decode(x) for k, x in items}
        if set(v) == {"__neuron__", "fields"}:
            kind, values = v["__neuron__"], v["fields"]
            if not isinstance(kind, str) or kind not in NEURON_TYPES:
                raise ValueError(f"unknown integer neuron model {kind!r:.40} (known: {', '.join(NEURON_TYPES)})")
            cls = NEURON_TYPES[kind]
            names = {f.name for f in fields(cls)}
            if not isinstance(values, dict) or set(values) != names:
                raise ValueError(f"{kind} parameters {values!r:.80} instead of {sorted(names)}")
            return cls(**values)  # types and ranges checked by the model (ValueError)
        if len(v) == 1 and "__ndarray__" in v:
            spec = v["__ndarray__"]
            if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data"}:
                raise ValueError("malformed array")
            dtype = np.dtype(str(spec["dtype"]))
            if dtype.kind not in "biuf":
                raise ValueError(f"array dtype {dtype} is not numeric")
            if not isinstance(spec["shape"], list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                          for d in spec["shape"]):
                raise ValueError(f"malformed array shape {spec['shape']!r:.60}")
            shape = tuple(spec["shape"])
            data = spec["data"]
            if not isinstance(data, list) or any(isinstance(x, (list, dict, str)) or x is None for x in data):
                raise ValueError("malformed array data")
            if len(data) != validate.shape_bytes(shape, 1):
                raise ValueError(f"array data of {len(data)} values does not fill its shape {shape}")
            return np.array(data, dtype=dtype).reshape(shape)
        return {k: _decode(x) for k, x in v.items()}
    return v


# --- field type checking -------------------------------------------------------------------


def _check_type(value, hint, where: str) -> None:
    origin = typing.get_origin(hint)
    if hint is typing.Any:
        return
    if origin in (typing.Union, types.UnionType):
        errors = []
        for alt in typing.get_args(hint):
            try:
                _check_type(value, alt, where)
                return
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if errors else f"{where}: bad value {value!r:.60}")
    if hint is type(None):
        if value is not None:
            raise ValueError(f"{where} must be None, got {value!r:.60}")
        return
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} must be a number, got {value!r:.60}")
        return
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r:.60}")
        return
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {value!r:.60}")
        return
    if isinstance(hint, type) and issubclass(hint, IntNeuron):
        if not isinstance(value, hint):
            raise ValueError(f"{where} must be {hint.__name__} parameters, got {value!r:.60}")
        return
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be a mapping, got {value!r:.60}")
        return
    if origin is tuple:
        if not isinstance(value, tuple):
            raise ValueError(f"{where} must be a tuple, got {value!r:.60}")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            for x in value:
                _check_type(x, args[0], where)
        return
    raise ValueError(f"{where}: cannot check type {hint}")  # pragma: no cover - node fields use the types above


_HINTS: dict[type, dict] = {}


def _hints(cls: type[Node]) -> dict:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _array_fields(cls: type[Node]) -> set[str]:
    return {f.name for f in fields(cls) if _hints(cls)[f.name] is np.ndarray}


# --- save ----------------------------------------------------------------------------------


def _document(graph: Graph) -> dict:
    nodes = []
    for name, node in graph.items():
        arrays = node.arrays()
        for f, a in arrays.items():
            if a.dtype.kind not in "biuf":
                raise TsslcError(f"node '{name}': array {f} has dtype {a.dtype}; only numeric arrays can be saved")
        nodes.append({"name": name, "kind": node.kind, "attrs": _encode(node.attrs()), "arrays": sorted(arrays)})
    return {"nodes": nodes, "edges": [list(e) for e in graph.edges()], "metadata": _encode(graph.metadata)}


def _dataset(group, name: str, data: np.ndarray) -> None:
    # Fletcher-32 checksums on the data (needs chunking, impossible for empty arrays), so a
    # damaged weight is reported instead of silently loaded.
    group.create_dataset(name, data=data, fletcher32=data.size > 0)


def save(graph: Graph, path) -> Path:
    """Write ``graph`` to ``path`` (HDF5, atomically); returns the path."""
    path = Path(path)
    if not isinstance(graph, Graph):
        raise TsslcError(f"save: expected a Graph, got {type(graph).__name__}")
    if not isinstance(graph.metadata, dict):
        raise TsslcError("save: graph.metadata must be a dict")
    doc = _document(graph)
    text = json.dumps(doc, allow_nan=True, separators=(",", ":"))

    buf = _io.BytesIO()  # built in memory: a full disk is then an OSError, not HDF5's crash
    with h5py.File(buf, "w", libver="latest") as f:  # checksummed file metadata
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["tsslc_version"] = tsslc.__version__
        _dataset(f, "graph.json", np.frombuffer(text.encode("utf-8"), dtype=np.uint8))
        arrays = f.create_group("arrays")
        for i, (name, node) in enumerate(graph.items()):
            grp = arrays.create_group(str(i))
            for field_name, a in node.arrays().items():
                _dataset(grp, field_name, np.ascontiguousarray(a))
    return atomic_write_bytes(path, buf.getvalue(), make_parents=False, what="model file")


# --- load ----------------------------------------------------------------------------------


def _attr_str(f, key):
    v = f.attrs.get(key)
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return v


def _read(f: h5py.File, path: Path) -> Graph:
    fmt = _attr_str(f, "format")
    if fmt != FORMAT:
        hint = " (it looks like a NIR file: use 'tsslc nir import')" if "node" in f else ""
        raise ModelFileError(f"{path} is an HDF5 file but not a tsslc model file{hint}")
    version = f.attrs.get("format_version")
    if isinstance(version, np.ndarray) or isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)):
        raise ModelFileError(f"{path}: the format version {version!r:.40} is not an integer")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has format version {int(version)}, newer than this tsslc reads ({FORMAT_VERSION}): upgrade tsslc"
        )
    if version < 1:
        raise ModelFileError(f"{path}: unknown format version {int(version)}")
    ds = f.get("graph.json")
    if not isinstance(ds, h5py.Dataset) or ds.dtype != np.uint8 or ds.ndim != 1:
        raise ModelFileError(f"{path}: the graph description (graph.json) is missing or malformed")
    validate.check_bytes(ds.size * 8, f"reading graph.json ({ds.size} bytes)")  # parsed, ~8x
    doc = json.loads(ds[()].tobytes().decode("utf-8"))
    if not isinstance(doc, dict) or set(doc) != {"nodes", "edges", "metadata"}:
        raise ValueError("graph.json must hold exactly 'nodes', 'edges' and 'metadata'")
    metadata = _decode(doc["metadata"])
    if not isinstance(metadata, dict):
        raise ValueError("metadata is not a mapping")
    if not isinstance(doc["nodes"], list) or not isinstance(doc["edges"], list):
        raise ValueError("'nodes' and 'edges' must be lists")
    arrays = f.get("arrays")
    if not isinstance(arrays, h5py.Group):
        raise ValueError("the 'arrays' group is missing")
    graph = Graph(metadata)
    loaded = 0  # bytes of the arrays read so far
    for i, entry in enumerate(doc["nodes"]):
        if not isinstance(entry, dict) or set(entry) != {"name", "kind", "attrs", "arrays"}:
            raise ValueError(f"node entry {i} is malformed")
        name, kind = entry["name"], entry["kind"]
        if not isinstance(name, str) or not name:
            raise ValueError(f"node entry {i} has no name")
        if not isinstance(kind, str) or kind not in NODE_TYPES:
            raise ValueError(f"node '{name}' has unknown type {kind!r:.40} (known: {', '.join(NODE_TYPES)})")
        cls = NODE_TYPES[kind]
        hints = _hints(cls)
        try:
            attrs = _decode(entry["attrs"])
        except ValueError as e:
            raise ValueError(f"node '{name}' ({kind}): {e}") from None
        if not isinstance(attrs, dict):
            raise ValueError(f"node '{name}': attributes are not a mapping")
        if version == 1 and cls is IntLIF and isinstance(attrs.get("target"), str):  # format 1: untyped
            attrs = dict(attrs)
            attrs["params"] = neuron_from_dict(attrs.pop("target"), attrs.get("params"), f"node '{name}'")
        want_arrays = _array_fields(cls)
        want_attrs = {f.name for f in fields(cls)} - want_arrays
        # attributes added later with a default (IntInput.n_steps) may be absent from older files
        optional = {f.name for f in fields(cls) if f.name in LATER_ATTRS.get(kind, ())}
        if not (set(attrs) <= want_attrs and want_attrs - set(attrs) <= optional):
            raise ValueError(f"node '{name}' ({kind}): attributes {sorted(attrs)} instead of {sorted(want_attrs)}")
        if not isinstance(entry["arrays"], list) or set(entry["arrays"]) != want_arrays:
            raise ValueError(f"node '{name}' ({kind}): arrays {entry['arrays']!r:.60} instead of {sorted(want_arrays)}")
        for key, value in attrs.items():
            _check_type(value, hints[key], f"node '{name}' ({kind}) attribute {key}")
        grp = arrays.get(str(i))
        values = dict(attrs)
        for key in want_arrays:
            dset = grp.get(key) if isinstance(grp, h5py.Group) else None
            if not isinstance(dset, h5py.Dataset) or dset.dtype.kind not in "biuf" or dset.dtype.fields is not None:
                raise ValueError(f"node '{name}' ({kind}): array '{key}' is missing or not numeric")
            loaded += validate.shape_bytes(dset.shape, dset.dtype.itemsize)
            validate.check_bytes(loaded, f"node '{name}' ({kind}): reading array '{key}' of shape {dset.shape} "
                                         f"({dset.dtype})")
            values[key] = np.asarray(dset[()])
            validate.finite_array(f"node '{name}' ({kind}): array '{key}'", values[key])
        if isinstance(name, str) and name in graph:
            raise ValueError(f"node '{name}' appears twice")
        graph.add(name, cls(**values))
    for e in doc["edges"]:
        if not isinstance(e, list) or len(e) != 2 or not all(isinstance(x, str) for x in e):
            raise ValueError(f"malformed edge {e!r:.60}")
        graph.connect(e[0], e[1])
    return graph


def load(path) -> Graph:
    """Read a model file written by :func:`save`; validates the graph (structure and shapes).

    Raises :class:`ModelFileError` (a :class:`TsslcError`) naming the file for anything that is
    missing, truncated, corrupt, foreign, newer than this version, or whose shapes do not fit.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a model file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as e:
        raise ModelFileError(f"cannot read {path}: {e.strerror or e}") from None
    if head != b"\x89HDF\r\n\x1a\n":
        raise ModelFileError(f"{path} is not a tsslc model file (not HDF5; was it written by 'tsslc export'?)")
    try:
        with h5py.File(path, "r") as f:
            graph = _read(f, path)
    except TsslcError as e:
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError(f"{path}: {e}") from None
    except RecursionError:
        raise ModelFileError(f"{path} is corrupt: nesting too deep") from None
    except Exception as e:  # h5py/HDF5 report damage as OSError, KeyError, RuntimeError, ...
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelFileError(f"{path} is corrupt or truncated ({msg})") from None
    try:
        shapes = graph.validate()
        check_metadata(graph, shapes)
    except TsslcError as e:
        raise ModelFileError(f"{path}: the stored graph is invalid: {e}") from None
    except Exception as e:  # a field of the right type but an impossible value
        raise ModelFileError(f"{path}: the stored graph is invalid: {type(e).__name__}: {e}") from None
    neurons = sum(validate.shape_bytes(s, 1) for s in shapes.values())
    weights = sum(a.nbytes for _, node in graph.items() for a in node.arrays().values())
    try:
        validate.check_bytes(weights + 8 * neurons, f"{path}: holding the graph ({neurons:,} node outputs at 8 bytes each "
                                                    f"and {validate.fmt_bytes(weights)} of arrays)")
    except TsslcError as e:
        raise ModelFileError(str(e)) from None
    return graph


#: metadata keys whose values tsslc reads back, and what they must be
_META_STR = ("target", "dataset", "loss", "rule", "recipe", "source")


def check_metadata(graph: Graph, shapes: dict) -> None:
    """The metadata values the back ends read: ``n_steps`` (1 .. validate.MAX_STEPS),
    ``n_class``, names as strings, and a compiled graph's ``mapping`` (a mapping whose core
    ``assignment`` gives every neuron of every integer population a core index in range)."""
    md = graph.metadata
    if "n_steps" in md:
        validate.steps("metadata", "n_steps", md["n_steps"])
    if md.get("n_class") is not None:
        validate.number("metadata", "n_class", md["n_class"], int, lo=1, hi=validate.MAX_CORES)
    for key in _META_STR:
        if md.get(key) is not None and not isinstance(md[key], str):
            raise TsslcError(f"metadata: '{key}' must be a string, got {md[key]!r:.60}")
    if md.get("data") is not None and not isinstance(md["data"], dict):  # data-reading options
        raise TsslcError(f"metadata: 'data' must be a mapping of data options, got {md['data']!r:.60}")
    for key in ("tau_m", "tau_s"):
        if md.get(key) is not None:
            validate.number("metadata", key, md[key], lo=1, allow_inf=key == "tau_m")
    if "mapping" not in md:
        return
    mapping = md["mapping"]
    if not isinstance(mapping, dict):
        raise TsslcError(f"metadata: 'mapping' must be a mapping, got {type(mapping).__name__}")
    if "assignment" not in mapping:
        return
    assignment = mapping["assignment"]
    if not isinstance(assignment, dict):
        raise TsslcError(f"metadata: mapping 'assignment' must be a mapping, got {type(assignment).__name__}")
    kinds = mapping.get("core_kind")
    n_cores = len(kinds) if isinstance(kinds, list) else validate.MAX_CORES
    for name, cores in assignment.items():
        where = f"metadata: mapping 'assignment' of node '{name}'"
        if not (isinstance(name, str) and name in graph and isinstance(graph[name], IntLIF)):
            raise TsslcError(f"{where}: no integer population of that name in the graph")
        a = np.asarray(cores)
        if a.dtype.kind not in "iu" or a.size != validate.shape_bytes(shapes[name], 1):
            raise TsslcError(f"{where}: needs {validate.shape_bytes(shapes[name], 1)} integer core indices, "
                             f"got {a.size} of {a.dtype}")
        if a.size and (a.min() < 0 or a.max() >= n_cores):
            raise TsslcError(f"{where}: core index {int(a.min() if a.min() < 0 else a.max())} outside 0..{n_cores - 1}")
