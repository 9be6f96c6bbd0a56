"""``vosx bench`` with an untrusted export folder and bad options, over the fake adb device.

Device-side names come from the graph and precision names, never from the manifest's file names,
so a graph file named ``benchmark_model`` cannot replace the checked binary; files outside the
export folder (symlinks, ``..``) are never pushed; ``--objects`` is bounded; a ``.tflite`` that
LiteRT cannot load fails ``--device host`` with one line; ``--json`` / ``--plot`` follow the
output policy (no folder, never a file of the export, no overwrite without ``--force``).
"""

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fakes.tools import EM_X86_64, fake_elf, tool_of
from tests.fakes.world import FakeAdbWorld, make_export
from vosx.android_bench.bench import BenchOptions, run_bench
from vosx.android_bench.phone import device_graph_name
from vosx.android_bench.tools import TOOL_NAMES
from vosx.errors import ConfigError, ManifestError
from vosx.export_folder import sha256_file
from vosx.limits import MAX_OBJECTS
from vosx.manifest import GRAPH_NAMES
from vosx.precision import PRECISION_NAMES

SERIAL = "R5CT10ABCDE"


@pytest.fixture
def world(tmp_path, monkeypatch) -> FakeAdbWorld:
    w = FakeAdbWorld(tmp_path, monkeypatch)
    w.add_device(SERIAL)
    return w


@pytest.fixture
def export_dir(tmp_path) -> Path:
    return make_export(tmp_path / "export")


@pytest.fixture
def tool(world, tmp_path) -> Path:
    return world.write_tool(tmp_path / "checked_benchmark_model", "benchmark_model")


def options(export_dir, tool, **kw) -> BenchOptions:
    base = dict(
        export_dir=export_dir,
        benchmark_binary=tool,
        precisions=("fp32",),
        trials=1,
        runs=5,
        warmup=1,
        cooldown_s=0.0,
    )
    return BenchOptions(**{**base, **kw})


def bench_cli(monkeypatch, capsys, *args) -> tuple[int, list[str]]:
    """``vosx bench ARGS``: (exit code, stderr lines)."""
    monkeypatch.setenv("COLUMNS", "220")
    code = run_cli(monkeypatch, "bench", *args)
    return code, capsys.readouterr().err.strip().splitlines()


def rename_graph_file(export_dir: Path, graph: str, precision: str, new_rel: str) -> None:
    """Move one graph file to ``new_rel`` (inside the folder) and point the manifest at it."""
    path = export_dir / "manifest.json"
    data = json.loads(path.read_text())
    entry = data["graphs"][graph]["files"][precision]
    target = export_dir / new_rel
    target.parent.mkdir(parents=True, exist_ok=True)
    (export_dir / entry["path"]).rename(target)
    entry["path"] = new_rel
    path.write_text(json.dumps(data))


# ---------------------------------------------------------------- device names


def test_device_names_come_from_graph_names():
    names = {device_graph_name(g, p) for g in GRAPH_NAMES for p in PRECISION_NAMES}
    assert "decoder_float32.tflite" in names and len(names) == 9
    assert all(n.endswith(".tflite") for n in names) and not names & set(TOOL_NAMES)
    with pytest.raises(ValueError):
        device_graph_name("benchmark_model", "fp32")


@pytest.mark.parametrize("payload", ["x86 elf", "script", "aarch64 inference_diff"])
def test_graph_file_named_benchmark_model_cannot_replace_the_binary(
    world, export_dir, tool, payload
):
    """The issue's reproducer: a graph whose file is named ``benchmark_model``."""
    data = {
        "x86 elf": fake_elf("benchmark_model", EM_X86_64),
        "script": b"#!/system/bin/sh\necho pwned\n",
        "aarch64 inference_diff": fake_elf("inference_diff"),
    }[payload]
    (export_dir / "decoder_float32.tflite").unlink()
    (export_dir / "benchmark_model").write_bytes(data)
    path = export_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["graphs"]["decoder"]["files"]["fp32"] = {
        "path": "benchmark_model",
        "sha256": sha256_file(export_dir / "benchmark_model"),
        "bytes": len(data),
    }
    path.write_text(json.dumps(manifest))
    report = run_bench(options(export_dir, tool, keep=True))
    run = report.runs[0]
    assert run.error is None
    binary = world.device_path(SERIAL, f"{run.run_dir}/benchmark_model")
    assert binary.read_bytes() == tool.read_bytes() and tool_of(binary.read_bytes())
    graph = world.device_path(SERIAL, f"{run.run_dir}/decoder_float32.tflite")
    assert graph.read_bytes() == data  # the export's file, pushed under the graph's name only
    assert sorted(Path(p).name for p in run.pushed) == [
        "benchmark_model",
        "decoder_float32.tflite",
        "key_encoder_float32.tflite",
        "value_encoder_float32.tflite",
    ]
    assert all(m.result is not None for m in run.measurements), run.measurements
    assert [c for c in world.shell_commands() if "chmod" in c] == [
        f"chmod 755 {run.run_dir}/benchmark_model 2>&1; echo __VOSX_RC__=$?"
    ]


def test_graph_file_named_inference_diff_cannot_replace_it(world, export_dir, tool, tmp_path):
    diff_tool = world.write_tool(tmp_path / "checked_inference_diff", "inference_diff")
    rename_graph_file(export_dir, "value_encoder", "fp32", "inference_diff")
    report = run_bench(
        options(export_dir, tool, check_outputs=True, inference_diff_binary=diff_tool, keep=True)
    )
    run = report.runs[0]
    assert run.error is None
    remote = world.device_path(SERIAL, f"{run.run_dir}/inference_diff")
    assert remote.read_bytes() == diff_tool.read_bytes()
    assert world.device_path(SERIAL, f"{run.run_dir}/value_encoder_float32.tflite").is_file()


def test_odd_file_names_are_pushed_under_graph_names(world, export_dir, tool):
    rename_graph_file(export_dir, "decoder", "fp32", "models/x;rm -rf.tflite")
    rename_graph_file(export_dir, "key_encoder", "fp32", "decoder_float32.tflite.bak")
    run = run_bench(options(export_dir, tool)).runs[0]
    assert run.error is None and all(m.result for m in run.measurements)
    assert sorted(Path(p).name for p in run.pushed) == [
        "benchmark_model",
        "decoder_float32.tflite",
        "key_encoder_float32.tflite",
        "value_encoder_float32.tflite",
    ]


# ---------------------------------------------------------------- files outside the folder


def test_symlinked_host_file_is_never_pushed(world, export_dir, tool, tmp_path):
    """A graph file symlinked to a host file, with that file's sha256 in the manifest."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"host secret\n")
    (export_dir / "decoder_float32.tflite").unlink()
    (export_dir / "decoder_float32.tflite").symlink_to(secret)
    path = export_dir / "manifest.json"
    data = json.loads(path.read_text())
    data["graphs"]["decoder"]["files"]["fp32"]["sha256"] = sha256_file(secret)
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="decoder_float32.tflite: is a symbolic link"):
        run_bench(options(export_dir, tool))
    assert world.pushes() == [] and world.calls() == []  # refused before adb was asked anything


@pytest.mark.parametrize("rel", ["../outside.tflite", "/etc/passwd"])
def test_escaping_paths_are_refused_before_adb(world, export_dir, tool, tmp_path, rel, capsys):
    (tmp_path / "outside.tflite").write_bytes(b"outside")
    path = export_dir / "manifest.json"
    data = json.loads(path.read_text())
    data["graphs"]["decoder"]["files"]["fp32"]["path"] = rel
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=f"graphs.decoder.files.fp32.path '{rel}'"):
        run_bench(options(export_dir, tool))
    assert world.calls() == []


# ---------------------------------------------------------------- options


@pytest.mark.parametrize("device", ["adb", "host"])
def test_objects_is_bounded(world, export_dir, tool, monkeypatch, capsys, device):
    code, err = bench_cli(
        monkeypatch, capsys, export_dir, "--device", device, "--benchmark-binary", tool,
        "--objects", "300",
    )  # fmt: skip
    assert code == 1 and len(err) == 1, err
    assert err[0] == (
        f"vosx: error: --objects 300: must be 1..{MAX_OBJECTS} (label maps are uint8); "
        "give a smaller K"
    )
    assert world.calls() == []


def test_objects_at_the_bound_works(world, export_dir, tool):
    report = run_bench(options(export_dir, tool, objects=MAX_OBJECTS))
    assert report.runs[0].error is None and report.host_costs.objects == MAX_OBJECTS
    with pytest.raises(ConfigError, match="--objects 256: must be 1..255"):
        run_bench(options(export_dir, tool, objects=MAX_OBJECTS + 1))


def test_unloadable_tflite_on_host_exits_1_with_one_line(export_dir, tmp_path, monkeypatch, capsys):
    """The placeholder .tflite files of the fake export are not models LiteRT can load."""
    out = tmp_path / "host.json"
    code, err = bench_cli(
        monkeypatch, capsys, export_dir, "--device", "host", "--runs", "1", "--warmup", "0",
        "--trials", "1", "--json", out,
    )  # fmt: skip
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith(f"vosx: error: {export_dir / 'key_encoder_float32.tflite'}: LiteRT")
    assert "cannot load this model" in err[0] and err[0].endswith("re-run `vosx export`")
    assert not out.exists()


def test_json_folder_is_one_line(world, export_dir, tool, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "reports"
    folder.mkdir()
    code, err = bench_cli(
        monkeypatch, capsys, export_dir, "--benchmark-binary", tool, "--json", folder
    )
    assert code == 1 and len(err) == 1, err
    assert "--json" in err[0] and "is a folder; give a file path such as" in err[0]
    assert world.calls() == [] and list(folder.iterdir()) == []  # refused before any work


@pytest.mark.parametrize(
    "option, name", [("--json", "manifest.json"), ("--plot", "decoder_float32.tflite")]
)
def test_outputs_never_replace_export_files(
    world, export_dir, tool, monkeypatch, capsys, option, name
):
    before = (export_dir / name).read_bytes()
    code, err = bench_cli(
        monkeypatch, capsys, export_dir, "--benchmark-binary", tool, option, export_dir / name,
        "--force",
    )  # fmt: skip
    assert code == 1 and len(err) == 1, err
    assert "--force never replaces" in err[0]
    assert (export_dir / name).read_bytes() == before and world.calls() == []


def test_existing_json_needs_force(world, export_dir, tool, tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench.json"
    out.write_text("keep me\n")
    args = [export_dir, "--benchmark-binary", tool, "--precision", "fp32", "--trials", "1"]
    args += ["--cooldown", "0", "--runs", "2", "--json", out]
    code, err = bench_cli(monkeypatch, capsys, *args)
    assert code == 1 and len(err) == 1 and "already exists; pass --force" in err[0], err
    assert out.read_text() == "keep me\n"
    code, err = bench_cli(monkeypatch, capsys, *args, "--force")
    assert code in (0, None), err
    assert json.loads(out.read_text())["format"] == "vosx-bench"
