"""A clip through the runtime driver: PyTorch's run, each backend's run, and their mask IoUs.

The same two-frame memory driver (``tracker_runtime.driver``) runs the reference (``TorchGraphs``)
and each candidate (TFLite files on the CPU, or LiteRT's GPU accelerator); frames 1.. are
compared with near ties of the reference left out. Shapes: frames T x H x W x 3 uint8, masks and
labels H x W.
"""

import numpy as np

from vosx.export.report import EndToEnd
from vosx.export.verify import E2E_MIN_AREA, E2E_MIN_DECISIVE, E2E_TIE_MARGIN


def mask_iou(
    a: np.ndarray, b: np.ndarray, object_ids: list[int], valid: np.ndarray, min_area: float = 0.0
) -> float:
    """Mean IoU over objects of two label maps on the ``valid`` pixels.

    An object whose two masks together cover at most ``min_area`` of the frame is absent from
    both (IoU 1): agreement on a handful of pixels says nothing.
    """
    ious = []
    for i in object_ids:
        x, y = (a == i) & valid, (b == i) & valid
        union = np.logical_or(x, y).sum()
        absent = union <= min_area * a.size
        ious.append(1.0 if absent else np.logical_and(x, y).sum() / union)
    return float(np.mean(ious))


def run_clip(graphs, size: tuple[int, int], frames: np.ndarray, first_mask: np.ndarray):
    """Run a clip through one ``Graphs`` backend with the driver (``TorchGraphs`` for the
    reference run, a TFLite backend for each candidate).

    Returns:
        (labels of frames 1.., top-2 gaps of frames 1..): a pixel's gap is the difference of its
        two most likely classes' probabilities (a near tie below a margin).
    """
    from vosx.tracker_runtime.driver import SegmentationDriver
    from vosx.tracker_runtime.preprocess import unpad

    driver = SegmentationDriver(graphs, size)
    labels, gaps = [], []
    for t, lab in enumerate(driver.run(frames, first_mask)):
        if t > 0:
            top2 = np.sort(unpad(np.moveaxis(driver.prob, 0, -1), driver.pads), axis=-1)
            labels.append(lab)
            gaps.append(top2[..., -1] - top2[..., -2])
    return labels, gaps


def label_ious(reference: tuple, labels: list, first_mask: np.ndarray, tie_margin: float):
    """Compare labels of frames 1.. with a reference run (``run_clip``'s result) frame by frame.

    Near ties of the reference (top-2 gap below ``tie_margin``) are left out of the IoU and
    counted (a model of near ties everywhere says nothing by its labels); objects covering less
    than ``E2E_MIN_AREA`` of a frame in both runs count as absent from both (``mask_iou``).

    Returns:
        (per-frame IoUs of frames 1.., fraction of pixels left out as ties).
    """
    ref_labels, gaps = reference
    decisive = [g >= tie_margin for g in gaps]
    ids = [int(i) for i in np.unique(first_mask) if i != 0]
    ious = [
        mask_iou(r, c, ids, v, E2E_MIN_AREA)
        for r, c, v in zip(ref_labels, labels, decisive, strict=True)
    ]
    return ious, 1.0 - float(np.mean([v.mean() for v in decisive]))


def end_to_end(reference: tuple, candidate, size, frames: np.ndarray, first_mask: np.ndarray):
    """A backend's clip against a reference run, near ties within ``E2E_TIE_MARGIN`` left out.

    Returns:
        (per-frame IoUs of frames 1.., fraction of pixels left out as ties).
    """
    labels, _ = run_clip(candidate, size, frames, first_mask)
    return label_ious(reference, labels, first_mask, E2E_TIE_MARGIN)


def finite_gaps(gaps: list[np.ndarray]) -> bool:
    """Every frame's top-2 gaps are finite (the driver's probabilities held no NaN)."""
    return all(np.isfinite(g).all() for g in gaps)


def summary(ious: list[float], ties: float) -> EndToEnd:
    """``label_ious``' figures as the report's ``EndToEnd`` (inconclusive below
    ``E2E_MIN_DECISIVE`` decisive pixels)."""
    return EndToEnd(
        min_iou=min(ious),
        mean_iou=float(np.mean(ious)),
        per_frame=tuple(ious),
        tie_fraction=ties,
        conclusive=1.0 - ties >= E2E_MIN_DECISIVE,
    )
