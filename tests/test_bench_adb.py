"""``vosx bench --device adb`` against a fake adb on PATH that emulates phones (tests/fakes/).

Covers device selection and every refusal, the ELF and ABI checks, sha256-skipping pushes and
cleanup, quoting, timeouts, thermal and device info, parsing of each output format end to end,
GPU failures, ``--check-outputs``, several serials in parallel, a device that disappears
mid-run, and the per-frame estimate.
"""

import json
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.fakes.tools import EM_X86_64, LITERT_TOOL, fake_elf, help_lines
from tests.fakes.world import FakeAdbWorld, fixtures_dir, make_export
from vosx.android_bench import adb as adb_mod
from vosx.android_bench.adb import (
    Adb,
    DeviceDisconnected,
    find_adb,
    list_devices,
    parse_devices,
    select_serials,
)
from vosx.android_bench.bench import BenchOptions, run_bench
from vosx.android_bench.report import per_frame, render, summarize, to_json_dict
from vosx.android_bench.tools import (
    BINARIES,
    INFERENCE_DIFF_TOOL,
    TOOL_NAMES,
    TOOLS,
    BenchmarkTool,
    DelegateUnsupported,
    benchmark_args,
    check_elf_aarch64,
    parse_help,
)
from vosx.errors import ConfigError, DeviceError

SERIAL = "R5CT10ABCDE"


@pytest.fixture
def world(tmp_path, monkeypatch) -> FakeAdbWorld:
    """A fake adb on PATH with no devices yet."""
    return FakeAdbWorld(tmp_path, monkeypatch)


@pytest.fixture
def export_dir(tmp_path):
    return make_export(tmp_path / "export")


@pytest.fixture
def tool(world, tmp_path):
    return world.write_tool(tmp_path / "benchmark_model", "benchmark_model")


def options(export_dir, tool, **kw) -> BenchOptions:
    base = dict(
        export_dir=export_dir,
        benchmark_binary=tool,
        precisions=("fp32",),
        trials=1,
        runs=10,
        warmup=2,
        cooldown_s=0.0,
    )
    return BenchOptions(**{**base, **kw})


def run_bench_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """``vosx bench ARGS`` through the real entry point: (exit code, stdout, stderr)."""
    monkeypatch.setenv("COLUMNS", "220")  # rich tables unwrapped
    code = run_cli(monkeypatch, "bench", *args)
    out, err = capsys.readouterr()
    return code, out, err


# ---- adb and device selection -------------------------------------------------------------


def test_parse_devices_states():
    text = (
        "* daemon not running; starting now at tcp:5037\n* daemon started successfully\n"
        "List of devices attached\n"
        "R5CT10ABCDE            device usb:1-1 product:r0q model:SM_S901U device:r0q "
        "transport_id:1\n"
        "emulator-5554          offline transport_id:2\n"
        "0123456789ABCDEF       unauthorized usb:1-2 transport_id:3\n"
        "ZX1G22                 no permissions (user in plugdev group; are your udev rules "
        "wrong?); see [http://developer.android.com/tools/device.html]\n\n"
    )
    entries = parse_devices(text)
    assert [(e.serial, e.state) for e in entries] == [
        ("R5CT10ABCDE", "device"),
        ("emulator-5554", "offline"),
        ("0123456789ABCDEF", "unauthorized"),
        ("ZX1G22", "no permissions"),
    ]
    assert entries[0].details["model"] == "SM_S901U"


def test_find_adb(world, tmp_path, monkeypatch):
    assert find_adb() == world.adb
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DeviceError, match="adb: not found on PATH; install Android platform-tools"):
        find_adb()
    monkeypatch.setenv("ADB", str(tmp_path / "nope"))
    with pytest.raises(DeviceError, match="not an executable file"):
        find_adb()
    monkeypatch.setenv("ADB", world.adb)
    assert find_adb() == world.adb


def test_selects_the_only_device_or_android_serial(world, monkeypatch):
    world.add_device(SERIAL)
    assert select_serials(list_devices(world.adb), []) == [SERIAL]
    world.add_device("SECOND")
    monkeypatch.setenv("ANDROID_SERIAL", "SECOND")
    assert select_serials(list_devices(world.adb), []) == ["SECOND"]
    assert select_serials(list_devices(world.adb), [SERIAL, "SECOND", SERIAL]) == [SERIAL, "SECOND"]


@pytest.mark.parametrize(
    "devices, serials, message",
    [
        ({}, [], "no Android device found by adb; connect a phone with USB debugging"),
        (
            {"A1": "device", "B2": "device"},
            [],
            r"several devices are connected \(A1 \(device\), B2",
        ),
        (
            {"A1": "unauthorized"},
            [],
            "A1 is unauthorized; unlock the phone and accept the 'Allow USB",
        ),
        (
            {"A1": "offline"},
            [],
            "A1 is offline; reconnect the USB cable or run `adb reconnect offline`",
        ),
        ({"A1": "no permissions"}, [], "no permissions to open the USB device; add a udev rule"),
        ({"A1": "device"}, ["Z9"], r"device Z9 is not connected \(adb sees: A1\)"),
        ({"A1": "device", "B2": "unauthorized"}, ["A1", "B2"], "B2 is unauthorized"),
    ],
)
def test_device_refusals_via_cli(
    world, export_dir, tool, monkeypatch, capsys, devices, serials, message
):
    for serial, state in devices.items():
        world.add_device(serial, state=state)
    args = [export_dir, "--benchmark-binary", tool, *[x for s in serials for x in ("--serial", s)]]
    code, out, err = run_bench_cli(monkeypatch, capsys, *args)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vosx: error: ")
    assert __import__("re").search(message, lines[0]), lines[0]


def test_adb_missing_via_cli(world, export_dir, tool, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, _, err = run_bench_cli(monkeypatch, capsys, export_dir, "--benchmark-binary", tool)
    assert code == 1 and "adb: not found on PATH" in err and len(err.strip().splitlines()) == 1


# ---- binary and ABI checks ----------------------------------------------------------------


def test_elf_check(tmp_path):
    good = tmp_path / "good"
    good.write_bytes(fake_elf("benchmark_model"))
    check_elf_aarch64(good)
    cases = {
        "x86": (fake_elf("benchmark_model", EM_X86_64), "is an ELF for x86-64, not aarch64"),
        "arm32": (fake_elf("benchmark_model", 40, elf_class=1), "32-bit or big-endian ELF"),
        "script": (b"#!/bin/sh\necho hi\n", "is a script, not an ELF executable"),
        "apk": (b"PK\x03\x04" + bytes(60), "is an APK/zip, not an ELF executable"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DeviceError, match=message):
            check_elf_aarch64(tmp_path / name)
    with pytest.raises(DeviceError, match="binary not found"):
        check_elf_aarch64(tmp_path / "missing")


def test_x86_binary_refused_before_any_push(world, export_dir, tmp_path, monkeypatch, capsys):
    world.add_device(SERIAL)
    x86 = world.write_tool(tmp_path / "bm_x86", "benchmark_model", EM_X86_64)
    code, _, err = run_bench_cli(monkeypatch, capsys, export_dir, "--benchmark-binary", x86)
    assert code == 1 and "not aarch64; use the android_aarch64 build of benchmark_model" in err
    assert world.pushes() == []


def test_benchmark_binary_lookup(world, export_dir, tool, tmp_path, monkeypatch, capsys):
    world.add_device(SERIAL)
    code, _, err = run_bench_cli(
        monkeypatch, capsys, export_dir, "--trials", "1", "--cooldown", "0"
    )
    assert code == 1 and "not given, $VOSX_BENCHMARK_MODEL unset" in err
    assert "android_aarch64_benchmark_model" in err
    cache = tmp_path / "cache" / "vosx"
    cache.mkdir(parents=True)
    world.write_tool(cache / "android_aarch64_benchmark_model", "benchmark_model")
    report = run_bench(options(export_dir, None, runs=2))
    assert report.runs[0].error is None and report.runs[0].measurements
    monkeypatch.setenv("VOSX_BENCHMARK_MODEL", str(tmp_path / "nothing_here"))
    with pytest.raises(DeviceError, match="nothing_here: benchmark_model binary not found"):
        run_bench(options(export_dir, None))


def test_abi_refusal(world, export_dir, tool, monkeypatch, capsys):
    dev = world.add_device(SERIAL)
    dev["props"]["ro.product.cpu.abi"] = "armeabi-v7a"
    dev["props"]["ro.product.cpu.abilist"] = "armeabi-v7a,armeabi"
    world.save()
    code, _, err = run_bench_cli(monkeypatch, capsys, export_dir, "--benchmark-binary", tool)
    assert code == 1
    assert "ABI armeabi-v7a is not arm64-v8a" in err and len(err.strip().splitlines()) == 1
    assert world.pushes() == []


def test_precision_not_exported(world, export_dir, tool):
    world.add_device(SERIAL)
    with pytest.raises(ConfigError, match="precision int8 was not exported .have fp32, fp16."):
        run_bench(options(export_dir, tool, precisions=("int8",)))


# ---- adb mechanics --------------------------------------------------------------------------


def test_shell_quotes_and_exit_status(world):
    world.add_device(SERIAL)
    dev = Adb(world.adb, SERIAL)
    nasty = "/data/local/tmp/a b;touch pwned"
    assert dev.shell(["mkdir", "-p", nasty]).rc == 0
    assert world.device_path(SERIAL, nasty).is_dir()
    assert not world.device_path(SERIAL, "/data/local/tmp/pwned").exists()
    assert dev.shell(["test", "-e", "/data/local/tmp/none"]).rc == 1
    res = dev.shell(["/data/local/tmp/missing_tool", "--x=1"])
    assert res.rc == 127 and "inaccessible or not found" in res.output
    with pytest.raises(DeviceError, match="failed .exit 1."):
        dev.check(["chmod", "755", "/data/local/tmp/none"])


def test_every_adb_call_has_a_timeout(world, export_dir, tool, monkeypatch):
    """Every adb process is started by ``run_adb`` (an argument list, no shell) with a timeout."""
    world.add_device(SERIAL)
    seen, started = [], []
    real_run, real_popen = adb_mod.run_adb, subprocess.Popen

    def spy(adb, args, timeout_s, what):
        seen.append((args, timeout_s))
        return real_run(adb, args, timeout_s, what)

    def popen(args, **kw):
        started.append(args)
        assert isinstance(args, list) and not kw.get("shell")
        return real_popen(args, **kw)

    monkeypatch.setattr(adb_mod, "run_adb", spy)
    monkeypatch.setattr(adb_mod.subprocess, "Popen", popen)
    run_bench(options(export_dir, tool, check_outputs=False))
    assert len(seen) > 10 and len(started) == len(seen)
    assert all(t is not None and t > 0 for _, t in seen)


def test_hung_command_times_out(world):
    world.add_device(SERIAL, hang_on="getprop")
    dev = Adb(world.adb, SERIAL)
    with pytest.raises(DeviceError, match=r"took longer than 1 s") as e:
        dev.shell(["getprop"], timeout_s=1)
    assert not isinstance(e.value, DeviceDisconnected)  # the device still answers get-state


def test_device_info_and_thermal(world):
    world.add_device(SERIAL, throttle_after=0)
    dev = Adb(world.adb, SERIAL)
    info = dev.device_info()
    assert (info.model, info.manufacturer, info.soc, info.hardware) == (
        "SM-S901U",
        "samsung",
        "QTI SM8450",
        "qcom",
    )
    assert (info.android_version, info.sdk, info.abi) == ("14", "34", "arm64-v8a")
    assert info.gpu.startswith("Qualcomm, Adreno (TM) 730")
    t = dev.thermal()
    assert t.source == "thermalservice" and t.status == 2 and t.throttled
    assert t.temperatures["cpu-1-0"] == 42.0 and t.max_temperature == 42.0


def test_thermal_from_sysfs_and_gpu_from_egl(world):
    world.add_device(SERIAL, sysfs_only=True, gpu=None)
    for i, (kind, milli) in enumerate([("cpu-0-0", "45100"), ("gpu", "39000")]):
        zone = world.device_path(SERIAL, f"/sys/class/thermal/thermal_zone{i}")
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    dev = Adb(world.adb, SERIAL)
    t = dev.thermal()
    assert t.source == "sysfs" and t.status is None and not t.throttled
    assert t.temperatures == {"cpu-0-0": 45.1, "gpu": 39.0}
    assert dev.device_info().gpu == "adreno"  # no GLES line: ro.hardware.egl


TF_TOOL = parse_help("\n".join(help_lines("benchmark_model", "/d/bm")))
LITERT = parse_help("\n".join(help_lines(LITERT_TOOL, "/d/bm")))


def test_benchmark_args():
    gpu32 = benchmark_args("/d/bm", "/d/k.tflite", "gpu", "fp32", 4, 50, 5, TF_TOOL)
    assert gpu32 == [
        "/d/bm",
        "--graph=/d/k.tflite",
        "--num_runs=50",
        "--warmup_runs=5",
        "--num_threads=4",
        "--report_peak_memory_footprint=true",
        "--use_gpu=true",
        "--gpu_precision_loss_allowed=false",
        "--gpu_backend=cl",
    ]
    gpu16 = benchmark_args("b", "g", "gpu", "fp16", 1, 1, 1, TF_TOOL)
    assert "--gpu_precision_loss_allowed=true" in gpu16
    assert benchmark_args("b", "g", "nnapi", "fp16", 1, 1, 1, TF_TOOL)[-2:] == [
        "--use_nnapi=true",
        "--nnapi_allow_fp16=true",
    ]
    cpu = benchmark_args("b", "g", "cpu", "fp32", 1, 1, 1, TF_TOOL)
    assert not any("gpu" in a or "nnapi" in a for a in cpu)


def test_benchmark_args_litert_and_unlisted_flags():
    common = ["b", "--graph=g", "--num_runs=1", "--warmup_runs=1", "--num_threads=1"]
    common.append("--report_peak_memory_footprint=true")
    gpu = ["--use_gpu=true", "--use_cpu=false", "--require_full_delegation=true"]
    assert benchmark_args("b", "g", "gpu", "fp32", 1, 1, 1, LITERT) == [
        *common, *gpu, "--allow_fp16=false"
    ]  # fmt: skip
    for p in ("fp16", "int8"):
        assert benchmark_args("b", "g", "gpu", p, 1, 1, 1, LITERT)[-1] == "--allow_fp16=true"
    assert benchmark_args("b", "g", "cpu", "fp32", 1, 1, 1, LITERT) == common
    with pytest.raises(DelegateUnsupported, match="CompiledModel tool, which has no NNAPI"):
        benchmark_args("b", "g", "nnapi", "fp16", 1, 1, 1, LITERT)
    old = BenchmarkTool(TF_TOOL.kind, TF_TOOL.flags - {"report_peak_memory_footprint"})
    assert "--report_peak_memory_footprint=true" not in benchmark_args(
        "b", "g", "cpu", "fp32", 1, 1, 1, old
    )  # an optional flag an older build lacks is left out
    no_nnapi = BenchmarkTool(TF_TOOL.kind, TF_TOOL.flags - {"use_nnapi"})
    with pytest.raises(DeviceError, match="does not list --use_nnapi in its --help"):
        benchmark_args("b", "g", "nnapi", "fp32", 1, 1, 1, no_nnapi)


def test_inference_diff_command():
    args = INFERENCE_DIFF_TOOL.command("/d/id", "/d/k.tflite", "gpu", "fp32", 4, 20, 0)
    assert args == [
        "/d/id",
        "--model_file=/d/k.tflite",
        "--delegate=gpu",
        "--num_runs=20",
        "--num_interpreter_threads=4",
        "--gpu_precision_loss_allowed=false",
    ]
    lossy = INFERENCE_DIFF_TOOL.command("b", "g", "gpu", "int8", 1, 1, 0)
    assert lossy[-1] == "--gpu_precision_loss_allowed=true"


def test_every_layer_reads_the_tool_registry(monkeypatch, capsys):
    from vosx.android_bench.report import TOOL_COLUMN

    assert TOOL_NAMES == tuple(b.name for b in BINARIES) == ("benchmark_model", "inference_diff")
    for t in TOOLS.values():
        assert t.binary in BINARIES and TOOL_COLUMN[t.key] == t.column
    monkeypatch.setenv("COLUMNS", "250")  # rich help unwrapped
    assert run_cli(monkeypatch, "bench", "--help") == 0
    out = capsys.readouterr().out
    assert all(b.option in out and f"${b.env_var}" in out for b in BINARIES)


# ---- push, run, clean up --------------------------------------------------------------------


def test_push_skips_matching_files_and_cleans_up(world, export_dir, tool):
    world.add_device(SERIAL)
    first = run_bench(options(export_dir, tool, keep=True))
    run_dir = first.runs[0].run_dir
    assert run_dir.startswith("/data/local/tmp/vosx_bench/run_")
    assert len(first.runs[0].pushed) == 4  # benchmark_model + 3 graphs (fp32)
    assert world.device_path(SERIAL, run_dir + "/decoder_float32.tflite").is_file()
    mode = world.device_path(SERIAL, run_dir + "/benchmark_model").stat().st_mode
    assert mode & 0o111  # chmod'ed
    again = run_bench(options(export_dir, tool, keep=True))
    assert again.runs[0].run_dir == run_dir and again.runs[0].pushed == []
    world.device_path(SERIAL, run_dir + "/value_encoder_float32.tflite").write_bytes(b"stale")
    third = run_bench(
        options(export_dir, tool)
    )  # no --keep: the folder existed, so only its push goes
    assert third.runs[0].pushed == [run_dir + "/value_encoder_float32.tflite"]
    assert not world.device_path(SERIAL, run_dir + "/value_encoder_float32.tflite").exists()
    assert world.device_path(SERIAL, run_dir + "/decoder_float32.tflite").exists()
    world.device_path(SERIAL, run_dir).rename(world.device_path(SERIAL, run_dir + "_old"))
    fresh = run_bench(options(export_dir, tool))  # created by this run: removed whole
    assert len(fresh.runs[0].pushed) == 4 and not world.device_path(SERIAL, run_dir).exists()
    pushed = [c for c in world.calls() if c[2:3] == ["push"]]
    assert all(c[4].startswith(run_dir + "/") for c in pushed)
    assert all(c[:2] == ["-s", SERIAL] for c in world.calls() if c[:1] != ["devices"])


def test_no_sha256sum_on_device_pushes_everything(world, export_dir, tool):
    world.add_device(SERIAL, no_sha256sum=True)
    run_bench(options(export_dir, tool, keep=True))
    again = run_bench(options(export_dir, tool))
    assert len(again.runs[0].pushed) == 4 and again.runs[0].error is None


# ---- results --------------------------------------------------------------------------------


def test_full_run_statistics_formats_and_per_frame(world, export_dir, tool):
    world.add_device(SERIAL, throttle_after=5)
    world.state["benchmark"]["format"] = {"gpu": "info", "cpu": "plain", "nnapi": "logcat"}
    world.state["benchmark"]["delegation"] = {"nnapi": "partial"}
    world.save()
    opts = options(export_dir, tool, delegates=("gpu", "cpu", "nnapi"), trials=3, objects=3)
    report = run_bench(opts)
    run = report.runs[0]
    assert run.error is None and len(run.measurements) == 27
    assert all(m.result is not None for m in run.measurements)
    assert run.info["soc"] == "QTI SM8450" and run.info["android_version"] == "14"
    assert [t["trial"] for t in run.thermal] == [0, 1, 2]
    assert not run.thermal[0]["before"]["throttled"] and run.thermal[0]["after"]["throttled"]
    rows = {(r.graph, r.delegate): r for r in summarize(report)}
    key_gpu = rows["key_encoder", "gpu"]
    # the fake's trials are 0, 2 and 4 % slower than 12 ms * 0.5 (gpu)
    assert key_gpu.trials_ok == 3 and key_gpu.steady_ms == pytest.approx(6.12)
    assert key_gpu.steady_min_ms == pytest.approx(6.0) and key_gpu.steady_max_ms == pytest.approx(
        6.24
    )
    assert key_gpu.spread_pct == pytest.approx(0.24 / 6.12 * 100)
    assert key_gpu.init_ms == pytest.approx(350.0) and key_gpu.first_ms == pytest.approx(30.6)
    assert (
        key_gpu.delegation == "full"
        and key_gpu.memory_mb == 40.25
        and key_gpu.peak_memory_mb == 55.1
    )
    assert rows["key_encoder", "cpu"].delegation is None  # XNNPACK is not a requested delegate
    assert rows["key_encoder", "cpu"].peak_memory_mb is None  # the old format has no peak line
    assert rows["decoder", "nnapi"].delegation == "partial"
    assert rows["decoder", "nnapi"].steady_ms == pytest.approx(6 * 0.75 * 1.02, abs=0.006)
    frames = {f.delegate: f for f in per_frame(report)}
    g = frames["gpu"]
    costs = report.host_costs
    assert g.graphs_ms == pytest.approx(6.12 + 3 * (1.53 + 3.06))
    assert g.tracker_ms == pytest.approx(3 * costs.tracker_ms_per_object)
    assert g.frame_ms == pytest.approx(g.graphs_ms + g.tracker_ms + costs.driver_ms)
    assert g.fps == pytest.approx(1000 / g.frame_ms)
    assert frames["cpu"].fps < g.fps


def test_cli_writes_json_plot_and_table(world, export_dir, tool, tmp_path, monkeypatch, capsys):
    world.add_device(SERIAL)
    out_json, out_png = tmp_path / "r" / "bench.json", tmp_path / "bench.png"
    code, out, err = run_bench_cli(
        monkeypatch, capsys, export_dir, "--benchmark-binary", tool, "--precision", "all",
        "--delegate", "all", "--trials", "1", "--cooldown", "0", "--runs", "5", "--objects", "2",
        "--json", out_json, "--plot", out_png,
    )  # fmt: skip
    assert code in (0, None), err
    data = json.loads(out_json.read_text())
    assert data["format"] == "vosx-bench" and data["device_mode"] == "adb"
    assert data["precisions"] == ["fp32", "fp16"] and data["input_size"] == [64, 96]
    assert len(data["summary"]) == 3 * 3 * 2 and len(data["per_frame"]) == 6
    dev = data["devices"][0]
    assert dev["info"]["model"] == "SM-S901U" and len(dev["thermal"]) == 1
    assert len(dev["measurements"]) == 18 and dev["error"] is None
    fp16_args = [c for c in world.shell_commands() if "key_encoder_float16" in c and "use_gpu" in c]
    assert fp16_args and all("--gpu_precision_loss_allowed=true" in c for c in fp16_args)
    img = Image.open(out_png)
    assert img.format == "PNG" and img.size[0] == 1100 and img.size[1] > 200
    assert "per frame, K=2 objects" in out and "SM-S901U" in out and "wrote" in out
    assert not list(out_json.parent.glob(".*tmp"))  # no temp files left behind


def test_gpu_failure_is_recorded_and_the_sweep_goes_on(world, export_dir, tool):
    world.add_device(SERIAL)
    world.state["benchmark"]["fail"] = [{"graph": "decoder", "delegate": "gpu"}]
    world.save()
    report = run_bench(options(export_dir, tool, delegates=("gpu", "cpu")))
    failed = [m for m in report.runs[0].measurements if m.error]
    assert [(m.graph, m.delegate) for m in failed] == [("decoder", "gpu")]
    assert failed[0].error.startswith("exit 1: benchmark_model failed: Following operations")
    assert "Benchmarking failed." in failed[0].output_tail
    assert [f.delegate for f in per_frame(report)] == ["cpu"]  # gpu lacks its decoder
    report.raise_if_failed()  # some results: not an error of the command


def test_real_fixture_outputs_end_to_end(world, export_dir, tool, monkeypatch, capsys, tmp_path):
    """The fake device prints verbatim blocks of the fixtures: a CPU run and an NNAPI failure."""
    from tests.test_bench_parser import blocks

    world.add_device(SERIAL)
    bs = blocks(
        fixtures_dir(
            "benchmark_model",
            "github_lp6m_yolov5s_android_benchmark_README_mi11_android_nnapi_gpu_opprof.txt",
        )
    )
    cpu = next(b for b in bs if b.startswith("count=50 first=249042"))
    failure = next(b for b in bs if "qti-default" in b and "Benchmarking failed." in b)
    world.state["benchmark"]["outputs"] = {f"{g}/cpu/fp32": cpu for g in ("key_encoder", "decoder")}
    world.state["benchmark"]["fail"] = [{"delegate": "nnapi", "output": failure}]
    world.save()
    out_json = tmp_path / "b.json"
    code, out, err = run_bench_cli(
        monkeypatch, capsys, export_dir, "--benchmark-binary", tool, "--delegate", "all",
        "--precision", "fp32", "--trials", "1", "--cooldown", "0", "--json", out_json,
    )  # fmt: skip
    assert code in (0, None), err
    rows = {(r["graph"], r["delegate"]): r for r in json.loads(out_json.read_text())["summary"]}
    assert rows["key_encoder", "cpu"]["steady_ms"] == 249.684
    assert rows["key_encoder", "cpu"]["memory_mb"] == 138.809
    assert rows["decoder", "nnapi"]["trials_failed"] == 1
    assert "ANEURALNETWORKS_OP_FAILED" in rows["decoder", "nnapi"]["error"]
    assert "ANEURALNETWORKS_OP_FAILED" in out


def test_every_run_failing_exits_1(world, export_dir, tool, tmp_path, monkeypatch, capsys):
    world.add_device(SERIAL)
    world.state["benchmark"]["fail"] = [{"delegate": "gpu"}]
    world.save()
    out_json = tmp_path / "b.json"
    code, _, err = run_bench_cli(
        monkeypatch, capsys, export_dir, "--benchmark-binary", tool, "--trials", "1",
        "--cooldown", "0", "--json", out_json,
    )  # fmt: skip
    assert code == 1
    assert "every benchmark run failed; the first: exit 1: benchmark_model failed" in err
    assert f"results measured so far are in {out_json}" in err and out_json.is_file()


def test_check_outputs_flags_a_wrong_gpu_graph(
    world, export_dir, tool, tmp_path, monkeypatch, capsys
):
    world.add_device(SERIAL)
    world.state["inference_diff"] = {"errors": {"decoder": 0.31}, "fail": ["value_encoder"]}
    world.save()
    diff = world.write_tool(tmp_path / "inference_diff", "inference_diff")
    out_json = tmp_path / "b.json"
    code, out, err = run_bench_cli(
        monkeypatch, capsys, export_dir, "--benchmark-binary", tool, "--check-outputs",
        "--inference-diff-binary", diff, "--precision", "fp32", "--trials", "1", "--cooldown", "0",
        "--diff-threshold", "0.05", "--json", out_json,
    )  # fmt: skip
    assert code in (0, None), err
    data = json.loads(out_json.read_text())
    checks = {c["graph"]: c for c in data["devices"][0]["output_checks"]}
    assert checks["decoder"]["flagged"] and checks["decoder"]["max_error"] == 0.31
    assert not checks["key_encoder"]["flagged"] and checks["key_encoder"]["max_error"] < 1e-5
    assert len(checks["key_encoder"]["diff"]["avg_errors"]) == 5  # one per output
    assert checks["value_encoder"]["error"] and not checks["value_encoder"]["flagged"]
    rows = {r["graph"]: r for r in data["summary"]}
    assert rows["decoder"]["flagged"] and not rows["key_encoder"]["flagged"]
    assert data["per_frame"][0]["flagged"]
    assert "3.10e-01 !!" in out and "GPU outputs differ from CPU" in out
    cmds = [c for c in world.shell_commands() if c.split()[0].endswith("/inference_diff")]
    assert len(cmds) == 3 and all("--delegate=gpu" in c for c in cmds)


def test_inference_diff_binary_required(world, export_dir, tool, monkeypatch, capsys):
    world.add_device(SERIAL)
    code, _, err = run_bench_cli(
        monkeypatch, capsys, export_dir, "--benchmark-binary", tool, "--check-outputs"
    )
    assert code == 1 and "inference_diff: not given, $VOSX_INFERENCE_DIFF unset" in err


def test_several_serials_in_parallel(world, export_dir, tool):
    world.add_device("PHONE_A")
    world.add_device("PHONE_B", speed=2.0)
    world.add_device("OTHER")
    report = run_bench(options(export_dir, tool, serials=("PHONE_A", "PHONE_B"), trials=2))
    assert [r.device for r in report.runs] == ["PHONE_A", "PHONE_B"]
    assert all(r.error is None and len(r.measurements) == 6 for r in report.runs)
    frames = {f.device: f for f in per_frame(report)}
    assert frames["PHONE_B"].key_ms == pytest.approx(2 * frames["PHONE_A"].key_ms)
    assert not any(c[1] == "OTHER" for c in world.calls() if c[:1] == ["-s"])
    for serial in ("PHONE_A", "PHONE_B"):
        assert len(world.pushes(serial)) == 4


def test_device_disappearing_keeps_results(world, export_dir, tool, tmp_path, monkeypatch, capsys):
    world.add_device(SERIAL, disconnect_after=4)
    out_json = tmp_path / "partial.json"
    code, out, err = run_bench_cli(
        monkeypatch, capsys, export_dir, "--benchmark-binary", tool, "--precision", "fp32",
        "--trials", "3", "--cooldown", "0", "--json", out_json,
    )  # fmt: skip
    assert code == 1
    line = err.strip()
    assert "\n" not in line and line.startswith(f"vosx: error: device {SERIAL} disconnected while")
    assert "benchmarking value_encoder (gpu, fp32)" in line and str(out_json) in line
    data = json.loads(out_json.read_text())
    dev = data["devices"][0]
    assert dev["disconnected"] and len(dev["measurements"]) == 4
    assert all(m["result"] for m in dev["measurements"])
    assert dev["thermal"][1]["after"] is None  # the second trial never finished
    assert len(data["per_frame"]) == 1  # trial 0 was complete


def test_parallel_disconnect_of_one_device(world, export_dir, tool):
    world.add_device("PHONE_A")
    world.add_device("PHONE_B", disconnect_after=1)
    report = run_bench(options(export_dir, tool, serials=("PHONE_A", "PHONE_B")))
    a, b = report.runs
    assert a.error is None and len(a.measurements) == 3
    assert b.disconnected and len(b.measurements) == 1
    with pytest.raises(DeviceDisconnected, match="PHONE_B disconnected"):
        report.raise_if_failed()


def test_tracker_not_measured_label(world, export_dir, tool, monkeypatch):
    world.add_device(SERIAL)
    monkeypatch.setitem(sys.modules, "vosx.tracker_runtime.trackers", None)
    report = run_bench(options(export_dir, tool))
    assert report.host_costs.tracker_ms_per_object is None
    assert report.host_costs.driver_ms > 0
    assert "tracker not measured" in report.host_costs.notes[0]
    frame = per_frame(report)[0]
    assert frame.tracker_ms is None
    assert frame.frame_ms == pytest.approx(frame.graphs_ms + report.host_costs.driver_ms)
    assert to_json_dict(report)["notes"] == list(report.host_costs.notes)
    from rich.console import Console

    console = Console(record=True, width=200)
    render(report, console)
    assert "not measured" in console.export_text()


# ---- TensorFlow's and LiteRT's benchmark_model --------------------------------------------


def test_litert_tool_gets_its_own_flags(world, export_dir, tmp_path):
    world.add_device(SERIAL)
    litert = world.write_tool(tmp_path / "benchmark_model", LITERT_TOOL)
    opts = options(export_dir, litert, delegates=("gpu", "cpu"), precisions=("fp32", "fp16"))
    report = run_bench(opts)
    run = report.runs[0]
    assert run.error is None and run.tool == "litert" and len(run.measurements) == 12
    assert all(m.tool == "litert" and m.result.source == "litert" for m in run.measurements)
    helps = [c for c in world.shell_commands() if c.split()[1:2] == ["--help"]]
    assert helps == [f"{run.run_dir}/benchmark_model --help 2>&1; echo __VOSX_RC__=$?"]
    runs = [c for c in world.shell_commands() if "--graph=" in c]
    gpu = "--use_gpu=true --use_cpu=false --require_full_delegation=true --allow_fp16="
    for c in runs:
        fp32 = "_float32.tflite" in c
        if "--use_gpu" in c:
            assert gpu + ("false" if fp32 else "true") in c
        assert "gpu_precision_loss_allowed" not in c and "gpu_backend" not in c
    assert sum("--use_gpu" in c for c in runs) == 6
    rows = {(r.graph, r.delegate, r.precision): r for r in summarize(report)}
    assert rows["decoder", "gpu", "fp16"].delegation == "full"  # GPU only, fully delegated
    assert rows["decoder", "cpu", "fp32"].delegation is None
    assert rows["key_encoder", "gpu", "fp32"].steady_ms == pytest.approx(6.0, abs=0.006)
    assert to_json_dict(report)["devices"][0]["benchmark_tool"] == "litert"
    from rich.console import Console

    console = Console(record=True, width=250)
    render(report, console)
    assert "LiteRT benchmark_model" in console.export_text()


def test_litert_gpu_refusal_is_recorded(world, export_dir, tmp_path):
    world.add_device(SERIAL)
    world.state["benchmark"]["fail"] = [{"graph": "decoder", "delegate": "gpu"}]
    world.save()
    litert = world.write_tool(tmp_path / "benchmark_model", LITERT_TOOL)
    report = run_bench(options(export_dir, litert))
    failed = [m for m in report.runs[0].measurements if m.error]
    assert [m.graph for m in failed] == ["decoder"]
    assert failed[0].error.startswith(
        "exit 1: benchmark_model failed: Failed to compile model.; output ends: "
    )


def test_nnapi_refused_for_litert(world, export_dir, tmp_path, monkeypatch, capsys):
    world.add_device(SERIAL)
    litert = world.write_tool(tmp_path / "benchmark_model", LITERT_TOOL)
    code, _, err = run_bench_cli(
        monkeypatch, capsys, export_dir, "--benchmark-binary", litert, "--delegate", "nnapi",
        "--trials", "1", "--cooldown", "0",
    )  # fmt: skip
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1
    assert "--delegate nnapi: the device's benchmark_model is LiteRT's CompiledModel tool" in err
    assert not [c for c in world.shell_commands() if "--graph=" in c]  # nothing ran


def test_tensorflow_tool_detected_and_unconsumed_flags_fail(
    world, export_dir, tool, tmp_path, monkeypatch, capsys
):
    world.add_device(SERIAL)
    report = run_bench(options(export_dir, tool))
    assert report.runs[0].tool == "tensorflow"
    assert all(m.tool == "tensorflow" and m.result for m in report.runs[0].measurements)
    # a build whose --help lists a flag it then ignores: every run is an error naming it
    world.state["benchmark"]["unconsumed"] = ["gpu_precision_loss_allowed"]
    world.save()
    out_json = tmp_path / "b.json"
    code, _, err = run_bench_cli(
        monkeypatch, capsys, export_dir, "--benchmark-binary", tool, "--precision", "fp32",
        "--trials", "1", "--cooldown", "0", "--json", out_json,
    )  # fmt: skip
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert (
        "every benchmark run failed; the first: exit 0: benchmark_model ignored flags it does not "
        "know (--gpu_precision_loss_allowed=false)" in err
    )
    data = json.loads(out_json.read_text())
    assert data["devices"][0]["benchmark_tool"] == "tensorflow"
    assert all("--gpu_precision_loss_allowed" in r["error"] for r in data["summary"])
