"""Integer neuron models of the compiled IR: one frozen dataclass per target's neuron, its
per-step equation in the docstring and its field ranges checked on construction.

An :class:`~tsslc.ir.nodes.IntLIF` population holds one of these as ``params``; its class
says which target's arithmetic runs it (``params.target``). The equations are stated in
full, with the order of operations, in ``targets/<target>.md``; the targets implement them
(``Target.neuron_step``) and the model file stores the fields by name (``tsslc.ir.io``).
Ranges are data about the neuron, so they live here, where the IR and the targets both
read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import ClassVar

# --- Loihi 2 (lava-nc 0.10.0 fixed-point LIF; targets/loihi2.md §1) -------------------------
LOIHI2_DU_MAX = LOIHI2_DV_MAX = 4095  # 12-bit unsigned decays
LOIHI2_VTH_MAX = (1 << 17) - 1  # 17-bit unsigned threshold mantissa
LOIHI2_BIAS_MANT_RANGE = (-(1 << 12), (1 << 12) - 1)  # 13-bit signed
LOIHI2_BIAS_EXP_RANGE = (-7, 7)

# --- TrueNorth-like (targets/truenorth.md §2) ------------------------------------------------
TRUENORTH_MAX_SHIFT = 15
TRUENORTH_SHIFT_OFF = -1
TRUENORTH_VTH_MAX = (1 << 17) - 1  # 18-bit unsigned field


def _int(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np

            if isinstance(value, np.integer):
                return int(value)
        except ImportError:  # pragma: no cover
            pass
        raise ValueError(f"{where}: {name} must be an integer, got {value!r:.40}")
    return value


@dataclass(frozen=True)
class IntNeuron:
    """Base of the integer neuron models. ``kind`` names the model in files, ``target`` the
    target whose arithmetic runs it."""

    kind: ClassVar[str] = ""
    target: ClassVar[str] = ""

    def __post_init__(self):
        where = f"{self.kind} parameters"
        for f in fields(self):
            object.__setattr__(self, f.name, _int(getattr(self, f.name), f.name, where))
        self.check(where)

    def check(self, where: str) -> None:  # pragma: no cover - overridden
        """Raise ValueError naming ``where`` and the field when a value is out of range."""

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Loihi2LIF(IntNeuron):
    """Loihi 2's fixed-point LIF as Lava's ``PyLifModelBitAcc`` computes it, per neuron and step
    (``targets/loihi2.md`` §1; rz12(p) = sign(p)·(|p| >> 12), wrap32 = int32 storage)::

        act = wrap32(a[t] << 6)
        u   = wrap24(wrap32(rz12(u · (4096 − (du + 1))) + act))
        v   = clip(wrap32(rz12(v · (4096 − dv)) + u + (bias_mant << bias_exp)), ±(2^23 − 1))
        s   = v > (vth << 6);   v = 0 where s

    du, dv ∈ [0, 4095] (12 bits), vth ∈ [0, 2^17 − 1], bias_mant 13-bit signed, bias_exp
    ∈ [−7, 7]."""

    kind: ClassVar[str] = "loihi2_lif"
    target: ClassVar[str] = "loihi2"
    du: int = 0
    dv: int = 0
    vth: int = 0
    bias_mant: int = 0
    bias_exp: int = 0

    def check(self, where: str) -> None:
        for key, lo, hi in (("du", 0, LOIHI2_DU_MAX), ("dv", 0, LOIHI2_DV_MAX), ("vth", 0, LOIHI2_VTH_MAX),
                            ("bias_mant", *LOIHI2_BIAS_MANT_RANGE), ("bias_exp", *LOIHI2_BIAS_EXP_RANGE)):
            if not lo <= getattr(self, key) <= hi:
                raise ValueError(f"{where}: loihi2 {key}={getattr(self, key)} outside [{lo}, {hi}]")

    @property
    def bias(self) -> int:
        """bias_mant << bias_exp (a negative exponent shifts right, flooring)."""
        return self.bias_mant << self.bias_exp if self.bias_exp >= 0 else self.bias_mant >> -self.bias_exp


@dataclass(frozen=True)
class TrueNorthLIF(IntNeuron):
    """The TrueNorth-like integer LIF (``targets/truenorth.md`` §2), per neuron and tick, with
    leak(x; a, b) = sgn(x)·((|x| >> a) + (|x| >> b)) (a shift of −1 contributes 0)::

        I = sat20(I − leak(I; i_shift_a, i_shift_b) + acc[t])
        V = sat20(V − leak(V; v_shift_a, v_shift_b) + I)
        s = V > vth;   V = 0 where s

    Shifts ∈ {0..15} ∪ {−1 = off} with 2^−a + 2^−b ≤ 1; vth ∈ [0, 2^17 − 1]."""

    kind: ClassVar[str] = "truenorth_lif"
    target: ClassVar[str] = "truenorth"
    i_shift_a: int = 0
    i_shift_b: int = TRUENORTH_SHIFT_OFF
    v_shift_a: int = 0
    v_shift_b: int = TRUENORTH_SHIFT_OFF
    vth: int = 0

    def check(self, where: str) -> None:
        for pair in (("i_shift_a", "i_shift_b"), ("v_shift_a", "v_shift_b")):
            a, b = (getattr(self, k) for k in pair)
            for key, k in zip(pair, (a, b)):
                if not (k == TRUENORTH_SHIFT_OFF or 0 <= k <= TRUENORTH_MAX_SHIFT):
                    raise ValueError(f"{where}: truenorth {key}={k} must be in 0..{TRUENORTH_MAX_SHIFT} or "
                                     f"{TRUENORTH_SHIFT_OFF} (off)")
            if decay_fraction(a, b) > 1.0:
                raise ValueError(f"{where}: truenorth decay shifts {pair} = ({a}, {b}) remove more than the whole "
                                 "state (2^-a + 2^-b > 1)")
        if not 0 <= self.vth <= TRUENORTH_VTH_MAX:
            raise ValueError(f"{where}: truenorth vth={self.vth} does not fit 17 bits (0..{TRUENORTH_VTH_MAX}); "
                             "lower the layer's scale")


def decay_fraction(a: int, b: int) -> float:
    """The decay fraction 2^-a + 2^-b of a TrueNorth shift pair (a shift of −1 contributes 0)."""
    return sum(2.0 ** -k for k in (a, b) if k != TRUENORTH_SHIFT_OFF)


#: kind -> class (files name the model by kind)
NEURON_TYPES: dict[str, type[IntNeuron]] = {cls.kind: cls for cls in (Loihi2LIF, TrueNorthLIF)}


def register_neuron(cls: type[IntNeuron]) -> type[IntNeuron]:
    """Make a new integer neuron model known to the IR and the model file (a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, IntNeuron)) or not cls.kind or not cls.target:
        raise TypeError("register_neuron takes an IntNeuron subclass with a kind and a target")
    NEURON_TYPES[cls.kind] = cls
    return cls


def neuron_from_dict(target: str, params: dict, where: str = "IntLIF") -> IntNeuron:
    """The typed parameters of a format-1 file (a target name and a {field: int} dict)."""
    matches = [cls for cls in NEURON_TYPES.values() if cls.target == target]
    if not matches:
        raise ValueError(f"{where}: no integer neuron model for target {target!r:.40}")
    cls = matches[0]
    names = {f.name for f in fields(cls)}
    if not isinstance(params, dict) or set(params) != names:
        got = sorted(params) if isinstance(params, dict) else params
        raise ValueError(f"{where}: {target} parameters {got!r:.80} instead of {sorted(names)}")
    return cls(**params)
