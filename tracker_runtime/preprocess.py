"""Frame normalisation and STCN symmetric padding in NumPy (the rule the manifest records).

Shapes: frames H x W x 3 uint8 RGB; normalised images 1 x H x W x 3 float32 (NHWC, as the TFLite
key encoder takes them); masks H x W. Padding is zero (after normalisation) to a multiple of 16,
split as evenly as possible with the extra pixel on the bottom/right, as STCN's pad_divide_by.
"""

import numpy as np

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PAD_MULTIPLE = 16


def pad_amounts(h: int, w: int, multiple: int = PAD_MULTIPLE) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero padding that brings H x W up to a multiple."""
    ph = (multiple - h % multiple) % multiple
    pw = (multiple - w % multiple) % multiple
    return ph // 2, ph - ph // 2, pw // 2, pw - pw // 2


def padded_size(h: int, w: int, multiple: int = PAD_MULTIPLE) -> tuple[int, int]:
    """The padded (height, width) for a frame size."""
    t, b, left, r = pad_amounts(h, w, multiple)
    return h + t + b, w + left + r


def normalize(frame: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 RGB -> float32 H x W x 3: /255 then ImageNet mean/std."""
    x = frame.astype(np.float32) * np.float32(1.0 / 255.0)
    return (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)


def pad_to(x: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Zero-pad the first two axes of ``x`` (H x W x ...) symmetrically to ``size``.

    Returns:
        The padded array and (top, bottom, left, right).
    """
    h, w = x.shape[:2]
    th, tw = size
    if th < h or tw < w:
        raise ValueError(f"frame {h}x{w} is larger than the network input {th}x{tw}")
    top, left = (th - h) // 2, (tw - w) // 2
    pads = (top, th - h - top, left, tw - w - left)
    widths = [(pads[0], pads[1]), (pads[2], pads[3])] + [(0, 0)] * (x.ndim - 2)
    return np.pad(x, widths), pads


def unpad(x: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """Undo ``pad_to`` on the first two axes."""
    top, bottom, left, right = pads
    return x[top : x.shape[0] - bottom, left : x.shape[1] - right]


def preprocess(frame: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, tuple]:
    """uint8 H x W x 3 -> (1 x Hp x Wp x 3 float32 network input, pads)."""
    x, pads = pad_to(normalize(frame), size)
    return x[None], pads
