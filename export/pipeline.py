"""``export_all``: the one call ``vosx export`` makes, in named stages: ``prepare`` (probe
inputs, PyTorch's outputs), ``onnx`` (export, checked with ONNX Runtime), ``convert`` (onnx2tf ->
TFLite), ``verify`` (every file on the CPU, the analyzer's verdict, fp16 headroom, fp16
arithmetic in PyTorch; then the manifest), ``gpu`` (every float file GPU-only on LiteRT's GPU
accelerator and a short clip through them, one child process), ``end_to_end`` (a clip through
the driver, PyTorch vs each file on the CPU, and the GPU clip) and ``report``.

Each stage records gates and findings (``vosx.export.verify.CHECKS``) in a ``judge.Verdicts``; a
failed gate stops the export at the end of its stage, findings go to the report (``--strict``:
one beyond its expected range fails the export too). Scope "segment" runs only what ``vosx
segment`` needs: ONNX and fp32 parity on the CPU, NaN/Inf; no analyzer, GPU, headroom or clip.

Shapes: as in ``vosx.export.graphs`` (NHWC, ``1 x 1 x N x C`` memory).
Everything is written into a temporary sibling folder and renamed onto ``out_dir`` at the end, so a
failed export leaves nothing behind.
"""

import platform
import shutil
import time
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

import numpy as np

from vosx import sizes
from vosx.errors import AcceleratorError, ConfigError, ExportError, ParityError
from vosx.export import verify
from vosx.export.judge import ALLOW_HINT, Verdicts
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
from vosx.files import check_output, json_text, replace_dir, temp_dir
from vosx.manifest import PRECISIONS, file_entry, write_manifest

DEFAULT_SIZE = (480, 864)
SCOPES = ("full", "segment")
E2E_FRAMES = 10
E2E_GPU_FRAMES = 3  # the clip's first frames run on the GPU (lavapipe takes seconds a graph)
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
    allow_cpu_ops: bool = False  # accept what the GPU refuses or computes far beyond fp16
    threads: int = 2
    require_gpu_check: bool = False  # fail (before writing) where the GPU check cannot run
    gpu_check: bool = True  # run LiteRT's GPU accelerator where a Vulkan device is usable
    strict: bool = False  # a finding beyond its expected range fails the export
    scope: str = "full"  # SCOPES: "segment" is what `vosx segment` needs (fp32, the CPU gates)


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
    if len(set(opts.precisions)) != len(opts.precisions):
        raise ConfigError(
            f"--precision {','.join(opts.precisions)}: names a precision twice; give each once"
        )
    if opts.scope not in SCOPES:
        raise ConfigError(f"scope {opts.scope!r}: choose from {', '.join(SCOPES)}")
    if opts.require_gpu_check and not opts.gpu_check:
        raise ConfigError("--require-gpu-check and --no-gpu-check contradict; drop one")
    out_dir = Path(opts.out_dir).absolute()  # the converter child runs in another folder
    if opts.calib_dir is not None and not Path(opts.calib_dir).is_dir():
        raise ConfigError(f"--calib {opts.calib_dir}: not a folder of frames")

    from vosx.model.checkpoint import load_checkpoint, resolve_checkpoint

    ckpt_path = resolve_checkpoint(opts.checkpoint)
    # Before loading anything: an existing folder needs force; the checkpoint or the calibration
    # frames inside the folder are refused even with force (replacing it would delete them).
    check_output(out_dir, [ckpt_path, opts.calib_dir], opts.force, kind="dir")
    if opts.require_gpu_check and opts.scope == "full":
        from vosx.tracker_runtime import accelerator

        probe = accelerator.probe_gpu()
        if not probe.available:
            raise AcceleratorError(f"--require-gpu-check: the GPU check cannot run: {probe.reason}")
    model = load_checkpoint(ckpt_path)
    with replace_dir(out_dir, overwrite=opts.force) as tmp:
        report = _export_into(model, ckpt_path, opts, tmp, say)
    return replace(report, out_dir=out_dir)


@dataclass(frozen=True)
class _Run:
    """What every stage reads: the model, its graphs, probe inputs, references and costs."""

    model: object  # the TrickVOS being exported
    opts: ExportOptions
    out: Path  # the temporary folder everything is written into
    started: float  # time.time() at the start
    ios: dict  # graph name -> GraphIO
    torch_graphs: object  # TorchGraphs of the model: the reference of every parity figure
    realistic: list[dict]  # per sample: graph name -> input name -> array (from a clip)
    random_in: dict  # graph name -> input name -> array (random, seeded per graph)
    refs: dict  # graph name -> PyTorch's outputs on each of ``probes(name)``
    calib_source: str  # where the sample frames came from
    macs: dict[str, int]  # graph name -> MACs of one run with one object
    params: dict[str, int]  # top-level part -> parameters, and "total"
    verdicts: Verdicts  # gates and findings, filled stage by stage
    fp16_graphs: object  # verify.Fp16Graphs of the model (scope "full"), else None
    fp16_rel: dict = field(default_factory=dict)  # graph -> output -> fp16 arithmetic's rel

    @property
    def full(self) -> bool:
        """Every check runs (``scope`` "full"); else only what ``vosx segment`` needs."""
        return self.opts.scope == "full"

    def probes(self, name: str) -> list[dict]:
        """The inputs every parity figure of graph ``name`` is the worst case over."""
        return [self.random_in[name], self.realistic[0][name]]

    def clip(self):
        """The end-to-end clip (frames, masks): synthetic, two objects, at the export's size."""
        from vosx.training.synthetic import make_clip

        size = self.opts.size
        return make_clip(E2E_FRAMES, size[0], size[1], E2E_OBJECTS, seed=7)


def _export_into(model, ckpt_path: Path, opts: ExportOptions, out: Path, say) -> ExportReport:
    """The stages, in order, writing into ``out``."""
    from vosx.export.graphs import BINDINGS

    run = _prepare(model, opts, out, say)
    onnx_parity = _stage_onnx(run, say)
    converted = _stage_convert(run, say)
    graphs, manifest_graphs = _stage_verify(run, onnx_parity, converted, say)
    manifest_data = _manifest_data(model, opts.size, manifest_graphs, BINDINGS, run.ios)
    write_manifest(out, manifest_data)
    clip = run.clip() if run.full else None
    graphs, gpu = _stage_gpu(run, graphs, clip, say)
    e2e, e2e_gpu = _stage_end_to_end(run, clip, gpu, say)
    return _stage_report(run, ckpt_path, graphs, (e2e, e2e_gpu), manifest_data["tools"], say)


def _prepare(model, opts: ExportOptions, out: Path, say) -> _Run:
    """Stage ``prepare``: shapes, probe inputs, PyTorch's outputs on them (``finite`` gate)."""
    from vosx.export.graphs import graph_ios
    from vosx.model.checkpoint import count_parameters
    from vosx.model.graphs import TorchGraphs

    say("prepare", "probe inputs and PyTorch's outputs on them")
    started = time.time()
    ios = graph_ios(model, opts.size)
    torch_graphs = TorchGraphs(model)
    # int8 calibrates on every sample; the float checks need one (frames 0, 1 as memory, 2 as query)
    n_frames = CALIB_FRAMES if "int8" in opts.precisions else 3
    frames, masks, calib_source = _sample_frames(opts.size, opts.calib_dir, n_frames)
    realistic = _graph_inputs(torch_graphs, opts.size, frames, masks)
    random_in = {name: _random_inputs(gio, seed=i) for i, (name, gio) in enumerate(ios.items())}
    refs = {
        name: [torch_graphs.run(name, p) for p in (random_in[name], realistic[0][name])]
        for name in ios
    }
    verdicts = Verdicts(opts.allow_cpu_ops)
    problems = []
    for name, outputs in refs.items():
        for kind, out_ in zip(("random", "realistic"), outputs, strict=True):
            bad = verify.first_nonfinite(out_)
            if bad is not None:
                problems.append(
                    f"PyTorch itself gives NaN or Inf in {name} output {bad} on a {kind} input: "
                    "the checkpoint is not sound"
                )
    verdicts.gate("finite", problems)
    verdicts.raise_failures("verification stage")
    return _Run(
        model=model,
        opts=opts,
        out=out,
        started=started,
        ios=ios,
        torch_graphs=torch_graphs,
        realistic=realistic,
        random_in=random_in,
        refs=refs,
        calib_source=calib_source,
        macs=verify.count_macs(model, opts.size),
        params=count_parameters(model),
        verdicts=verdicts,
        fp16_graphs=verify.Fp16Graphs(model) if opts.scope == "full" else None,
    )


def _stage_onnx(run: _Run, say) -> dict[str, Parity]:
    """Stage ``onnx``: export each graph to ONNX and check ONNX Runtime against PyTorch (gates
    ``onnx_parity`` and ``finite``)."""
    from vosx.export.convert import export_onnx

    say("onnx", "exporting ONNX graphs and checking them with ONNX Runtime")
    parity, problems = {}, []
    for name, gio in run.ios.items():
        path = run.out / f"{name}.onnx"
        try:
            export_onnx(run.model, gio, path, run.random_in[name])
        except Exception as e:  # torch/onnx raise many types; report the stage
            raise ExportError(f"ONNX stage failed for {name}: {type(e).__name__}: {e}") from e
        results = [verify.run_onnx(path, p) for p in run.probes(name)]
        bad = [b for b in map(verify.first_nonfinite, results) if b is not None]
        if bad:
            problems.append(f"{name}.onnx: output {bad[0]} is NaN or infinite in ONNX Runtime")
            continue
        worst = max(
            (verify.compare(r, o) for r, o in zip(run.refs[name], results, strict=True)),
            key=lambda x: x.scaled,
        )
        parity[name] = worst
        if worst.scaled > verify.ONNX_MAX_ABS:
            run.verdicts.gate(
                "onnx_parity",
                [
                    f"{name} output {worst.worst_output} differs from PyTorch by "
                    f"{worst.scaled:.2e} x max(1, max|output|) > ONNX_MAX_ABS "
                    f"{verify.ONNX_MAX_ABS:.0e}"
                ],
            )
    run.verdicts.gate("finite", problems)
    run.verdicts.gate("onnx_parity", [])
    run.verdicts.raise_failures("ONNX stage")
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
        "analyze": run.full,  # TensorFlow's GPU analyzer: for the gpu_ops gate
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
    """Stage ``verify``: every file on the CPU (parity, ops, the analyzer's verdict), fp16
    headroom, and fp16 arithmetic in PyTorch.

    Returns:
        (the report of every graph, the manifest's ``graphs`` section).

    Raises:
        ParityError: every gate that failed, in one message.
    """
    if run.full:
        say("verify", "every file on the CPU, the analyzer, fp16 headroom, fp16 arithmetic")
    else:
        say("verify", "every file on the CPU")
    v = run.verdicts
    graphs, manifest_graphs = {}, {}
    for name, gio in run.ios.items():
        conv = converted[name]
        files: dict[str, PrecisionReport] = {}
        for prec, fname in conv["files"].items():
            analyzer = conv.get("gpu", {}).get(prec)
            files[prec] = _verify_file(run, name, prec, fname, analyzer)
        peak = None
        if "fp32" in files:
            peak = files["fp32"].activation_peak
        elif run.full:  # no fp32 file: the ONNX graph (ONNX Runtime) is the reference run
            peak = _onnx_activation_peak(run.out / f"{name}.onnx", run.realistic[-1][name])
        if "fp16" in files and peak is None:
            v.not_run("fp16_overflow", SEGMENT_ONLY)
        elif "fp16" in files:
            limit = verify.FP16_MAX * verify.FP16_HEADROOM
            too_big = peak is not None and peak.max_abs > limit
            v.gate(
                "fp16_overflow",
                [
                    f"{name}: activation {peak.tensor} reaches {peak.max_abs:.3g}, too close to "
                    f"fp16's limit {verify.FP16_MAX:.0f} (GPU delegates compute in fp16)"
                ]
                if too_big
                else [],
            )
        fp16 = _fp16_arithmetic(run, name) if run.full else None
        graphs[name] = GraphReport(
            onnx_parity[name], files, run.macs[name], run.params[name], peak, fp16
        )
        reference = conv["files"].get("fp32") or next(iter(conv["files"].values()))
        inputs, outputs = verify.tflite_io(run.out / reference)
        manifest_graphs[name] = {
            "onnx": f"{name}.onnx",
            "files": {p: file_entry(run.out, f) for p, f in conv["files"].items()},
            "inputs": [_tensor(n, s, d, gio.inputs) for n, s, d in inputs],
            "outputs": [_tensor(n, s, d, gio.outputs) for n, s, d in outputs],
        }
    if "fp16" not in run.opts.precisions:
        v.not_run("fp16_overflow", "no fp16 file")
    if not run.full:
        v.not_run("gpu_ops", SEGMENT_ONLY)
        v.finding_not_run("fp16_arithmetic", SEGMENT_ONLY)
    else:
        v.drift(
            "fp16_arithmetic",
            {name: g.fp16_arithmetic.rel for name, g in graphs.items()},
            verify.FP16_ARITH_MAX_REL,
        )
    for prec, check, bound in (
        ("fp16", "fp16_file", verify.TFLITE_FP16_MAX_REL),
        ("int8", "int8_file", verify.INT8_MAX_REL),
    ):
        if prec in run.opts.precisions:
            figures = {f"{n} {prec} file": g.precisions[prec].parity.rel for n, g in graphs.items()}
            v.drift(check, figures, bound)
        else:
            v.finding_not_run(check, f"no {prec} file")
    v.raise_failures("verification stage")
    return graphs, manifest_graphs


SEGMENT_ONLY = "scope segment (what `vosx segment` needs); `vosx export` runs it"


def _verify_file(
    run: _Run, name: str, prec: str, fname: str, analyzer: dict | None
) -> PrecisionReport:
    """One .tflite file's figures on the CPU; gates go to ``run.verdicts``.

    ``analyzer``: the converter's analyzer answer (None for int8, or when it did not run).
    """
    v = run.verdicts
    path = run.out / fname
    results = [verify.run_tflite(path, p, run.opts.threads) for p in run.probes(name)]
    bad = [b for b in map(verify.first_nonfinite, results) if b is not None]
    v.gate("finite", [f"{fname}: output {bad[0]} is NaN or infinite"] if bad else [])
    pairs = list(zip(run.refs[name], results, strict=True))
    if prec == "int8":  # calibrated on realistic inputs; a random one lies outside its ranges
        pairs = pairs[1:]
    parity = max((verify.compare(ref, got) for ref, got in pairs), key=lambda x: x.rel)
    verdict = None
    if analyzer is not None:
        rules = verify.gpu_rule_problems(path)
        verdict = GpuVerdict(
            analyzer_compatible=analyzer["compatible"],
            problems=tuple(analyzer["problems"] + rules),
            compatible=analyzer["compatible"] and not rules,
        )
        ops = "; ".join(verdict.problems) or "analyzer did not confirm compatibility"
        v.gate(
            "gpu_ops",
            []
            if verdict.compatible
            else [f"{fname}: not fully supported by the GPU delegate ({ops}); {ALLOW_HINT}"],
        )
    peak = None
    if prec == "fp32":
        if run.full:
            peak = ActivationPeak(*verify.activation_peak(path, run.realistic[-1][name]))
        v.gate(
            "tflite_fp32",
            [
                f"{fname}: output {parity.worst_output} differs from PyTorch by "
                f"{parity.rel:.2e} x max|output| > TFLITE_FP32_MAX_REL "
                f"{verify.TFLITE_FP32_MAX_REL:.0e}"
            ]
            if parity.rel > verify.TFLITE_FP32_MAX_REL
            else [],
        )
    float_file = prec != "int8"
    return PrecisionReport(
        file=fname,
        bytes=path.stat().st_size,
        parity=parity,
        gpu=GpuCheck(ran=False, reason=SEGMENT_ONLY) if float_file and not run.full else None,
        analyzer=verdict,
        ops=verify.op_counts(path),
        activation_peak=peak,
    )


def _fp16_arithmetic(run: _Run, name: str) -> Parity:
    """Graph ``name`` in fp16 arithmetic in PyTorch on the realistic probe (the GPU's input)
    against PyTorch; its per-output figures go to ``run.fp16_rel`` for the ``gpu_defect`` gate."""
    from vosx.tracker_runtime.accelerator import max_rel

    reference = run.refs[name][1]
    got = run.fp16_graphs.run(name, run.realistic[0][name])
    run.fp16_rel[name] = max_rel(reference, got)
    return verify.compare(reference, got)


def _stage_gpu(
    run: _Run, graphs: dict[str, GraphReport], clip, say
) -> tuple[dict[str, GraphReport], verify.GpuRun | None]:
    """Stage ``gpu``: every fp32/fp16 file compiled GPU-only on LiteRT's GPU accelerator; one
    precision's files (fp16 where exported: the GPU computes both in fp16) run on their
    realistic probe and the first ``E2E_GPU_FRAMES`` frames of the clip through the driver; all
    in one child process (gates ``gpu_ops``, ``gpu_defect``, ``finite``; finding
    ``gpu_arithmetic``).

    Returns:
        (the graphs with their ``GpuCheck``, what the child did; None: not run).
    """
    from vosx.tracker_runtime import accelerator

    v, opts = run.verdicts, run.opts
    files = {
        (name, prec): p.file
        for name, g in graphs.items()
        for prec, p in g.precisions.items()
        if prec != "int8"
    }
    why = None
    if not run.full:
        why = SEGMENT_ONLY
    elif not files:
        why = "no fp32 or fp16 file"
    elif not opts.gpu_check:
        why = "skipped (--no-gpu-check)"
    probe = None
    if why is None:
        probe = accelerator.probe_gpu()  # cached; a child process
        if not probe.available:
            why = probe.reason
    gpu = None
    if why is None:
        say("gpu", f"{len(files)} graphs GPU-only on {probe.adapter}, and a clip through them")
        frames_masks = (clip.frames[:E2E_GPU_FRAMES], clip.masks[0], opts.size)
        probes = {name: [run.realistic[0][name]] for name in graphs}
        try:
            gpu = verify.run_gpu_checks(run.out, files, probes, frames_masks)
        except AcceleratorError as e:
            why = f"the GPU child failed: {e}"
    if gpu is None:
        if opts.require_gpu_check and run.full and files:
            raise AcceleratorError(f"--require-gpu-check: the GPU check cannot run: {why}")
        if why != SEGMENT_ONLY:
            say("gpu", f"GPU check not run: {why}")
        v.not_run("gpu_defect", why)
        v.finding_not_run("gpu_arithmetic", f"GPU check not run: {why}")
        v.finding_not_run("end_to_end_gpu", f"GPU check not run: {why}")
        checks = {key: GpuCheck(ran=False, reason=why) for key in files}
        return _with_gpu_checks(graphs, checks), None
    checks, figures, reference = {}, {}, {}
    for (name, prec), fname in files.items():
        checks[(name, prec)] = _gpu_check(run, name, prec, fname, gpu)
        c = checks[(name, prec)]
        if c.max_rel is not None:
            figures[f"{name} {prec} file"] = c.max_rel
            reference[f"{name} {prec} file"] = c.fp16_arithmetic_rel
    if gpu.clip_nonfinite:
        v.gate("finite", [f"the GPU clip: {gpu.clip_nonfinite} is NaN or infinite"])
    if figures:
        v.drift("gpu_arithmetic", figures, verify.GPU_FP16_MAX_REL, gpu.adapter, reference)
    else:
        v.not_run("gpu_defect", "no precision has all its graphs on the GPU")
        v.finding_not_run("gpu_arithmetic", "no precision has all its graphs on the GPU")
    v.raise_failures("verification stage")
    return _with_gpu_checks(graphs, checks), gpu


def _gpu_check(run: _Run, name: str, prec: str, fname: str, gpu: verify.GpuRun) -> GpuCheck:
    """One file's GPU figures against PyTorch and against fp16 arithmetic in PyTorch (gates
    ``gpu_ops``, ``finite``, ``gpu_defect``); a file of the precision the GPU did not run
    (``gpu.ran``) has only its GPU-only compile."""
    from vosx.tracker_runtime.accelerator import max_rel

    v, adapter = run.verdicts, gpu.adapter
    refusal = gpu.refused.get((name, prec))
    if refusal is not None:
        v.gate("gpu_ops", [f"{fname}: {refusal}; {ALLOW_HINT}"])
        return GpuCheck(ran=True, fully_delegated=False, adapter=adapter, reason=refusal)
    v.gate("gpu_ops", [])
    if prec != gpu.ran:
        why = (
            f"compiled GPU-only; run as the {gpu.ran} file: the GPU computes both in fp16"
            if gpu.ran
            else "compiled GPU-only; not run (another graph of this precision was refused)"
        )
        return GpuCheck(ran=True, fully_delegated=True, adapter=adapter, reason=why)
    got = gpu.outputs[name][0]
    bad = verify.first_nonfinite(got)
    if bad is not None:
        v.gate("finite", [f"{fname}: output {bad} is NaN or infinite on the GPU ({adapter})"])
        return GpuCheck(ran=True, fully_delegated=True, max_rel=float("inf"), adapter=adapter)
    rel = max_rel(run.refs[name][1], got)
    fp16 = run.fp16_rel[name]
    ratios = {o: rel[o] / max(fp16[o], verify.FP16_UNIT) for o in rel}
    worst = max(ratios, key=lambda o: ratios[o])
    v.gate(
        "gpu_defect",
        [
            f"{fname}: on the GPU ({adapter}) output {worst} differs from PyTorch by "
            f"{rel[worst]:.2e} x max|output|, {ratios[worst]:.0f}x what fp16 arithmetic gives "
            f"({fp16[worst]:.2e}) > GPU_DEFECT_FACTOR {verify.GPU_DEFECT_FACTOR:g}; {ALLOW_HINT}"
        ]
        if ratios[worst] > verify.GPU_DEFECT_FACTOR
        else [],
    )
    return GpuCheck(
        ran=True,
        fully_delegated=True,
        max_rel=max(rel.values()),
        fp16_arithmetic_rel=max(fp16.values()),
        fp16_ratio=ratios[worst],
        adapter=adapter,
    )


def _with_gpu_checks(graphs: dict[str, GraphReport], checks: dict) -> dict[str, GraphReport]:
    """``graphs`` with each (graph, precision)'s ``GpuCheck`` filled in."""
    out = {}
    for name, g in graphs.items():
        files = {
            prec: replace(p, gpu=checks[(name, prec)]) if (name, prec) in checks else p
            for prec, p in g.precisions.items()
        }
        out[name] = replace(g, precisions=files)
    return out


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
    run: _Run, clip, gpu: verify.GpuRun | None, say
) -> tuple[dict[str, EndToEnd], dict[str, EndToEnd]]:
    """Stage ``end_to_end``: the same driver over PyTorch and over each TFLite precision on the
    CPU (gates ``tflite_fp32``, ``finite``; findings ``end_to_end_fp16``, ``end_to_end_int8``),
    and the GPU stage's clip against the same reference (finding ``end_to_end_gpu``).

    Returns:
        (CPU runs by precision, the GPU run by the precision it ran).
    """
    from vosx.manifest import load_manifest
    from vosx.tracker_runtime.litert import TFLiteGraphs

    v, opts = run.verdicts, run.opts
    if clip is None:
        for check in ("end_to_end_fp16", "end_to_end_gpu", "end_to_end_int8"):
            v.finding_not_run(check, SEGMENT_ONLY)
        return {}, {}
    say("end_to_end", f"a {E2E_FRAMES}-frame clip through the driver, PyTorch and TFLite")
    size, first = opts.size, clip.masks[0]
    reference = verify.run_clip(run.torch_graphs, size, clip.frames, first)  # once for all
    problems = [] if _finite_gaps(reference[1]) else ["PyTorch's clip is NaN or infinite"]
    manifest = load_manifest(run.out)
    e2e = {}
    for prec in opts.precisions:
        tfl = TFLiteGraphs(manifest, prec, threads=opts.threads)
        labels, gaps = verify.run_clip(tfl, size, clip.frames, first)
        if not _finite_gaps(gaps):
            problems.append(f"the {prec} clip on the CPU is NaN or infinite")
        e2e[prec] = _end_to_end(*verify.label_ious(reference, labels, first, verify.E2E_TIE_MARGIN))
    v.gate("finite", problems)
    fp32 = e2e.get("fp32")
    v.gate(
        "tflite_fp32",
        [
            f"end-to-end fp32 mask IoU {fp32.min_iou:.4f} < {verify.E2E_IOU_FP32} on the "
            f"{E2E_FRAMES}-frame synthetic clip"
        ]
        if fp32 is not None and fp32.conclusive and fp32.min_iou < verify.E2E_IOU_FP32
        else [],
    )
    for prec, check, bound in (
        ("fp16", "end_to_end_fp16", verify.E2E_IOU_FP16),
        ("int8", "end_to_end_int8", verify.E2E_IOU_INT8),
    ):
        if prec in e2e:
            v.clip(check, e2e[prec], bound)
        else:
            v.finding_not_run(check, f"no {prec} file")
    e2e_gpu = {}
    if gpu is not None and gpu.clip_labels:
        n = len(gpu.clip_labels)
        truncated = (reference[0][:n], reference[1][:n])  # the driver is causal: same frames
        e2e_gpu[gpu.ran] = _end_to_end(
            *verify.label_ious(truncated, gpu.clip_labels, first, verify.E2E_GPU_TIE_MARGIN)
        )
        v.clip("end_to_end_gpu", e2e_gpu[gpu.ran], verify.E2E_IOU_GPU, gpu.adapter)
    elif gpu is not None:
        v.finding_not_run("end_to_end_gpu", f"no clip on the GPU: {gpu.clip_skipped}")
    v.raise_failures("verification stage")
    return e2e, e2e_gpu


def _finite_gaps(gaps: list[np.ndarray]) -> bool:
    """Every frame's top-2 gaps are finite (the driver's probabilities held no NaN)."""
    return all(np.isfinite(g).all() for g in gaps)


def _end_to_end(ious: list[float], ties: float) -> EndToEnd:
    return EndToEnd(
        min_iou=min(ious),
        mean_iou=float(np.mean(ious)),
        per_frame=tuple(ious),
        tie_fraction=ties,
        conclusive=1.0 - ties >= verify.E2E_MIN_DECISIVE,
    )


def _stage_report(
    run: _Run, ckpt_path: Path, graphs: dict[str, GraphReport], e2e: tuple, tools: dict, say
) -> ExportReport:
    """Stage ``report``: the typed report, written as ``report.json`` and ``report.md``.

    ``e2e``: ``_stage_end_to_end``'s (CPU runs, GPU runs).

    Raises:
        ParityError: ``--strict`` and a finding beyond its expected range.
    """
    v = run.verdicts
    say("report", "report.json, report.md")
    warnings = v.warnings()
    if run.opts.strict and warnings:
        raise ParityError("--strict: " + " | ".join(warnings))
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
        scope=run.opts.scope,
        strict=run.opts.strict,
        gates={c.name: v.gates.get(c.name, "not run") for c in verify.CHECKS if c.kind == "gate"},
        findings=v.findings,
    )
    (run.out / "report.json").write_text(json_text(report.to_json()))  # NaN / inf: null
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
