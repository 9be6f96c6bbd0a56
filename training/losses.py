"""Trick 1: the hybrid loss ``L = λ1·CE + λ2·SSIM + λ3·IoU`` (paper eq. 1, following BASNet).

Shapes: ``prob`` is B x K x H x W per-object foreground probabilities (sigmoid of the decoder's
logits); ``target`` is B x H x W int64 labels in 0..K (0 = background); ``valid`` is B x K bool
(object slots that exist in each sample; missing objects are zeroed before the aggregation, as
STCN's selector). CE runs over the K+1 soft-aggregated classes; SSIM and IoU run on each valid
object's aggregated probability map against its binary ground truth.
"""

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from vosx.model.memory import soft_aggregate

SSIM_WINDOW = 11  # BASNet: 11 x 11 Gaussian window, sigma 1.5
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
IOU_EPS = 1.0  # pixels; keeps the soft IoU finite (and zero) when both maps are empty


@dataclass(frozen=True)
class LossWeights:
    """λ1..λ3 of eq. 1; a weight of 0 switches its term off (the paper's ablation).

    Attributes:
        ce: Weight of the K+1-class cross-entropy.
        ssim: Weight of 1 - SSIM per object map.
        iou: Weight of the soft IoU loss per object map.
    """

    ce: float = 1.0
    ssim: float = 1.0
    iou: float = 1.0

    def __post_init__(self) -> None:
        for name in ("ce", "ssim", "iou"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss weight {name} must be >= 0, got {getattr(self, name)}")
        if self.ce == 0 and self.ssim == 0 and self.iou == 0:
            raise ValueError("all loss weights are 0: switch on at least one of ce, ssim, iou")


class LossTerms(NamedTuple):
    """The weighted total and the unweighted terms (0-d tensors)."""

    total: torch.Tensor
    ce: torch.Tensor
    ssim: torch.Tensor
    iou: torch.Tensor


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 2-D Gaussian window, size x size float32 summing to 1."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g).float()


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: int = SSIM_WINDOW) -> torch.Tensor:
    """Local SSIM of two maps (BASNet / pytorch_ssim: zero padding, C1 = 0.01², C2 = 0.03²).

    Args:
        x: N x C x H x W, values in [0, 1].
        y: N x C x H x W, values in [0, 1].
        window: Side of the Gaussian window (sigma 1.5).

    Returns:
        N x C x H x W SSIM values (1 where the maps are identical).
    """
    c = x.shape[1]
    w = gaussian_window(window).to(x)[None, None].expand(c, 1, window, window)  # C x 1 x k x k
    pad = window // 2
    mu_x = F.conv2d(x, w, padding=pad, groups=c)
    mu_y = F.conv2d(y, w, padding=pad, groups=c)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = F.conv2d(x * x, w, padding=pad, groups=c) - mu_xx
    var_y = F.conv2d(y * y, w, padding=pad, groups=c) - mu_yy
    cov = F.conv2d(x * y, w, padding=pad, groups=c) - mu_xy
    num = (2 * mu_xy + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mu_xx + mu_yy + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return num / den


def ssim_loss(prob: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - SSIM over valid object maps.

    Args:
        prob: B x K x H x W object probabilities.
        gt: B x K x H x W binary (float) ground truth.
        valid: B x K bool.

    Returns:
        0-d tensor.
    """
    per_map = 1 - ssim_map(prob, gt).mean(dim=(2, 3))  # B x K
    return _masked_mean(per_map, valid)


def iou_loss(prob: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Soft IoU loss ``1 - (Σpg + ε) / (Σ(p + g - pg) + ε)`` per valid object map, averaged.

    Args:
        prob: B x K x H x W object probabilities.
        gt: B x K x H x W binary (float) ground truth.
        valid: B x K bool.

    Returns:
        0-d tensor.
    """
    inter = (prob * gt).sum(dim=(2, 3))  # B x K
    union = (prob + gt - prob * gt).sum(dim=(2, 3))  # B x K
    per_map = 1 - (inter + IOU_EPS) / (union + IOU_EPS)
    return _masked_mean(per_map, valid)


def ce_loss(agg: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy over the K+1 aggregated classes.

    Args:
        agg: B x (K+1) x H x W class probabilities (soft aggregation, index 0 = background).
        target: B x H x W int64 labels in 0..K.

    Returns:
        0-d tensor (mean over pixels).
    """
    return F.nll_loss(torch.log(agg.clamp_min(1e-12)), target)


def hybrid_loss(
    prob: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, weights: LossWeights
) -> LossTerms:
    """Trick 1 on one frame's per-object predictions.

    Args:
        prob: B x K x H x W per-object foreground probabilities (sigmoid outputs).
        target: B x H x W int64 labels in 0..K.
        valid: B x K bool, the object slots that exist.
        weights: λ of each term; terms with weight 0 are not computed (reported as 0).

    Returns:
        ``LossTerms`` (total, ce, ssim, iou).
    """
    k = prob.shape[1]
    prob = prob * valid[:, :, None, None].to(prob.dtype)  # missing objects never win a pixel
    agg = soft_aggregate(prob, dim=1)  # B x (K+1) x H x W
    obj = agg[:, 1:]  # B x K x H x W, aggregated object maps
    labels = torch.arange(1, k + 1, device=target.device)[None, :, None, None]
    gt = (target[:, None] == labels).to(prob.dtype)  # B x K x H x W
    zero = prob.new_zeros(())
    ce = ce_loss(agg, target) if weights.ce else zero
    ss = ssim_loss(obj, gt, valid) if weights.ssim else zero
    io = iou_loss(obj, gt, valid) if weights.iou else zero
    total = weights.ce * ce + weights.ssim * ss + weights.iou * io
    return LossTerms(total, ce.detach(), ss.detach(), io.detach())


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (B x K) over ``valid`` (B x K bool); 0 when nothing is valid."""
    v = valid.to(values.dtype)
    return (values * v).sum() / v.sum().clamp_min(1.0)
