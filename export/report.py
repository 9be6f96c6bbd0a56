"""The export report: typed results of every ``vosx export`` stage, and every way they are shown.

``export_all`` returns an ``ExportReport``; ``report.json`` is ``ExportReport.to_json()`` (its
schema is fixed: ``from_json`` reads it back), and ``report.md``, the ``vosx export`` summary and
the demo's export tables are all rendered here, from the typed report.
No arrays here: only figures (floats), names and file paths.
"""

from dataclasses import dataclass, fields
from pathlib import Path

from vosx.export.verify import Parity


@dataclass(frozen=True)
class Tolerances:
    """The named tolerances of ``vosx.export.verify`` in force for this export."""

    onnx_max_abs: float
    tflite_fp32_max_rel: float
    tflite_fp16_max_rel: float
    gpu_fp16_max_rel: float
    e2e_iou_fp32: float
    e2e_iou_fp16: float
    e2e_iou_gpu: float
    e2e_tie_margin: float
    e2e_gpu_tie_margin: float
    e2e_min_decisive: float
    fp16_max: float

    @classmethod
    def current(cls) -> "Tolerances":
        """The values ``vosx.export.verify`` defines now."""
        from vosx.export import verify

        return cls(*(getattr(verify, f.name.upper()) for f in fields(cls)))

    def to_json(self) -> dict:
        return {f.name.upper(): getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ActivationPeak:
    """The largest |value| of any intermediate tensor on a realistic input (fp16 headroom)."""

    tensor: str
    max_abs: float

    def to_json(self) -> dict:
        return {"tensor": self.tensor, "max_abs": self.max_abs}


@dataclass(frozen=True)
class GpuVerdict:
    """TensorFlow's GPU-delegate analyzer plus vosx's structural rules, for one .tflite file."""

    analyzer_compatible: bool
    problems: tuple[str, ...]  # the analyzer's warnings, then the rules' problems
    compatible: bool  # the analyzer says so and no rule found a problem

    def to_json(self) -> dict:
        return {
            "analyzer_compatible": self.analyzer_compatible,
            "problems": list(self.problems),
            "compatible": self.compatible,
        }


@dataclass(frozen=True)
class GpuCheck:
    """One .tflite file compiled GPU-only and run on LiteRT's GPU accelerator (fp16 arithmetic).

    ``ran``: the check ran (a Vulkan device was usable); ``fully_delegated``: the GPU-only compile
    took the graph (False: refused, ``reason`` says why and, where the accelerator says, the ops).
    """

    ran: bool
    fully_delegated: bool | None = None
    max_rel: float | None = None  # GPU outputs vs PyTorch, max |diff| / max |output|
    adapter: str | None = None  # the Vulkan device's name
    reason: str | None = None  # why it did not run, or why the GPU refused the graph

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class PrecisionReport:
    """One .tflite file of one graph: size, parity against PyTorch, GPU verdicts, op counts."""

    file: str  # relative to the export folder
    bytes: int
    parity: Parity
    gpu: GpuCheck | None  # LiteRT's GPU accelerator; None for int8 (no GPU delegate path)
    analyzer: GpuVerdict | None  # JSON "gpu_rules"; None for int8
    ops: dict[str, int]  # builtin op name -> count
    activation_peak: ActivationPeak | None = None  # measured on the fp32 file only

    def to_json(self) -> dict:
        out = {
            "file": self.file,
            "bytes": self.bytes,
            "parity": self.parity.to_dict(),
            "gpu": None if self.gpu is None else self.gpu.to_json(),
            "gpu_rules": None if self.analyzer is None else self.analyzer.to_json(),
            "ops": dict(self.ops),
        }
        if self.activation_peak is not None:
            out["activation_peak"] = self.activation_peak.to_json()
        return out

    @classmethod
    def from_json(cls, d: dict) -> "PrecisionReport":
        gpu, rules, peak = d["gpu"], d["gpu_rules"], d.get("activation_peak")
        return cls(
            file=d["file"],
            bytes=d["bytes"],
            parity=Parity(**d["parity"]),
            gpu=None if gpu is None else GpuCheck(**gpu),
            analyzer=None
            if rules is None
            else GpuVerdict(**{**rules, "problems": tuple(rules["problems"])}),
            ops=dict(d["ops"]),
            activation_peak=None if peak is None else ActivationPeak(**peak),
        )


@dataclass(frozen=True)
class GraphReport:
    """One graph: ONNX parity, its files per precision, cost, and its activation peak."""

    onnx: Parity  # ONNX Runtime against PyTorch
    precisions: dict[str, PrecisionReport]
    macs: int  # one run with one object
    params: int
    activation_peak: ActivationPeak  # fp32 TFLite's, or ONNX Runtime's without an fp32 file

    def to_json(self) -> dict:
        return {
            "onnx": self.onnx.to_dict(),
            "precisions": {p: r.to_json() for p, r in self.precisions.items()},
            "macs": self.macs,
            "params": self.params,
            "activation_peak": self.activation_peak.to_json(),
        }

    @classmethod
    def from_json(cls, d: dict) -> "GraphReport":
        return cls(
            onnx=Parity(**d["onnx"]),
            precisions={p: PrecisionReport.from_json(r) for p, r in d["precisions"].items()},
            macs=d["macs"],
            params=d["params"],
            activation_peak=ActivationPeak(**d["activation_peak"]),
        )


@dataclass(frozen=True)
class EndToEnd:
    """The synthetic clip through the driver: one TFLite precision against PyTorch."""

    min_iou: float
    mean_iou: float
    per_frame: tuple[float, ...]  # mask IoU of frames 1..
    tie_fraction: float  # pixels left out as near ties of the reference
    conclusive: bool  # enough decisive pixels for the IoU to mean something

    def to_json(self) -> dict:
        return {
            "min_iou": self.min_iou,
            "mean_iou": self.mean_iou,
            "per_frame": list(self.per_frame),
            "tie_fraction": self.tie_fraction,
            "conclusive": self.conclusive,
        }

    @classmethod
    def from_json(cls, d: dict) -> "EndToEnd":
        return cls(**{**d, "per_frame": tuple(d["per_frame"])})


@dataclass(frozen=True)
class ExportReport:
    """Everything an export measured; ``to_json()`` is ``report.json``."""

    out_dir: Path  # the export folder (not in report.json)
    checkpoint: str
    size: tuple[int, int]  # padded input height, width
    tolerances: Tolerances
    int8_calibration: str | None  # where the int8 calibration frames came from; None: no int8
    parameters: dict[str, int]  # per top-level part and "total"
    macs_per_frame_one_object: int
    graphs: dict[str, GraphReport]
    end_to_end: dict[str, EndToEnd]
    end_to_end_gpu: dict[str, EndToEnd]  # the same clip on LiteRT's GPU accelerator; {}: not run
    allow_cpu_ops: bool
    export_seconds: float
    tools: dict[str, str | None]  # package -> version

    @property
    def gpu_compatible(self) -> bool:
        """Every fp32/fp16 file passed the analyzer and the structural rules."""
        return all(
            p.analyzer.compatible
            for g in self.graphs.values()
            for p in g.precisions.values()
            if p.analyzer is not None
        )

    def to_json(self) -> dict:
        """The ``report.json`` object (key order included)."""
        return {
            "checkpoint": self.checkpoint,
            "size": list(self.size),
            "tolerances": self.tolerances.to_json(),
            "int8_calibration": self.int8_calibration,
            "parameters": dict(self.parameters),
            "macs_per_frame_one_object": self.macs_per_frame_one_object,
            "graphs": {name: g.to_json() for name, g in self.graphs.items()},
            "end_to_end": {p: e.to_json() for p, e in self.end_to_end.items()},
            "end_to_end_gpu": {p: e.to_json() for p, e in self.end_to_end_gpu.items()},
            "allow_cpu_ops": self.allow_cpu_ops,
            "export_seconds": self.export_seconds,
            "tools": dict(self.tools),
        }

    @classmethod
    def from_json(cls, d: dict, out_dir: Path) -> "ExportReport":
        """Read a ``report.json`` object back (``out_dir``: the folder it lies in)."""
        return cls(
            out_dir=Path(out_dir),
            checkpoint=d["checkpoint"],
            size=tuple(d["size"]),
            tolerances=Tolerances(**{k.lower(): v for k, v in d["tolerances"].items()}),
            int8_calibration=d["int8_calibration"],
            parameters=dict(d["parameters"]),
            macs_per_frame_one_object=d["macs_per_frame_one_object"],
            graphs={name: GraphReport.from_json(g) for name, g in d["graphs"].items()},
            end_to_end={p: EndToEnd.from_json(e) for p, e in d["end_to_end"].items()},
            end_to_end_gpu={p: EndToEnd.from_json(e) for p, e in d["end_to_end_gpu"].items()},
            allow_cpu_ops=d["allow_cpu_ops"],
            export_seconds=d["export_seconds"],
            tools=dict(d["tools"]),
        )


# ------------------------------------------------------------------------------------ rendering


def _verdict(p: PrecisionReport) -> str:
    if p.analyzer is None:
        return "n/a (int8)"
    return "compatible" if p.analyzer.compatible else "NOT: " + "; ".join(p.analyzer.problems)


def _delegated(c: GpuCheck | None) -> str:
    """The main table's short GPU column."""
    if c is None:
        return "n/a (int8)"
    if not c.ran:
        return "not run"
    return "yes" if c.fully_delegated else "NO"


def _gpu_check_text(c: GpuCheck, tolerance: float) -> str:
    if not c.ran:
        return f"not run: {c.reason or 'no reason given'}"
    where = f"on {c.adapter or 'unknown adapter'}"
    if not c.fully_delegated:
        return f"NOT fully delegated {where}: {c.reason or 'refused'}"
    verdict = "within" if c.max_rel is not None and c.max_rel <= tolerance else "OUTSIDE"
    return (
        f"fully delegated, max rel diff vs PyTorch {c.max_rel:.2e} ({verdict} tolerance "
        f"{tolerance:.0e}) {where}"
    )


def _gpu_lines(report: ExportReport) -> list[str]:
    """report.md's GPU section: the real check per file, the analyzer and rules below it."""
    lines = [
        "",
        "## GPU delegate (LiteRT's GPU accelerator: GPU-only compile, fp16 arithmetic)",
        "",
    ]
    tolerance = report.tolerances.gpu_fp16_max_rel
    for name, g in report.graphs.items():
        for prec, p in g.precisions.items():
            if p.gpu is not None:
                lines.append(f"- {name} {prec}: {_gpu_check_text(p.gpu, tolerance)}")
                lines.append(f"  - TF analyzer + structural rules: {_verdict(p)}")
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
        for prec, p in g.precisions.items():
            peak = "" if p.activation_peak is None else f"{p.activation_peak.max_abs:.3g}"
            lines.append(
                f"| {name} | {prec} | {p.bytes / 1024:.0f} | {p.parity.max_abs:.2e} | "
                f"{p.parity.rel:.2e} | {_delegated(p.gpu)} | {sum(p.ops.values())} | {peak} |"
            )
    lines += _gpu_lines(report)
    lines += [
        "",
        "## End to end (10-frame synthetic clip, two objects, TFLite vs PyTorch)",
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
            verdict = _delegated(c)
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
            "End to end: TFLite vs PyTorch, same driver (10-frame synthetic clip)",
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
