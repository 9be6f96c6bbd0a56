"""User-facing errors: every ``VosxError`` becomes one line on stderr and exit code 1 at the CLI.

Set ``VOSX_RAISE_ERRORS=1`` (the tests do) to get the traceback instead.
"""

import os


class VosxError(Exception):
    """Base class for errors shown to the user as a single line."""

    exit_code = 1


class CheckpointError(VosxError):
    """A checkpoint file is missing, unreadable, unsafe or does not match the model."""


class ConfigError(VosxError):
    """A configuration value or command-line option is invalid."""


class OutputError(ConfigError):
    """An output path is refused (exists, is or holds an input, cannot be written)."""


class TrainingError(VosxError):
    """A training run stopped: its loss or weights became NaN or infinite."""


class ExportError(VosxError):
    """A stage of ``vosx export`` failed (ONNX, conversion or verification)."""


class ParityError(ExportError):
    """A converted graph does not match its reference within the named tolerance."""


class ManifestError(VosxError):
    """An export folder's manifest is missing, malformed, or its files do not match."""


class InputDataError(VosxError):
    """Frames, masks or dataset folders given by the user are unusable."""


class DeviceError(VosxError):
    """adb, the device or the benchmark binary is unusable."""


class AcceleratorError(VosxError):
    """LiteRT's GPU accelerator is unavailable here or refuses a graph (named, with its ops)."""


class BenchmarkError(VosxError):
    """benchmark_model failed or printed output that cannot be read."""


def raise_errors() -> bool:
    """Whether errors should propagate with a traceback instead of one stderr line."""
    return os.environ.get("VOSX_RAISE_ERRORS", "") not in ("", "0")
