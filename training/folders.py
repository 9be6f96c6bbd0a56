"""Training data folders: DAVIS-2017 / YouTube-VOS video folders and static image + mask folders.

``scan_video_folder`` and ``scan_image_folder`` list a folder's frames and masks and check their
pairing before training starts; ``read_mask`` reads one mask. Frames and masks are read with the
runtime's readers (``vosx.tracker_runtime.io.read_image`` and ``read_labels``), so training
accepts exactly the files ``vosx segment`` and ``vosx eval`` accept (EXIF orientation, 16-bit
grey frames, palette / grey / DAVIS-palette RGB masks). Every problem raises ``InputDataError``
naming the first bad file or folder.

Shapes: frames H x W x 3 uint8 RGB; masks H x W uint8 labels.
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from vosx.errors import InputDataError
from vosx.tracker_runtime.io import image_files, read_labels


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


def is_video_folder(root: Path) -> bool:
    """Whether ``root`` has a DAVIS-2017 or YouTube-VOS layout (``detect_layout``)."""
    try:
        detect_layout(root)
    except InputDataError:
        return False
    return True


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
    videos = [_scan_video(vdir, ann_root / vdir.name, layout) for vdir in video_dirs]
    videos = [v for v in videos if len(v.frames) >= 2]
    if not videos:
        raise InputDataError(f"{img_root}: no video has two or more annotated frames to train on")
    return layout, videos


def _scan_video(vdir: Path, mdir: Path, layout: str) -> VideoEntry:
    """One video's annotated frames and their masks (``mdir``), pairing checked."""
    frames = image_files(vdir)
    if not frames:
        raise InputDataError(f"{vdir}: empty video folder; remove it or add its frames")
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
    return VideoEntry(vdir.name, annotated, [masks[p.stem] for p in annotated])


def _davis_train_names(base: Path) -> set[str] | None:
    """Names in ImageSets/2017/train.txt, or None to use every video."""
    lst = base / "ImageSets" / "2017" / "train.txt"
    if not lst.is_file():
        return None
    return {ln.strip() for ln in lst.read_text().splitlines() if ln.strip()}


def exclude_videos(
    root: Path, videos: list[VideoEntry], names: tuple[str, ...]
) -> list[VideoEntry]:
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
    images = [p for p in image_files(img_dir) if not (img_dir == mask_dir and p.suffix == ".png")]
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


def read_mask(path: Path, binary_255: bool = False) -> np.ndarray:
    """A mask file as H x W uint8 labels (``vosx.tracker_runtime.io.read_labels``).

    Args:
        path: The mask file.
        binary_255: Map a 0/255 mask to labels 0/1 (saliency datasets; an anti-aliased one with
            other values is thresholded at 128).

    Raises:
        InputDataError: as ``read_labels``: an unreadable or over-large file, or pixel values
            that are not labels.
    """
    labels = read_labels(path)
    if binary_255:
        values = np.unique(labels)
        if values.max(initial=0) > 1 and not (set(values.tolist()) <= {0, 255}):
            return (labels > 127).astype(np.uint8)  # anti-aliased saliency mask
        if 255 in values:
            return (labels == 255).astype(np.uint8)
    return labels


def check_same_size(fpath: Path, frame: np.ndarray, mpath: Path, mask: np.ndarray) -> None:
    """Refuse a mask whose size is not its frame's.

    Raises:
        InputDataError: naming the mask, both sizes and the frame.
    """
    if frame.shape[:2] != mask.shape:
        raise InputDataError(
            f"{mpath}: mask is {mask.shape[0]}x{mask.shape[1]} but frame {fpath.name} is "
            f"{frame.shape[0]}x{frame.shape[1]}; masks must match their frames"
        )
