"""Trick 3 prediction filtering (paper §3.4, Algorithm 1): constant-velocity and parametric.

Shapes: ``prob`` is an H x W float map in [0, 1] for one object; boxes are ``Box(x, y, w, h)``
(see ``boxes.py``); motions are (dx, dy, dw, dh).

One tracker per object, each with ``reset()`` and ``step(prob) -> prob``:

* The box of a map is the inclusive pixel bounds of ``prob > 0.5``; the motion T is the difference
  of two consecutive boxes.
* Frames only initialise boxes (the map passes through unfiltered) until the tracker has the boxes
  of two consecutive frames; the first two frames of a video are such frames.
* From then on the predicted box is the previous box plus T (CV) or plus the MLP's prediction from
  T (PT); it is grown by ``margin`` times its width and height on each side, rounded outward and
  clipped to the frame; the output is ``prob`` times the 0/1 attention map of that window, and the
  new box is taken from the filtered map. With ``margin=0`` this is exactly Algorithm 1.
* When the box of a map is missing (no pixel above 0.5; for a filtered frame that is the filtered
  map, which is still what that frame returns), the tracker forgets its boxes and passes maps
  through unfiltered until it has two consecutive boxes again.

Speed: the filtered map is written into a buffer owned by the tracker, touching only the previous
and the current window, and the box is searched only inside the window. ``step`` therefore
returns either ``prob`` itself (unfiltered frames, or a window covering the whole frame) or a
read-only view of that buffer, which the next ``step`` overwrites: copy it to keep it.

PT normalisation: the MLP sees ``u = T / (W, H, W, H) / motion_scale`` (frame-relative motion,
divided by the per-component scale stored with the weights, the training set's standard
deviation) and predicts ``v``, the next motion in the same units: ``T' = v * motion_scale *
(W, H, W, H)`` pixels.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vosx.errors import CheckpointError, ConfigError
from vosx.tracker_runtime.boxes import Box, box_in_window, box_of, motion, predicted_window

# Chosen by measurement with the bundled checkpoint on the DAVIS 2016 val dev split (README, The
# bundled checkpoint): PT 0.6 0.8003 J&F vs 0.3 0.7947; CV 0.4 0.7534 vs 0.8 0.7545 (a tie, so the
# synthetic-clip choice of benchmarks/tracker_margin.py, 0.4, stays).
DEFAULT_MARGIN_CV = 0.4
DEFAULT_MARGIN_PT = 0.6
PT_FORMAT = "vosx-pt-tracker"
PT_VERSION = 1
NUM_LAYERS = 5
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


class BoxTracker:
    """Shared Trick 3 machinery; subclasses say how the next motion follows from the last one.

    Args:
        margin: growth of the predicted box per side, as a fraction of its width and height.
    """

    def __init__(self, margin: float = DEFAULT_MARGIN_CV):
        if not (isinstance(margin, int | float) and math.isfinite(margin) and margin >= 0):
            raise ConfigError(
                f"tracker margin {margin!r}: must be a finite number >= 0; use e.g. 0.1"
            )
        self.margin = float(margin)
        self._buf: np.ndarray | None = None  # H x W, zero outside self._dirty
        self._view: np.ndarray | None = None  # read-only view of self._buf
        self._dirty = (0, 0, 0, 0)
        self.reset()

    def reset(self) -> None:
        """Forget all boxes (start of a new video)."""
        self._prev: Box | None = None  # box of frame t-2
        self._last: Box | None = None  # box of frame t-1
        self.window: tuple[int, int, int, int] | None = None  # last attention window, if filtered

    @property
    def box(self) -> Box | None:
        """The box of the latest output map (None when it had no pixel above 0.5)."""
        return self._last

    def predict_motion(self, t: tuple[int, int, int, int], height: int, width: int) -> tuple:
        """The motion to apply to the last box, given the motion T between the last two boxes."""
        raise NotImplementedError

    def step(self, prob: np.ndarray) -> np.ndarray:
        """Filter one frame's map.

        Args:
            prob: H x W float map in [0, 1] for this tracker's object.

        Returns:
            The filtered H x W map: ``prob`` itself when unfiltered, else a read-only buffer
            that the next call overwrites.
        """
        if prob.ndim != 2:
            raise ValueError(f"tracker step expects an H x W map, got shape {prob.shape}")
        prev, last = self._prev, self._last
        if prev is None or last is None:
            self.window = None
            self._prev, self._last = last, box_of(prob)
            return prob
        height, width = prob.shape
        d = self.predict_motion(motion(prev, last), height, width)
        pred = (last.x + d[0], last.y + d[1], last.w + d[2], last.h + d[3])
        win = predicted_window(pred, self.margin, height, width)
        self.window = win
        self._prev, self._last = last, box_in_window(prob, win)
        if win == (0, height, 0, width):
            return prob
        return self._filtered(prob, win)

    def _filtered(self, prob: np.ndarray, win: tuple[int, int, int, int]) -> np.ndarray:
        """``prob`` times the window's 0/1 map, written into the reused buffer."""
        if self._buf is None or self._buf.shape != prob.shape or self._buf.dtype != prob.dtype:
            self._buf = np.zeros_like(prob)  # H x W
            self._view = self._buf.view()
            self._view.flags.writeable = False
        else:
            for a0, a1, b0, b1 in _difference(self._dirty, win):
                self._buf[a0:a1, b0:b1] = 0
        y0, y1, x0, x1 = win
        self._buf[y0:y1, x0:x1] = prob[y0:y1, x0:x1]
        self._dirty = win
        return self._view


def _difference(old: tuple, new: tuple) -> list[tuple[int, int, int, int]]:
    """Rectangles (y0, y1, x0, x1) covering the window ``old`` minus the window ``new``."""
    a0, a1, b0, b1 = old
    y0, y1, x0, x1 = new
    if a1 <= a0 or b1 <= b0:
        return []
    if y1 <= a0 or y0 >= a1 or x1 <= b0 or x0 >= b1:  # disjoint
        return [old]
    out = []
    if a0 < y0:
        out.append((a0, y0, b0, b1))  # rows above
    if y1 < a1:
        out.append((y1, a1, b0, b1))  # rows below
    m0, m1 = max(a0, y0), min(a1, y1)
    if b0 < x0:
        out.append((m0, m1, b0, x0))  # left part of the shared rows
    if x1 < b1:
        out.append((m0, m1, x1, b1))  # right part
    return out


class ConstantVelocityTracker(BoxTracker):
    """CV: the next motion equals the last one (T' = T).

    Args:
        margin: growth of the predicted box per side, as a fraction of its width and height.
    """

    def __init__(self, margin: float = DEFAULT_MARGIN_CV):
        super().__init__(margin)

    def predict_motion(self, t: tuple[int, int, int, int], height: int, width: int) -> tuple:
        return t


class MotionMLP:
    """The PT network in NumPy: 5 linear layers with exact (erf) GELU between them.

    Computes in float64. Layer i maps ``x @ weights[i] + biases[i]`` (weights stored in x out).

    Args:
        weights: five matrices, (4, hidden), (hidden, hidden) x 3, (hidden, 4).
        biases: five vectors matching the weights' output sizes.
        motion_scale: (4,) per-component scale of frame-relative motions.
    """

    def __init__(self, weights: list[np.ndarray], biases: list[np.ndarray], motion_scale):
        self.weights = [np.asarray(w, np.float64) for w in weights]
        self.biases = [np.asarray(b, np.float64) for b in biases]
        self.motion_scale = np.asarray(motion_scale, np.float64).reshape(4)
        if len(self.weights) != NUM_LAYERS or len(self.biases) != NUM_LAYERS:
            raise ValueError(f"MotionMLP needs {NUM_LAYERS} layers, got {len(self.weights)}")
        n = 4
        for w, b in zip(self.weights, self.biases, strict=True):
            if w.ndim != 2 or w.shape[0] != n or b.shape != (w.shape[1],):
                raise ValueError(f"MotionMLP layer shapes do not chain: {w.shape}, {b.shape}")
            n = w.shape[1]
        if n != 4:
            raise ValueError(f"MotionMLP must output 4 values, got {n}")
        if not np.all(self.motion_scale > 0):
            raise ValueError("MotionMLP motion_scale must be positive")
        self.hidden = self.weights[0].shape[1]

    def forward(self, u: np.ndarray) -> np.ndarray:
        """Normalised motion (..., 4) -> next normalised motion (..., 4), float64."""
        x = np.asarray(u, np.float64)
        last = NUM_LAYERS - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ w + b  # (..., out_i)
            if i < last:
                x = gelu(x)
        return x

    def predict(self, t: tuple[int, int, int, int], height: int, width: int) -> tuple:
        """Pixel motion T of the last two boxes -> predicted pixel motion T' for the next box."""
        size = np.array((width, height, width, height), np.float64)
        u = np.asarray(t, np.float64) / size / self.motion_scale  # (4,)
        return tuple((self.forward(u) * self.motion_scale * size).tolist())

    def save(self, path: Path) -> Path:
        """Write the weights as ``.npz`` (float32 weights, format tag and version)."""
        path = Path(path)
        arrays = {"format": np.array(PT_FORMAT), "version": np.array(PT_VERSION)}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"w{i}"] = w.astype(np.float32)
            arrays[f"b{i}"] = b.astype(np.float32)
        arrays["motion_scale"] = self.motion_scale.astype(np.float32)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: Path) -> "MotionMLP":
        """Read weights written by ``save`` (or ``vosx train-tracker``).

        Raises:
            CheckpointError: the file is missing, not an ``.npz`` of this format, or malformed.
        """
        path = Path(path)
        fix = "train one with `vosx train-tracker` or use the bundled vosx/assets/pt_tracker.npz"
        if not path.is_file():
            raise CheckpointError(f"{path}: no such tracker weights file; {fix}")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable .npz file ({e}); {fix}") from None
        if str(data.get("format", "")) != PT_FORMAT or int(data.get("version", -1)) != PT_VERSION:
            raise CheckpointError(f"{path}: not a {PT_FORMAT} v{PT_VERSION} weights file; {fix}")
        try:
            return cls(
                [data[f"w{i}"] for i in range(NUM_LAYERS)],
                [data[f"b{i}"] for i in range(NUM_LAYERS)],
                data["motion_scale"],
            )
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{path}: malformed tracker weights ({e}); {fix}") from None


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, 0.5 * x * (1 + erf(x / sqrt(2))), as torch's default, in float64."""
    flat = np.asarray(x, np.float64).ravel()
    erf = np.fromiter(map(math.erf, (flat * _INV_SQRT2).tolist()), np.float64, flat.size)
    return (0.5 * flat * (1.0 + erf)).reshape(np.shape(x))


class ParametricTracker(BoxTracker):
    """PT: a 5-layer MLP predicts the next motion from the last one.

    Args:
        mlp: the motion network.
        margin: growth of the predicted box per side, as a fraction of its width and height.
    """

    def __init__(self, mlp: MotionMLP, margin: float = DEFAULT_MARGIN_PT):
        self.mlp = mlp
        super().__init__(margin)

    @classmethod
    def load(cls, path: Path, margin: float = DEFAULT_MARGIN_PT) -> "ParametricTracker":
        """A tracker with the MLP weights from an ``.npz`` file (see ``MotionMLP.load``)."""
        return cls(MotionMLP.load(path), margin)

    def predict_motion(self, t: tuple[int, int, int, int], height: int, width: int) -> tuple:
        return self.mlp.predict(t, height, width)


def bundled_pt_path() -> Path:
    """The PT weights shipped in the package (``vosx/assets/pt_tracker.npz``)."""
    from vosx.paths import PT_TRACKER

    return PT_TRACKER


TrackerFactory = Callable[[], BoxTracker]
"""Makes one tracker per object (``reset()`` / ``step(prob) -> prob``)."""


@dataclass(frozen=True)
class TrackerKind:
    """One Trick 3 variant: the record every layer (CLI, segment, demo, benchmarks) reads.

    Attributes:
        name: The ``--tracker`` value.
        summary: One line for help texts and reports.
        default_margin: The measured default box growth, or None (no box).
        build: ``(pt_path, margin) -> factory``; validates its arguments (and reads any
            weights) once, so errors come before the first frame. None for ``"none"``.
    """

    name: str
    summary: str
    default_margin: float | None
    build: Callable[[Path | None, float], TrackerFactory] | None


def _build_cv(pt_path: Path | None, margin: float) -> TrackerFactory:
    ConstantVelocityTracker(margin)  # validate the margin now, not at the first object
    return lambda: ConstantVelocityTracker(margin)


def _build_pt(pt_path: Path | None, margin: float) -> TrackerFactory:
    mlp = MotionMLP.load(bundled_pt_path() if pt_path is None else pt_path)
    ParametricTracker(mlp, margin)
    return lambda: ParametricTracker(mlp, margin)


TRACKERS: dict[str, TrackerKind] = {
    k.name: k
    for k in (
        TrackerKind("none", "no filtering", None, None),
        TrackerKind("cv", "constant velocity (Algorithm 1, CV)", DEFAULT_MARGIN_CV, _build_cv),
        TrackerKind(
            "pt", "parametric: 5-layer GELU MLP (Algorithm 1, PT)", DEFAULT_MARGIN_PT, _build_pt
        ),
    )
}
"""The tracker registry: a new variant is one ``TrackerKind`` here plus its class."""
TRACKER_KINDS = tuple(TRACKERS)
DEFAULT_TRACKER = "pt"
"""The default of ``vosx segment``: PT won on real training sequences (README, Trick 3)."""


def tracker_factory(
    kind: str, pt_path: Path | None = None, margin: float | None = None
) -> TrackerFactory | None:
    """A zero-argument callable making one tracker per object, or None for ``kind="none"``.

    Args:
        kind: A ``TRACKERS`` name.
        pt_path: PT weights (``.npz``); the bundled ones when None.
        margin: box growth; the variant's measured default when None.

    Raises:
        ConfigError: an unknown kind or a bad margin.
        CheckpointError: unreadable PT weights (read once, here).
    """
    spec = TRACKERS.get(kind)
    if spec is None:
        raise ConfigError(f"tracker {kind!r}: unknown; use one of {', '.join(TRACKER_KINDS)}")
    if spec.build is None:
        return None
    return spec.build(pt_path, spec.default_margin if margin is None else margin)
