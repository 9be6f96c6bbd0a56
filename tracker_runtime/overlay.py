"""Overlay videos: object colours (DAVIS palette) blended over frames, written as GIF (Pillow) or
MP4 (H.264 through ``imageio-ffmpeg``, the ``vosx[video]`` extra).

Shapes: frames H x W x 3 uint8 RGB; label maps H x W uint8 (0 = background, 1..K objects).
"""

from pathlib import Path

import numpy as np
from PIL import Image

from vosx.errors import InputDataError
from vosx.files import PendingFile
from vosx.tracker_runtime.io import PALETTE, need_ffmpeg

OVERLAY_ALPHA = 0.5


def overlay(frame: np.ndarray, labels: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """Blend object colours (DAVIS palette) over a frame: H x W x 3 uint8 -> H x W x 3 uint8."""
    colours = PALETTE[labels].astype(np.float32)  # H x W x 3
    fg = (labels > 0)[..., None]
    blended = frame.astype(np.float32) * (1 - alpha) + colours * alpha
    return np.where(fg, np.rint(blended), frame).astype(np.uint8)


class OverlayWriter:
    """Writes an overlay video frame by frame to ``.gif`` (Pillow) or ``.mp4`` (imageio-ffmpeg).

    The file appears only on ``close()`` (written to a temporary name, then renamed); ``abort()``
    removes the partial file. Use as a context manager to get that on exit.

    Args:
        path: output ``.gif`` or ``.mp4`` file.
        fps: frames per second.
        overwrite: replace an existing file; False: ``close()`` refuses (``OutputError``) when
            the file appeared since the output was checked.
    """

    def __init__(self, path: Path, fps: float = 25.0, overwrite: bool = True):
        self.path = Path(path)
        self.fps = float(fps)
        suffix = self.path.suffix.lower()
        if suffix not in (".gif", ".mp4"):
            raise InputDataError(
                f"{self.path}: overlay must be a .gif or .mp4 file; change the file extension"
            )
        if not self.path.parent.is_dir():
            raise InputDataError(f"{self.path}: the folder does not exist; create it first")
        # ffmpeg picks the format by the suffix
        self._pending = PendingFile(self.path, suffix=suffix, overwrite=overwrite)
        self._tmp = self._pending.tmp
        self._gif: list[Image.Image] = []
        self._mp4 = None
        self._size: tuple[int, int] | None = None

    def add(self, frame: np.ndarray, labels: np.ndarray) -> None:
        """Append one frame (H x W x 3 uint8) with its labels (H x W uint8)."""
        img = overlay(frame, labels)
        if self.path.suffix.lower() == ".gif":
            self._gif.append(Image.fromarray(img).quantize(colors=255, dither=Image.Dither.NONE))
            return
        h, w = img.shape[:2]
        img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # yuv420p: even sizes
        if self._mp4 is None:
            ffmpeg = need_ffmpeg()
            self._size = (img.shape[1], img.shape[0])
            self._mp4 = ffmpeg.write_frames(
                str(self._tmp),
                self._size,
                fps=self.fps,
                codec="libx264",
                pix_fmt_out="yuv420p",
                macro_block_size=1,
            )
            self._mp4.send(None)
        self._mp4.send(np.ascontiguousarray(img))

    def close(self) -> Path:
        """Finish the file and move it into place; returns its path."""
        if self.path.suffix.lower() == ".gif":
            if not self._gif:
                raise InputDataError(f"{self.path}: no frame to write")
            self._gif[0].save(
                self._tmp,
                format="GIF",
                save_all=True,
                append_images=self._gif[1:],
                duration=max(int(round(1000 / self.fps)), 20),
                loop=0,
            )
            self._gif = []
        else:
            if self._mp4 is None:
                raise InputDataError(f"{self.path}: no frame to write")
            self._mp4.close()
            self._mp4 = None
        return self._pending.commit()

    def abort(self) -> None:
        """Drop the partial output."""
        if self._mp4 is not None:
            try:
                self._mp4.close()
            except Exception:  # noqa: BLE001 - best effort on an error path
                pass
            self._mp4 = None
        self._gif = []
        self._pending.discard()

    def __enter__(self) -> "OverlayWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
