"""Verification at every conversion boundary: the checks, their named tolerances, and the
measurements behind the export report.

Every check is a **gate** or a **finding** (``CHECKS``; the README's Export section shows the
same table, rendered by ``checks_table``):

* a gate catches a converter or delegate defect, whatever the checkpoint: it fails the export
  and nothing is written;
* a finding measures what fp16 or int8 arithmetic does to *this* model (an untrained or briefly
  trained model is more sensitive than a trained one): it is recorded in ``report.json`` with a
  verdict, and one beyond its expected range prints one warning line naming the figure, the
  range and what it means on a phone. ``vosx export --strict`` makes findings fail too.

The GPU delegate is judged against the model's own fp16 sensitivity: the same inputs run in
PyTorch with fp16 weights and every intermediate tensor rounded to fp16 (``Fp16Graphs``). A GPU
result far beyond what fp16 arithmetic explains is a delegate defect (a gate); one that fp16
explains is a finding about the model.

Measurements: PyTorch -> ONNX Runtime, PyTorch -> TFLite per precision, the GPU-delegate
verdicts, fp16 headroom of every intermediate tensor, op counts, MACs, and a clip run through the
same two-frame memory driver with the PyTorch graphs and with the TFLite graphs, on the CPU and
on LiteRT's GPU accelerator. All GPU work runs in one child process (``run_gpu_checks``:
``python -m vosx.export.verify``), because LiteRT's GPU path crashes in a process that loaded
TensorFlow. Shapes: NumPy arrays as the manifest lists them (NHWC, ``1 x 1 x N x C`` memory).
"""

import gc
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------- gates (the export fails)
ONNX_MAX_ABS = 1e-5  # PyTorch vs ONNX Runtime, max |diff| / max(1, max |output|)
TFLITE_FP32_MAX_REL = 1e-4  # PyTorch vs TFLite fp32, max |diff| / max |output|
E2E_IOU_FP32 = 0.999  # per-frame mask IoU, TFLite fp32 clip vs PyTorch (decisive pixels)
FP16_MAX = 65504.0  # largest finite float16; the GPU delegate computes in fp16
FP16_HEADROOM = 0.5  # fail an fp16 export when an activation passes this fraction of FP16_MAX
# The GPU's max |diff| against PyTorch may be this many times what fp16 arithmetic in PyTorch
# gives on the same inputs (``Fp16Graphs``), output by output: a ratio, so that a random-weight
# model and a trained one are judged alike. ``Fp16Graphs`` sums only the memory read-out in fp16
# term by term; the GPU's convolutions sum in fp16 too, so convolutional graphs drift more on
# the GPU. Measured worst ratios (README, The GPU check): 2.2 bundled, 8.4 the tests' tiny model,
# 12 a `vosx init` model (its key encoder). A wrong kernel is off by a tenth of the output range
# or more: hundreds of times fp16's drift on a trained model.
GPU_DEFECT_FACTOR = 50.0
FP16_UNIT = 2.0**-11  # fp16's unit roundoff: the least drift fp16 arithmetic is credited with
FP16_ACC_MIN = 256  # Fp16Graphs sums matrix products this long term by term in fp16 (read-out)

# ----------------------------------------------------- findings (reported with a verdict)
TFLITE_FP16_MAX_REL = 1e-2  # expected: TFLite fp16 file (fp16 weights) vs PyTorch
FP16_ARITH_MAX_REL = 3e-2  # expected: PyTorch in fp16 arithmetic vs PyTorch
GPU_FP16_MAX_REL = 3e-2  # expected: LiteRT's GPU accelerator (fp16 arithmetic) vs PyTorch
INT8_MAX_REL = 0.25  # expected: TFLite int8 file vs PyTorch
E2E_IOU_FP16 = 0.99  # expected per-frame mask IoU, TFLite fp16 clip vs PyTorch
E2E_IOU_GPU = 0.97  # expected per-frame, GPU clip vs PyTorch: fp16 *arithmetic*, and the driver
# feeds each frame's GPU mask back into the memory, so small flips compound
E2E_IOU_INT8 = 0.9  # expected per-frame, TFLite int8 clip vs PyTorch

# ------------------------------------------------------------------------ how clips are judged
E2E_TIE_MARGIN = 1e-3  # pixels whose top-2 class probabilities are closer are near ties
E2E_GPU_TIE_MARGIN = 1e-2  # the same on the GPU run: fp16 arithmetic flips pixels within 1e-3
E2E_MIN_DECISIVE = 0.05  # below this fraction of decisive pixels a clip is inconclusive

GATE, FINDING = "gate", "finding"


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
    when beyond ``bound``, a failure with ``--strict``).
    """

    name: str  # as in report.json
    kind: str
    measures: str
    bound: str  # the gate's bound or the finding's expected range, with the tolerance's name
    means: str  # what a miss says


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
    ),
    Check(
        "fp16_arithmetic",
        FINDING,
        "PyTorch with fp16 weights, every tensor rounded to fp16 and the memory read-out summed "
        "in fp16 (`Fp16Graphs`) vs PyTorch, each graph, the realistic input",
        f"max abs diff <= `FP16_ARITH_MAX_REL` {_n(FP16_ARITH_MAX_REL)} x max abs output",
        "the model is fp16-sensitive: a phone GPU allowing precision loss drifts as much",
    ),
    Check(
        "gpu_arithmetic",
        FINDING,
        "LiteRT's GPU accelerator (fp16 arithmetic) vs PyTorch, each graph",
        f"max abs diff <= `GPU_FP16_MAX_REL` {_n(GPU_FP16_MAX_REL)} x max abs output",
        "the model is fp16-sensitive on a GPU",
    ),
    Check(
        "end_to_end_fp16",
        FINDING,
        "the clip through the driver, TFLite fp16 file vs PyTorch",
        f"per-frame mask IoU >= `E2E_IOU_FP16` {_n(E2E_IOU_FP16)}",
        "masks change with fp16 weights",
    ),
    Check(
        "end_to_end_gpu",
        FINDING,
        "the clip through the driver on LiteRT's GPU accelerator vs PyTorch",
        f"per-frame mask IoU >= `E2E_IOU_GPU` {_n(E2E_IOU_GPU)}",
        "masks change under fp16 arithmetic",
    ),
    Check(
        "int8_file",
        FINDING,
        "PyTorch vs the TFLite int8 file, each graph, the realistic input (int8 is calibrated "
        "on such inputs)",
        f"max abs diff <= `INT8_MAX_REL` {_n(INT8_MAX_REL)} x max abs output",
        "int8 quantization moves the outputs (calibrate with `--calib` real frames)",
    ),
    Check(
        "end_to_end_int8",
        FINDING,
        "the clip through the driver, TFLite int8 file vs PyTorch",
        f"per-frame mask IoU >= `E2E_IOU_INT8` {_n(E2E_IOU_INT8)}",
        "int8 masks differ from the model's",
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


@dataclass(frozen=True)
class Parity:
    """A graph's worst-case differences over its outputs, each against that output's own scale.

    ``max_abs``: max |diff|; ``rel``: max |diff| / max |reference|; ``scaled``: max |diff| /
    max(1, max |reference|), i.e. absolute for unit-scale outputs and relative for larger ones
    (a trained key encoder's outputs reach ~30, where float32 rounding alone gives ~3e-5).
    """

    max_abs: float
    rel: float
    scaled: float
    worst_output: str  # the output with the largest ``scaled`` difference

    def to_dict(self) -> dict:
        return {
            "max_abs": self.max_abs,
            "rel": self.rel,
            "scaled": self.scaled,
            "worst_output": self.worst_output,
        }


def compare(ref: dict, got: dict) -> Parity:
    """Parity of ``got`` against ``ref`` (dicts of output name -> array of the same shape).

    A NaN or infinity in an output is the worst parity (infinite error: every gate fails).
    """
    from vosx.tracker_runtime.accelerator import abs_error

    max_abs = rel = scaled = -1.0
    worst = ""
    for name, r in ref.items():
        g = got[name]
        if g.shape != r.shape:
            raise ValueError(f"output {name}: shape {g.shape} differs from reference {r.shape}")
        err, scale = abs_error(g, r)  # inf on NaN / inf: max() below would drop a NaN
        max_abs = max(max_abs, err)
        rel = max(rel, err / max(scale, 1e-12))
        if err / max(scale, 1.0) > scaled:
            worst, scaled = name, err / max(scale, 1.0)
    return Parity(max_abs, rel, scaled, worst)


def run_onnx(path: Path, inputs: dict) -> dict:
    """Run an ONNX file with ONNX Runtime (CPU) -> outputs by name."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, inputs), strict=True))


def run_tflite(path: Path, inputs: dict, threads: int = 2) -> dict:
    """Run a .tflite file with LiteRT (XNNPACK) -> outputs by tensor name."""
    from vosx.tracker_runtime.litert import make_interpreter

    interp = make_interpreter(path, threads)
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], inputs[d["name"]])
    interp.invoke()
    return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}


def tflite_io(path: Path) -> tuple[list, list]:
    """(inputs, outputs) of a .tflite file as (name, shape, dtype) tuples."""
    from vosx.tracker_runtime.litert import make_interpreter

    interp = make_interpreter(path, 1)

    def rows(details):
        return [
            (d["name"], tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]).name)
            for d in details
        ]

    return rows(interp.get_input_details()), rows(interp.get_output_details())


def op_counts(path: Path) -> dict[str, int]:
    """Builtin op name -> count in a .tflite file."""
    from vosx.tracker_runtime.litert import make_interpreter

    counts: dict[str, int] = {}
    for op in make_interpreter(path, 1, xnnpack=False)._get_ops_details():
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return dict(sorted(counts.items()))


def gpu_rule_problems(path: Path) -> list[str]:
    """Structural limits of the TFLite GPU delegate that TensorFlow's analyzer does not report.

    The analyzer shipped with TensorFlow 2.21 / LiteRT 2.3 answers "compatible" for every model
    here (Flex ops and rank-5 tensors included), so two documented delegate limits are checked on
    the flatbuffer as well: custom/Flex ops never run on the delegate, and the delegate works on
    tensors of at most 4 dimensions (BHWC).
    """
    from vosx.tracker_runtime.litert import make_interpreter

    interp = make_interpreter(path, 1, xnnpack=False)
    shapes = {d["index"]: tuple(d["shape"]) for d in interp.get_tensor_details()}
    names = {d["index"]: d["name"] for d in interp.get_tensor_details()}
    problems = []
    for i, op in enumerate(interp._get_ops_details()):
        name = op["op_name"]
        if name.startswith("Flex") or name == "CUSTOM" or not name.isupper():
            problems.append(f"op #{i} {name}: custom/Flex op, not run by the GPU delegate")
            continue
        for t in [*op["inputs"], *op["outputs"]]:
            if t >= 0 and len(shapes[t]) > 4:
                problems.append(
                    f"op #{i} {name}: tensor {names[t]} has rank {len(shapes[t])} > 4 "
                    "(GPU delegate is BHWC)"
                )
                break
    return problems


def activation_peak(path: Path, inputs: dict) -> tuple[str, float]:
    """The largest |value| of any float tensor while running ``inputs`` (name, value).

    Runs without XNNPACK and with every intermediate tensor preserved, so each op's output is seen
    (only tensors some op writes: scratch and unused buffers hold garbage).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=True,
    )
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], inputs[d["name"]])
    interp.invoke()
    details = {d["index"]: d for d in interp.get_tensor_details()}
    produced = {i for op in interp._get_ops_details() for i in op["outputs"] if i >= 0}
    best_name, best = "", 0.0
    for idx in sorted(produced):
        d = details[idx]
        if d["dtype"] not in (np.float32, np.float16):
            continue
        value = interp.get_tensor(idx)
        if value.size:
            peak = float(np.abs(value.astype(np.float32)).max())
            if peak > best:
                best_name, best = d["name"], peak
    return best_name, best


def count_macs(model, size: tuple[int, int]) -> dict[str, int]:
    """Multiply-accumulates of one run of each graph (convolutions plus the memory read-out).

    The graphs run on PyTorch's meta device: shapes only, no arithmetic.
    """
    import copy

    import torch

    from vosx.export.graphs import graph_ios

    ios = graph_ios(model, size)
    macs = {"n": 0}

    def hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        macs["n"] += out[0].numel() * k

    meta = copy.deepcopy(model).to("meta").eval()
    for m in meta.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    result = {}
    with torch.no_grad():
        for name, gio in ios.items():
            macs["n"] = 0
            gio.wrapper(meta).eval()(*(torch.zeros(s, device="meta") for s in gio.inputs.values()))
            result[name] = macs["n"]
    n, ck = ios["decoder"].inputs["qk"][2:]
    cv = ios["decoder"].inputs["mv_first"][3]
    result["decoder"] += n * 2 * n * (ck + cv)  # affinity (N x 2N x CK) + read-out (N x 2N x CV)
    return result


def mask_iou(a: np.ndarray, b: np.ndarray, object_ids: list[int], valid: np.ndarray) -> float:
    """Mean IoU over objects of two label maps on the ``valid`` pixels (absent from both: 1)."""
    ious = []
    for i in object_ids:
        x, y = (a == i) & valid, (b == i) & valid
        union = np.logical_or(x, y).sum()
        ious.append(1.0 if union == 0 else np.logical_and(x, y).sum() / union)
    return float(np.mean(ious))


def run_clip(graphs, size: tuple[int, int], frames: np.ndarray, first_mask: np.ndarray):
    """Run a clip through one ``Graphs`` backend with the driver (``TorchGraphs`` for the
    reference run, a TFLite backend for each candidate).

    Returns:
        (labels of frames 1.., top-2 gaps of frames 1..): a pixel's gap is the difference of its
        two most likely classes' probabilities (a near tie below a margin).
    """
    from vosx.tracker_runtime.driver import SegmentationDriver
    from vosx.tracker_runtime.preprocess import unpad

    driver = SegmentationDriver(graphs, size)
    labels, gaps = [], []
    for t, lab in enumerate(driver.run(frames, first_mask)):
        if t > 0:
            top2 = np.sort(unpad(np.moveaxis(driver.prob, 0, -1), driver.pads), axis=-1)
            labels.append(lab)
            gaps.append(top2[..., -1] - top2[..., -2])
    return labels, gaps


def label_ious(reference: tuple, labels: list, first_mask: np.ndarray, tie_margin: float):
    """Compare labels of frames 1.. with a reference run (``run_clip``'s result) frame by frame.

    Near ties of the reference (top-2 gap below ``tie_margin``) are left out of the IoU and
    counted (an untrained model is mostly ties).

    Returns:
        (per-frame IoUs of frames 1.., fraction of pixels left out as ties).
    """
    ref_labels, gaps = reference
    decisive = [g >= tie_margin for g in gaps]
    ids = [int(i) for i in np.unique(first_mask) if i != 0]
    ious = [mask_iou(r, c, ids, v) for r, c, v in zip(ref_labels, labels, decisive, strict=True)]
    return ious, 1.0 - float(np.mean([v.mean() for v in decisive]))


def end_to_end(reference: tuple, candidate, size, frames: np.ndarray, first_mask: np.ndarray):
    """A backend's clip against a reference run, near ties within ``E2E_TIE_MARGIN`` left out.

    Returns:
        (per-frame IoUs of frames 1.., fraction of pixels left out as ties).
    """
    labels, _ = run_clip(candidate, size, frames, first_mask)
    return label_ious(reference, labels, first_mask, E2E_TIE_MARGIN)


def first_nonfinite(outputs: dict) -> str | None:
    """The name of the first output holding a NaN or an Inf (None: all finite)."""
    for name, value in outputs.items():
        if not np.isfinite(value).all():
            return name
    return None


# ------------------------------------------------------------- fp16 arithmetic, in PyTorch


def _fp16_mode():
    """A ``TorchDispatchMode`` in which PyTorch computes as fp16 GPU kernels do (tensors stay
    float32, so every CPU kernel runs):

    * every float32 tensor an op produces is rounded to fp16 precision (fp16 storage);
    * a matrix product whose inner dimension is at least ``FP16_ACC_MIN`` long (the memory
      read-out, summed over every memory token) is summed one term at a time in fp16, as the
      GPU's kernel does. Measured on the decoder at 480x864, GPU vs PyTorch / this / rounding
      each op's result only: bundled checkpoint 5.0e-2 / 4.8e-2 / 8.5e-4, ``vosx init --tiny``
      1.03e-1 / 1.02e-1 / 2.6e-3 (summing the softmax in fp16 as well, or instead,
      overshoots: 7.6e-1 / 9.2e-1).
    """
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten

    def rounded(t):
        if isinstance(t, torch.Tensor) and t.dtype == torch.float32:
            return t.to(torch.float16).to(torch.float32)
        return t

    def matmul(a, b):  # (..., n, k) @ (..., k, m), k summed term by term in fp16
        acc = rounded(a[..., :, :1] * b[..., :1, :])
        for i in range(1, a.shape[-1]):
            acc = rounded(acc + rounded(a[..., :, i : i + 1] * b[..., i : i + 1, :]))
        return acc

    class Fp16Arithmetic(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in (aten.bmm.default, aten.mm.default) and args[0].shape[-1] >= FP16_ACC_MIN:
                return matmul(args[0], args[1])
            out = func(*args, **(kwargs or {}))
            if func.is_view:  # same values, same storage
                return out
            results = out if isinstance(out, (tuple, list)) else (out,)
            if func._schema.is_mutable:  # in place (relu_, add_): round where it was written
                for t in results:
                    if isinstance(t, torch.Tensor) and t.dtype == torch.float32:
                        t.copy_(t.to(torch.float16))
                return out
            if isinstance(out, (tuple, list)):
                return type(out)(rounded(t) for t in out)
            return rounded(out)

    return Fp16Arithmetic()


class Fp16Graphs:
    """The model's graphs run in fp16 arithmetic in PyTorch: what fp16 does to *this* model.

    Weights, inputs and every intermediate tensor are rounded to fp16 (each op computes in
    float32 and its result is rounded, as a GPU that stores activations in fp16), and the memory
    read-out is summed in fp16 term by term (``_fp16_mode``). A GPU's convolutions also sum in
    fp16, which this does not model: ``GPU_DEFECT_FACTOR`` allows for it. A ``Graphs`` backend
    of the driver, like ``TorchGraphs``.

    Args:
        model: The TrickVOS being exported (not modified: a rounded copy is run).
    """

    def __init__(self, model):
        import copy

        import torch

        from vosx.model.graphs import TorchGraphs

        rounded = copy.deepcopy(model)
        with torch.no_grad():
            for t in [*rounded.parameters(), *rounded.buffers()]:
                if t.dtype == torch.float32:
                    t.copy_(t.to(torch.float16))
        self._graphs = TorchGraphs(rounded)

    def run(self, graph: str, inputs: dict) -> dict:
        """One graph on NumPy inputs (rounded to fp16 first) -> NumPy outputs by name."""
        rounded = {k: np.asarray(v, np.float16).astype(np.float32) for k, v in inputs.items()}
        with _fp16_mode():
            return self._graphs.run(graph, rounded)


# ------------------------------------------------------------------- the GPU, in one child

RUN_PRECISIONS = ("fp16", "fp32")  # the GPU runs the first whose graphs all compile GPU-only
GPU_TIMEOUT_S = 3600


@dataclass(frozen=True)
class GpuRun:
    """Everything one ``run_gpu_checks`` child did on LiteRT's GPU accelerator.

    Every file is compiled GPU-only; one precision's files (``ran``: the first of
    ``RUN_PRECISIONS`` whose graphs all compiled, None: none did) run the probes and the clip.
    The GPU computes fp32 and fp16 files alike in fp16 (their outputs agree within fp16 weight
    rounding), so running one precision measures both.

    ``refused``: (graph, precision) -> why the GPU-only compile (or run) failed, the ops where
    named; ``outputs``: graph -> outputs by name on each probe input; ``clip_labels``: the
    clip's labels of frames 1.. (empty: no clip, ``clip_skipped`` says why);
    ``clip_nonfinite``: where the clip first met a NaN or an Inf (None: never).
    """

    adapter: str | None
    refused: dict[tuple[str, str], str]
    ran: str | None
    outputs: dict[str, list[dict[str, np.ndarray]]]
    clip_labels: list[np.ndarray] = field(default_factory=list)
    clip_nonfinite: str | None = None
    clip_skipped: str | None = None


def run_gpu_checks(
    export_dir: Path,
    files: dict[tuple[str, str], str],
    probes: dict[str, list[dict]],
    clip: tuple[np.ndarray, np.ndarray, tuple[int, int]] | None,
) -> GpuRun:
    """Compile every file GPU-only, then run each graph's probe inputs and (optionally) a clip
    through the driver on one precision's files, all in one child process without TensorFlow.

    Args:
        export_dir: The export folder.
        files: (graph, precision) -> file name inside ``export_dir`` (fp32 / fp16 files).
        probes: graph -> its probe inputs (by input name).
        clip: (frames, first mask, padded size) to run through the driver; None: no clip.

    Raises:
        AcceleratorError: the child failed or ran past ``GPU_TIMEOUT_S`` (its last words).
    """
    from vosx.errors import AcceleratorError

    with tempfile.TemporaryDirectory(prefix="vosx-gpu-") as tmp:
        folder = Path(tmp)
        arrays = {
            f"{g}.{i}.{name}": np.asarray(v)
            for g, inputs in probes.items()
            for i, probe in enumerate(inputs)
            for name, v in probe.items()
        }
        np.savez(folder / "probes.npz", **arrays)
        job = {
            "export_dir": str(Path(export_dir).absolute()),
            "files": [[g, p, f] for (g, p), f in files.items()],
            "probes": {g: [list(p) for p in inputs] for g, inputs in probes.items()},
            "run_precisions": list(RUN_PRECISIONS),
            "clip": None,
        }
        if clip is not None:
            frames, first_mask, size = clip
            np.savez(folder / "clip.npz", frames=frames, first_mask=first_mask)
            job["clip"] = {"size": list(size)}
        (folder / "job.json").write_text(json.dumps(job))
        command = [sys.executable, "-m", "vosx.export.verify", str(folder)]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=GPU_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AcceleratorError(f"the GPU checks ran past {GPU_TIMEOUT_S} s") from None
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            tail = " ".join(proc.stderr.split()[-40:])[-300:]
            raise AcceleratorError(f"the GPU checks failed (exit {proc.returncode}): {tail}")
        answer = json.loads(lines[-1])
        outputs: dict[str, list[dict[str, np.ndarray]]] = {}
        with np.load(folder / "outputs.npz") as z:
            for key in z.files:  # graph.probe.output
                g, i, name = key.split(".", 2)
                runs = outputs.setdefault(g, [])
                while len(runs) <= int(i):
                    runs.append({})
                runs[int(i)][name] = z[key]
        labels = []
        if (folder / "labels.npz").is_file():
            with np.load(folder / "labels.npz") as z:
                labels = [z[f"arr_{i}"] for i in range(len(z.files))]
    refused = {tuple(k.split(".", 1)): v for k, v in answer["refused"].items()}
    return GpuRun(
        adapter=answer["adapter"],
        refused=refused,
        ran=answer["ran"],
        outputs=outputs,
        clip_labels=labels,
        clip_nonfinite=answer["clip"]["nonfinite"],
        clip_skipped=answer["clip"]["skipped"],
    )


class _Watched:
    """A ``Graphs`` backend over compiled GPU graphs that notes the first non-finite output."""

    def __init__(self, graphs: dict):
        self.graphs = graphs
        self.calls = 0
        self.nonfinite: str | None = None

    def run(self, graph: str, inputs: dict) -> dict:
        out = self.graphs[graph].run(inputs)
        self.calls += 1
        bad = first_nonfinite(out)
        if bad is not None and self.nonfinite is None:
            self.nonfinite = f"{graph} output {bad} (run {self.calls} of the clip)"
        return out


def _gpu_clip(folder: Path, spec: dict, compiled: dict) -> dict:
    """The clip of ``folder/clip.npz`` through the driver over ``compiled`` (graph -> compiled
    graph); labels of frames 1.. to ``folder/labels.npz`` -> ``nonfinite`` and ``skipped``."""
    from vosx.errors import AcceleratorError

    backend = _Watched(compiled)
    with np.load(folder / "clip.npz") as z:
        frames, first_mask = z["frames"], z["first_mask"]
    try:
        labels, _ = run_clip(backend, tuple(spec["size"]), frames, first_mask)
    except AcceleratorError as e:
        return {"nonfinite": None, "skipped": str(e)}
    np.savez(folder / "labels.npz", *labels)
    return {"nonfinite": backend.nonfinite, "skipped": None}


def _main(argv: list[str]) -> None:
    """Child side of ``run_gpu_checks``: FOLDER (job.json, probes.npz, clip.npz); one JSON line
    on stdout, outputs.npz and labels.npz in FOLDER."""
    from vosx.errors import AcceleratorError
    from vosx.tracker_runtime.accelerator import CompiledGraph, ensure_runtime_dir

    ensure_runtime_dir()
    folder = Path(argv[0])
    job = json.loads((folder / "job.json").read_text())
    with np.load(folder / "probes.npz") as z:
        probes = {
            g: [{name: z[f"{g}.{i}.{name}"] for name in names} for i, names in enumerate(inputs)]
            for g, inputs in job["probes"].items()
        }
    refused, outputs, adapter, ran = {}, {}, None, None
    clip = {"nonfinite": None, "skipped": "not asked" if job["clip"] is None else None}
    preferred = job["run_precisions"]
    precisions = list(dict.fromkeys(p for _, p, _ in job["files"]))
    precisions.sort(key=lambda p: preferred.index(p) if p in preferred else len(preferred))
    # One precision's graphs alive at a time, released before the next: LiteRT's GPU
    # accelerator fails to read outputs back once several precisions' graphs live in a process.
    for prec in precisions:
        compiled = {}
        for g, p, fname in job["files"]:
            if p != prec:
                continue
            path = Path(job["export_dir"]) / fname
            try:
                compiled[g] = CompiledGraph(path, "gpu")
            except AcceleratorError as e:
                refused[f"{g}.{p}"] = str(e).replace(f"{path}: ", "")
                continue
            adapter = adapter or compiled[g].adapter
        complete = len(compiled) == len({g for g, p, _ in job["files"] if p == prec})
        if ran is None and complete:
            ran = prec
            try:
                for g, graph in compiled.items():
                    for i, inputs in enumerate(probes.get(g, [])):
                        run = graph.run(inputs)
                        outputs.update({f"{g}.{i}.{name}": v for name, v in run.items()})
            except AcceleratorError as e:  # compiled, but the run failed: a refusal too
                refused[f"{g}.{prec}"] = str(e).replace(f"{graph.path}: ", "")
                ran, outputs = None, {}
            else:
                if job["clip"] is not None:
                    clip = _gpu_clip(folder, job["clip"], compiled)
        compiled = graph = None  # released before the next precision's
        gc.collect()
    if job["clip"] is not None and ran is None:
        clip["skipped"] = "no precision has all its graphs on the GPU"
    np.savez(folder / "outputs.npz", **outputs)
    print(json.dumps({"adapter": adapter, "refused": refused, "ran": ran, "clip": clip}))


if __name__ == "__main__":
    _main(sys.argv[1:])
