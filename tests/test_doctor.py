"""`vosx doctor`: every check present, gaps named with their fix."""

from tests.conftest import run_cli
from vosx.android_bench.tools import BENCHMARK_MODEL, BINARIES
from vosx.doctor import pinned_versions, run_checks
from vosx.tracker_runtime import accelerator


def test_pins_cover_the_converter_stack():
    pins = pinned_versions()
    for name in ("torch", "onnx2tf", "tensorflow", "onnxruntime", "ai-edge-litert"):
        assert name in pins


def test_missing_adb_and_binaries_are_named_with_fixes(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no adb here
    monkeypatch.delenv("ADB", raising=False)
    monkeypatch.delenv("VOSX_BENCHMARK_MODEL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    checks = {c.what: c for c in run_checks()}
    assert checks["torch"].ok and checks["onnx2tf"].ok and checks["ai-edge-litert"].ok
    assert not checks["adb"].ok and "platform-tools" in checks["adb"].fix
    assert (
        not checks["benchmark_model"].ok and "--benchmark-binary" in checks["benchmark_model"].fix
    )


def test_benchmark_binary_from_env(monkeypatch, tmp_path):
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF")
    monkeypatch.setenv("VOSX_BENCHMARK_MODEL", str(binary))
    checks = {c.what: c for c in run_checks()}
    assert checks["benchmark_model"].ok and checks["benchmark_model"].found == str(binary)


def test_every_tool_binary_is_looked_for_where_bench_looks(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for binary in BINARIES:
        monkeypatch.delenv(binary.env_var, raising=False)
    cached = tmp_path / "vosx" / BENCHMARK_MODEL.cache_names[0]
    cached.parent.mkdir()
    cached.write_bytes(b"\x7fELF")
    checks = {c.what: c for c in run_checks() if c.command == "bench --device adb"}
    assert checks["benchmark_model"].ok and checks["benchmark_model"].found == str(cached)
    for binary in BINARIES[1:]:
        fix = checks[binary.name].fix
        assert not checks[binary.name].ok and binary.option in fix and binary.env_var in fix


def test_cli_doctor(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert run_cli(monkeypatch, "doctor") == 0
    out = capsys.readouterr().out
    assert "onnx2tf" in out and "missing: adb" in out


def test_gpu_check_names_the_adapter_or_the_install_command(monkeypatch):
    probe = accelerator.probe_gpu()
    check = {c.what: c for c in run_checks()}["GPU accelerator (Vulkan)"]
    assert check.ok == probe.available
    if probe.available:
        assert check.found == (probe.adapter or "unknown device") and not check.fix
    else:
        assert check.found == "none" and check.fix == probe.reason
    missing = accelerator.GpuProbe(False, None, "no usable Vulkan device; apt-get install x")
    monkeypatch.setattr(accelerator, "probe_gpu", lambda: missing)
    check = {c.what: c for c in run_checks()}["GPU accelerator (Vulkan)"]
    assert not check.ok and check.found == "none" and "apt-get install" in check.fix
