"""MobileNetV2 trunk cut at stride 16, written here (torchvision does not import beside torch 2.13).

Shapes: B x C x H x W; features are named by stride: f4 (H/4), f8 (H/8), f16 (H/16).
"""

import torch
from torch import nn

# (expand ratio t, output channels c, repeats n, first stride s) up to stride 16 (Sandler et al.).
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
_STEM_CHANNELS = 32


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round a channel count as MobileNetV2 does: to a multiple of divisor, never below 90%."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def conv_bn_relu6(
    in_ch: int, out_ch: int, kernel: int, stride: int, groups: int = 1
) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU6."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand 1x1 -> depthwise 3x3 -> linear 1x1, with a residual when shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = in_ch * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_relu6(in_ch, hidden, 1, 1))
        layers += [
            conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_residual else y


class MobileNetV2Trunk(nn.Module):
    """MobileNetV2 (BN + ReLU6) to stride 16, exposing f4, f8 and f16.

    Args:
        in_channels: Channels of the input image-like tensor (3 for RGB, 1 for a mask).
        width_mult: Width multiplier applied to every stage.
    """

    def __init__(self, in_channels: int, width_mult: float):
        super().__init__()
        ch = make_divisible(_STEM_CHANNELS * width_mult)
        self.stem = conv_bn_relu6(in_channels, ch, 3, 2)
        stages: list[nn.Sequential] = []
        for t, c, n, s in _SETTINGS:
            out = make_divisible(c * width_mult)
            blocks = [
                InvertedResidual(ch if i == 0 else out, out, s if i == 0 else 1, t)
                for i in range(n)
            ]
            stages.append(nn.Sequential(*blocks))
            ch = out
        self.stages = nn.ModuleList(stages)
        self.f4_channels = make_divisible(24 * width_mult)
        self.f8_channels = make_divisible(32 * width_mult)
        self.f16_channels = make_divisible(96 * width_mult)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # x: B x Cin x H x W
        x = self.stem(x)  # B x 32 x H/2 x W/2
        x = self.stages[0](x)  # B x 16 x H/2
        f4 = self.stages[1](x)  # B x 24 x H/4
        f8 = self.stages[2](f4)  # B x 32 x H/8
        f16 = self.stages[4](self.stages[3](f8))  # B x 96 x H/16
        return f4, f8, f16
