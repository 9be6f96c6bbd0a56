"""``export_all``: the one call ``vosx export`` makes, in named stages: ``prepare`` (probe
inputs, PyTorch's outputs), ``onnx`` (export, checked with ONNX Runtime), ``convert`` (onnx2tf ->
TFLite), ``verify`` (every file on the CPU, the analyzer's verdict, fp16 headroom, fp16
arithmetic in PyTorch; then the manifest), ``gpu`` (every float file GPU-only on LiteRT's GPU
accelerator and a short clip through them, one child process), ``end_to_end`` (a clip through
the driver, PyTorch vs each file on the CPU, and the GPU clip) and ``report``.

The stages live in ``prepare``, ``stage_files`` (onnx, convert, verify), ``stage_gpu`` and
``stage_clip`` (end_to_end); this module runs them in order and writes ``manifest.json`` and the
report. Each stage records gates and findings (``vosx.export.verify.CHECKS``) in a
``judge.Verdicts``; a failed gate stops the export at the end of its stage, findings go to the
report (``--strict``: one beyond its expected range fails the export too). Scope "segment" runs
only what ``vosx segment`` needs: ONNX and fp32 parity on the CPU, NaN/Inf; no analyzer, GPU,
headroom or clip.

Shapes: as in ``vosx.export.graphs`` (NHWC, ``1 x 1 x N x C`` memory).
Everything is written into a temporary sibling folder and renamed onto ``out_dir`` at the end, so a
failed export leaves nothing behind.
"""

import platform
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path

from vosx.errors import AcceleratorError, ParityError
from vosx.export import verify
from vosx.export.options import ExportOptions, check_options
from vosx.export.prepare import ExportRun, prepare
from vosx.export.render import render_md
from vosx.export.report import NOT_RUN, ExportReport, GraphReport, Tolerances
from vosx.export.stage_clip import stage_end_to_end
from vosx.export.stage_files import stage_convert, stage_onnx, stage_verify
from vosx.export.stage_gpu import stage_gpu
from vosx.files import json_text, replace_dir
from vosx.manifest import write_manifest
from vosx.output_policy import check_output
from vosx.sizes import STRIDE


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
    check_options(opts)
    out_dir = Path(opts.out_dir).absolute()  # the converter child runs in another folder

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


def export_on_terminal(opts: ExportOptions) -> ExportReport:
    """``vosx export``: ``export_all`` with a progress line per stage on stderr, then the warning
    line of each finding beyond its expected range (stderr) and the summary (stdout)."""
    from rich.console import Console

    from vosx.export.render import print_summary
    from vosx.progress import StageProgress

    console = Console(stderr=True)
    with StageProgress(console) as progress:
        report = export_all(opts, progress)
    for line in report.warnings:
        console.print(f"warning: {line}", soft_wrap=True, highlight=False, markup=False)
    print_summary(report)
    return report


def _export_into(model, ckpt_path: Path, opts: ExportOptions, out: Path, say) -> ExportReport:
    """The stages, in order, writing into ``out``."""
    from vosx.export.graphs import BINDINGS

    run = prepare(model, opts, out, say)
    onnx_parity = stage_onnx(run, say)
    converted = stage_convert(run, say)
    graphs, manifest_graphs = stage_verify(run, onnx_parity, converted, say)
    manifest_data = _manifest_data(model, opts.size, manifest_graphs, BINDINGS, run.ios)
    write_manifest(out, manifest_data)
    clip = run.clip() if run.full else None
    graphs, gpu = stage_gpu(run, graphs, clip, say)
    e2e, e2e_gpu = stage_end_to_end(run, clip, gpu, say)
    return _stage_report(run, ckpt_path, graphs, (e2e, e2e_gpu), manifest_data["tools"], say)


def _stage_report(
    run: ExportRun, ckpt_path: Path, graphs: dict[str, GraphReport], e2e: tuple, tools: dict, say
) -> ExportReport:
    """Stage ``report``: the typed report, written as ``report.json`` and ``report.md``.

    ``e2e``: ``stage_end_to_end``'s (CPU runs, GPU runs).

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
        int8_calibration=run.calib_source if run.opts.calibrated else None,
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
        gates={
            c.name: v.gates.get(c.name, NOT_RUN) for c in verify.CHECKS if c.kind == verify.GATE
        },
        findings=v.findings,
    )
    (run.out / "report.json").write_text(json_text(report.to_json()))  # NaN / inf: null
    (run.out / "report.md").write_text(render_md(report))
    return report


def _tool_versions() -> dict:
    """The version of every package the export ran (None: not installed)."""
    out = {"python": platform.python_version()}
    for pkg in ("vosx", "torch", "onnx", "onnxruntime", "onnx2tf", "tensorflow", "ai-edge-litert"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _manifest_data(model, size, graphs: dict, bindings, ios) -> dict:
    """Everything ``manifest.json`` holds besides its format (``write_manifest`` adds it)."""
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
            "grid": [size[0] // STRIDE, size[1] // STRIDE],
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
