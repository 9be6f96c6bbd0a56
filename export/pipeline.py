"""``export_all``: the one call ``vosx export`` makes, in five named stages: ``onnx`` (export and
check against PyTorch), ``convert`` (onnx2tf -> TFLite), ``verify`` (parity, the GPU check on
LiteRT's GPU accelerator, the analyzer's verdict, fp16 headroom; then the manifest),
``end_to_end`` (a clip through the driver, on the CPU and on the GPU) and ``report``.

Shapes: as in ``vosx.export.graphs`` (NHWC, ``1 x 1 x N x C`` memory).
Everything is written into a temporary sibling folder and renamed onto ``out_dir`` at the end, so a
failed export leaves nothing behind.
"""

import json
import platform
import shutil
import time
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

import numpy as np

from vosx import sizes
from vosx.errors import AcceleratorError, ConfigError, ExportError, ParityError
from vosx.export import verify
from vosx.export.report import (
    ActivationPeak,
    EndToEnd,
    ExportReport,
    GpuCheck,
    GpuVerdict,
    GraphReport,
    PrecisionReport,
    Tolerances,
    render_md,
)
from vosx.export.verify import Parity
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
    allow_cpu_ops: bool = False  # accept what the GPU refuses or computes outside tolerance
    threads: int = 2
    require_gpu_check: bool = False  # fail (before writing) where the GPU check cannot run


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
    h, w = sizes.parse_size(text)
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


def export_all(opts: ExportOptions, progress=None) -> ExportReport:
    """Export, convert and verify the three graphs; write the folder atomically.

    Args:
        opts: The export options.
        progress: Optional callable(stage: str, message: str) for the CLI's progress display.

    Returns:
        The report of the written folder (``report.json`` is its ``to_json()``).

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
    out_dir = Path(opts.out_dir).absolute()  # the converter child runs in another folder
    if opts.calib_dir is not None and not Path(opts.calib_dir).is_dir():
        raise ConfigError(f"--calib {opts.calib_dir}: not a folder of frames")

    from vosx.model.checkpoint import load_checkpoint, resolve_checkpoint

    ckpt_path = resolve_checkpoint(opts.checkpoint)
    # Before loading anything: an existing folder needs force; the checkpoint or the calibration
    # frames inside the folder are refused even with force (replacing it would delete them).
    check_output(out_dir, [ckpt_path, opts.calib_dir], opts.force, kind="dir")
    if opts.require_gpu_check:
        from vosx.tracker_runtime import accelerator

        probe = accelerator.probe_gpu()
        if not probe.available:
            raise AcceleratorError(f"--require-gpu-check: the GPU check cannot run: {probe.reason}")
    model = load_checkpoint(ckpt_path)
    with replace_dir(out_dir) as tmp:
        report = _export_into(model, ckpt_path, opts, tmp, say)
    return replace(report, out_dir=out_dir)


@dataclass(frozen=True)
class _Run:
    """What every stage reads: the model, its graphs, probe inputs and costs."""

    model: object  # the TrickVOS being exported
    opts: ExportOptions
    out: Path  # the temporary folder everything is written into
    started: float  # time.time() at the start
    ios: dict  # graph name -> GraphIO
    torch_graphs: object  # TorchGraphs of the model: the reference of every parity figure
    realistic: list[dict]  # per sample: graph name -> input name -> array (from a clip)
    random_in: dict  # graph name -> input name -> array (random, seeded per graph)
    calib_source: str  # where the sample frames came from
    macs: dict[str, int]  # graph name -> MACs of one run with one object
    params: dict[str, int]  # top-level part -> parameters, and "total"

    def probes(self, name: str) -> list[dict]:
        """The inputs every parity figure of graph ``name`` is the worst case over."""
        return [self.random_in[name], self.realistic[0][name]]


def _export_into(model, ckpt_path: Path, opts: ExportOptions, out: Path, say) -> ExportReport:
    """The five stages, in order, writing into ``out``."""
    from vosx.export.graphs import BINDINGS

    run = _prepare(model, opts, out)
    onnx_parity = _stage_onnx(run, say)
    converted = _stage_convert(run, say)
    graphs, manifest_graphs = _stage_verify(run, onnx_parity, converted, say)
    manifest_data = _manifest_data(model, opts.size, manifest_graphs, BINDINGS, run.ios)
    write_manifest(out, manifest_data)
    e2e, e2e_gpu = _stage_end_to_end(run, graphs, say)
    return _stage_report(run, ckpt_path, graphs, (e2e, e2e_gpu), manifest_data["tools"])


def _prepare(model, opts: ExportOptions, out: Path) -> _Run:
    from vosx.export.graphs import graph_ios
    from vosx.model.checkpoint import count_parameters
    from vosx.model.graphs import TorchGraphs

    started = time.time()
    ios = graph_ios(model, opts.size)
    torch_graphs = TorchGraphs(model)
    # int8 calibrates on every sample; the float checks need one (frames 0, 1 as memory, 2 as query)
    n_frames = CALIB_FRAMES if "int8" in opts.precisions else 3
    frames, masks, calib_source = _sample_frames(opts.size, opts.calib_dir, n_frames)
    return _Run(
        model=model,
        opts=opts,
        out=out,
        started=started,
        ios=ios,
        torch_graphs=torch_graphs,
        realistic=_graph_inputs(torch_graphs, opts.size, frames, masks),
        random_in={name: _random_inputs(gio, seed=i) for i, (name, gio) in enumerate(ios.items())},
        calib_source=calib_source,
        macs=verify.count_macs(model, opts.size),
        params=count_parameters(model),
    )


def _stage_onnx(run: _Run, say) -> dict[str, Parity]:
    """Stage ``onnx``: export each graph to ONNX and check ONNX Runtime against PyTorch."""
    from vosx.export.convert import export_onnx

    say("onnx", "exporting ONNX graphs")
    parity = {}
    for name, gio in run.ios.items():
        path = run.out / f"{name}.onnx"
        try:
            export_onnx(run.model, gio, path, run.random_in[name])
        except Exception as e:  # torch/onnx raise many types; report the stage
            raise ExportError(f"ONNX stage failed for {name}: {type(e).__name__}: {e}") from e
        worst = max(
            (
                verify.compare(run.torch_graphs.run(name, p), verify.run_onnx(path, p))
                for p in run.probes(name)
            ),
            key=lambda x: x.scaled,
        )
        parity[name] = worst
        if worst.scaled > verify.ONNX_MAX_ABS:
            raise ParityError(
                f"ONNX stage: {name} output {worst.worst_output} differs from PyTorch by "
                f"{worst.scaled:.2e} x max(1, max|output|) > ONNX_MAX_ABS {verify.ONNX_MAX_ABS:.0e}"
            )
    return parity


def _stage_convert(run: _Run, say) -> dict:
    """Stage ``convert``: onnx2tf in a child process -> its result (graph -> files, gpu)."""
    from vosx.export.convert import run_converter

    opts, out = run.opts, run.out
    say("convert", f"converting with onnx2tf ({', '.join(opts.precisions)})")
    calib_paths = {}
    if "int8" in opts.precisions:
        calib_dir = out / ".calib"
        calib_dir.mkdir()
        for name, gio in run.ios.items():
            calib_paths[name] = {}
            for inp in gio.inputs:
                data = np.concatenate([s[name][inp] for s in run.realistic], 0)
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
            for name, gio in run.ios.items()
        ],
    }
    with temp_dir(prefix="vosx-onnx2tf-") as work:
        converted = run_converter(job, work)["graphs"]
    shutil.rmtree(out / ".calib", ignore_errors=True)
    return converted


def _stage_verify(
    run: _Run, onnx_parity: dict[str, Parity], converted: dict, say
) -> tuple[dict[str, GraphReport], dict]:
    """Stage ``verify``: parity, the GPU check, ops and fp16 headroom of every file.

    Returns:
        (the report of every graph, the manifest's ``graphs`` section).

    Raises:
        ParityError: every gated check that failed, in one message.
    """
    from vosx.tracker_runtime import accelerator

    say("verify", "checking parity, the GPU delegate and fp16 headroom")
    probe = accelerator.probe_gpu()  # cached; a child process
    if not probe.available:
        say("verify", f"GPU check not run: {probe.reason}")
    graphs, manifest_graphs, failures = {}, {}, []
    for name, gio in run.ios.items():
        conv = converted[name]
        files: dict[str, PrecisionReport] = {}
        for prec, fname in conv["files"].items():
            analyzer = conv["gpu"].get(prec)
            files[prec] = _verify_file(run, name, prec, fname, analyzer, probe, failures)
        if "fp32" in files:
            peak = files["fp32"].activation_peak
        else:  # no fp32 file: the ONNX graph (ONNX Runtime) is the reference run
            peak = _onnx_activation_peak(run.out / f"{name}.onnx", run.realistic[-1][name])
        if "fp16" in files and peak.max_abs > verify.FP16_MAX * verify.FP16_HEADROOM:
            failures.append(
                f"{name}: activation {peak.tensor} reaches {peak.max_abs:.3g}, too close to "
                f"fp16's limit {verify.FP16_MAX:.0f} (GPU delegates compute in fp16)"
            )
        graphs[name] = GraphReport(onnx_parity[name], files, run.macs[name], run.params[name], peak)
        reference = conv["files"].get("fp32") or next(iter(conv["files"].values()))
        inputs, outputs = verify.tflite_io(run.out / reference)
        manifest_graphs[name] = {
            "onnx": f"{name}.onnx",
            "files": {p: file_entry(run.out, f) for p, f in conv["files"].items()},
            "inputs": [_tensor(n, s, d, gio.inputs) for n, s, d in inputs],
            "outputs": [_tensor(n, s, d, gio.outputs) for n, s, d in outputs],
        }
    if failures:
        raise ParityError("verification stage: " + " | ".join(failures))
    return graphs, manifest_graphs


def _verify_file(
    run: _Run, name: str, prec: str, fname: str, analyzer: dict | None, probe, failures: list
) -> PrecisionReport:
    """One .tflite file's figures; gated misses are appended to ``failures``.

    ``analyzer``: the converter's analyzer answer (None for int8); ``probe``: ``probe_gpu()``.
    """
    path = run.out / fname
    cases = [(p, run.torch_graphs.run(name, p)) for p in run.probes(name)]  # (inputs, reference)
    parity = max(
        (verify.compare(ref, verify.run_tflite(path, p, run.opts.threads)) for p, ref in cases),
        key=lambda x: x.rel,
    )
    verdict = None
    if analyzer is not None:
        rules = verify.gpu_rule_problems(path)
        verdict = GpuVerdict(
            analyzer_compatible=analyzer["compatible"],
            problems=tuple(analyzer["problems"] + rules),
            compatible=analyzer["compatible"] and not rules,
        )
    peak = None
    if prec == "fp32":
        peak = ActivationPeak(*verify.activation_peak(path, run.realistic[-1][name]))
        if parity.rel > verify.TFLITE_FP32_MAX_REL:
            failures.append(
                f"{fname}: output {parity.worst_output} differs from PyTorch by "
                f"{parity.rel:.2e} x max|output| > TFLITE_FP32_MAX_REL "
                f"{verify.TFLITE_FP32_MAX_REL:.0e}"
            )
    if verdict is not None and not verdict.compatible and not run.opts.allow_cpu_ops:
        ops = "; ".join(verdict.problems) or "analyzer did not confirm compatibility"
        failures.append(
            f"{fname}: not fully supported by the GPU delegate ({ops}); "
            "pass --allow-cpu-ops to accept CPU fallback"
        )
    return PrecisionReport(
        file=fname,
        bytes=path.stat().st_size,
        parity=parity,
        gpu=None if analyzer is None else _gpu_check(run, path, cases, probe, failures),
        analyzer=verdict,
        ops=verify.op_counts(path),
        activation_peak=peak,
    )


def _gpu_check(run: _Run, path: Path, cases: list, probe, failures: list) -> GpuCheck:
    """A file compiled GPU-only on LiteRT's GPU accelerator (a child process) and run on every
    probe against PyTorch; a refusal or a miss of ``GPU_FP16_MAX_REL`` is appended to
    ``failures`` unless ``--allow-cpu-ops``."""
    from vosx.tracker_runtime import accelerator

    if not probe.available:
        return GpuCheck(ran=False, reason=probe.reason)
    fname, allow = path.name, run.opts.allow_cpu_ops
    hint = "pass --allow-cpu-ops to accept CPU fallback"
    worst, adapter = ("", 0.0), probe.adapter
    for inputs, reference in cases:
        try:
            result = accelerator.compare_on_gpu(path, inputs, reference)
        except AcceleratorError as e:
            why = str(e).replace(f"{path.absolute()}: ", "")
            if not allow:
                failures.append(f"{fname}: {why}; {hint}")
            return GpuCheck(ran=True, fully_delegated=False, adapter=adapter, reason=why)
        adapter = result.adapter or adapter
        worst = max(worst, result.worst, key=lambda kv: kv[1])
    if worst[1] > verify.GPU_FP16_MAX_REL and not allow:
        failures.append(
            f"{fname}: on the GPU ({adapter}) output {worst[0]} differs from PyTorch by "
            f"{worst[1]:.2e} x max|output| > GPU_FP16_MAX_REL {verify.GPU_FP16_MAX_REL:.0e}; "
            f"{hint}"
        )
    return GpuCheck(ran=True, fully_delegated=True, max_rel=worst[1], adapter=adapter)


def _onnx_activation_peak(path: Path, inputs: dict) -> ActivationPeak:
    """The largest |value| of any float tensor a node of the ONNX graph computes (ONNX Runtime)."""
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
    best = ActivationPeak("", 0.0)
    for n, value in zip(names, sess.run(names, inputs), strict=True):
        if value.size and n in produced:
            peak = float(np.abs(value.astype(np.float32)).max())
            if peak > best.max_abs:
                best = ActivationPeak(n, peak)
    return best


def _stage_end_to_end(
    run: _Run, graphs: dict[str, GraphReport], say
) -> tuple[dict[str, EndToEnd], dict[str, EndToEnd]]:
    """Stage ``end_to_end``: the same driver over PyTorch and over each TFLite precision, on the
    CPU and (where every graph of that precision was fully delegated) on the GPU.

    Returns:
        (CPU runs by precision, GPU runs by precision).
    """
    from vosx.manifest import load_manifest
    from vosx.tracker_runtime.litert import TFLiteGraphs
    from vosx.training.synthetic import make_clip

    size, opts = run.opts.size, run.opts
    clip = make_clip(E2E_FRAMES, size[0], size[1], E2E_OBJECTS, seed=7)
    manifest = load_manifest(run.out)
    e2e = {}
    reference = verify.run_clip(run.torch_graphs, size, clip.frames, clip.masks[0])  # once for all
    for prec in opts.precisions:
        tfl = TFLiteGraphs(manifest, prec, threads=opts.threads)
        ious, ties = verify.end_to_end(reference, tfl, size, clip.frames, clip.masks[0])
        e2e[prec] = _end_to_end(ious, ties)
    _check_iou(e2e, {"fp32": verify.E2E_IOU_FP32, "fp16": verify.E2E_IOU_FP16}, "")
    e2e_gpu = {}
    for prec in opts.precisions:
        checks = [g.precisions[prec].gpu for g in graphs.values()]
        if all(c is not None and c.ran and c.fully_delegated for c in checks):
            say("end_to_end", f"the {prec} clip on the GPU (LiteRT's GPU accelerator)")
            labels = verify.gpu_clip_labels(run.out, prec, size, clip.frames, clip.masks[0])
            margin = verify.E2E_GPU_TIE_MARGIN
            e2e_gpu[prec] = _end_to_end(
                *verify.label_ious(reference, labels, clip.masks[0], margin)
            )
    if not opts.allow_cpu_ops:  # the GPU computes in fp16 for both files: one bound
        bound = verify.E2E_IOU_GPU
        hint = " on the GPU (pass --allow-cpu-ops to accept it)"
        _check_iou(e2e_gpu, {"fp32": bound, "fp16": bound}, hint)
    return e2e, e2e_gpu


def _end_to_end(ious: list[float], ties: float) -> EndToEnd:
    return EndToEnd(
        min_iou=min(ious),
        mean_iou=float(np.mean(ious)),
        per_frame=tuple(ious),
        tie_fraction=ties,
        conclusive=1.0 - ties >= verify.E2E_MIN_DECISIVE,
    )


def _check_iou(e2e: dict[str, EndToEnd], bounds: dict[str, float], where: str) -> None:
    """A conclusive run below its precision's bound fails the export (``where``: of the message)."""
    for prec, bound in bounds.items():
        if prec in e2e and e2e[prec].conclusive and e2e[prec].min_iou < bound:
            raise ParityError(
                f"verification stage: end-to-end {prec} mask IoU {e2e[prec].min_iou:.4f} < "
                f"{bound} on the {E2E_FRAMES}-frame synthetic clip{where}"
            )


def _stage_report(
    run: _Run, ckpt_path: Path, graphs: dict[str, GraphReport], e2e: tuple, tools: dict
) -> ExportReport:
    """Stage ``report``: the typed report, written as ``report.json`` and ``report.md``.

    ``e2e``: ``_stage_end_to_end``'s (CPU runs, GPU runs).
    """
    report = ExportReport(
        out_dir=run.out,
        checkpoint=str(ckpt_path),
        size=run.opts.size,
        tolerances=Tolerances.current(),
        int8_calibration=run.calib_source if "int8" in run.opts.precisions else None,
        parameters=run.params,
        macs_per_frame_one_object=sum(run.macs.values()),
        graphs=graphs,
        end_to_end=e2e[0],
        end_to_end_gpu=e2e[1],
        allow_cpu_ops=run.opts.allow_cpu_ops,
        export_seconds=round(time.time() - run.started, 1),
        tools=tools,
    )
    (run.out / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    (run.out / "report.md").write_text(render_md(report))
    return report


def _tensor(name: str, shape: tuple, dtype: str, declared: dict) -> dict:
    if name not in declared:
        raise ExportError(
            f"verification stage: TFLite tensor {name!r} is not one of {list(declared)}"
        )
    onnx_shape = tuple(declared[name])
    if onnx_shape != shape:
        raise ExportError(
            f"verification stage: {name} has TFLite shape {shape} but ONNX shape {onnx_shape}; "
            "the NHWC wrappers should keep them equal"
        )
    return {"name": name, "shape": list(shape), "dtype": dtype}


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
