"""The second bad-input sweep (issue 20), one section per class of defect.

1. ``vosx train`` follows the output policy: an existing run folder needs ``--resume`` or
   ``--force``; ``-o`` never is or contains an input.
2. NaN and infinity are errors: float options, checkpoint weights, export parity, the training
   loss and weights, ``eval --json`` (strict JSON).
3. Every option that sizes work is bounded; Ctrl-C stops ``bench`` within 2 s.
4. Untrusted checkpoints (keys, layouts, dtypes) and export folders (graphs that do not fit each
   other or their manifest, LiteRT run errors) are one line.
5. Outputs: the existence check at the final rename, two outputs of one command, long names,
   SIGHUP and SIGTERM.
6. The lesser ones: 16-bit grey frames, a symlinked manifest, ``--precision fp32,fp32``, EXIF
   orientation, a relative ``XDG_CACHE_HOME``.

Everything runs on tiny inputs (the tiny checkpoint, 60 x 90 frames, the placeholder export of
``tests/fakes/world.py``, the fake adb); tests that need the real tiny export are marked slow.
"""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import make_workspace, one_error_line, run_cli
from tests.fakes.world import FakeAdbWorld, make_export
from vosx.errors import CheckpointError, ConfigError, ManifestError, OutputError, TrainingError
from vosx.files import NAME_MAX, PendingFile, atomic_write, json_text, replace_dir
from vosx.output_policy import check_distinct_outputs, check_output
from vosx.tracker_runtime.io import write_labels

SERIAL = "R5CT10ABCDE"


def listing(folder: Path) -> list[str]:
    """Every path under ``folder``, hidden ones included, relative and sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def ws(tmp_path, tiny_ckpt, monkeypatch) -> Path:
    """A workspace (the current folder): frames, a mask, a checkpoint, ground truth."""
    make_workspace(tmp_path, tiny_ckpt)
    monkeypatch.chdir(tmp_path)
    return tmp_path


SEG = ["segment", "frames", "--mask", "mask.png", "--backend", "torch"]
SEG += ["--checkpoint", "ckpt/model.pth"]
TRAIN = ["train", "--tiny", "--steps", "1", "--batch", "1", "--crop", "64x64", "--seq-len", "2"]
TRAIN += ["--val-every", "-1", "--threads", "1"]


# ================================================================ 1. train's output policy


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "ckpt", "--init-from", "ckpt/model.pth"], "-o ckpt: contains the input"),
        (["-o", "ckpt", "--init-decoder-from", "ckpt/model.pth"], "contains the input"),
        (["-o", "ckpt/model.pth", "--init-from", "ckpt/model.pth"], "is the input"),
        (["-o", "gt", "--data", "gt"], "-o gt: is the input gt"),
        (["-o", "gt", "--static-data", "gt/judo", "--static-steps", "1"], "contains the input"),
        (["-o", ".", "--data", "gt"], "-o .: contains the input gt"),
    ],
)
@pytest.mark.parametrize("force", [False, True])
def test_train_never_writes_into_its_inputs(ws, monkeypatch, capsys, args, message, force):
    before = {p: p.read_bytes() for p in ws.rglob("*") if p.is_file()}
    code = run_cli(monkeypatch, *TRAIN, *args, *(["--force"] if force else []))
    assert code == 1
    assert message in one_error_line(capsys)
    assert {p: p.read_bytes() for p in ws.rglob("*") if p.is_file()} == before


def test_existing_run_folder_needs_resume_or_force(ws, monkeypatch, capsys):
    run = ws / "run"
    run.mkdir()
    (run / "model.pth").write_bytes(b"earlier run")
    assert run_cli(monkeypatch, *TRAIN, "-o", "run") == 1
    line = one_error_line(capsys)
    assert "-o run: already exists (an earlier run?); pass --resume run/last.pth" in line
    assert "--force to replace its files" in line
    assert listing(run) == ["model.pth"] and (run / "model.pth").read_bytes() == b"earlier run"


def test_resume_from_another_folder_into_an_existing_one_needs_force(ws, tmp_path):
    from vosx.training.config import TrainConfig
    from vosx.training.runs import check_run_folder

    (ws / "a").mkdir()
    (ws / "b").mkdir()
    cfg = TrainConfig(out_dir=ws / "b", model="tiny", resume=ws / "a" / "last.pth")
    with pytest.raises(OutputError, match="already exists"):
        check_run_folder(cfg)
    check_run_folder(cfg, force=True)
    check_run_folder(TrainConfig(out_dir=ws / "a", model="tiny", resume=ws / "a" / "last.pth"))
    with pytest.raises(OutputError, match="is the input"):  # resume's own file as -o
        check_run_folder(
            TrainConfig(out_dir=ws / "a" / "last.pth", model="tiny", resume=ws / "a" / "last.pth")
        )


def _tiny_cfg(out: Path, **kw):
    from vosx.training.config import TrainConfig

    base = dict(out_dir=out, model="tiny", steps=3, batch_size=1, lr=1e-3, seq_len=2)
    base |= dict(crop=(64, 64), val_every=-1, checkpoint_every=1, threads=1)
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_force_starts_a_new_run_and_removes_only_the_earlier_runs_files(ws):
    from vosx.model.checkpoint import read_checkpoint
    from vosx.training.train import train

    run = ws / "run"
    run.mkdir()
    for name in ("last.pth", "model.pth", "log.csv", "step_0000009.pth"):
        (run / name).write_text("earlier run")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="already exists"):
        train(_tiny_cfg(run, steps=1), quiet=True)
    train(_tiny_cfg(run, steps=1), quiet=True, force=True)
    assert listing(run) == ["last.pth", "log.csv", "model.pth", "notes.txt"]
    assert (run / "notes.txt").read_text() == "mine"
    assert read_checkpoint(run / "last.pth")["step"] == 1
    assert [r.split(",")[0] for r in (run / "log.csv").read_text().splitlines()] == ["step", "0"]


# ================================================================ 2. NaN and infinity


@pytest.mark.parametrize(
    "args",
    [
        ["train", "-o", "r", "--lr", "nan"],
        ["train", "-o", "r", "--lr", "inf"],
        ["train", "-o", "r", "--weight-decay", "-inf"],
        ["train", "-o", "r", "--copy-paste", "nan"],
        ["train", "-o", "r", "--trunk-lr", "nan"],
        ["train", "-o", "r", "--lr-final", "NaN"],
        ["train", "-o", "r", "--synthetic-zoom", "nan,2"],
        ["train", "-o", "r", "--crop-scale", "0.5,inf"],
        ["train-tracker", "pt.npz", "--under-weight", "nan"],
        ["bench", "export", "--cooldown", "nan"],
        ["bench", "export", "--timeout", "inf"],
        ["bench", "export", "--diff-threshold", "nan"],
        ["bench", "export", "--tracker-margin", "inf"],
        ["segment", "frames", "--mask", "mask.png", "-o", "p", "--margin", "nan"],
    ],
    ids=lambda a: " ".join(a[:1] + a[-2:]),
)
def test_float_options_refuse_nan_and_infinity(ws, monkeypatch, capsys, args):
    names = listing(ws)
    assert run_cli(monkeypatch, *args) == 1
    line = one_error_line(capsys)
    assert "finite" in line and "Traceback" not in line, line
    assert listing(ws) == names


def test_library_options_refuse_nan_too(tmp_path):
    from vosx.android_bench.bench import BenchOptions, run_bench
    from vosx.training.config import TrackerTrainConfig

    with pytest.raises(ConfigError, match="lr nan: must be a finite number"):
        _tiny_cfg(tmp_path / "r", lr=math.nan)
    with pytest.raises(ConfigError, match="--under-weight nan: must be a finite number"):
        TrackerTrainConfig(under_weight=math.nan)
    with pytest.raises(ConfigError, match="--cooldown nan: must be a finite number"):
        run_bench(BenchOptions(export_dir=tmp_path, device="host", cooldown_s=math.nan))


def _nan_checkpoint(tiny_ckpt: Path, out: Path, value: float = math.nan) -> Path:
    ckpt = torch.load(tiny_ckpt, weights_only=True)
    ckpt["model"]["decoder.pred.bias"] = ckpt["model"]["decoder.pred.bias"].clone().fill_(value)
    torch.save(ckpt, out)
    return out


@pytest.mark.parametrize("value, what", [(math.nan, "NaN"), (math.inf, "infinite")])
def test_checkpoint_with_a_non_finite_weight_is_refused(tiny_ckpt, tmp_path, value, what):
    from vosx.model.checkpoint import load_checkpoint

    path = _nan_checkpoint(tiny_ckpt, tmp_path / "nan.pth", value)
    with pytest.raises(CheckpointError, match=f"tensor decoder.pred.bias holds {what} values"):
        load_checkpoint(path)


@pytest.mark.parametrize("command", ["export", "segment", "info"])
def test_commands_refuse_a_nan_checkpoint_with_one_line(
    ws, tiny_ckpt, monkeypatch, capsys, command
):
    _nan_checkpoint(tiny_ckpt, ws / "nan.pth")
    args = {
        "export": ["export", "nan.pth", "-o", "exp", "--size", "64x96"],
        "segment": [*SEG[:-1], "nan.pth", "-o", "pred2"],
        "info": ["info", "nan.pth"],
    }[command]
    names = listing(ws)
    assert run_cli(monkeypatch, *args) == 1
    assert "nan.pth: tensor decoder.pred.bias holds NaN values" in one_error_line(capsys)
    assert listing(ws) == names


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_parity_of_a_non_finite_output_is_the_worst(bad):
    from vosx.export.measure import compare
    from vosx.export.verify import ONNX_MAX_ABS, TFLITE_FP32_MAX_REL
    from vosx.tracker_runtime.accelerator import max_rel

    ref = {"a": np.ones((2, 3), np.float32), "b": np.zeros((4,), np.float32)}
    got = {"a": np.ones((2, 3), np.float32), "b": np.zeros((4,), np.float32)}
    got["b"][1] = bad
    parity = compare(ref, got)
    assert math.isinf(parity.rel) and math.isinf(parity.scaled) and math.isinf(parity.max_abs)
    assert parity.worst_output == "b"
    assert parity.scaled > ONNX_MAX_ABS and parity.rel > TFLITE_FP32_MAX_REL  # the gates fail
    assert max_rel(ref, got) == {"a": 0.0, "b": math.inf}
    assert compare(ref, ref).rel == 0.0


def _stop_at(monkeypatch, step: int, what: str) -> None:
    """Make training step ``step`` (0-based) produce a NaN loss or NaN weights."""
    import vosx.training.train as train_mod

    real = train_mod._optimise

    def optimise(run, s, batch):
        lr, vals = real(run, s, batch)
        if s == step and what == "loss":
            return lr, [math.nan, *vals[1:]]
        if s == step:
            with torch.no_grad():
                next(run.model.parameters()).fill_(math.inf)
        return lr, vals

    monkeypatch.setattr(train_mod, "_optimise", optimise)


@pytest.mark.slow
@pytest.mark.parametrize(
    "what, message",
    [("loss", "the loss became non-finite (loss nan"), ("weights", "became NaN or infinite")],
)
def test_training_stops_at_the_first_non_finite_loss_keeping_last_finite(
    tmp_path, monkeypatch, what, message
):
    from vosx.model.checkpoint import read_checkpoint
    from vosx.training.train import train

    _stop_at(monkeypatch, 2, what)
    out = tmp_path / "run"
    with pytest.raises(TrainingError) as e:
        train(_tiny_cfg(out, steps=4), quiet=True)
    assert "training stopped at step 3" in str(e.value) and message in str(e.value)
    assert f"{out / 'last.pth'} keeps step 2, the last finite weights" in str(e.value)
    assert "\n" not in str(e.value)
    ckpt = read_checkpoint(out / "last.pth")  # refuses non-finite weights itself
    assert ckpt["step"] == 2 and not (out / "model.pth").exists()


def test_eval_json_is_strict_when_a_score_is_undefined(ws, monkeypatch, capsys):
    empty = np.zeros((60, 90), np.uint8)
    for png in [ws / "gt" / "judo" / "00000.png", *(ws / "pred" / "judo").iterdir()]:
        write_labels(png, empty)  # no object anywhere: J&F is undefined (NaN)
    assert run_cli(monkeypatch, "eval", "pred", "gt", "--json", "s.json") in (0, None)
    text = (ws / "s.json").read_text()
    assert "NaN" not in text and "Infinity" not in text

    def refuse(name):
        raise AssertionError(f"not strict JSON: {name}")

    data = json.loads(text, parse_constant=refuse)
    assert data["global"]["J&F-Mean"] is None, data["global"]


def test_json_text_writes_null_for_non_finite_numbers():
    text = json_text({"a": [1.5, math.nan], "b": {"c": math.inf}, "d": (-math.inf, 2)})
    assert json.loads(text) == {"a": [1.5, None], "b": {"c": None}, "d": [None, 2]}


# ================================================================ 3. bounds and Ctrl-C


@pytest.mark.parametrize(
    "args, message",
    [
        (["bench", "export", "--device", "host", "--threads", "10000"], "--threads 10000: at most"),
        (["bench", "export", "--threads", "100"], "--threads 100: at most 32"),
        (["bench", "export", "--runs", "100000"], "--runs 100000: at most 10000"),
        (["bench", "export", "--warmup", "5000"], "--warmup 5000: at most 1000"),
        (["bench", "export", "--trials", "1000"], "--trials 1000: at most 100"),
        (["bench", "export", "--cooldown", "1e9"], "--cooldown 1e+09: at most 600"),
        (["bench", "export", "--timeout", "1e9"], "--timeout 1e+09: at most 3600"),
        (["train", "-o", "r", "--val-size", "100000x100000"], "each side must be at most 4096"),
        (["train", "-o", "r", "--crop", "8192x64"], "each side must be at most 4096"),
        (["train", "-o", "r", "--threads", "10000"], "--threads"),
        (["train", "-o", "r", "--workers", "10000"], "--workers"),
        (["train", "-o", "r", "--batch", "100000"], "--batch"),
        (["train", "-o", "r", "--seq-len", "1000"], "--seq-len"),
        (["segment", "frames", "--mask", "mask.png", "-o", "p", "--threads", "10000"], "--threads"),
        (["export", "--threads", "10000"], "--threads"),
        (["demo", "--threads", "10000"], "--threads"),
        (["train-tracker", "pt.npz", "--hidden", "1000000"], "--hidden"),
        (["train-tracker", "pt.npz", "--synthetic", "100000000"], "--synthetic"),
    ],
    ids=lambda a: " ".join(a[:1] + a[-2:]) if isinstance(a, list) else "",
)
def test_options_that_size_work_are_bounded(ws, monkeypatch, capsys, args, message):
    names = listing(ws)
    assert run_cli(monkeypatch, *args) == 1
    line = one_error_line(capsys)
    assert message in line, line
    assert listing(ws) == names


def test_thread_bound_is_twice_the_cpu_count():
    from vosx import limits

    assert limits.MAX_THREADS == 2 * limits.cpu_count() >= 2


INTERRUPT_DRIVER = r"""
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
elif hook == "eval":  # half of the JSON in its temporary file
    real_bytes = Path.write_bytes
    def write_bytes(self, data):
        if ".tmp-" in self.name:
            real_bytes(self, data[:10])
            hold()
        return real_bytes(self, data)
    Path.write_bytes = write_bytes
elif hook == "adb":  # the device's first getprop hangs (fake adb: hang_on) and the marker is set
    import vosx.android_bench.adb as adb
    real = adb.run_adb
    def run_adb(exe, argv, timeout_s, what):
        if "getprop" in " ".join(argv):
            marker.touch()
        return real(exe, argv, timeout_s, what)
    adb.run_adb = run_adb
elif hook == "host":  # the host sweep has begun
    import vosx.android_bench.host as host
    real = host.time_litert
    def time_litert(*a, **k):
        marker.touch()
        return real(*a, **k)
    host.time_litert = time_litert
elif hook == "train":  # the first training step never ends
    import vosx.training.train as train
    def optimise(run, step, batch):
        hold()
    train._optimise = optimise
sys.argv = ["vosx", *args]
from vosx.cli import main
main()
"""


def default_signals() -> None:
    """``preexec_fn``: the child sees SIGINT and SIGHUP (a background job or ``nohup`` would
    pass them on ignored, and an ignored signal is left ignored on purpose)."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def interrupt(
    cwd: Path, hook: str, args: list, sig: int, env: dict | None = None, group: bool = False
) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``vosx ARGS`` until ``hook``'s slow step began, then send ``sig`` (``group``: to its
    whole process group, as ``timeout`` and a closing terminal do).

    Returns:
        (the finished process, seconds from the signal to its one ``vosx: ...`` line: the
        command has stopped and cleaned up then; interpreter teardown after it is not counted,
        as it takes seconds of its own on a starved CPU).
    """
    marker = cwd.parent / f"{cwd.name}.{hook}.started"
    env = {k: v for k, v in (env or os.environ).items() if k != "VOSX_RAISE_ERRORS"}
    cmd = [sys.executable, "-c", INTERRUPT_DRIVER, str(marker), hook, *map(str, args)]
    with open(cwd.parent / f"{cwd.name}.{hook}.stdout", "w+") as stdout:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=default_signals,
            start_new_session=group,
        )
        lines: list[tuple[float, str]] = []  # (when, stderr line)
        reader = threading.Thread(
            target=lambda: lines.extend((time.monotonic(), ln) for ln in proc.stderr), daemon=True
        )
        reader.start()
        deadline = time.monotonic() + 600  # generous: a loaded machine imports slowly
        while not marker.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                reader.join(10)
                err = "".join(ln for _, ln in lines)
                pytest.fail(f"the slow step never began (exit {proc.returncode}): {err[-2000:]}")
            time.sleep(0.05)
        time.sleep(0.3)  # well inside the slow step
        sent = time.monotonic()
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(10)
        stdout.seek(0)
        out = stdout.read()
    err = "".join(ln for _, ln in lines)
    if proc.returncode == -signal.SIGKILL:
        pytest.fail(f"still running 60 s after the signal: {err[-2000:]}")
    said = [when for when, ln in lines if ln.startswith("vosx: ") and when >= sent]
    seconds = (said[-1] if said else time.monotonic()) - sent
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), seconds


@pytest.fixture
def adb_world(tmp_path, monkeypatch) -> tuple[FakeAdbWorld, Path, Path]:
    """A fake phone whose getprop hangs, a placeholder export and a benchmark tool."""
    world = FakeAdbWorld(tmp_path, monkeypatch)
    world.add_device(SERIAL, hang_on="getprop")
    tool = world.write_tool(tmp_path / "benchmark_model", "benchmark_model")
    return world, make_export(tmp_path / "export"), tool


@pytest.mark.parametrize(
    "sig, code, line",
    [(signal.SIGINT, 130, "vosx: interrupted"), (signal.SIGTERM, 143, "vosx: terminated")],
)
def test_adb_bench_stops_within_two_seconds(adb_world, tmp_path, sig, code, line):
    _, export_dir, tool = adb_world
    args = ["bench", export_dir, "--benchmark-binary", tool, "--trials", "1", "--cooldown", "0"]
    r, seconds = interrupt(tmp_path, "adb", args, sig)
    assert r.returncode == code, r.stderr
    assert r.stderr.strip().splitlines()[-1] == line and "Traceback" not in r.stderr
    assert seconds < 2.0, seconds


@pytest.mark.slow
def test_host_bench_stops_within_two_seconds(tiny_export_dir, tmp_path):
    args = ["bench", tiny_export_dir, "--device", "host", "--runs", "10000", "--trials", "100"]
    r, seconds = interrupt(tmp_path, "host", args + ["--threads", "1"], signal.SIGINT)
    assert r.returncode == 130, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "vosx: interrupted"
    assert seconds < 2.0, seconds


def test_train_terminated_prints_the_line_and_leaves_nothing(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    r, _ = interrupt(work, "train", [*TRAIN, "-o", "run"], signal.SIGTERM)
    assert r.returncode == 143, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "vosx: terminated"
    assert listing(work) == []  # the new, empty run folder is removed again


def test_train_terminated_with_its_data_workers(tmp_path):
    """SIGTERM to the whole process group (``timeout``, a closing terminal) reaches the DataLoader
    workers too: still one line, exit 143, nothing left."""
    work = tmp_path / "w"
    work.mkdir()
    args = [*TRAIN, "--workers", "1", "-o", "run"]
    r, _ = interrupt(work, "train", args, signal.SIGTERM, group=True)
    assert r.returncode == 143, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "vosx: terminated", r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert listing(work) == []


# ================================================================ 4. untrusted checkpoints


def _state(tiny_ckpt: Path) -> dict:
    return torch.load(tiny_ckpt, weights_only=True)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.__setitem__(7, torch.zeros(1)), "state_dict key '7' is a int, not a string"),
        (lambda m: m.__setitem__((1, 2), torch.zeros(1)), "key '(1, 2)' is a tuple, not a string"),
        (
            lambda m: m.__setitem__("decoder.pred.bias", torch.zeros(1).to_sparse()),
            "tensor decoder.pred.bias is a torch.sparse_coo",
        ),
        (
            lambda m: m.__setitem__("decoder.pred.bias", torch.zeros(1, dtype=torch.int32)),
            "tensor decoder.pred.bias has dtype torch.int32, not a float dtype",
        ),
        (
            lambda m: m.__setitem__("decoder.pred.bias", torch.zeros(1, dtype=torch.complex64)),
            "has dtype torch.complex64, not a float dtype",
        ),
    ],
    ids=["int key", "tuple key", "sparse", "int32", "complex"],
)
@pytest.mark.parametrize("bare", [False, True], ids=["checkpoint", "bare state_dict"])
def test_untrusted_state_dicts_are_refused_first(tiny_ckpt, tmp_path, edit, message, bare):
    from vosx.model.checkpoint import read_checkpoint

    ckpt = _state(tiny_ckpt)
    edit(ckpt["model"])
    path = tmp_path / "bad.pth"
    torch.save(ckpt["model"] if bare else ckpt, path)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        read_checkpoint(path)


def test_a_state_dict_entry_that_is_not_a_tensor_is_refused(tiny_ckpt, tmp_path):
    from vosx.model.checkpoint import read_checkpoint

    ckpt = _state(tiny_ckpt)
    ckpt["model"]["decoder.pred.bias"] = [1.0]
    torch.save(ckpt, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="entry 'decoder.pred.bias' is a list, not a tensor"):
        read_checkpoint(tmp_path / "bad.pth")


@pytest.mark.parametrize("command", ["info", "segment"])
def test_untrusted_checkpoint_is_one_line_at_the_cli(ws, tiny_ckpt, monkeypatch, capsys, command):
    ckpt = _state(tiny_ckpt)
    ckpt["model"][3] = torch.zeros(1)
    torch.save(ckpt, ws / "bad.pth")
    args = ["info", "bad.pth"] if command == "info" else [*SEG[:-1], "bad.pth", "-o", "p2"]
    assert run_cli(monkeypatch, *args) == 1
    assert "bad.pth: state_dict key '3' is a int, not a string" in one_error_line(capsys)


def test_batchnorm_counters_stay_integer(tiny_ckpt):
    from vosx.model.checkpoint import load_checkpoint

    assert load_checkpoint(tiny_ckpt) is not None  # num_batches_tracked is int64


def _edit_manifest(root: Path, edit) -> None:
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _tensor(data: dict, graph: str, kind: str, name: str) -> dict:
    return next(t for t in data["graphs"][graph][kind] if t["name"] == name)


@pytest.mark.parametrize(
    "graph, name, field, value",
    [
        ("decoder", "qk", "shape", [1, 1, 24, 16]),
        ("decoder", "mv_last", "shape", [1, 1, 24, 32]),
        ("value_encoder", "f16", "dtype", "float16"),
        ("decoder", "f8", "shape", [1, 4, 6, 32]),
    ],
)
def test_graphs_that_do_not_fit_each_other_are_refused(tmp_path, graph, name, field, value):
    from vosx.manifest import load_manifest

    root = make_export(tmp_path / "export")
    _edit_manifest(root, lambda d: _tensor(d, graph, "inputs", name).__setitem__(field, value))
    with pytest.raises(ManifestError, match=f"graphs.{graph}.inputs.{name} is .* do not fit"):
        load_manifest(root)


@pytest.fixture
def tiny_copy(tiny_export_dir, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_export_dir, tmp_path / "export"))


@pytest.mark.slow
def test_a_graph_whose_signature_is_not_the_manifests_is_refused(tiny_copy):
    from vosx.tracker_runtime.litert import TFLiteGraphs

    def to_fp16(d):  # consistent between the graphs, so only the files disagree
        for graph, kind in (("key_encoder", "outputs"), ("decoder", "inputs")):
            _tensor(d, graph, kind, "f4")["dtype"] = "float16"

    _edit_manifest(tiny_copy, to_fp16)
    with pytest.raises(ManifestError, match=r"f4 is \[.*\] float32 in the model but .* float16"):
        TFLiteGraphs.open(tiny_copy, "fp32")


@pytest.mark.slow
def test_host_bench_checks_the_signature_before_timing(tiny_copy, monkeypatch, capsys):
    def to_fp16(d):
        for graph, kind in (("key_encoder", "outputs"), ("decoder", "inputs")):
            _tensor(d, graph, kind, "f4")["dtype"] = "float16"

    _edit_manifest(tiny_copy, to_fp16)
    args = ["bench", tiny_copy, "--device", "host", "--runs", "1", "--threads", "1"]
    assert run_cli(monkeypatch, *args) == 1
    assert "float32 in the model but" in one_error_line(capsys)


@pytest.mark.slow
def test_a_litert_run_error_is_one_line_naming_the_graph(tiny_copy, monkeypatch):
    from vosx.tracker_runtime.litert import TFLiteGraphs

    graphs = TFLiteGraphs.open(tiny_copy, "fp32", threads=1)

    class Failing:
        def __getattr__(self, name):
            return getattr(real, name)

        def invoke(self):
            raise RuntimeError("Node number 7 (CONV_2D) failed to invoke.\nmore")

    real = graphs._interp["decoder"]
    graphs._interp["decoder"] = Failing()
    inputs = {
        t.name: np.zeros(t.shape, np.float32) for t in graphs.manifest.graphs["decoder"].inputs
    }
    with pytest.raises(ManifestError) as e:
        graphs.run("decoder", inputs)
    assert "decoder_float32.tflite: LiteRT failed running the decoder graph" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ManifestError, match="LiteRT failed running the value_encoder graph"):
        graphs.run("value_encoder", {"mask": np.zeros((1, 2, 3, 1)), "f16": np.zeros((1, 1))})


# ================================================================ 5. outputs


def test_replace_dir_refuses_a_folder_that_appeared_meanwhile(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(OutputError, match="was created by another program while this command ran"):
        with replace_dir(target, overwrite=False) as tmp:
            (tmp / "ours.png").write_text("ours")
            target.mkdir()
            (target / "theirs.png").write_text("theirs")
    assert listing(tmp_path) == ["out", "out/theirs.png"]  # theirs kept, no temporary left


def test_a_file_that_appeared_meanwhile_is_kept(tmp_path):
    target = tmp_path / "scores.json"
    pending = PendingFile(target, overwrite=False)
    pending.tmp.write_text("ours")
    target.write_text("theirs")
    with pytest.raises(OutputError, match="was created by another program"):
        pending.commit()
    assert listing(tmp_path) == ["scores.json"] and target.read_text() == "theirs"
    assert atomic_write(tmp_path / "new.json", "x", overwrite=False).read_text() == "x"
    assert atomic_write(target, "forced").read_text() == "forced"  # overwrite=True: --force


def test_segment_does_not_replace_a_folder_another_run_created(ws, monkeypatch, capsys):
    import vosx.tracker_runtime.io as io

    real = io.write_labels

    def write_labels(path, labels):  # another run finishes first, while this one writes
        (ws / "pred2").mkdir(exist_ok=True)
        (ws / "pred2" / "other.png").write_text("theirs")
        real(path, labels)

    monkeypatch.setattr(io, "write_labels", write_labels)
    assert run_cli(monkeypatch, *SEG, "-o", "pred2") == 1
    assert "pred2: was created by another program" in one_error_line(capsys)
    assert listing(ws / "pred2") == ["other.png"]
    assert not [n for n in listing(ws) if ".tmp-" in n]


def test_train_does_not_take_over_a_run_folder_created_meanwhile(tmp_path, monkeypatch):
    import vosx.training.train as train_mod

    real = train_mod._setup
    out = tmp_path / "run"

    def setup(*args):  # another run creates the folder while this one loads its model
        out.mkdir()
        (out / "log.csv").write_text("theirs")
        return real(*args)

    monkeypatch.setattr(train_mod, "_setup", setup)
    with pytest.raises(OutputError, match="was created by another program while this run was"):
        train_mod.train(_tiny_cfg(out, steps=1), quiet=True)
    assert listing(out) == ["log.csv"] and (out / "log.csv").read_text() == "theirs"


@pytest.mark.parametrize(
    "args, message",
    [
        (SEG + ["-o", "x.gif", "--overlay", "x.gif"], "-o x.gif and --overlay x.gif: are the same"),
        (SEG + ["-o", "out", "--overlay", "out/o.gif"], "is inside the -o folder out"),
        (["bench", "export", "--json", "b.json", "--plot", "b.json"], "are the same path"),
        (["bench", "export", "--json", "d/b.json", "--plot", "d/b.json/p.png"], "is inside --json"),
    ],
)
def test_two_outputs_of_one_command_are_refused(ws, monkeypatch, capsys, args, message):
    names = listing(ws)
    assert run_cli(monkeypatch, *args) == 1
    assert message in one_error_line(capsys)
    assert listing(ws) == names


def test_check_distinct_outputs_sees_through_symlinks(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OutputError, match="are the same path"):
        check_distinct_outputs([("-o", tmp_path / "real"), ("--overlay", tmp_path / "link")])
    check_distinct_outputs([("-o", tmp_path / "a"), ("--overlay", tmp_path / "b"), ("x", None)])


def test_long_output_names_fit_their_temporaries(ws, monkeypatch, capsys, tmp_path):
    name = "s" * 245 + ".json"  # 250 bytes: legal; .NAME.tmp-XXXXXXXX would not be
    assert atomic_write(tmp_path / name, "x").read_text() == "x"
    folder = tmp_path / ("d" * 250)
    with replace_dir(folder) as tmp:
        (tmp / "a").write_text("1")
    with replace_dir(folder) as tmp:  # the .old- holder too
        (tmp / "b").write_text("2")
    assert listing(folder) == ["b"]
    wide = "é" * 125  # 250 bytes of two-byte characters
    assert atomic_write(tmp_path / wide, "y").read_text() == "y"
    scores = "e" * 245 + ".json"
    assert run_cli(monkeypatch, "eval", "pred", "gt", "--json", scores) in (0, None)
    assert json.loads((ws / scores).read_text())["global"]["J&F-Mean"] == 1.0
    assert not [n for n in os.listdir(ws) if ".tmp-" in n]


def test_too_long_names_are_refused_before_any_work(ws, monkeypatch, capsys):
    import vosx.tracker_runtime.metrics as metrics

    def forbidden(*a, **k):
        raise AssertionError("evaluated before the output was checked")

    monkeypatch.setattr(metrics, "evaluate_folders", forbidden)
    name = "s" * (NAME_MAX + 1)
    assert run_cli(monkeypatch, "eval", "pred", "gt", "--json", name) == 1
    assert f"longer than the {NAME_MAX} a file or folder name may have" in one_error_line(capsys)
    with pytest.raises(OutputError, match="longer than the 255"):
        check_output(Path("x" * 300) / "out.json")


@pytest.mark.parametrize("hook", ["segment", "eval"])
@pytest.mark.parametrize(
    "sig, code, line",
    [(signal.SIGHUP, 129, "vosx: terminated (SIGHUP)"), (signal.SIGTERM, 143, "vosx: terminated")],
)
def test_signals_remove_temporaries_and_print_the_line(ws, hook, sig, code, line):
    if hook == "segment":
        args = [*SEG, "-o", "res/pred", "--overlay", "res/o.gif"]
    else:
        args = ["eval", "pred", "gt", "--json", "scores.json"]
    (ws / "tmp").mkdir()
    names = listing(ws)
    r, _ = interrupt(ws, hook, args, sig, {**os.environ, "TMPDIR": str(ws / "tmp")})
    assert r.returncode == code, r.stderr
    assert r.stderr.strip().splitlines()[-1] == line and "Traceback" not in r.stderr
    assert listing(ws) == names  # no res/, no .pred.tmp-*, .o.gif.tmp-*, .scores.json.tmp-*


def test_sigterm_while_nothing_is_pending_prints_the_line(tmp_path):
    """``vosx.signals.exit_on_signals`` is active for the whole command, not only while a
    temporary exists (the bench and train cases are above)."""
    code = (
        "import signal, os, sys\n"
        "from vosx.signals import Terminated, exit_on_signals\n"
        "with exit_on_signals():\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGHUP)\n"
        "    except Terminated as e:\n"
        "        print(e.code, e.signum)\n"
        "print(signal.getsignal(signal.SIGHUP) == signal.SIG_DFL)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=default_signals,
    )
    assert out.stdout.split() == ["129", "1", "True"]


# ================================================================ 6. the lesser ones


def test_16_bit_grey_frames_keep_their_grey_levels(tmp_path):
    from vosx.tracker_runtime.io import Frames, read_image

    ramp = np.tile(np.linspace(0, 65535, 90).astype(np.uint16), (60, 1))
    (tmp_path / "f").mkdir()
    Image.fromarray(ramp).save(tmp_path / "f" / "00000.png")
    with Image.open(tmp_path / "f" / "00000.png") as im:
        assert im.mode.startswith("I")  # really a 16-bit file
    rgb = read_image(tmp_path / "f" / "00000.png")
    assert rgb.shape == (60, 90, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 0] == rgb[..., 2]).all()
    assert len(np.unique(rgb)) > 80  # a ramp, not 0 / 255
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255 and abs(int(rgb[0, 45, 0]) - 129) <= 2
    assert Frames(tmp_path / "f").size == (60, 90)


def test_a_symlinked_manifest_is_refused(tmp_path):
    from vosx.manifest import load_manifest

    root = make_export(tmp_path / "export")
    outside = tmp_path / "outside.json"
    shutil.move(root / "manifest.json", outside)
    (root / "manifest.json").symlink_to(outside)
    with pytest.raises(ManifestError, match="manifest.json: is a symbolic link"):
        load_manifest(root, verify=False)


def test_duplicate_precisions_fail_at_once(ws, monkeypatch, capsys):
    import vosx.model.checkpoint as checkpoint

    def forbidden(*a, **k):
        raise AssertionError("the checkpoint was loaded before the options were checked")

    monkeypatch.setattr(checkpoint, "load_checkpoint", forbidden)
    args = ["export", "ckpt/model.pth", "-o", "exp", "--size", "64x96", "--precision", "fp32,fp32"]
    start = time.monotonic()
    assert run_cli(monkeypatch, *args) == 1
    assert "--precision fp32,fp32: names a precision twice" in one_error_line(capsys)
    assert time.monotonic() - start < 10 and not (ws / "exp").exists()


def _rotated_jpeg(path: Path, raw: np.ndarray) -> None:
    """Save ``raw`` as a JPEG whose EXIF says "rotate 90 degrees clockwise to view"."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(raw).save(path, exif=exif, quality=95)


def test_exif_orientation_is_applied_to_frames(tmp_path, monkeypatch, capsys):
    from vosx.tracker_runtime.io import Frames, read_first_mask

    (tmp_path / "frames").mkdir()
    raw = np.zeros((60, 90, 3), np.uint8)
    raw[:, :10] = 255  # a white band on the left of the raw pixels: the top of the viewed image
    for i in range(3):
        _rotated_jpeg(tmp_path / "frames" / f"{i:05d}.jpg", raw)
    frames = Frames(tmp_path / "frames")
    assert frames.size == (90, 60)  # as a viewer shows it
    first = next(iter(frames))
    assert first[:10].mean() > 200 and first[20:].mean() < 50
    mask = np.zeros((90, 60), np.uint8)  # drawn on the rotated view
    mask[30:60, 20:40] = 1
    write_labels(tmp_path / "mask.png", mask)
    assert read_first_mask(tmp_path / "mask.png", frames.size).shape == (90, 60)


def test_relative_xdg_cache_home_is_ignored(monkeypatch, tmp_path):
    from vosx.paths import user_cache_dir

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "vosx"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "abs"))
    assert user_cache_dir() == tmp_path / "abs" / "vosx"
