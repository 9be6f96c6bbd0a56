"""Stage ``end_to_end`` of ``vosx export``: a clip through the runtime driver, judged.

The same driver runs PyTorch (the reference, once) and each exported precision's files on the
CPU; each precision's run is held to its ``vosx.precision`` record's clip check (a gate for an
exact precision, a finding otherwise), and the GPU stage's clip to ``end_to_end_gpu``.
"""

from vosx.export import clip as clips
from vosx.export import verify
from vosx.export.gpu import GpuRun
from vosx.export.prepare import E2E_FRAMES, SEGMENT_ONLY, ExportRun
from vosx.export.report import EndToEnd
from vosx.precision import PRECISIONS


def stage_end_to_end(
    run: ExportRun, clip, gpu: GpuRun | None, say
) -> tuple[dict[str, EndToEnd], dict[str, EndToEnd]]:
    """Stage ``end_to_end``: the same driver over PyTorch and over each TFLite precision on the
    CPU (gates ``tflite_fp32``, ``finite``; findings ``end_to_end_fp16``, ``end_to_end_int8``),
    and the GPU stage's clip against the same reference (finding ``end_to_end_gpu``).

    Returns:
        (CPU runs by precision, the GPU run by the precision it ran).

    Raises:
        ParityError: a gate failed.
    """
    v = run.verdicts
    if clip is None:
        for prec in PRECISIONS:
            if verify.check(prec.e2e_check).kind == verify.FINDING:
                v.finding_not_run(prec.e2e_check, SEGMENT_ONLY)
        v.finding_not_run("end_to_end_gpu", SEGMENT_ONLY)
        return {}, {}
    say("end_to_end", f"a {E2E_FRAMES}-frame clip through the driver, PyTorch and TFLite")
    first = clip.masks[0]
    reference = clips.run_clip(run.torch_graphs, run.opts.size, clip.frames, first)  # once
    e2e = _cpu_runs(run, clip, reference)
    _judge_cpu_runs(run, e2e)
    e2e_gpu = {}
    if gpu is not None and gpu.clip_labels:
        n = len(gpu.clip_labels)
        truncated = (reference[0][:n], reference[1][:n])  # the driver is causal: same frames
        ious = clips.label_ious(truncated, gpu.clip_labels, first, verify.E2E_GPU_TIE_MARGIN)
        e2e_gpu[gpu.ran] = clips.summary(*ious)
        v.clip("end_to_end_gpu", e2e_gpu[gpu.ran], verify.E2E_IOU_GPU, gpu.adapter)
    elif gpu is not None:
        v.finding_not_run("end_to_end_gpu", f"no clip on the GPU: {gpu.clip_skipped}")
    v.raise_failures("verification stage")
    return e2e, e2e_gpu


def _cpu_runs(run: ExportRun, clip, reference: tuple) -> dict[str, EndToEnd]:
    """Each exported precision's clip on the CPU against PyTorch's (gate ``finite``)."""
    from vosx.manifest import load_manifest
    from vosx.tracker_runtime.litert import TFLiteGraphs

    problems = [] if clips.finite_gaps(reference[1]) else ["PyTorch's clip is NaN or infinite"]
    manifest = load_manifest(run.out)
    first, e2e = clip.masks[0], {}
    for prec in run.opts.precisions:
        tfl = TFLiteGraphs(manifest, prec, threads=run.opts.threads)
        labels, gaps = clips.run_clip(tfl, run.opts.size, clip.frames, first)
        if not clips.finite_gaps(gaps):
            problems.append(f"the {prec} clip on the CPU is NaN or infinite")
        ious = clips.label_ious(reference, labels, first, verify.E2E_TIE_MARGIN)
        e2e[prec] = clips.summary(*ious)
    run.verdicts.gate("finite", problems)
    return e2e


def _judge_cpu_runs(run: ExportRun, e2e: dict[str, EndToEnd]) -> None:
    """Each precision's clip against its record's check: a gate (a conclusive clip below the
    bound fails) or a finding (not run without that precision's files)."""
    v = run.verdicts
    for prec in PRECISIONS:
        result = e2e.get(prec.name)
        if verify.check(prec.e2e_check).kind == verify.GATE:
            v.gate(
                prec.e2e_check,
                [
                    f"end-to-end {prec.name} mask IoU {result.min_iou:.4f} < {prec.e2e_bound} "
                    f"on the bundled real clip's first {E2E_FRAMES} frames"
                ]
                if result is not None and result.conclusive and result.min_iou < prec.e2e_bound
                else [],
            )
        elif result is not None:
            v.clip(prec.e2e_check, result, prec.e2e_bound)
        else:
            v.finding_not_run(prec.e2e_check, f"no {prec.name} file")
