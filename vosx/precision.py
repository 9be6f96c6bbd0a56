"""The precisions an export has, one ``Precision`` record each: the one home of a precision.

Every per-precision fact lives here: its file names (the manifest's and onnx2tf's), whether it
is calibrated, whether the GPU delegate runs it, the checks that judge its files and their
bounds, and the GPU flag an app should set for it. ``vosx.export``, ``vosx.manifest``,
``tracker_runtime`` and ``android_bench`` read this table instead of comparing precision names.
Standard library only, so that app-side code can import it without torch or tensorflow.

The per-precision bounds are defined here (``vosx.export.verify`` re-exports them beside its
other named tolerances, and ``verify.CHECKS`` shows them).
"""

from dataclasses import dataclass

from vosx.errors import ConfigError

# ------------------------------------- per-precision bounds (the rest: vosx.export.verify)
TFLITE_FP32_MAX_REL = 1e-4  # gate: PyTorch vs TFLite fp32, max |diff| / max |output|
E2E_IOU_FP32 = 0.999  # gate: per-frame mask IoU, TFLite fp32 clip vs PyTorch (decisive pixels)
TFLITE_FP16_MAX_REL = 1e-2  # expected: TFLite fp16 file (fp16 weights) vs PyTorch
E2E_IOU_FP16 = 0.99  # expected per-frame mask IoU, TFLite fp16 clip vs PyTorch
INT8_MAX_REL = 0.25  # expected: TFLite int8 file vs PyTorch
E2E_IOU_INT8 = 0.9  # expected per-frame, TFLite int8 clip vs PyTorch


@dataclass(frozen=True)
class Precision:
    """One precision of the exported .tflite files.

    Attributes:
        name: As the command line, the manifest and the report name it ("fp32").
        suffix: The manifest's file suffix: ``{graph}_{suffix}.tflite``.
        onnx2tf_suffix: The suffix onnx2tf gives the file it writes.
        calibrated: Quantized with ranges calibrated on sample inputs (so parity is judged on
            realistic inputs only: a random one lies outside the ranges).
        exact: Computes in float32 as PyTorch does: its activations are the model's own (the
            activation peak is measured on it) and its file's I/O is what the manifest lists.
        fp16_weights: Weights stored in fp16: its export checks the activations' fp16 headroom
            (``fp16_overflow``).
        gpu: A float file the GPU delegate runs (the analyzer, the GPU-only compile and the GPU
            clip check it).
        file_check: The ``verify.CHECKS`` entry that judges the file's parity against PyTorch.
        file_bound: That check's bound on max |diff| / max |output|.
        e2e_check: The ``verify.CHECKS`` entry that judges the clip through the driver.
        e2e_bound: That check's bound on the worst frame's mask IoU.
        gpu_precision_loss_allowed: The flag an app (or ``benchmark_model``) sets for this file
            on a GPU: fp16 arithmetic allowed, except for fp32 files, which measure fp32.
    """

    name: str
    suffix: str
    onnx2tf_suffix: str
    calibrated: bool
    exact: bool
    fp16_weights: bool
    gpu: bool
    file_check: str
    file_bound: float
    e2e_check: str
    e2e_bound: float
    gpu_precision_loss_allowed: bool

    def file_name(self, graph: str) -> str:
        """The .tflite file of ``graph`` in this precision, e.g. ``decoder_float32.tflite``."""
        return f"{graph}_{self.suffix}.tflite"


PRECISIONS: tuple[Precision, ...] = (
    Precision(
        name="fp32",
        suffix="float32",
        onnx2tf_suffix="float32",
        calibrated=False,
        exact=True,
        fp16_weights=False,
        gpu=True,
        file_check="tflite_fp32",
        file_bound=TFLITE_FP32_MAX_REL,
        e2e_check="tflite_fp32",
        e2e_bound=E2E_IOU_FP32,
        gpu_precision_loss_allowed=False,
    ),
    Precision(
        name="fp16",
        suffix="float16",
        onnx2tf_suffix="float16",
        calibrated=False,
        exact=False,
        fp16_weights=True,
        gpu=True,
        file_check="fp16_file",
        file_bound=TFLITE_FP16_MAX_REL,
        e2e_check="end_to_end_fp16",
        e2e_bound=E2E_IOU_FP16,
        gpu_precision_loss_allowed=True,
    ),
    Precision(
        name="int8",
        suffix="int8",
        onnx2tf_suffix="integer_quant",
        calibrated=True,
        exact=False,
        fp16_weights=False,
        gpu=False,
        file_check="int8_file",
        file_bound=INT8_MAX_REL,
        e2e_check="end_to_end_int8",
        e2e_bound=E2E_IOU_INT8,
        gpu_precision_loss_allowed=True,
    ),
)
"""Every precision, in the order the manifest, the report and the command line list them."""

PRECISION_NAMES: tuple[str, ...] = tuple(p.name for p in PRECISIONS)
DEFAULT_EXPORT_PRECISIONS: tuple[str, ...] = ("fp32", "fp16")
"""What ``vosx export`` writes unless ``--precision`` says otherwise."""


def precision(name: str) -> Precision:
    """The record of precision ``name``.

    Raises:
        ConfigError: ``name`` is not a precision (one line listing them).
    """
    for p in PRECISIONS:
        if p.name == name:
            return p
    raise ConfigError(f"precision {str(name)[:40]!r}: choose from {', '.join(PRECISION_NAMES)}")
