"""``export_all``: the one call ``vosx export`` makes (ONNX -> onnx2tf -> TFLite -> verify ->
manifest).

Shapes: as in ``vosx.export.graphs`` (NHWC, ``1 x 1 x N x C`` memory).
Everything is written into a temporary sibling folder and renamed onto ``out_dir`` at the end, so a
failed export leaves nothing behind.
"""

import json
import platform
import shutil
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from vosx.errors import ConfigError, ExportError, ParityError
from vosx.export import verify
from vosx.files import check_output, replace_dir, temp_dir
from vosx.manifest import PRECISIONS, file_entry, write_manifest

DEFAULT_SIZE = (480, 864)
E2E_FRAMES = 10
E2E_OBJECTS = 2
CALIB_FRAMES = 8


@dataclass(frozen=True)
class ExportOptions:
    """What ``vosx export`` was asked to do."""

    checkpoint: Path | None
    out_dir: Path
    size: tuple[int, int] = DEFAULT_SIZE
    precisions: tuple[str, ...] = ("fp32", "fp16")
    calib_dir: Path | None = None
    force: bool = False
    allow_cpu_ops: bool = False
    threads: int = 2


@dataclass
class ExportResult:
    """The written folder and the report it holds."""

    out_dir: Path
    report: dict = field(default_factory=dict)


MAX_SIDE = 4096
"""Largest padded input height or width (``--size``); 4096 x 4096 fp32 frames are 200 MB."""


def check_size(size: tuple[int, int]) -> None:
    """A padded input size must be positive multiples of 16, at most ``MAX_SIDE`` per side; the
    error names the nearest valid."""
    h, w = size
    if h <= 0 or w <= 0:
        raise ConfigError(
            f"--size {h}x{w}: height and width must be positive multiples of 16, e.g. 480x864"
        )
    if max(h, w) > MAX_SIDE:
        raise ConfigError(
            f"--size {h}x{w}: each side must be at most {MAX_SIDE} (multiples of 16), e.g. 480x864"
        )
    bad = [v for v in (h, w) if v % 16]
    if bad:

        def near(v):
            lo = max(16, v // 16 * 16)
            return f"{lo}" if lo == v else f"{lo} or {lo + 16}"

        raise ConfigError(
            f"--size {h}x{w}: both sides must be multiples of 16 (padded network input); "
            f"nearest valid: {near(h)} x {near(w)}"
        )


def parse_size(text: str) -> tuple[int, int]:
    """'480x864' -> (480, 864), checked."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {text!r}: expected HEIGHTxWIDTH, e.g. 480x864") from None
    check_size((h, w))
    return h, w


def _tool_versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("vosx", "torch", "onnx", "onnxruntime", "onnx2tf", "tensorflow", "ai-edge-litert"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _sample_frames(size: tuple[int, int], calib_dir: Path | None, n: int):
    """Calibration/probe frames: real images from ``calib_dir`` or synthetic clip frames."""
    from vosx.training.synthetic import make_clip

    h, w = size
    if calib_dir is None:
        clip = make_clip(n, h, w, E2E_OBJECTS, seed=123)
        return clip.frames, clip.masks, "synthetic"
    from PIL import Image

    from vosx.errors import InputDataError
    from vosx.tracker_runtime.io import open_image

    files = sorted(
        p for p in Path(calib_dir).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    if not files:
        raise ConfigError(
            f"--calib {calib_dir}: no .jpg/.png frames in it; give a folder of frames"
        )
    frames = []
    for p in files[:n]:
        try:
            with open_image(p, "--calib image") as im:
                img = im.convert("RGB")
        except InputDataError as e:
            raise ConfigError(f"--calib {e}") from None
        except (OSError, ValueError) as e:
            raise ConfigError(f"--calib {p}: unreadable image ({e})") from None
        frames.append(np.asarray(img.resize((w, h), Image.BILINEAR)))
    clip = make_clip(len(frames), h, w, E2E_OBJECTS, seed=123)
    return np.stack(frames), clip.masks, f"real frames from {calib_dir}"


def _graph_inputs(graphs, size, frames: np.ndarray, masks: np.ndarray) -> list[dict]:
    """Realistic inputs of every graph from a clip: memory = frames 0 and t-1, query = frame t."""
    from vosx.tracker_runtime.preprocess import preprocess

    samples = []
    feats = [graphs.run("key_encoder", {"image": preprocess(f, size)[0]}) for f in frames]
    for t in range(2, len(frames)):
        obj = (masks[t] == 1).astype(np.float32)[None, :, :, None]
        m0 = (masks[0] == 1).astype(np.float32)[None, :, :, None]
        m1 = (masks[t - 1] == 1).astype(np.float32)[None, :, :, None]
        v0 = graphs.run("value_encoder", {"mask": m0, "f16": feats[0]["f16"]})["value"]
        v1 = graphs.run("value_encoder", {"mask": m1, "f16": feats[t - 1]["f16"]})["value"]
        samples.append(
            {
                "key_encoder": {"image": preprocess(frames[t], size)[0]},
                "value_encoder": {"mask": obj, "f16": feats[t]["f16"]},
                "decoder": {
                    "qk": feats[t]["key"],
                    "mk_first": feats[0]["key"],
                    "mk_last": feats[t - 1]["key"],
                    "mv_first": v0,
                    "mv_last": v1,
                    "f16c": feats[t]["f16c"],
                    "f8": feats[t]["f8"],
                    "f4": feats[t]["f4"],
                },
            }
        )
    return samples


def _random_inputs(gio, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in gio.inputs.items():
        x = rng.standard_normal(shape).astype(np.float32)
        out[name] = (x > 0).astype(np.float32) if name == "mask" else x
    return out


def export_all(opts: ExportOptions, progress=None) -> ExportResult:
    """Export, convert and verify the three graphs; write the folder atomically.

    Args:
        opts: The export options.
        progress: Optional callable(stage: str, message: str) for the CLI's progress display.

    Raises:
        ConfigError: bad size, existing folder without ``force``, bad precision or calib folder.
        CheckpointError: the checkpoint cannot be loaded.
        ExportError / ParityError: a stage failed; the message names it.
    """
    say = progress or (lambda stage, msg: None)
    check_size(opts.size)
    bad = [p for p in opts.precisions if p not in PRECISIONS]
    if bad or not opts.precisions:
        raise ConfigError(
            f"--precision {','.join(opts.precisions)}: choose from {', '.join(PRECISIONS)}"
        )
    if "fp32" not in opts.precisions:
        raise ConfigError(
            "--precision must include fp32 (the reference every other file is checked against)"
        )
    out_dir = Path(opts.out_dir).absolute()  # the converter child runs in another folder
    if opts.calib_dir is not None and not Path(opts.calib_dir).is_dir():
        raise ConfigError(f"--calib {opts.calib_dir}: not a folder of frames")

    from vosx.model.checkpoint import load_checkpoint, resolve_checkpoint

    ckpt_path = resolve_checkpoint(opts.checkpoint)
    # Before loading anything: an existing folder needs force; the checkpoint or the calibration
    # frames inside the folder are refused even with force (replacing it would delete them).
    check_output(out_dir, [ckpt_path, opts.calib_dir], opts.force, kind="dir")
    model = load_checkpoint(ckpt_path)
    with replace_dir(out_dir) as tmp:
        report = _export_into(model, ckpt_path, opts, tmp, say)
    return ExportResult(out_dir, report)


def _export_into(model, ckpt_path: Path, opts: ExportOptions, out: Path, say) -> dict:
    from vosx.export.convert import export_onnx, run_converter
    from vosx.export.graphs import BINDINGS, TorchGraphs, graph_ios
    from vosx.model.checkpoint import count_parameters

    t0 = time.time()
    size = opts.size
    ios = graph_ios(model, size)
    torch_graphs = TorchGraphs(model)
    # int8 calibrates on every sample; the float checks need one (frames 0, 1 as memory, 2 as query)
    n_frames = CALIB_FRAMES if "int8" in opts.precisions else 3
    frames, masks, calib_source = _sample_frames(size, opts.calib_dir, n_frames)
    realistic = _graph_inputs(torch_graphs, size, frames, masks)
    random_in = {name: _random_inputs(gio, seed=i) for i, (name, gio) in enumerate(ios.items())}
    probes = {name: [random_in[name], realistic[0][name]] for name in ios}

    # Stage 1: ONNX
    say("onnx", "exporting ONNX graphs")
    onnx_parity = {}
    for name, gio in ios.items():
        path = out / f"{name}.onnx"
        try:
            export_onnx(model, gio, path, random_in[name])
        except Exception as e:  # torch/onnx raise many types; report the stage
            raise ExportError(f"ONNX stage failed for {name}: {type(e).__name__}: {e}") from e
        worst = max(
            (
                verify.compare(torch_graphs.run(name, p), verify.run_onnx(path, p))
                for p in probes[name]
            ),
            key=lambda x: x.scaled,
        )
        onnx_parity[name] = worst.to_dict()
        if worst.scaled > verify.ONNX_MAX_ABS:
            raise ParityError(
                f"ONNX stage: {name} output {worst.worst_output} differs from PyTorch by "
                f"{worst.scaled:.2e} x max(1, max|output|) > ONNX_MAX_ABS {verify.ONNX_MAX_ABS:.0e}"
            )

    # Stage 2: conversion
    say("convert", f"converting with onnx2tf ({', '.join(opts.precisions)})")
    calib_paths = {}
    if "int8" in opts.precisions:
        calib_dir = out / ".calib"
        calib_dir.mkdir()
        for name, gio in ios.items():
            calib_paths[name] = {}
            for inp in gio.inputs:
                data = np.concatenate([s[name][inp] for s in realistic], 0)
                path = calib_dir / f"{name}.{inp}.npy"
                np.save(path, data)
                calib_paths[name][inp] = str(path)
    job = {
        "out_dir": str(out),
        "precisions": list(opts.precisions),
        "graphs": [
            {
                "name": name,
                "onnx": str(out / f"{name}.onnx"),
                "inputs": {k: list(v) for k, v in gio.inputs.items()},
                "outputs": list(gio.outputs),
                "calib": calib_paths.get(name),
            }
            for name, gio in ios.items()
        ],
    }
    with temp_dir(prefix="vosx-onnx2tf-") as work:
        converted = run_converter(job, work)["graphs"]
    shutil.rmtree(out / ".calib", ignore_errors=True)

    # Stage 3: verification
    say("verify", "checking parity, GPU compatibility and fp16 headroom")
    report_graphs, manifest_graphs = {}, {}
    failures = []
    macs = verify.count_macs(model, size)
    params = count_parameters(model)
    for name, gio in ios.items():
        conv = converted[name]
        entry = {
            "onnx": onnx_parity[name],
            "precisions": {},
            "macs": macs[name],
            "params": params[name],
        }
        for prec, fname in conv["files"].items():
            path = out / fname
            parity = max(
                (
                    verify.compare(
                        torch_graphs.run(name, p), verify.run_tflite(path, p, opts.threads)
                    )
                    for p in probes[name]
                ),
                key=lambda x: x.rel,
            )
            gpu = conv["gpu"].get(prec)
            if gpu is not None:
                rules = verify.gpu_rule_problems(path)
                gpu = {
                    "analyzer_compatible": gpu["compatible"],
                    "problems": gpu["problems"] + rules,
                    "compatible": gpu["compatible"] and not rules,
                }
            pe = {
                "file": fname,
                "bytes": path.stat().st_size,
                "parity": parity.to_dict(),
                "gpu": gpu,
                "ops": verify.op_counts(path),
            }
            if prec == "fp32":
                tname, peak = verify.activation_peak(path, realistic[-1][name])
                pe["activation_peak"] = {"tensor": tname, "max_abs": peak}
                entry["activation_peak"] = pe["activation_peak"]
                if parity.rel > verify.TFLITE_FP32_MAX_REL:
                    failures.append(
                        f"{fname}: output {parity.worst_output} differs from PyTorch by "
                        f"{parity.rel:.2e} x max|output| > TFLITE_FP32_MAX_REL "
                        f"{verify.TFLITE_FP32_MAX_REL:.0e}"
                    )
            if gpu is not None and not gpu["compatible"] and not opts.allow_cpu_ops:
                ops = "; ".join(gpu["problems"]) or "analyzer did not confirm compatibility"
                failures.append(
                    f"{fname}: not fully supported by the GPU delegate ({ops}); "
                    "pass --allow-cpu-ops to accept CPU fallback"
                )
            entry["precisions"][prec] = pe
        if "fp16" in conv["files"]:
            peak = entry["activation_peak"]
            if peak["max_abs"] > verify.FP16_MAX * verify.FP16_HEADROOM:
                failures.append(
                    f"{name}: activation {peak['tensor']} reaches {peak['max_abs']:.3g}, "
                    "too close to "
                    f"fp16's limit {verify.FP16_MAX:.0f} (GPU delegates compute in fp16)"
                )
        report_graphs[name] = entry
        inputs, outputs = verify.tflite_io(out / conv["files"]["fp32"])
        manifest_graphs[name] = {
            "onnx": f"{name}.onnx",
            "files": {p: file_entry(out, f) for p, f in conv["files"].items()},
            "inputs": [_tensor(n, s, d, gio.inputs) for n, s, d in inputs],
            "outputs": [_tensor(n, s, d, gio.outputs) for n, s, d in outputs],
        }
    if failures:
        raise ParityError("verification stage: " + " | ".join(failures))

    # End to end: the same driver over PyTorch and over each TFLite precision.
    from vosx.tracker_runtime.litert import TFLiteGraphs
    from vosx.training.synthetic import make_clip

    clip = make_clip(E2E_FRAMES, size[0], size[1], E2E_OBJECTS, seed=7)
    manifest_data = _manifest_data(model, size, manifest_graphs, BINDINGS, ios)
    write_manifest(out, manifest_data)
    from vosx.manifest import load_manifest

    manifest = load_manifest(out)
    e2e = {}
    reference = verify.run_clip(torch_graphs, size, clip.frames, clip.masks[0])  # once for all
    for prec in opts.precisions:
        tfl = TFLiteGraphs(manifest, prec, threads=opts.threads)
        ious, ties = verify.end_to_end(reference, tfl, size, clip.frames, clip.masks[0])
        e2e[prec] = {
            "min_iou": min(ious),
            "mean_iou": float(np.mean(ious)),
            "per_frame": ious,
            "tie_fraction": ties,
            "conclusive": 1.0 - ties >= verify.E2E_MIN_DECISIVE,
        }
    for prec, bound in (("fp32", verify.E2E_IOU_FP32), ("fp16", verify.E2E_IOU_FP16)):
        if prec in e2e and e2e[prec]["conclusive"] and e2e[prec]["min_iou"] < bound:
            raise ParityError(
                f"verification stage: end-to-end {prec} mask IoU "
                f"{e2e[prec]['min_iou']:.4f} < {bound} "
                f"on the {E2E_FRAMES}-frame synthetic clip"
            )

    report = {
        "checkpoint": str(ckpt_path),
        "size": list(size),
        "tolerances": {
            "ONNX_MAX_ABS": verify.ONNX_MAX_ABS,
            "TFLITE_FP32_MAX_REL": verify.TFLITE_FP32_MAX_REL,
            "TFLITE_FP16_MAX_REL": verify.TFLITE_FP16_MAX_REL,
            "E2E_IOU_FP32": verify.E2E_IOU_FP32,
            "E2E_IOU_FP16": verify.E2E_IOU_FP16,
            "E2E_TIE_MARGIN": verify.E2E_TIE_MARGIN,
            "E2E_MIN_DECISIVE": verify.E2E_MIN_DECISIVE,
            "FP16_MAX": verify.FP16_MAX,
        },
        "int8_calibration": calib_source if "int8" in opts.precisions else None,
        "parameters": params,
        "macs_per_frame_one_object": sum(macs.values()),
        "graphs": report_graphs,
        "end_to_end": e2e,
        "allow_cpu_ops": opts.allow_cpu_ops,
        "export_seconds": round(time.time() - t0, 1),
        "tools": manifest_data["tools"],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(render_report_md(report))
    return report


def _tensor(name: str, shape: tuple, dtype: str, declared: dict) -> dict:
    if name not in declared:
        raise ExportError(
            f"verification stage: TFLite tensor {name!r} is not one of {list(declared)}"
        )
    onnx_shape = tuple(declared[name])
    # Keep every axis in place when the shapes agree; otherwise find the axis order that maps them.
    if onnx_shape == shape:
        perm = list(range(len(shape)))
    else:
        raise ExportError(
            f"verification stage: {name} has TFLite shape {shape} but ONNX shape {onnx_shape}; "
            "the NHWC wrappers should keep them equal"
        )
    return {"name": name, "shape": list(shape), "dtype": dtype, "onnx_perm": perm}


def _manifest_data(model, size, graphs: dict, bindings, ios) -> dict:
    from vosx.tracker_runtime.preprocess import MEAN, PAD_MULTIPLE, STD

    n = ios["decoder"].inputs["qk"][2]
    return {
        "model_config": model.config.to_dict(),
        "input": {
            "height": size[0],
            "width": size[1],
            "layout": "NHWC",
            "channels": "RGB",
            "dtype": "float32",
            "normalization": {
                "scale": 1 / 255,
                "mean": list(MEAN),
                "std": list(STD),
                "formula": "(pixel / 255 - mean) / std",
            },
            "padding": {
                "multiple": PAD_MULTIPLE,
                "value": 0.0,
                "rule": "zero-pad the normalised frame to height x width; top = (height - h) // 2, "
                "left = (width - w) // 2, the rest on the bottom/right; crop the same region "
                "from every output",
            },
        },
        "memory": {
            "slots": ["first", "last"],
            "tokens": n,
            "grid": [size[0] // 16, size[1] // 16],
            "key_dim": model.config.key_dim,
            "value_dim": model.config.value_dim,
            "rule": "frame 0 with its mask fills both slots; after every later frame, slot 'last' "
            "takes that frame's key and its objects' values",
        },
        "objects": {
            "per_object_graphs": ["value_encoder", "decoder"],
            "postprocess": "prob_k = sigmoid(logits_k); STCN soft aggregation over K objects + "
            "background; labels = argmax; value_encoder takes each object's aggregated prob",
        },
        "graphs": graphs,
        "bindings": [
            {"from": src, "to": dst, "slot": slot, "per_object": per_obj}
            for src, dst, slot, per_obj in bindings
        ],
        "tools": _tool_versions(),
    }


def render_report_md(report: dict) -> str:
    """A readable summary of report.json."""
    lines = [
        "# vosx export report",
        "",
        f"- checkpoint: `{report['checkpoint']}`",
        f"- input: {report['size'][0]}x{report['size'][1]} (padded), "
        f"MACs per frame with one object: {report['macs_per_frame_one_object'] / 1e9:.2f} G",
        f"- parameters: {report['parameters']['total']:,}",
        f"- int8 calibration: {report['int8_calibration'] or 'not exported'}",
        f"- export time: {report['export_seconds']} s",
        "",
        (
            "| graph | precision | size KB | max abs diff | rel diff | GPU delegate | ops "
            "| peak activation |"
        ),
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for name, g in report["graphs"].items():
        lines.append(
            f"| {name} | onnx | | {g['onnx']['max_abs']:.2e} | {g['onnx']['rel']:.2e} | | | |"
        )
        for prec, p in g["precisions"].items():
            gpu = p["gpu"]
            verdict = (
                "n/a (int8)"
                if gpu is None
                else ("compatible" if gpu["compatible"] else "NOT: " + "; ".join(gpu["problems"]))
            )
            peak = p.get("activation_peak", {}).get("max_abs")
            lines.append(
                f"| {name} | {prec} | {p['bytes'] / 1024:.0f} | {p['parity']['max_abs']:.2e} | "
                f"{p['parity']['rel']:.2e} | {verdict} | {sum(p['ops'].values())} | "
                f"{'' if peak is None else f'{peak:.3g}'} |"
            )
    lines += [
        "",
        "## End to end (10-frame synthetic clip, two objects, TFLite vs PyTorch)",
        "",
        "| precision | min IoU | mean IoU | near-tie pixels left out |",
        "|---|---:|---:|---:|",
    ]
    for prec, e in report["end_to_end"].items():
        note = "" if e["conclusive"] else " (inconclusive: untrained model, mostly ties)"
        lines.append(
            f"| {prec} | {e['min_iou']:.4f} | {e['mean_iou']:.4f} | {e['tie_fraction']:.1%}{note} |"
        )
    lines += [
        "",
        "Tolerances: " + ", ".join(f"{k}={v}" for k, v in report["tolerances"].items()),
        "",
    ]
    return "\n".join(lines)
