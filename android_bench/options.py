"""What ``vosx bench`` is asked to do: ``BenchOptions`` and its defaults (stdlib only).

The one place the bench options and their defaults are written: the CLI reads its option
defaults from here without importing NumPy or the benchmark code.
"""

from dataclasses import dataclass
from pathlib import Path

from vosx.limits import MAX_THREADS

DELEGATES = ("gpu", "cpu", "nnapi")
DEFAULT_DELEGATE = {"adb": "gpu", "host": "cpu"}  # --delegate when none is given
ALL_DELEGATES = {"adb": DELEGATES, "host": ("cpu",)}  # what --delegate all means per device
DEFAULT_COOLDOWN_S = {"adb": 10.0, "host": 0.0}  # --cooldown when none is given


@dataclass(frozen=True)
class BenchOptions:
    """What ``vosx bench`` was asked to do.

    Args:
        export_dir: Output folder of ``vosx export``.
        device: "adb" (phones) or "host" (this machine).
        serials: Devices to use (empty: ANDROID_SERIAL, else the only one).
        delegates: Subset of ``DELEGATES`` (host: "cpu" only).
        precisions: Subset of "fp32", "fp16", "int8"; empty means every exported precision.
        threads: CPU threads (benchmark_model --num_threads, interpreter threads on the host);
            the default is 4, or 2 x the CPUs of a smaller host (``vosx.limits.MAX_THREADS``).
        objects: K, the number of objects of the per-frame estimate.
        runs: Timed runs per benchmark.
        warmup: Warm-up runs per benchmark.
        trials: Repetitions of the whole sweep (median and spread are over these).
        cooldown_s: Pause between trials, seconds.
        keep: Leave the pushed files on the device.
        check_outputs: Compare GPU with CPU outputs with inference_diff.
        diff_threshold: Mean absolute GPU-vs-CPU error above which a graph is flagged.
        benchmark_binary: benchmark_model for android_aarch64 (else $VOSX_BENCHMARK_MODEL / cache).
        inference_diff_binary: inference_diff for android_aarch64 (else $VOSX_INFERENCE_DIFF or
            the cache).
        timeout_s: Longest one benchmark run may take on the device, seconds.
        tracker_margin: ``margin`` of the constant-velocity tracker timed for the estimate.
    """

    export_dir: Path
    device: str = "adb"
    serials: tuple[str, ...] = ()
    delegates: tuple[str, ...] = (DEFAULT_DELEGATE["adb"],)
    precisions: tuple[str, ...] = ()
    threads: int = min(4, MAX_THREADS)
    objects: int = 1
    runs: int = 50
    warmup: int = 5
    trials: int = 3
    cooldown_s: float = DEFAULT_COOLDOWN_S["adb"]
    keep: bool = False
    check_outputs: bool = False
    diff_threshold: float = 0.05
    benchmark_binary: Path | None = None
    inference_diff_binary: Path | None = None
    timeout_s: float = 600.0
    tracker_margin: float | None = None

    @classmethod
    def for_device(
        cls,
        export_dir: Path,
        device: str = "adb",
        delegate: str | None = None,
        precision: str = "all",
        cooldown_s: float | None = None,
        **options,
    ) -> "BenchOptions":
        """The options of ``vosx bench``: one delegate / precision name or "all", per-device
        defaults for the delegate and the cooldown when None; ``options`` are the other fields.
        """
        delegate = delegate or DEFAULT_DELEGATE.get(device, DEFAULT_DELEGATE["adb"])
        return cls(
            export_dir=export_dir,
            device=device,
            delegates=ALL_DELEGATES.get(device, DELEGATES) if delegate == "all" else (delegate,),
            precisions=() if precision == "all" else (precision,),
            cooldown_s=DEFAULT_COOLDOWN_S.get(device, 0.0) if cooldown_s is None else cooldown_s,
            **options,
        )
