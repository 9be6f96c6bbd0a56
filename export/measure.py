"""Measurements of the exported files and graphs: parity against PyTorch, the files' I/O and
ops, the GPU delegate's structural limits, activation peaks (fp16 headroom) and MACs.

Each function measures; ``verify.CHECKS`` names the bounds and ``judge`` gives the verdicts.
Files run on LiteRT (the CPU, XNNPACK where it takes them) and ONNX Runtime. Shapes: NumPy
arrays as the manifest lists them (NHWC, ``1 x 1 x N x C`` memory).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vosx.limits import DEFAULT_THREADS


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


def run_tflite(path: Path, inputs: dict, threads: int = DEFAULT_THREADS) -> dict:
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
    return _largest(
        (details[i]["name"], interp.get_tensor(i))
        for i in sorted(produced)
        if details[i]["dtype"] in (np.float32, np.float16)
    )


def _largest(tensors: Iterable[tuple[str, np.ndarray]]) -> tuple[str, float]:
    """(name, max |value|) of the tensor with the largest |value| ("", 0.0: none)."""
    best_name, best = "", 0.0
    for name, value in tensors:
        if value.size:
            peak = float(np.abs(value.astype(np.float32)).max())
            if peak > best:
                best_name, best = name, peak
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


def first_nonfinite(outputs: dict) -> str | None:
    """The name of the first output holding a NaN or an Inf (None: all finite)."""
    for name, value in outputs.items():
        if not np.isfinite(value).all():
            return name
    return None


def onnx_activation_peak(path: Path, inputs: dict) -> tuple[str, float]:
    """The largest |value| of any float tensor a node of the ONNX graph computes while running
    ``inputs`` on ONNX Runtime (name, value)."""
    import onnx
    import onnxruntime as ort

    graph_model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = graph_model.graph
    produced = {o for node in graph.node if node.op_type != "Constant" for o in node.output}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    declared = {o.name for o in graph.output}
    for vi in graph.value_info:
        if vi.name in produced and vi.name not in declared:
            if vi.type.tensor_type.elem_type in floats:
                graph.output.append(vi)
    sess = ort.InferenceSession(graph_model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outputs = zip(names, sess.run(names, inputs), strict=True)
    return _largest((n, value) for n, value in outputs if n in produced)
