"""`vosx export` end to end on a tiny config: real ONNX, real onnx2tf, real LiteRT, named
tolerances.
"""

import json
import math
import shutil
import socket
from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import TINY_SIZE, run_cli
from vosx.errors import CheckpointError, ConfigError, ManifestError, ParityError
from vosx.export import clip as clips
from vosx.export import measure, verify
from vosx.export.options import parse_size
from vosx.export.pipeline import ExportOptions, export_all
from vosx.export.prepare import BUNDLED_SOURCE, E2E_FRAMES, bundled_clip
from vosx.export.render import render_md
from vosx.export.report import ExportReport, GpuCheck
from vosx.export.stage_gpu import E2E_GPU_FRAMES
from vosx.manifest import GRAPH_NAMES, load_manifest
from vosx.model import load_checkpoint
from vosx.model.graphs import DecoderGraph, TorchGraphs
from vosx.tracker_runtime import accelerator
from vosx.tracker_runtime.accelerator import GpuProbe
from vosx.tracker_runtime.litert import TFLiteGraphs


@pytest.mark.slow
def test_folder_has_every_artifact(tiny_export_dir):
    import onnx

    for g in GRAPH_NAMES:
        onnx.checker.check_model(onnx.load(str(tiny_export_dir / f"{g}.onnx")), full_check=True)
        for suffix in ("float32", "float16"):
            assert (tiny_export_dir / f"{g}_{suffix}.tflite").stat().st_size > 1000
    for f in ("manifest.json", "report.json", "report.md"):
        assert (tiny_export_dir / f).is_file()
    assert not list(tiny_export_dir.parent.glob(".tiny_export.tmp-*")), "temp folder left behind"


@pytest.mark.slow
def test_manifest_schema(tiny_export_dir):
    m = load_manifest(tiny_export_dir)
    d = json.loads((tiny_export_dir / "manifest.json").read_text())  # what apps read
    assert d["format"] == "vosx-trickvos-tflite" and d["format_version"] == 1
    assert d["model_config"]["key_dim"] == 8
    assert m.input_size == TINY_SIZE
    assert d["input"]["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert d["input"]["padding"]["multiple"] == 16
    assert d["memory"]["slots"] == ["first", "last"] and d["memory"]["tokens"] == 4 * 6
    assert m.precisions == ["fp32", "fp16"]
    for g in m.graphs.values():
        for entry in g.files.values():
            assert len(entry.sha256) == 64 and entry.bytes > 0
        onnx_io = _onnx_shapes(tiny_export_dir / g.onnx)
        for t in (*g.inputs, *g.outputs):
            assert len(t.shape) <= 4 and t.dtype == "float32"
            assert list(t.shape) == onnx_io[t.name], (g.name, t.name)  # the NHWC wrappers' shapes
    names = {f"{g}:{t.name}" for g, spec in m.graphs.items() for t in (*spec.inputs, *spec.outputs)}
    for b in d["bindings"]:
        assert b["from"] in names and b["to"] in names, b
    decoder_inputs = {t.name for t in m.graphs["decoder"].inputs}
    bound = {b["to"].split(":")[1] for b in d["bindings"] if b["to"].startswith("decoder:")}
    assert bound == decoder_inputs  # every decoder input is fed by something
    assert d["tools"]["onnx2tf"] and d["tools"]["tensorflow"]


def _onnx_shapes(path) -> dict[str, list[int]]:
    """Input and output name -> shape, as the ONNX file declares them."""
    import onnx

    graph = onnx.load(str(path)).graph
    return {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*graph.input, *graph.output)
    }


def _key_paths(d: dict, prefix: str = "") -> set[str]:
    """Every key path of a report.json object ("graphs.decoder.onnx.rel"); op names, tool
    versions and model parts are values, not schema."""
    paths = set()
    for k, v in d.items():
        path = f"{prefix}{k}"
        paths.add(path)
        if isinstance(v, dict) and k not in ("ops", "tools", "parameters"):
            paths |= _key_paths(v, path + ".")
    return paths


_PARITY = ("max_abs", "rel", "scaled", "worst_output")
_GPU_RULES = ("analyzer_compatible", "problems", "compatible")
_GPU = (
    "ran",
    "fully_delegated",
    "max_rel",
    "fp16_arithmetic_rel",
    "fp16_ratio",
    "adapter",
    "reason",
)
_E2E = ("min_iou", "mean_iou", "per_frame", "tie_fraction", "conclusive")
_TOLERANCES = (
    "ONNX_MAX_ABS",
    "TFLITE_FP32_MAX_REL",
    "E2E_IOU_FP32",
    "FP16_MAX",
    "FP16_HEADROOM",
    "GPU_DEFECT_FACTOR",
    "FP16_UNIT",
    "TFLITE_FP16_MAX_REL",
    "FP16_ARITH_MAX_REL",
    "GPU_FP16_MAX_REL",
    "INT8_MAX_REL",
    "E2E_IOU_FP16",
    "E2E_IOU_GPU",
    "E2E_IOU_INT8",
    "E2E_TIE_MARGIN",
    "E2E_GPU_TIE_MARGIN",
    "E2E_MIN_DECISIVE",
    "E2E_MIN_AREA",
)
_TOP = (
    "checkpoint",
    "size",
    "tolerances",
    "int8_calibration",
    "parameters",
    "macs_per_frame_one_object",
    "graphs",
    "end_to_end",
    "end_to_end_gpu",
    "allow_cpu_ops",
    "export_seconds",
    "tools",
    "scope",
    "strict",
    "gates",
    "findings",
)
_FINDING = ("check", "verdict", "figure", "expected", "subject", "message", "details")


def _expected_paths(
    precisions: tuple[str, ...], on_gpu: tuple[str, ...], scope: str = "full"
) -> set[str]:
    """report.json's key paths (``on_gpu``: the precision whose clip ran on the GPU; scope
    "segment" leaves out the activation peaks and fp16 arithmetic)."""
    paths = {*_TOP, *(f"tolerances.{k}" for k in _TOLERANCES)}
    paths |= {f"gates.{c.name}" for c in verify.CHECKS if c.kind == verify.GATE}
    for g in GRAPH_NAMES:
        pre = f"graphs.{g}"
        keys = ("onnx", "precisions", "macs", "params", "activation_peak", "fp16_arithmetic")
        paths |= {pre} | {f"{pre}.{k}" for k in keys}
        paths |= {f"{pre}.onnx.{k}" for k in _PARITY}
        if scope == "full":
            paths |= {f"{pre}.activation_peak.{k}" for k in ("tensor", "max_abs")}
            paths |= {f"{pre}.fp16_arithmetic.{k}" for k in _PARITY}
        for p in precisions:
            pp = f"{pre}.precisions.{p}"
            keys = ("file", "bytes", "parity", "gpu", "gpu_rules", "ops")
            paths |= {pp} | {f"{pp}.{k}" for k in keys}
            paths |= {f"{pp}.parity.{k}" for k in _PARITY}
            if p != "int8":
                paths |= {f"{pp}.gpu.{k}" for k in _GPU}
                if scope == "full":
                    paths |= {f"{pp}.gpu_rules.{k}" for k in _GPU_RULES}
            if p == "fp32" and scope == "full":
                paths |= {f"{pp}.activation_peak{k}" for k in ("", ".tensor", ".max_abs")}
    if scope == "full":
        for p in precisions:
            paths |= {f"end_to_end.{p}"} | {f"end_to_end.{p}.{k}" for k in _E2E}
    for p in on_gpu:
        paths |= {f"end_to_end_gpu.{p}"} | {f"end_to_end_gpu.{p}.{k}" for k in _E2E}
    return paths


def _check_report_against_files(
    folder, precisions: tuple[str, ...], on_gpu: tuple[str, ...] = (), scope: str = "full"
) -> ExportReport:
    """report.json: its schema, a lossless round trip through ExportReport, report.md rendered
    from it, and figures that agree with the files on disk."""
    raw = json.loads((folder / "report.json").read_text())
    assert list(raw) == list(_TOP)
    assert _key_paths(raw) == _expected_paths(precisions, on_gpu, scope)
    assert raw["scope"] == scope
    for f in raw["findings"]:
        assert tuple(f) == _FINDING and f["check"] in verify.CHECK_NAMES, f
        assert verify.check(f["check"]).kind == verify.FINDING
        assert f["verdict"] in ("within", "beyond", "inconclusive", "not run"), f
        assert "\n" not in f["message"] and f["message"], f
    assert [f["check"] for f in raw["findings"]] == [
        c.name for c in verify.CHECKS if c.kind == verify.FINDING
    ]  # every finding, measured or saying why not, in the table's order
    assert all(
        r == "passed" or r.startswith(("not run", "accepted")) for r in raw["gates"].values()
    )
    report = ExportReport.from_json(raw, folder)
    assert json.dumps(report.to_json()) == json.dumps(raw)  # key order included
    assert (folder / "report.md").read_text() == render_md(report)
    manifest = load_manifest(folder)
    assert sum(g.macs for g in report.graphs.values()) == report.macs_per_frame_one_object
    assert sum(g.params for g in report.graphs.values()) == report.parameters["total"]
    for name, g in report.graphs.items():
        assert list(g.precisions) == list(precisions)
        if scope == "full":
            assert math.isfinite(g.activation_peak.max_abs) and g.activation_peak.max_abs > 0
        for prec, p in g.precisions.items():
            path = folder / p.file
            assert manifest.graphs[name].files[prec].path == p.file
            assert p.bytes == path.stat().st_size
            assert p.ops == measure.op_counts(path)
            figures = (p.parity.max_abs, p.parity.rel, p.parity.scaled)
            assert all(math.isfinite(v) and v >= 0 for v in figures), (name, prec)
            # scaled = diff / max(1, scale) is at most both diff and diff / scale
            assert p.parity.scaled <= min(p.parity.max_abs, p.parity.rel) * (1 + 1e-12)
            if p.analyzer is not None:
                rules = measure.gpu_rule_problems(path)
                assert set(rules) <= set(p.analyzer.problems)
                assert p.analyzer.compatible == (p.analyzer.analyzer_compatible and not rules)
    runs = [(e, E2E_FRAMES) for e in report.end_to_end.values()]
    runs += [(e, E2E_GPU_FRAMES) for e in report.end_to_end_gpu.values()]
    for e, frames in runs:
        assert e.min_iou == min(e.per_frame) and e.mean_iou == pytest.approx(np.mean(e.per_frame))
        assert len(e.per_frame) == frames - 1 and 0.0 <= e.tie_fraction <= 1.0
    return report


@pytest.mark.slow
def test_report_json_schema_and_figures(tiny_export_dir, tiny_ckpt):
    report = _check_report_against_files(tiny_export_dir, ("fp32", "fp16"), ("fp16",))
    for g in report.graphs.values():
        assert g.activation_peak == g.precisions["fp32"].activation_peak
        assert 0 < g.fp16_arithmetic.rel < verify.FP16_ARITH_MAX_REL  # fp16 drift, small here
    findings = {f.check: f for f in report.findings}
    fp16 = findings["fp16_arithmetic"]
    assert fp16.figure == max(g.fp16_arithmetic.rel for g in report.graphs.values())
    assert fp16.details == {n: g.fp16_arithmetic.rel for n, g in report.graphs.items()}
    assert (
        findings["int8_file"].verdict == "not run"
        and "no int8 file" in findings["int8_file"].message
    )
    assert all(r == "passed" for n, r in report.gates.items() if n != "gpu_defect"), report.gates
    # end to end recomputed independently: the same clip through the driver, PyTorch vs TFLite
    graphs = TorchGraphs(load_checkpoint(tiny_ckpt))
    size = report.size
    frames, masks = bundled_clip(size, E2E_FRAMES)
    ref = clips.run_clip(graphs, size, frames, masks[0])
    for prec, e in report.end_to_end.items():
        tfl = TFLiteGraphs.open(tiny_export_dir, prec)
        ious, ties = clips.end_to_end(ref, tfl, size, frames, masks[0])
        assert list(e.per_frame) == pytest.approx(ious, abs=1e-12), prec
        assert e.tie_fraction == pytest.approx(ties, abs=1e-12)
    assert report.end_to_end["fp32"].conclusive, "the test model should make decisive predictions"
    # ONNX Runtime on a fresh input (not one of the export's probes) stays within the tolerance
    rng = np.random.default_rng(11)
    for name, spec in load_manifest(tiny_export_dir).graphs.items():
        inputs = {t.name: rng.standard_normal(t.shape).astype(np.float32) for t in spec.inputs}
        onnx_out = measure.run_onnx(tiny_export_dir / spec.onnx, inputs)
        assert measure.compare(graphs.run(name, inputs), onnx_out).scaled <= verify.ONNX_MAX_ABS


@pytest.mark.slow
def test_gpu_check_ran_on_every_float_graph(tiny_export_dir):
    """On this machine (lavapipe) every fp32/fp16 graph compiles GPU-only, drifts from PyTorch as
    fp16 arithmetic explains (``gpu_defect``), and one clip runs through the fp16 files."""
    probe = accelerator.probe_gpu()
    assert probe.available, f"LiteRT's GPU accelerator cannot run here: {probe.reason}"
    raw = json.loads((tiny_export_dir / "report.json").read_text())
    assert raw["gates"]["gpu_ops"] == raw["gates"]["gpu_defect"] == "passed", raw["gates"]
    for name in GRAPH_NAMES:
        fp16_rel = raw["graphs"][name]["fp16_arithmetic"]["rel"]
        gpu = raw["graphs"][name]["precisions"]["fp16"]["gpu"]  # run: the GPU computes in fp16
        assert gpu["ran"] is True and gpu["fully_delegated"] is True, (name, gpu)
        assert math.isfinite(gpu["max_rel"]) and 0 < gpu["max_rel"] < 1, gpu
        assert gpu["fp16_arithmetic_rel"] == fp16_rel  # the same input, the same model
        assert 0 < gpu["fp16_ratio"] <= verify.GPU_DEFECT_FACTOR, gpu
        assert gpu["adapter"] == probe.adapter and gpu["reason"] is None
        fp32 = raw["graphs"][name]["precisions"]["fp32"]["gpu"]  # compiled GPU-only, not run
        assert fp32 == {
            **dict.fromkeys(fp32),
            "ran": True,
            "fully_delegated": True,
            "adapter": probe.adapter,
            "reason": "compiled GPU-only; run as the fp16 file: the GPU computes both in fp16",
        }
    finding = next(f for f in raw["findings"] if f["check"] == "gpu_arithmetic")
    assert finding["verdict"] in ("within", "beyond") and finding["figure"] == max(
        raw["graphs"][g]["precisions"]["fp16"]["gpu"]["max_rel"] for g in GRAPH_NAMES
    )
    assert list(raw["end_to_end_gpu"]) == ["fp16"]  # one clip: the GPU computes both in fp16
    clip = raw["end_to_end_gpu"]["fp16"]
    assert len(clip["per_frame"]) == E2E_GPU_FRAMES - 1
    assert clip["tie_fraction"] <= 1 - verify.E2E_MIN_DECISIVE, clip  # conclusive
    assert clip["min_iou"] >= verify.E2E_IOU_FP16, clip
    md = (tiny_export_dir / "report.md").read_text()
    assert f"- decoder fp16: fully delegated on {probe.adapter}, max rel diff vs PyTorch" in md
    assert "x that (defect bound 50x)" in md
    assert "  - TF analyzer + structural rules: compatible" in md
    assert "| fp16 on GPU |" in md


@pytest.mark.slow
def test_report_md_shows_a_gpu_check(tiny_export_dir):
    report = ExportReport.from_json(
        json.loads((tiny_export_dir / "report.json").read_text()), tiny_export_dir
    )
    decoder = report.graphs["decoder"]

    def with_check(check: GpuCheck) -> ExportReport:
        fp16 = replace(decoder.precisions["fp16"], gpu=check)
        precisions = {**decoder.precisions, "fp16": fp16}
        return replace(
            report, graphs={**report.graphs, "decoder": replace(decoder, precisions=precisions)}
        )

    check = GpuCheck(
        ran=True,
        fully_delegated=True,
        max_rel=3.2e-3,
        fp16_arithmetic_rel=4e-4,
        fp16_ratio=6.4,
        adapter="llvmpipe",
    )
    ran = with_check(check)
    entry = ran.to_json()["graphs"]["decoder"]["precisions"]["fp16"]["gpu"]
    assert entry == {
        "ran": True,
        "fully_delegated": True,
        "max_rel": 3.2e-3,
        "fp16_arithmetic_rel": 4e-4,
        "fp16_ratio": 6.4,
        "adapter": "llvmpipe",
        "reason": None,
    }
    assert ExportReport.from_json(ran.to_json(), tiny_export_dir) == ran
    line = (
        "- decoder fp16: fully delegated on llvmpipe, max rel diff vs PyTorch 3.20e-03 (within "
        "expected 3e-02); fp16 arithmetic in PyTorch 4.00e-04, GPU 6.4x that (defect bound 50x)"
    )
    assert line in render_md(ran)
    missed = with_check(replace(check, max_rel=0.2))
    assert "2.00e-01 (BEYOND expected 3e-02)" in render_md(missed)
    refused = with_check(
        GpuCheck(ran=True, fully_delegated=False, adapter="llvmpipe", reason="TRANSPOSE: rank 5")
    )
    assert "- decoder fp16: NOT fully delegated on llvmpipe: TRANSPOSE: rank 5" in render_md(
        refused
    )
    assert "| decoder | fp16 | " in render_md(refused) and "| NO |" in render_md(refused)
    skipped = with_check(GpuCheck(ran=False, reason="no Vulkan device"))
    assert "- decoder fp16: not run: no Vulkan device" in render_md(skipped)


@pytest.mark.slow
def test_int8_alone_uses_the_onnx_graph_as_reference(tiny_ckpt, tmp_path):
    import onnx

    out = tmp_path / "int8"
    report = export_all(
        ExportOptions(checkpoint=tiny_ckpt, out_dir=out, size=TINY_SIZE, precisions=("int8",))
    )
    assert report.out_dir == out.absolute()
    assert load_manifest(out).precisions == ["int8"]
    expected = sorted(f"{g}_int8.tflite" for g in GRAPH_NAMES)
    assert sorted(p.name for p in out.glob("*.tflite")) == expected
    _check_report_against_files(out, ("int8",))
    assert report.int8_calibration == BUNDLED_SOURCE
    for name, g in report.graphs.items():
        # without an fp32 file the activation peak is ONNX Runtime's, on one of the graph's nodes
        nodes = onnx.load(str(out / f"{name}.onnx")).graph.node
        assert g.activation_peak.tensor in {o for n in nodes for o in n.output}, name
        assert g.activation_peak.max_abs < verify.FP16_MAX
        int8 = g.precisions["int8"]
        assert int8.analyzer is None and int8.activation_peak is None
    assert 0.0 <= report.end_to_end["int8"].min_iou <= 1.0
    tfl = TFLiteGraphs.open(out, "int8")
    spec = tfl.manifest.graphs["key_encoder"]
    inputs = {t.name: np.zeros(t.shape, np.float32) for t in spec.inputs}
    assert set(tfl.run("key_encoder", inputs)) == {t.name for t in spec.outputs}


@pytest.mark.slow
def test_tflite_graphs_match_pytorch_by_manifest_names(tiny_export_dir, tiny_ckpt):
    ref = TorchGraphs(load_checkpoint(tiny_ckpt))
    tfl = TFLiteGraphs.open(tiny_export_dir, "fp32")
    rng = np.random.default_rng(5)
    for name, spec in tfl.manifest.graphs.items():
        inputs = {t.name: rng.standard_normal(t.shape).astype(np.float32) for t in spec.inputs}
        p = measure.compare(ref.run(name, inputs), tfl.run(name, inputs))
        assert p.rel <= verify.TFLITE_FP32_MAX_REL, (name, p)


@pytest.mark.slow
def test_sha256_mismatch_is_refused(tiny_export_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_export_dir, copy)
    with open(copy / "decoder_float32.tflite", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ManifestError, match="decoder_float32.tflite: sha256 does not match"):
        load_manifest(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(ManifestError, match="no manifest.json"):
        load_manifest(copy)


@pytest.mark.parametrize("text, nearest", [("480x850", "848 or 864"), ("100x64", "96 or 112")])
def test_bad_size_names_nearest_valid(text, nearest):
    with pytest.raises(ConfigError, match=nearest):
        parse_size(text)


def test_existing_folder_needs_force(tiny_ckpt, tmp_path):
    out = tmp_path / "exists"
    out.mkdir()
    with pytest.raises(ConfigError, match="--force"):
        export_all(ExportOptions(checkpoint=tiny_ckpt, out_dir=out, size=TINY_SIZE))


def test_corrupt_checkpoint_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError):
        export_all(ExportOptions(checkpoint=bad, out_dir=tmp_path / "out", size=TINY_SIZE))
    assert [p.name for p in tmp_path.iterdir()] == ["bad.pth"]


def _rank5_forward(self, qk, mk_first, mk_last, mv_first, mv_last, f16c, f8, f4):
    out = DecoderGraph._original_forward(
        self, qk, mk_first, mk_last, mv_first, mv_last, f16c, f8, f4
    )
    _, h, w, _ = out.shape
    five = out.reshape(1, 2, h // 2, w, 1) * 1.5  # a rank-5 tensor: the GPU delegate is BHWC
    return (five.mean(dim=4, keepdim=True) / 1.5).reshape(1, h, w, 1)


@pytest.mark.slow
def test_gpu_incompatible_graph_fails_unless_allowed(tiny_ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(DecoderGraph, "_original_forward", DecoderGraph.forward, raising=False)
    monkeypatch.setattr(DecoderGraph, "forward", _rank5_forward)
    opts = dict(checkpoint=tiny_ckpt, size=TINY_SIZE, precisions=("fp32",))
    with pytest.raises(
        ParityError, match=r"decoder_float32.tflite: not fully supported by the GPU.*rank 5"
    ):
        export_all(ExportOptions(out_dir=tmp_path / "strict", **opts))
    assert not (tmp_path / "strict").exists()
    report = export_all(ExportOptions(out_dir=tmp_path / "lenient", allow_cpu_ops=True, **opts))
    rules = report.graphs["decoder"].precisions["fp32"].analyzer
    assert not rules.compatible and any("rank 5" in p for p in rules.problems)
    assert report.graphs["key_encoder"].precisions["fp32"].analyzer.compatible
    assert not report.gpu_compatible
    saved = json.loads((tmp_path / "lenient" / "report.json").read_text())
    decoder = saved["graphs"]["decoder"]["precisions"]["fp32"]
    assert decoder["gpu_rules"]["compatible"] is False
    assert decoder["gpu"]["ran"] is True and decoder["gpu"]["fully_delegated"] is False
    assert "refuses this graph GPU-only" in decoder["gpu"]["reason"]
    assert saved["end_to_end_gpu"] == {}  # a refused graph: no clip on the GPU


def test_conversion_child_blocks_the_network():
    from vosx.export.convert import _block_network

    saved = socket.socket.connect, socket.create_connection
    try:
        _block_network()
        with pytest.raises(OSError, match="network access is blocked"):
            socket.create_connection(("127.0.0.1", 9), timeout=1)
    finally:
        socket.socket.connect, socket.create_connection = saved


def _no_gpu(monkeypatch) -> str:
    """Make ``probe_gpu`` answer as on a machine without a usable Vulkan device -> its reason."""
    reason = "no usable Vulkan device (No adapters found); as root: apt-get install -y mesa-vulkan"
    monkeypatch.setattr(accelerator, "probe_gpu", lambda: GpuProbe(False, None, reason))
    return reason


def test_require_gpu_check_without_gpu_writes_nothing(tiny_ckpt, tmp_path, monkeypatch, capsys):
    reason = _no_gpu(monkeypatch)
    args = ("export", tiny_ckpt, "-o", tmp_path / "out", "--size", "64x96", "--require-gpu-check")
    assert run_cli(monkeypatch, *args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--require-gpu-check" in err[0] and reason in err[0], err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_export_and_one_line_errors(tiny_ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(
        tmp_path
    )  # a relative -o, as `make demo` gives (the converter runs elsewhere)
    out = tmp_path / "cli_out"

    def run(*args):
        return run_cli(monkeypatch, "export", *args)

    reason = _no_gpu(monkeypatch)  # without a Vulkan device the export succeeds, saying why
    assert run(tiny_ckpt, "-o", "cli_out", "--size", "64x96", "--precision", "fp32") == 0
    stdout = capsys.readouterr().out
    assert "end-to-end fp32" in stdout and f"GPU check not run: {reason}" in stdout
    assert load_manifest(out).precisions == ["fp32"]
    saved = json.loads((out / "report.json").read_text())
    for g in saved["graphs"].values():
        gpu = g["precisions"]["fp32"]["gpu"]
        assert gpu == {**dict.fromkeys(gpu), "ran": False, "reason": reason}
    assert saved["end_to_end_gpu"] == {}
    _check_report_against_files(out, ("fp32",))
    assert run(tiny_ckpt, "-o", out, "--size", "64x96") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--force" in err[0]
    assert run(tiny_ckpt, "-o", tmp_path / "x", "--size", "64x90") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "multiples of 16" in err[0] and "80 or 96" in err[0]
    assert not (tmp_path / "x").exists()


def _video_folder(root, videos: int, frames: int):
    """A YouTube-VOS-layout folder: ``videos`` videos of ``frames`` 40x60 frames, object 1 a
    square that moves one pixel a frame; returns the masks by video."""
    from PIL import Image

    out = {}
    for v in range(videos):
        fdir, mdir = root / "JPEGImages" / f"v{v}", root / "Annotations" / f"v{v}"
        fdir.mkdir(parents=True)
        mdir.mkdir(parents=True)
        out[f"v{v}"] = []
        for t in range(frames):
            mask = np.zeros((40, 60), np.uint8)
            mask[10:20, 10 + t + v : 20 + t + v] = 1
            Image.fromarray(np.full((40, 60, 3), 40 * v + t, np.uint8)).save(fdir / f"{t:05d}.jpg")
            Image.fromarray(mask).save(mdir / f"{t:05d}.png")
            out[f"v{v}"].append(mask)
    return out


def test_calib_clips_pair_frames_with_their_own_masks(tmp_path):
    """--calib reads a video folder: its clips keep each frame's own mask (resized), spread over
    the videos; the float checks' probe takes one clip of three frames."""
    from vosx.export.prepare import CALIB_CLIP_FRAMES, CALIB_FRAMES, sample_clips

    masks = _video_folder(tmp_path / "calib", videos=3, frames=6)
    clips, source = sample_clips((40, 60), tmp_path / "calib", calibrated=True)
    assert source == f"real clips with their masks from {tmp_path / 'calib'}"
    assert len(clips) == 3  # fewer videos than CALIB_CLIPS: every one
    for (frames, got), (name, want) in zip(clips, masks.items(), strict=True):
        assert frames.shape == (CALIB_CLIP_FRAMES, 40, 60, 3) and frames.dtype == np.uint8
        np.testing.assert_array_equal(got, np.stack(want[:CALIB_CLIP_FRAMES]), err_msg=name)
    probe, _ = sample_clips((32, 48), tmp_path / "calib", calibrated=False)
    assert (
        len(probe) == 1 and probe[0][0].shape == (3, 32, 48, 3) and probe[0][1].shape == (3, 32, 48)
    )
    bundled, source = sample_clips((32, 48), None, calibrated=True)
    assert source == BUNDLED_SOURCE and len(bundled) == 1
    assert bundled[0][0].shape == (CALIB_FRAMES, 32, 48, 3) and set(np.unique(bundled[0][1])) == {
        0,
        1,
    }


def test_calib_frames_without_masks_are_refused(tmp_path):
    from PIL import Image

    from vosx.export.prepare import sample_clips

    (tmp_path / "frames").mkdir()
    Image.new("RGB", (60, 40)).save(tmp_path / "frames" / "00000.jpg")
    with pytest.raises(ConfigError, match="not a video folder with masks; give one in DAVIS"):
        sample_clips((32, 48), tmp_path / "frames", calibrated=True)
    _video_folder(tmp_path / "short", videos=2, frames=2)  # no query frame after the memory
    with pytest.raises(ConfigError, match="no video has 3 or more annotated frames"):
        sample_clips((32, 48), tmp_path / "short", calibrated=False)


@pytest.mark.slow
def test_int8_export_calibrated_on_videos_with_masks(tiny_ckpt, tmp_path, monkeypatch, capsys):
    """`vosx export --calib VIDEOS`: int8 calibrated on the videos' clips, said in the report."""
    _video_folder(tmp_path / "videos", videos=2, frames=5)
    out = tmp_path / "exp"
    args = ["export", tiny_ckpt, "-o", out, "--size", "64x96", "--precision", "int8"]
    code = run_cli(monkeypatch, *args, "--calib", tmp_path / "videos", "--no-gpu-check")
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["int8_calibration"] == f"real clips with their masks from {tmp_path / 'videos'}"
    assert load_manifest(out).precisions == ["int8"]
