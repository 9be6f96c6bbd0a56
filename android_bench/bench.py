"""``vosx bench``: time each graph x delegate x precision over trials, on phones (adb) or the host.

``run_bench`` checks the options and the export folder, then runs one sweep: on phones over adb
(``phone``, with the tools of ``tools.TOOLS``) or on this machine (``host``: LiteRT, ONNX Runtime,
LiteRT's GPU accelerator); either way the NumPy side of a frame (the segmentation driver and the
box tracker) is timed here (``frame_cost``). The result is a ``results.BenchReport``; ``report``
prints and writes it.
"""

import math
from datetime import UTC, datetime

from vosx import limits
from vosx.android_bench.frame_cost import measure_host_costs
from vosx.android_bench.host import HOST_LITERT, HOST_ORT, prepare_host, run_host
from vosx.android_bench.options import DELEGATES, BenchOptions
from vosx.android_bench.phone import find_phones, run_phones
from vosx.android_bench.results import BenchReport
from vosx.errors import ConfigError
from vosx.manifest import Manifest, load_manifest

__all__ = [  # HOST_LITERT, HOST_ORT: the host's delegate names, read here by vosx.demo
    "HOST_LITERT",
    "HOST_ORT",
    "BenchOptions",
    "resolve_precisions",
    "run_bench",
]


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
    if opts.objects > limits.MAX_OBJECTS:
        raise ConfigError(
            f"--objects {opts.objects}: must be 1..{limits.MAX_OBJECTS} (label maps are uint8); "
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
        adapter = prepare_host(manifest, precisions, opts)
        costs = measure_host_costs(manifest, opts.objects, opts.tracker_margin)
        run, notes = run_host(manifest, precisions, opts, adapter)
        return BenchReport(opts, manifest.input_size, precisions, (run,), costs, started, notes)
    phones = find_phones(opts)
    costs = measure_host_costs(manifest, opts.objects, opts.tracker_margin)
    runs = run_phones(phones, manifest, precisions, opts)
    return BenchReport(opts, manifest.input_size, precisions, runs, costs, started)
