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
from pathlib import Path

import torch

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
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # a garbled file can fail anywhere inside the unpickler / zip reader
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TsslcError(f"{p}: not a readable tsslc checkpoint (corrupt or not a torch file: {first[:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise TsslcError(f"{p}: not a tsslc checkpoint (no format '{FORMAT}'); "
                         "train with 'tsslc train' to make one")
    if ckpt.get("version") != VERSION:
        raise TsslcError(f"{p}: checkpoint version {ckpt.get('version')!r} is not supported (expected {VERSION})")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise TsslcError(f"{p}: checkpoint lacks {', '.join(missing)} (corrupt)")
    return ckpt


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
