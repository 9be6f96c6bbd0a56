"""Issue 4's runtime figures at 480x864 with two objects, measured side by side in one run.

(a) Driver overhead: a frame's ``SegmentationDriver.step`` time minus the time spent inside the
    LiteRT ``invoke`` calls, as a share of the frame time (target <= 10%), without a tracker and
    with the CV and PT trackers.
(b) Backends: the TFLite fp32 graphs vs the PyTorch model (same driver) on synthetic clips
    (``make_clip`` at 480x854, two objects): mean per-frame, per-object IoU of the labels
    (target >= 0.999), and the largest difference of the soft-aggregated probabilities.
(c) Trackers: CV and PT cost per object per frame (``benchmarks/tracker_cost.py``'s timing, at
    480x854) against 50 / 200 us and as a share of (a)'s frame time.

Shapes: frames 480 x 854 x 3 uint8, padded by the driver to the 480 x 864 network input; label
maps 480 x 854 uint8. Uses an export of the bundled checkpoint: written (fp32) into a temporary
folder unless ``--model DIR`` gives one.

Run: nice -n 10 python benchmarks/runtime_bench.py [--model DIR] [--frames 12] [--clips 3]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tracker_cost  # noqa: E402  (sibling script: make_maps, time_tracker)

from vosx.tracker_runtime.driver import SegmentationDriver  # noqa: E402
from vosx.tracker_runtime.litert import TFLiteGraphs  # noqa: E402
from vosx.tracker_runtime.segment import segment  # noqa: E402
from vosx.tracker_runtime.trackers import tracker_factory  # noqa: E402

SIZE = (480, 864)
FRAME = (480, 854)
OBJECTS = 2
TRACKERS = ("none", "cv", "pt")
TARGETS = {"overhead": 0.10, "iou": 0.999, "CV": 50.0, "PT": 200.0}


class TimedGraphs(TFLiteGraphs):
    """``TFLiteGraphs`` that adds the wall time of every ``invoke`` to ``invoke_s``."""

    invoke_s = 0.0

    def invoke(self, graph: str) -> None:
        start = time.perf_counter()
        super().invoke(graph)
        self.invoke_s += time.perf_counter() - start


def export_bundled(out_dir: Path, threads: int) -> Path:
    """Export the bundled checkpoint at 480x864 (fp32 only) into ``out_dir``."""
    from vosx.export.pipeline import ExportOptions, export_all

    print(f"exporting the bundled checkpoint at {SIZE[0]}x{SIZE[1]} into {out_dir} ...")
    start = time.perf_counter()
    export_all(
        ExportOptions(
            checkpoint=None, out_dir=out_dir, size=SIZE, precisions=("fp32",), threads=threads
        )
    )
    print(f"  done in {time.perf_counter() - start:.0f} s")
    return out_dir


def driver_overhead(graphs: TimedGraphs, clip, tracker: str, warmup: int) -> dict:
    """Per-frame step time and invoke time over a clip (frames after ``warmup`` + the first)."""
    driver = SegmentationDriver(graphs, SIZE, tracker_factory(tracker))
    driver.step(clip.frames[0], clip.masks[0])
    frame_s, invoke_s = [], []
    for t, frame in enumerate(clip.frames[1:], start=1):
        graphs.invoke_s = 0.0
        start = time.perf_counter()
        driver.step(frame)
        total = time.perf_counter() - start
        if t > warmup:
            frame_s.append(total)
            invoke_s.append(graphs.invoke_s)
    shares = [(f - i) / f for f, i in zip(frame_s, invoke_s, strict=True)]
    return {
        "frame_ms": statistics.median(frame_s) * 1e3,
        "invoke_ms": statistics.median(invoke_s) * 1e3,
        "overhead_ms": statistics.median(f - i for f, i in zip(frame_s, invoke_s, strict=True))
        * 1e3,
        "share": statistics.median(shares),
        "share_max": max(shares),
    }


def backend_agreement(tflite, torch_graphs, clips) -> dict:
    """Mean/min per-object IoU (frames after the first) and the largest probability gap."""
    probs: dict[int, list] = {}
    real_step = SegmentationDriver.step

    def recording_step(self, frame, mask=None):
        labels = real_step(self, frame, mask)
        probs.setdefault(id(self.graphs), []).append(self.prob)
        return labels

    SegmentationDriver.step = recording_step
    try:
        ious, gap = [], 0.0
        for clip in clips:
            probs.clear()
            a, b = (
                list(segment(clip.frames, clip.masks[0], g, SIZE)) for g in (tflite, torch_graphs)
            )
            for la, lb in zip(a[1:], b[1:], strict=True):
                for k in range(1, OBJECTS + 1):
                    union = np.count_nonzero((la == k) | (lb == k))
                    inter = np.count_nonzero((la == k) & (lb == k))
                    ious.append(1.0 if union == 0 else inter / union)
            pa, pb = probs[id(tflite)], probs[id(torch_graphs)]
            gap = max(gap, max(float(np.abs(x - y).max()) for x, y in zip(pa, pb, strict=True)))
    finally:
        SegmentationDriver.step = real_step
    return {"mean": float(np.mean(ious)), "min": float(np.min(ious)), "n": len(ious), "gap": gap}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="export folder at 480x864 (else export now)")
    parser.add_argument("--frames", type=int, default=12, help="frames per clip")
    parser.add_argument("--clips", type=int, default=3, help="synthetic clips for (b)")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT and torch CPU threads")
    parser.add_argument("--warmup", type=int, default=2, help="untimed frames after the first")
    parser.add_argument("--tracker-frames", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args()


def print_overhead(over: dict[str, dict]) -> None:
    """(a): each tracker's frame, invoke and other time, and the share against 10%."""
    print("\n(a) driver overhead = frame time - time inside invoke")
    print(
        f"{'tracker':>8}  {'frame ms':>9}  {'invoke ms':>9}  {'other ms':>8}  "
        f"{'share':>6}  {'max':>6}  {'share/10%':>9}"
    )
    for kind, o in over.items():
        print(
            f"{kind:>8}  {o['frame_ms']:9.1f}  {o['invoke_ms']:9.1f}  {o['overhead_ms']:8.2f}"
            f"  {o['share']:6.1%}  {o['share_max']:6.1%}  "
            f"{o['share'] / TARGETS['overhead']:9.2f}"
        )


def print_agreement(graphs, clips: list, frames: int) -> None:
    """(b): the TFLite fp32 graphs against the PyTorch model over the same driver."""
    from vosx.model.checkpoint import load_checkpoint, resolve_checkpoint
    from vosx.model.graphs import TorchGraphs

    torch_graphs = TorchGraphs(load_checkpoint(resolve_checkpoint(None)))
    start = time.perf_counter()
    agree = backend_agreement(graphs, torch_graphs, clips)
    print(
        f"\n(b) TFLite fp32 vs torch on {len(clips)} synthetic clips x {frames} frames "
        f"({agree['n']} object-frames, {time.perf_counter() - start:.0f} s)"
    )
    print(
        f"mean IoU {agree['mean']:.5f} (target {TARGETS['iou']}, "
        f"mean/target {agree['mean'] / TARGETS['iou']:.4f}), min IoU {agree['min']:.5f}, "
        f"largest soft-aggregated probability difference {agree['gap']:.2e}"
    )


def print_tracker_costs(frame_ms: float, tracker_frames: int, repeats: int) -> None:
    """(c): CV and PT cost per object per frame (tracker_cost.py's timing and maps)."""
    from vosx.tracker_runtime.trackers import (
        DEFAULT_MARGIN_CV,
        DEFAULT_MARGIN_PT,
        ConstantVelocityTracker,
        ParametricTracker,
    )

    mlp = tracker_factory("pt")().mlp
    print(
        f"\n(c) tracker cost per object per frame at {tracker_cost.H}x{tracker_cost.W} "
        f"(thread CPU time, best of {repeats}), share of a {frame_ms:.0f} ms frame "
        f"with {OBJECTS} objects"
    )
    print(
        f"{'object':>8}  {'CV us':>6}  {'CV/50us':>7}  {'PT us':>6}  {'PT/200us':>8}  "
        f"{'CV share':>8}  {'PT share':>8}"
    )
    for obj_h, obj_w in ((60, 80), (150, 200), (300, 500)):
        maps = tracker_cost.make_maps(tracker_frames, obj_h, obj_w)
        cv = tracker_cost.time_tracker(
            lambda: ConstantVelocityTracker(DEFAULT_MARGIN_CV), maps, repeats
        )
        pt = tracker_cost.time_tracker(
            lambda: ParametricTracker(mlp, DEFAULT_MARGIN_PT), maps, repeats
        )
        share = OBJECTS * 1e-3 / frame_ms
        print(
            f"{f'{obj_h}x{obj_w}':>8}  {cv:6.1f}  {cv / TARGETS['CV']:7.2f}  {pt:6.1f}  "
            f"{pt / TARGETS['PT']:8.2f}  {cv * share:8.3%}  {pt * share:8.3%}"
        )


def main() -> None:
    args = parse_args()
    import torch

    from vosx.training.synthetic import make_clip

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="vosx-runtime-bench-") as tmp:
        model_dir = args.model or export_bundled(Path(tmp) / "export", args.threads)
        graphs = TimedGraphs.open(model_dir, "fp32", args.threads, xnnpack=True)
        if graphs.manifest.input_size != SIZE:
            sys.exit(f"{model_dir}: input {graphs.manifest.input_size}, need {SIZE}")
        clips = [
            make_clip(args.frames, FRAME[0], FRAME[1], OBJECTS, seed=100 + i)
            for i in range(args.clips)
        ]
        print(
            f"runtime at {SIZE[0]}x{SIZE[1]} (frames {FRAME[0]}x{FRAME[1]}), {OBJECTS} objects, "
            f"LiteRT fp32 + XNNPACK, {args.threads} threads, median over "
            f"{args.frames - 1 - args.warmup} frames"
        )
        over = {kind: driver_overhead(graphs, clips[0], kind, args.warmup) for kind in TRACKERS}
        print_overhead(over)
        print_agreement(graphs, clips, args.frames)
    print_tracker_costs(over["none"]["frame_ms"], args.tracker_frames, args.repeats)


if __name__ == "__main__":
    main()
