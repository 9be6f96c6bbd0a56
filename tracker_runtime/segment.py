"""Segment a whole video at its own size with any ``Graphs`` backend (what ``vosx segment`` runs).

NumPy + Pillow + LiteRT only (no torch, no tensorflow). The ``SegmentationDriver`` stays the one
place that runs the graphs; this module only fits the frames to the exported input and back:

* frames that fit the padded network input (``size``) go to the driver as they are (it pads them);
* larger frames are downscaled, aspect kept, with Pillow's antialiased bilinear filter so that
  they fit; the first mask is downscaled by area (per-label box filter, then argmax, so every
  object keeps at least one pixel) and the labels the driver returns are upscaled back to the
  original size with nearest-neighbour sampling.

Shapes: frames H x W x 3 uint8 RGB; label maps H x W uint8 (0 = background, 1..K objects);
``size`` is the padded network input (height, width) of the export.
"""

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from vosx.paths import user_cache_dir
from vosx.tracker_runtime.driver import Graphs, SegmentationDriver, check_frame, check_mask
from vosx.tracker_runtime.preprocess import PAD_MULTIPLE
from vosx.tracker_runtime.trackers import DEFAULT_TRACKER, tracker_factory


def padded_size(frame_size: tuple[int, int]) -> tuple[int, int]:
    """The network input an (H, W) frame needs: each side rounded up to a multiple of 16."""
    return tuple(-(-int(v) // PAD_MULTIPLE) * PAD_MULTIPLE for v in frame_size)


def fit_size(frame_size: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """The (h, w) frames are given to the driver at: unchanged when they fit ``size``, else
    downscaled with their aspect ratio kept until both sides fit.
    """
    h, w = frame_size
    th, tw = size
    if h <= th and w <= tw:
        return h, w
    scale = min(th / h, tw / w)
    return max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))


def resize_frame(frame: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """H x W x 3 uint8 -> h x w x 3 uint8 (Pillow bilinear, antialiased when shrinking)."""
    if frame.shape[:2] == tuple(hw):
        return frame
    return np.asarray(Image.fromarray(frame).resize((hw[1], hw[0]), Image.BILINEAR))


def downscale_labels(labels: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """H x W labels -> h x w labels by area: each label's coverage (box filter), then argmax.

    An object whose coverage never wins keeps the pixel where it covers most, so the driver
    still sees every object of the first mask.
    """
    if labels.shape == tuple(hw):
        return labels.astype(np.uint8)
    ids = [int(i) for i in np.unique(labels)]
    cover = np.stack(
        [
            np.asarray(
                Image.fromarray((labels == i).astype(np.float32), mode="F").resize(
                    (hw[1], hw[0]), Image.BOX
                )
            )
            for i in ids
        ]
    )  # L x h x w fraction of each output pixel covered by each label
    out = np.asarray(ids, np.uint8)[cover.argmax(0)]  # h x w
    for k, i in enumerate(ids):
        if i != 0 and not (out == i).any():
            out[np.unravel_index(cover[k].argmax(), out.shape)] = i
    return out


def upscale_labels(labels: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """h x w uint8 labels -> H x W uint8 with nearest-neighbour sampling."""
    if labels.shape == tuple(hw):
        return labels
    return np.asarray(Image.fromarray(labels, mode="L").resize((hw[1], hw[0]), Image.NEAREST))


def segment(
    frames: Iterable[np.ndarray],
    first_mask: np.ndarray,
    graphs: Graphs,
    size: tuple[int, int],
    tracker: str = DEFAULT_TRACKER,
    margin: float | None = None,
    pt_path: str | os.PathLike | None = None,
) -> Iterator[np.ndarray]:
    """Segment a video: the first frame's objects are tracked through the others.

    Arguments are checked now; the frames are read and segmented lazily as the result is
    iterated.

    Args:
        frames: H x W x 3 uint8 RGB frames, all of one size; the first goes with ``first_mask``.
        first_mask: H x W integer labels of the first frame (0 = background, 1..K objects).
        graphs: The backend (``TFLiteGraphs`` or the PyTorch ``TorchGraphs``).
        size: Padded network input (height, width) the graphs were exported for.
        tracker: "none", "cv" or "pt" (Trick 3 box tracker per object).
        margin: Tracker box growth; the variant's measured default when None.
        pt_path: PT weights (``.npz``); the bundled ones when None.

    Returns:
        An iterator of H x W uint8 label maps, one per frame; the first is ``first_mask``.

    Raises:
        InputDataError: a mask without object, a mask or frame of another size.
        ConfigError / CheckpointError: a bad tracker kind, margin or PT weights file.
    """
    mask = np.asarray(first_mask)
    check_mask(mask)
    factory = tracker_factory(tracker, pt_path, margin)  # checks kind, margin and weights now
    driver = SegmentationDriver(graphs, tuple(size), factory)
    return _run(iter(frames), mask.astype(np.uint8), driver)


def _run(
    frames: Iterator[np.ndarray], mask: np.ndarray, driver: SegmentationDriver
) -> Iterator[np.ndarray]:
    hw = mask.shape  # (H, W) of the video
    fit = fit_size(hw, driver.size)  # (h, w) the driver sees
    for index, frame in enumerate(frames):
        check_frame(frame, index, hw)  # before resizing: the driver sees the resized frames
        small = resize_frame(frame, fit)  # h x w x 3
        if index == 0:
            driver.reset()
            driver.step(small, downscale_labels(mask, fit))
            yield mask
        else:
            yield upscale_labels(driver.step(small), hw)


def default_export_dir(checkpoint_sha256: str, size: tuple[int, int]) -> Path:
    """Where ``vosx segment`` keeps its export of a checkpoint for one input size:
    ``$XDG_CACHE_HOME/vosx/exports/<sha256[:12]>-<H>x<W>`` (default ``~/.cache/vosx/...``).
    """
    return user_cache_dir() / "exports" / f"{checkpoint_sha256[:12]}-{size[0]}x{size[1]}"
