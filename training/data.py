"""The training dataset: augmented clips of a source, indexed by step, the same for any run.

``ClipDataset`` turns a ``vosx.training.sources.ClipSource`` into ``ClipSample`` tensors
(``vosx.training.augment``); ``StepBatchSampler`` hands each process its share of every step's
global batch. Every sample is a deterministic function of (seed, index): a resumed or
distributed run draws exactly the same batches as one uninterrupted process.

Shapes: a ``ClipSample`` holds frames T x 3 x h x w float32 (ImageNet-normalised), labels
T x h x w int64 in 0..K (K <= max_objects, objects renumbered in order of their original label)
and valid max_objects bool.
"""

from typing import NamedTuple

import numpy as np
import torch

from vosx.errors import InputDataError
from vosx.training.augment import AugmentConfig, augment, normalise, select_objects
from vosx.training.sources import ClipSource

_TRAIN_TAG = 1
_VAL_TAG = 2


class ClipSample(NamedTuple):
    """One training clip as tensors (collates into a batch with a leading B axis)."""

    frames: torch.Tensor  # T x 3 x h x w float32, normalised
    labels: torch.Tensor  # T x h x w int64, 0..K
    valid: torch.Tensor  # max_objects bool


def sample_seed(seed: int, index: int, tag: int = _TRAIN_TAG) -> int:
    """A 63-bit seed for sample ``index`` of a run seeded ``seed`` (train and val differ)."""
    return int(np.random.SeedSequence([tag, seed, index]).generate_state(2, np.uint64)[0] >> 1)


def val_seed(seed: int, index: int) -> int:
    """Seed of held-out validation clip ``index`` (never drawn by training)."""
    return sample_seed(seed, index, _VAL_TAG)


class ClipDataset(torch.utils.data.Dataset):
    """Augmented training clips; item ``i`` is a deterministic function of (seed, i).

    Args:
        source: Where raw clips come from.
        size: Crop (height, width), multiples of 16.
        num_frames: Sequence length T.
        max_objects: Object slots per sample.
        augment_cfg: Augmentation ranges.
        seed: Run seed.
        length: Nominal length (the sampler indexes beyond it freely).
    """

    def __init__(
        self,
        source: ClipSource,
        size: tuple[int, int],
        num_frames: int,
        max_objects: int,
        augment_cfg: AugmentConfig,
        seed: int,
        length: int = 2**31 - 1,
    ):
        self.source = source
        self.size = size
        self.num_frames = num_frames
        self.max_objects = max_objects
        self.augment_cfg = augment_cfg
        self.seed = seed
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> ClipSample:
        rng = np.random.default_rng(sample_seed(self.seed, index))
        for _ in range(100):
            clip = self.source.draw(rng, self.num_frames)
            frames, masks = augment(clip, self.size, self.augment_cfg, rng)
            picked = select_objects(masks, self.max_objects, rng)
            if picked is not None:
                labels, valid = picked
                return ClipSample(normalise(frames), labels, valid)
        raise InputDataError(
            f"{getattr(self.source, 'root', 'data')}: 100 draws gave no object visible in the "
            "first frame; are the masks empty?"
        )


class StepBatchSampler(torch.utils.data.Sampler):
    """Batches of dataset indices by global step: step s, rank r gets a fixed slice of s's batch.

    The global batch of step s is indices ``[s*B, (s+1)*B)``; rank r of W takes its contiguous
    share, so the data do not depend on the number of processes or on restarts.

    Args:
        start_step: First step to yield.
        end_step: One past the last step.
        batch_size: Global batch size B (divisible by W).
        rank: This process's rank.
        world_size: Number of processes W.
    """

    def __init__(
        self, start_step: int, end_step: int, batch_size: int, rank: int = 0, world_size: int = 1
    ):
        self.start_step, self.end_step = start_step, end_step
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.per_rank = batch_size // world_size

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def __iter__(self):
        for s in range(self.start_step, self.end_step):
            first = s * self.batch_size + self.rank * self.per_rank
            yield list(range(first, first + self.per_rank))
