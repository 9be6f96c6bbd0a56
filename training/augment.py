"""STCN-style augmentation of a raw clip into training tensors, and the choice of its objects.

``augment`` crops, flips, warps and colour-jitters a raw clip (one random resized crop and flip
per clip, an affine and a colour jitter per frame); ``select_objects`` keeps up to K objects
visible in the first frame and renumbers them 1..K; ``normalise`` applies the runtime's ImageNet
normalisation (``vosx.tracker_runtime.preprocess``).

Shapes: a raw clip is a ``SyntheticClip`` (frames T x H x W x 3 uint8 RGB, masks T x H x W uint8
labels); ``augment`` returns frames T x 3 x h x w float32 in [0, 1] and masks T x h x w int64.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vosx.tracker_runtime.preprocess import MEAN, STD
from vosx.training.synthetic import SyntheticClip

MIN_OBJECT_PIXELS = 16  # an object must cover this many pixels of the first frame after cropping


@dataclass(frozen=True)
class AugmentConfig:
    """STCN-style augmentation ranges (video stage defaults; ``static()`` for the static stage).

    Attributes:
        crop_scale: Area fraction range of the sequence-level random resized crop.
        crop_ratio: Aspect-ratio range of the crop relative to the output's aspect.
        degrees: Per-frame rotation range (+-).
        shear: Per-frame shear range in degrees (+-).
        scale: Per-frame zoom range.
        brightness: Per-frame colour jitter ranges (+-).
        contrast: See brightness.
        saturation: See brightness.
        grayscale: Probability of a grey sequence.
        flip: Probability of a horizontal flip of the whole sequence.
    """

    crop_scale: tuple[float, float] = (0.36, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 1.333)
    degrees: float = 15.0
    shear: float = 10.0
    scale: tuple[float, float] = (1.0, 1.0)
    brightness: float = 0.1
    contrast: float = 0.03
    saturation: float = 0.03
    grayscale: float = 0.05
    flip: float = 0.5

    @classmethod
    def static(cls) -> "AugmentConfig":
        """Static-image stage (STCN): a stronger per-frame affine, as all frames are one image."""
        return cls(
            degrees=20.0,
            shear=10.0,
            scale=(0.9, 1.1),
            brightness=0.1,
            contrast=0.05,
            saturation=0.05,
        )


def augment(
    clip: SyntheticClip, size: tuple[int, int], cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """STCN augmentations: one random resized crop + flip per clip, affine and colour per frame.

    Args:
        clip: Raw frames T x H x W x 3 uint8 and masks T x H x W uint8.
        size: Output (height, width).
        cfg: Augmentation ranges.
        rng: Source of all random choices.

    Returns:
        (frames T x 3 x h x w float32 in [0, 1], masks T x h x w int64).
    """
    t_len, in_h, in_w = clip.masks.shape
    out_h, out_w = size
    crop = _crop_box((in_h, in_w), size, cfg, rng)
    flip = -1.0 if rng.uniform() < cfg.flip else 1.0
    grey = rng.uniform() < cfg.grayscale
    thetas = [_frame_theta((in_h, in_w), crop, flip, cfg, rng) for _ in range(t_len)]
    theta = torch.from_numpy(np.stack(thetas)).float()  # T x 2 x 3
    grid = F.affine_grid(theta, [t_len, 1, out_h, out_w], align_corners=False)
    img = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float() / 255.0  # T x 3 x H x W
    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    msk = torch.from_numpy(clip.masks)[:, None].float()  # T x 1 x H x W
    msk = F.grid_sample(msk, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return _jitter_colour(img, grey, cfg, rng), msk[:, 0].round().long()


def _crop_box(
    in_size: tuple[int, int], size: tuple[int, int], cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[float, float, float, float]:
    """The clip's crop (centre x, centre y, width, height) in input pixels, as torchvision's
    RandomResizedCrop draws it (the whole frame after ten misses)."""
    in_h, in_w = in_size
    out_h, out_w = size
    area = in_h * in_w
    cw, ch = float(in_w), float(in_h)
    for _ in range(10):
        a = area * rng.uniform(*cfg.crop_scale)
        r = (out_w / out_h) * math.exp(
            rng.uniform(math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1]))
        )
        w_, h_ = math.sqrt(a * r), math.sqrt(a / r)
        if w_ <= in_w and h_ <= in_h:
            cw, ch = w_, h_
            break
    cx = rng.uniform(cw / 2, in_w - cw / 2)
    cy = rng.uniform(ch / 2, in_h - ch / 2)
    return cx, cy, cw, ch


def _frame_theta(
    in_size: tuple[int, int],
    crop: tuple[float, float, float, float],
    flip: float,
    cfg: AugmentConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """One frame's 2 x 3 ``affine_grid`` matrix: a random rotation, shear and zoom about the
    centre of the clip's crop, flipped when ``flip`` is -1."""
    in_h, in_w = in_size
    cx, cy, cw, ch = crop
    ang = math.radians(rng.uniform(-cfg.degrees, cfg.degrees))
    sh = math.radians(rng.uniform(-cfg.shear, cfg.shear))
    sc = rng.uniform(*cfg.scale)
    rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    a = rot @ np.array([[1.0, math.tan(sh)], [0.0, 1.0]]) / sc
    # input px offset from crop centre = a @ (out normalised * crop half-size)
    m = np.diag([2.0 / in_w, 2.0 / in_h]) @ a @ np.diag([flip * cw / 2, ch / 2])
    tr = np.array([2 * cx / in_w - 1, 2 * cy / in_h - 1])
    return np.concatenate([m, tr[:, None]], 1)


def _jitter_colour(
    img: torch.Tensor, grey: bool, cfg: AugmentConfig, rng: np.random.Generator
) -> torch.Tensor:
    """Per-frame brightness, contrast and saturation jitter of T x 3 x h x w [0, 1] RGB, then
    greyscale when ``grey``."""
    t_len = img.shape[0]
    b = torch.from_numpy(rng.uniform(1 - cfg.brightness, 1 + cfg.brightness, t_len)).float()
    c = torch.from_numpy(rng.uniform(1 - cfg.contrast, 1 + cfg.contrast, t_len)).float()
    s = torch.from_numpy(rng.uniform(1 - cfg.saturation, 1 + cfg.saturation, t_len)).float()
    img = (img * b[:, None, None, None]).clamp(0, 1)
    gray = _luma(img)  # T x 1 x h x w
    img = (
        (img - gray.mean((2, 3), keepdim=True)) * c[:, None, None, None]
        + gray.mean((2, 3), keepdim=True)
    ).clamp(0, 1)
    gray = _luma(img)
    img = ((img - gray) * s[:, None, None, None] + gray).clamp(0, 1)
    if grey:
        img = _luma(img).expand(-1, 3, -1, -1).contiguous()
    return img


def _luma(img: torch.Tensor) -> torch.Tensor:
    """T x 3 x h x w RGB -> T x 1 x h x w ITU-R 601 luma."""
    return 0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3]


def normalise(img: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB (... x 3 x h x w) -> ImageNet-normalised."""
    mean = torch.tensor(MEAN, dtype=img.dtype).view(3, 1, 1)
    std = torch.tensor(STD, dtype=img.dtype).view(3, 1, 1)
    return (img - mean) / std


def select_objects(
    masks: torch.Tensor, max_objects: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Pick up to ``max_objects`` objects visible in frame 0 and renumber them 1..K.

    Args:
        masks: T x h x w int64 original labels.
        max_objects: Most objects kept (others become background).
        rng: Chooses which objects when there are more.

    Returns:
        (labels T x h x w int64 in 0..K, valid max_objects bool), or None when frame 0 shows none.
    """
    ids, counts = torch.unique(masks[0], return_counts=True)
    present = [
        int(i)
        for i, c in zip(ids.tolist(), counts.tolist(), strict=True)
        if i != 0 and c >= MIN_OBJECT_PIXELS
    ]
    if not present:
        return None
    if len(present) > max_objects:
        present = sorted(rng.choice(present, size=max_objects, replace=False).tolist())
    lut = torch.zeros(256, dtype=torch.long)  # one entry per uint8 label
    for k, i in enumerate(present):
        lut[i] = k + 1
    labels = lut[masks.clamp(0, 255)]
    valid = torch.zeros(max_objects, dtype=torch.bool)
    valid[: len(present)] = True
    return labels, valid
