"""`vosx export` end to end on a tiny config: real ONNX, real onnx2tf, real LiteRT, named
tolerances.
"""

import json
import shutil
import socket

import numpy as np
import pytest

from tests.conftest import TINY_SIZE, run_cli
from vosx.errors import CheckpointError, ConfigError, ManifestError, ParityError
from vosx.export import verify
from vosx.export.graphs import DecoderGraph, TorchGraphs
from vosx.export.pipeline import ExportOptions, export_all, parse_size
from vosx.manifest import GRAPH_NAMES, load_manifest
from vosx.model import load_checkpoint
from vosx.tracker_runtime.litert import TFLiteGraphs


def test_folder_has_every_artifact(tiny_export_dir):
    import onnx

    for g in GRAPH_NAMES:
        onnx.checker.check_model(onnx.load(str(tiny_export_dir / f"{g}.onnx")), full_check=True)
        for suffix in ("float32", "float16"):
            assert (tiny_export_dir / f"{g}_{suffix}.tflite").stat().st_size > 1000
    for f in ("manifest.json", "report.json", "report.md"):
        assert (tiny_export_dir / f).is_file()
    assert not list(tiny_export_dir.parent.glob(".tiny_export.tmp-*")), "temp folder left behind"


def test_manifest_schema(tiny_export_dir):
    m = load_manifest(tiny_export_dir)
    d = m.data
    assert d["format"] == "vosx-trickvos-tflite" and d["format_version"] == 1
    assert d["model_config"]["key_dim"] == 8
    assert m.input_size == TINY_SIZE
    assert d["input"]["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert d["input"]["padding"]["multiple"] == 16
    assert d["memory"]["slots"] == ["first", "last"] and d["memory"]["tokens"] == 4 * 6
    assert m.precisions == ["fp32", "fp16"]
    for g in m.graphs.values():
        for entry in g.files.values():
            assert len(entry["sha256"]) == 64 and entry["bytes"] > 0
        for t in (*g.inputs, *g.outputs):
            assert len(t.shape) <= 4 and t.dtype == "float32"
            assert sorted(t.onnx_perm) == list(range(len(t.shape)))
    names = {f"{g}:{t.name}" for g, spec in m.graphs.items() for t in (*spec.inputs, *spec.outputs)}
    for b in d["bindings"]:
        assert b["from"] in names and b["to"] in names, b
    decoder_inputs = {t.name for t in m.graphs["decoder"].inputs}
    bound = {b["to"].split(":")[1] for b in d["bindings"] if b["to"].startswith("decoder:")}
    assert bound == decoder_inputs  # every decoder input is fed by something
    assert d["tools"]["onnx2tf"] and d["tools"]["tensorflow"]


def test_report_parity_within_named_tolerances(tiny_export_dir):
    report = json.loads((tiny_export_dir / "report.json").read_text())
    for name, g in report["graphs"].items():
        assert g["onnx"]["scaled"] <= verify.ONNX_MAX_ABS, name
        assert g["precisions"]["fp32"]["parity"]["rel"] <= verify.TFLITE_FP32_MAX_REL, name
        assert g["precisions"]["fp16"]["parity"]["rel"] <= verify.TFLITE_FP16_MAX_REL, name
        for prec in ("fp32", "fp16"):
            assert g["precisions"][prec]["gpu"]["compatible"], (name, prec)
        assert 0 < g["activation_peak"]["max_abs"] < verify.FP16_MAX
        assert g["macs"] > 0 and g["precisions"]["fp32"]["ops"]
    e2e = report["end_to_end"]
    assert e2e["fp32"]["conclusive"], "the test model should make decisive predictions"
    assert e2e["fp32"]["min_iou"] >= verify.E2E_IOU_FP32
    assert e2e["fp16"]["min_iou"] >= verify.E2E_IOU_FP16
    assert "| decoder | fp32 |" in (tiny_export_dir / "report.md").read_text()


def test_tflite_graphs_match_pytorch_by_manifest_names(tiny_export_dir, tiny_ckpt):
    ref = TorchGraphs(load_checkpoint(tiny_ckpt))
    tfl = TFLiteGraphs.open(tiny_export_dir, "fp32")
    rng = np.random.default_rng(5)
    for name, spec in tfl.manifest.graphs.items():
        inputs = {t.name: rng.standard_normal(t.shape).astype(np.float32) for t in spec.inputs}
        p = verify.compare(ref.run(name, inputs), tfl.run(name, inputs))
        assert p.rel <= verify.TFLITE_FP32_MAX_REL, (name, p)


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


def test_gpu_incompatible_graph_fails_unless_allowed(tiny_ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(DecoderGraph, "_original_forward", DecoderGraph.forward, raising=False)
    monkeypatch.setattr(DecoderGraph, "forward", _rank5_forward)
    opts = dict(checkpoint=tiny_ckpt, size=TINY_SIZE, precisions=("fp32",))
    with pytest.raises(
        ParityError, match=r"decoder_float32.tflite: not fully supported by the GPU.*rank 5"
    ):
        export_all(ExportOptions(out_dir=tmp_path / "strict", **opts))
    assert not (tmp_path / "strict").exists()
    result = export_all(ExportOptions(out_dir=tmp_path / "lenient", allow_cpu_ops=True, **opts))
    gpu = result.report["graphs"]["decoder"]["precisions"]["fp32"]["gpu"]
    assert not gpu["compatible"] and any("rank 5" in p for p in gpu["problems"])
    assert result.report["graphs"]["key_encoder"]["precisions"]["fp32"]["gpu"]["compatible"]


def test_conversion_child_blocks_the_network():
    from vosx.export.convert import _block_network

    saved = socket.socket.connect, socket.create_connection
    try:
        _block_network()
        with pytest.raises(OSError, match="network access is blocked"):
            socket.create_connection(("127.0.0.1", 9), timeout=1)
    finally:
        socket.socket.connect, socket.create_connection = saved


def test_cli_export_and_one_line_errors(tiny_ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(
        tmp_path
    )  # a relative -o, as `make demo` gives (the converter runs elsewhere)
    out = tmp_path / "cli_out"

    def run(*args):
        return run_cli(monkeypatch, "export", *args)

    assert run(tiny_ckpt, "-o", "cli_out", "--size", "64x96", "--precision", "fp32") == 0
    assert "end-to-end fp32" in capsys.readouterr().out
    assert load_manifest(out).precisions == ["fp32"]
    assert run(tiny_ckpt, "-o", out, "--size", "64x96") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--force" in err[0]
    assert run(tiny_ckpt, "-o", tmp_path / "x", "--size", "64x90") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "multiples of 16" in err[0] and "80 or 96" in err[0]
    assert not (tmp_path / "x").exists()
