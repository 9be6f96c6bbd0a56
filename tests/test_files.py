"""vosx.files: atomic files, folder swaps, the output policy and clean-up on SIGTERM / SIGINT."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes import default_sigint
from vosx import files
from vosx.errors import ConfigError, OutputError
from vosx.files import (
    PendingFile,
    atomic_path,
    atomic_write,
    make_dirs,
    remove_empty_dirs,
    replace_dir,
    temp_dir,
)
from vosx.output_policy import check_output


def listing(folder: Path) -> list[str]:
    """Every path under ``folder``, hidden ones included, relative and sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---------------------------------------------------------------- atomic files


def test_atomic_write_writes_text_and_bytes_with_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        a = atomic_write(tmp_path / "a" / "b.json", '{"x": 1}\n')
        b = atomic_write(tmp_path / "c.bin", b"\x00\x01")
    finally:
        os.umask(old)
    assert a.read_text() == '{"x": 1}\n' and b.read_bytes() == b"\x00\x01"
    assert a.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
    assert listing(tmp_path) == ["a", "a/b.json", "c.bin"]


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "model.pth"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="writer died"), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.pth.tmp-")
        tmp.write_text("half")
        raise RuntimeError("writer died")
    assert target.read_text() == "old" and listing(tmp_path) == ["model.pth"]


def test_atomic_path_removes_the_folders_it_created_on_failure(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "x" / "y" / "f.txt") as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert listing(tmp_path) == []


def test_pending_file_commit_discard_and_suffix(tmp_path):
    p = PendingFile(tmp_path / "o.mp4", suffix=".mp4")
    assert p.tmp.suffix == ".mp4" and p.tmp.exists()
    p.tmp.write_bytes(b"video")
    assert p.commit() == tmp_path / "o.mp4" and (tmp_path / "o.mp4").read_bytes() == b"video"
    q = PendingFile(tmp_path / "p.gif")
    q.discard()
    q.discard()  # twice is harmless
    assert listing(tmp_path) == ["o.mp4"]
    with pytest.raises(RuntimeError, match="already committed"):
        p.commit()


def test_unwritable_folder_is_one_output_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot write there"):
        atomic_write(tmp_path / "file" / "sub.json", "{}")
    with pytest.raises(OutputError, match="cannot write there"):
        with replace_dir(Path("/sys/vosx-test-out")):
            pass


# ---------------------------------------------------------------- folders


def test_replace_dir_creates_and_replaces_only_on_success(tmp_path):
    target = tmp_path / "out"
    with replace_dir(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.tmp-")
        (tmp / "a.png").write_text("1")
    assert listing(tmp_path) == ["out", "out/a.png"]
    assert target.stat().st_mode & 0o777 != 0o700  # not mkdtemp's private mode
    with pytest.raises(ValueError), replace_dir(target) as tmp:
        (tmp / "b.png").write_text("2")
        raise ValueError("stage failed")
    assert listing(tmp_path) == ["out", "out/a.png"]  # old folder intact, no temp
    with replace_dir(target) as tmp:
        (tmp / "c.png").write_text("3")
    assert listing(tmp_path) == ["out", "out/c.png"]  # no .out.old-* left


def test_replace_dir_over_a_file_leaves_no_old_copy(tmp_path):
    target = tmp_path / "thing"
    target.write_text("a file")
    with replace_dir(target) as tmp:
        (tmp / "x").write_text("1")
    assert listing(tmp_path) == ["thing", "thing/x"]


def test_replace_dir_puts_the_old_folder_back_when_the_swap_fails(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.png").write_text("old")
    real_rename = os.rename

    def rename(src, dst):
        if Path(src).name.startswith(".out.tmp-"):
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(files.os, "rename", rename)
    with pytest.raises(OSError, match="No space"), replace_dir(target) as tmp:
        (tmp / "new.png").write_text("new")
    assert listing(tmp_path) == ["out", "out/keep.png"]


def test_temp_dir_is_removed_on_every_exit(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(files.tempfile, "tempdir", None)
    with pytest.raises(KeyboardInterrupt), temp_dir("vosx-onnx2tf-") as work:
        assert work.parent == tmp_path
        (work / "job.json").write_text("{}")
        raise KeyboardInterrupt
    assert listing(tmp_path) == []


def test_make_dirs_and_remove_empty_dirs(tmp_path):
    (tmp_path / "a").mkdir()
    made = make_dirs(tmp_path / "a" / "b" / "c")
    assert made == [tmp_path / "a" / "b" / "c", tmp_path / "a" / "b"]
    remove_empty_dirs(made)
    assert listing(tmp_path) == ["a"]  # the folder that existed before stays
    made = make_dirs(tmp_path / "r" / "s")
    (tmp_path / "r" / "s" / "log.csv").write_text("step\n")
    remove_empty_dirs(made)  # not empty: kept
    assert (tmp_path / "r" / "s" / "log.csv").exists()


# ---------------------------------------------------------------- output policy


@pytest.fixture
def ws(tmp_path) -> Path:
    """frames/ with two frames and a mask inside, ckpt/model.pth, report.json."""
    (tmp_path / "frames").mkdir()
    for name in ("00000.png", "00001.png", "mask.png"):
        (tmp_path / "frames" / name).write_bytes(b"png")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.pth").write_bytes(b"pth")
    (tmp_path / "report.json").write_text("{}")
    return tmp_path


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize(
    "target, inputs, kind, message",
    [
        ("frames", ["frames", "frames/mask.png"], "dir", "is the input frames"),
        ("ckpt", ["ckpt/model.pth"], "dir", "contains the input ckpt/model.pth"),
        (".", ["ckpt/model.pth"], "dir", "contains the input"),
        ("ckpt/model.pth", ["ckpt/model.pth"], "file", "is the input ckpt/model.pth"),
        ("frames/00000.png", ["frames"], "file", "already exists inside the input frames"),
        ("frames/mask.png", ["frames/mask.png"], "file", "is the input"),
    ],
)
def test_inputs_are_refused_even_with_force(ws, monkeypatch, force, target, inputs, kind, message):
    monkeypatch.chdir(ws)
    with pytest.raises(OutputError, match=message) as e:
        check_output(Path(target), [Path(p) for p in inputs], force, kind=kind, what="-o")
    assert str(e.value).startswith(f"-o {Path(target)}: ") and "\n" not in str(e.value)


def test_symlinked_and_hard_linked_inputs_are_recognised(ws):
    (ws / "link").symlink_to(ws / "frames")
    with pytest.raises(OutputError, match="is the input"):
        check_output(ws / "link", [ws / "frames"], True, kind="dir")
    os.link(ws / "ckpt" / "model.pth", ws / "hard.pth")
    with pytest.raises(OutputError, match="is the input"):
        check_output(ws / "hard.pth", [ws / "ckpt" / "model.pth"], True)


def test_existing_target_needs_force_and_new_ones_pass(ws):
    with pytest.raises(OutputError, match="report.json: already exists; pass --force"):
        check_output(ws / "report.json", [ws / "frames"])
    assert check_output(ws / "report.json", [ws / "frames"], force=True) == ws / "report.json"
    assert check_output(ws / "new" / "deep" / "x.json", [ws / "frames"]) == ws / "new/deep/x.json"
    assert check_output(ws / "frames" / "new.json", [ws / "frames"])  # adds, replaces nothing
    assert not (ws / "new").exists()  # checking creates nothing
    assert listing(ws) == sorted(
        [
            "ckpt",
            "ckpt/model.pth",
            "frames",
            "frames/00000.png",
            "frames/00001.png",
            "frames/mask.png",
            "report.json",
        ]
    )


@pytest.mark.parametrize("force", [False, True])
def test_kind_mismatches_are_refused_even_with_force(ws, force):
    with pytest.raises(OutputError, match=r"--json .*ckpt: is a folder; give a file path such as"):
        check_output(ws / "ckpt", force=force, what="--json", example="scores.json")
    with pytest.raises(OutputError, match="report.json: is a file, not a folder"):
        check_output(ws / "report.json", force=force, kind="dir")


@pytest.mark.parametrize(
    "target, message",
    [
        ("report.json/sub", "report.json is a file, not a folder"),
        ("report.json/a/b/c.json", "report.json is a file, not a folder"),
        ("/sys/vosx-out", "cannot write in /sys"),
        ("/proc/vosx/out.json", "cannot write in /proc"),
    ],
)
def test_unwritable_parents_are_found_before_any_work(ws, monkeypatch, target, message):
    monkeypatch.chdir(ws)
    with pytest.raises(OutputError, match=message) as e:
        check_output(Path(target), kind="dir")
    assert isinstance(e.value, ConfigError) and "choose an output path" in str(e.value)


def test_nul_byte_is_refused(ws):
    with pytest.raises(OutputError, match="NUL byte"):
        check_output("out\0x", what="-o")


# ---------------------------------------------------------------- signals

DRIVER = r"""
import sys, time
from pathlib import Path
from vosx.files import PendingFile, replace_dir, temp_dir
where, marker, what = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
if what == "dir":
    with replace_dir(where / "out") as tmp:
        (tmp / "a.png").write_text("1")
        marker.touch()
        time.sleep(60)
elif what == "file":
    p = PendingFile(where / "overlay.gif", suffix=".gif")
    try:
        p.tmp.write_text("partial")
        marker.touch()
        time.sleep(60)
        p.commit()
    except BaseException:
        p.discard()
        raise
else:
    with temp_dir("vosx-onnx2tf-") as work:
        (work / "job.json").write_text("{}")
        marker.touch()
        time.sleep(60)
"""


def run_and_signal(
    args: list[str], marker: Path, sig: int, env=None
) -> subprocess.CompletedProcess:
    """Start ``args``, wait for ``marker`` (the slow step has begun), send ``sig``, wait."""
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 240
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the slow step never started (exit {proc.returncode}): {err[-2000:]}")
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.parametrize("what", ["dir", "file", "tmpdir"])
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, -signal.SIGINT)])
def test_signals_leave_no_temporaries(tmp_path, what, sig, code):
    where = tmp_path / "work"
    where.mkdir()
    marker = tmp_path / "started"
    env = {**os.environ, "TMPDIR": str(where)}
    r = run_and_signal(
        [sys.executable, "-c", DRIVER, str(where), str(marker), what], marker, sig, env
    )
    # SIGTERM: Terminated -> exit 143 silently; SIGINT: KeyboardInterrupt (Python re-raises it)
    assert r.returncode == code, r.stderr
    assert (sig == signal.SIGTERM) == ("Traceback" not in r.stderr)
    assert listing(where) == []


def test_sigterm_handler_is_installed_only_while_output_is_pending(tmp_path):
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    with replace_dir(tmp_path / "out"):
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
        with atomic_path(tmp_path / "f"):  # nested: still installed after the inner one ends
            pass
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_handler_installed_by_someone_else_is_kept(tmp_path):
    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with replace_dir(tmp_path / "out"):
            assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)
