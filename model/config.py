"""The one frozen configuration of the TrickVOS network; checkpoints carry it as a dict.

Rebuild with ``ModelConfig(**ckpt["config"])``. Only ``build_model`` reads it; submodules
take explicit arguments.
"""

from dataclasses import asdict, dataclass, fields


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
        # JSON/torch round trips turn tuples into lists; keep the dataclass hashable and equal.
        object.__setattr__(self, "decoder_dims", tuple(int(d) for d in self.decoder_dims))

    def to_dict(self) -> dict:
        """Plain dict (lists for tuples) for checkpoints and manifests."""
        d = asdict(self)
        d["decoder_dims"] = list(self.decoder_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Inverse of ``to_dict``; unknown keys raise ``TypeError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TypeError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**d)


TINY_CONFIG = ModelConfig(
    width_mult=0.25, key_dim=8, value_dim=16, f16_dim=16, decoder_dims=(16, 16, 16), fusion_dim=16
)
"""A few-channel config for tests and quick checks (64x64 inputs run in milliseconds)."""
