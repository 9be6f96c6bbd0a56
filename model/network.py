"""TrickVOS network: STCN with MobileNetV2 encoders, 32-d keys, no ASPP, a mask-only value encoder.

Shapes: images B x 3 x H x W (normalised, padded to a multiple of 16); masks B x 1 x H x W;
feature maps named by stride f4 / f8 / f16 (B x C x H/s x W/s); memory and query keys/values
B x 1 x N x C with N = (H/16)*(W/16). The three public methods are the three exported graphs.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from vosx.model.memory import affinity, from_tokens, readout, to_tokens
from vosx.model.mobilenet import MobileNetV2Trunk
from vosx.model.modules import FeatureFusionBlock, ResBlock, UpsampleBlock


class KeyFeatures(NamedTuple):
    """Outputs of ``encode_key`` for one frame."""

    key: torch.Tensor  # B x 1 x N x CK   query key, and the memory key when the frame is memorised
    f16c: torch.Tensor  # B x CF x H/16 x W/16   compressed f16 for the decoder
    f16: torch.Tensor  # B x C16 x H/16 x W/16  raw f16 for the value encoder's fusion
    f8: torch.Tensor  # B x C8 x H/8 x W/8
    f4: torch.Tensor  # B x C4 x H/4 x W/4


class KeyEncoder(nn.Module):
    """MobileNetV2 on RGB, a 3x3 key projection and a 3x3 compression of f16."""

    def __init__(self, width_mult: float, key_dim: int, f16_dim: int):
        super().__init__()
        self.trunk = MobileNetV2Trunk(3, width_mult)
        self.key_proj = nn.Conv2d(self.trunk.f16_channels, key_dim, 3, padding=1)
        self.key_comp = nn.Conv2d(self.trunk.f16_channels, f16_dim, 3, padding=1)

    def forward(self, image: torch.Tensor) -> KeyFeatures:
        f4, f8, f16 = self.trunk(image)
        key = to_tokens(self.key_proj(f16))  # B x 1 x N x CK
        return KeyFeatures(key, self.key_comp(f16), f16, f8, f4)


class ValueEncoder(nn.Module):
    """MobileNetV2 on the object's mask alone, fused with the key encoder's f16 (STCN fusion)."""

    def __init__(self, width_mult: float, key_f16_channels: int, fusion_dim: int, value_dim: int):
        super().__init__()
        self.trunk = MobileNetV2Trunk(1, width_mult)
        in_ch = self.trunk.f16_channels + key_f16_channels
        self.fuser = FeatureFusionBlock(in_ch, fusion_dim, value_dim)

    def forward(self, mask: torch.Tensor, key_f16: torch.Tensor) -> torch.Tensor:
        _, _, v16 = self.trunk(mask)  # B x C16 x h x w
        return to_tokens(self.fuser(v16, key_f16))  # B x 1 x N x CV


class Decoder(nn.Module):
    """STCN decoder: compress [read-out, f16c], upsample with f8 and f4 skips, predict, x4
    bilinear.
    """

    def __init__(self, value_dim: int, f16_dim: int, f8_ch: int, f4_ch: int, dims: tuple[int, ...]):
        super().__init__()
        d16, d8, d4 = dims
        self.compress = ResBlock(value_dim + f16_dim, d16)
        self.up_16_8 = UpsampleBlock(f8_ch, d16, d8)
        self.up_8_4 = UpsampleBlock(f4_ch, d8, d4)
        self.pred = nn.Conv2d(d4, 1, 3, padding=1)

    def forward(
        self, mem_read: torch.Tensor, f16c: torch.Tensor, f8: torch.Tensor, f4: torch.Tensor
    ):
        x = self.compress(torch.cat([mem_read, f16c], 1))  # B x D16 x h x w
        x = self.up_16_8(f8, x)  # B x D8 x H/8 x W/8
        x = self.up_8_4(f4, x)  # B x D4 x H/4 x W/4
        x = self.pred(F.relu(x))  # B x 1 x H/4 x W/4
        return F.interpolate(x, scale_factor=4.0, mode="bilinear", align_corners=False)


class TrickVOS(nn.Module):
    """The TrickVOS baseline network. Use ``encode_key``, ``encode_value`` and ``segment``.

    Args:
        key_encoder: Query/memory key encoder.
        value_encoder: Mask-only value encoder.
        decoder: Read-out decoder.
    """

    def __init__(self, key_encoder: KeyEncoder, value_encoder: ValueEncoder, decoder: Decoder):
        super().__init__()
        self.key_encoder = key_encoder
        self.value_encoder = value_encoder
        self.decoder = decoder

    def forward(self, *args, **kwargs):
        raise RuntimeError(
            "TrickVOS has no forward(): call encode_key(image), encode_value(mask, f16) or "
            "segment(qk, mk, mv, f16c, f8, f4) — the three graphs that are exported"
        )

    def encode_key(self, image: torch.Tensor) -> KeyFeatures:
        """Encode a normalised, padded frame.

        Args:
            image: B x 3 x H x W, ImageNet-normalised RGB, H and W multiples of 16.

        Returns:
            ``KeyFeatures`` (key B x 1 x N x CK, f16c, f16, f8, f4).
        """
        return self.key_encoder(image)

    def encode_value(self, mask: torch.Tensor, f16: torch.Tensor) -> torch.Tensor:
        """Encode one object's mask of a frame into its memory value.

        Args:
            mask: B x 1 x H x W object probability in [0, 1].
            f16: B x C16 x H/16 x W/16, the same frame's ``KeyFeatures.f16``.

        Returns:
            Memory value, B x 1 x N x CV.
        """
        return self.value_encoder(mask, f16)

    def segment(
        self,
        qk: torch.Tensor,
        mk: torch.Tensor,
        mv: torch.Tensor,
        f16c: torch.Tensor,
        f8: torch.Tensor,
        f4: torch.Tensor,
    ) -> torch.Tensor:
        """Read one object's memory for the query frame and decode its logits.

        Args:
            qk: Query key, B x 1 x N x CK.
            mk: Memory keys, B x 1 x M x CK (M = 2N: first and last frame).
            mv: That object's memory values, B x 1 x M x CV.
            f16c: B x CF x h x w; f8: B x C8 x 2h x 2w; f4: B x C4 x 4h x 4w (query frame).

        Returns:
            Foreground logits, B x 1 x H x W.
        """
        h, w = f16c.shape[2], f16c.shape[3]
        mem = from_tokens(readout(affinity(mk, qk), mv), h, w)  # B x CV x h x w
        return self.decoder(mem, f16c, f8, f4)


def build_model(cfg=None) -> TrickVOS:
    """Build a randomly initialised TrickVOS from a ``ModelConfig`` (default config when None)."""
    from vosx.model.config import ModelConfig

    cfg = cfg or ModelConfig()
    key_encoder = KeyEncoder(cfg.width_mult, cfg.key_dim, cfg.f16_dim)
    trunk = key_encoder.trunk
    value_encoder = ValueEncoder(cfg.width_mult, trunk.f16_channels, cfg.fusion_dim, cfg.value_dim)
    decoder = Decoder(
        cfg.value_dim, cfg.f16_dim, trunk.f8_channels, trunk.f4_channels, cfg.decoder_dims
    )
    model = TrickVOS(key_encoder, value_encoder, decoder)
    model.config = cfg
    return model
