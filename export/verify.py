"""The verification checks of ``vosx export``: their named tolerances and the check table.

Every check is a **gate** or a **finding** (``CHECKS``; the README's Export section shows the
same table, rendered by ``checks_table``):

* a gate catches a converter or delegate defect, whatever the checkpoint: it fails the export
  and nothing is written;
* a finding measures what fp16 or int8 arithmetic does to *this* model (an untrained or briefly
  trained model is more sensitive than a trained one): it is recorded in ``report.json`` with a
  verdict, and one beyond its expected range prints one warning line naming the figure, the
  range and what it means on a phone. ``vosx export --strict`` makes findings fail too.

The GPU delegate is judged against the model's own fp16 sensitivity: the same inputs run in
PyTorch with fp16 weights and every intermediate tensor rounded to fp16 (``fp16.Fp16Graphs``). A
GPU result far beyond what fp16 arithmetic explains is a delegate defect (a gate); one that fp16
explains is a finding about the model.

The bounds of each precision's files (``TFLITE_FP32_MAX_REL``, ``E2E_IOU_FP32``, ...) are defined
with its record in ``vosx.precision``; the others here. What measures the figures: ``measure``
(each file and graph), ``fp16`` (fp16 arithmetic in PyTorch), ``clip`` (a clip through the
driver), ``gpu`` (LiteRT's GPU accelerator, in a child process); ``judge`` turns figures into
verdicts. Standard library only.
"""

from dataclasses import dataclass

from vosx.precision import (
    E2E_IOU_FP16,
    E2E_IOU_FP32,
    E2E_IOU_INT8,
    INT8_MAX_REL,
    TFLITE_FP16_MAX_REL,
    TFLITE_FP32_MAX_REL,
)

# ---------------------------------------------------------------- gates (the export fails)
# PyTorch vs ONNX Runtime, max |diff| / max(1, max |output|). Two fp32 runtimes sum in other
# orders: on real frames the bundled key encoder differs by 1.16e-5 (58 DAVIS training frames as
# --calib probes; 1e-5 refused that export), a wrong graph by 1e-2 or more. The TFLite fp32 gate's
# bound (vosx.precision.TFLITE_FP32_MAX_REL), for the same reason.
ONNX_MAX_ABS = 1e-4
FP16_MAX = 65504.0  # largest finite float16; the GPU delegate computes in fp16
FP16_HEADROOM = 0.5  # fail an fp16 export when an activation passes this fraction of FP16_MAX
# The GPU's max |diff| against PyTorch may be this many times what fp16 arithmetic in PyTorch
# gives on the same inputs (``fp16.Fp16Graphs``), output by output: a ratio, so that a
# random-weight model and a trained one are judged alike. ``Fp16Graphs`` sums only the memory
# read-out in fp16 term by term; the GPU's convolutions sum in fp16 too, so convolutional graphs
# drift more on the GPU. Measured worst ratios (README, The GPU check): 2.2 bundled, 8.4 the
# tests' tiny model, 12 a `vosx init` model (its key encoder). A wrong kernel is off by a tenth
# of the output range or more: hundreds of times fp16's drift on a trained model.
GPU_DEFECT_FACTOR = 50.0
FP16_UNIT = 2.0**-11  # fp16's unit roundoff: the least drift fp16 arithmetic is credited with

# ----------------------------------------------------- findings (reported with a verdict)
FP16_ARITH_MAX_REL = 3e-2  # expected: PyTorch in fp16 arithmetic vs PyTorch
GPU_FP16_MAX_REL = 3e-2  # expected: LiteRT's GPU accelerator (fp16 arithmetic) vs PyTorch
E2E_IOU_GPU = 0.97  # expected per-frame, GPU clip vs PyTorch: fp16 *arithmetic*, and the driver
# feeds each frame's GPU mask back into the memory, so small flips compound

# ------------------------------------------------------------------------ how clips are judged
E2E_TIE_MARGIN = 1e-3  # pixels whose top-2 class probabilities are closer are near ties
E2E_GPU_TIE_MARGIN = 1e-2  # the same on the GPU run: fp16 arithmetic flips pixels within 1e-3
E2E_MIN_DECISIVE = 0.05  # below this fraction of decisive pixels a clip is inconclusive
# an object whose two masks together cover less of the frame counts as absent from both: a model
# that lost the object on the clip (PyTorch predicting none of it) and a GPU run predicting 4
# pixels of 414,720 gave IoU 0, "100% of mask pixels change" (a 200-step checkpoint, 480x864)
E2E_MIN_AREA = 1e-3

GATE, FINDING = "gate", "finding"
SHIP_FP32 = "train longer, or ship the fp32 file with gpu_precision_loss_allowed=false"


def _n(x: float) -> str:
    """A tolerance as the table shows it: 1e-4, 0.999, 50."""
    if 0 < abs(x) < 1e-2:
        mantissa, exponent = f"{x:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{x:g}"


@dataclass(frozen=True)
class Check:
    """One verification check: what it measures, its bound, and what missing it means.

    ``kind``: ``GATE`` (the export fails) or ``FINDING`` (reported with a verdict; a warning line
    when beyond ``bound``, a failure with ``--strict``). A finding's one-line message
    (``judge.Verdicts``) is ``says``, then, beyond its range, ``beyond``: what that means on a
    phone. ``says`` is, for a drift finding, the message with ``{subject}``, ``{figure}``,
    ``{bound}``, ``{adapter}`` and ``{reference}`` (fp16 arithmetic's figure) to fill in; for a
    clip finding, which run it is (``{adapter}``).
    """

    name: str  # as in report.json
    kind: str
    measures: str
    bound: str  # the gate's bound or the finding's expected range, with the tolerance's name
    means: str  # what a miss says
    says: str = ""  # findings: what the figure says (see above)
    beyond: str = ""  # findings: what a figure beyond the expected range means on a phone
    # ({calibrate}: CALIBRATE_HINTS' advice for how the int8 files were calibrated)


# How the int8 files were calibrated, for an int8 finding's message (by whether --calib was
# given). On the bundled model calibration moved dev-split J&F between 0.71 and 0.77 against fp32's
# 0.80 (README, Measured figures), so the advice is the float files either way.
CALIBRATE_HINTS = {
    False: "int8 was calibrated on 8 frames of the bundled real clip",
    True: "int8 was calibrated on the --calib videos",
}

CHECKS: tuple[Check, ...] = (
    Check(
        "onnx_parity",
        GATE,
        "PyTorch vs ONNX Runtime, each graph, a random and a realistic input",
        f"max abs diff <= `ONNX_MAX_ABS` {_n(ONNX_MAX_ABS)} x max(1, max abs output)",
        "the ONNX export computes something else",
    ),
    Check(
        "tflite_fp32",
        GATE,
        "PyTorch vs the TFLite fp32 file, each graph, the same inputs; the clip through the driver",
        f"max abs diff <= `TFLITE_FP32_MAX_REL` {_n(TFLITE_FP32_MAX_REL)} x max abs output; "
        f"per-frame mask IoU >= `E2E_IOU_FP32` {_n(E2E_IOU_FP32)}",
        "the converter changed the model",
    ),
    Check(
        "finite",
        GATE,
        "every output of every run: PyTorch, ONNX Runtime, each TFLite file, the GPU, each clip",
        "no NaN or Inf",
        "a broken checkpoint, conversion or kernel",
    ),
    Check(
        "gpu_ops",
        GATE,
        "every fp32/fp16 graph: TensorFlow's analyzer, the delegate's structural limits "
        "(no custom/Flex ops, rank <= 4), a GPU-only compile on LiteRT's GPU accelerator",
        "every op runs on the GPU",
        "a phone would run ops on its CPU (`--allow-cpu-ops` accepts that)",
    ),
    Check(
        "gpu_defect",
        GATE,
        "GPU outputs vs PyTorch, against fp16 arithmetic in PyTorch on the same inputs",
        f"max abs diff <= `GPU_DEFECT_FACTOR` {_n(GPU_DEFECT_FACTOR)} x fp16 arithmetic's (at "
        "least its unit roundoff)",
        "the delegate computes something fp16 cannot explain (`--allow-cpu-ops` accepts that)",
    ),
    Check(
        "fp16_overflow",
        GATE,
        "the largest intermediate activation of each graph on a clip's real memory (fp16 exports)",
        f"< {_n(FP16_MAX)} x `FP16_HEADROOM` {_n(FP16_HEADROOM)}",
        "fp16 would overflow to Inf (the message names the tensor)",
    ),
    Check(
        "fp16_file",
        FINDING,
        "PyTorch vs the TFLite fp16 file (fp16 weights), each graph",
        f"max abs diff <= `TFLITE_FP16_MAX_REL` {_n(TFLITE_FP16_MAX_REL)} x max abs output",
        "fp16 weights move the model's outputs",
        "fp16 weights move {subject} by {figure} of its output range (expected <= {bound})",
        "the fp16 file computes a visibly different model; train longer, or ship the fp32 file",
    ),
    Check(
        "fp16_arithmetic",
        FINDING,
        "PyTorch with fp16 weights, every tensor rounded to fp16 and the memory read-out summed "
        "in fp16 (`Fp16Graphs`) vs PyTorch, each graph, the realistic input",
        f"max abs diff <= `FP16_ARITH_MAX_REL` {_n(FP16_ARITH_MAX_REL)} x max abs output",
        "the model is fp16-sensitive: a phone GPU allowing precision loss drifts as much",
        "fp16 arithmetic moves {subject} by {figure} of its output range in PyTorch "
        "(expected <= {bound})",
        f"the model is fp16-sensitive, so a phone GPU allowing precision loss drifts as much; "
        f"{SHIP_FP32}",
    ),
    Check(
        "gpu_arithmetic",
        FINDING,
        "LiteRT's GPU accelerator (fp16 arithmetic) vs PyTorch, each graph",
        f"max abs diff <= `GPU_FP16_MAX_REL` {_n(GPU_FP16_MAX_REL)} x max abs output",
        "the model is fp16-sensitive on a GPU",
        "the GPU, {adapter}, moves {subject} by {figure} of its output range (expected <= "
        "{bound}; fp16 arithmetic in PyTorch: {reference})",
        f"the model is fp16-sensitive on a GPU; {SHIP_FP32}",
    ),
    Check(
        "end_to_end_fp16",
        FINDING,
        "the clip through the driver, TFLite fp16 file vs PyTorch",
        f"per-frame mask IoU >= `E2E_IOU_FP16` {_n(E2E_IOU_FP16)}",
        "masks change with fp16 weights",
        "with the fp16 file",
        "fp16 weights change the masks; " + SHIP_FP32,
    ),
    Check(
        "end_to_end_gpu",
        FINDING,
        "the clip through the driver on LiteRT's GPU accelerator vs PyTorch",
        f"per-frame mask IoU >= `E2E_IOU_GPU` {_n(E2E_IOU_GPU)}",
        "masks change under fp16 arithmetic",
        "under fp16 arithmetic on the GPU, {adapter},",
        "the model is fp16-sensitive; " + SHIP_FP32,
    ),
    Check(
        "int8_file",
        FINDING,
        "PyTorch vs the TFLite int8 file, each graph, the realistic input (int8 is calibrated "
        "on such inputs)",
        f"max abs diff <= `INT8_MAX_REL` {_n(INT8_MAX_REL)} x max abs output",
        "int8 quantization moves the outputs",
        "int8 moves {subject} by {figure} of its output range (expected <= {bound})",
        "the int8 files compute a visibly different model ({calibrate}); ship the fp16 / fp32 "
        "files",
    ),
    Check(
        "end_to_end_int8",
        FINDING,
        "the clip through the driver, TFLite int8 file vs PyTorch",
        f"per-frame mask IoU >= `E2E_IOU_INT8` {_n(E2E_IOU_INT8)}",
        "int8 masks differ from the model's",
        "with the int8 files",
        "int8 masks differ from the model's ({calibrate}); ship the fp16 / fp32 files",
    ),
)
CHECK_NAMES = tuple(c.name for c in CHECKS)


def check(name: str) -> Check:
    """The ``CHECKS`` entry called ``name``."""
    return next(c for c in CHECKS if c.name == name)


def checks_table() -> str:
    """``CHECKS`` as the Markdown table the README shows."""
    rows = [
        "| check | kind | what it measures | bound / expected | a miss means |",
        "|---|---|---|---|---|",
    ]
    for c in CHECKS:
        kind = "**gate**: export fails" if c.kind == GATE else "finding: reported"
        rows.append(f"| `{c.name}` | {kind} | {c.measures} | {c.bound} | {c.means} |")
    return "\n".join(rows)
