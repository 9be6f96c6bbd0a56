"""Stages ``onnx``, ``convert`` and ``verify`` of ``vosx export``: every file written and checked
on the CPU.

``onnx``: each graph to ONNX, checked with ONNX Runtime (gates ``onnx_parity``, ``finite``);
``convert``: onnx2tf in a child process (``convert.run_converter``); ``verify``: every .tflite
file against PyTorch, its ops and the GPU analyzer's verdict, fp16 headroom and fp16 arithmetic
in PyTorch, and the manifest's ``graphs`` section. What a precision's files are held to comes
from its ``vosx.precision`` record (its checks, their kinds and bounds).

Shapes: as in ``vosx.export.graphs`` (NHWC, ``1 x 1 x N x C`` memory).
"""

import numpy as np

from vosx.errors import ExportError
from vosx.export import measure, verify
from vosx.export.judge import ALLOW_HINT
from vosx.export.measure import Parity
from vosx.export.prepare import SEGMENT_ONLY, ExportRun
from vosx.export.report import (
    ActivationPeak,
    GpuCheck,
    GpuVerdict,
    GraphReport,
    PrecisionReport,
)
from vosx.manifest import file_entry
from vosx.precision import PRECISIONS, Precision, precision


def stage_onnx(run: ExportRun, say) -> dict[str, Parity]:
    """Stage ``onnx``: export each graph to ONNX and check ONNX Runtime against PyTorch (gates
    ``onnx_parity`` and ``finite``).

    Raises:
        ExportError: the ONNX export of a graph failed.
        ParityError: a gate failed.
    """
    from vosx.export.convert import export_onnx

    say("onnx", "exporting ONNX graphs and checking them with ONNX Runtime")
    parity, problems = {}, []
    for name, gio in run.ios.items():
        path = run.out / f"{name}.onnx"
        try:
            export_onnx(run.model, gio, path, run.random_in[name])
        except Exception as e:  # torch/onnx raise many types; report the stage
            raise ExportError(f"ONNX stage failed for {name}: {type(e).__name__}: {e}") from e
        results = [measure.run_onnx(path, p) for p in run.probes(name)]
        bad = [b for b in map(measure.first_nonfinite, results) if b is not None]
        if bad:
            problems.append(f"{name}.onnx: output {bad[0]} is NaN or infinite in ONNX Runtime")
            continue
        worst = max(
            (measure.compare(r, o) for r, o in zip(run.refs[name], results, strict=True)),
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


def stage_convert(run: ExportRun, say) -> dict:
    """Stage ``convert``: onnx2tf in a child process -> graph -> {"files", "gpu"}.

    Raises:
        ExportError: the conversion failed (the last lines of its log).
    """
    from vosx.export import convert

    opts, out = run.opts, run.out
    say("convert", f"converting with onnx2tf ({', '.join(opts.precisions)})")
    calib = {}
    if opts.calibrated:  # every realistic sample of every input
        for name, gio in run.ios.items():
            for inp in gio.inputs:
                calib[f"{name}.{inp}"] = np.concatenate([s[name][inp] for s in run.realistic], 0)
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
            }
            for name, gio in run.ios.items()
        ],
    }
    return convert.run_converter(job, calib)["graphs"]


def stage_verify(
    run: ExportRun, onnx_parity: dict[str, Parity], converted: dict, say
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
    for name in run.ios:
        graphs[name], manifest_graphs[name] = _verify_graph(
            run, name, onnx_parity[name], converted[name]
        )
    half = [p.name for p in PRECISIONS if p.fp16_weights]
    if not any(precision(p).fp16_weights for p in run.opts.precisions):
        v.not_run("fp16_overflow", f"no {' or '.join(half)} file")
    if not run.full:
        v.not_run("gpu_ops", SEGMENT_ONLY)
        v.finding_not_run("fp16_arithmetic", SEGMENT_ONLY)
    else:
        v.drift(
            "fp16_arithmetic",
            {name: g.fp16_arithmetic.rel for name, g in graphs.items()},
            verify.FP16_ARITH_MAX_REL,
        )
    for prec in PRECISIONS:  # each precision's file finding (its gates ran file by file)
        if verify.check(prec.file_check).kind != verify.FINDING:
            continue
        if prec.name in run.opts.precisions:
            figures = {
                f"{n} {prec.name} file": g.precisions[prec.name].parity.rel
                for n, g in graphs.items()
            }
            v.drift(prec.file_check, figures, prec.file_bound)
        else:
            v.finding_not_run(prec.file_check, f"no {prec.name} file")
    v.raise_failures("verification stage")
    return graphs, manifest_graphs


def _verify_graph(
    run: ExportRun, name: str, onnx_parity: Parity, conv: dict
) -> tuple[GraphReport, dict]:
    """One graph's files on the CPU, its activation peak (gate ``fp16_overflow``) and fp16
    arithmetic -> (its report, its manifest section)."""
    files: dict[str, PrecisionReport] = {}
    for prec, fname in conv["files"].items():
        analyzer = conv.get("gpu", {}).get(prec)
        files[prec] = _verify_file(run, name, precision(prec), fname, analyzer)
    exact = [p for p in files if precision(p).exact]
    peak = None
    if exact:
        peak = files[exact[0]].activation_peak
    elif run.full:  # no exact file: the ONNX graph (ONNX Runtime) is the reference run
        onnx = run.out / f"{name}.onnx"
        peak = ActivationPeak(*measure.onnx_activation_peak(onnx, run.realistic[-1][name]))
    if any(precision(p).fp16_weights for p in files):
        _overflow_gate(run, name, peak)
    fp16 = _fp16_arithmetic(run, name) if run.full else None
    report = GraphReport(onnx_parity, files, run.macs[name], run.params[name], peak, fp16)
    first = next(iter(conv["files"].values()))
    reference = next((f for p, f in conv["files"].items() if precision(p).exact), first)
    inputs, outputs = measure.tflite_io(run.out / reference)
    gio = run.ios[name]
    return report, {
        "onnx": f"{name}.onnx",
        "files": {p: file_entry(run.out, f) for p, f in conv["files"].items()},
        "inputs": [_tensor(n, s, d, gio.inputs) for n, s, d in inputs],
        "outputs": [_tensor(n, s, d, gio.outputs) for n, s, d in outputs],
    }


def _overflow_gate(run: ExportRun, name: str, peak: ActivationPeak | None) -> None:
    """Gate ``fp16_overflow`` on graph ``name``'s activation peak (None: not measured)."""
    if peak is None:
        run.verdicts.not_run("fp16_overflow", SEGMENT_ONLY)
        return
    limit = verify.FP16_MAX * verify.FP16_HEADROOM
    run.verdicts.gate(
        "fp16_overflow",
        [
            f"{name}: activation {peak.tensor} reaches {peak.max_abs:.3g}, too close to "
            f"fp16's limit {verify.FP16_MAX:.0f} (GPU delegates compute in fp16)"
        ]
        if peak.max_abs > limit
        else [],
    )


def _verify_file(
    run: ExportRun, name: str, prec: Precision, fname: str, analyzer: dict | None
) -> PrecisionReport:
    """One .tflite file's figures on the CPU; gates go to ``run.verdicts``.

    ``analyzer``: the converter's analyzer answer (None for a file the GPU does not run, or when
    it did not run).
    """
    v = run.verdicts
    path = run.out / fname
    results = [measure.run_tflite(path, p, run.opts.threads) for p in run.probes(name)]
    bad = [b for b in map(measure.first_nonfinite, results) if b is not None]
    v.gate("finite", [f"{fname}: output {bad[0]} is NaN or infinite"] if bad else [])
    pairs = list(zip(run.refs[name], results, strict=True))
    if prec.calibrated:  # calibrated on realistic inputs; a random one lies outside its ranges
        pairs = pairs[1:]
    parity = max((measure.compare(ref, got) for ref, got in pairs), key=lambda x: x.rel)
    verdict = None if analyzer is None else _gpu_verdict(run, path, fname, analyzer)
    peak = None
    if prec.exact and run.full:
        peak = ActivationPeak(*measure.activation_peak(path, run.realistic[-1][name]))
    if verify.check(prec.file_check).kind == verify.GATE:  # a finding: over every graph
        v.gate(
            prec.file_check,
            [
                f"{fname}: output {parity.worst_output} differs from PyTorch by "
                f"{parity.rel:.2e} x max|output| > TFLITE_FP32_MAX_REL {prec.file_bound:.0e}"
            ]
            if parity.rel > prec.file_bound
            else [],
        )
    return PrecisionReport(
        file=fname,
        bytes=path.stat().st_size,
        parity=parity,
        gpu=GpuCheck(ran=False, reason=SEGMENT_ONLY) if prec.gpu and not run.full else None,
        analyzer=verdict,
        ops=measure.op_counts(path),
        activation_peak=peak,
    )


def _gpu_verdict(run: ExportRun, path, fname: str, analyzer: dict) -> GpuVerdict:
    """TensorFlow's analyzer answer plus the delegate's structural rules (gate ``gpu_ops``)."""
    rules = measure.gpu_rule_problems(path)
    verdict = GpuVerdict(
        analyzer_compatible=analyzer["compatible"],
        problems=tuple(analyzer["problems"] + rules),
        compatible=analyzer["compatible"] and not rules,
    )
    ops = "; ".join(verdict.problems) or "analyzer did not confirm compatibility"
    run.verdicts.gate(
        "gpu_ops",
        []
        if verdict.compatible
        else [f"{fname}: not fully supported by the GPU delegate ({ops}); {ALLOW_HINT}"],
    )
    return verdict


def _fp16_arithmetic(run: ExportRun, name: str) -> Parity:
    """Graph ``name`` in fp16 arithmetic in PyTorch on the realistic probe (the GPU's input)
    against PyTorch; its per-output figures go to ``run.fp16_rel`` for the ``gpu_defect`` gate."""
    from vosx.tracker_runtime.accelerator import max_rel

    reference = run.refs[name][1]
    got = run.fp16_graphs.run(name, run.realistic[0][name])
    run.fp16_rel[name] = max_rel(reference, got)
    return measure.compare(reference, got)


def _tensor(name: str, shape: tuple, dtype: str, declared: dict) -> dict:
    """A manifest tensor entry, checked against the ONNX graph's declared shape."""
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
