"""ONNX export and onnx2tf conversion of the three graphs, fully offline.

Shapes: all graph I/O NHWC / ``1 x 1 x N x C`` as in ``vosx.export.graphs``.

onnx2tf runs in a child process (``python -m vosx.export.convert``, ``tracker_runtime.child``'s
protocol) that seeds its working folder with the calibration sample onnx2tf would otherwise
download and blocks every network connection, so an offline machine converts exactly like an
online one. The child renames the TFLite output tensors to the ONNX names after matching them
numerically. File names come from ``vosx.precision``'s table.
"""

import os
import socket
import warnings
from pathlib import Path

import numpy as np

from vosx.errors import ExportError
from vosx.precision import precision
from vosx.tracker_runtime.child import run_child, serve

OPSET = 17
CALIB_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def export_onnx(model, gio, path: Path, inputs: dict) -> None:
    """Export one graph's NHWC wrapper to ONNX (static shapes, fixed opset, named I/O) and
    check it.
    """
    import onnx
    import torch

    wrapper = gio.wrapper(model).eval()
    args = tuple(torch.from_numpy(inputs[n]) for n in gio.inputs)
    with warnings.catch_warnings():
        # Shapes are static by design (the tracer's note about them is expected), and the
        # TorchScript exporter is the one onnx2tf 1.x was tested with.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapper,
            args,
            str(path),
            input_names=list(gio.inputs),
            output_names=list(gio.outputs),
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    wrapper.eval()  # torch.onnx.export leaves modules in train mode; BatchNorm must stay frozen
    model.eval()
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def run_converter(job: dict, calib: dict[str, np.ndarray], timeout_s: float = 1800) -> dict:
    """Run the conversion child (``tracker_runtime.child``'s protocol) on ``job``.

    Args:
        job: {"graphs": [{"name", "onnx", "inputs": {name: shape}, "outputs": [...]}],
            "precisions": [...], "out_dir": str, "analyze": bool (TensorFlow's GPU analyzer on
            each float file)}.
        calib: "graph.input" -> that input's calibration samples, stacked on axis 0 (for a
            calibrated precision; else empty).

    Returns:
        {"graphs": graph -> {"files": precision -> file name, "gpu": the analyzer's verdicts}}.

    Raises:
        ExportError: the child failed; the message carries the last lines of its log.
    """
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    what = "conversion (onnx2tf)"
    result = run_child(
        "vosx.export.convert",
        job,
        calib,
        error=ExportError,
        what=what,
        timeout_s=timeout_s,
        env=env,
    )
    return result.answer


# --------------------------------------------------------------------------- child process


def _block_network() -> None:
    """Make every outbound connection fail loudly: conversion must never touch the network."""

    def refuse(*args, **kwargs):
        raise OSError("vosx: network access is blocked during conversion (offline by design)")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]


def _match_outputs(tfl_path: Path, onnx_path: Path, inputs: dict, outputs: list[str]) -> dict:
    """Map TFLite output tensor names to ONNX output names by shape and value."""
    import onnxruntime as ort
    import tensorflow as tf

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ref = dict(zip(outputs, sess.run(outputs, inputs), strict=True))
    interp = tf.lite.Interpreter(
        model_path=str(tfl_path),
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], inputs[d["name"]])
    interp.invoke()
    mapping, taken = {}, set()
    for d in interp.get_output_details():
        y = interp.get_tensor(d["index"])
        errs = {
            n: float(np.abs(y - r).max())
            for n, r in ref.items()
            if n not in taken and r.shape == y.shape
        }
        if not errs:
            raise RuntimeError(f"TFLite output {d['name']} {y.shape} matches no ONNX output shape")
        best = min(errs, key=errs.get)
        mapping[d["name"]] = best
        taken.add(best)
    return mapping


def _input_name(name: str, declared: list[str]) -> str:
    """onnx2tf/TF name of a graph input ('serving_default_mask:0') -> the ONNX name ('mask')."""
    if name in declared:
        return name
    bare = name.removeprefix("serving_default_").split(":")[0]
    if bare in declared:
        return bare
    raise RuntimeError(f"TFLite input {name!r} matches none of the ONNX inputs {declared}")


def _rename_tensors(path: Path, mapping: dict) -> None:
    """Rename a .tflite file's input/output tensors (old name -> new name)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    for sg in model.subgraphs:
        for idx in list(sg.inputs) + list(sg.outputs):
            name = sg.tensors[idx].name.decode()
            if name in mapping:
                sg.tensors[idx].name = mapping[name].encode()
    flatbuffer_utils.write_model(model, str(path))


def _convert_one(
    g: dict, calib: dict[str, str], precisions: list[str], out_dir: Path, analyze: bool
) -> dict:
    """One graph through onnx2tf: its files by precision and, with ``analyze``, TensorFlow's
    GPU-delegate analyzer on each file the GPU runs (``calib``: input -> its .npy samples, for a
    calibrated precision)."""
    import onnx2tf
    import tensorflow as tf

    name = g["name"]
    tf_dir = Path(f"tf_{name}")
    kwargs = {}
    if calib:
        kwargs["output_integer_quantized_tflite"] = True
        kwargs["custom_input_op_name_np_data_path"] = [
            [inp, path, 0.0, 1.0] for inp, path in calib.items()
        ]
    onnx2tf.convert(
        input_onnx_file_path=g["onnx"],
        output_folder_path=str(tf_dir),
        keep_shape_absolutely_input_names=list(g["inputs"]),
        non_verbose=True,
        **kwargs,
    )
    rng = np.random.default_rng(1)
    probe = {k: rng.standard_normal(v).astype(np.float32) for k, v in g["inputs"].items()}
    files = {}
    for prec in map(precision, precisions):
        src = tf_dir / f"{Path(g['onnx']).stem}_{prec.onnx2tf_suffix}.tflite"
        if not src.exists():
            raise RuntimeError(f"onnx2tf wrote no {src.name}")
        interp = tf.lite.Interpreter(model_path=str(src))
        names = [d["name"] for d in interp.get_input_details()]
        _rename_tensors(src, {n: _input_name(n, list(g["inputs"])) for n in names})
        _rename_tensors(src, _match_outputs(src, Path(g["onnx"]), probe, g["outputs"]))
        dst = out_dir / prec.file_name(name)
        os.replace(src, dst)
        files[prec.name] = dst.name
    return {"files": files, "gpu": _gpu_report(out_dir, files) if analyze else {}}


def _gpu_report(out_dir: Path, files: dict) -> dict:
    """TensorFlow's own GPU-delegate analyzer on each file the GPU runs: verdict and offending
    ops."""
    import contextlib
    import io

    import tensorflow as tf

    report = {}
    for prec, fname in files.items():
        if not precision(prec).gpu:
            continue
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            tf.lite.experimental.Analyzer.analyze(
                model_path=str(out_dir / fname), gpu_compatibility=True
            )
        text = buf.getvalue()
        problems = sorted(
            {ln.strip() for ln in text.splitlines() if "GPU COMPATIBILITY WARNING" in ln}
        )
        ok = "looks compatible with GPU delegate" in text and not problems
        report[prec] = {"compatible": ok, "problems": problems}
    return report


def _convert(job: dict, calib: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Child side of ``run_converter``, in its working folder: every graph through onnx2tf."""
    _block_network()
    rng = np.random.default_rng(0)  # the calibration sample onnx2tf would otherwise download
    np.save(CALIB_SAMPLE, rng.random((20, 128, 128, 3), dtype=np.float32))
    calibrated = any(precision(p).calibrated for p in job["precisions"])
    out_dir = Path(job["out_dir"])
    graphs = {}
    for g in job["graphs"]:
        paths = {}
        if calibrated:
            for inp in g["inputs"]:
                paths[inp] = str(Path(f"{g['name']}.{inp}.npy").absolute())
                np.save(paths[inp], calib[f"{g['name']}.{inp}"])
        graphs[g["name"]] = _convert_one(g, paths, job["precisions"], out_dir, job["analyze"])
    return {"graphs": graphs}, {}


if __name__ == "__main__":
    serve(_convert)
