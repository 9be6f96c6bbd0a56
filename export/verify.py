"""Verification at every conversion boundary, with named tolerances, and the export report's
figures.

Shapes: NumPy arrays as the manifest lists them (NHWC, ``1 x 1 x N x C`` memory).
PyTorch -> ONNX Runtime, PyTorch -> TFLite per precision, the GPU-delegate verdict, fp16
headroom of every intermediate tensor, op counts, MACs, and an end-to-end clip run through the
same two-frame memory driver with the PyTorch graphs and with the TFLite graphs (on the CPU, and
on LiteRT's GPU accelerator in a child process: ``python -m vosx.export.verify``, because LiteRT's
GPU path crashes in a process that loaded TensorFlow).
"""

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Named tolerances (the export fails when a gated one is missed).
ONNX_MAX_ABS = 1e-5  # PyTorch vs ONNX Runtime, max |diff| / max(1, max |output|)
TFLITE_FP32_MAX_REL = 1e-4  # PyTorch vs TFLite fp32, max |diff| / max |output|
TFLITE_FP16_MAX_REL = 1e-2  # expected for fp16 (reported)
# LiteRT's GPU accelerator (fp16 arithmetic, its default, as a phone allowing precision loss) vs
# PyTorch, max |diff| / max |output|, fp32 and fp16 files alike. Measured GPU vs CPU: 4.7e-3 /
# 1.1e-3 / 1.8e-3 (key / value / decoder) on the tiny test model, 1.0e-2 / 4.7e-3 / 3.2e-3 on the
# bundled 480x864 model (the figures); 3x the worst leaves room for other checkpoints and
# inputs, and is still 3x tighter than an output off by a tenth of its range.
GPU_FP16_MAX_REL = 3e-2
E2E_IOU_FP32 = 0.999  # per-frame mask IoU, TFLite fp32 vs PyTorch
E2E_IOU_FP16 = 0.99
E2E_TIE_MARGIN = 1e-3  # pixels whose top-2 class probabilities are closer are near ties
E2E_IOU_GPU = 0.97  # per-frame, GPU clip vs PyTorch: fp16 *arithmetic*, and the driver feeds each
# frame's GPU mask back into the memory, so small flips compound (bundled 480x864: min 0.9836)
E2E_GPU_TIE_MARGIN = 1e-2  # the same on the GPU run: fp16 arithmetic flips pixels within 1e-3
E2E_MIN_DECISIVE = (
    0.05  # below this fraction of decisive pixels the end-to-end check is inconclusive
)
FP16_MAX = 65504.0  # largest finite float16; the GPU delegate computes in fp16
FP16_HEADROOM = 0.5  # fail when an activation passes this fraction of FP16_MAX


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
    """Parity of ``got`` against ``ref`` (dicts of output name -> array of the same shape)."""
    max_abs = rel = scaled = -1.0
    worst = ""
    for name, r in ref.items():
        g = got[name]
        if g.shape != r.shape:
            raise ValueError(f"output {name}: shape {g.shape} differs from reference {r.shape}")
        err = float(np.abs(g.astype(np.float64) - r).max())
        scale = float(np.abs(r).max())
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
    """Multiply-accumulates of one run of each graph (convolutions plus the memory read-out)."""
    import torch

    from vosx.export.graphs import graph_ios
    from vosx.model.graphs import TorchGraphs

    ios = graph_ios(model, size)
    macs = {"n": 0}

    def hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        macs["n"] += out[0].numel() * k

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    graphs = TorchGraphs(model)
    result = {}
    try:
        for name, gio in ios.items():
            macs["n"] = 0
            graphs.run(name, {k: np.zeros(s, np.float32) for k, s in gio.inputs.items()})
            result[name] = macs["n"]
    finally:
        for h in handles:
            h.remove()
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


def gpu_clip_labels(
    export_dir: Path, precision: str, size: tuple[int, int], frames: np.ndarray, first_mask
) -> list[np.ndarray]:
    """Labels of frames 1.. of a clip through the driver over one precision's graphs on LiteRT's
    GPU accelerator, run in a child process (no TensorFlow there).

    Raises:
        AcceleratorError: the GPU refuses a graph, or the child failed (its last words).
    """
    from vosx.errors import AcceleratorError

    with tempfile.TemporaryDirectory(prefix="vosx-gpu-clip-") as tmp:
        folder = Path(tmp)
        np.savez(folder / "clip.npz", frames=frames, first_mask=first_mask)
        args = [str(Path(export_dir).absolute()), precision, f"{size[0]}x{size[1]}", str(folder)]
        command = [sys.executable, "-m", "vosx.export.verify", *args]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=3600)
        except subprocess.TimeoutExpired:
            raise AcceleratorError(f"{precision} clip on the GPU ran past 3600 s") from None
        lines = proc.stdout.strip().splitlines()
        answer = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
        if answer is None:
            tail = " ".join(proc.stderr.split()[-40:])[-300:]
            raise AcceleratorError(f"{precision} clip on the GPU failed: {tail}")
        if "error" in answer:
            raise AcceleratorError(answer["error"])
        with np.load(folder / "labels.npz") as z:
            return [z[f"arr_{i}"] for i in range(answer["frames"])]


def _main(argv: list[str]) -> None:
    """Child side of ``gpu_clip_labels``: EXPORT_DIR PRECISION HxW FOLDER; one JSON line."""
    from vosx.errors import VosxError
    from vosx.tracker_runtime.litert import TFLiteGraphs

    export_dir, precision, size_text, folder = argv
    h, w = (int(v) for v in size_text.split("x"))
    with np.load(Path(folder) / "clip.npz") as z:
        frames, first_mask = z["frames"], z["first_mask"]
    try:
        graphs = TFLiteGraphs.open(export_dir, precision, accelerator="gpu")
        labels, _ = run_clip(graphs, (h, w), frames, first_mask)
    except VosxError as e:
        print(json.dumps({"error": str(e)}))
        return
    np.savez(Path(folder) / "labels.npz", *labels)
    print(json.dumps({"frames": len(labels)}))


if __name__ == "__main__":
    _main(sys.argv[1:])
