"""Every sound checkpoint exports: `vosx init` (default and --tiny), the bundled checkpoint and a
briefly trained one, fp32 + fp16 + int8, with LiteRT's GPU accelerator (lavapipe) and without a
Vulkan device, at 64x96 (``benchmarks/export_bench.py`` runs the larger sizes). Also: the
README's export examples, ``--strict``, the ``gpu_defect`` gate on a GPU that computes something
else, and the first-use export of ``vosx segment`` (only what segment runs).

Real conversions (onnx2tf, LiteRT, the GPU child): every test here is slow.
"""

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import TINY_SIZE, run_cli
from tests.test_export import _check_report_against_files
from vosx.export import gpu as gpu_checks
from vosx.export import verify
from vosx.manifest import GRAPH_NAMES, load_manifest
from vosx.precision import precision
from vosx.tracker_runtime import accelerator
from vosx.tracker_runtime.accelerator import GpuProbe

README = Path(__file__).resolve().parents[1] / "README.md"
CHECKPOINTS = ("init", "init_tiny", "bundled", "trained")
GPU_GATES = ("gpu_ops", "gpu_defect")


@pytest.fixture(scope="session")
def matrix_ckpts(tmp_path_factory) -> dict[str, Path | None]:
    """The checkpoints of the matrix; None is the bundled one (no argument)."""
    import torch

    from vosx.model import TINY_CONFIG, ModelConfig, build_model, save_checkpoint
    from vosx.training.config import TrainConfig
    from vosx.training.train import train

    folder = tmp_path_factory.mktemp("matrix_ckpts")
    out: dict[str, Path | None] = {"bundled": None}
    for name, config in (("init", ModelConfig()), ("init_tiny", TINY_CONFIG)):
        torch.manual_seed(0)  # as `vosx init` does
        out[name] = save_checkpoint(build_model(config), folder / f"{name}.pth")
    run = folder / "trained"
    config = TrainConfig(  # the default network, briefly trained from scratch
        out_dir=run,
        steps=12,
        static_steps=2,
        batch_size=2,
        lr=1e-3,
        seq_len=3,
        crop=(64, 96),
        val_every=-1,
        checkpoint_every=12,
        threads=2,
    )
    train(config, quiet=True)
    out["trained"] = run / "model.pth"
    return out


def _no_gpu(monkeypatch) -> str:
    reason = "no usable Vulkan device (No adapters found); as root: apt-get install mesa-vulkan"
    monkeypatch.setattr(accelerator, "probe_gpu", lambda: GpuProbe(False, None, reason))
    return reason


def _gpu() -> GpuProbe:
    probe = accelerator.probe_gpu()
    if not probe.available:
        pytest.fail(f"LiteRT's GPU accelerator cannot run here: {probe.reason}")
    return probe


def _warnings(err: str) -> list[str]:
    return [
        line.removeprefix("warning: ") for line in err.splitlines() if line.startswith("warning: ")
    ]


@pytest.mark.slow
@pytest.mark.parametrize("vulkan", ["lavapipe", "absent"])
@pytest.mark.parametrize("which", CHECKPOINTS)
def test_every_sound_checkpoint_exports(which, vulkan, matrix_ckpts, tmp_path, monkeypatch, capsys):
    reason = _no_gpu(monkeypatch) if vulkan == "absent" else None
    probe = _gpu() if vulkan == "lavapipe" else None
    ckpt = matrix_ckpts[which]
    out = tmp_path / "out"
    args = ["export", *([] if ckpt is None else [ckpt]), "-o", out, "--size", "64x96"]
    code = run_cli(monkeypatch, *args, "--precision", "fp32,fp16,int8")
    captured = capsys.readouterr()
    assert code in (None, 0), captured.err[-2000:]
    precisions = ("fp32", "fp16", "int8")
    on_gpu = ("fp16",) if probe is not None else ()
    report = _check_report_against_files(out, precisions, on_gpu)
    assert load_manifest(out).precisions == list(precisions)
    # every gate ran and passed, but the GPU's own without a Vulkan device
    for name, result in report.gates.items():
        if reason is not None and name == "gpu_defect":
            assert result == f"not run: {reason}"
        else:
            assert result == "passed", (name, result)
    findings = {f.check: f for f in report.findings}
    for check in ("fp16_file", "fp16_arithmetic", "int8_file"):
        assert findings[check].verdict in ("within", "beyond"), findings[check]
    if probe is None:
        assert findings["gpu_arithmetic"].verdict == "not run"
        assert reason in findings["gpu_arithmetic"].message
        assert f"GPU check not run: {reason}" in captured.out
    else:
        assert findings["gpu_arithmetic"].verdict in ("within", "beyond")
        assert probe.adapter in findings["gpu_arithmetic"].message
    # one stderr warning line per finding beyond its range, the report's own words
    assert _warnings(captured.err) == report.warnings
    beyond = [f for f in report.findings if f.verdict == "beyond"]
    assert [f.message for f in beyond] == report.warnings
    # a progress line per stage, with its time
    stages = dict(re.findall(r"\] export: (\w+): (.*) \(\d+\.\d s\)$", captured.err, re.M))
    assert list(stages) == ["prepare", "onnx", "convert", "verify", "gpu", "end_to_end", "report"]
    assert stages["gpu"].startswith("GPU check not run") == (probe is None), stages["gpu"]


@pytest.mark.slow
def test_readme_export_examples_run(tmp_path, monkeypatch, capsys):
    """Every command of the README's Export example block, as written, exits 0."""
    _gpu()
    section = README.read_text().split("\n### Export\n", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    commands = [shlex.split(c) for c in commands if c]
    assert commands and all(c[0] == "vosx" for c in commands), commands
    assert any(c[1] == "export" for c in commands)
    monkeypatch.chdir(tmp_path)
    for command in commands:
        code = run_cli(monkeypatch, *command[1:])
        err = capsys.readouterr().err
        assert code in (None, 0), (command, err[-2000:])
    example = README.read_text().split("\n### Export\n", 1)[1].split("\n## ", 1)[0]
    warning = re.search(r"^warning: (.+)$", example, re.M)
    assert warning, "the Export section shows an example warning line"


@pytest.mark.slow
def test_strict_fails_on_a_finding_beyond_its_range(tiny_ckpt, tmp_path, monkeypatch, capsys):
    # An expected range no fp16 file meets: fp16_file is beyond whatever the model. The record
    # is frozen and every stage reads it: its field is replaced for this test only.
    monkeypatch.setitem(precision("fp16").__dict__, "file_bound", 1e-12)
    args = ["export", tiny_ckpt, "--size", "64x96", "--precision", "fp32,fp16", "--no-gpu-check"]
    assert run_cli(monkeypatch, *args, "-o", tmp_path / "lenient") in (None, 0)
    err = capsys.readouterr().err
    warnings = _warnings(err)
    assert len(warnings) == 1 and warnings[0].startswith("fp16 weights move "), err
    assert "(expected <= 1e-10%)" in warnings[0]
    saved = json.loads((tmp_path / "lenient" / "report.json").read_text())
    finding = next(f for f in saved["findings"] if f["check"] == "fp16_file")
    assert finding["verdict"] == "beyond" and finding["message"] == warnings[0]
    assert saved["strict"] is False and saved["tolerances"]["TFLITE_FP16_MAX_REL"] == 1e-12
    assert saved["gates"]["gpu_defect"] == "not run: skipped (--no-gpu-check)"
    assert run_cli(monkeypatch, *args, "-o", tmp_path / "strict", "--strict") == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("vosx: error: --strict: fp16 weights move "), lines
    assert not (tmp_path / "strict").exists()


@pytest.mark.slow
def test_gpu_far_beyond_fp16_is_a_defect(tiny_ckpt, tmp_path, monkeypatch):
    """A GPU result fp16 cannot explain (the decoder's logits off by a third) fails the export,
    naming the file and the ratio; --allow-cpu-ops accepts it."""
    from vosx.errors import ParityError
    from vosx.export.pipeline import ExportOptions, export_all

    _gpu()
    real = gpu_checks.run_gpu_checks

    def wrong_decoder(*args, **kwargs):
        run = real(*args, **kwargs)
        decoder = run.outputs["decoder"][0]
        decoder["logits"] = decoder["logits"] * 1.3 + 0.5
        return run

    monkeypatch.setattr(gpu_checks, "run_gpu_checks", wrong_decoder)
    opts = dict(checkpoint=tiny_ckpt, size=TINY_SIZE, precisions=("fp16",))
    with pytest.raises(
        ParityError, match=r"decoder_float16.tflite: on the GPU .* output logits .*x what fp16"
    ):
        export_all(ExportOptions(out_dir=tmp_path / "strict", **opts))
    assert not (tmp_path / "strict").exists()
    report = export_all(ExportOptions(out_dir=tmp_path / "lenient", allow_cpu_ops=True, **opts))
    assert report.gates["gpu_defect"].startswith("accepted (--allow-cpu-ops): decoder_float16")
    check = report.graphs["decoder"].precisions["fp16"].gpu
    assert check.fp16_ratio > verify.GPU_DEFECT_FACTOR
    for name in ("key_encoder", "value_encoder"):  # the rest of the GPU is as fp16 explains
        assert report.graphs[name].precisions["fp16"].gpu.fp16_ratio <= verify.GPU_DEFECT_FACTOR


@pytest.mark.slow
def test_first_use_segment_exports_only_what_segment_runs(tiny_ckpt, tmp_path, monkeypatch, capsys):
    from tests.test_segment import write_clip
    from vosx.export_folder import sha256_file
    from vosx.tracker_runtime.segment import default_export_dir
    from vosx.training.synthetic import make_clip

    def no_gpu_work(*args, **kwargs):
        raise AssertionError("the first-use export started GPU work")

    monkeypatch.setattr(gpu_checks, "run_gpu_checks", no_gpu_work)
    monkeypatch.setattr(accelerator, "probe_gpu", no_gpu_work)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    clip = make_clip(3, 50, 81, 1, seed=7)  # pads to 64 x 96
    frames_dir, mask = write_clip(tmp_path, clip.frames, clip.masks[0])
    args = ["segment", frames_dir, "--mask", mask, "--checkpoint", tiny_ckpt]
    assert run_cli(monkeypatch, *args, "-o", tmp_path / "a") in (None, 0)
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if line.startswith("vosx: exporting")]
    assert len(said) == 1 and "a full `vosx export` verifies more" in said[0], err
    stages = re.findall(r"\] first-use export: (\w+): .* \(\d+\.\d s\)$", err, re.M)
    assert stages == ["prepare", "onnx", "convert", "verify", "report"], err
    cached = default_export_dir(sha256_file(tiny_ckpt), TINY_SIZE)
    assert sorted(p.name for p in cached.glob("*.tflite")) == sorted(
        f"{g}_float32.tflite" for g in GRAPH_NAMES
    )
    report = _check_report_against_files(cached, ("fp32",), (), scope="segment")
    for name in ("gpu_ops", "gpu_defect"):
        assert report.gates[name].startswith("not run: scope segment"), report.gates
    assert report.gates["onnx_parity"] == report.gates["tflite_fp32"] == "passed"
    assert report.gates["finite"] == "passed"
    assert report.end_to_end == {} and report.end_to_end_gpu == {}
    assert len(list((tmp_path / "a").iterdir())) == 3
    assert run_cli(monkeypatch, *args, "-o", tmp_path / "b") in (None, 0)  # reused
    assert "exporting" not in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [f"{i:05d}.png" for i in range(3)]
