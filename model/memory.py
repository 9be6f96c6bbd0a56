"""Two-frame memory read-out and soft aggregation as pure functions (STCN, no top-k).

Shapes: memory and query tensors are rank 4, batch first, ``B x 1 x N x C`` (N = h*w positions at
stride 16; M = memory positions, 2N for the two-frame memory). Rank-3 attention has been seen
silently wrong on the Android GPU delegate, so nothing here drops to rank 3.
"""

import math

import torch


def affinity(mk: torch.Tensor, qk: torch.Tensor) -> torch.Tensor:
    """L2 affinity ``(2 mk.qk - |mk|^2) / sqrt(CK)``, softmax over the memory axis.

    The ``|qk|^2`` term is constant along the memory axis and cancels in the softmax. The result
    is laid out query-major so that the softmax runs on the last axis (what the converters keep).

    Args:
        mk: Memory keys, B x 1 x M x CK.
        qk: Query keys, B x 1 x N x CK.

    Returns:
        Affinity weights, B x 1 x N x M; each row sums to 1 over M.
    """
    scale = 1.0 / math.sqrt(qk.shape[-1])
    ab = torch.matmul(qk, mk.transpose(2, 3)) * (2.0 * scale)  # B x 1 x N x M
    b_sq = (mk * mk).sum(dim=3).unsqueeze(2) * scale  # B x 1 x 1 x M
    return torch.softmax(ab - b_sq, dim=3)


def readout(aff: torch.Tensor, mv: torch.Tensor) -> torch.Tensor:
    """Memory read-out ``mv . affinity``.

    Args:
        aff: Affinity, B x 1 x N x M (from ``affinity``).
        mv: Memory values, B x 1 x M x CV.

    Returns:
        Read-out, B x 1 x N x CV.
    """
    return torch.matmul(aff, mv)


def soft_aggregate(prob: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """STCN soft aggregation of K per-object probabilities into K+1 class probabilities.

    Args:
        prob: Per-object foreground probabilities with the K objects along ``dim``.
        dim: The object axis.

    Returns:
        K+1 probabilities along ``dim`` (index 0 = background) that sum to 1.
    """
    bg = torch.prod(1 - prob, dim=dim, keepdim=True)
    p = torch.cat([bg, prob], dim).clamp(1e-7, 1 - 1e-7)
    logits = torch.log(p / (1 - p))
    return torch.softmax(logits, dim=dim)


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """B x C x h x w feature map -> B x 1 x (h*w) x C memory layout (row-major positions)."""
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, 1, h * w, c)


def from_tokens(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """B x 1 x (h*w) x C memory layout -> B x C x h x w feature map (inverse of ``to_tokens``)."""
    b, _, _, c = x.shape
    return x.reshape(b, h, w, c).permute(0, 3, 1, 2)
