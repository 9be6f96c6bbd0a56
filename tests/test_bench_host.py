"""``vosx bench --device host`` on a real tiny export: LiteRT (XNNPACK) and ONNX Runtime timings.

Uses the session fixture ``tiny_export_dir`` (64x96, fp32 + fp16, real onnx2tf), also on LiteRT's
GPU accelerator (``--delegate gpu``: needs a Vulkan device; a missing one fails with the install
command, never a skip). Also checks the host-mode refusals and that the android_bench package
imports neither torch nor tensorflow.
"""

import json
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import run_cli
from vosx.android_bench.bench import BenchOptions, run_bench
from vosx.android_bench.host import ORT_MISSING
from vosx.android_bench.report import per_frame, summarize
from vosx.errors import ConfigError


def run_bench_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """``vosx bench ARGS`` through the real entry point: (exit code, stdout, stderr)."""
    monkeypatch.setenv("COLUMNS", "220")  # rich tables unwrapped
    code = run_cli(monkeypatch, "bench", *args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_host_report(tiny_export_dir, tmp_path, monkeypatch, capsys):
    out_json, out_png = tmp_path / "host.json", tmp_path / "host.png"
    code, out, err = run_bench_cli(
        monkeypatch, capsys, tiny_export_dir, "--device", "host", "--runs", "4", "--warmup", "1",
        "--trials", "2", "--threads", "1", "--objects", "2", "--json", out_json, "--plot", out_png,
    )  # fmt: skip
    assert code in (0, None), err
    data = json.loads(out_json.read_text())
    assert data["device_mode"] == "host" and data["precisions"] == ["fp32", "fp16"]
    assert data["input_size"] == [64, 96]
    rows = {(r["graph"], r["delegate"], r["precision"]): r for r in data["summary"]}
    expected = {
        (g, "cpu", p) for g in ("key_encoder", "value_encoder", "decoder") for p in ("fp32", "fp16")
    }
    expected |= {(g, "onnxruntime", "fp32") for g in ("key_encoder", "value_encoder", "decoder")}
    assert set(rows) == expected
    for r in rows.values():
        assert r["trials_ok"] == 2 and r["trials_failed"] == 0 and r["error"] is None
        assert 0 < r["steady_min_ms"] <= r["steady_ms"] <= r["steady_max_ms"]
        assert r["init_ms"] > 0 and r["first_ms"] > 0 and r["warmup_ms"] > 0
    m = data["devices"][0]["measurements"][0]["result"]
    assert m["source"] == "host" and m["inference_count"] == 4
    assert m["inference_min_us"] <= m["inference_median_us"] <= m["inference_max_us"]
    frames = {(f["delegate"], f["precision"]): f for f in data["per_frame"]}
    assert set(frames) == {("cpu", "fp32"), ("cpu", "fp16"), ("onnxruntime", "fp32")}
    f = frames["cpu", "fp32"]
    graphs = [
        rows[g, "cpu", "fp32"]["steady_ms"] for g in ("key_encoder", "value_encoder", "decoder")
    ]
    assert f["graphs_ms"] == pytest.approx(graphs[0] + 2 * (graphs[1] + graphs[2]))
    assert f["tracker_ms"] is not None and f["driver_ms"] > 0  # the tracker is in this install
    assert f["fps"] == pytest.approx(1000 / f["frame_ms"])
    assert data["devices"][0]["info"]["cores"] >= 1
    assert Image.open(out_png).size[0] == 1100
    assert "onnxruntime" in out and "per frame, K=2 objects" in out


@pytest.mark.slow
def test_host_without_onnxruntime(tiny_export_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the [export] extra were missing
    opts = BenchOptions(
        tiny_export_dir, device="host", delegates=("cpu",), precisions=("fp16",), runs=2, warmup=0,
        trials=1, threads=1, cooldown_s=0.0,
    )  # fmt: skip
    report = run_bench(opts)
    assert report.notes == (ORT_MISSING,)
    assert "pip install 'vosx[export]'" in ORT_MISSING
    assert {r.delegate for r in summarize(report)} == {"cpu"}
    assert [(f.delegate, f.precision) for f in per_frame(report)] == [("cpu", "fp16")]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--delegate", "nnapi"], "with --device host: the host has no NNAPI"),
        (["--check-outputs"], "--check-outputs compares GPU with CPU outputs on a phone"),
        (["--serial", "X"], "--serial selects phones"),
        (["--runs", "0"], "--runs 0: must be at least 1"),
    ],
)
@pytest.mark.slow
def test_host_refusals(tiny_export_dir, monkeypatch, capsys, args, message):
    code, _, err = run_bench_cli(monkeypatch, capsys, tiny_export_dir, "--device", "host", *args)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


def test_not_an_export_folder(tmp_path, monkeypatch, capsys):
    code, _, err = run_bench_cli(monkeypatch, capsys, tmp_path, "--device", "host")
    assert code == 1 and "no manifest.json; is this a `vosx export` output folder?" in err


@pytest.mark.slow
def test_unknown_precision_refused(tiny_export_dir):
    opts = BenchOptions(tiny_export_dir, device="host", delegates=("cpu",), precisions=("int8",))
    with pytest.raises(ConfigError, match="int8 was not exported"):
        run_bench(opts)


def test_android_bench_imports_no_torch_or_tensorflow():
    code = (
        "import sys; import vosx.android_bench.bench, vosx.android_bench.report; "
        "heavy = [m for m in ('torch', 'tensorflow', 'onnx2tf', 'vosx.export', 'vosx.model') "
        "if m in sys.modules]; assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_host_gpu_accelerator(tiny_export_dir, tmp_path, monkeypatch, capsys):
    from vosx.tracker_runtime.accelerator import probe_gpu

    probe = probe_gpu()
    assert probe.available, probe.reason  # the reason carries the driver's install command
    out_json = tmp_path / "gpu.json"
    code, out, err = run_bench_cli(
        monkeypatch, capsys, tiny_export_dir, "--device", "host", "--delegate", "gpu",
        "--runs", "2", "--warmup", "0", "--trials", "1", "--json", out_json,
    )  # fmt: skip
    assert code in (0, None), err
    data = json.loads(out_json.read_text())
    rows = {(r["graph"], r["precision"]): r for r in data["summary"]}
    assert set(rows) == {(g, p) for g in ("key_encoder", "value_encoder", "decoder")
                         for p in ("fp32", "fp16")}  # fmt: skip
    for r in rows.values():
        assert r["delegate"] == "gpu" and r["tool"] == "litert-gpu" and r["error"] is None
        assert r["delegation"] == "full" and r["steady_ms"] > 0
        assert r["latency_label"] == "software Vulkan, not a phone figure"
        assert 0 <= r["gpu_max_rel"] < 0.05  # fp16 arithmetic against the CPU
    checks = data["devices"][0]["gpu_checks"]
    assert len(checks) == 6 and all(c["fully_delegated"] and c["error"] is None for c in checks)
    assert all(c["max_rel"] and c["adapter"] for c in checks)
    assert data["devices"][0]["info"]["gpu"] == probe.adapter
    assert data["devices"][0]["measurements"][0]["result"]["source"] == "host-gpu"
    assert "software Vulkan, not a phone figure" in out and "rel " in out
