"""Boxes of probability maps for Trick 3 (paper §3.4): bounds, motion, predicted windows.

Shapes: a map is H x W (float, values in [0, 1]); a box is ``Box(x, y, w, h)`` in whole pixels,
the inclusive pixel bounds of ``map > 0.5`` with (x, y) the top-left pixel, so the box covers
columns ``x .. x + w - 1`` and rows ``y .. y + h - 1``. A motion is the difference of two boxes,
(dx, dy, dw, dh). A window is the half-open slice ``(y0, y1, x0, x1)`` of the attention map: rows
``y0:y1`` and columns ``x0:x1`` are 1, the rest 0.

The bounds come from per-row and per-column ``any`` over the thresholded map (never a
full-frame ``argwhere``), and only inside the window when the map is known to be zero outside it.
"""

import math
from typing import NamedTuple

import numpy as np

THRESHOLD = 0.5
# Values this close to a whole pixel are taken as that pixel before rounding outward, so that
# float noise such as 0.1 * 30 = 3.0000000000000004 does not grow a window by a spurious pixel.
SNAP = 1e-6


class Box(NamedTuple):
    """Inclusive pixel bounds of a mask: top-left (x, y), width w and height h (w, h >= 1)."""

    x: int
    y: int
    w: int
    h: int


def box_of(prob: np.ndarray) -> Box | None:
    """The box of ``prob > 0.5`` over the whole map, or None when no pixel is above 0.5.

    Args:
        prob: H x W map.
    """
    return box_in_window(prob, (0, prob.shape[0], 0, prob.shape[1]))


def box_in_window(prob: np.ndarray, window: tuple[int, int, int, int]) -> Box | None:
    """The box of ``prob > 0.5`` restricted to a window, in full-map coordinates.

    Equal to ``box_of(prob * attention_map(window, *prob.shape))`` at a cost proportional to the
    window's area: one threshold pass, a per-row ``any``, and a per-column ``any`` over the rows
    that hold the object. (Scanning inwards from the sides in chunks was measured slower: numpy's
    per-call and strided-column overheads outweigh the pixels saved.)

    Args:
        prob: H x W map.
        window: (y0, y1, x0, x1) half-open slice bounds inside the map.
    """
    y0, y1, x0, x1 = window
    if y1 <= y0 or x1 <= x0:
        return None
    above = prob[y0:y1, x0:x1] > THRESHOLD  # (y1 - y0) x (x1 - x0) bool
    rows = above.any(axis=1)  # y1 - y0
    r0 = int(rows.argmax())  # argmax of bool: the first True
    if not rows[r0]:
        return None
    r1 = rows.size - 1 - int(rows[::-1].argmax())
    cols = above[r0 : r1 + 1].any(axis=0)  # x1 - x0
    c0 = int(cols.argmax())
    c1 = cols.size - 1 - int(cols[::-1].argmax())
    return Box(x0 + c0, y0 + r0, c1 - c0 + 1, r1 - r0 + 1)


def motion(prev: Box, cur: Box) -> tuple[int, int, int, int]:
    """The motion T = cur - prev in (dx, dy, dw, dh)."""
    return (cur.x - prev.x, cur.y - prev.y, cur.w - prev.w, cur.h - prev.h)


def predicted_window(
    box: tuple[float, float, float, float], margin: float, height: int, width: int
) -> tuple[int, int, int, int]:
    """The attention window of a predicted box, grown by ``margin``, rounded outward, clipped.

    The box (x, y, w, h) covers [x, x + w) x [y, y + h) in continuous pixel coordinates; each side
    moves out by ``margin`` times the width (left, right) or height (top, bottom); the left/top
    edges are floored and the right/bottom edges ceiled (after snapping values within 1e-6 of an
    integer), then clipped to the frame. A box with w <= 0 or h <= 0 gives an empty window.

    Args:
        box: predicted (x, y, w, h), possibly fractional.
        margin: growth per side as a fraction of the box's width and height (>= 0).
        height: frame height H.
        width: frame width W.

    Returns:
        (y0, y1, x0, x1), possibly empty (y1 <= y0 or x1 <= x0).
    """
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return (0, 0, 0, 0)
    x0 = _floor(x - margin * w)
    x1 = _ceil(x + w + margin * w)
    y0 = _floor(y - margin * h)
    y1 = _ceil(y + h + margin * h)
    y0, y1 = min(max(y0, 0), height), min(max(y1, 0), height)
    x0, x1 = min(max(x0, 0), width), min(max(x1, 0), width)
    if y1 <= y0 or x1 <= x0:  # entirely outside the frame
        return (0, 0, 0, 0)
    return (y0, y1, x0, x1)


def attention_map(window: tuple[int, int, int, int], height: int, width: int) -> np.ndarray:
    """The 0/1 H x W float32 attention map of a window (the reference definition; slow)."""
    y0, y1, x0, x1 = window
    am = np.zeros((height, width), np.float32)  # H x W
    if y1 > y0 and x1 > x0:
        am[y0:y1, x0:x1] = 1.0
    return am


def _floor(v: float) -> int:
    r = round(v)
    return int(r) if abs(v - r) <= SNAP else math.floor(v)


def _ceil(v: float) -> int:
    r = round(v)
    return int(r) if abs(v - r) <= SNAP else math.ceil(v)
