"""The output policy at the command line: no command overwrites or deletes its inputs, an existing
output needs --force, unwritable outputs fail before any work, and SIGTERM / Ctrl-C / a failure
leave no temporary file or folder behind.

Everything runs on tiny inputs: 60 x 90 frames, the tiny checkpoint (``tiny_ckpt``) with the
torch backend, and a stand-in export folder for the refusals (they happen before it is read).
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import make_workspace, one_error_line, run_cli
from tests.fakes import default_sigint
from vosx.tracker_runtime.io import write_labels


def listing(folder: Path) -> list[str]:
    """Every path under ``folder``, hidden ones included, relative and sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture
def ws(tmp_path, tiny_ckpt, monkeypatch) -> Path:
    """A workspace (the current folder) holding every kind of input a command takes."""
    mask = make_workspace(tmp_path, tiny_ckpt)
    write_labels(tmp_path / "frames" / "mask.png", mask)  # a mask stored with its frames
    (tmp_path / "video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")  # never read: refused first
    (tmp_path / "export").mkdir()  # stand-in: every refusal happens before the manifest is read
    (tmp_path / "export" / "manifest.json").write_text('{"format": "vosx-export"}\n')
    (tmp_path / "export" / "key_encoder_float32.tflite").write_bytes(b"TFL3")
    monkeypatch.chdir(tmp_path)
    return tmp_path


SEG = ["segment", "frames", "--mask", "frames/mask.png", "--backend", "torch"]
SEG += ["--checkpoint", "ckpt/model.pth"]
HOST = ["--device", "host"]
CASES = {
    "segment -o FRAMES (mask inside)": (SEG + ["-o", "frames"], "-o frames: is the input frames"),
    "segment -o PARENT": (SEG + ["-o", "."], "-o .: contains the input"),
    "segment -o CKPT_DIR": (SEG + ["-o", "ckpt"], "contains the input ckpt/model.pth"),
    "segment -o MASK": (
        ["segment", "frames", "--mask", "mask.png", "-o", "mask.png"],
        "-o mask.png: is the input mask.png",
    ),
    "segment --overlay VIDEO": (
        ["segment", "video.mp4", "--mask", "mask.png", "-o", "pred2", "--overlay", "video.mp4"],
        "--overlay video.mp4: is the input video.mp4",
    ),
    "segment --overlay MASK_DIR": (
        SEG + ["-o", "p", "--overlay", "frames/00000.png"],
        "must end in .gif or .mp4",
    ),
    "segment --model EXPORT -o EXPORT": (
        ["segment", "frames", "--mask", "mask.png", "--model", "export", "-o", "export"],
        "-o export: is the input export",
    ),
    "eval --json GT_PNG": (
        ["eval", "pred", "gt", "--json", "gt/judo/00000.png"],
        "--json gt/judo/00000.png: already exists inside the input gt",
    ),
    "eval --json PRED_SEQ": (
        ["eval", "pred", "gt", "--json", "pred/judo"],
        "--json pred/judo: already exists inside the input pred",
    ),
    "eval --json PARENT": (
        ["eval", "pred/judo", "gt/judo", "--json", "pred"],
        "--json pred: contains the input pred/judo",
    ),
    "bench --json MANIFEST": (
        ["bench", "export", *HOST, "--json", "export/manifest.json"],
        "--json export/manifest.json: already exists inside the input export",
    ),
    "bench --plot GRAPH": (
        ["bench", "export", *HOST, "--plot", "export/key_encoder_float32.tflite"],
        "already exists inside the input export",
    ),
    "bench --json EXPORT --plot EXPORT": (
        ["bench", "export", *HOST, "--json", "export", "--plot", "export"],
        "--json export: is the input export",
    ),
    "export -o CKPT_DIR": (
        ["export", "ckpt/model.pth", "-o", "ckpt", "--size", "64x96"],
        "ckpt: contains the input ckpt/model.pth",
    ),
    "export -o CKPT": (
        ["export", "ckpt/model.pth", "-o", "ckpt/model.pth", "--size", "64x96"],
        "is the input ckpt/model.pth",
    ),
    "export -o CALIB": (
        ["export", "ckpt/model.pth", "-o", "frames", "--calib", "frames", "--size", "64x96"],
        "frames: is the input frames",
    ),
    "train-tracker OUT=DATA": (
        ["train-tracker", "gt/judo/00000.png", "--data", "gt", "--steps", "1"],
        "gt/judo/00000.png: already exists inside the input gt",
    ),
    "demo -o CKPT_DIR": (
        ["demo", "-o", "ckpt", "--checkpoint", "ckpt/model.pth", "--size", "64x96"],
        "-o ckpt: contains the input ckpt/model.pth",
    ),
    "init CKPT (no force)": (["init", "ckpt/model.pth"], "already exists; pass --force"),
}


@pytest.mark.parametrize(
    "case, force",
    # init reads no input: with --force it is asked to replace the file, so only without
    [(case, force) for case in CASES for force in (False, True) if not (force and "init" in case)],
)
def test_no_command_changes_its_inputs(ws, monkeypatch, capsys, case, force):
    """Every combination of -o / --json / --plot / --overlay (and --force) aimed at a command's
    inputs is one error line, and leaves every input byte for byte as it was."""
    args, message = CASES[case]
    before, names = digests(ws), listing(ws)
    assert run_cli(monkeypatch, *args, *(["--force"] if force else [])) == 1
    line = one_error_line(capsys)
    assert message in line, line
    assert digests(ws) == before and listing(ws) == names  # nothing changed, nothing added


def test_mask_inside_the_frames_folder_is_not_a_frame(ws, monkeypatch, capsys):
    assert run_cli(monkeypatch, *SEG, "-o", "pred2") in (0, None), capsys.readouterr().err
    assert "wrote 3 label PNGs" in capsys.readouterr().out
    assert listing(ws / "pred2") == ["00000.png", "00001.png", "00002.png"]


def test_a_folder_holding_only_the_mask_is_refused(ws, monkeypatch, capsys):
    (ws / "only").mkdir()
    shutil.copy(ws / "mask.png", ws / "only" / "mask.png")
    args = ["segment", "only", "--mask", "only/mask.png", "--backend", "torch", "-o", "p"]
    assert run_cli(monkeypatch, *args) == 1
    assert "holds no image besides the mask" in one_error_line(capsys)


def test_existing_overlay_needs_force(ws, monkeypatch, capsys):
    (ws / "existing.gif").write_bytes(b"GIF89a keep me")
    assert run_cli(monkeypatch, *SEG, "-o", "pred2", "--overlay", "existing.gif") == 1
    line = one_error_line(capsys)
    assert "--overlay existing.gif: already exists; pass --force to replace it" in line
    assert (ws / "existing.gif").read_bytes() == b"GIF89a keep me" and not (ws / "pred2").exists()
    args = [*SEG, "-o", "pred2", "--overlay", "existing.gif", "--force"]
    assert run_cli(monkeypatch, *args) in (0, None), capsys.readouterr().err
    with Image.open(ws / "existing.gif") as im:
        assert im.n_frames == 3
    assert not [n for n in listing(ws) if Path(n).name.startswith(".")]  # no temp left


def test_overlay_inside_the_output_folder_is_refused(ws, monkeypatch, capsys):
    (ws / "pred2").mkdir()
    args = [*SEG, "-o", "pred2", "--overlay", "pred2/o.gif", "--force"]
    assert run_cli(monkeypatch, *args) == 1
    assert "is inside the -o folder pred2, which is replaced as a whole" in one_error_line(capsys)


@pytest.mark.parametrize("force", [False, True])
def test_json_directory_is_refused(ws, monkeypatch, capsys, force):
    (ws / "scores").mkdir()
    args = ["eval", "pred", "gt", "--json", "scores", *(["--force"] if force else [])]
    assert run_cli(monkeypatch, *args) == 1
    line = one_error_line(capsys)
    assert "--json scores: is a folder; give a file path such as scores/scores.json" in line
    assert listing(ws / "scores") == []


def test_eval_json_needs_force_to_replace(ws, monkeypatch, capsys):
    (ws / "s.json").write_text("old")
    assert run_cli(monkeypatch, "eval", "pred", "gt", "--json", "s.json") == 1
    assert "--json s.json: already exists; pass --force" in one_error_line(capsys)
    assert run_cli(monkeypatch, "eval", "pred", "gt", "--json", "s.json", "--force") in (0, None)
    assert '"per_sequence"' in (ws / "s.json").read_text()


def _heavy_work_forbidden(monkeypatch):
    """Make every command's first expensive step fail loudly: outputs must be checked first."""
    import vosx.model
    import vosx.model.checkpoint
    import vosx.tracker_runtime.io
    import vosx.tracker_runtime.metrics

    def forbidden(*args, **kwargs):
        raise AssertionError("heavy work started before the output was checked")

    monkeypatch.setattr(vosx.model.checkpoint, "load_checkpoint", forbidden)
    monkeypatch.setattr(vosx.model, "build_model", forbidden)
    monkeypatch.setattr(vosx.tracker_runtime.io, "Frames", forbidden)
    monkeypatch.setattr(vosx.tracker_runtime.metrics, "evaluate_folders", forbidden)


@pytest.mark.parametrize(
    "target, message",
    [
        ("mask.png/sub", "mask.png is a file, not a folder; choose an output path inside a folder"),
        ("mask.png/a/b", "mask.png is a file, not a folder"),
        ("/sys/vosx-out", "cannot write in /sys (Permission denied); choose an output path in a"),
    ],
)
@pytest.mark.parametrize("command", ["export", "init", "segment", "eval"])
def test_unwritable_output_fails_before_any_work(ws, monkeypatch, capsys, command, target, message):
    _heavy_work_forbidden(monkeypatch)
    args = {
        "export": ["export", "ckpt/model.pth", "--size", "64x96", "-o", target],
        "init": ["init", target],
        "segment": [*SEG, "-o", target],
        "eval": ["eval", "pred", "gt", "--json", target],
    }[command]
    names = listing(ws)
    assert run_cli(monkeypatch, *args) == 1
    line = one_error_line(capsys)
    assert target in line and message in line, line
    assert listing(ws) == names


def test_export_over_a_file_with_force_leaves_it_and_no_old_copy(ws, monkeypatch, capsys):
    (ws / "out").write_text("a file")
    args = ["export", "ckpt/model.pth", "-o", "out", "--size", "64x96", "--force"]
    assert run_cli(monkeypatch, *args) == 1
    assert f"{ws / 'out'}: is a file, not a folder; give a folder path" in one_error_line(capsys)
    assert (ws / "out").read_text() == "a file"
    assert not [n for n in listing(ws) if n.startswith(".out.")]


def test_failed_train_leaves_no_run_folder(ws, monkeypatch, capsys):
    args = ["train", "-o", "runs/r1", "--data", "no_such_data", "--tiny", "--steps", "1"]
    assert run_cli(monkeypatch, *args, "--batch", "1", "--crop", "64x64") == 1
    assert "no_such_data" in one_error_line(capsys)
    assert not (ws / "runs").exists()


# ---------------------------------------------------------------- SIGTERM / Ctrl-C

DRIVER = r"""
import sys, time
from pathlib import Path
marker, hook, args = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]

def hold():
    marker.touch()
    time.sleep(120)

if hook == "segment":  # the first label PNG is in the temporary folder, the overlay pending
    import vosx.tracker_runtime.io as io
    real_write = io.write_labels
    def write_labels(path, labels):
        real_write(path, labels)
        hold()
    io.write_labels = write_labels
elif hook == "export":  # ONNX files in the temporary folder, the converter child running
    import subprocess
    real_run = subprocess.run
    CHILD = (  # stands in for the converter: notes its pid, says it began, sleeps
        "import os, sys, time; from pathlib import Path; "
        "Path(sys.argv[1]).write_text(str(os.getpid())); Path(sys.argv[2]).touch(); "
        "time.sleep(120)"
    )
    def run(command, **kwargs):
        if command[1:3] != ["-m", "vosx.export.convert"]:
            return real_run(command, **kwargs)
        pid = marker.with_name(marker.name + ".pid")
        return real_run([sys.executable, "-c", CHILD, str(pid), str(marker)], **kwargs)
    subprocess.run = run
elif hook == "eval":  # half of the JSON in its temporary file
    real_bytes = Path.write_bytes
    def write_bytes(self, data):
        if ".tmp-" in self.name:
            real_bytes(self, data[:10])
            hold()
        return real_bytes(self, data)
    Path.write_bytes = write_bytes
sys.argv = ["vosx", *args]
from vosx.cli import main
main()
"""


def signal_cli(ws: Path, hook: str, args: list, sig: int) -> subprocess.CompletedProcess:
    """Run ``vosx ARGS`` with a slow step, send ``sig`` once it has begun, wait for the exit."""
    marker = ws.parent / f"{ws.name}.started"
    (ws / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "VOSX_RAISE_ERRORS"}
    env["TMPDIR"] = str(ws / "tmp")
    cmd = [sys.executable, "-c", DRIVER, str(marker), hook, *map(str, args)]
    proc = subprocess.Popen(
        cmd,
        cwd=ws,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 600  # generous: a loaded CI machine imports torch slowly
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"the slow step never began (exit {proc.returncode}): {err[-2000:]}")
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_segment_interrupted_leaves_nothing(ws, sig, code):
    names = listing(ws)
    r = signal_cli(ws, "segment", [*SEG, "-o", "res/pred", "--overlay", "res/o.gif"], sig)
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr
    assert listing(ws) == sorted([*names, "tmp"])  # no res/, .pred.tmp-*, .o.gif.tmp-*


@pytest.mark.slow
def test_export_terminated_leaves_nothing(ws):
    names = listing(ws)
    args = ["export", "ckpt/model.pth", "-o", "res/exp", "--size", "64x96", "--precision", "fp32"]
    r = signal_cli(ws, "export", args, signal.SIGTERM)
    assert r.returncode == 143, r.stderr
    outside = [n for n in listing(ws) if not n.startswith("tmp/")]
    assert outside == sorted([*names, "tmp"])  # no res/, no res/.exp.tmp-*
    # $TMPDIR: no vosx-child-* (a third-party library leaves a 51-byte session file there)
    assert not [n for n in os.listdir(ws / "tmp") if n.startswith("vosx")]
    pid = int((ws.parent / f"{ws.name}.started.pid").read_text())
    with pytest.raises(ProcessLookupError):  # the converter child was killed, and reaped
        os.kill(pid, 0)


def test_eval_terminated_leaves_nothing(ws):
    names = listing(ws)
    r = signal_cli(ws, "eval", ["eval", "pred", "gt", "--json", "scores.json"], signal.SIGTERM)
    assert r.returncode == 143, r.stderr
    assert listing(ws) == sorted([*names, "tmp"])  # no .scores.json.tmp-*
