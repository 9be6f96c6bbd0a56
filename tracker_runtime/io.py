"""Reading frames and label PNGs, writing DAVIS-palette PNGs (NumPy + Pillow).

Shapes: frames H x W x 3 uint8 RGB; label maps H x W uint8 (0 = background, 1..K objects; the DAVIS
annotation files may also hold 255 = void, which readers of ground truth map to 0).

Inputs are either a folder of ``.jpg``/``.jpeg``/``.png``/``.bmp`` images, sorted by file name, or
a video file (``.mp4``, ``.mov``, ``.avi``, ``.mkv``, ``.webm``), decoded with the ffmpeg binary
shipped by the ``imageio-ffmpeg`` wheel (frames named ``00000``, ``00001``, ...). Overlay videos
are ``vosx.tracker_runtime.overlay``'s. Every problem with user data raises ``InputDataError``
with one line: the file, what is wrong, the fix.

Images are read as a viewer shows them: the EXIF orientation is applied (frames and masks alike,
so a mask drawn on the rotated view fits its frames), and 16-bit greyscale frames are scaled to
8 bits (``to_rgb``).

Training reads its datasets with these readers too (``vosx.training.folders``), so every part of
the program accepts the same files.

Limits: an image (or video frame) of more than ``MAX_IMAGE_PIXELS`` pixels is refused (Pillow's
decompression-bomb guard, set here for the whole program), and a first-frame mask with more than
``vosx.limits.DEFAULT_MASK_OBJECTS`` objects is refused as implausible (a photo given as a mask)
unless raised.
"""

import stat
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vosx.errors import InputDataError
from vosx.limits import DEFAULT_MASK_OBJECTS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # frames and training images
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")
VOID_LABEL = 255
MAX_IMAGE_PIXELS = 64_000_000
"""Largest image or video frame read, in pixels (e.g. 8000 x 8000); larger ones are refused."""

Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # the one place the program sets Pillow's bomb limit


def davis_palette() -> np.ndarray:
    """The DAVIS (PASCAL VOC) palette, 256 x 3 uint8: 0 black, 1 (128, 0, 0), 2 (0, 128, 0)..."""
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


PALETTE = davis_palette()


# ---------------------------------------------------------------- frames


def need_ffmpeg():
    """The ``imageio_ffmpeg`` module (the ``vosx[video]`` extra), or one clear error without it."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise InputDataError(
            "reading or writing video needs the video extra (imageio-ffmpeg), which is not "
            "installed; run pip install 'vosx[video]' or use a folder of images / a .gif"
        ) from None
    return imageio_ffmpeg


def open_image(path: Path, what: str = "image") -> Image.Image:
    """``Image.open`` with Pillow's decompression-bomb guard turned into one clear error.

    Use as ``with open_image(path) as im: ...``. Images of more than ``MAX_IMAGE_PIXELS`` pixels
    are refused before they are decoded; only regular files are opened (a FIFO would block).

    Args:
        path: The image file.
        what: What the file is, for the message ("image", "mask", "frame", ...).

    Raises:
        InputDataError: not a regular file, or an image over the pixel limit.
        UnidentifiedImageError, OSError, ValueError: as ``Image.open`` (callers name the file).
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        mode = None  # missing: let Image.open raise its FileNotFoundError
    if mode is not None and not stat.S_ISREG(mode):
        raise InputDataError(
            f"{path}: not a regular file (a folder, pipe or device); give an image file"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputDataError(
            f"{path}: the {what} has more than {MAX_IMAGE_PIXELS:,} pixels, the limit "
            "(refused as a possible decompression bomb); downscale it (e.g. to 1920x1080)"
        ) from None


def image_files(folder: Path) -> list[Path]:
    """The ``IMAGE_SUFFIXES`` files of an existing folder sorted by name (no check that there are
    any)."""
    return sorted(
        p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def list_images(folder: Path) -> list[Path]:
    """The image files of a folder, sorted by name.

    Raises:
        InputDataError: the folder does not exist or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputDataError(f"{folder}: no such folder; give a folder of frames or a video file")
    files = image_files(folder)
    if not files:
        raise InputDataError(
            f"{folder}: the folder has no {'/'.join(IMAGE_SUFFIXES)} image; "
            "put the video's frames there or give a video file"
        )
    return files


_WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # 16-bit (and 32-bit integer) grey


def to_rgb(im: Image.Image) -> np.ndarray:
    """An opened image as H x W x 3 uint8 RGB, as a viewer shows it.

    The EXIF orientation is applied; 16-bit greyscale (Pillow's ``I;16`` / ``I``) is scaled from
    0..65535 to 0..255 (Pillow's ``convert`` would clip it to 0 / 255).
    """
    im = ImageOps.exif_transpose(im)
    if im.mode in _WIDE_GREY:
        grey = np.asarray(im).astype(np.float64)
        grey = np.rint(np.clip(grey, 0, 65535) / 257.0).astype(np.uint8)  # H x W
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"))


def read_image(path: Path, what: str = "image") -> np.ndarray:
    """One image file as H x W x 3 uint8 RGB (``to_rgb``: EXIF orientation, 16-bit grey).

    Args:
        path: The image file.
        what: What the file is, for the messages ("image", "frame", ...).

    Raises:
        InputDataError: the file cannot be read as an image, or is over the pixel limit.
    """
    try:
        with open_image(path, what) as im:
            return to_rgb(im)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputDataError(
            f"{path}: cannot read the {what} ({type(e).__name__}: {e}); replace or remove the file"
        ) from None


class Frames:
    """The frames of a video given as a folder of images or a video file.

    Iterating yields H x W x 3 uint8 RGB frames in order; every frame must have the size of the
    first. ``names`` are the output names (the image stems, or 00000, 00001, ... for a video).

    Args:
        source: a folder of images or a video file.
        exclude: files of the folder that are not frames (the first-frame mask stored with them).

    Raises:
        InputDataError: missing/empty folder, unreadable file, frames of mixed sizes.
    """

    def __init__(self, source: Path, exclude: Iterable[Path] = ()):
        self.source = Path(source)
        if self.source.suffix.lower() in VIDEO_SUFFIXES and not self.source.is_dir():
            if not self.source.exists():
                raise InputDataError(
                    f"{self.source}: no such video file; give an existing video or a folder of "
                    "frames"
                )
            if not self.source.is_file():
                raise InputDataError(
                    f"{self.source}: not a regular file (a pipe or device); give a video file"
                )
        self.is_video = self.source.is_file() and self.source.suffix.lower() in VIDEO_SUFFIXES
        if self.is_video:
            self._files: list[Path] = []
            self._meta, count = self._probe_video()
            self.size = (self._meta["size"][1], self._meta["size"][0])  # (H, W)
            self.fps = float(self._meta.get("fps") or 25.0)
            self.names = [f"{i:05d}" for i in range(count)]
        else:
            if self.source.is_file():
                raise InputDataError(
                    f"{self.source}: not a frames folder or a video "
                    f"({'/'.join(VIDEO_SUFFIXES)}); give a folder of images or a video file"
                )
            skip = {Path(p).resolve() for p in exclude}
            self._files = [p for p in list_images(self.source) if p.resolve() not in skip]
            if not self._files:
                raise InputDataError(
                    f"{self.source}: the folder holds no image besides the mask; put the video's "
                    "frames there or give a video file"
                )
            first = read_image(self._files[0])
            self.size = first.shape[:2]
            self.fps = 25.0
            self.names = [p.stem for p in self._files]
            if len(set(self.names)) != len(self.names):
                raise InputDataError(
                    f"{self.source}: two frames share a name stem (e.g. a.jpg and a.png); "
                    "keep one image per frame name"
                )

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.is_video:
            yield from self._iter_video()
            return
        h, w = self.size
        for path in self._files:
            frame = read_image(path)
            if frame.shape[:2] != (h, w):
                raise InputDataError(
                    f"{path}: frame is {frame.shape[0]}x{frame.shape[1]} but {self._files[0].name} "
                    f"is {h}x{w}; all frames of a video must have one size"
                )
            yield frame

    def first(self) -> np.ndarray:
        """The first frame."""
        return next(iter(self))

    def _probe_video(self) -> tuple[dict, int]:
        ffmpeg = need_ffmpeg()
        try:
            count, _ = ffmpeg.count_frames_and_secs(str(self.source))
            gen = ffmpeg.read_frames(str(self.source))
            meta = next(gen)
            gen.close()
        except (RuntimeError, OSError, StopIteration) as e:
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise InputDataError(
                f"{self.source}: cannot decode the video ({msg}); re-encode it (e.g. H.264 MP4) "
                "or give a folder of frames"
            ) from None
        if count < 1:
            raise InputDataError(f"{self.source}: the video has no frame; give another video")
        w, h = meta["size"]
        if w * h > MAX_IMAGE_PIXELS:
            raise InputDataError(
                f"{self.source}: frames of {w}x{h} have more than {MAX_IMAGE_PIXELS:,} pixels, "
                "the limit; downscale the video (e.g. to 1920x1080)"
            )
        return meta, int(count)

    def _iter_video(self) -> Iterator[np.ndarray]:
        ffmpeg = need_ffmpeg()
        h, w = self.size
        gen = ffmpeg.read_frames(str(self.source), pix_fmt="rgb24")
        try:
            next(gen)  # meta
            for i, raw in enumerate(gen):
                if i >= len(self.names):
                    break
                yield np.frombuffer(raw, np.uint8).reshape(h, w, 3)
        except RuntimeError as e:
            raise InputDataError(
                f"{self.source}: decoding failed ({str(e).strip().splitlines()[-1]}); "
                "re-encode the video"
            ) from None
        finally:
            gen.close()


# ---------------------------------------------------------------- label PNGs


def read_labels(path: Path) -> np.ndarray:
    """An indexed (palette) or greyscale PNG of object labels as H x W uint8 (values kept).

    RGB(A) files are accepted when every colour is a DAVIS palette colour.

    Raises:
        InputDataError: unreadable file, or colours that are not labels.
    """
    path = Path(path)
    if not path.is_file():
        what = "no such mask file" if not path.exists() else "not a regular file"
        raise InputDataError(f"{path}: {what}; give the first frame's label PNG")
    try:
        with open_image(path, "mask") as im:
            im.load()
            im = ImageOps.exif_transpose(im)  # the orientation its frames are read in
            mode = im.mode
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputDataError(
            f"{path}: cannot read the mask ({type(e).__name__}: {e}); save it as an indexed PNG"
        ) from None
    if mode in ("P", "L"):
        return arr.astype(np.uint8)
    if mode in ("1",):
        return arr.astype(np.uint8)
    if mode in ("I", "I;16", "I;16B") and arr.max() <= 255 and arr.min() >= 0:
        return arr.astype(np.uint8)
    if mode in ("RGB", "RGBA"):
        rgb = arr[..., :3].astype(np.int64)
        code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]  # H x W
        pal = PALETTE.astype(np.int64)
        pal_code = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]  # 256
        lut = {int(c): i for i, c in reversed(list(enumerate(pal_code)))}
        uniq, inv = np.unique(code, return_inverse=True)
        missing = [int(u) for u in uniq if int(u) not in lut]
        if missing:
            r, g, b = missing[0] >> 16, (missing[0] >> 8) & 255, missing[0] & 255
            raise InputDataError(
                f"{path}: colour ({r}, {g}, {b}) is not a DAVIS palette colour; "
                "save the mask as an indexed (palette) PNG with 0 = background"
            )
        return np.asarray([lut[int(u)] for u in uniq], np.uint8)[inv.reshape(code.shape)]
    raise InputDataError(
        f"{path}: PNG mode {mode} is not a label map; save it as an indexed (palette) PNG"
    )


def read_first_mask(
    path: Path, frame_size: tuple[int, int], max_objects: int = DEFAULT_MASK_OBJECTS
) -> np.ndarray:
    """The first-frame object labels, checked against the frames (void 255 becomes background).

    Args:
        path: The label PNG of the first frame.
        frame_size: (H, W) of the frames.
        max_objects: More distinct object labels than this are refused as implausible.

    Raises:
        InputDataError: unreadable, a size different from the frames, no object, or more than
            ``max_objects`` objects (e.g. a photo given as the mask).
    """
    labels = read_labels(path)
    if labels.shape != tuple(frame_size):
        raise InputDataError(
            f"{path}: mask is {labels.shape[0]}x{labels.shape[1]} but the frames are "
            f"{frame_size[0]}x{frame_size[1]}; give the mask of the first frame at the frames' size"
        )
    labels = np.where(labels == VOID_LABEL, 0, labels).astype(np.uint8)
    if not labels.any():
        raise InputDataError(
            f"{path}: the mask has no object (every pixel is 0 = background); "
            "label each object with 1, 2, ... in an indexed PNG"
        )
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if len(ids) > max_objects:
        photo = len(ids) >= 64 and int(ids[-1]) - int(ids[0]) >= 128
        kind = (
            "it looks like a photo or greyscale image, not a label map"
            if photo
            else "more than are plausible"
        )
        raise InputDataError(
            f"{path}: the mask has {len(ids)} object labels ({int(ids[0])}..{int(ids[-1])}), "
            f"over the limit of {max_objects}: {kind}; give an indexed PNG with 0 = background "
            "and 1..K per object (--max-objects N raises the limit)"
        )
    return labels


def write_labels(path: Path, labels: np.ndarray) -> None:
    """Write H x W uint8 labels as an indexed PNG with the DAVIS palette."""
    im = Image.fromarray(np.ascontiguousarray(labels, np.uint8), mode="P")
    im.putpalette(PALETTE.tobytes())
    im.save(path, format="PNG", optimize=False)


def list_label_pngs(folder: Path) -> list[Path]:
    """The ``.png`` files of a folder sorted by name (no check that there are any)."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() == ".png")


def read_label_sequence(folder: Path) -> np.ndarray:
    """All label PNGs of a sequence folder as T x H x W uint8 (void 255 becomes 0).

    Raises:
        InputDataError: no PNG, unreadable PNG, PNGs of mixed sizes.
    """
    files = list_label_pngs(folder)
    if not files:
        raise InputDataError(f"{folder}: no .png label file; give a folder of indexed PNGs")
    first = read_labels(files[0])
    out = np.empty((len(files), *first.shape), np.uint8)
    for i, path in enumerate(files):
        lab = first if i == 0 else read_labels(path)
        if lab.shape != first.shape:
            raise InputDataError(
                f"{path}: mask is {lab.shape[0]}x{lab.shape[1]} but {files[0].name} is "
                f"{first.shape[0]}x{first.shape[1]}; all masks of a sequence must have one size"
            )
        out[i] = lab
    out[out == VOID_LABEL] = 0
    return out


def find_sequences(root: Path) -> list[Path]:
    """Sequence folders of label PNGs under a DAVIS root, a folder of sequences, or one sequence.

    Raises:
        InputDataError: the folder is missing or holds no sequence.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputDataError(f"{root}: no such folder; give a folder of label PNGs")
    davis = root / "Annotations" / "480p"
    base = davis if davis.is_dir() else root
    if list_label_pngs(base):
        return [base]
    seqs = sorted(p for p in base.iterdir() if p.is_dir() and list_label_pngs(p))
    if not seqs:
        raise InputDataError(
            f"{root}: no sequence of .png label files (neither {root.name}/*.png nor "
            f"{root.name}/<sequence>/*.png); give a DAVIS-layout folder"
        )
    return seqs
