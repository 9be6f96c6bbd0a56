"""The one frozen configuration of the TrickVOS network; checkpoints carry it as a dict.

Rebuild with ``ModelConfig.from_dict(ckpt["config"])``. Only ``build_model`` reads it; submodules
take explicit arguments. Every value is checked on construction (type and range, see
``WIDTH_MULT_RANGE`` and ``CHANNELS_RANGE``) so that a hostile or corrupt checkpoint is refused
before any tensor is allocated.
"""

import math
from dataclasses import asdict, dataclass, fields

from vosx.errors import ConfigError

WIDTH_MULT_RANGE = (0.1, 4.0)
"""Inclusive bounds of ``width_mult`` (MobileNetV2 multipliers in use are 0.25 .. 1.4)."""
CHANNELS_RANGE = (1, 1024)
"""Inclusive bounds of every channel count (the paper's model uses at most 128)."""


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the network (defaults: the paper's ~1.9M-parameter baseline).

    Attributes:
        width_mult: MobileNetV2 width multiplier of both trunks (paper: 1.0).
        key_dim: Channels of memory/query keys (paper: 32).
        value_dim: Channels of memory values and of the read-out.
        f16_dim: Channels of the compressed stride-16 query feature given to the decoder.
        decoder_dims: Channels of the decoder at strides 16, 8 and 4.
        fusion_dim: Hidden channels of the value encoder's feature-fusion block.
    """

    width_mult: float = 1.0
    key_dim: int = 32
    value_dim: int = 64
    f16_dim: int = 96
    decoder_dims: tuple[int, int, int] = (128, 64, 32)
    fusion_dim: int = 64

    def __post_init__(self) -> None:
        """Check every value's type and range; lists become tuples (JSON/torch round trips).

        Raises:
            ConfigError: naming the key, the bad value and the allowed range.
        """
        w = self.width_mult
        lo, hi = WIDTH_MULT_RANGE
        number = isinstance(w, int | float) and not isinstance(w, bool)
        if not number or (isinstance(w, float) and not math.isfinite(w)):
            raise ConfigError(f"width_mult = {_short(w)}: must be a number in {lo}..{hi}")
        if not lo <= w <= hi:
            raise ConfigError(f"width_mult = {_short(w)}: out of range, must be in {lo}..{hi}")
        for name in ("key_dim", "value_dim", "f16_dim", "fusion_dim"):
            _check_channels(name, getattr(self, name))
        dims = self.decoder_dims
        if not isinstance(dims, list | tuple) or len(dims) != 3:
            raise ConfigError(
                f"decoder_dims = {_short(dims)}: must be a list of 3 channel counts, "
                f"each an integer in {CHANNELS_RANGE[0]}..{CHANNELS_RANGE[1]}"
            )
        for i, d in enumerate(dims):
            _check_channels(f"decoder_dims[{i}]", d)
        # JSON/torch round trips turn tuples into lists; keep the dataclass hashable and equal.
        object.__setattr__(self, "decoder_dims", tuple(int(d) for d in dims))

    def to_dict(self) -> dict:
        """Plain dict (lists for tuples) for checkpoints and manifests."""
        d = asdict(self)
        d["decoder_dims"] = list(self.decoder_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Inverse of ``to_dict``; missing keys take their defaults.

        Raises:
            ConfigError: ``d`` is not a dict, has unknown keys, or a value of the wrong type or
                out of range (the message names the key, the value and the allowed range).
        """
        if not isinstance(d, dict):
            raise ConfigError(
                f"the config is a {type(d).__name__} ({_short(d)}), not a dict of "
                f"{', '.join(f.name for f in fields(cls))}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in set(d) - known)
        if unknown:
            shown = ", ".join(_short(k, 40) for k in unknown[:5])
            more = f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else ""
            raise ConfigError(
                f"unknown config keys: {shown}{more}; known keys: {', '.join(sorted(known))}"
            )
        return cls(**d)


def _short(value: object, limit: int = 60) -> str:
    """``repr`` of a value, cut to ``limit`` characters (messages stay one short line)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_channels(name: str, value: object) -> None:
    lo, hi = CHANNELS_RANGE
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} = {_short(value)}: must be an integer in {lo}..{hi}")
    if not lo <= value <= hi:
        raise ConfigError(
            f"{name} = {_short(value)}: out of range, must be an integer in {lo}..{hi}"
        )


TINY_CONFIG = ModelConfig(
    width_mult=0.25, key_dim=8, value_dim=16, f16_dim=16, decoder_dims=(16, 16, 16), fusion_dim=16
)
"""A few-channel config for tests and quick checks (64x64 inputs run in milliseconds)."""
