"""What ``vosx export`` is asked to do: ``ExportOptions``, the one home of the export defaults,
and the rules of its ``--size``.

Import-light (standard library and ``vosx``'s stdlib-only modules), so that the command line reads
the defaults without importing torch. The values are shared with other commands and defined
where those read them: the size (``vosx.sizes.DEFAULT_SIZE``), the precisions
(``vosx.precision.DEFAULT_EXPORT_PRECISIONS``), the threads (``vosx.limits.DEFAULT_THREADS``),
the side limit (``vosx.sizes.MAX_SIDE``) and the stride every side is a multiple of
(``vosx.sizes.STRIDE``).
"""

from dataclasses import dataclass
from pathlib import Path

from vosx import sizes
from vosx.errors import ConfigError
from vosx.limits import DEFAULT_THREADS
from vosx.precision import DEFAULT_EXPORT_PRECISIONS, PRECISION_NAMES, precision
from vosx.sizes import DEFAULT_SIZE, MAX_SIDE, STRIDE

SCOPES = ("full", "segment")


def size_text(size: tuple[int, int]) -> str:
    """(480, 864) -> '480x864', as ``--size`` takes it."""
    return f"{size[0]}x{size[1]}"


@dataclass(frozen=True)
class ExportOptions:
    """What ``vosx export`` was asked to do."""

    checkpoint: Path | None
    out_dir: Path
    size: tuple[int, int] = DEFAULT_SIZE
    precisions: tuple[str, ...] = DEFAULT_EXPORT_PRECISIONS
    calib_dir: Path | None = None
    force: bool = False
    allow_cpu_ops: bool = False  # accept what the GPU refuses or computes far beyond fp16
    threads: int = DEFAULT_THREADS
    require_gpu_check: bool = False  # fail (before writing) where the GPU check cannot run
    gpu_check: bool = True  # run LiteRT's GPU accelerator where a Vulkan device is usable
    strict: bool = False  # a finding beyond its expected range fails the export
    scope: str = "full"  # SCOPES: "segment" is what `vosx segment` needs (fp32, the CPU gates)

    @property
    def calibrated(self) -> bool:
        """A calibrated precision (int8) is asked for: it needs calibration samples."""
        return any(precision(p).calibrated for p in self.precisions)


def check_size(size: tuple[int, int]) -> None:
    """A padded input size must be positive multiples of ``STRIDE``, at most ``MAX_SIDE`` per
    side; the error names the nearest valid.

    Raises:
        ConfigError: naming the size and the rule it breaks.
    """
    h, w = size
    example = size_text(DEFAULT_SIZE)
    if h <= 0 or w <= 0:
        raise ConfigError(
            f"--size {h}x{w}: height and width must be positive multiples of {STRIDE}, "
            f"e.g. {example}"
        )
    if max(h, w) > MAX_SIDE:
        raise ConfigError(
            f"--size {h}x{w}: each side must be at most {MAX_SIDE} (multiples of {STRIDE}), "
            f"e.g. {example}"
        )
    if h % STRIDE or w % STRIDE:

        def near(v: int) -> str:
            lo = max(STRIDE, v // STRIDE * STRIDE)
            return f"{lo}" if lo == v else f"{lo} or {lo + STRIDE}"

        raise ConfigError(
            f"--size {h}x{w}: both sides must be multiples of {STRIDE} (padded network input); "
            f"nearest valid: {near(h)} x {near(w)}"
        )


def parse_size(text: str) -> tuple[int, int]:
    """'480x864' -> (480, 864), checked (``check_size``).

    Raises:
        ConfigError: not HEIGHTxWIDTH, or a size ``check_size`` refuses.
    """
    h, w = sizes.parse_size(text)
    check_size((h, w))
    return h, w


def check_options(opts: ExportOptions) -> None:
    """Refuse options that contradict each other or name what does not exist.

    Raises:
        ConfigError: bad size, unknown or repeated precision, unknown scope, contradicting GPU
            options, or a ``--calib`` that is not a folder.
    """
    check_size(opts.size)
    names = ",".join(opts.precisions)
    if not opts.precisions or any(p not in PRECISION_NAMES for p in opts.precisions):
        raise ConfigError(f"--precision {names}: choose from {', '.join(PRECISION_NAMES)}")
    if len(set(opts.precisions)) != len(opts.precisions):
        raise ConfigError(f"--precision {names}: names a precision twice; give each once")
    if opts.scope not in SCOPES:
        raise ConfigError(f"scope {opts.scope!r}: choose from {', '.join(SCOPES)}")
    if opts.require_gpu_check and not opts.gpu_check:
        raise ConfigError("--require-gpu-check and --no-gpu-check contradict; drop one")
    if opts.calib_dir is not None and not Path(opts.calib_dir).is_dir():
        raise ConfigError(
            f"--calib {opts.calib_dir}: not a folder; give a video folder with masks (DAVIS or "
            "YouTube-VOS layout)"
        )
