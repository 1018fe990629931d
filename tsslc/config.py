"""Network configs in the TSSL-BP authors' YAML schema, validated into plain dataclasses.

Schema::

    Network:            # n_steps, tau_m, tau_s, loss, n_class are required
      n_steps: 5
      tau_m: 5
      tau_s: 3
      loss: kernel      # kernel | count | spike_softmax
      desired_count: 4  # count losses
      undesired_count: 1
      lr: 0.0005
      batch_size: 50
      epochs: 100
      n_class: 10
      dataset: MNIST    # digits | MNIST | FashionMNIST | NMNIST | CIFAR10 (sets input_shape)
      input_shape: [1, 28, 28]   # optional, overrides the data set's
      rule: tsslbp      # tsslbp | bptt
      recipe: paper     # paper | authors (TSSLBP_SPEC.md §4.1; see RECIPES below)
      prediction: spike_count   # optional: spike_count | psc (default: the recipe's)
      nmnist_window_ms: 300     # N-MNIST only: the window binned into n_steps frames
      nmnist_stabilize: false   # N-MNIST only: undo the sensor's saccade motion (Orchard 2015)
    Layers:             # an ordered map, executed in order
      conv_1: {type: conv, in_channels: 1, out_channels: 15, kernel_size: 5, padding: 0,
               stride: 1, weight_scale: 1, threshold: 1}
      pooling_1: {type: pooling, kernel_size: 2, theta: 1.1}
      dropout_1: {type: dropout, p: 0.2}
      fc_1: {type: linear, n_inputs: 640, n_outputs: 300, weight_scale: 1, threshold: 1}
      # optional on linear layers: fan_in: 128  (block-sparse mask so each output sees <= 128 inputs)

Every problem is a :class:`~tsslc.errors.TsslcError` naming the file, section, layer and key.

Recipes (``Network.recipe``), TSSLBP_SPEC.md §4 and its §4.1 erratum:

==============================  ===============================  ===============================
                                ``paper`` (default)              ``authors``
==============================  ===============================  ===============================
kernel-loss target              ā = psc(d), eq. 7 read           ā = psc(psc(d)), as their code
                                literally: [0,.333,.556,.704,    filters twice: [0,.111,.259,
                                .802] at T=5                     .407,.539] at T=5
count-loss count n_i            Σ_t s_i[t] (spikes)              Σ_t a_i[t] (output PSC)
prediction                      argmax Σ_t s_i[t] (spike count,  argmax Σ_t a_i[t] (summed
                                what every back end does)        output PSC)
Fashion-MNIST normalisation     its own mean/std (.2860/.3530)   MNIST's (.1307/.3081)
CIFAR-10 normalisation          std (.2470, .2435, .2616)        std (.2023, .1994, .2010)
==============================  ===============================  ===============================

``paper`` is the default because its prediction is the one the compiled model makes on
hardware (spike count), so a float model's test accuracy is the figure the chip can reach;
the paper configs in ``examples/`` set ``recipe: authors`` to reproduce the published runs.
``prediction`` overrides the recipe's rule for the float model's evaluation only.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tsslc import validate
from tsslc.errors import TsslcError

#: Input shapes (C, H, W) of the data sets tsslc loads.
DATASET_SHAPES = {
    "digits": (1, 8, 8),
    "mnist": (1, 28, 28),
    "fashionmnist": (1, 28, 28),
    "nmnist": (2, 34, 34),
    "cifar10": (3, 32, 32),
}

LOSSES = ("kernel", "count", "spike_softmax")
RULES = ("tsslbp", "bptt")
RECIPES = ("paper", "authors")
PREDICTIONS = ("spike_count", "psc")
#: the recipe's prediction rule when the config names none
RECIPE_PREDICTION = {"paper": "spike_count", "authors": "psc"}

#: every key of the Network section (others are an error, with a did-you-mean)
NETWORK_KEYS = ("n_steps", "tau_m", "tau_s", "loss", "n_class", "desired_count", "undesired_count", "lr",
                "batch_size", "epochs", "dataset", "input_shape", "rule", "recipe", "prediction",
                "nmnist_window_ms", "nmnist_stabilize")

# type -> (required keys, optional keys with defaults)
LAYER_SCHEMA: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "conv": (
        ("in_channels", "out_channels", "kernel_size"),
        {"padding": 0, "stride": 1, "weight_scale": 1.0, "threshold": 1.0, "groups": 1},
    ),
    "linear": (("n_inputs", "n_outputs"), {"weight_scale": 1.0, "threshold": 1.0, "fan_in": None}),
    "pooling": (("kernel_size",), {"theta": 1.1, "threshold": None, "stride": None, "padding": 0}),
    "dropout": (("p",), {}),
}


def canonical_dataset(name: str | None) -> str | None:
    if name is None:
        return None
    return str(name).lower().replace("-", "").replace("_", "")


@dataclass
class LayerConfig:
    name: str
    type: str
    params: dict[str, Any]

    def __getitem__(self, key):
        return self.params[key]


@dataclass
class NetworkConfig:
    n_steps: int
    tau_m: float
    tau_s: float
    loss: str
    n_class: int
    layers: list[LayerConfig]
    desired_count: int = 4
    undesired_count: int = 1
    lr: float = 5e-4
    batch_size: int = 50
    epochs: int = 100
    dataset: str | None = None
    input_shape: tuple[int, ...] | None = None
    rule: str = "tsslbp"
    recipe: str = "paper"
    prediction: str | None = None  # None: the recipe's (RECIPE_PREDICTION)
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = "<config>"

    @property
    def prediction_rule(self) -> str:
        """``spike_count`` or ``psc``: how the float model's evaluation picks a class."""
        return self.prediction or RECIPE_PREDICTION[self.recipe]

    def to_dict(self) -> dict:
        """The authors' schema again (round-trips through :func:`parse_config`)."""
        net = {
            "n_steps": self.n_steps, "tau_m": self.tau_m, "tau_s": self.tau_s, "loss": self.loss,
            "n_class": self.n_class, "desired_count": self.desired_count,
            "undesired_count": self.undesired_count, "lr": self.lr, "batch_size": self.batch_size,
            "epochs": self.epochs, "rule": self.rule, "recipe": self.recipe,
        }
        if self.prediction is not None:
            net["prediction"] = self.prediction
        if self.dataset is not None:
            net["dataset"] = self.dataset
        if self.input_shape is not None:
            net["input_shape"] = list(self.input_shape)
        net.update(copy.deepcopy(self.extra))
        layers = {l.name: {"type": l.type, **copy.deepcopy(l.params)} for l in self.layers}
        return {"Network": net, "Layers": layers}


def _num(where: str, key: str, value, kind=float, positive=False, nonneg=False, **limits):
    if kind is int:  # sizes and counts: torch takes int64, a layer past 2^31 is no config of ours
        limits.setdefault("hi", validate.MAX_DIM)
    return validate.number(where, key, value, kind, positive=positive, nonneg=nonneg, **limits)


def _pair(where: str, key: str, value, positive=True):
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise TsslcError(f"{where}: '{key}' must be an int or a pair, got {value!r}")
        a, b = (_num(where, key, v, int, positive=positive, nonneg=True) for v in value)
        if a != b:
            raise TsslcError(f"{where}: '{key}' must be square, got {value!r}")
        return a
    return _num(where, key, value, int, positive=positive, nonneg=True)


def parse_config(raw: Any, source: str = "<config>") -> NetworkConfig:
    """Validate a config given as the parsed YAML mapping."""
    if not isinstance(raw, dict):
        raise TsslcError(f"{source}: a config must be a mapping with 'Network' and 'Layers' sections")
    for section in ("Network", "Layers"):
        if section not in raw:
            raise TsslcError(f"{source}: missing section '{section}'")
        if not isinstance(raw[section], dict) or not raw[section]:
            raise TsslcError(f"{source}: section '{section}' must be a non-empty mapping")
    net = dict(raw["Network"])
    where = f"{source}: Network"
    validate.check_keys(where, net, NETWORK_KEYS)
    validate.check_keys(source, raw, ("Network", "Layers"), what="section")
    for key in ("n_steps", "tau_m", "tau_s", "loss", "n_class"):
        if key not in net:
            raise TsslcError(f"{where}: missing key '{key}'")
    n_steps = validate.steps(where, "n_steps", net.pop("n_steps"))
    # θ = 1/τ is a decay per step: τ < 1 would more than empty the potential every step
    tau_m = _num(where, "tau_m", net.pop("tau_m"), lo=1)
    tau_s = _num(where, "tau_s", net.pop("tau_s"), lo=1)
    loss = str(net.pop("loss")).lower()
    if loss not in LOSSES:
        raise TsslcError(f"{where}: unknown loss {loss!r} (expected one of {', '.join(LOSSES)})")
    n_class = _num(where, "n_class", net.pop("n_class"), int, positive=True)
    kw: dict[str, Any] = {}
    for key, kind in (("desired_count", int), ("undesired_count", int), ("epochs", int)):
        if key in net:
            kw[key] = _num(where, key, net.pop(key), kind, nonneg=True)
    for key in ("desired_count", "undesired_count"):
        if kw.get(key, 0) > n_steps:
            raise TsslcError(f"{where}: '{key}' {kw[key]} exceeds n_steps {n_steps} (a neuron spikes at most once a step)")
    if kw.get("undesired_count", 1) > kw.get("desired_count", 4):
        raise TsslcError(f"{where}: 'undesired_count' {kw['undesired_count']} exceeds 'desired_count' "
                         f"{kw.get('desired_count', 4)}")
    if "batch_size" in net:
        kw["batch_size"] = _num(where, "batch_size", net.pop("batch_size"), int, positive=True)
    if "lr" in net:
        kw["lr"] = _num(where, "lr", net.pop("lr"), positive=True)
    rule = str(net.pop("rule", "tsslbp")).lower().replace("-", "")
    if rule not in RULES:
        raise TsslcError(f"{where}: unknown rule {rule!r} (expected one of {', '.join(RULES)})")
    recipe = str(net.pop("recipe", "paper")).lower()
    if recipe not in RECIPES:
        raise TsslcError(f"{where}: unknown recipe {recipe!r} (expected one of {', '.join(RECIPES)})")
    prediction = net.pop("prediction", None)
    if prediction is not None:
        prediction = str(prediction).lower().replace("-", "_")
        if prediction not in PREDICTIONS:
            raise TsslcError(f"{where}: unknown prediction {prediction!r} (expected one of {', '.join(PREDICTIONS)})")
    if "nmnist_window_ms" in net:
        _num(where, "nmnist_window_ms", net["nmnist_window_ms"], positive=True)
    if "nmnist_stabilize" in net and not isinstance(net["nmnist_stabilize"], bool):
        raise TsslcError(f"{where}: 'nmnist_stabilize' must be true or false, got {net['nmnist_stabilize']!r}")
    dataset = net.pop("dataset", None)
    if dataset is not None and canonical_dataset(dataset) not in DATASET_SHAPES:
        raise TsslcError(
            f"{where}: unknown dataset {dataset!r} (expected one of digits, MNIST, FashionMNIST, NMNIST, CIFAR10)"
        )
    input_shape = net.pop("input_shape", None)
    if input_shape is not None:
        if not isinstance(input_shape, (list, tuple)) or not input_shape:
            raise TsslcError(f"{where}: 'input_shape' must be a list such as [1, 28, 28]")
        input_shape = tuple(_num(where, "input_shape", v, int, positive=True) for v in input_shape)
    elif dataset is not None:
        input_shape = DATASET_SHAPES[canonical_dataset(dataset)]
    layers = []
    for name, spec in raw["Layers"].items():
        lw = f"{source}: layer '{name}'"
        if not isinstance(spec, dict):
            raise TsslcError(f"{lw}: must be a mapping with a 'type'")
        spec = dict(spec)
        if "type" not in spec:
            raise TsslcError(f"{lw}: missing key 'type'")
        ltype = validate.choice(lw, "layer type", str(spec.pop("type")).lower(), LAYER_SCHEMA)
        required, optional = LAYER_SCHEMA[ltype]
        params: dict[str, Any] = {}
        for key in required:
            if key not in spec:
                raise TsslcError(f"{lw} ({ltype}): missing key '{key}'")
            params[key] = spec.pop(key)
        for key, default in optional.items():
            params[key] = spec.pop(key, default)
        validate.check_keys(f"{lw} ({ltype})", spec, (*required, *optional, "type"))
        if ltype == "conv":
            for key in ("in_channels", "out_channels"):
                params[key] = _num(lw, key, params[key], int, positive=True)
            params["kernel_size"] = _pair(lw, "kernel_size", params["kernel_size"])
            params["stride"] = _pair(lw, "stride", params["stride"])
            params["padding"] = _pair(lw, "padding", params["padding"], positive=False)
            params["groups"] = _num(lw, "groups", params["groups"], int, positive=True)
            for key in ("in_channels", "out_channels"):
                if params[key] % params["groups"]:
                    raise TsslcError(f"{lw} (conv): {key} {params[key]} is not divisible by groups {params['groups']}")
            params["weight_scale"] = _num(lw, "weight_scale", params["weight_scale"], positive=True)
            params["threshold"] = _num(lw, "threshold", params["threshold"], positive=True)
        elif ltype == "linear":
            for key in ("n_inputs", "n_outputs"):
                params[key] = _num(lw, key, params[key], int, positive=True)
            params["weight_scale"] = _num(lw, "weight_scale", params["weight_scale"], positive=True)
            params["threshold"] = _num(lw, "threshold", params["threshold"], positive=True)
            if params["fan_in"] is not None:  # block-sparse dense: each output sees <= fan_in inputs
                params["fan_in"] = _num(lw, "fan_in", params["fan_in"], int, positive=True)
                if params["fan_in"] > params["n_inputs"]:
                    raise TsslcError(f"{lw} (linear): fan_in {params['fan_in']} exceeds n_inputs {params['n_inputs']}")
        elif ltype == "pooling":
            params["kernel_size"] = _pair(lw, "kernel_size", params["kernel_size"])
            params["theta"] = _num(lw, "theta", params["theta"], positive=True)
            if params["threshold"] is not None:
                params["threshold"] = _num(lw, "threshold", params["threshold"], positive=True)
            if params["stride"] is not None and _pair(lw, "stride", params["stride"]) != params["kernel_size"]:
                raise TsslcError(f"{lw} (pooling): stride must equal kernel_size (non-overlapping sum pooling)")
            if _pair(lw, "padding", params["padding"], positive=False) != 0:
                raise TsslcError(f"{lw} (pooling): padding is not supported")
            params.pop("stride")
            params.pop("padding")
        elif ltype == "dropout":
            params["p"] = _num(lw, "p", params["p"], nonneg=True)
            if not params["p"] < 1:
                raise TsslcError(f"{lw} (dropout): 'p' must be in [0, 1), got {params['p']}")
        layers.append(LayerConfig(str(name), ltype, params))
    if not any(l.type in ("conv", "linear") for l in layers):
        raise TsslcError(f"{source}: Layers has no conv or linear layer")
    return NetworkConfig(
        n_steps=n_steps, tau_m=tau_m, tau_s=tau_s, loss=loss, n_class=n_class, layers=layers,
        dataset=dataset, input_shape=input_shape, rule=rule, recipe=recipe,
        prediction=prediction, extra=net, source=source, **kw,
    )


def load_config(path: str | Path) -> NetworkConfig:
    """Read and validate a YAML config file, or a bundled example config by its name
    (``"digits"``, ``"mnist_cnn"``: :mod:`tsslc.examples`) when no such file exists."""
    p = Path(path)
    hint = ""
    if not p.exists() and len(p.parts) == 1:
        import difflib

        from tsslc import examples

        if p.stem in examples.names():
            p = examples.path(p.name)
        else:
            close = difflib.get_close_matches(p.stem, examples.names(), n=1)
            hint = f" (nor a bundled example config{f': did you mean {close[0]!r}?' if close else ''})"
    if not p.is_file():
        raise TsslcError(f"config file not found: {p}{hint}")
    try:
        raw = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise TsslcError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    return parse_config(raw, str(p))
