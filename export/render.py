"""Every way an export report is shown: ``report.md``, the ``vosx export`` summary on stdout and
the demo's export tables and ``summary.json`` section, all from the typed ``ExportReport``."""

from vosx.export.prepare import E2E_FRAMES
from vosx.export.report import (
    BEYOND,
    INCONCLUSIVE,
    NOT_RUN,
    WITHIN,
    EndToEnd,
    ExportReport,
    Finding,
    GpuCheck,
    PrecisionReport,
    Tolerances,
)
from vosx.precision import precision

CLIP_NAME = f"the bundled real clip's first {E2E_FRAMES} frames, one object"  # ``bundled_clip``


def _verdict(prec: str, p: PrecisionReport) -> str:
    """The analyzer's and the structural rules' verdict on a file of precision ``prec``."""
    if p.analyzer is None:
        return "not run" if precision(prec).gpu else f"n/a ({prec})"
    return "compatible" if p.analyzer.compatible else "NOT: " + "; ".join(p.analyzer.problems)


def _delegated(prec: str, c: GpuCheck | None) -> str:
    """The main table's short GPU column of a file of precision ``prec``."""
    if c is None:
        return f"n/a ({prec})"
    if not c.ran:
        return "not run"
    return "yes" if c.fully_delegated else "NO"


def _gpu_check_text(c: GpuCheck, t: Tolerances) -> str:
    if not c.ran:
        return f"not run: {c.reason or 'no reason given'}"
    where = f"on {c.adapter or 'unknown adapter'}"
    if not c.fully_delegated:
        return f"NOT fully delegated {where}: {c.reason or 'refused'}"
    if c.max_rel is None:
        return f"fully delegated {where}" + (f" ({c.reason})" if c.reason else "")
    verdict = "within" if c.max_rel <= t.gpu_fp16_max_rel else "BEYOND"
    text = (
        f"fully delegated {where}, max rel diff vs PyTorch {c.max_rel:.2e} ({verdict} expected "
        f"{t.gpu_fp16_max_rel:.0e})"
    )
    if c.fp16_arithmetic_rel is not None and c.fp16_ratio is not None:
        text += (
            f"; fp16 arithmetic in PyTorch {c.fp16_arithmetic_rel:.2e}, GPU {c.fp16_ratio:.1f}x "
            f"that (defect bound {t.gpu_defect_factor:g}x)"
        )
    return text


def _gpu_lines(report: ExportReport) -> list[str]:
    """report.md's GPU section: the real check per file, the analyzer and rules below it."""
    lines = [
        "",
        "## GPU delegate (LiteRT's GPU accelerator: GPU-only compile, fp16 arithmetic)",
        "",
    ]
    for name, g in report.graphs.items():
        for prec, p in g.precisions.items():
            if p.gpu is not None:
                lines.append(f"- {name} {prec}: {_gpu_check_text(p.gpu, report.tolerances)}")
                lines.append(f"  - TF analyzer + structural rules: {_verdict(prec, p)}")
    return lines


def _figure(f: Finding) -> str:
    if f.figure is None:
        return "-"
    return f"{f.figure:.4f}" if f.expected.startswith(">=") else f"{f.figure:.2e}"


def _verification_lines(report: ExportReport) -> list[str]:
    """report.md's gates and findings (``verify.CHECKS``)."""
    scope = "full" if report.scope == "full" else f"{report.scope} (what `vosx segment` runs)"
    lines = [
        "",
        "## Verification",
        "",
        f"Scope: {scope}; strict: {'yes' if report.strict else 'no'}. Gates fail the export; "
        "findings are reported with a verdict.",
        "",
        "| gate | result |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {result} |" for name, result in report.gates.items()]
    lines += [
        "",
        "| finding | verdict | worst figure | expected | where |",
        "|---|---|---:|---|---|",
    ]
    for f in report.findings:
        verdict = "**BEYOND**" if f.verdict == BEYOND else f.verdict
        where = f.message if f.verdict == NOT_RUN else f.subject  # not run: why
        lines.append(f"| `{f.check}` | {verdict} | {_figure(f)} | {f.expected} | {where} |")
    warnings = report.warnings
    if warnings:
        lines += ["", "Warnings:", ""] + [f"- {w}" for w in warnings]
    return lines


def _e2e_runs(report: ExportReport) -> list[tuple[str, EndToEnd]]:
    """(label, result) of every end-to-end run: each precision on the CPU, then on the GPU."""
    gpu = [(f"{p} on GPU", e) for p, e in report.end_to_end_gpu.items()]
    return list(report.end_to_end.items()) + gpu


def _e2e_rows(report: ExportReport) -> list[str]:
    rows = []
    for label, e in _e2e_runs(report):
        note = "" if e.conclusive else " (inconclusive: untrained model, mostly ties)"
        rows.append(
            f"| {label} | {e.min_iou:.4f} | {e.mean_iou:.4f} | {e.tie_fraction:.1%}{note} |"
        )
    return rows


def render_md(report: ExportReport) -> str:
    """``report.md``: a readable summary of ``report.json``."""
    lines = [
        "# vosx export report",
        "",
        f"- checkpoint: `{report.checkpoint}`",
        f"- input: {report.size[0]}x{report.size[1]} (padded), "
        f"MACs per frame with one object: {report.macs_per_frame_one_object / 1e9:.2f} G",
        f"- parameters: {report.parameters['total']:,}",
        f"- int8 calibration: {report.int8_calibration or 'not exported'}",
        f"- export time: {report.export_seconds} s",
        "",
        "| graph | precision | size KB | max abs diff | rel diff | GPU delegated | ops "
        "| peak activation |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for name, g in report.graphs.items():
        lines.append(f"| {name} | onnx | | {g.onnx.max_abs:.2e} | {g.onnx.rel:.2e} | | | |")
        if g.fp16_arithmetic is not None:
            f = g.fp16_arithmetic
            lines.append(
                f"| {name} | fp16 arithmetic (PyTorch) | | {f.max_abs:.2e} | {f.rel:.2e} | | | |"
            )
        for prec, p in g.precisions.items():
            peak = "" if p.activation_peak is None else f"{p.activation_peak.max_abs:.3g}"
            lines.append(
                f"| {name} | {prec} | {p.bytes / 1024:.0f} | {p.parity.max_abs:.2e} | "
                f"{p.parity.rel:.2e} | {_delegated(prec, p.gpu)} | {sum(p.ops.values())} | {peak} |"
            )
    lines += _verification_lines(report)
    lines += _gpu_lines(report)
    lines += [
        "",
        f"## End to end ({CLIP_NAME}, TFLite vs PyTorch; frames 1.. compared)",
        "",
        "| precision | min IoU | mean IoU | near-tie pixels left out |",
        "|---|---:|---:|---:|",
    ]
    lines += _e2e_rows(report)
    tolerances = report.tolerances.to_json()
    lines += ["", "Tolerances: " + ", ".join(f"{k}={v}" for k, v in tolerances.items()), ""]
    return "\n".join(lines)


def print_summary(report: ExportReport) -> None:
    """The ``vosx export`` summary on stdout: a table per file, end-to-end IoUs, the folder."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"vosx export -> {report.out_dir}")
    for col in ("graph", "precision", "KB", "rel. diff vs PyTorch", "GPU delegated", "MMAC"):
        table.add_column(col, justify="right" if col in ("KB", "MMAC") else "left")
    for name, g in report.graphs.items():
        for prec, p in g.precisions.items():
            c = p.gpu
            verdict = _delegated(prec, c)
            if c is not None and c.ran and c.max_rel is not None:
                verdict += f", rel {c.max_rel:.1e}"
            kb, rel, mmac = f"{p.bytes / 1024:.0f}", f"{p.parity.rel:.1e}", f"{g.macs / 1e6:.0f}"
            table.add_row(name, prec, kb, rel, verdict, mmac)
    Console().print(table)
    checks = [p.gpu for g in report.graphs.values() for p in g.precisions.values()]
    skipped = [c for c in checks if c is not None and not c.ran]
    if skipped:
        print(f"GPU check not run: {skipped[0].reason}")
    for label, e in _e2e_runs(report):
        note = "" if e.conclusive else " (inconclusive: untrained model)"
        print(f"end-to-end {label}: min IoU {e.min_iou:.4f} vs PyTorch{note}")
    results = [
        r.split(" ", 1)[0] if not r.startswith(NOT_RUN) else NOT_RUN for r in report.gates.values()
    ]
    gates = ", ".join(
        f"{results.count(v)} {v}" for v in ("passed", "accepted", NOT_RUN) if v in results
    )
    verdicts = [f.verdict for f in report.findings]
    kinds = (WITHIN, BEYOND, INCONCLUSIVE, NOT_RUN)
    findings = ", ".join(f"{verdicts.count(v)} {v}" for v in kinds if v in verdicts)
    print(f"gates: {gates}; findings: {findings} (report.md)")
    print(f"wrote {report.out_dir} in {report.export_seconds} s (manifest.json, report.md)")


Table = tuple[str, list[str], list[list[str]]]
"""(title, header, rows) of one table, for the demo's Markdown and HTML."""


def demo_tables(report: ExportReport) -> list[Table]:
    """The demo report's export tables: parity per file, and end to end per precision."""
    parity = [
        [name, prec, f"{p.parity.max_abs:.2e}", f"{p.parity.rel:.2e}"]
        for name, g in report.graphs.items()
        for prec, p in g.precisions.items()
    ]
    e2e = [
        [
            prec,
            f"{e.min_iou:.4f}",
            f"{e.mean_iou:.4f}",
            f"{e.tie_fraction:.1%}",
            "yes" if e.conclusive else "no (untrained model)",
        ]
        for prec, e in report.end_to_end.items()
    ]
    return [
        (
            "Parity of each TFLite graph against PyTorch",
            ["graph", "precision", "max abs", "rel"],
            parity,
        ),
        (
            f"End to end: TFLite vs PyTorch, same driver ({CLIP_NAME})",
            ["precision", "min IoU", "mean IoU", "near ties left out", "conclusive"],
            e2e,
        ),
    ]


def demo_summary(report: ExportReport) -> dict:
    """The ``export`` section of the demo's ``summary.json``."""
    return {
        "seconds": report.export_seconds,
        "parity": {
            name: {prec: p.parity.to_dict() for prec, p in g.precisions.items()}
            for name, g in report.graphs.items()
        },
        "gpu_compatible": report.gpu_compatible,
        "end_to_end": {
            prec: {k: v for k, v in e.to_json().items() if k != "per_frame"}
            for prec, e in report.end_to_end.items()
        },
    }
