"""Frame normalisation and STCN symmetric padding in NumPy (the rule the manifest records).

Shapes: frames H x W x 3 uint8 RGB; normalised images 1 x H x W x 3 float32 (NHWC, as the TFLite
key encoder takes them); masks H x W. Padding is zero (after normalisation) to a multiple of
16 (``vosx.sizes.STRIDE``), split as evenly as possible with the extra pixel on the bottom/right,
as STCN's pad_divide_by.
"""

import numpy as np

from vosx.sizes import STRIDE

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PAD_MULTIPLE = STRIDE  # padded input sides are multiples of the network's stride
_SCALE = (1.0 / (255.0 * np.asarray(STD))).astype(
    np.float32
)  # (x/255 - mean)/std = x*scale - shift
_SHIFT = (np.asarray(MEAN) / np.asarray(STD)).astype(np.float32)


def placement(h: int, w: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) padding that centres an H x W frame in ``size``."""
    th, tw = size
    if th < h or tw < w:
        raise ValueError(f"frame {h}x{w} is larger than the network input {th}x{tw}")
    top, left = (th - h) // 2, (tw - w) // 2
    return top, th - h - top, left, tw - w - left


def pad_to(x: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Zero-pad the first two axes of ``x`` (H x W x ...) symmetrically to ``size``.

    Returns:
        The padded array and (top, bottom, left, right).
    """
    pads = placement(x.shape[0], x.shape[1], size)
    widths = [(pads[0], pads[1]), (pads[2], pads[3])] + [(0, 0)] * (x.ndim - 2)
    return np.pad(x, widths), pads


def unpad(x: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """Undo ``pad_to`` on the first two axes."""
    top, bottom, left, right = pads
    return x[top : x.shape[0] - bottom, left : x.shape[1] - right]


def preprocess(frame: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, tuple]:
    """uint8 H x W x 3 -> (1 x Hp x Wp x 3 float32 network input, pads).

    Normalises with one fused scale/shift, then copies into the zero-padded buffer.
    """
    h, w = frame.shape[:2]
    out = np.zeros((1, size[0], size[1], 3), np.float32)
    pads = placement(h, w, size)
    x = frame.astype(np.float32)  # contiguous, then two fused in-place passes
    x *= _SCALE
    x -= _SHIFT
    out[0, pads[0] : pads[0] + h, pads[2] : pads[2] + w] = x
    return out, pads
