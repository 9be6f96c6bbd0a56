"""One error path and input validation: every failure is one ``vosx: error:`` line and exit 1.

Covers usage errors, control characters in paths, Ctrl-C, missing optional extras (core install),
checkpoint configs and unsafe or non-regular checkpoint files, ``--size`` bounds, Pillow's
decompression-bomb limit, implausible masks, and ``train-tracker`` with its own defaults.
"""

import io
import os
import pickle
import struct
import subprocess
import sys
import tomllib
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from vosx.errors import CheckpointError, ConfigError, InputDataError
from vosx.tracker_runtime import io as vio
from vosx.tracker_runtime.overlay import OverlayWriter

ROOT = Path(__file__).resolve().parents[1]


def one_line(capsys) -> str:
    """The single stderr line of a failed command (fails when there are more)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("vosx: error: "), err
    return err[0]


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width x height`` (a decompression bomb; a few bytes long)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def jpeg_claiming(path: Path, width: int, height: int) -> Path:
    """A real 16x16 JPEG whose SOF0 header is patched to declare ``width x height``."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 120, 30)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


# ---------------------------------------------------------------- one error path


@pytest.mark.parametrize(
    "args, expected",
    [
        (["info", "--bogus"], "vosx info: No such option: --bogus; see `vosx info --help`"),
        (["info"], "vosx info: Missing argument"),
        (["init", "m.pth", "--seed", "abc"], "vosx init: Invalid value for '--seed'"),
        (["segment", "f", "--mask", "m.png", "-o", "o", "--tracker", "zz"], "'zz'"),
        (["train-tracker", "o.npz", "--synthetic", "-1"], "--synthetic"),
        (["nonsense"], "No such command 'nonsense'"),
    ],
)
def test_usage_errors_are_one_line_exit_1(monkeypatch, capsys, tmp_path, args, expected):
    monkeypatch.chdir(tmp_path)
    assert run_cli(monkeypatch, *args) == 1
    assert expected in one_line(capsys)
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("args", [["--help"], ["info", "--help"], []])
def test_help_still_exits_0(monkeypatch, capsys, args):
    assert run_cli(monkeypatch, *args) == 0
    out = capsys.readouterr()
    assert "Usage" in out.out and out.err == ""


def test_control_characters_in_a_path_are_escaped(monkeypatch, capsys, tmp_path):
    bad = f"{tmp_path}/a\nb\x1b[31m\x7f.pth"
    assert run_cli(monkeypatch, "info", bad) == 1
    line = one_line(capsys)
    assert "a\\nb\\x1b[31m\\x7f.pth: no such file" in line
    assert "\x1b" not in line and "\x7f" not in line


def test_nul_byte_in_a_path_is_one_line_never_raw(monkeypatch, capsys, tmp_path):
    assert run_cli(monkeypatch, "info", f"{tmp_path}/a\0b.pth") == 1
    line = one_line(capsys)
    assert "null byte" in line and "\0" not in line
    from vosx.entry import _printable

    assert _printable("x\0y\tz") == "x\\x00y\\tz"  # any message is escaped the same way


def test_undecodable_path_bytes_are_escaped(monkeypatch, capsys, tmp_path):
    bad = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.pth")  # latin-1 byte: surrogate
    assert run_cli(monkeypatch, "info", bad) == 1
    assert "caf\\xe9.pth" in one_line(capsys)


def test_ctrl_c_is_clean(monkeypatch, capsys):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("vosx.doctor.run_checks", interrupted)
    assert run_cli(monkeypatch, "doctor") == 130
    out = capsys.readouterr()
    assert out.err.strip() == "vosx: interrupted" and "Traceback" not in out.err


def test_sigterm_exit_is_named(monkeypatch, capsys):
    def terminated(*a, **k):
        raise SystemExit(143)  # what vosx.files raises on SIGTERM while output is pending

    monkeypatch.setattr("vosx.doctor.run_checks", terminated)
    assert run_cli(monkeypatch, "doctor") == 143
    assert capsys.readouterr().err.strip() == "vosx: terminated"


def test_os_error_of_a_command_is_one_line(monkeypatch, capsys):
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", "/sys/x")

    monkeypatch.setattr("vosx.doctor.run_checks", denied)
    assert run_cli(monkeypatch, "doctor") == 1
    line = one_line(capsys)
    assert "/sys/x: Permission denied" in line and "permissions" in line


# ---------------------------------------------------------------- missing extras


def _run_core_install(args: list[str], blocked: list[str], cwd: Path):
    """Run ``vosx ARGS`` in a fresh interpreter where ``blocked`` modules cannot be imported."""
    code = (
        "import sys\n"
        f"sys.modules.update(dict.fromkeys({blocked!r}))\n"
        f"sys.argv = ['vosx', *{args!r}]\n"
        "from vosx.cli import main\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "VOSX_RAISE_ERRORS"}
    env["PYTHONPATH"] = str(ROOT)  # tests may run from a checkout that is not installed
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True
    )


EXPORT_STACK = ["torch", "onnx", "onnxruntime", "onnx2tf", "tensorflow"]


def test_export_without_torch_names_the_export_extra(tmp_path):
    (tmp_path / "m.pth").write_bytes(b"weights")
    r = _run_core_install(["export", "m.pth", "-o", "out"], EXPORT_STACK, tmp_path)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(err) == 1, r.stderr
    assert "`vosx export` needs the Python package torch" in err[0]
    assert "pip install 'vosx[export]'" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pth"]


def test_missing_module_in_process_is_one_line(monkeypatch, capsys):
    def no_torch(*a, **k):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr("vosx.doctor.run_checks", no_torch)
    assert run_cli(monkeypatch, "doctor") == 1
    assert "pip install 'vosx[export]'" in one_line(capsys)


def test_unrelated_missing_module_is_not_hidden(monkeypatch):
    def broken(*a, **k):
        raise ModuleNotFoundError("No module named 'vosx.nothing'", name="vosx.nothing")

    monkeypatch.setattr("vosx.doctor.run_checks", broken)
    monkeypatch.delenv("VOSX_RAISE_ERRORS", raising=False)
    monkeypatch.setattr(sys, "argv", ["vosx", "doctor"])
    from vosx.cli import main

    with pytest.raises(ModuleNotFoundError, match="vosx.nothing"):
        main()  # a bug in vosx itself keeps its traceback


def test_video_without_imageio_ffmpeg_names_the_video_extra(monkeypatch, capsys, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 32)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails: the core install
    with pytest.raises(InputDataError, match=r"pip install 'vosx\[video\]'"):
        vio.Frames(video)
    mask = tmp_path / "m.png"
    vio.write_labels(mask, np.ones((4, 4), np.uint8))
    assert run_cli(monkeypatch, "segment", video, "--mask", mask, "-o", tmp_path / "o") == 1
    assert "pip install 'vosx[video]'" in one_line(capsys)


def test_doctor_fixes_name_the_extras(monkeypatch):
    from importlib import metadata

    from vosx import doctor

    real = metadata.version

    def version(name):
        if name in ("torch", "imageio-ffmpeg"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(doctor.metadata, "version", version)
    checks = {c.what: c for c in doctor.run_checks()}
    assert not checks["torch"].ok and "'vosx[export]'" in checks["torch"].fix
    assert not checks["imageio-ffmpeg"].ok and "'vosx[video]'" in checks["imageio-ffmpeg"].fix
    monkeypatch.setattr(doctor, "pinned_versions", lambda: {})  # an installed wheel: no pins
    checks = {c.what: c for c in doctor.run_checks()}
    assert checks["torch"].fix == "pip install 'vosx[export]'"


def test_video_is_its_own_extra_and_all_installs_everything():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    extras = project["optional-dependencies"]
    assert "imageio-ffmpeg" not in core and "torch" not in core
    assert any(r.startswith("imageio-ffmpeg") for r in extras["video"])
    all_extras = extras["all"][0].split("[")[1].rstrip("]").split(",")
    assert set(extras) - {"all"} <= set(all_extras)
    assert "-e '.[all]'" in (ROOT / "Makefile").read_text()
    assert "make test" in (ROOT / ".ci" / "run").read_text()


# ---------------------------------------------------------------- train-tracker defaults


def test_train_tracker_runs_with_its_own_defaults(monkeypatch, capsys, tmp_path):
    from vosx.training import tracker_train

    seen = {}

    def fake(out, data, config, progress=None, force=False):
        seen["data"], seen["config"] = data, config
        return SimpleNamespace(
            train_loss=1.0, val_loss=1.0, cv_val_loss=1.0, num_train=1, num_val=1
        )

    monkeypatch.setattr(tracker_train, "train_tracker", fake)
    assert run_cli(monkeypatch, "train-tracker", tmp_path / "pt.npz", "--steps", "1") == 0
    assert seen["data"].synthetic_clips == 200 and seen["config"].steps == 1
    assert run_cli(monkeypatch, "train-tracker", tmp_path / "b.npz", "--data", tmp_path) == 0
    assert seen["data"].synthetic_clips == 0  # real data only unless --synthetic N


def test_train_tracker_defaults_really_train(monkeypatch, capsys, tmp_path):
    out = tmp_path / "pt.npz"
    args = ["train-tracker", out, "--steps", "1", "--synthetic", "3", "--frames", "5"]
    assert run_cli(monkeypatch, *args, "--size", "32x48") == 0
    assert out.is_file()


@pytest.mark.parametrize("size", ["100000x100000", "8x8", "0x0"])
def test_train_tracker_size_is_bounded(monkeypatch, capsys, tmp_path, size):
    out = tmp_path / "pt.npz"
    assert run_cli(monkeypatch, "train-tracker", out, "--size", size) == 1
    assert "16..4096" in one_line(capsys) and not out.exists()


# ---------------------------------------------------------------- --size


@pytest.mark.parametrize(
    "text, message",
    [
        ("0x0", "must be positive"),
        ("-16x32", "must be positive"),
        ("100000x100000", "at most 4096"),
        ("4112x16", "at most 4096"),
        ("480x850", "multiples of 16"),
    ],
)
def test_size_bounds(text, message):
    from vosx.export.options import parse_size

    with pytest.raises(ConfigError, match=message):
        parse_size(text)


def test_size_limits_accept_the_extremes():
    from vosx.export.options import MAX_SIDE, parse_size

    assert MAX_SIDE == 4096
    assert parse_size("4096x16") == (4096, 16)


def test_export_size_zero_is_one_line(monkeypatch, capsys, tmp_path):
    assert run_cli(monkeypatch, "export", "--size", "0x0", "-o", tmp_path / "o") == 1
    assert "must be positive" in one_line(capsys)


# ---------------------------------------------------------------- checkpoint configs


def _save(path: Path, payload) -> Path:
    import torch

    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    "config, message",
    [
        ({"key_dim": -8}, "key_dim = -8: out of range, must be an integer in 1..1024"),
        ({"key_dim": "abc"}, "key_dim = 'abc': must be an integer in 1..1024"),
        ({"key_dim": 1e9}, "key_dim = 1000000000.0: must be an integer"),
        ({"value_dim": 10**9}, "value_dim = 1000000000: out of range"),
        ({"f16_dim": True}, "f16_dim = True: must be an integer"),
        ({"fusion_dim": None}, "fusion_dim = None: must be an integer"),
        ({"width_mult": -1.0}, "width_mult = -1.0: out of range, must be in 0.1..4.0"),
        ({"width_mult": float("inf")}, "width_mult = inf: must be a number"),
        ({"width_mult": "1"}, "width_mult = '1': must be a number"),
        ({"width_mult": 10**400}, r"width_mult = 1000.*\.\.\.: out of range"),
        ({"key_dim": 10**400}, r"key_dim = 1000.*\.\.\.: out of range"),
        ({"decoder_dims": [16, 16]}, r"decoder_dims = \[16, 16\]: must be a list of 3"),
        ({"decoder_dims": [16, -1, 16]}, r"decoder_dims\[1\] = -1: out of range"),
        ({"decoder_dims": "abc"}, "decoder_dims = 'abc': must be a list of 3"),
        ("hello", r"the config is a str \('hello'\), not a dict"),
        ([1, 2], r"the config is a list \(\[1, 2\]\), not a dict"),
        ({"bogus": 1}, "unknown config keys: 'bogus'; known keys:"),
    ],
)
def test_bad_configs_refused_before_any_tensor(monkeypatch, tmp_path, config, message):
    from vosx.model import checkpoint

    def no_build(*a, **k):
        raise AssertionError("build_model reached with a bad config")

    monkeypatch.setattr(checkpoint, "build_model", no_build)
    path = _save(tmp_path / "bad.pth", {"config": config, "model": {}})
    with pytest.raises(CheckpointError, match=message) as e:
        checkpoint.load_checkpoint(path)
    assert str(e.value).startswith(f"{path}: bad model config in checkpoint: ")


def test_bad_config_one_line_at_the_cli(monkeypatch, capsys, tmp_path):
    path = _save(tmp_path / "bad.pth", {"config": {"key_dim": -8}, "model": {}})
    assert run_cli(monkeypatch, "info", path) == 1
    line = one_line(capsys)
    assert str(path) in line and "key_dim = -8" in line and "1..1024" in line


def test_config_bounds_accept_the_smallest_model():
    import torch

    from vosx.model import ModelConfig, build_model

    cfg = ModelConfig(
        width_mult=0.1, key_dim=1, value_dim=1, f16_dim=1, decoder_dims=[1, 1, 1], fusion_dim=1
    )
    assert cfg.decoder_dims == (1, 1, 1)
    model = build_model(cfg).eval()
    assert sum(p.numel() for p in model.parameters()) > 0
    assert isinstance(next(model.parameters()), torch.Tensor)
    with pytest.raises(ConfigError, match="key_dim = 0"):
        ModelConfig(key_dim=0)  # direct construction is checked too


def test_non_tensor_state_dict_entry_refused(tmp_path):
    from vosx.model.checkpoint import read_checkpoint

    path = _save(tmp_path / "odd.pth", {"config": {}, "model": {"decoder.w": 3}})
    with pytest.raises(CheckpointError, match="'decoder.w' is a int, not a tensor"):
        read_checkpoint(path)


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_malicious_pickle_is_refused_not_truncated(tmp_path, protocol):
    from vosx.model.checkpoint import read_checkpoint

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"config": {}, "model": _Payload(marker)}, protocol=protocol))
    with pytest.raises(CheckpointError, match="refused to load") as e:
        read_checkpoint(path)
    assert "truncated" not in str(e.value)
    assert not marker.exists()


def test_garbage_is_still_unreadable_not_refused(tmp_path):
    from vosx.model.checkpoint import read_checkpoint

    path = tmp_path / "g.pth"
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(path)


@pytest.mark.timeout(60)
def test_fifo_checkpoint_refused_without_hanging(monkeypatch, capsys, tmp_path):
    fifo = tmp_path / "model.pth"
    os.mkfifo(fifo)
    assert run_cli(monkeypatch, "info", fifo) == 1  # would block forever on open()
    assert "not a regular file" in one_line(capsys)


@pytest.mark.timeout(60)
def test_fifo_mask_and_frame_refused(tmp_path):
    fifo = tmp_path / "m.png"
    os.mkfifo(fifo)
    with pytest.raises(InputDataError, match="not a regular file"):
        vio.read_labels(fifo)
    with pytest.raises(InputDataError, match="not a regular file"):
        vio.read_image(fifo)


# ---------------------------------------------------------------- decompression bombs


def test_pixel_limit_is_set_in_one_place():
    assert vio.MAX_IMAGE_PIXELS == 64_000_000
    assert Image.MAX_IMAGE_PIXELS == vio.MAX_IMAGE_PIXELS


@pytest.fixture(params=["png-error", "png-warning", "jpeg"])
def bomb(request, tmp_path) -> Path:
    """Over the limit: far over (Pillow's error), just over (its warning), and a JPEG."""
    if request.param == "png-error":
        return png_header(tmp_path / "bomb.png", 100_000, 100_000)
    if request.param == "png-warning":
        return png_header(tmp_path / "bomb.png", 9000, 9000)  # 81 MP: between 1x and 2x
    return jpeg_claiming(tmp_path / "bomb.jpg", 60_000, 60_000)


LIMIT = "more than 64,000,000 pixels, the limit"


def test_bomb_frames_and_masks(bomb):
    with pytest.raises(InputDataError, match=LIMIT) as e:
        vio.read_image(bomb)
    assert str(e.value).startswith(f"{bomb}: the image")
    with pytest.raises(InputDataError, match=LIMIT):
        vio.Frames(bomb.parent)
    with pytest.raises(InputDataError, match=f"{bomb}: the mask has {LIMIT}"):
        vio.read_first_mask(bomb, (16, 16))


def test_bomb_dataset_frames_and_masks(bomb):
    from vosx.training.folders import read_mask

    with pytest.raises(InputDataError, match=f"the frame has {LIMIT}"):
        vio.read_image(bomb, "frame")  # how training reads its frames
    with pytest.raises(InputDataError, match=f"the mask has {LIMIT}"):
        read_mask(bomb)


def test_bomb_calib_image(tmp_path):
    from vosx.export.prepare import sample_clips

    calib = tmp_path / "calib"
    frames, masks = calib / "JPEGImages" / "v", calib / "Annotations" / "v"
    frames.mkdir(parents=True)
    masks.mkdir(parents=True)
    png_header(frames / "00000.png", 100_000, 100_000)
    for i in (1, 2):  # 3 annotated frames: the least a calibration video may have
        Image.new("RGB", (8, 8)).save(frames / f"{i:05d}.png")
    for i in range(3):
        Image.new("L", (8, 8)).save(masks / f"{i:05d}.png")
    with pytest.raises(ConfigError, match=f"--calib {frames / '00000.png'}: .*{LIMIT}"):
        sample_clips((32, 32), calib, calibrated=True)


def test_bomb_frame_at_the_cli(monkeypatch, capsys, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    bomb = png_header(frames / "00000.png", 100_000, 100_000)
    mask = tmp_path / "m.png"
    vio.write_labels(mask, np.ones((4, 4), np.uint8))
    assert run_cli(monkeypatch, "segment", frames, "--mask", mask, "-o", tmp_path / "o") == 1
    line = one_line(capsys)
    assert str(bomb) in line and LIMIT in line and not (tmp_path / "o").exists()


def test_video_frames_over_the_limit(monkeypatch, tmp_path):
    video = tmp_path / "v.mp4"
    with OverlayWriter(video, fps=5) as w:
        for _ in range(2):
            w.add(np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16), np.uint8))
    monkeypatch.setattr(vio, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(InputDataError, match="frames of 16x16 have more than 100 pixels"):
        vio.Frames(video)


# ---------------------------------------------------------------- masks and videos


def test_greyscale_photo_as_mask_is_refused(tmp_path):
    photo = (np.arange(40 * 60).reshape(40, 60) % 210 + 30).astype(np.uint8)  # 210 grey levels
    path = tmp_path / "photo.png"
    Image.fromarray(photo, mode="L").save(path)
    with pytest.raises(InputDataError) as e:
        vio.read_first_mask(path, (40, 60))
    msg = str(e.value)
    assert msg.startswith(f"{path}: the mask has 210 object labels (30..239)")
    assert "looks like a photo" in msg and "--max-objects" in msg


def test_too_many_objects_refused_unless_raised(tmp_path):
    labels = np.repeat(np.arange(1, 61, dtype=np.uint8), 4).reshape(16, 15)  # 60 objects
    path = tmp_path / "many.png"
    vio.write_labels(path, labels)
    with pytest.raises(InputDataError, match="60 object labels .*over the limit of 50"):
        vio.read_first_mask(path, (16, 15))
    np.testing.assert_array_equal(vio.read_first_mask(path, (16, 15), max_objects=60), labels)


def test_photo_mask_at_the_cli(monkeypatch, capsys, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(frames / "00000.jpg")
    photo = (np.arange(40 * 60).reshape(40, 60) % 210 + 30).astype(np.uint8)
    mask = tmp_path / "photo.png"
    Image.fromarray(photo, mode="L").save(mask)
    out = tmp_path / "o"
    assert run_cli(monkeypatch, "segment", frames, "--mask", mask, "-o", out) == 1
    assert "looks like a photo" in one_line(capsys) and not out.exists()
    assert run_cli(monkeypatch, "segment", frames, "--mask", mask, "-o", out, "--max-objects", "0")
    assert "--max-objects" in one_line(capsys)


def test_missing_video_is_no_such_video_file(monkeypatch, capsys, tmp_path):
    missing = tmp_path / "clip.mp4"
    with pytest.raises(InputDataError, match="no such video file"):
        vio.Frames(missing)
    mask = tmp_path / "m.png"
    vio.write_labels(mask, np.ones((4, 4), np.uint8))
    assert run_cli(monkeypatch, "segment", missing, "--mask", mask, "-o", tmp_path / "o") == 1
    line = one_line(capsys)
    assert f"{missing}: no such video file" in line and "folder" in line
