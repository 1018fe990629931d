"""Training checkpoints: one ``torch.save`` file loadable with ``weights_only=True``.

Keys: ``format`` ("tsslc-checkpoint"), ``version`` (1), ``config`` (the authors' schema as a
plain dict), ``model`` (Network state_dict), ``optimizer`` (AdamW state_dict), ``epoch``
(epochs completed), ``seed``, ``rng`` ({"torch": uint8 tensor, "cuda": [uint8 tensors]}),
``metrics`` (list of per-epoch dicts); under torchrun also ``rng_ranks`` (every rank's
``rng``, rank order: each rank draws its own dropout masks). Written atomically (temp file +
``os.replace``).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch

from tsslc import validate
from tsslc.config import NetworkConfig, parse_config
from tsslc.atomic import atomic_write_bytes
from tsslc.errors import TsslcError
from tsslc.network import Network

FORMAT = "tsslc-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "config", "model", "optimizer", "epoch", "rng", "metrics")


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(),
            "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, network: Network, optimizer, config: NetworkConfig, epoch: int, seed: int,
                    metrics: list[dict], rng_ranks: list[dict] | None = None) -> None:
    state = {
        "format": FORMAT, "version": VERSION, "config": config.to_dict(),
        "model": {k: v.detach().cpu() for k, v in network.state_dict().items()},
        "optimizer": optimizer.state_dict(), "epoch": int(epoch), "seed": int(seed),
        "rng": rng_state(), "metrics": [dict(m) for m in metrics],
    }
    if rng_ranks is not None:
        state["rng_ranks"] = rng_ranks
    buf = io.BytesIO()  # in memory first: torch reports a full disk as a RuntimeError of its own
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue(), what="checkpoint")


def read_checkpoint(path) -> dict:
    """The checkpoint dict, validated; TsslcError for missing, corrupt or foreign files."""
    p = Path(path)
    if not p.is_file():
        raise TsslcError(f"checkpoint not found: {p}")
    validate.check_bytes(p.stat().st_size, f"{p}: reading the checkpoint")
    try:
        with warnings.catch_warnings():  # torch's notes on foreign pickles: the error below says it all
            warnings.simplefilter("ignore")
            ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # a garbled file can fail anywhere inside the unpickler / zip reader
        text = str(e)
        if "weights_only" in text or "Unsupported global" in text or "Weights only load failed" in text:
            # torch's own advice (re-run with weights_only=False) would execute the file's code: never quote it
            raise TsslcError(f"{p}: refused: the file holds Python objects other than tensors and plain data "
                             "(a tsslc checkpoint holds none; tsslc never runs code from a file)") from None
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        raise TsslcError(f"{p}: not a readable tsslc checkpoint (corrupt or not a torch file: {first[:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise TsslcError(f"{p}: not a tsslc checkpoint (no format '{FORMAT}'); "
                         "train with 'tsslc train' to make one")
    version = ckpt.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version != VERSION:
        raise TsslcError(f"{p}: checkpoint version {version!r:.40} is not supported (expected {VERSION})")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise TsslcError(f"{p}: checkpoint lacks {', '.join(missing)} (corrupt)")
    check_checkpoint(ckpt, p)
    return ckpt


def _check_rng(state, where: str) -> None:
    if not isinstance(state, dict) or not validate.torch_rng_state_ok(state.get("torch")):
        raise TsslcError(f"{where}: not a torch RNG state (a dict whose 'torch' is the uint8 tensor of "
                         f"torch.get_rng_state())")
    cuda = state.get("cuda", [])
    if not isinstance(cuda, list) or not all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in cuda):
        raise TsslcError(f"{where}: 'cuda' must be a list of uint8 RNG state tensors")
    with torch.random.fork_rng(devices=[]):  # the generator itself refuses an impossible state
        try:
            torch.set_rng_state(state["torch"])
        except (RuntimeError, ValueError) as e:
            raise TsslcError(f"{where}: not a valid torch RNG state ({str(e).splitlines()[0]})") from None


def check_checkpoint(ckpt: dict, path) -> None:
    """Every value of a checkpoint read back (tsslc.validate): the config, epoch, seed,
    metrics, RNG states, weights (names, shapes, finite) and the optimizer state (its
    parameter groups and moments fit the weights); one TsslcError naming the file and key."""
    where = f"{path}"
    validate.number(where, "epoch", ckpt["epoch"], int, nonneg=True, hi=10**9)
    if "seed" in ckpt:
        validate.number(where, "seed", ckpt["seed"], int, nonneg=True, hi=2**64 - 1)
    if not isinstance(ckpt["metrics"], list) or not all(isinstance(m, dict) for m in ckpt["metrics"]):
        raise TsslcError(f"{where}: 'metrics' must be a list of per-epoch mappings")
    _check_rng(ckpt["rng"], f"{where}: 'rng'")
    ranks = ckpt.get("rng_ranks")
    if ranks is not None:
        if not isinstance(ranks, list) or not ranks:
            raise TsslcError(f"{where}: 'rng_ranks' must be a non-empty list of RNG states")
        for i, r in enumerate(ranks):
            _check_rng(r, f"{where}: 'rng_ranks'[{i}]")
    config = parse_config(ckpt["config"], f"{path}: config")
    model = ckpt["model"]
    if not isinstance(model, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()):
        raise TsslcError(f"{where}: 'model' must map parameter names to tensors")
    with torch.random.fork_rng(devices=[]), torch.device("meta"):  # shapes only: nothing allocated
        net = Network(config)
    want = net.state_dict()
    validate.check_keys(f"{where}: 'model'", model, want, what="weight")
    for key, ref in want.items():
        if key not in model:
            raise TsslcError(f"{where}: 'model' lacks weight '{key}' of its config's network")
        t = model[key]
        if tuple(t.shape) != tuple(ref.shape):
            raise TsslcError(f"{where}: 'model' weight '{key}' has shape {tuple(t.shape)}; its config's network "
                             f"needs {tuple(ref.shape)}")
        if t.is_floating_point() != ref.is_floating_point() or (not ref.is_floating_point() and t.dtype != ref.dtype):
            raise TsslcError(f"{where}: 'model' weight '{key}' has dtype {t.dtype}, the network {ref.dtype}")
        if t.is_floating_point():
            validate.finite_array(f"{where}: 'model' weight '{key}'", t.detach().numpy())
    _check_optimizer(ckpt["optimizer"], [tuple(p.shape) for p in net.parameters()], f"{where}: 'optimizer'")


def _check_optimizer(opt, shapes: list[tuple], where: str) -> None:
    """An AdamW state_dict for parameters of ``shapes`` (in the network's order)."""
    if not isinstance(opt, dict) or not isinstance(opt.get("state"), dict) or not isinstance(opt.get("param_groups"), list):
        raise TsslcError(f"{where}: must be an optimizer state (a mapping with 'state' and 'param_groups')")
    ids: list = []
    for i, g in enumerate(opt["param_groups"]):
        if not isinstance(g, dict) or not isinstance(g.get("params"), list):
            raise TsslcError(f"{where}: param_groups[{i}] must be a mapping with a 'params' list")
        ids += g["params"]
        for key in ("lr", "eps", "weight_decay"):
            if key in g:
                validate.number(f"{where}: param_groups[{i}]", key, g[key], nonneg=True)
        betas = g.get("betas", (0.9, 0.999))
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise TsslcError(f"{where}: param_groups[{i}]: 'betas' must be a pair, got {betas!r:.60}")
        for b in betas:
            validate.number(f"{where}: param_groups[{i}]", "betas", b, nonneg=True, hi=1)
    if len(ids) != len(shapes) or len(set(map(repr, ids))) != len(ids):
        raise TsslcError(f"{where}: names {len(ids)} parameters; the network has {len(shapes)}")
    shape_of = dict(zip(map(repr, ids), shapes))
    for pid, st in opt["state"].items():
        if repr(pid) not in shape_of:
            raise TsslcError(f"{where}: state for unknown parameter {pid!r:.40}")
        if not isinstance(st, dict):
            raise TsslcError(f"{where}: state of parameter {pid!r:.40} must be a mapping")
        for key, v in st.items():
            if key == "step":
                step = v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v
                validate.number(f"{where}: state of parameter {pid!r:.40}", "step", step, int, nonneg=True, hi=2**53)
            elif isinstance(v, torch.Tensor):
                if tuple(v.shape) != shape_of[repr(pid)]:
                    raise TsslcError(f"{where}: '{key}' of parameter {pid!r:.40} has shape {tuple(v.shape)}, "
                                     f"the parameter {shape_of[repr(pid)]}")
                if v.is_floating_point():
                    validate.finite_array(f"{where}: '{key}' of parameter {pid!r:.40}", v.detach().numpy())
            else:
                raise TsslcError(f"{where}: '{key}' of parameter {pid!r:.40} is not a tensor")


def build_network(ckpt: dict, path) -> tuple[Network, NetworkConfig]:
    config = parse_config(ckpt["config"], f"{path}: config")
    with torch.random.fork_rng(devices=[]):  # building a Network draws its init weights
        net = Network(config)
    try:
        net.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError) as e:
        raise TsslcError(f"{path}: weights do not fit the network of its config ({str(e).splitlines()[0]})") from None
    return net, config


def load_checkpoint(path) -> tuple[Network, NetworkConfig, dict]:
    """``(network in eval mode on CPU, its config, the checkpoint dict)``."""
    ckpt = read_checkpoint(path)
    net, config = build_network(ckpt, path)
    net.eval()
    return net, config, ckpt
