"""Where raw training clips come from: the synthetic generator, video folders, image folders.

A ``ClipSource`` draws a raw clip of T frames from an RNG; ``make_source`` picks the source of a
``--data`` / ``--static-data`` value and stage. Video stage: ``SyntheticVideoSource`` or
``VideoFolderSource`` (DAVIS-2017 / YouTube-VOS). Static stage (STCN): one image + mask deformed
into a pseudo-video, from ``SyntheticStaticSource``, ``ImageFolderSource`` or
``VideoFrameStaticSource``. ``CopyPasteSource`` wraps any of them to make multi-object clips.

Shapes: a raw clip is a ``SyntheticClip``: frames T x H x W x 3 uint8 RGB, masks T x H x W uint8
labels (0 = background).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from vosx.errors import InputDataError
from vosx.tracker_runtime.io import VOID_LABEL, read_image
from vosx.training.folders import (
    VideoEntry,
    check_same_size,
    exclude_videos,
    is_video_folder,
    read_mask,
    scan_image_folder,
    scan_video_folder,
)
from vosx.training.synthetic import SyntheticClip, deform_to_clip, make_clip, make_static_image

WINDOW_MARGIN = 1.25
"""Rendered window of a zoomed synthetic scene, relative to the crop (room for the crop jitter)."""


class ClipSource(Protocol):
    """Something that draws a raw clip of ``num_frames`` frames from an RNG."""

    def draw(self, rng: np.random.Generator, num_frames: int) -> SyntheticClip: ...


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


def _draw_scene(
    rng: np.random.Generator,
    size: tuple[int, int],
    objects: tuple[int, int],
    zoom: tuple[float, float],
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
        image = read_image(img_path, "frame")
        mask = read_mask(mask_path, binary_255=True)
        check_same_size(img_path, image, mask_path, mask)
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

    def read(self, video: VideoEntry, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``i`` of ``video`` and its mask (void as background), checked."""
        frame = read_image(video.frames[i], "frame")
        mask = read_mask(video.masks[i])
        if self.layout == "davis":
            mask[mask == VOID_LABEL] = 0  # void pixels count as background (DAVIS rule)
        check_same_size(video.frames[i], frame, video.masks[i], mask)
        if self.layout == "davis":
            self._check_labels(video, video.masks[i], mask)
        return frame, mask

    def _check_labels(self, video: VideoEntry, path: Path, mask: np.ndarray) -> None:
        first = self._first_labels.get(video.masks[0])
        if first is None:
            first = set(np.unique(read_mask(video.masks[0])).tolist()) - {VOID_LABEL}
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
    if not ids or new_label > 255:  # labels are uint8
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
        top = int(round(cy + vy * ti - ph / 2))
        left = int(round(cx + vx * ti - pw / 2))
        patch = donor.frames[ti, y0:y1, x0:x1], obj[ti, y0:y1, x0:x1]
        _paste_frame(frames[ti], masks[ti], patch, (top, left, ph, pw), under, new_label)
    return SyntheticClip(frames=frames, masks=masks)


def _paste_frame(
    frame: np.ndarray,
    mask: np.ndarray,
    patch: tuple[np.ndarray, np.ndarray],
    box: tuple[int, int, int, int],
    under: bool,
    label: int,
) -> None:
    """Paste one frame's object cut-out into ``frame`` and ``mask`` (in place).

    Args:
        frame: H x W x 3 uint8 target frame.
        mask: H x W uint8 target labels.
        patch: The donor's pixels h' x w' x 3 uint8 and object h' x w' bool inside its box.
        box: (top, left, height, width) of the pasted box in the target (may cross its edges).
        under: Paste behind the target's objects.
        label: The pasted object's label.
    """
    h, w = mask.shape
    top, left, ph, pw = box
    pixels, obj = patch
    resized = Image.fromarray(pixels).resize((pw, ph), Image.BILINEAR)
    alpha = Image.fromarray(obj.astype(np.float32)).resize((pw, ph), Image.BILINEAR)
    dy0, dx0 = max(0, top), max(0, left)
    dy1, dx1 = min(h, top + ph), min(w, left + pw)
    if dy0 >= dy1 or dx0 >= dx1:
        return
    sl = (slice(dy0 - top, dy1 - top), slice(dx0 - left, dx1 - left))
    a = np.asarray(alpha, np.float32)[sl]  # h' x w' in [0, 1]
    if under:
        a = a * (mask[dy0:dy1, dx0:dx1] == 0)
    region = frame[dy0:dy1, dx0:dx1].astype(np.float32)
    src = np.asarray(resized, np.float32)[sl]
    frame[dy0:dy1, dx0:dx1] = (region + a[..., None] * (src - region)).round().astype(np.uint8)
    mask[dy0:dy1, dx0:dx1][a >= 0.5] = label


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
    elif stage == "static" and not is_video_folder(Path(spec)):
        source = ImageFolderSource(spec)
    else:
        source = VideoFolderSource(spec, max_skip=max_skip, exclude=exclude)
        if stage == "static":
            source = VideoFrameStaticSource(source)
    return CopyPasteSource(source, copy_paste) if copy_paste > 0 else source
