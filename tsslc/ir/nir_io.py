"""NIR interchange (nir 1.0.8): tsslc graph ⇄ ``nir.NIRGraph`` and ``.nir`` files, with the
variants other frameworks' importers load as written, and their exporters' files read as
written.

Discretisation (NIR has none; this is tsslc's, recorded in every exported graph's metadata
as ``dt`` and ``discretization``): forward Euler with ``dt`` seconds per step, the synaptic
current updated *before* the voltage in each step, no synaptic delay, strict threshold,
reset to ``v_reset``::

    I[t] = I[t-1] + dt/τ_syn · (−I[t-1] + w_in ⊙ S[t])        (CubaLIF only; else I = S)
    v[t] = v[t-1] + dt/τ_mem · (v_leak − v[t-1] + r ⊙ I[t])   (IF: v[t-1] + dt · r ⊙ I[t])
    z[t] = v[t] > v_threshold;  v[t] ← v_reset where z[t]

Export (``consumer="generic"``). A tsslc layer ``L.synapse`` (Dense/Conv2d) + ``L`` (LIF τm,
threshold V) becomes ``Linear(W)``/``Conv2d(W)`` → ``CubaLIF(tau_syn = τs_in·dt, tau_mem =
τm·dt, r = τm, v_leak = 0, v_threshold = V, v_reset = 0, w_in = 1)``, where τs_in is the PSC
time constant of the spikes feeding the synapse (the previous LIF's τs, or the input
filter's). This is exactly TSSL-BP's neuron (NIR.md). SumPool2d(k, θp) → ``SumPool2d`` +
``Scale(θp)``; Flatten → ``Flatten(start_dim=0)``; the last population's PSC filter before
the output → ``LI(tau = τs·dt, r = 1, v_leak = 0)`` named ``<population>.li``; Dropout is
dropped (identity at inference). No two node names coincide after nirtorch's "." → "_".

Export for a consumer (:data:`CONSUMERS`, read from each importer's source):

- ``snntorch`` (``snntorch.import_nir`` 1.0.0): dt = 1e-4 (hard-coded there; its CubaLIF
  assertion ``r == tau_mem/dt`` then holds with r = τm), no LI node (no mapping), the pooling
  factor θp folded into the next synapse's weights (no Scale mapping; SumPool2d runs as
  nirtorch's LPPool2d(1)).
- ``norse`` (``norse.torch.from_nir`` 1.1.0): dt = 1e-3 (its default), no LI (mapped to
  nothing) and θp folded as for snnTorch.
- For both, an input that the graph flattens first is declared flat (their importers turn
  NIR's ``Flatten(start_dim=0)`` into ``torch.nn.Flatten(0)``, which would flatten the batch
  too; a flat input lets them run batches ``(B, n)``). A Flatten deeper in the net stays
  NIR's ``start_dim=0``, so such a net runs there one unbatched sample per call.
- ``sinabs`` (``sinabs.from_nir`` 3.1.3): refused. It has no CubaLIF mapping, and builds
  LIFSqueeze/IAFSqueeze with Sinabs' defaults, MultiSpike and MembraneSubtract: several
  spikes per step and subtract-reset.
- ``rockpool`` (``rockpool.nn.modules.torch.nir`` 3.1.0): refused unless ``approximate``.
  Its LIFTorch fires ``floor(v/θ)`` spikes when v ≥ θ and subtracts them (TSSL-BP: one spike
  when v > θ, reset to zero); it has no Conv2d, pooling or Flatten mapping (refused even
  then). The approximate file matches everything else: CubaLIF with
  ``tau = −dt/ln(1 − 1/τ)`` (its exp decay equals the Euler factor 1 − 1/τ) and
  ``r = tau_mem/dt − 1`` (its importer takes dt = tau_mem/(1 + r)), and weights ×(1 − β)/β
  (it adds the input before decaying the current by β).

Import. Input, Output, Linear, Affine (zero bias), Conv2d (dilation 1, zero bias),
SumPool2d / AvgPool2d (stride = kernel, no padding), Flatten, Scale (after a pool, or after a
synapse), IF, LIF, CubaLIF, and LI before an output. What exporters write today is taken as
written: a leading batch dimension of 1 on Input/Output, empty or missing types, Flatten
with or without types, and an unmapped module (``None``, Norse's exporter for Flatten)
between a (C, H, W) population and a dense synapse of C·H·W inputs read as Flatten.
Time constants become steps via a :class:`Convention` (``dt`` argument, else a named
``convention`` from :data:`CONVENTIONS`, else the graph's recorded ``dt``; none of them is an
error that says so); the factors dt·r/τ (LIF, CubaLIF: times w_in; IF: dt·r) are folded into
the rows of the incoming synapse weights; a CubaLIF's ``tau_syn`` becomes the PSC time
constant of the population (or input) whose spikes reach it. Anything else is one error
listing every unsupported node and its type.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tsslc
from tsslc import validate
from tsslc.atomic import atomic_write_bytes
from tsslc.errors import TsslcError
from tsslc.ir import nodes as N
from tsslc.ir.graph import Graph
from tsslc.ir.io import _decode, _encode, check_metadata

#: Default seconds per time step of a generic export.
DEFAULT_DT = 1e-3

#: Longest simulation an imported graph may ask for (steps per sample).
MAX_STEPS = validate.MAX_STEPS  # one limit (tsslc.validate)


@dataclass(frozen=True)
class Convention:
    """How a framework's NIR time constants map to steps.

    ``dt``: seconds per step the stored τ is divided by. ``decay``: ``"euler"`` (the state
    decays by 1 − dt/τ per step and the input is scaled by r·dt/τ) or ``"exp"`` (it decays
    by e^(−dt/τ) and the input is scaled by r·(1 − e^(−dt/τ))); either becomes tsslc's
    Euler τ = 1/(1 − decay). ``rockpool``: Rockpool's own input scaling (see below), with
    dt solved from the r it writes. ``how``: where the numbers come from."""

    dt: float
    decay: str = "euler"
    rockpool: bool = False
    how: str = ""


#: The conventions of ``tsslc nir import --convention`` (each read from the exporter's source).
CONVENTIONS: dict[str, Convention] = {
    "tsslc": Convention(DEFAULT_DT, how="what `tsslc nir export` writes by default (and records as metadata dt)"),
    "snntorch": Convention(1e-4, how=(
        "snntorch/export_nir.py (1.0.0): Leaky -> LIF(tau = dt/(1-beta), r = tau/dt), Synaptic -> "
        "CubaLIF(tau_syn = dt/(1-alpha), w_in = tau_syn/dt) with dt = 1e-4 hard-coded; Leaky steps "
        "mem = beta*mem + x, i.e. Euler with tau/dt steps")),
    "norse": Convention(1e-6, how=(
        "norse/torch/utils/export_nir.py (1.1.0) writes tau = dt/tau_mem_inv with dt = 1e-3, i.e. dt*tau "
        "(a 10 ms constant is stored as 1e-5), and its cells step v += dt*tau_mem_inv*(i - v): tau in "
        "steps = stored/(1e-3)^2")),
    "sinabs": Convention(1.0, "exp", how=(
        "sinabs/nir.py (3.1.3) writes LIF(tau = tau_mem in steps, r = 1) and IF(r = 1); LIF decays "
        "v by exp(-1/tau) and scales its input by 1 - exp(-1/tau) (norm_input, the default); IAF adds it")),
    "rockpool": Convention(1e-3, "exp", rockpool=True, how=(
        "rockpool/nn/modules/torch/nir.py (3.1.0) writes CubaLIF/LIF(tau in seconds, r = tau*exp(-dt/tau)/dt); "
        "dt is solved from r; LIFTorch steps isyn = beta*(isyn + x), v = alpha*v + isyn with "
        "alpha = exp(-dt/tau_mem), beta = exp(-dt/tau_syn); LIFNeuronTorch v = alpha*v + x")),
    "steps": Convention(1.0, how="time constants counted in steps, Euler"),
}


@dataclass(frozen=True)
class Consumer:
    """The NIR variant one framework's importer loads as written (see the module docstring)."""

    dt: float | None  # the dt its importer assumes (None: the caller's, default DEFAULT_DT)
    output_filter: bool = True  # write the output PSC filter as an LI node
    fold_scale: bool = False  # no Scale mapping: pooling factors go into the next synapse
    flat_input: bool = False  # an input the graph flattens first is declared flat
    rockpool: bool = False  # Rockpool's parameterisation of CubaLIF (exp decays, r = tau/dt - 1)
    mismatch: str = ""  # how its neuron differs from TSSL-BP's ('' if it does not)
    no_conv: str = ""  # why it cannot load conv nets ('' if it can)
    refuse: bool = False  # refuse even when approximate is asked for


CONSUMERS: dict[str, Consumer] = {
    "generic": Consumer(dt=None),
    "snntorch": Consumer(dt=1e-4, output_filter=False, fold_scale=True, flat_input=True),
    "norse": Consumer(dt=1e-3, output_filter=False, fold_scale=True, flat_input=True),
    "sinabs": Consumer(dt=1.0, refuse=True, mismatch=(
        "Sinabs' from_nir has no CubaLIF, and turns NIR LIF/IF into LIFSqueeze/IAFSqueeze with MultiSpike and "
        "MembraneSubtract (several spikes per step, subtract-reset, v >= threshold, exponential decay), where "
        "TSSL-BP spikes once per step when v > threshold and resets to zero")),
    "rockpool": Consumer(dt=1e-3, output_filter=False, fold_scale=True, flat_input=True, rockpool=True, mismatch=(
        "Rockpool's LIFTorch fires floor(v/threshold) spikes per step when v >= threshold and subtracts them, "
        "where TSSL-BP fires one spike when v > threshold and resets to zero"),
        no_conv="Rockpool's from_nir has no Conv2d, SumPool2d or Flatten mapping"),
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


def torch_name(name: str) -> str:
    """The module name nirtorch gives a NIR node ("." → "_")."""
    return name.replace(".", "_")


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


def _free_name(base: str, taken: set[str]) -> str:
    """``base`` (or ``base2``, ``base3``, …) such that neither it nor its nirtorch name is taken."""
    name, i = base, 2
    while name in taken or torch_name(name) in taken:
        name, i = f"{base}{i}", i + 1
    taken.update((name, torch_name(name)))
    return name


def _exp_tau(tau_steps: float, dt: float, what: str, where: str) -> float:
    """The τ (seconds) whose exact decay e^(−dt/τ) equals the Euler factor 1 − 1/τ_steps."""
    decay = 1.0 - 1.0 / float(tau_steps)
    if not 0.0 < decay < 1.0:
        raise NIRError(f"node '{where}': {what} of {tau_steps} steps has no exponential equivalent (it needs > 1 step)")
    return -dt / math.log(decay)


def check_consumer(graph: Graph, consumer: str = "generic", approximate: bool = False) -> Consumer:
    """The :class:`Consumer` named ``consumer``; raises the one-line refusal when its importer
    cannot run ``graph`` as TSSL-BP does (or at all)."""
    if consumer not in CONSUMERS:
        raise NIRError(f"unknown NIR consumer {consumer!r} (known: {', '.join(CONSUMERS)})")
    c = CONSUMERS[consumer]
    if c.mismatch and (c.refuse or not approximate):
        hint = "" if c.refuse else "; --approximate writes it anyway (agreement measured in README.md)"
        raise NIRError(f"--for {consumer}: refused, {c.mismatch}{hint}")
    if c.no_conv:
        conv = [n for n, node in graph.items() if isinstance(node, (N.Conv2d, N.SumPool2d))]
        flat = [n for n, node in graph.items() if isinstance(node, N.Flatten)
                and not isinstance(graph[graph.predecessors(n)[0]], N.Input)]
        if conv or flat:
            bad = (conv or flat)[0]
            raise NIRError(f"--for {consumer}: refused, {c.no_conv} (node '{bad}', {graph[bad].kind})")
    return c


def to_nir(graph: Graph, dt: float | None = None, consumer: str = "generic", approximate: bool = False):
    """The float graph as a ``nir.NIRGraph`` for ``consumer`` (see the module docstring)."""
    nir = _nir()
    graph.validate()
    ints = [n for n, node in graph.items() if node.kind.startswith("int_")]
    if ints:
        raise NIRError(f"node '{ints[0]}' ({graph[ints[0]].kind}): NIR has no integer types; export the float model")
    c = check_consumer(graph, consumer, approximate)
    if dt is None:
        dt = c.dt if c.dt is not None else DEFAULT_DT
    dt = float(dt)
    if not (np.isfinite(dt) and dt > 0):
        raise NIRError(f"dt must be a positive number of seconds, got {dt}")
    if c.dt is not None and dt != c.dt:
        raise NIRError(f"--for {consumer}: its importer assumes dt = {c.dt:g} s, got --dt {dt:g}")
    shapes = graph.shapes()
    taken: set[str] = set()
    by_torch: dict[str, str] = {}
    for name in graph.order():
        if "/" in name:
            raise NIRError(f"node '{name}': NIR node names cannot contain '/'")
        other = by_torch.setdefault(torch_name(name), name)
        if other != name:
            raise NIRError(f"nodes '{other}' and '{name}' have the same name after nirtorch's '.' -> '_'; rename one")
        taken.update((name, torch_name(name)))

    inp = graph.input_name
    first = graph.successors(inp)
    flat_input = c.flat_input and len(first) == 1 and isinstance(graph[first[0]], N.Flatten)
    nodes: dict = {}
    edges: list[tuple[str, str]] = []
    rename: dict[str, str] = {}  # tsslc node -> NIR node that carries its output
    pending: dict[str, float] = {}  # tsslc node -> factor its output still owes (folded pooling scales)
    for name, node in graph.items():
        preds = graph.predecessors(name)
        shape = shapes[name]
        in_shape = shapes[preds[0]] if preds else None
        owed = pending.get(preds[0], 1.0) if preds else 1.0

        def full(v, shp=shape):
            return np.full(shp, float(v), dtype=np.float64)

        def weight(w):
            factor = owed
            if c.rockpool:  # Rockpool adds the input before decaying the current by β = 1 − 1/τs
                factor /= _filter_steps(graph, name) - 1.0
            return w.copy() if factor == 1.0 else (w.astype(np.float64) * factor).astype(w.dtype)

        if isinstance(node, N.Dropout) or (flat_input and isinstance(node, N.Flatten) and preds == [inp]):
            rename[name] = rename.get(preds[0], preds[0])  # identity here: consumers read its input
            pending[name] = owed
            continue
        if isinstance(node, N.Input):
            declared = (int(np.prod(shape)),) if flat_input else shape
            nodes[name] = nir.Input(input_type={"input": np.array(declared)})
        elif isinstance(node, N.Dense):
            nodes[name] = nir.Linear(weight=weight(node.weight))
        elif isinstance(node, N.Conv2d):
            nodes[name] = nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=weight(node.weight), stride=node.stride,
                                     padding=node.padding, dilation=1, groups=node.groups,
                                     bias=np.zeros(node.weight.shape[0], node.weight.dtype))
        elif isinstance(node, N.SumPool2d):
            k = node.kernel
            nodes[name] = nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([k, k]), padding=np.array([0, 0]))
            if node.theta != 1.0 and c.fold_scale:
                pending[name] = owed * node.theta
            elif node.theta != 1.0:
                theta = _free_name(f"{name}.theta", taken)
                nodes[theta] = nir.Scale(scale=full(node.theta))
                edges.append((name, theta))
                rename[name] = theta
        elif isinstance(node, N.Flatten):
            nodes[name] = nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1)
            pending[name] = owed
        elif isinstance(node, N.LIF):
            tau_in = _filter_steps(graph, name)
            if c.rockpool:
                tau_mem = _exp_tau(node.tau_m, dt, "tau_m", name)
                nodes[name] = nir.CubaLIF(tau_syn=full(_exp_tau(tau_in, dt, "tau_s", name)), tau_mem=full(tau_mem),
                                          r=full(tau_mem / dt - 1.0), v_leak=full(0.0),
                                          v_threshold=full(node.threshold), v_reset=full(0.0), w_in=full(1.0))
            else:
                nodes[name] = nir.CubaLIF(tau_syn=full(tau_in * dt), tau_mem=full(node.tau_m * dt),
                                          r=full(node.tau_m), v_leak=full(0.0), v_threshold=full(node.threshold),
                                          v_reset=full(0.0), w_in=full(1.0))
        elif isinstance(node, N.Output):
            (src,) = preds
            nodes[name] = nir.Output(output_type={"output": np.array(shape)})
            if c.output_filter:
                li = _free_name(f"{src}.li", taken)
                nodes[li] = nir.LI(tau=full(graph[src].tau_s * dt), r=full(1.0), v_leak=full(0.0))
                edges += [(src, li), (li, name)]
                continue
        else:  # pragma: no cover - every float node type is handled above
            raise NIRError(f"node '{name}': cannot export {node.kind!r} to NIR")
        for p in preds:
            edges.append((rename.get(p, p), name))
    metadata = {
        "dt": dt,
        "discretization": DISCRETIZATION,
        "producer": f"tsslc {tsslc.__version__}",
        "consumer": consumer,
        "input_encoding": graph[inp].encoding,
        "tsslc_metadata": json.dumps(_encode(graph.metadata), allow_nan=True),
        "tsslc_order": json.dumps([n for n in graph.order() if n not in rename]),
    }
    if c.mismatch:
        metadata["approximate"] = c.mismatch
    if "n_steps" in graph.metadata:
        metadata["n_steps"] = int(graph.metadata["n_steps"])
    try:
        # nir's type check does not know conv groups (it expects weight.shape[1] input channels)
        grouped = any(isinstance(n, N.Conv2d) and n.groups > 1 for _, n in graph.items())
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=not grouped)
    except Exception as e:  # nir's own type check; should not happen for a validated graph
        raise NIRError(f"NIR rejected the exported graph: {e}") from None


def write(graph: Graph, path, dt: float | None = None, consumer: str = "generic", approximate: bool = False) -> Path:
    """Export ``graph`` to a NIR file (HDF5) for ``consumer``, atomically."""
    return write_graph(to_nir(graph, dt, consumer, approximate), path)


def write_graph(ng, path) -> Path:
    """Write a ``nir.NIRGraph`` to ``path`` atomically."""
    import io

    nir = _nir()
    buf = io.BytesIO()  # built in memory: a full disk is then an OSError, not HDF5's crash
    nir.write(buf, ng)
    return atomic_write_bytes(Path(path), buf.getvalue(), make_parents=False, what="NIR file")


# --- import --------------------------------------------------------------------------------


def _arr(v, where: str, what: str) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise NIRError(f"node '{where}': {what} {v!r:.60} is not numeric") from None
    if a.size == 0:
        raise NIRError(f"node '{where}': {what} is empty")
    return a


def _scalar(arr, what: str, where: str) -> float:
    a = _arr(arr, where, what)
    if not np.all(a == a.flat[0]):
        raise NIRError(f"node '{where}': {what} differs between neurons; tsslc needs one value per population")
    return float(a.flat[0])


def _snap(x: float, stored: np.ndarray, scale: float) -> float:
    """``x`` = stored/scale, or the round number an exporter started from when ``scale``
    times it rounds to the stored value in the stored precision (float32 files)."""
    c = round(x, 6)
    if c > 0 and c != x:
        if stored.dtype == np.float32 and np.float32(c * scale) == np.float32(stored.flat[0]):
            return c
        if c * scale == float(stored.flat[0]):
            return c
    return x


def _pair(v, what: str, where: str) -> int:
    a = np.atleast_1d(np.asarray(v))
    if a.dtype.kind not in "iuf" or a.size not in (1, 2) or not np.all(a == a.flat[0]) or a.flat[0] != int(a.flat[0]):
        raise NIRError(f"node '{where}': {what} {v!r:.60} must be one integer for both dimensions")
    return int(a.flat[0])


def _meta_str(md: dict, key: str):
    v = md.get(key)
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v.item()
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    return v


def resolve_convention(ng, dt: float | None = None, convention: str | None = None) -> Convention:
    """The :class:`Convention` to read ``ng`` with: ``dt``, else ``convention``, else the
    ``dt`` recorded in the graph's metadata (Euler)."""
    if dt is not None:
        conv = Convention(float(dt), how="--dt")
    elif convention is not None:
        if convention not in CONVENTIONS:
            raise NIRError(f"unknown dt convention {convention!r} (known: {', '.join(CONVENTIONS)})")
        conv = CONVENTIONS[convention]
    elif "dt" in (ng.metadata or {}):
        raw = _meta_str(ng.metadata, "dt")
        try:
            conv = Convention(float(np.asarray(raw, dtype=np.float64).item()), how="the graph's metadata")
        except (TypeError, ValueError):
            raise NIRError(f"the graph's metadata dt {raw!r:.60} is not a number of seconds; pass --dt or --convention") from None
    else:
        raise NIRError(
            "the NIR graph does not record its time step: pass dt (--dt SECONDS) or a convention "
            f"(--convention {'|'.join(CONVENTIONS)})"
        )
    if not (np.isfinite(conv.dt) and conv.dt > 0):
        raise NIRError(f"dt must be a positive number of seconds, got {conv.dt}")
    return conv


def resolve_dt(ng, dt: float | None = None, convention: str | None = None) -> float:
    return resolve_convention(ng, dt, convention).dt


def _rockpool_dt(tau: float, r: float, where: str) -> float:
    """The dt Rockpool's exporter used: it writes r = τ·e^(−dt/τ)/dt; solve r = e^(−y)/y, y = dt/τ."""
    if not (np.isfinite(r) and r > 0):
        raise NIRError(f"node '{where}': r = {r} cannot come from Rockpool's exporter (r = tau*exp(-dt/tau)/dt > 0)")
    lo, hi = 1e-12, 50.0  # e^(−y)/y decreases on y > 0
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if math.exp(-mid) / mid > r:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi) * tau


def _int_steps(n_steps, what: str) -> int:
    from tsslc import validate

    v = n_steps
    if isinstance(v, np.ndarray) and v.size == 1:
        v = v.reshape(()).item()
    if isinstance(v, (str, bytes)):
        try:
            v = float(v)
        except ValueError:
            raise NIRError(f"{what} {n_steps!r:.60} is not a whole number of steps") from None
    try:
        return validate.number(None, what, v, int, lo=1, hi=MAX_STEPS)
    except TsslcError as e:
        raise NIRError(str(e)) from None


def _topo(names: list[str], edges) -> list[str]:
    preds = {k: set() for k in names}
    for s, d in edges:
        preds[d].add(s)
    order, done = [], set()
    while len(order) < len(names):
        ready = [k for k in names if k not in done and preds[k] <= done]
        if not ready:
            cyc = sorted(k for k in names if k not in done)
            raise NIRError(f"the NIR graph has a cycle through {', '.join(map(repr, cyc[:4]))}; "
                           f"tsslc imports feed-forward graphs")
        for k in sorted(ready):
            order.append(k)
            done.add(k)
    return order


def _shape(v) -> tuple[int, ...] | None:
    if v is None:
        return None
    a = np.asarray(v)
    if a.dtype == object or a.size == 0 or a.dtype.kind not in "iuf":
        return None
    if a.dtype.kind == "f" and not (np.isfinite(a).all() and (a == np.round(a)).all()):
        return None  # NaN, inf or fractions: no shape (the caller names the node)
    return tuple(int(d) for d in a.ravel())


def _strip_ones(shape: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    """``shape`` without leading 1s beyond ``ndim`` dimensions (batch/time dims of exporters)."""
    while len(shape) > ndim and shape[0] == 1:
        shape = shape[1:]
    return shape


def _type_of(types, key: str):
    if not isinstance(types, dict):
        return None
    return _shape(types.get(key))


def _flatten_like(name: str, raw: dict, preds: dict, succs: dict) -> bool:
    """An unmapped module (``None``) between a (C, H, W) population and a dense synapse of
    C·H·W inputs: what Norse's exporter writes for ``torch.nn.Flatten``."""
    nir = _nir()
    if len(preds[name]) != 1 or len(succs[name]) != 1:
        return False
    p, s = raw[preds[name][0]], raw[succs[name][0]]
    if not isinstance(p, (nir.LIF, nir.IF, nir.CubaLIF)) or not isinstance(s, (nir.Linear, nir.Affine)):
        return False
    shape = np.shape(p.v_threshold)
    return len(shape) >= 2 and np.ndim(s.weight) == 2 and int(np.prod(shape)) == int(np.shape(s.weight)[1])


def from_nir(ng, dt: float | None = None, convention: str | None = None, encoding: str | None = None,
             n_steps: int | None = None) -> Graph:
    """A tsslc float graph from a ``nir.NIRGraph`` (see the module docstring)."""
    nir = _nir()
    if not isinstance(ng, nir.NIRGraph):
        raise NIRError(f"expected a NIR graph, got a single {type(ng).__name__} node")
    conv = resolve_convention(ng, dt, convention)
    md = dict(ng.metadata or {})
    if n_steps is not None:
        n_steps = _int_steps(n_steps, "n_steps")
    raw = {str(k): v for k, v in ng.nodes.items()}
    edges = [(str(s), str(d)) for s, d in ng.edges]
    preds: dict[str, list[str]] = {k: [] for k in raw}
    succs: dict[str, list[str]] = {k: [] for k in raw}
    for s, d in edges:
        if s not in raw or d not in raw:
            raise NIRError(f"edge {s} -> {d}: unknown node '{s if s not in raw else d}'")
        preds[d].append(s)
        succs[s].append(d)
    flat_none = {k for k, v in raw.items() if v is None and _flatten_like(k, raw, preds, succs)}
    bad = []
    for k, v in sorted(raw.items()):
        if v is None and k not in flat_none:
            bad.append(f"'{k}' (None: the exporter could not map its module)")
        elif isinstance(v, nir.NIRGraph):
            bad.append(f"'{k}' (NIRGraph: a subgraph, e.g. a recurrent layer)")
        elif v is not None and type(v).__name__ not in SUPPORTED:
            bad.append(f"'{k}' ({type(v).__name__})")
    if bad:
        raise NIRError(f"unsupported NIR node(s): {', '.join(bad)}; tsslc imports {', '.join(SUPPORTED)}")
    inputs = [k for k, v in raw.items() if isinstance(v, nir.Input)]
    if len(inputs) != 1:
        raise NIRError(f"the NIR graph must have exactly one Input node, found {len(inputs)}")
    neurons = (nir.LIF, nir.IF, nir.CubaLIF)
    synapses = (nir.Linear, nir.Affine, nir.Conv2d)

    nodes: dict[str, N.Node] = {}
    shape_of: dict[str, tuple[int, ...]] = {}
    skip: set[str] = set()  # NIR nodes merged into a neighbour
    alias: dict[str, str] = {}  # merged NIR node -> tsslc node carrying its output
    weight_rows: dict[str, np.ndarray] = {}  # synapse -> per-output factor to fold in
    filter_of: dict[str, float] = {}  # spike source (LIF/Input) -> τs in steps
    tau_out: dict[str, float] = {}

    def source_of(name: str) -> list[str]:
        out, stack = [], list(preds[name])
        while stack:
            p = stack.pop()
            if isinstance(raw[p], (nir.Input, *neurons)):
                out.append(p)
            else:
                stack.extend(preds[p])
        return out

    def want_filter(src: str, tau: float, where: str) -> None:
        if src in filter_of and filter_of[src] != tau:
            raise NIRError(f"node '{where}': '{src}' feeds populations with different synaptic time constants "
                           f"({filter_of[src]} and {tau} steps); tsslc has one PSC filter per population")
        filter_of[src] = tau

    def fold_rows(name: str, factor: np.ndarray) -> None:
        if np.all(factor == 1.0):
            return
        for p in preds[name]:
            node = raw[p]
            if not isinstance(node, synapses) or len(succs[p]) != 1:
                raise NIRError(f"node '{name}': its input scaling (r, w_in, dt/tau) must fold into a synapse that "
                               f"feeds only it, but '{p}' ({type(node).__name__}) does not qualify")
            weight_rows[p] = weight_rows.get(p, 1.0) * factor

    def steps(value, what: str, where: str, dt_: float) -> float:
        """A stored τ as tsslc's Euler τ in steps under the convention."""
        stored = np.asarray(value)
        tau = _scalar(stored, what, where)
        if not (np.isfinite(tau) and tau > 0):
            raise NIRError(f"node '{where}': {what} must be a positive number of seconds, got {tau}")
        x = _snap(tau / dt_, stored, dt_)
        if conv.decay == "exp":
            x = 1.0 / -math.expm1(-1.0 / x)  # decay e^(−1/x) = 1 − 1/τ
        if not (np.isfinite(x) and x > 0):
            raise NIRError(f"node '{where}': {what} = {tau} s is not a usable number of steps at dt = {dt_}")
        return x

    def in_shape(name: str) -> tuple[int, ...]:
        ps = preds[name]
        if not ps:
            raise NIRError(f"node '{name}' ({type(raw[name]).__name__}): no input reaches it")
        return shape_of[ps[0]]

    def infer(name: str, node: N.Node) -> tuple[int, ...]:
        try:
            return tuple(int(d) for d in node.infer_shape(in_shape(name)))
        except ValueError as e:
            raise NIRError(f"node '{name}' ({type(raw[name]).__name__}): {e}") from None

    for name in _topo(list(raw), edges):
        node = raw[name]
        kind = type(node).__name__
        if isinstance(node, nir.Input):
            shape = _type_of(node.input_type, "input") or _type_of(node.output_type, "output")
            if not shape:
                raise NIRError(f"node '{name}' (Input): no input shape")
            nxt = [raw[s] for s in succs[name]]
            need = {1 if isinstance(s, (nir.Linear, nir.Affine)) else 3 if isinstance(s, nir.Conv2d) else None
                    for s in nxt}
            if len(need) == 1 and None not in need:  # leading batch dimensions of 1 (Norse, Rockpool)
                shape = _strip_ones(shape, need.pop())
            enc = encoding or _meta_str(md, "input_encoding")
            if enc is None:
                enc = "current"
            if not isinstance(enc, str):
                raise NIRError(f"the graph's metadata input_encoding {enc!r:.40} is not 'current' or 'events'")
            nodes[name] = N.Input(shape=shape, encoding=str(enc), tau_s=None)
            shape_of[name] = shape
            continue
        if isinstance(node, nir.Output):
            if len(preds[name]) != 1:
                raise NIRError(f"node '{name}' (Output): needs exactly one input, has {len(preds[name])}")
            shape = in_shape(name)
            declared = _type_of(node.output_type, "output") or _type_of(node.input_type, "input")
            if declared is not None and _strip_ones(declared, len(shape)) != shape:
                raise NIRError(f"node '{name}' (Output): declared shape {declared} does not fit its input {shape}")
            nodes[name] = N.Output(shape=shape)
        elif isinstance(node, (nir.Linear, nir.Affine)):
            if isinstance(node, nir.Affine) and node.bias is not None and np.any(np.asarray(node.bias) != 0):
                raise NIRError(f"node '{name}' (Affine): a non-zero bias cannot be imported (tsslc synapses have no bias)")
            w = np.asarray(node.weight)
            if w.ndim != 2:
                raise NIRError(f"node '{name}' ({kind}): weight of shape {w.shape} is not 2-D")
            nodes[name] = N.Dense(weight=w.copy())
        elif isinstance(node, nir.Conv2d):
            if node.bias is not None and np.any(np.asarray(node.bias) != 0):
                raise NIRError(f"node '{name}' (Conv2d): a non-zero bias cannot be imported (tsslc synapses have no bias)")
            if _pair(node.dilation, "dilation", name) != 1:
                raise NIRError(f"node '{name}' (Conv2d): dilation {node.dilation} is not supported")
            if isinstance(node.padding, str):
                raise NIRError(f"node '{name}' (Conv2d): padding {node.padding!r} must be given as an integer")
            nodes[name] = N.Conv2d(weight=np.asarray(node.weight).copy(), stride=_pair(node.stride, "stride", name),
                                   padding=_pair(node.padding, "padding", name), groups=int(np.asarray(node.groups)))
        elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            k = _pair(node.kernel_size, "kernel_size", name)
            if _pair(node.stride, "stride", name) != k or _pair(node.padding, "padding", name) != 0:
                raise NIRError(f"node '{name}' ({kind}): only non-overlapping pooling "
                               f"(stride = kernel, no padding) is supported")
            nodes[name] = N.SumPool2d(kernel=k, theta=1.0 if isinstance(node, nir.SumPool2d) else 1.0 / (k * k))
        elif node is None or isinstance(node, nir.Flatten):
            nd = len(in_shape(name))
            try:
                start, end = (0, -1) if node is None else (int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim)))
            except (TypeError, ValueError, OverflowError):
                raise NIRError(f"node '{name}' (Flatten): start_dim {node.start_dim!r:.30} / end_dim {node.end_dim!r:.30} "
                               f"are not integers") from None
            if start not in (0, -nd) or end not in (-1, nd - 1):
                raise NIRError(f"node '{name}' (Flatten): only flattening all {nd} dimensions of {in_shape(name)} "
                               f"(start_dim 0, end_dim -1; NIR shapes have no batch) is supported, got {start}..{end}")
            nodes[name] = N.Flatten()
        elif isinstance(node, nir.Scale):
            (p,) = preds[name] if len(preds[name]) == 1 else (None,)
            pnode = raw.get(p)
            if isinstance(pnode, (nir.SumPool2d, nir.AvgPool2d)) and len(succs[p]) == 1:
                pass
            elif isinstance(pnode, synapses) and len(succs[p]) == 1:
                weight_rows[p] = weight_rows.get(p, 1.0) * _arr(node.scale, name, "scale")
            else:
                raise NIRError(f"node '{name}' (Scale): supported only right after a pooling or a synapse node")
            skip.add(name)
            alias[name] = p
            shape_of[name] = shape_of[p]
            continue
        elif isinstance(node, neurons):
            here = in_shape(name)
            pshape = tuple(np.shape(node.v_threshold))
            if int(np.prod(pshape)) != 1 and pshape != here:
                raise NIRError(f"node '{name}' ({kind}): parameters of shape {pshape} do not fit its input {here}")
            if getattr(node, "v_reset", None) is not None and np.any(np.asarray(node.v_reset) != 0):
                raise NIRError(f"node '{name}': v_reset must be 0 (tsslc neurons reset to zero)")
            if not isinstance(node, nir.IF) and np.any(np.asarray(node.v_leak) != 0):
                raise NIRError(f"node '{name}': v_leak must be 0 (tsslc neurons leak towards zero)")
            threshold = _scalar(node.v_threshold, "v_threshold", name)
            r = _arr(node.r, name, "r")
            tau_in = 1.0
            if isinstance(node, nir.IF):
                tau_m, factor = float("inf"), conv.dt * r
            else:
                tau_stored = node.tau if isinstance(node, nir.LIF) else node.tau_mem
                what = "tau" if isinstance(node, nir.LIF) else "tau_mem"
                dt_ = _rockpool_dt(_scalar(tau_stored, what, name), _scalar(r, "r", name), name) \
                    if conv.rockpool else conv.dt
                tau_m = steps(tau_stored, what, name, dt_)
                factor = 1.0 if conv.rockpool else r / tau_m
                if isinstance(node, nir.CubaLIF):
                    tau_in = steps(node.tau_syn, "tau_syn", name, dt_)
                    factor = tau_in - 1.0 if conv.rockpool else factor * _arr(node.w_in, name, "w_in")
            factor = np.asarray(factor, np.float64)
            nearest = np.round(factor)
            factor = np.where(np.abs(factor - nearest) <= 1e-6 * np.abs(factor), nearest, factor)  # float32 files
            fold_rows(name, np.broadcast_to(factor, here) if factor.size == 1 else factor)
            for src in source_of(name):
                want_filter(src, tau_in, name)
            nodes[name] = N.LIF(shape=here, tau_m=tau_m, tau_s=1.0, threshold=threshold)
            shape_of[name] = here
            continue
        elif isinstance(node, nir.LI):
            src = preds[name]
            outs = succs[name]
            if (len(src) != 1 or not isinstance(raw[src[0]], neurons) or len(outs) != 1
                    or not isinstance(raw[outs[0]], nir.Output)):
                raise NIRError(f"node '{name}' (LI): supported only between a spiking population and the Output")
            if np.any(np.asarray(node.v_leak) != 0) or np.any(np.asarray(node.r) != 1):
                raise NIRError(f"node '{name}' (LI): the output filter needs r = 1 and v_leak = 0")
            tau_out[src[0]] = steps(node.tau, "tau", name, conv.dt)
            skip.add(name)
            alias[name] = src[0]
            shape_of[name] = shape_of[src[0]]
            continue
        shape_of[name] = infer(name, nodes[name])

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
    for name, p in alias.items():
        if isinstance(nodes.get(p), N.SumPool2d):
            scale = _scalar(raw[name].scale, "scale", name)
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
        metadata = {"source": "nir", "dt": conv.dt}
    if n_steps is not None:
        metadata["n_steps"] = n_steps
    elif "n_steps" in md:
        metadata["n_steps"] = _int_steps(_meta_str(md, "n_steps"), "the graph's metadata n_steps")
    elif "n_steps" in metadata:
        metadata["n_steps"] = _int_steps(metadata["n_steps"], "the graph's metadata n_steps")

    # node order: the exporter's (recorded in the metadata) when it names exactly these nodes,
    # else by name, which makes Graph.order() the canonical one (topological, ties by name)
    names = [n for n in nodes if n not in skip]
    order = _stored_order(_meta_str(md, "tsslc_order"), names) or sorted(names)
    g = Graph(metadata)
    for name in order:
        g.add(name, nodes[name])
    done: set[tuple[str, str]] = set()
    for s, d in edges:
        if d in skip:
            continue
        while s in skip:
            s = alias[s]
        if (s, d) not in done:
            done.add((s, d))
            g.connect(s, d)
    try:
        check_metadata(g, g.validate())  # tsslc_metadata is read back like a model file's
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


#: the node types the nir library reads (nir.serialization.read_node)
NIR_TYPES = ("Affine", "AvgPool2d", "Conv1d", "Conv2d", "CubaLI", "CubaLIF", "Delay", "Flatten", "I", "IF", "Input",
             "LI", "LIF", "Linear", "NIRGraph", "Output", "Scale", "SumPool2d", "Threshold")


_NEURON_TYPES = ("CubaLIF", "LIF", "LI", "CubaLI", "IF", "I")


def _check_file(root, path) -> None:
    """Before the nir library reads anything: every node has a known type (named with the
    node), and the arrays' declared sizes fit the byte cap (tsslc.validate)."""
    import h5py

    from tsslc import validate

    total = 0

    def visit(name, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            total += validate.shape_bytes(obj.shape or (), obj.dtype.itemsize)
            validate.check_bytes(total, f"{path}: reading dataset '{name}' of shape {obj.shape}")

    root.visititems(visit)

    def types(group, prefix=""):
        nodes = group.get("nodes")
        if not isinstance(nodes, h5py.Group):
            raise NIRError(f"{path}: graph '{prefix or 'node'}' has no 'nodes' group")
        for name, node in nodes.items():
            where = f"{prefix}{name}"
            t = node.get("type") if isinstance(node, h5py.Group) else None
            if not isinstance(t, h5py.Dataset) or t.shape != ():
                raise NIRError(f"{path}: node '{where}' has no type")
            t = t[()]
            t = t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t)
            if t not in NIR_TYPES:
                raise NIRError(f"{path}: node '{where}' has unknown NIR type {t!r:.40}{validate.suggest(t, NIR_TYPES)} "
                               f"(known: {', '.join(NIR_TYPES)})")
            params = {k: v for k, v in node.items() if isinstance(v, h5py.Dataset) and k != "type"}
            for k, v in params.items():
                if v.dtype.kind not in "biuf":
                    raise NIRError(f"{path}: node '{where}' ({t}): '{k}' is not numeric (dtype {v.dtype})")
            if t in _NEURON_TYPES and len({v.shape for v in params.values()}) > 1:
                raise NIRError(f"{path}: node '{where}' ({t}): parameters of different shapes "
                               f"({', '.join(f'{k} {v.shape}' for k, v in sorted(params.items()))})")
            if t == "NIRGraph":
                types(node, where + ".")

    types(root)


def read(path, dt: float | None = None, convention: str | None = None, encoding: str | None = None,
         n_steps: int | None = None) -> Graph:
    """Import a NIR file; any problem is one :class:`TsslcError` naming the file."""
    nir = _nir()
    path = Path(path)
    if not path.is_file():
        raise NIRError(f"NIR file {path} {'is not a regular file' if path.exists() else 'does not exist'}")
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
            _check_file(f["node"], path)
        ng = nir.read(path, type_check=False)  # shapes are checked by Graph.validate() below
    except TsslcError:
        raise
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise NIRError(f"{path}: cannot read the NIR graph ({msg})") from None
    try:
        return from_nir(ng, dt=dt, convention=convention, encoding=encoding, n_steps=n_steps)
    except NIRError as e:
        raise NIRError(f"{path}: {e}") from None
    except (ValueError, TypeError, ArithmeticError) as e:  # a value no check above foresaw: still one line
        raise NIRError(f"{path}: cannot convert the NIR graph ({type(e).__name__}: {str(e).splitlines()[0][:150]})") from None
