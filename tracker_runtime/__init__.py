"""App-side runtime: two-frame memory driver and box trackers on NumPy + LiteRT (no torch or TF)."""

from vosx.tracker_runtime.driver import SegmentationDriver
from vosx.tracker_runtime.trackers import ConstantVelocityTracker, ParametricTracker

__all__ = ["ConstantVelocityTracker", "ParametricTracker", "SegmentationDriver"]
