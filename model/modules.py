"""STCN building blocks: ResBlock, CBAM, FeatureFusionBlock and UpsampleBlock.

Shapes: B x C x H x W. Every block takes its channel counts explicitly.
"""

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """relu -> conv3x3 -> relu -> conv3x3, plus the input (1x1-projected when channels change)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.downsample = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.conv2(F.relu(self.conv1(F.relu(x))))
        if self.downsample is not None:
            x = self.downsample(x)
        return x + r


class ChannelGate(nn.Module):
    """CBAM channel attention: a shared MLP on average- and max-pooled channels."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3), keepdim=True)  # B x C x 1 x 1
        mx = x.amax(dim=(2, 3), keepdim=True)  # B x C x 1 x 1
        att = self.fc2(F.relu(self.fc1(avg))) + self.fc2(F.relu(self.fc1(mx)))
        return x * torch.sigmoid(att)


class SpatialGate(nn.Module):
    """CBAM spatial attention: a 7x7 conv over the channel-max and channel-mean maps."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], 1)
        return x * torch.sigmoid(self.bn(self.conv(pooled)))  # pooled: B x 2 x H x W


class CBAM(nn.Module):
    """Convolutional block attention (Woo et al.): channel gate then spatial gate."""

    def __init__(self, channels: int):
        super().__init__()
        self.channel = ChannelGate(channels)
        self.spatial = SpatialGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class FeatureFusionBlock(nn.Module):
    """STCN's fusion of value features with the key encoder's f16: concat -> ResBlock -> CBAM ->
    ResBlock.
    """

    def __init__(self, in_ch: int, hidden_ch: int, out_ch: int):
        super().__init__()
        self.block1 = ResBlock(in_ch, hidden_ch)
        self.attention = CBAM(hidden_ch)
        self.block2 = ResBlock(hidden_ch, out_ch)

    def forward(self, value_f16: torch.Tensor, key_f16: torch.Tensor) -> torch.Tensor:
        x = self.block1(torch.cat([value_f16, key_f16], 1))
        return self.block2(x + self.attention(x))


class UpsampleBlock(nn.Module):
    """conv3x3(skip) + bilinear x2 of the coarser map, then a ResBlock."""

    def __init__(self, skip_ch: int, up_ch: int, out_ch: int):
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_ch, up_ch, 3, padding=1)
        self.out_conv = ResBlock(up_ch, out_ch)

    def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(up, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.out_conv(self.skip_conv(skip) + up)
