"""ONNX export and onnx2tf conversion of the three graphs, fully offline.

Shapes: all graph I/O NHWC / ``1 x 1 x N x C`` as in ``vosx.export.graphs``.

onnx2tf runs in a child process (``python -m vosx.export.convert JOB.json``) started in a working
folder pre-seeded with the calibration sample it would otherwise download; the child blocks every
network connection, so an offline machine converts exactly like an online one. The child renames
the TFLite output tensors to the ONNX names after matching them numerically.
"""

import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

OPSET = 17
CALIB_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
ONNX2TF_SUFFIX = {"fp32": "float32", "fp16": "float16", "int8": "integer_quant"}


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


def run_converter(job: dict, work_dir: Path, timeout_s: float = 1800) -> dict:
    """Run the conversion child on ``job`` and return its result dict.

    Args:
        job: {"graphs": [{"name", "onnx", "inputs": {name: shape}, "outputs": [...],
            "calib": {input: npy path} | None}], "precisions": [...], "out_dir": str,
            "analyze": bool (TensorFlow's GPU analyzer on each float file; default true)}.
        work_dir: The child's working folder (seeded here with onnx2tf's calibration sample).

    Raises:
        ExportError: the child failed; the message carries the last lines of its log.
    """
    from vosx.errors import ExportError

    work_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    np.save(work_dir / CALIB_SAMPLE, rng.random((20, 128, 128, 3), dtype=np.float32))
    job_path = work_dir / "job.json"
    job_path.write_text(json.dumps(job))
    log_path = work_dir / "onnx2tf.log"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    with open(log_path, "w") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "vosx.export.convert", str(job_path)],
            cwd=work_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=timeout_s,
            check=False,
        )
    result_path = work_dir / "result.json"
    if proc.returncode != 0 or not result_path.exists():
        tail = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()][-3:]
        raise ExportError(
            f"conversion (onnx2tf) failed with exit code {proc.returncode}: "
            f"{' | '.join(tail)[-400:]}"
        )
    return json.loads(result_path.read_text())


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


def _convert_one(g: dict, precisions: list[str], out_dir: Path, analyze: bool = True) -> dict:
    """One graph through onnx2tf: its files by precision and, with ``analyze``, TensorFlow's
    GPU-delegate analyzer on each fp32/fp16 file."""
    import onnx2tf
    import tensorflow as tf

    name = g["name"]
    tf_dir = Path(f"tf_{name}")
    kwargs = {}
    if "int8" in precisions:
        kwargs["output_integer_quantized_tflite"] = True
        kwargs["custom_input_op_name_np_data_path"] = [
            [inp, path, 0.0, 1.0] for inp, path in g["calib"].items()
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
    for prec in precisions:
        src = tf_dir / f"{Path(g['onnx']).stem}_{ONNX2TF_SUFFIX[prec]}.tflite"
        if not src.exists():
            raise RuntimeError(f"onnx2tf wrote no {src.name}")
        interp = tf.lite.Interpreter(model_path=str(src))
        names = [d["name"] for d in interp.get_input_details()]
        _rename_tensors(src, {n: _input_name(n, list(g["inputs"])) for n in names})
        _rename_tensors(src, _match_outputs(src, Path(g["onnx"]), probe, g["outputs"]))
        dst = out_dir / f"{name}_{'int8' if prec == 'int8' else ONNX2TF_SUFFIX[prec]}.tflite"
        os.replace(src, dst)
        files[prec] = dst.name
    return {"files": files, "gpu": _gpu_report(out_dir, files) if analyze else {}}


def _gpu_report(out_dir: Path, files: dict) -> dict:
    """TensorFlow's own GPU-delegate analyzer on each fp32/fp16 file: verdict and offending ops."""
    import contextlib
    import io

    import tensorflow as tf

    report = {}
    for prec, fname in files.items():
        if prec == "int8":
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


def _child(job_path: str) -> None:
    _block_network()
    job = json.loads(Path(job_path).read_text())
    out_dir = Path(job["out_dir"])
    result = {"graphs": {}}
    for g in job["graphs"]:
        analyze = job.get("analyze", True)
        result["graphs"][g["name"]] = _convert_one(g, job["precisions"], out_dir, analyze)
    Path("result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    _child(sys.argv[1])
