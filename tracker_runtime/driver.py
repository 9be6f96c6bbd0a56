"""The two-frame memory driver: runs the three graphs frame by frame as an app would.

Shapes: frames H x W x 3 uint8 RGB; label maps H x W uint8 (0 = background); probabilities
K x Hp x Wp float32 over the padded network input (Hp x Wp); memory as the manifest lists it.

Per frame t (the manifest's bindings): key_encoder(frame) -> key, f16c, f16, f8, f4; for each object
k: decoder(key, mk_first, mk_last, mv_first[k], mv_last[k], f16c, f8, f4) -> logits_k; sigmoid, soft
aggregation, per-object tracker; value_encoder(prob_k, f16) -> value_k; memory slot "last" <- (key,
values). Slot "first" is written once from the frame given with its mask (and slot "last" with it).
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from vosx.errors import InputDataError
from vosx.tracker_runtime.preprocess import preprocess, unpad


class Graphs(Protocol):
    """A backend that runs the exported graphs:
    ``run(graph, inputs by name) -> outputs by name``.
    """

    def run(self, graph: str, inputs: dict) -> dict: ...


class Tracker(Protocol):
    """A per-object prediction filter (Trick 3)."""

    def reset(self) -> None: ...

    def step(self, prob: np.ndarray) -> np.ndarray: ...


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in float32, in two in-place passes (exp(-x) -> inf gives exactly 0)."""
    with np.errstate(over="ignore"):
        e = np.exp(-x.astype(np.float32, copy=True))
    e += 1.0
    return np.reciprocal(e, out=e)


def soft_aggregate(prob: np.ndarray) -> np.ndarray:
    """STCN soft aggregation: K x H x W object probabilities -> K+1 x H x W (0 = background).

    The same function as ``vosx.model.memory.soft_aggregate`` (a softmax over the log-odds of
    [prod(1-p), p] clamped to [1e-7, 1-1e-7]), computed without logs: softmax(log(o)) = o / sum(o).
    """
    k = prob.shape[0]
    out = np.empty((k + 1, *prob.shape[1:]), np.float32)
    np.subtract(1.0, prob[0], out=out[0])
    for i in range(1, k):
        out[0] *= 1.0 - prob[i]
    out[1:] = prob
    np.clip(out, 1e-7, 1 - 1e-7, out=out)
    out /= 1.0 - out  # odds
    out /= out.sum(0)
    return out


def argmax0(x: np.ndarray) -> np.ndarray:
    """``x.argmax(0)`` for a few classes, as K comparisons of contiguous planes (much faster)."""
    best = x[0].copy()
    idx = np.zeros(x.shape[1:], np.uint8)
    for i in range(1, x.shape[0]):
        better = x[i] > best
        idx[better] = i
        np.maximum(best, x[i], out=best)
    return idx


@dataclass(frozen=True)
class MemorySlot:
    """One memorised frame: its key and one value per object."""

    key: np.ndarray  # 1 x 1 x N x CK
    values: tuple[np.ndarray, ...]  # K x [1 x 1 x N x CV]


@dataclass(frozen=True)
class Memory:
    """The two-frame memory: ``first`` (the frame given with its mask) and ``last`` (the
    previous frame; the masked frame itself right after it).
    """

    first: MemorySlot
    last: MemorySlot


def check_mask(mask: np.ndarray) -> None:
    """Raise ``InputDataError`` unless ``mask`` is H x W labels with at least one object."""
    if mask.ndim != 2:
        raise InputDataError(f"first mask must be H x W labels, got shape {mask.shape}")
    if not mask.any():
        raise InputDataError(
            "the first-frame mask has no object (every pixel is 0); label objects 1, 2, ..."
        )


def check_frame(frame: np.ndarray, index: int, hw: tuple[int, int] | None = None) -> None:
    """Raise ``InputDataError`` unless ``frame`` is H x W x 3 uint8 RGB of the video's size.

    Args:
        frame: The frame.
        index: Its index in the video (for the message).
        hw: (H, W) of the video's first frame and mask; None when this frame starts the video.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InputDataError(
            f"frame {index} must be H x W x 3 uint8 RGB, got {frame.shape} {frame.dtype}"
        )
    if hw is not None and frame.shape[:2] != tuple(hw):
        raise InputDataError(
            f"frame {index} is {frame.shape[0]}x{frame.shape[1]} but the video's first mask is "
            f"{hw[0]}x{hw[1]}; all frames and the mask must have one size"
        )


class SegmentationDriver:
    """Semi-supervised VOS with a first+last two-frame memory over any ``Graphs`` backend.

    Args:
        graphs: The backend (``TFLiteGraphs`` or the PyTorch ``TorchGraphs``).
        size: Padded network input (height, width) the graphs were exported for.
        tracker_factory: Called once per object to make its tracker; None for no filtering.
    """

    def __init__(self, graphs: Graphs, size: tuple[int, int], tracker_factory=None):
        self.graphs = graphs
        self.size = size
        self.tracker_factory = tracker_factory
        self.reset()

    def reset(self) -> None:
        """Forget the video: objects, memory, trackers."""
        self.object_ids: list[int] = []
        self.trackers: list = []
        self.memory: Memory | None = None  # set by the frame given with its mask
        self.frame_index = -1
        self.prob: np.ndarray | None = None  # K+1 x Hp x Wp after the last step
        self._frame_shape: tuple[int, int] | None = None
        self.pads = (0, 0, 0, 0)  # (top, bottom, left, right) of the last frame

    def step(self, frame: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Segment one frame.

        Args:
            frame: H x W x 3 uint8 RGB, the same size for every frame of a video.
            mask: H x W integer labels (0 = background) for the first frame; starts the video.

        Returns:
            H x W uint8 labels.
        """
        self._check_frame(frame, mask)
        image, pads = preprocess(frame, self.size)  # 1 x Hp x Wp x 3
        self.pads = pads
        feats = self.graphs.run("key_encoder", {"image": image})
        self.frame_index += 1
        if mask is not None:
            labels = mask.astype(np.uint8)
            self.object_ids = [int(i) for i in np.unique(labels) if i != 0]
            self.trackers = (
                [self.tracker_factory() for _ in self.object_ids] if self.tracker_factory else []
            )
            obj = np.stack([(labels == i) for i in self.object_ids]).astype(np.float32)  # K x H x W
            prob = np.stack([np.pad(o, ((pads[0], pads[1]), (pads[2], pads[3]))) for o in obj])
            for tracker, o in zip(self.trackers, obj, strict=False):
                tracker.reset()
                tracker.step(o)  # boxes from the given mask
            slot = self._memorise(feats, prob)
            self.memory = Memory(first=slot, last=slot)
            self.prob = soft_aggregate(prob)
            return labels
        logits = np.stack(
            [self._decode(feats, k) for k in range(len(self.object_ids))]
        )  # K x Hp x Wp
        agg = soft_aggregate(sigmoid(logits))  # K+1 x Hp x Wp
        if self.trackers:
            for k, tracker in enumerate(self.trackers):
                region = unpad(agg[k + 1], pads)
                region[...] = tracker.step(np.ascontiguousarray(region))
        self.memory = replace(self.memory, last=self._memorise(feats, agg[1:]))
        self.prob = agg
        cls = unpad(argmax0(agg), pads)
        lut = np.asarray([0, *self.object_ids], np.uint8)
        return lut[cls]

    def run(self, frames: Iterable[np.ndarray], first_mask: np.ndarray) -> Iterator[np.ndarray]:
        """Segment a video: ``reset``, then ``step`` every frame (frame 0 with ``first_mask``).

        Args:
            frames: H x W x 3 uint8 RGB frames of one size.
            first_mask: H x W integer labels of frame 0.

        Yields:
            H x W uint8 labels, one per frame (frame 0's is ``first_mask``); while a frame's
            labels are being consumed, ``prob`` and ``pads`` are that frame's.
        """
        self.reset()
        for t, frame in enumerate(frames):
            yield self.step(frame, first_mask if t == 0 else None)

    def _decode(self, feats: dict, k: int) -> np.ndarray:
        out = self.graphs.run(
            "decoder",
            {
                "qk": feats["key"],
                "mk_first": self.memory.first.key,
                "mk_last": self.memory.last.key,
                "mv_first": self.memory.first.values[k],
                "mv_last": self.memory.last.values[k],
                "f16c": feats["f16c"],
                "f8": feats["f8"],
                "f4": feats["f4"],
            },
        )
        return out["logits"][0, :, :, 0]  # Hp x Wp

    def _memorise(self, feats: dict, prob: np.ndarray) -> MemorySlot:
        """The memory slot of a frame: its key and the values of its K object maps."""
        values = tuple(
            self.graphs.run("value_encoder", {"mask": p[None, :, :, None], "f16": feats["f16"]})[
                "value"
            ]
            for p in prob
        )
        return MemorySlot(feats["key"], values)

    def _check_frame(self, frame: np.ndarray, mask: np.ndarray | None) -> None:
        index = self.frame_index + 1
        if mask is not None:
            check_mask(mask)
            check_frame(frame, index, mask.shape)
            self._frame_shape = mask.shape
        elif self.memory is None:
            raise InputDataError("the first frame needs a mask: call step(frame, mask) first")
        else:
            check_frame(frame, index, self._frame_shape)
        h, w = frame.shape[:2]
        if h > self.size[0] or w > self.size[1]:
            raise InputDataError(
                f"frame {h}x{w} is larger than the exported input {self.size[0]}x{self.size[1]}; "
                "re-export with a larger --size or resize the frames"
            )
