"""The export report: typed results of every ``vosx export`` stage.

``export_all`` returns an ``ExportReport``; ``report.json`` is ``ExportReport.to_json()`` (its
schema is fixed: ``from_json`` reads it back). Every way it is shown (``report.md``, the ``vosx
export`` summary, the demo's tables) is in ``vosx.export.render``.
No arrays here: only figures (floats), names and file paths.
"""

from dataclasses import dataclass, field, fields
from pathlib import Path

from vosx.export import verify
from vosx.export.measure import Parity
from vosx.precision import precision


@dataclass(frozen=True)
class Tolerances:
    """The named tolerances in force for this export (gates' bounds and findings' expected
    ranges): ``vosx.export.verify``'s and the precisions' (``vosx.precision``)."""

    onnx_max_abs: float
    tflite_fp32_max_rel: float
    e2e_iou_fp32: float
    fp16_max: float
    fp16_headroom: float
    gpu_defect_factor: float
    fp16_unit: float
    tflite_fp16_max_rel: float
    fp16_arith_max_rel: float
    gpu_fp16_max_rel: float
    int8_max_rel: float
    e2e_iou_fp16: float
    e2e_iou_gpu: float
    e2e_iou_int8: float
    e2e_tie_margin: float
    e2e_gpu_tie_margin: float
    e2e_min_decisive: float
    e2e_min_area: float

    @classmethod
    def current(cls) -> "Tolerances":
        """The tolerances in force: ``vosx.export.verify``'s, and each precision's bounds as its
        ``vosx.precision`` record holds them."""
        fp32, fp16, int8 = precision("fp32"), precision("fp16"), precision("int8")
        return cls(
            onnx_max_abs=verify.ONNX_MAX_ABS,
            tflite_fp32_max_rel=fp32.file_bound,
            e2e_iou_fp32=fp32.e2e_bound,
            fp16_max=verify.FP16_MAX,
            fp16_headroom=verify.FP16_HEADROOM,
            gpu_defect_factor=verify.GPU_DEFECT_FACTOR,
            fp16_unit=verify.FP16_UNIT,
            tflite_fp16_max_rel=fp16.file_bound,
            fp16_arith_max_rel=verify.FP16_ARITH_MAX_REL,
            gpu_fp16_max_rel=verify.GPU_FP16_MAX_REL,
            int8_max_rel=int8.file_bound,
            e2e_iou_fp16=fp16.e2e_bound,
            e2e_iou_gpu=verify.E2E_IOU_GPU,
            e2e_iou_int8=int8.e2e_bound,
            e2e_tie_margin=verify.E2E_TIE_MARGIN,
            e2e_gpu_tie_margin=verify.E2E_GPU_TIE_MARGIN,
            e2e_min_decisive=verify.E2E_MIN_DECISIVE,
            e2e_min_area=verify.E2E_MIN_AREA,
        )

    def to_json(self) -> dict:
        return {f.name.upper(): getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Finding:
    """One finding (a ``verify.CHECKS`` entry of kind finding): the worst figure over what it
    measured, its expected range and a verdict.

    ``verdict``: ``WITHIN``, ``BEYOND`` (``message`` is the warning line), ``INCONCLUSIVE``
    (nothing to judge: a clip of near ties) or ``NOT_RUN``
    (``message`` says why); ``details``: every subject's figure (graph and file, or frame).
    """

    check: str
    verdict: str
    figure: float | None  # the worst value; None when inconclusive without one
    expected: str  # "<= 3e-02", ">= 0.97"
    subject: str  # where the worst figure is
    message: str  # one line: what the figure says, and what it means on a phone
    details: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, d: dict) -> "Finding":
        return cls(**{**d, "details": dict(d["details"])})


WITHIN, BEYOND, INCONCLUSIVE, NOT_RUN = "within", "beyond", "inconclusive", "not run"


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
    fp16_arithmetic_rel: float | None = None  # PyTorch in fp16 arithmetic, the same input
    fp16_ratio: float | None = None  # worst output's GPU drift / fp16 arithmetic's (gpu_defect)
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
    """One graph: ONNX parity, its files per precision, cost, its activation peak and what fp16
    arithmetic does to it."""

    onnx: Parity  # ONNX Runtime against PyTorch
    precisions: dict[str, PrecisionReport]
    macs: int  # one run with one object
    params: int
    activation_peak: ActivationPeak | None  # fp32 TFLite's, else ONNX Runtime's; None: not run
    fp16_arithmetic: Parity | None = None  # PyTorch in fp16 arithmetic vs PyTorch; None: not run

    def to_json(self) -> dict:
        peak, fp16 = self.activation_peak, self.fp16_arithmetic
        return {
            "onnx": self.onnx.to_dict(),
            "precisions": {p: r.to_json() for p, r in self.precisions.items()},
            "macs": self.macs,
            "params": self.params,
            "activation_peak": None if peak is None else peak.to_json(),
            "fp16_arithmetic": None if fp16 is None else fp16.to_dict(),
        }

    @classmethod
    def from_json(cls, d: dict) -> "GraphReport":
        peak, fp16 = d["activation_peak"], d["fp16_arithmetic"]
        return cls(
            onnx=Parity(**d["onnx"]),
            precisions={p: PrecisionReport.from_json(r) for p, r in d["precisions"].items()},
            macs=d["macs"],
            params=d["params"],
            activation_peak=None if peak is None else ActivationPeak(**peak),
            fp16_arithmetic=None if fp16 is None else Parity(**fp16),
        )


@dataclass(frozen=True)
class EndToEnd:
    """The end-to-end clip through the driver: one TFLite precision against PyTorch."""

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
    end_to_end_gpu: dict[str, EndToEnd]  # the clip on LiteRT's GPU accelerator (one precision's
    # files: the GPU computes both in fp16), its first E2E_GPU_FRAMES frames; {}: not run
    allow_cpu_ops: bool
    export_seconds: float
    tools: dict[str, str | None]  # package -> version
    scope: str = "full"  # "full", or "segment": what `vosx segment` needs (fp32, CPU gates)
    strict: bool = False  # findings beyond their range fail the export (--strict)
    gates: dict[str, str] = field(default_factory=dict)  # check -> "passed" / "not run: why"
    findings: tuple[Finding, ...] = ()

    @property
    def warnings(self) -> list[str]:
        """The warning line of every finding beyond its expected range."""
        return [f.message for f in self.findings if f.verdict == BEYOND]

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
            "scope": self.scope,
            "strict": self.strict,
            "gates": dict(self.gates),
            "findings": [f.to_json() for f in self.findings],
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
            scope=d["scope"],
            strict=d["strict"],
            gates=dict(d["gates"]),
            findings=tuple(Finding.from_json(f) for f in d["findings"]),
        )
