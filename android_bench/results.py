"""What ``vosx bench`` measured: per-run records, per-device runs and the whole ``BenchReport``.

A ``Measurement`` is one graph x delegate x precision x trial (a ``BenchmarkResult`` or an error
with the tool's last lines); an ``OutputCheck`` is ``inference_diff``'s GPU-vs-CPU comparison on a
phone, a ``HostGpuCheck`` the same on the host's GPU accelerator; a ``DeviceRun`` gathers one
device's, appended as its sweep goes; ``HostCosts`` is the NumPy side of a frame. ``report`` turns
them into tables, JSON and a plot. NumPy-free: the sweeps (``phone``, ``host``, ``frame_cost``)
fill them in.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path

from vosx.android_bench.adb import DeviceDisconnected
from vosx.android_bench.benchmark_output import BenchmarkResult, OutputDiff
from vosx.android_bench.options import BenchOptions
from vosx.errors import BenchmarkError, DeviceError

HOST_GPU_LABEL = "software Vulkan, not a phone figure"  # host GPU latencies: LiteRT on Vulkan


@dataclass(frozen=True)
class Measurement:
    """One benchmark of one graph; ``result`` or ``error`` (with the tool's last lines)."""

    device: str
    graph: str
    delegate: str
    precision: str
    trial: int
    result: BenchmarkResult | None = None
    error: str | None = None
    output_tail: str | None = None
    tool: str | None = None  # a tools.TOOLS key over adb; the host's backend (host.HOST_TOOLS)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["result"] = self.result.to_dict() if self.result else None
        return d


@dataclass(frozen=True)
class OutputCheck:
    """GPU-vs-CPU outputs of one graph and precision on one device (inference_diff)."""

    device: str
    graph: str
    precision: str
    threshold: float
    diff: OutputDiff | None = None
    error: str | None = None

    @property
    def flagged(self) -> bool:
        """True when the GPU's outputs differ from the CPU's by more than the threshold."""
        return self.diff is not None and self.diff.max_error > self.threshold

    def to_dict(self) -> dict:
        return {
            "device": self.device,
            "graph": self.graph,
            "precision": self.precision,
            "delegate": "gpu",
            "threshold": self.threshold,
            "max_error": self.diff.max_error if self.diff else None,
            "flagged": self.flagged,
            "diff": self.diff.to_dict() if self.diff else None,
            "error": self.error,
        }


@dataclass(frozen=True)
class HostGpuCheck:
    """One graph and precision on the host's GPU accelerator against its CPU (same inputs).

    ``max_rel``: output name -> max |gpu - cpu| / max |cpu|; ``error``: why it did not run.
    """

    graph: str
    precision: str
    fully_delegated: bool | None
    max_rel: dict
    adapter: str | None
    error: str | None = None

    @property
    def worst(self) -> float | None:
        """The largest relative error over the outputs (None when it did not run)."""
        return max(self.max_rel.values()) if self.max_rel else None

    def to_dict(self) -> dict:
        return {**asdict(self), "worst_max_rel": self.worst, "latency_label": HOST_GPU_LABEL}


@dataclass
class DeviceRun:
    """Everything measured on one device, appended as the run goes (kept when it stops early)."""

    device: str
    info: dict = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    thermal: list[dict] = field(default_factory=list)  # {"trial", "before", "after"}
    checks: list[OutputCheck] = field(default_factory=list)
    gpu_checks: list[HostGpuCheck] = field(default_factory=list)  # host --delegate gpu
    error: str | None = None
    disconnected: bool = False
    run_dir: str | None = None
    pushed: list[str] = field(default_factory=list)
    tool: str | None = None  # which benchmark_model ran (from its --help)

    def to_dict(self) -> dict:
        return {
            "device": self.device,
            "info": self.info,
            "benchmark_tool": self.tool,
            "error": self.error,
            "disconnected": self.disconnected,
            "run_dir": self.run_dir,
            "pushed": self.pushed,
            "thermal": self.thermal,
            "measurements": [m.to_dict() for m in self.measurements],
            "output_checks": [c.to_dict() for c in self.checks],
            "gpu_checks": [c.to_dict() for c in self.gpu_checks],
        }


@dataclass(frozen=True)
class HostCosts:
    """The NumPy side of one frame, timed on this machine (ms; None = not measured)."""

    objects: int
    driver_ms: float | None  # SegmentationDriver.step with zero-cost graphs, K objects
    tracker_ms_per_object: float | None  # ConstantVelocityTracker.step on one H x W map
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BenchReport:
    """The whole benchmark: options, per-device runs and the host-side costs."""

    options: BenchOptions
    input_size: tuple[int, int]
    precisions: tuple[str, ...]
    runs: tuple[DeviceRun, ...]
    host_costs: HostCosts
    started: str
    notes: tuple[str, ...] = ()

    def raise_if_failed(self, json_path: Path | None = None) -> None:
        """Raise the first device error (after the report was written), or when nothing worked."""
        where = json_path or "the report above (pass --json to keep them)"
        kept = f"; results measured so far are in {where}"
        for run in self.runs:
            if run.error:
                raise (DeviceDisconnected if run.disconnected else DeviceError)(run.error + kept)
        if not any(m.result for run in self.runs for m in run.measurements):
            first = next((m.error for run in self.runs for m in run.measurements if m.error), None)
            raise BenchmarkError(f"every benchmark run failed; the first: {first}{kept}")
