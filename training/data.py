"""Training data: DAVIS-2017 / YouTube-VOS, image folders, the synthetic generator, augmentations.

Shapes: raw clips are NumPy ``SyntheticClip``-like pairs (frames T x H x W x 3 uint8 RGB, masks
T x H x W uint8 labels); a training sample is a ``ClipSample`` of torch tensors: frames
T x 3 x h x w float32 (ImageNet-normalised), labels T x h x w int64 in 0..K (K <= max_objects,
objects renumbered in order of their original label), valid max_objects bool.

Every sample is a deterministic function of (seed, index): a resumed or distributed run draws
exactly the same batches as one uninterrupted process.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from vosx.errors import InputDataError
from vosx.tracker_runtime.io import IMAGE_SUFFIXES
from vosx.tracker_runtime.preprocess import MEAN, STD
from vosx.training.synthetic import SyntheticClip, deform_to_clip, make_clip, make_static_image

MIN_OBJECT_PIXELS = 16  # an object must cover this many pixels of the first frame after cropping
_TRAIN_TAG = 1
_VAL_TAG = 2


class ClipSample(NamedTuple):
    """One training clip as tensors (collates into a batch with a leading B axis)."""

    frames: torch.Tensor  # T x 3 x h x w float32, normalised
    labels: torch.Tensor  # T x h x w int64, 0..K
    valid: torch.Tensor  # max_objects bool


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


class ClipSource(Protocol):
    """Something that draws a raw clip of ``num_frames`` frames from an RNG."""

    def draw(self, rng: np.random.Generator, num_frames: int) -> SyntheticClip: ...


def sample_seed(seed: int, index: int, tag: int = _TRAIN_TAG) -> int:
    """A 63-bit seed for sample ``index`` of a run seeded ``seed`` (train and val differ)."""
    return int(np.random.SeedSequence([tag, seed, index]).generate_state(2, np.uint64)[0] >> 1)


def val_seed(seed: int, index: int) -> int:
    """Seed of held-out validation clip ``index`` (never drawn by training)."""
    return sample_seed(seed, index, _VAL_TAG)


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class SyntheticVideoSource:
    """Clips from ``vosx.training.synthetic.make_clip`` at a size drawn around the crop size.

    Attributes:
        size: (height, width) of the training crop.
        objects: Inclusive range of the number of objects per clip.
        zoom: Range of the scene's size relative to ``size``. Only a window of
            ``WINDOW_MARGIN x size`` pixels of a larger scene is rendered (and then cropped), so
            zoom > 1 shows objects larger and at a finer pixel scale, as a 480x864 frame does,
            at the cost of the crop alone.
    """

    size: tuple[int, int]
    objects: tuple[int, int] = (1, 3)
    zoom: tuple[float, float] = (1.0, 1.0)

    def draw(self, rng: np.random.Generator, num_frames: int) -> SyntheticClip:
        h, w, k, window = _draw_scene(rng, self.size, self.objects, self.zoom)
        return make_clip(num_frames, h, w, k, int(rng.integers(0, 2**62)), window)


WINDOW_MARGIN = 1.25
"""Rendered window of a zoomed synthetic scene, relative to the crop (room for the crop jitter)."""


def _draw_scene(
    rng: np.random.Generator, size, objects, zoom
) -> tuple[int, int, int, tuple[int, int, int, int] | None]:
    """(height, width, objects, window) of one synthetic sample: ``size`` zoomed, objects in
    range, and the window to render (None = the whole scene, when it is small enough).
    """
    z = rng.uniform(*zoom)
    h, w = (max(16, int(round(s * z))) for s in size)
    k = int(rng.integers(objects[0], objects[1] + 1))
    wh, ww = (int(round(s * WINDOW_MARGIN)) for s in size)
    if wh >= h and ww >= w:
        return h, w, k, None
    wh, ww = min(wh, h), min(ww, w)
    top, left = int(rng.integers(0, h - wh + 1)), int(rng.integers(0, w - ww + 1))
    return h, w, k, (top, left, wh, ww)


@dataclass(frozen=True)
class SyntheticStaticSource:
    """Static stage on synthetic images: one image + mask deformed into a pseudo-video."""

    size: tuple[int, int]
    objects: tuple[int, int] = (1, 3)
    zoom: tuple[float, float] = (1.0, 1.0)

    def draw(self, rng: np.random.Generator, num_frames: int) -> SyntheticClip:
        h, w, k, window = _draw_scene(rng, self.size, self.objects, self.zoom)
        img = make_static_image(h, w, k, int(rng.integers(0, 2**62)), window)
        return deform_to_clip(img.frames[0], img.masks[0], num_frames, int(rng.integers(0, 2**62)))


class ImageFolderSource:
    """Static stage on an image folder: ``name.jpg`` + ``name.png`` mask pairs (DUTS/ECSSD style).

    Masks are palette/grey PNGs; a mask whose values are only 0 and 255 is one object. Masks may
    also live in a sibling folder: ``<root>/images/*.jpg`` with ``<root>/masks/*.png``.

    Args:
        root: The folder.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.pairs = scan_image_folder(self.root)

    def draw(self, rng: np.random.Generator, num_frames: int) -> SyntheticClip:
        img_path, mask_path = self.pairs[int(rng.integers(len(self.pairs)))]
        image = read_frame(img_path)
        mask = read_mask(mask_path, binary_255=True)
        _check_same_size(img_path, image, mask_path, mask)
        return deform_to_clip(image, mask, num_frames, int(rng.integers(0, 2**62)))


class VideoFolderSource:
    """DAVIS-2017 or YouTube-VOS training folders (layout detected by ``detect_layout``).

    Frames are sampled in order with gaps of at most ``max_skip``; a video's later masks may only
    use labels of its first mask in DAVIS (YouTube-VOS objects may appear later).

    Args:
        root: Dataset root (DAVIS: with ``JPEGImages/480p``; YouTube-VOS: with ``JPEGImages`` and
            ``Annotations``, or its parent holding ``train/``).
        max_skip: Largest gap between sampled frames.
        exclude: Video names never drawn (held-out sequences); each must exist.
    """

    def __init__(self, root: str | Path, max_skip: int = 5, exclude: tuple[str, ...] = ()):
        self.root = Path(root)
        self.layout, videos = scan_video_folder(self.root)
        self.videos = exclude_videos(self.root, videos, exclude)
        self.max_skip = max_skip
        self._first_labels: dict[Path, set[int]] = {}

    def draw(self, rng: np.random.Generator, num_frames: int) -> SyntheticClip:
        video = self.videos[int(rng.integers(len(self.videos)))]
        n = len(video.frames)
        picks = [int(rng.integers(0, max(1, n - num_frames + 1)))]
        for _ in range(num_frames - 1):
            picks.append(min(n - 1, picks[-1] + int(rng.integers(1, self.max_skip + 1))))
        frames, masks = zip(*(self.read(video, i) for i in picks), strict=True)
        return SyntheticClip(frames=np.stack(frames), masks=np.stack(masks))

    def read(self, video: "VideoEntry", i: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``i`` of ``video`` and its mask (void as background), checked."""
        frame = read_frame(video.frames[i])
        mask = read_mask(video.masks[i])
        if self.layout == "davis":
            mask[mask == 255] = 0  # void pixels count as background (DAVIS rule)
        _check_same_size(video.frames[i], frame, video.masks[i], mask)
        if self.layout == "davis":
            self._check_labels(video, video.masks[i], mask)
        return frame, mask

    def _check_labels(self, video: "VideoEntry", path: Path, mask: np.ndarray) -> None:
        first = self._first_labels.get(video.masks[0])
        if first is None:
            first = set(np.unique(read_mask(video.masks[0])).tolist()) - {255}
            self._first_labels[video.masks[0]] = first
        extra = sorted(set(np.unique(mask).tolist()) - first)
        if extra:
            raise InputDataError(
                f"{path}: labels {extra} are not in the video's first mask {video.masks[0].name} "
                f"(labels {sorted(first)}); every DAVIS object must keep one label in all frames — "
                "fix the annotation or remove the video"
            )


class VideoFrameStaticSource:
    """Static stage on a video folder: one annotated frame deformed into a pseudo-video.

    Every annotated frame of the folder's videos is an image + mask pair (STCN's static stage),
    deformed by ``deform_to_clip`` with ``strength`` (1 = its default affine + elastic ranges).

    Args:
        videos: The video folder (its ``exclude`` list applies here too).
        strength: Deformation magnitude multiplier.
    """

    def __init__(self, videos: VideoFolderSource, strength: float = 1.5):
        self.videos = videos
        self.root = videos.root
        self.strength = strength

    def draw(self, rng: np.random.Generator, num_frames: int) -> SyntheticClip:
        video = self.videos.videos[int(rng.integers(len(self.videos.videos)))]
        frame, mask = self.videos.read(video, int(rng.integers(len(video.frames))))
        seed = int(rng.integers(0, 2**62))
        return deform_to_clip(frame, mask, num_frames, seed, strength=self.strength)


@dataclass(frozen=True)
class CopyPasteSource:
    """Multi-object clips from single-object videos: an object cut from one clip, pasted on another.

    With probability ``prob`` a second clip is drawn from ``base``; one of its objects (frames and
    masks, cut along its box over the clip) is scaled, moved along a random constant-velocity
    path and pasted, with soft edges, in front of the first clip's objects (or, with probability
    ``behind``, behind them) as a new label. The pasted object keeps its own motion and
    deformation inside its box, occludes or is occluded, and is a real-looking distractor.

    Attributes:
        base: Source of both clips.
        prob: Probability of pasting.
        scale: Range of the pasted box size relative to the largest that fits the frame.
        behind: Probability of pasting behind the existing objects.
    """

    base: ClipSource
    prob: float = 0.5
    scale: tuple[float, float] = (0.25, 0.8)
    behind: float = 0.3

    @property
    def root(self) -> Path | None:
        return getattr(self.base, "root", None)

    def draw(self, rng: np.random.Generator, num_frames: int) -> SyntheticClip:
        clip = self.base.draw(rng, num_frames)
        if rng.uniform() >= self.prob:
            return clip
        donor = self.base.draw(rng, num_frames)
        return paste_object(clip, donor, rng, self.scale, self.behind)


def paste_object(
    clip: SyntheticClip,
    donor: SyntheticClip,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.25, 0.8),
    behind: float = 0.3,
) -> SyntheticClip:
    """Paste one object of ``donor`` into ``clip`` as a new label (see ``CopyPasteSource``).

    Args:
        clip: Target frames T x H x W x 3 and labels T x H x W.
        donor: Frames T x H' x W' x 3 and labels T x H' x W' holding the object.
        rng: All random choices.
        scale: Box size range relative to the largest that fits.
        behind: Probability of pasting behind the existing objects.

    Returns:
        A new clip (the inputs are not modified); ``clip`` itself when the donor has no object
        or the target has no free label.
    """
    t, h, w = clip.masks.shape
    ids = [int(i) for i in np.unique(donor.masks[0]) if i != 0]
    new_label = int(clip.masks.max()) + 1
    if not ids or new_label > 255:
        return clip
    obj = donor.masks == ids[int(rng.integers(len(ids)))]  # T x H' x W'
    ys, xs = np.nonzero(obj.any(0))
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    fit = min(h / (y1 - y0), w / (x1 - x0))
    s = rng.uniform(*scale) * fit
    ph, pw = max(8, int(round((y1 - y0) * s))), max(8, int(round((x1 - x0) * s)))
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    vy, vx = rng.normal(0, 0.03 * h), rng.normal(0, 0.03 * w)  # pixels per frame
    under = rng.uniform() < behind
    frames, masks = clip.frames.copy(), clip.masks.copy()
    for ti in range(t):
        patch = Image.fromarray(donor.frames[ti, y0:y1, x0:x1]).resize((pw, ph), Image.BILINEAR)
        alpha = Image.fromarray(obj[ti, y0:y1, x0:x1].astype(np.float32)).resize(
            (pw, ph), Image.BILINEAR
        )
        top = int(round(cy + vy * ti - ph / 2))
        left = int(round(cx + vx * ti - pw / 2))
        dy0, dx0 = max(0, top), max(0, left)
        dy1, dx1 = min(h, top + ph), min(w, left + pw)
        if dy0 >= dy1 or dx0 >= dx1:
            continue
        sl = (slice(dy0 - top, dy1 - top), slice(dx0 - left, dx1 - left))
        a = np.asarray(alpha, np.float32)[sl]  # h' x w' in [0, 1]
        if under:
            a = a * (masks[ti, dy0:dy1, dx0:dx1] == 0)
        region = frames[ti, dy0:dy1, dx0:dx1].astype(np.float32)
        src = np.asarray(patch, np.float32)[sl]
        frames[ti, dy0:dy1, dx0:dx1] = (
            (region + a[..., None] * (src - region)).round().astype(np.uint8)
        )
        masks[ti, dy0:dy1, dx0:dx1][a >= 0.5] = new_label
    return SyntheticClip(frames=frames, masks=masks)


# --------------------------------------------------------------------------- folders


def exclude_videos(root: Path, videos: list["VideoEntry"], names: tuple[str, ...]) -> list:
    """``videos`` without the named ones (held-out sequences).

    Raises:
        InputDataError: a name that is not a video of ``root`` (a typo would silently train on a
            sequence meant to be held out), or nothing left to train on.
    """
    known = {v.name for v in videos}
    unknown = sorted(set(names) - known)
    if unknown:
        raise InputDataError(
            f"{root}: no video named {', '.join(unknown)} to exclude; the videos are "
            f"{', '.join(sorted(known)[:8])}{' ...' if len(known) > 8 else ''}"
        )
    kept = [v for v in videos if v.name not in set(names)]
    if not kept:
        raise InputDataError(f"{root}: every video is excluded; leave some to train on")
    return kept


class VideoEntry(NamedTuple):
    """One video: its frame and mask files in order."""

    name: str
    frames: list[Path]
    masks: list[Path]


def detect_layout(root: Path) -> tuple[str, Path]:
    """('davis' | 'youtube', the folder holding JPEGImages) for a dataset root."""
    if not root.is_dir():
        raise InputDataError(
            f"{root}: no such dataset folder; give a DAVIS-2017 or YouTube-VOS root"
        )
    if (root / "JPEGImages" / "480p").is_dir():
        return "davis", root
    for base in (root, root / "train", root / "train_all_frames"):
        if (base / "JPEGImages").is_dir() and (base / "Annotations").is_dir():
            return "youtube", base
    raise InputDataError(
        f"{root}: not a DAVIS-2017 (JPEGImages/480p, Annotations/480p) or YouTube-VOS "
        "(JPEGImages/<video>, Annotations/<video>) folder; point --data at the dataset root"
    )


def scan_video_folder(root: Path) -> tuple[str, list[VideoEntry]]:
    """List a DAVIS-2017 or YouTube-VOS folder's videos, checking names and pairing.

    Raises:
        InputDataError: empty folders, a frame without a mask (DAVIS) or a mask without a frame,
            or no usable video; the message names the first bad file or folder.
    """
    layout, base = detect_layout(root)
    if layout == "davis":
        img_root, ann_root = base / "JPEGImages" / "480p", base / "Annotations" / "480p"
        names = _davis_train_names(base)
    else:
        img_root, ann_root = base / "JPEGImages", base / "Annotations"
        names = None
    if not ann_root.is_dir():
        raise InputDataError(f"{ann_root}: missing annotation folder of the {layout} layout")
    video_dirs = sorted(p for p in img_root.iterdir() if p.is_dir())
    if names is not None:
        video_dirs = [p for p in video_dirs if p.name in names]
    if not video_dirs:
        raise InputDataError(f"{img_root}: no video folders; the dataset is empty")
    videos = []
    for vdir in video_dirs:
        frames = _images_in(vdir)
        if not frames:
            raise InputDataError(f"{vdir}: empty video folder; remove it or add its frames")
        mdir = ann_root / vdir.name
        if not mdir.is_dir():
            raise InputDataError(f"{mdir}: missing annotations of video {vdir.name}")
        masks = {p.stem: p for p in mdir.iterdir() if p.suffix.lower() == ".png"}
        if not masks:
            raise InputDataError(f"{mdir}: no .png masks for video {vdir.name}")
        by_stem = {p.stem: p for p in frames}
        orphan = sorted(set(masks) - set(by_stem))
        if orphan:
            raise InputDataError(
                f"{masks[orphan[0]]}: mask without a frame {orphan[0]}.jpg in {vdir}; "
                "remove it or add the frame"
            )
        if layout == "davis":
            missing = [p for p in frames if p.stem not in masks]
            if missing:
                raise InputDataError(
                    f"{missing[0]}: frame without a mask {mdir / (missing[0].stem + '.png')}; "
                    "DAVIS training needs a mask per frame"
                )
        annotated = [p for p in frames if p.stem in masks]  # YouTube-VOS: every 5th frame
        if len(annotated) < 2:
            continue
        videos.append(VideoEntry(vdir.name, annotated, [masks[p.stem] for p in annotated]))
    if not videos:
        raise InputDataError(f"{img_root}: no video has two or more annotated frames to train on")
    return layout, videos


def _davis_train_names(base: Path) -> set[str] | None:
    """Names in ImageSets/2017/train.txt, or None to use every video."""
    lst = base / "ImageSets" / "2017" / "train.txt"
    if not lst.is_file():
        return None
    return {ln.strip() for ln in lst.read_text().splitlines() if ln.strip()}


def scan_image_folder(root: Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs of a static-stage folder.

    Raises:
        InputDataError: missing/empty folder or an image without a mask (named).
    """
    if not root.is_dir():
        raise InputDataError(f"{root}: no such image folder; give a folder of image + mask pairs")
    img_dir, mask_dir = root, root
    if (root / "images").is_dir() and (root / "masks").is_dir():
        img_dir, mask_dir = root / "images", root / "masks"
    masks = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() == ".png"}
    images = [p for p in _images_in(img_dir) if not (img_dir == mask_dir and p.suffix == ".png")]
    if not images:
        raise InputDataError(
            f"{img_dir}: no images (.jpg/.jpeg); the static stage needs name.jpg + name.png pairs"
        )
    missing = [p for p in images if p.stem not in masks]
    if missing:
        raise InputDataError(
            f"{missing[0]}: image without a mask {mask_dir / (missing[0].stem + '.png')}; "
            "add the mask or remove the image"
        )
    return [(p, masks[p.stem]) for p in images]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_frame(path: Path) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB; unreadable or over-large (more than
    ``vosx.tracker_runtime.io.MAX_IMAGE_PIXELS``) files raise ``InputDataError``."""
    from vosx.tracker_runtime.io import open_image

    try:
        with open_image(path, "frame") as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputDataError(f"{path}: unreadable image ({e}); re-encode or remove it") from None


def read_mask(path: Path, binary_255: bool = False) -> np.ndarray:
    """A palette or grey PNG as H x W uint8 labels.

    Args:
        path: The mask file.
        binary_255: Map a 0/255 mask to labels 0/1 (saliency datasets).

    Raises:
        InputDataError: unreadable or over-large file, or a colour (RGB) mask.
    """
    from vosx.tracker_runtime.io import open_image

    try:
        with open_image(path, "mask") as im:
            if im.mode not in ("P", "L", "1", "I;16", "I"):
                raise InputDataError(
                    f"{path}: mask in {im.mode} mode; save masks as palette or grey PNGs whose "
                    "pixel values are the object labels 0..K"
                )
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputDataError(f"{path}: unreadable mask ({e}); re-encode or remove it") from None
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.max(initial=0) > 255:
        raise InputDataError(f"{path}: mask label {int(arr.max())} > 255; use labels 0..255")
    arr = arr.astype(np.uint8)
    if binary_255:
        values = np.unique(arr)
        if values.max(initial=0) > 1 and not (set(values.tolist()) <= {0, 255}):
            return (arr > 127).astype(np.uint8)  # anti-aliased saliency mask
        if 255 in values:
            return (arr == 255).astype(np.uint8)
    return arr


def _check_same_size(fpath: Path, frame: np.ndarray, mpath: Path, mask: np.ndarray) -> None:
    if frame.shape[:2] != mask.shape:
        raise InputDataError(
            f"{mpath}: mask is {mask.shape[0]}x{mask.shape[1]} but frame {fpath.name} is "
            f"{frame.shape[0]}x{frame.shape[1]}; masks must match their frames"
        )


# --------------------------------------------------------------------------- augmentation


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
    # Sequence-level crop box (in input pixels), as torchvision's RandomResizedCrop.
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
    flip = -1.0 if rng.uniform() < cfg.flip else 1.0
    grey = rng.uniform() < cfg.grayscale
    thetas = []
    for _ in range(t_len):
        ang = math.radians(rng.uniform(-cfg.degrees, cfg.degrees))
        sh = math.radians(rng.uniform(-cfg.shear, cfg.shear))
        sc = rng.uniform(*cfg.scale)
        rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
        a = rot @ np.array([[1.0, math.tan(sh)], [0.0, 1.0]]) / sc
        # input px offset from crop centre = a @ (out normalised * crop half-size)
        m = np.diag([2.0 / in_w, 2.0 / in_h]) @ a @ np.diag([flip * cw / 2, ch / 2])
        tr = np.array([2 * cx / in_w - 1, 2 * cy / in_h - 1])
        thetas.append(np.concatenate([m, tr[:, None]], 1))
    theta = torch.from_numpy(np.stack(thetas)).float()  # T x 2 x 3
    grid = F.affine_grid(theta, [t_len, 1, out_h, out_w], align_corners=False)
    img = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float() / 255.0  # T x 3 x H x W
    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    msk = torch.from_numpy(clip.masks)[:, None].float()  # T x 1 x H x W
    msk = F.grid_sample(msk, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    # Per-frame colour jitter (brightness, contrast, saturation), then optional greyscale.
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
    return img, msk[:, 0].round().long()


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
    lut = torch.zeros(256, dtype=torch.long)
    for k, i in enumerate(present):
        lut[i] = k + 1
    labels = lut[masks.clamp(0, 255)]
    valid = torch.zeros(max_objects, dtype=torch.bool)
    valid[: len(present)] = True
    return labels, valid


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


def make_source(
    spec: str,
    stage: str,
    size: tuple[int, int],
    zoom: tuple[float, float] = (1.0, 1.0),
    objects: tuple[int, int] = (1, 3),
    max_skip: int = 5,
    exclude: tuple[str, ...] = (),
    copy_paste: float = 0.0,
) -> ClipSource:
    """The source for a ``--data`` / ``--static-data`` value: ``synthetic`` or a folder.

    Args:
        spec: ``"synthetic"`` or a folder path.
        stage: ``"static"`` (an image + mask folder, or a video folder whose annotated frames
            are the pairs) or ``"video"`` (DAVIS / YouTube-VOS folder).
        size: Crop size, for the synthetic generator.
        zoom: Synthetic generation size range relative to ``size``.
        objects: Synthetic objects per clip range.
        max_skip: Largest frame gap for video folders.
        exclude: Videos of a folder never drawn (held out).
        copy_paste: Probability of pasting an object of another clip (``CopyPasteSource``).
    """
    source: ClipSource
    if spec == "synthetic":
        cls = SyntheticStaticSource if stage == "static" else SyntheticVideoSource
        source = cls(size=size, objects=objects, zoom=zoom)
    elif stage == "static" and not _is_video_folder(Path(spec)):
        source = ImageFolderSource(spec)
    else:
        source = VideoFolderSource(spec, max_skip=max_skip, exclude=exclude)
        if stage == "static":
            source = VideoFrameStaticSource(source)
    return CopyPasteSource(source, copy_paste) if copy_paste > 0 else source


def _is_video_folder(root: Path) -> bool:
    try:
        detect_layout(root)
    except InputDataError:
        return False
    return True
