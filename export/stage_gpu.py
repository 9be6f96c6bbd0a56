"""Stage ``gpu`` of ``vosx export``: every file the GPU runs, on LiteRT's GPU accelerator.

Every such file (``vosx.precision``: ``gpu``) is compiled GPU-only; one precision's files (fp16
where exported: the GPU computes both in fp16) run on their realistic probe and the first
``E2E_GPU_FRAMES`` frames of the clip through the driver, all in one child process
(``gpu.run_gpu_checks``). Judged here against PyTorch and against fp16 arithmetic in PyTorch:
gates ``gpu_ops``, ``gpu_defect``, ``finite``; finding ``gpu_arithmetic``.
"""

from dataclasses import replace

from vosx.errors import AcceleratorError
from vosx.export import gpu as gpu_checks
from vosx.export import measure, verify
from vosx.export.gpu import GpuRun
from vosx.export.judge import ALLOW_HINT
from vosx.export.prepare import SEGMENT_ONLY, ExportRun
from vosx.export.report import GpuCheck, GraphReport
from vosx.precision import PRECISIONS, precision

E2E_GPU_FRAMES = 3  # the clip's first frames run on the GPU (lavapipe takes seconds a graph)


def stage_gpu(
    run: ExportRun, graphs: dict[str, GraphReport], clip, say
) -> tuple[dict[str, GraphReport], GpuRun | None]:
    """Stage ``gpu``: the GPU checks where they can run, judged (see the module docstring).

    Returns:
        (the graphs with their ``GpuCheck``, what the child did; None: not run).

    Raises:
        AcceleratorError: ``--require-gpu-check`` and the GPU check cannot run.
        ParityError: a gate failed.
    """
    v = run.verdicts
    files = {
        (name, prec): p.file
        for name, g in graphs.items()
        for prec, p in g.precisions.items()
        if precision(prec).gpu
    }
    gpu, why = _run_gpu(run, graphs, files, clip, say)
    if gpu is None:
        if run.opts.require_gpu_check and run.full and files:
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


def _run_gpu(
    run: ExportRun, graphs: dict[str, GraphReport], files: dict, clip, say
) -> tuple[GpuRun | None, str | None]:
    """The GPU child's run where it can run -> (what it did, None) or (None, why not)."""
    from vosx.tracker_runtime import accelerator

    if not run.full:
        return None, SEGMENT_ONLY
    if not files:
        return None, f"no {' or '.join(p.name for p in PRECISIONS if p.gpu)} file"
    if not run.opts.gpu_check:
        return None, "skipped (--no-gpu-check)"
    probe = accelerator.probe_gpu()  # cached; a child process
    if not probe.available:
        return None, probe.reason
    say("gpu", f"{len(files)} graphs GPU-only on {probe.adapter}, and a clip through them")
    frames_masks = (clip.frames[:E2E_GPU_FRAMES], clip.masks[0], run.opts.size)
    probes = {name: [run.realistic[0][name]] for name in graphs}
    try:
        return gpu_checks.run_gpu_checks(run.out, files, probes, frames_masks), None
    except AcceleratorError as e:
        return None, f"the GPU child failed: {e}"


def _gpu_check(run: ExportRun, name: str, prec: str, fname: str, gpu: GpuRun) -> GpuCheck:
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
    bad = measure.first_nonfinite(got)
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
