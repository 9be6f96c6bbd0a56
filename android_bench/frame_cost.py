"""The NumPy side of one frame, timed on this machine: the segmentation driver and a box tracker.

Whatever ``--device``, a frame costs the graphs plus ``SegmentationDriver.step`` (its NumPy work
for K objects, timed over zero-cost stand-in graphs) and K steps of the constant-velocity tracker,
at the export's input size; ``measure_host_costs`` returns both as ``HostCosts`` (ms).
Shapes: frames H x W x 3 uint8, probability maps H x W float32, at the padded input size.
"""

import time

import numpy as np

from vosx.android_bench.results import HostCosts
from vosx.manifest import Manifest


class _ConstGraphs:
    """Zero-cost stand-in for the three graphs: fixed outputs of the manifest's shapes.

    Timing ``SegmentationDriver.step`` over it measures only the driver's NumPy work.
    """

    def __init__(self, manifest: Manifest):
        self.outputs = {
            name: {t.name: np.zeros(t.shape, np.float32) for t in spec.outputs}
            for name, spec in manifest.graphs.items()
        }

    def run(self, graph: str, inputs: dict) -> dict:
        return self.outputs[graph]


def _median_ms(fn, min_calls: int = 5, budget_s: float = 0.5, max_calls: int = 200) -> float:
    laps = []
    start = time.perf_counter()
    while len(laps) < max_calls and (
        len(laps) < min_calls or time.perf_counter() - start < budget_s
    ):
        t0 = time.perf_counter()
        fn()
        laps.append(time.perf_counter() - t0)
    return float(np.median(laps) * 1e3)


def _moving_blob(size: tuple[int, int], n: int) -> list[np.ndarray]:
    """``n`` H x W float32 probability maps of a blob moving right and down."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    maps = []
    for i in range(n):
        cy, cx = h * (0.3 + 0.02 * i), w * (0.3 + 0.02 * i)
        r2 = ((yy - cy) / (0.15 * h)) ** 2 + ((xx - cx) / (0.15 * w)) ** 2
        maps.append(np.clip(1.2 - r2, 0.0, 1.0).astype(np.float32))
    return maps


def time_driver(manifest: Manifest, objects: int) -> float:
    """Median ms of ``SegmentationDriver.step`` for K objects with zero-cost graphs (no tracker)."""
    from vosx.tracker_runtime.driver import SegmentationDriver

    h, w = manifest.input_size
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    for k in range(objects):  # K vertical stripes
        mask[:, k * w // objects : (k + 1) * w // objects] = k + 1
    driver = SegmentationDriver(_ConstGraphs(manifest), (h, w))
    driver.step(frame, mask)
    return _median_ms(lambda: driver.step(frame))


def time_tracker(size: tuple[int, int], margin: float | None) -> tuple[float | None, str | None]:
    """Median ms of one ``ConstantVelocityTracker.step`` on an H x W map, or (None, why not)."""
    try:
        from vosx.tracker_runtime.trackers import ConstantVelocityTracker
    except ImportError:
        return None, (
            "tracker not measured: vosx.tracker_runtime.trackers.ConstantVelocityTracker is not "
            "available in this install"
        )
    tracker = (
        ConstantVelocityTracker() if margin is None else ConstantVelocityTracker(margin=margin)
    )
    maps = _moving_blob(size, 8)
    tracker.reset()
    for m in maps[:3]:  # the tracker filters from the third frame on
        tracker.step(m)
    state = {"i": 3}

    def one():
        tracker.step(maps[state["i"] % len(maps)])
        state["i"] += 1

    return _median_ms(one), None


def measure_host_costs(manifest: Manifest, objects: int, margin: float | None) -> HostCosts:
    """Driver and tracker cost per frame at the export's input size, timed on this machine."""
    tracker_ms, why = time_tracker(manifest.input_size, margin)
    return HostCosts(
        objects=objects,
        driver_ms=time_driver(manifest, objects),
        tracker_ms_per_object=tracker_ms,
        notes=(why,) if why else (),
    )
