"""NIR interchange (nir 1.0.8): tsslc graph ⇄ ``nir.NIRGraph`` and ``.nir`` files.

Discretisation (NIR has none; this is tsslc's, recorded in every exported graph's metadata
as ``dt`` and ``discretization``): forward Euler with ``dt`` seconds per step, the synaptic
current updated *before* the voltage in each step, no synaptic delay, strict threshold,
reset to ``v_reset``::

    I[t] = I[t-1] + dt/τ_syn · (−I[t-1] + w_in ⊙ S[t])        (CubaLIF only; else I = S)
    v[t] = v[t-1] + dt/τ_mem · (v_leak − v[t-1] + r ⊙ I[t])   (IF: v[t-1] + dt · r ⊙ I[t])
    z[t] = v[t] > v_threshold;  v[t] ← v_reset where z[t]

Export. A tsslc layer ``L.synapse`` (Dense/Conv2d) + ``L`` (LIF τm, threshold V) becomes
``Linear(W)``/``Conv2d(W)`` → ``CubaLIF(tau_syn = τs_in·dt, tau_mem = τm·dt, r = τm,
v_leak = 0, v_threshold = V, v_reset = 0, w_in = 1)``, where τs_in is the PSC time constant
of the spikes feeding the synapse (the previous LIF's τs, or the input filter's). This is
exactly TSSL-BP's neuron (NIR.md). SumPool2d(k, θp) → ``SumPool2d`` + ``Scale(θp)``;
Flatten → ``Flatten(start_dim=0)``; the last population's PSC filter before the output →
``LI(tau = τs·dt, r = 1, v_leak = 0)``; Dropout is dropped (identity at inference).

Import. Input, Output, Linear, Affine (zero bias), Conv2d (dilation 1, zero bias),
SumPool2d / AvgPool2d (stride = kernel, no padding), Flatten, Scale (after a pool, or after a
synapse), IF, LIF, CubaLIF, and LI before an output. Time constants become steps
(τ/dt); the factors dt·r/τ (LIF, CubaLIF: times w_in; IF: dt·r) are folded into the rows of
the incoming synapse weights; a CubaLIF's ``tau_syn`` becomes the PSC time constant of the
population (or input) whose spikes reach it. ``dt`` comes from the ``dt`` argument, else
from a named framework ``convention`` (:data:`CONVENTIONS`), else from the graph's metadata;
a graph without any of them is an error that says so. Anything else is one error listing
every unsupported node.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import tsslc
from tsslc.atomic import atomic_write
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.io import _decode, _encode

#: Default seconds per time step of an export.
DEFAULT_DT = 1e-3

#: dt (seconds per step) each framework assumes when it reads or writes NIR.
CONVENTIONS: dict[str, float] = {
    "tsslc": DEFAULT_DT,  # what `tsslc nir export` writes by default (and records)
    "norse": 1e-3,  # Norse imports with dt = 1 ms
    "snntorch": 1e-4,  # snnTorch exports with dt = 1e-4 and r = τ/dt
    "sinabs": 1.0,  # Sinabs/Rockpool-style: time constants counted in steps
    "steps": 1.0,
}

DISCRETIZATION = (
    "forward Euler, dt seconds per step; per step the synaptic current first "
    "(I += dt/tau_syn*(-I + w_in*S)), then the voltage with that current "
    "(v += dt/tau_mem*(v_leak - v + r*I)); spike if v > v_threshold, then v = v_reset; no synaptic delay"
)

SUPPORTED = ("Input", "Output", "Linear", "Affine", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten", "Scale",
             "IF", "LIF", "CubaLIF", "LI")


class NIRError(TsslcError):
    """A NIR graph or file tsslc cannot convert."""


def _nir():
    import nir

    return nir


# --- export --------------------------------------------------------------------------------


def _filter_steps(graph: Graph, name: str) -> float:
    """τs (steps) of the PSC filter of the spikes that reach node ``name``."""
    found = set()
    stack = list(graph.predecessors(name))
    while stack:
        p = stack.pop()
        node = graph[p]
        if isinstance(node, N.LIF):
            found.add(float(node.tau_s))
        elif isinstance(node, N.Input):
            found.add(1.0 if node.tau_s is None else float(node.tau_s))
        else:
            stack.extend(graph.predecessors(p))
    if len(found) != 1:
        raise NIRError(f"node '{name}': its inputs are filtered with different time constants {sorted(found)}; "
                       f"a NIR CubaLIF has one tau_syn")
    return found.pop()


def to_nir(graph: Graph, dt: float = DEFAULT_DT):
    """The float graph as a ``nir.NIRGraph`` (see the module docstring for the mapping)."""
    nir = _nir()
    dt = float(dt)
    if not (np.isfinite(dt) and dt > 0):
        raise NIRError(f"dt must be a positive number of seconds, got {dt}")
    graph.validate()
    ints = [n for n, node in graph.items() if node.kind.startswith("int_")]
    if ints:
        raise NIRError(f"node '{ints[0]}' ({graph[ints[0]].kind}): NIR has no integer types; export the float model")
    shapes = graph.shapes()
    nodes: dict = {}
    edges: list[tuple[str, str]] = []
    rename: dict[str, str] = {}  # tsslc node -> NIR node that carries its output
    for name, node in graph.items():
        if "/" in name:
            raise NIRError(f"node '{name}': NIR node names cannot contain '/'")
        preds = graph.predecessors(name)
        shape = shapes[name]
        in_shape = shapes[preds[0]] if preds else None

        def full(v, shp=shape):
            return np.full(shp, float(v), dtype=np.float64)

        if isinstance(node, N.Dropout):  # identity at inference: its consumers read its input
            rename[name] = rename.get(preds[0], preds[0])
            continue
        if isinstance(node, N.Input):
            nodes[name] = nir.Input(input_type={"input": np.array(shape)})
        elif isinstance(node, N.Dense):
            nodes[name] = nir.Linear(weight=node.weight.copy())
        elif isinstance(node, N.Conv2d):
            nodes[name] = nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=node.weight.copy(), stride=node.stride,
                                     padding=node.padding, dilation=1, groups=node.groups,
                                     bias=np.zeros(node.weight.shape[0], node.weight.dtype))
        elif isinstance(node, N.SumPool2d):
            k = node.kernel
            nodes[name] = nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([k, k]), padding=np.array([0, 0]))
            if node.theta != 1.0:
                nodes[f"{name}.theta"] = nir.Scale(scale=full(node.theta))
                edges.append((name, f"{name}.theta"))
                rename[name] = f"{name}.theta"
        elif isinstance(node, N.Flatten):
            nodes[name] = nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1)
        elif isinstance(node, N.LIF):
            tau_in = _filter_steps(graph, name)
            nodes[name] = nir.CubaLIF(tau_syn=full(tau_in * dt), tau_mem=full(node.tau_m * dt), r=full(node.tau_m),
                                      v_leak=full(0.0), v_threshold=full(node.threshold), v_reset=full(0.0),
                                      w_in=full(1.0))
        elif isinstance(node, N.Output):
            (src,) = preds
            lif = graph[src]
            nodes[f"{src}.psc"] = nir.LI(tau=full(lif.tau_s * dt), r=full(1.0), v_leak=full(0.0))
            edges.append((src, f"{src}.psc"))
            nodes[name] = nir.Output(output_type={"output": np.array(shape)})
            edges.append((f"{src}.psc", name))
            continue
        else:  # pragma: no cover - every float node type is handled above
            raise NIRError(f"node '{name}': cannot export {node.kind!r} to NIR")
        for p in preds:
            edges.append((rename.get(p, p), name))
    metadata = {
        "dt": dt,
        "discretization": DISCRETIZATION,
        "producer": f"tsslc {tsslc.__version__}",
        "input_encoding": graph[graph.input_name].encoding,
        "tsslc_metadata": json.dumps(_encode(graph.metadata), allow_nan=True),
        "tsslc_order": json.dumps([n for n in graph.order() if not isinstance(graph[n], N.Dropout)]),
    }
    if "n_steps" in graph.metadata:
        metadata["n_steps"] = int(graph.metadata["n_steps"])
    try:
        # nir's type check does not know conv groups (it expects weight.shape[1] input channels)
        grouped = any(isinstance(n, N.Conv2d) and n.groups > 1 for _, n in graph.items())
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=not grouped)
    except Exception as e:  # nir's own type check; should not happen for a validated graph
        raise NIRError(f"NIR rejected the exported graph: {e}") from None


def write(graph: Graph, path, dt: float = DEFAULT_DT) -> Path:
    """Export ``graph`` to a NIR file (HDF5), atomically."""
    nir = _nir()
    path = Path(path)
    ng = to_nir(graph, dt)
    return atomic_write(path, lambda tmp: nir.write(tmp, ng), make_parents=False, what="NIR file")


# --- import --------------------------------------------------------------------------------


def _scalar(arr, what: str, where: str) -> float:
    a = np.asarray(arr, dtype=np.float64)
    if a.size == 0:
        raise NIRError(f"node '{where}': {what} is empty")
    if not np.all(a == a.flat[0]):
        raise NIRError(f"node '{where}': {what} differs between neurons; tsslc needs one value per population")
    return float(a.flat[0])


def _steps(tau: float, dt: float, what: str, where: str) -> float:
    """τ in steps; snapped to the value an exporter with this dt would have started from."""
    if not (np.isfinite(tau) and tau > 0):
        raise NIRError(f"node '{where}': {what} must be positive, got {tau}")
    r = tau / dt
    c = round(r, 9)
    return c if c > 0 and c * dt == tau else r


def _pair(v, what: str, where: str) -> int:
    a = np.atleast_1d(np.asarray(v))
    if a.dtype.kind not in "iuf" or a.size not in (1, 2) or not np.all(a == a.flat[0]) or a.flat[0] != int(a.flat[0]):
        raise NIRError(f"node '{where}': {what} {v!r} must be one integer for both dimensions")
    return int(a.flat[0])


def resolve_dt(ng, dt: float | None = None, convention: str | None = None) -> float:
    if dt is not None:
        dt = float(dt)
    elif convention is not None:
        if convention not in CONVENTIONS:
            raise NIRError(f"unknown dt convention {convention!r} (known: {', '.join(CONVENTIONS)})")
        dt = CONVENTIONS[convention]
    elif "dt" in (ng.metadata or {}):
        dt = float(np.asarray(ng.metadata["dt"]).item())
    else:
        raise NIRError(
            "the NIR graph does not record its time step: pass dt (--dt SECONDS) or a convention "
            f"(--convention {'|'.join(CONVENTIONS)})"
        )
    if not (np.isfinite(dt) and dt > 0):
        raise NIRError(f"dt must be a positive number of seconds, got {dt}")
    return dt


def _meta_str(md: dict, key: str):
    v = md.get(key)
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v.item()
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    return v


def from_nir(ng, dt: float | None = None, convention: str | None = None, encoding: str | None = None,
             n_steps: int | None = None) -> Graph:
    """A tsslc float graph from a ``nir.NIRGraph`` (see the module docstring)."""
    nir = _nir()
    dt = resolve_dt(ng, dt, convention)
    md = dict(ng.metadata or {})
    bad = sorted(f"'{k}' ({type(v).__name__})" for k, v in ng.nodes.items() if type(v).__name__ not in SUPPORTED)
    if bad:
        raise NIRError(f"unsupported NIR node(s): {', '.join(bad)}; tsslc imports {', '.join(SUPPORTED)}")
    preds: dict[str, list[str]] = {k: [] for k in ng.nodes}
    succs: dict[str, list[str]] = {k: [] for k in ng.nodes}
    for s, d in ng.edges:
        if s not in ng.nodes or d not in ng.nodes:
            raise NIRError(f"edge {s} -> {d}: unknown node")
        preds[d].append(s)
        succs[s].append(d)
    inputs = [k for k, v in ng.nodes.items() if isinstance(v, nir.Input)]
    if len(inputs) != 1:
        raise NIRError(f"the NIR graph must have exactly one Input node, found {len(inputs)}")
    neurons = (nir.LIF, nir.IF, nir.CubaLIF)

    nodes: dict[str, N.Node] = {}
    skip: set[str] = set()  # NIR nodes merged into a neighbour
    alias: dict[str, str] = {}  # merged NIR node -> tsslc node carrying its output
    weight_rows: dict[str, np.ndarray] = {}  # synapse -> per-output factor to fold in
    filter_of: dict[str, float] = {}  # spike source (LIF/Input) -> τs in steps
    tau_out: dict[str, float] = {}

    def source_of(name: str, where: str) -> list[str]:
        out, stack = [], list(preds[name])
        while stack:
            p = stack.pop()
            if isinstance(ng.nodes[p], (nir.Input, *neurons)):
                out.append(p)
            else:
                stack.extend(preds[p])
        if not out:
            raise NIRError(f"node '{where}': no input reaches it")
        return out

    def want_filter(src: str, tau: float, where: str) -> None:
        if src in filter_of and filter_of[src] != tau:
            raise NIRError(f"node '{where}': '{src}' feeds populations with different synaptic time constants "
                           f"({filter_of[src]} and {tau} steps); tsslc has one PSC filter per population")
        filter_of[src] = tau

    def fold_rows(name: str, factor: np.ndarray, where: str) -> None:
        if np.all(factor == 1.0):
            return
        for p in preds[name]:
            node = ng.nodes[p]
            if not isinstance(node, (nir.Linear, nir.Affine, nir.Conv2d)) or len(succs[p]) != 1:
                raise NIRError(f"node '{where}': its scaling r·dt/τ·w_in must fold into a synapse that feeds only it, "
                               f"but '{p}' ({type(node).__name__}) does not qualify")
            weight_rows[p] = weight_rows.get(p, 1.0) * factor

    for name, node in ng.nodes.items():
        if isinstance(node, nir.Input):
            shape = tuple(int(d) for d in np.asarray(node.input_type["input"]).ravel())
            enc = encoding or _meta_str(md, "input_encoding") or "current"
            nodes[name] = N.Input(shape=shape, encoding=str(enc), tau_s=None)
        elif isinstance(node, nir.Output):
            shape = tuple(int(d) for d in np.asarray(node.output_type["output"]).ravel())
            nodes[name] = N.Output(shape=shape)
        elif isinstance(node, (nir.Linear, nir.Affine)):
            if isinstance(node, nir.Affine) and np.any(np.asarray(node.bias) != 0):
                raise NIRError(f"node '{name}' (Affine): a non-zero bias cannot be imported (tsslc synapses have no bias)")
            w = np.asarray(node.weight)
            if w.ndim != 2:
                raise NIRError(f"node '{name}': weight of shape {w.shape} is not 2-D")
            nodes[name] = N.Dense(weight=w.copy())
        elif isinstance(node, nir.Conv2d):
            if node.bias is not None and np.any(np.asarray(node.bias) != 0):
                raise NIRError(f"node '{name}' (Conv2d): a non-zero bias cannot be imported (tsslc synapses have no bias)")
            if _pair(node.dilation, "dilation", name) != 1:
                raise NIRError(f"node '{name}' (Conv2d): dilation {node.dilation} is not supported")
            if isinstance(node.padding, str):
                raise NIRError(f"node '{name}' (Conv2d): padding {node.padding!r} must be given as an integer")
            nodes[name] = N.Conv2d(weight=np.asarray(node.weight).copy(), stride=_pair(node.stride, "stride", name),
                                   padding=_pair(node.padding, "padding", name), groups=int(node.groups))
        elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            k = _pair(node.kernel_size, "kernel_size", name)
            if _pair(node.stride, "stride", name) != k or _pair(node.padding, "padding", name) != 0:
                raise NIRError(f"node '{name}' ({type(node).__name__}): only non-overlapping pooling "
                               f"(stride = kernel, no padding) is supported")
            nodes[name] = N.SumPool2d(kernel=k, theta=1.0 if isinstance(node, nir.SumPool2d) else 1.0 / (k * k))
        elif isinstance(node, nir.Flatten):
            in_t = node.input_type.get("input") if node.input_type else None
            nd = len(np.asarray(in_t).ravel()) if in_t is not None else None
            end = int(node.end_dim)
            if int(node.start_dim) != 0 or not (end == -1 or (nd is not None and end == nd - 1)):
                raise NIRError(f"node '{name}' (Flatten): only flattening all dimensions (start_dim 0, end_dim -1; "
                               f"shapes without batch) is supported, got {node.start_dim}..{node.end_dim}")
            nodes[name] = N.Flatten()
        elif isinstance(node, nir.Scale):
            (p,) = preds[name] if len(preds[name]) == 1 else (None,)
            pnode = ng.nodes.get(p)
            if isinstance(pnode, (nir.SumPool2d, nir.AvgPool2d)) and len(succs[p]) == 1:
                skip.add(name)
                alias[name] = p
            elif isinstance(pnode, (nir.Linear, nir.Affine, nir.Conv2d)) and len(succs[p]) == 1:
                skip.add(name)
                alias[name] = p
                weight_rows[p] = weight_rows.get(p, 1.0) * np.asarray(node.scale, np.float64)
            else:
                raise NIRError(f"node '{name}' (Scale): supported only right after a pooling or a synapse node")
        elif isinstance(node, neurons):
            shape = tuple(np.asarray(node.v_threshold).shape)
            if np.any(np.asarray(node.v_reset) != 0):
                raise NIRError(f"node '{name}': v_reset must be 0 (tsslc neurons reset to zero)")
            if not isinstance(node, nir.IF) and np.any(np.asarray(node.v_leak) != 0):
                raise NIRError(f"node '{name}': v_leak must be 0 (tsslc neurons leak towards zero)")
            threshold = _scalar(node.v_threshold, "v_threshold", name)
            r = np.asarray(node.r, np.float64)
            if isinstance(node, nir.IF):
                tau_m, factor, tau_in = float("inf"), dt * r, 1.0
            elif isinstance(node, nir.LIF):
                tau = _scalar(node.tau, "tau", name)
                tau_m, factor, tau_in = _steps(tau, dt, "tau", name), (r * dt) / np.asarray(node.tau, np.float64), 1.0
            else:
                tau = _scalar(node.tau_mem, "tau_mem", name)
                tau_m = _steps(tau, dt, "tau_mem", name)
                factor = (r * dt) / np.asarray(node.tau_mem, np.float64) * np.asarray(node.w_in, np.float64)
                tau_in = _steps(_scalar(node.tau_syn, "tau_syn", name), dt, "tau_syn", name)
            fold_rows(name, np.broadcast_to(factor, shape), name)
            for src in source_of(name, name):
                want_filter(src, tau_in, name)
            nodes[name] = N.LIF(shape=shape, tau_m=tau_m, tau_s=1.0, threshold=threshold)
        elif isinstance(node, nir.LI):
            outs = [s for s in succs[name]]
            src = preds[name]
            if (len(src) != 1 or not isinstance(ng.nodes[src[0]], neurons) or len(outs) != 1
                    or not isinstance(ng.nodes[outs[0]], nir.Output)):
                raise NIRError(f"node '{name}' (LI): supported only between a spiking population and the Output")
            if np.any(np.asarray(node.v_leak) != 0) or np.any(np.asarray(node.r) != 1):
                raise NIRError(f"node '{name}' (LI): the output filter needs r = 1 and v_leak = 0")
            tau_out[src[0]] = _steps(_scalar(node.tau, "tau", name), dt, "tau", name)
            skip.add(name)
            alias[name] = src[0]

    # fold factors into synapse rows
    for syn, factor in weight_rows.items():
        node = nodes[syn]
        factor = np.asarray(factor, np.float64)
        if isinstance(node, N.Dense):
            f = np.broadcast_to(factor, (node.weight.shape[0],)) if factor.ndim <= 1 else factor.reshape(-1)
            if f.shape != (node.weight.shape[0],):
                raise NIRError(f"node '{syn}': a scaling of shape {factor.shape} does not fit {node.weight.shape[0]} outputs")
            nodes[syn] = N.Dense(weight=node.weight.astype(np.float64) * f[:, None])
        else:
            c = node.weight.shape[0]
            f = np.broadcast_to(factor, (c,) + factor.shape[1:]) if factor.ndim == 3 else np.broadcast_to(factor, (c,))
            if f.ndim == 3:
                flat = f.reshape(c, -1)
                if not np.all(flat == flat[:, :1]):
                    raise NIRError(f"node '{syn}': a per-position scaling cannot fold into a convolution")
                f = flat[:, 0]
            nodes[syn] = N.Conv2d(weight=node.weight.astype(np.float64) * f[:, None, None, None], stride=node.stride,
                                  padding=node.padding, groups=node.groups)
    # pooling scale
    for name in list(alias):
        p = alias[name]
        if isinstance(nodes.get(p), N.SumPool2d):
            scale = _scalar(ng.nodes[name].scale, "scale", name)
            nodes[p] = N.SumPool2d(kernel=nodes[p].kernel, theta=nodes[p].theta * scale)
    # PSC filters of spike sources
    for src, node in list(nodes.items()):
        if isinstance(node, N.LIF):
            tau_s = filter_of.get(src, tau_out.get(src, 1.0))
            if src in filter_of and src in tau_out and tau_out[src] != filter_of[src]:
                raise NIRError(f"node '{src}': output filter {tau_out[src]} differs from its synapses' {filter_of[src]}")
            nodes[src] = N.LIF(shape=node.shape, tau_m=node.tau_m, tau_s=tau_s, threshold=node.threshold)
        elif isinstance(node, N.Input):
            tau = filter_of.get(src, 1.0)
            nodes[src] = N.Input(shape=node.shape, encoding=node.encoding, tau_s=None if tau == 1.0 else tau)

    metadata: dict = {}
    raw_md = _meta_str(md, "tsslc_metadata")
    if isinstance(raw_md, str):
        try:
            metadata = _decode(json.loads(raw_md))
        except (ValueError, TypeError, RecursionError):
            metadata = {}
        if not isinstance(metadata, dict):
            metadata = {}
    else:
        metadata = {"source": "nir", "dt": dt}
    if n_steps is not None:
        metadata["n_steps"] = int(n_steps)
    elif "n_steps" not in metadata and "n_steps" in md:
        metadata["n_steps"] = int(np.asarray(md["n_steps"]).item())

    # node order: the exporter's (recorded in the metadata) when it names exactly these nodes,
    # else by name, which makes Graph.order() the canonical one (topological, ties by name)
    names = [n for n in nodes if n not in skip]
    order = _stored_order(_meta_str(md, "tsslc_order"), names) or sorted(names)
    g = Graph(metadata)
    for name in order:
        g.add(name, nodes[name])
    for s, d in ng.edges:
        if d in skip:
            continue
        while s in skip:
            s = alias[s]
        if not g.has_edge(s, d):
            g.connect(s, d)
    try:
        g.validate()
    except TsslcError as e:
        raise NIRError(f"the imported graph is invalid: {e}") from None
    return g


def _stored_order(stored, names: list[str]) -> list[str] | None:
    if not isinstance(stored, str):
        return None
    try:
        order = json.loads(stored)
    except ValueError:
        return None
    if isinstance(order, list) and len(order) == len(names) and sorted(map(str, order)) == sorted(names):
        return [str(n) for n in order]
    return None


def read(path, dt: float | None = None, convention: str | None = None, encoding: str | None = None,
         n_steps: int | None = None) -> Graph:
    """Import a NIR file; any problem is one :class:`TsslcError` naming the file."""
    nir = _nir()
    path = Path(path)
    if not path.is_file():
        raise NIRError(f"NIR file {path} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head != b"\x89HDF\r\n\x1a\n":
        raise NIRError(f"{path} is not a NIR file (not HDF5)")
    try:
        import h5py

        with h5py.File(path, "r") as f:
            if "node" not in f:
                hint = " (it is a tsslc model file)" if f.attrs.get("format") in ("tsslc-graph", b"tsslc-graph") else ""
                raise NIRError(f"{path} is not a NIR file{hint}")
        ng = nir.read(path, type_check=False)  # shapes are checked by Graph.validate() below
    except TsslcError:
        raise
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise NIRError(f"{path}: cannot read the NIR graph ({msg})") from None
    if not isinstance(ng, nir.NIRGraph):
        raise NIRError(f"{path}: the file holds a single {type(ng).__name__}, not a NIR graph")
    try:
        return from_nir(ng, dt=dt, convention=convention, encoding=encoding, n_steps=n_steps)
    except NIRError as e:
        raise NIRError(f"{path}: {e}") from None
