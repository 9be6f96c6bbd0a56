"""Evaluation of a model during and after training, by the runtime's own two-frame loop.

``predict_clip`` segments a clip with ``SegmentationDriver`` over ``TorchGraphs``, so training's
validation figures are the runtime's; ``validate`` scores held-out synthetic clips (seeds from
``vosx.training.data.val_seed``, never drawn by training) with ``vosx.tracker_runtime.metrics``;
``evaluate_synthetic`` does so for a checkpoint (the README's table).

Shapes: frames T x H x W x 3 uint8 RGB; label maps T x H x W uint8.
"""

import os

import numpy as np
import torch

from vosx.model.graphs import TorchGraphs
from vosx.model.network import TrickVOS
from vosx.sizes import DEFAULT_SIZE
from vosx.tracker_runtime.driver import SegmentationDriver
from vosx.tracker_runtime.segment import padded_size
from vosx.training.data import val_seed
from vosx.training.synthetic import make_clip


def predict_clip(
    model: TrickVOS, frames: np.ndarray, first_mask: np.ndarray, tracker_factory=None
) -> np.ndarray:
    """Segment a clip as the runtime does: ``SegmentationDriver`` over ``TorchGraphs``.

    Training evaluation runs the runtime's own two-frame loop, so its figures are the driver's.

    Args:
        model: The network (put in eval mode here).
        frames: T x H x W x 3 uint8 RGB.
        first_mask: H x W labels of frame 0.
        tracker_factory: Makes one Trick 3 tracker per object (``step(prob) -> prob``), or None.

    Returns:
        T x H x W uint8 labels (frame 0 is ``first_mask``).
    """
    size = padded_size(frames.shape[1:3])
    driver = SegmentationDriver(TorchGraphs(model), size, tracker_factory)
    return np.stack(list(driver.run(frames, first_mask)))


def validate(
    model: TrickVOS, clips: int, frames: int, size: tuple[int, int], seed: int, tracker_factory=None
) -> tuple[float, float, float]:
    """DAVIS (J-Mean, F-Mean, J&F-Mean) over held-out synthetic clips, objects weighted equally.

    Clip seeds come from ``val_seed`` and are never drawn by training. Scoring is
    ``vosx.tracker_runtime.metrics`` (first and last frames not evaluated).
    """
    from vosx.tracker_runtime.metrics import evaluate_labels, summarise

    was_training = model.training
    model.eval()
    objects = []
    for j in range(clips):
        rng = np.random.default_rng(val_seed(seed, j))
        k = int(rng.integers(1, 4))
        clip = make_clip(max(3, frames), size[0], size[1], k, int(rng.integers(2**62)))
        pred = predict_clip(model, clip.frames, clip.masks[0], tracker_factory)
        objects += evaluate_labels(f"val{j:03d}", clip.masks, pred).objects
    model.train(was_training)
    res = summarise(objects)
    return res["J-Mean"], res["F-Mean"], res["J&F-Mean"]


def evaluate_synthetic(
    checkpoint: str | os.PathLike,
    clips: int = 12,
    frames: int = 16,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
    tracker: str = "none",
    threads: int = 0,
) -> tuple[float, float, float]:
    """DAVIS (J, F, J&F) of a checkpoint on held-out synthetic clips (the README's table).

    Args:
        checkpoint: A vosx checkpoint.
        clips: Number of held-out clips (``val_seed(seed, j)``, never drawn by training).
        frames: Frames per clip.
        size: (height, width), multiples of 16.
        seed: Seed of the held-out set.
        tracker: ``"none"``, ``"cv"`` or ``"pt"`` (Trick 3 with its default margin; PT with
            the bundled weights).
        threads: torch CPU threads (0 = default).
    """
    from vosx.model.checkpoint import load_checkpoint
    from vosx.tracker_runtime.trackers import tracker_factory

    if threads > 0:
        torch.set_num_threads(threads)
    factory = tracker_factory(tracker)
    model = load_checkpoint(checkpoint)
    return validate(model, clips, frames, size, seed, factory)
