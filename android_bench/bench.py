"""``vosx bench``: time each graph x delegate x precision over trials, on phones (adb) or the host.

On a phone the exported .tflite files and ``benchmark_model`` are pushed once into a run folder
and run per graph, delegate and precision; which of the two tools of that name it is (TensorFlow's,
or LiteRT's CompiledModel tool) is read from its own ``--help``, and each gets only flags it lists;
thermal state is read before and after each trial; ``inference_diff`` optionally compares GPU with
CPU outputs. On the host the same report is timed with the LiteRT interpreter (XNNPACK) and, for
comparison, ONNX Runtime on the .onnx files, and/or (``--delegate gpu``) on LiteRT's GPU
accelerator, each graph checked against the CPU (latencies: software Vulkan, not a phone figure).
The NumPy side of a frame (the segmentation driver and the box tracker) is timed here on the host.

Shapes: graph inputs as the manifest lists them (NHWC images, ``1 x 1 x N x C`` memory); the
driver's frames H x W x 3 uint8 and probabilities H x W float32 at the padded input size.
"""

import dataclasses
import hashlib
import math
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from vosx import limits
from vosx.android_bench.adb import (
    DEVICE_ROOT,
    STOP,
    Adb,
    DeviceDisconnected,
    Stopped,
    ThermalState,
    check_elf_aarch64,
    find_adb,
    find_tool,
    list_devices,
    select_serials,
)
from vosx.android_bench.benchmark_output import (
    TOOL_LITERT,
    BenchmarkResult,
    BenchmarkRunError,
    BenchmarkTool,
    OutputDiff,
    parse_benchmark_output,
    parse_help,
    parse_inference_diff,
)
from vosx.android_bench.options import DELEGATES, BenchOptions
from vosx.errors import AcceleratorError, BenchmarkError, ConfigError, DeviceError
from vosx.manifest import (
    GRAPH_NAMES,
    PRECISION_SUFFIX,
    Manifest,
    load_manifest,
    sha256_file,
)

MAX_OBJECTS = 255  # label maps are uint8: objects 1..255
TOOL_NAMES = ("benchmark_model", "inference_diff")  # device names of the tools (no .tflite)
HOST_LITERT = "cpu"  # LiteRT interpreter with XNNPACK on the host
HOST_ORT = "onnxruntime"
HOST_GPU = "gpu"  # LiteRT's GPU accelerator (CompiledModel, GPU only) on the host
HOST_GPU_LABEL = "software Vulkan, not a phone figure"
# Measurement.tool -> the per-graph table's "tool" column.
TOOL_COLUMN = {
    "tensorflow": "TF benchmark_model",
    "litert": "LiteRT benchmark_model",
    "litert-interpreter": "LiteRT interpreter",
    "onnxruntime": "ONNX Runtime",
    "litert-gpu": f"LiteRT GPU ({HOST_GPU_LABEL})",
}
_HOST_TOOLS = {HOST_LITERT: "litert-interpreter", HOST_ORT: "onnxruntime", HOST_GPU: "litert-gpu"}
BENCHMARK_HINT = (
    "download android_aarch64_benchmark_model from https://storage.googleapis.com/"
    "tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest/"
    "android_aarch64_benchmark_model and pass --benchmark-binary PATH"
)
DIFF_HINT = (
    "build it with `bazel build -c opt --config=android_arm64 "
    "//tensorflow/lite/tools/evaluation/tasks/inference_diff:run_eval` and pass "
    "--inference-diff-binary PATH"
)
ORT_MISSING = (
    "ONNX Runtime comparison skipped: onnxruntime is not installed (it is in the export extra: "
    "pip install 'vosx[export]')"
)


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
    tool: str | None = None  # TOOL_TENSORFLOW / TOOL_LITERT over adb; the host's backend

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


def resolve_precisions(manifest: Manifest, wanted: tuple[str, ...]) -> tuple[str, ...]:
    """The precisions to run: ``wanted`` (each must be exported) or every exported one."""
    have = manifest.precisions
    if not wanted:
        return tuple(have)
    missing = [p for p in wanted if p not in have]
    if missing:
        raise ConfigError(
            f"{manifest.root}: precision {', '.join(missing)} was not exported (have "
            f"{', '.join(have)}); re-export with --precision {missing[0]} or choose another"
        )
    return tuple(wanted)


def _validate(opts: BenchOptions) -> None:
    """Every option in its range (``vosx.limits``): a number NaN or infinite, or one that sizes
    the work past its bound, is one ``ConfigError`` line before anything runs."""
    for name in ("threads", "objects", "runs", "trials"):
        if getattr(opts, name) < 1:
            raise ConfigError(f"--{name} {getattr(opts, name)}: must be at least 1")
    if opts.objects > MAX_OBJECTS:
        raise ConfigError(
            f"--objects {opts.objects}: must be 1..{MAX_OBJECTS} (label maps are uint8); "
            "give a smaller K"
        )
    for name, value in (
        ("--cooldown", opts.cooldown_s),
        ("--timeout", opts.timeout_s),
        ("--diff-threshold", opts.diff_threshold),
        ("--tracker-margin", opts.tracker_margin),
    ):
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"{name} {value}: must be a finite number")
    if opts.warmup < 0 or opts.cooldown_s < 0 or opts.timeout_s <= 0:
        raise ConfigError("--warmup and --cooldown must be >= 0 and --timeout > 0")
    if opts.device == "host":
        most = (limits.MAX_THREADS, f"2 x this machine's {limits.cpu_count()} CPUs")
    else:
        most = (limits.MAX_PHONE_THREADS, "phones have at most 12 cores")
    for name, value, high, why in (
        ("--threads", opts.threads, *most),
        ("--runs", opts.runs, limits.MAX_RUNS, "per benchmark"),
        ("--warmup", opts.warmup, limits.MAX_WARMUP, "per benchmark"),
        ("--trials", opts.trials, limits.MAX_TRIALS, "sweeps"),
        ("--cooldown", opts.cooldown_s, limits.MAX_COOLDOWN_S, "seconds"),
        ("--timeout", opts.timeout_s, limits.MAX_TIMEOUT_S, "seconds"),
    ):
        if value > high:
            raise ConfigError(f"{name} {value:g}: at most {high:g} ({why}); give a smaller value")
    if opts.diff_threshold < 0:
        raise ConfigError(f"--diff-threshold {opts.diff_threshold:g}: must be >= 0")
    if opts.device not in ("adb", "host"):
        raise ConfigError(f"--device {opts.device}: choose adb or host")
    bad = [d for d in opts.delegates if d not in DELEGATES]
    if bad or not opts.delegates:
        raise ConfigError(f"--delegate {','.join(bad)}: choose from {', '.join(DELEGATES)} or all")
    if opts.device == "host":
        if "nnapi" in opts.delegates:
            raise ConfigError(
                f"--delegate {','.join(opts.delegates)} with --device host: the host has no NNAPI; "
                "use --delegate cpu (LiteRT XNNPACK, ONNX Runtime) or gpu (LiteRT's GPU "
                "accelerator), or --device adb"
            )
        if opts.check_outputs:
            raise ConfigError(
                "--check-outputs compares GPU with CPU outputs on a phone; use it with --device adb"
            )
        if opts.serials:
            raise ConfigError("--serial selects phones; it has no meaning with --device host")


def run_bench(opts: BenchOptions) -> BenchReport:
    """Run the benchmark the options describe and return its report (nothing written here).

    Device errors met after the devices were chosen are recorded in the report (see
    ``BenchReport.raise_if_failed``) so that the results measured so far can be written first.

    Raises:
        ConfigError, ManifestError, DeviceError: bad options, export folder, adb, device selection
            or benchmark binary, before anything was measured.
    """
    _validate(opts)
    manifest = load_manifest(opts.export_dir)
    precisions = resolve_precisions(manifest, opts.precisions)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    if opts.device == "host":
        check_loadable(manifest, precisions)
        adapter = _check_host_gpu() if HOST_GPU in opts.delegates else None
        costs = measure_host_costs(manifest, opts.objects, opts.tracker_margin)
        runs, notes = run_host(manifest, precisions, opts)
        if adapter is not None:
            runs.info["gpu"] = adapter
            notes += (f"host gpu rows: LiteRT's GPU accelerator on {adapter}: {HOST_GPU_LABEL}",)
        return BenchReport(opts, manifest.input_size, precisions, (runs,), costs, started, notes)
    STOP.clear()  # an earlier run in this process may have been interrupted
    adb = find_adb()
    serials = select_serials(list_devices(adb), opts.serials)
    tools = {"benchmark_model": _tool(opts.benchmark_binary, "benchmark_model")}
    if opts.check_outputs:
        tools["inference_diff"] = _tool(opts.inference_diff_binary, "inference_diff")
    costs = measure_host_costs(manifest, opts.objects, opts.tracker_margin)
    files = _device_files(manifest, precisions, tools)
    try:
        with ThreadPoolExecutor(max_workers=len(serials)) as pool:
            try:
                runs = tuple(
                    pool.map(
                        lambda s: run_device(adb, s, manifest, precisions, files, opts), serials
                    )
                )
            except BaseException:  # Ctrl-C, SIGTERM: every adb call in flight ends within 0.1 s
                STOP.set()
                raise
    finally:
        STOP.clear()  # the worker threads have ended
    return BenchReport(opts, manifest.input_size, precisions, runs, costs, started)


def _tool(explicit: Path | None, name: str) -> Path:
    if name == "benchmark_model":
        path = find_tool(
            explicit,
            "VOSX_BENCHMARK_MODEL",
            ("android_aarch64_benchmark_model", "benchmark_model"),
            BENCHMARK_HINT,
        )
    else:
        path = find_tool(explicit, "VOSX_INFERENCE_DIFF", ("inference_diff", "run_eval"), DIFF_HINT)
    check_elf_aarch64(path, name)
    return path


def device_graph_name(graph: str, precision: str) -> str:
    """The name of a graph's file in the device run folder, e.g. ``key_encoder_float32.tflite``.

    Derived from the graph and precision names only (both fixed vocabularies the manifest is
    checked against), never from a file name in the manifest: every graph name ends in
    ``.tflite`` and no tool name (``TOOL_NAMES``) does, so no export can take a tool's place.
    """
    if graph not in GRAPH_NAMES or precision not in PRECISION_SUFFIX:
        raise ValueError(f"not a graph / precision: {graph!r} {precision!r}")
    return f"{graph}_{PRECISION_SUFFIX[precision]}.tflite"


@dataclass(frozen=True)
class _DeviceFiles:
    """What goes to the phone: {name in the run folder: (local path, sha256)} and the folder."""

    files: dict
    run_dir: str
    tools: dict  # tool name -> remote path

    def remote(self, name: str) -> str:
        return f"{self.run_dir}/{name}"


def _device_files(manifest: Manifest, precisions: tuple[str, ...], tools: dict) -> _DeviceFiles:
    if not set(tools) <= set(TOOL_NAMES):
        raise ValueError(f"unknown device tools {sorted(tools)}")
    files = {name: (path, sha256_file(path)) for name, path in tools.items()}
    for p in precisions:
        for g in GRAPH_NAMES:
            entry = manifest.graphs[g].files[p]
            name = device_graph_name(g, p)
            if name in files:  # unreachable: graph and tool names are disjoint by construction
                raise ValueError(f"device name {name} taken twice")
            files[name] = (manifest.tflite_path(g, p), entry["sha256"])
    key = hashlib.sha256("".join(f"{n}:{h};" for n, (_, h) in sorted(files.items())).encode())
    run_dir = f"{DEVICE_ROOT}/run_{key.hexdigest()[:12]}"
    return _DeviceFiles(files, run_dir, {name: f"{run_dir}/{name}" for name in tools})


class DelegateUnsupported(ConfigError):
    """The benchmark tool on the device has no such delegate (LiteRT's tool has no NNAPI)."""


# Left out, not refused, when a tool does not list them (older TensorFlow builds).
_OPTIONAL_FLAGS = frozenset({"report_peak_memory_footprint"})


def _delegate_flags(kind: str, delegate: str, precision: str) -> list[str]:
    """The delegate's flags for one tool: fp32 files never run with fp16 arithmetic on the GPU."""
    fp16 = "false" if precision == "fp32" else "true"
    if kind == TOOL_LITERT:
        if delegate == "nnapi":
            raise DelegateUnsupported(
                "--delegate nnapi: the device's benchmark_model is LiteRT's CompiledModel tool, "
                "which has no NNAPI (--delegate all includes it); use --delegate gpu or cpu, or "
                "TensorFlow's benchmark_model with --benchmark-binary"
            )
        if delegate == "gpu":  # GPU only: without --use_cpu=false it silently falls back to CPU
            return [
                "--use_gpu=true",
                "--use_cpu=false",
                "--require_full_delegation=true",
                f"--allow_fp16={fp16}",
            ]
        return []
    if delegate == "gpu":
        return ["--use_gpu=true", f"--gpu_precision_loss_allowed={fp16}", "--gpu_backend=cl"]
    if delegate == "nnapi":
        return ["--use_nnapi=true", f"--nnapi_allow_fp16={fp16}"]
    return []


def benchmark_args(
    binary: str,
    graph: str,
    delegate: str,
    precision: str,
    threads: int,
    runs: int,
    warmup: int,
    tool: BenchmarkTool,
) -> list[str]:
    """benchmark_model's command line for one graph, delegate and precision, for ``tool``.

    TensorFlow's tool: GPU runs use OpenCL and allow fp16 arithmetic except for the fp32 files
    (so fp32 rows measure fp32 GPU compute); NNAPI may use fp16 for the fp16 files. LiteRT's tool:
    GPU runs are GPU only with full delegation required, fp16 allowed except for fp32 files.
    Only flags the tool's ``--help`` lists are passed.

    Raises:
        DelegateUnsupported: NNAPI asked of LiteRT's tool.
        DeviceError: the tool does not list a flag this run needs.
    """
    args = [
        f"--graph={graph}",
        f"--num_runs={runs}",
        f"--warmup_runs={warmup}",
        f"--num_threads={threads}",
        "--report_peak_memory_footprint=true",
        *_delegate_flags(tool.kind, delegate, precision),
    ]
    kept = []
    for arg in args:
        name = arg[2:].split("=", 1)[0]
        if name in tool.flags:
            kept.append(arg)
        elif name not in _OPTIONAL_FLAGS:
            raise DeviceError(
                f"{tool.label} on the device does not list --{name} in its --help, so it would "
                f"ignore it and measure something else; use a build that has it"
            )
    return [binary, *kept]


def inference_diff_args(
    binary: str, graph: str, precision: str, threads: int, runs: int
) -> list[str]:
    """inference_diff's command line: GPU (test) against single-threaded CPU (reference)."""
    lossy = "false" if precision == "fp32" else "true"
    return [
        binary,
        f"--model_file={graph}",
        "--delegate=gpu",
        f"--num_runs={runs}",
        f"--num_interpreter_threads={threads}",
        f"--gpu_precision_loss_allowed={lossy}",
    ]


def run_device(
    adb: str,
    serial: str,
    manifest: Manifest,
    precisions: tuple[str, ...],
    files: _DeviceFiles,
    opts: BenchOptions,
) -> DeviceRun:
    """The whole sweep on one phone; device errors end up in ``DeviceRun.error``."""
    run = DeviceRun(serial)
    dev = Adb(adb, serial)
    created = False
    try:
        info = dev.device_info()
        run.info = info.to_dict()
        dev.check_abi(info)
        run.run_dir = files.run_dir
        created = not dev.exists(files.run_dir)
        dev.check(["mkdir", "-p", files.run_dir], what="creating the run folder")
        remote = {files.remote(n): path for n, (path, _) in files.files.items()}
        hashes = {files.remote(n): h for n, (_, h) in files.files.items()}
        run.pushed = dev.sync(remote, hashes)
        dev.check(["chmod", "755", *files.tools.values()], what="making the tools executable")
        tool = identify_tool(dev, files.tools["benchmark_model"])
        run.tool = tool.kind
        for d in opts.delegates:  # refused before anything runs: NNAPI of LiteRT, missing flags
            for p in precisions:
                benchmark_args("benchmark_model", "graph.tflite", d, p, 1, 1, 0, tool)
        for trial in range(opts.trials):
            if trial and STOP.wait(opts.cooldown_s):  # a cooldown Ctrl-C cuts short
                raise Stopped(f"device {serial}: stopped: the run was interrupted")
            record = {"trial": trial, "before": _thermal(dev), "after": None}
            run.thermal.append(record)
            for p in precisions:
                for d in opts.delegates:
                    for g in GRAPH_NAMES:
                        remote_graph = files.remote(device_graph_name(g, p))
                        run.measurements.append(
                            _measure(dev, files, tool, remote_graph, g, d, p, trial, opts)
                        )
            record["after"] = _thermal(dev)
        if "inference_diff" in files.tools:
            for p in precisions:
                for g in GRAPH_NAMES:
                    run.checks.append(_check(dev, files, device_graph_name(g, p), g, p, opts))
    except DeviceError as e:
        run.error = str(e)
        run.disconnected = isinstance(e, DeviceDisconnected)
    finally:
        if not opts.keep and not run.disconnected and run.run_dir and not STOP.is_set():
            dev.remove([files.run_dir] if created else run.pushed, recursive=created)
    return run


def identify_tool(dev: Adb, remote: str) -> BenchmarkTool:
    """Which benchmark_model the device runs, from the flags its own ``--help`` lists.

    Raises:
        BenchmarkRunError: the listing fits neither tool (one line with the tail of the output).
    """
    res = dev.shell([remote, "--help"], 60, "reading benchmark_model --help")
    return parse_help(res.output)  # both tools exit with status 1 after printing the usage


def _thermal(dev: Adb) -> dict:
    """The thermal state as a dict; an unreadable one is recorded as unknown, not fatal."""
    try:
        return dev.thermal().to_dict()
    except DeviceDisconnected:
        raise
    except DeviceError:
        return ThermalState(None, {}, None).to_dict()


def _measure(
    dev: Adb,
    files: _DeviceFiles,
    tool: BenchmarkTool,
    graph_path: str,
    g: str,
    d: str,
    p: str,
    trial: int,
    opts: BenchOptions,
) -> Measurement:
    args = benchmark_args(
        files.tools["benchmark_model"], graph_path, d, p, opts.threads, opts.runs, opts.warmup, tool
    )
    base = {
        "device": dev.serial,
        "graph": g,
        "delegate": d,
        "precision": p,
        "trial": trial,
        "tool": tool.kind,
    }
    try:
        res = dev.shell(args, opts.timeout_s, f"benchmarking {g} ({d}, {p})")
    except DeviceDisconnected:
        raise
    except DeviceError as e:  # a hung run: recorded, the sweep goes on
        return Measurement(**base, error=str(e))
    try:
        result = parse_benchmark_output(res.output)
    except BenchmarkRunError as e:
        return Measurement(**base, error=f"exit {res.rc}: {e}", output_tail=e.output_tail)
    if tool.kind == TOOL_LITERT and d == "gpu" and result.delegation is None:
        # it compiled GPU only with --require_full_delegation: every op runs on the GPU
        result = dataclasses.replace(result, delegation="full")
    return Measurement(**base, result=result)


def _check(
    dev: Adb, files: _DeviceFiles, name: str, g: str, p: str, opts: BenchOptions
) -> OutputCheck:
    args = inference_diff_args(
        files.tools["inference_diff"], files.remote(name), p, opts.threads, min(opts.runs, 20)
    )
    base = {"device": dev.serial, "graph": g, "precision": p, "threshold": opts.diff_threshold}
    try:
        res = dev.shell(args, opts.timeout_s, f"comparing GPU and CPU outputs of {g} ({p})")
    except DeviceDisconnected:
        raise
    except DeviceError as e:
        return OutputCheck(**base, error=str(e))
    try:
        return OutputCheck(**base, diff=parse_inference_diff(res.output))
    except BenchmarkRunError as e:
        return OutputCheck(**base, error=f"exit {res.rc}: {e}")


# ---------------------------------------------------------------------------------------------
# Host mode


def _rss_mb() -> float | None:
    """Resident memory of this process in MB (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def _random_input(shape, dtype, rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.random(size=shape, dtype=np.float32).astype(dtype)


def _stats(
    init_s: float, first_s: float, warm: list[float], times: list[float], rss0, rss_init, rss_end
) -> BenchmarkResult:
    t = np.asarray(times) * 1e6  # us
    return BenchmarkResult(
        inference_avg_us=float(t.mean()),
        init_us=init_s * 1e6,
        first_inference_us=first_s * 1e6,
        warmup_avg_us=float(np.mean(warm) * 1e6) if warm else None,
        inference_count=len(times),
        inference_min_us=float(t.min()),
        inference_max_us=float(t.max()),
        inference_std_us=float(t.std()),
        inference_median_us=float(np.median(t)),
        memory_init_mb=None if rss0 is None else rss_init - rss0,
        memory_overall_mb=None if rss0 is None else rss_end - rss0,
        source="host",
    )


def _time_calls(setup, call, runs: int, warmup: int) -> BenchmarkResult:
    """Time ``setup()`` (init), the first ``call``, ``warmup`` calls and ``runs`` timed calls."""
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    handle = setup()
    init_s = time.perf_counter() - t0
    rss_init = _rss_mb()
    t0 = time.perf_counter()
    call(handle)
    first_s = time.perf_counter() - t0
    laps = []
    for _ in range(warmup + runs):
        t0 = time.perf_counter()
        call(handle)
        laps.append(time.perf_counter() - t0)
    return _stats(init_s, first_s, laps[:warmup], laps[warmup:], rss0, rss_init, _rss_mb())


def time_litert(path: Path, threads: int, runs: int, warmup: int) -> BenchmarkResult:
    """Time one .tflite file with the LiteRT interpreter (XNNPACK) on random inputs."""
    from vosx.tracker_runtime.litert import make_interpreter

    rng = np.random.default_rng(0)

    def setup():
        interp = make_interpreter(path, threads=threads, xnnpack=True)
        for d in interp.get_input_details():
            interp.set_tensor(d["index"], _random_input(d["shape"], d["dtype"], rng))
        return interp

    return _time_calls(setup, lambda interp: interp.invoke(), runs, warmup)


def time_onnxruntime(path: Path, threads: int, runs: int, warmup: int) -> BenchmarkResult:
    """Time one .onnx file with ONNX Runtime (CPU) on random inputs."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    types = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}

    def setup():
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feeds = {
            i.name: _random_input(
                [s if isinstance(s, int) else 1 for s in i.shape],
                types.get(i.type, np.float32),
                rng,
            )
            for i in sess.get_inputs()
        }
        return sess, feeds

    return _time_calls(setup, lambda h: h[0].run(None, h[1]), runs, warmup)


def host_info() -> dict:
    """This machine, as the report records it."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": platform.platform(),
    }
    try:
        from importlib.metadata import version

        info["ai_edge_litert"] = version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - metadata is only informative
        pass
    return info


def _onnx_path(manifest: Manifest, graph: str) -> Path:
    """A graph's .onnx file, checked inside the export folder; a missing one is left to ONNX
    Runtime to report (recorded in the sweep), as an app-side export folder may lack it.
    """
    rel = manifest.graphs[graph].onnx
    if not os.path.lexists(manifest.root / rel):
        return manifest.root / rel  # safe: the manifest check refused absolute and '..' paths
    return manifest.onnx_path(graph)


def check_loadable(manifest: Manifest, precisions: tuple[str, ...]) -> None:
    """Load every .tflite file to be timed on the host once, before anything is measured, and
    check its inputs and outputs against the manifest (whose shapes the GPU check and the
    driver's cost are timed with).

    Raises:
        ManifestError: a file LiteRT cannot load, or whose signature is not the manifest's (one
            line naming it and the fix).
    """
    from vosx.tracker_runtime.litert import check_signature, interpreter_signature, make_interpreter

    specs = manifest.graphs
    for p in precisions:
        for g in GRAPH_NAMES:
            path = manifest.tflite_path(g, p)
            interp = make_interpreter(path, threads=1, xnnpack=False)
            check_signature(path, specs[g], *interpreter_signature(interp))


def _check_host_gpu() -> str:
    """The Vulkan device LiteRT's GPU accelerator runs on here.

    Raises:
        AcceleratorError: it cannot run here (the reason and the command that enables it).
    """
    from vosx.tracker_runtime.accelerator import probe_gpu

    probe = probe_gpu()
    if not probe.available:
        raise AcceleratorError(
            f"--delegate gpu with --device host: LiteRT's GPU accelerator cannot run here: "
            f"{probe.reason}"
        )
    return probe.adapter or "an unnamed Vulkan device"


def _manifest_inputs(manifest: Manifest, graph: str) -> dict[str, np.ndarray]:
    """Random float inputs of a graph's manifest shapes (the same for the CPU and the GPU)."""
    rng = np.random.default_rng(0)
    return {
        t.name: rng.random(size=t.shape, dtype=np.float32) for t in manifest.graphs[graph].inputs
    }


def time_gpu(path: Path, inputs: dict, runs: int, warmup: int) -> BenchmarkResult:
    """Time one .tflite file compiled GPU-only by LiteRT's accelerator (init = the compile)."""
    from vosx.tracker_runtime.accelerator import CompiledGraph

    def setup():
        return CompiledGraph(path, "gpu")

    result = _time_calls(setup, lambda graph: graph.run(inputs), runs, warmup)
    return dataclasses.replace(result, delegation="full", source="host-gpu")  # GPU-only compile


def check_host_gpu(manifest: Manifest, graph: str, precision: str) -> HostGpuCheck:
    """Compile one graph GPU-only and compare its outputs with the CPU's on the same inputs."""
    from vosx.tracker_runtime.accelerator import CompiledGraph, compare_on_gpu

    path = manifest.tflite_path(graph, precision)
    inputs = _manifest_inputs(manifest, graph)
    try:
        reference = CompiledGraph(path, "cpu").run(inputs)
        got = compare_on_gpu(path, inputs, reference)
    except AcceleratorError as e:  # a refused graph is recorded; the sweep goes on
        return HostGpuCheck(graph, precision, False, {}, None, str(e))
    return HostGpuCheck(graph, precision, got.fully_delegated, got.max_rel, got.adapter)


def _host_jobs(manifest: Manifest, precisions: tuple[str, ...], opts: BenchOptions, ort: bool):
    """(graph, backend, precision, path) of one host trial, for the asked delegates."""
    jobs = []
    for backend in (HOST_LITERT, HOST_GPU):
        if backend in opts.delegates:
            jobs += [
                (g, backend, p, manifest.tflite_path(g, p)) for p in precisions for g in GRAPH_NAMES
            ]
    if ort and HOST_LITERT in opts.delegates:
        jobs += [(g, HOST_ORT, "fp32", _onnx_path(manifest, g)) for g in GRAPH_NAMES]
    return jobs


def _time_host(manifest: Manifest, job: tuple, opts: BenchOptions) -> BenchmarkResult:
    g, backend, _, path = job
    if backend == HOST_GPU:
        return time_gpu(path, _manifest_inputs(manifest, g), opts.runs, opts.warmup)
    timer = time_litert if backend == HOST_LITERT else time_onnxruntime
    return timer(path, opts.threads, opts.runs, opts.warmup)


def run_host(
    manifest: Manifest, precisions: tuple[str, ...], opts: BenchOptions
) -> tuple[DeviceRun, tuple[str, ...]]:
    """The sweep on this machine: LiteRT per precision on the CPU (and ONNX Runtime on the fp32
    .onnx files, if installed) and/or on LiteRT's GPU accelerator, checked against the CPU.
    """
    run = DeviceRun("host", info=host_info())
    try:
        import onnxruntime  # noqa: F401 - only probing whether it is installed

        ort_ok = True
        notes: tuple[str, ...] = ()
    except ImportError:
        ort_ok = False
        notes = (ORT_MISSING,) if HOST_LITERT in opts.delegates else ()
    if HOST_GPU in opts.delegates:
        run.gpu_checks = [check_host_gpu(manifest, g, p) for p in precisions for g in GRAPH_NAMES]
    for trial in range(opts.trials):
        if trial:
            time.sleep(opts.cooldown_s)
        for job in _host_jobs(manifest, precisions, opts, ort_ok):
            g, backend, p, path = job
            base = ("host", g, backend, p, trial)
            try:
                r = _time_host(manifest, job, opts)
            except Exception as e:  # any backend failure is recorded; the sweep goes on
                run.measurements.append(
                    Measurement(*base, error=f"{path}: {e}", tool=_HOST_TOOLS[backend])
                )
                continue
            run.measurements.append(Measurement(*base, r, tool=_HOST_TOOLS[backend]))
    return run, notes


# ---------------------------------------------------------------------------------------------
# NumPy side of a frame (timed on this machine)


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
