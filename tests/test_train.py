"""Tests of the training loop and ``vosx train`` on a tiny config, 64x96."""

import csv
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.conftest import run_cli
from vosx.errors import CheckpointError, ConfigError
from vosx.model import TINY_CONFIG, ModelConfig, build_model, load_checkpoint, save_checkpoint
from vosx.model.checkpoint import read_checkpoint
from vosx.model.graphs import TorchGraphs
from vosx.tracker_runtime.driver import SegmentationDriver
from vosx.tracker_runtime.preprocess import MEAN, STD
from vosx.tracker_runtime.trackers import tracker_factory
from vosx.training.checkpoints import init_decoder_from, init_from
from vosx.training.config import TrainConfig
from vosx.training.evaluate import evaluate_synthetic, predict_clip, validate
from vosx.training.losses import LossWeights
from vosx.training.synthetic import make_clip
from vosx.training.train import ClipLoss, lr_at, train


def _cfg(out, **kw) -> TrainConfig:
    base = dict(
        out_dir=out,
        model="tiny",
        steps=4,
        static_steps=1,
        batch_size=2,
        lr=1e-3,
        seq_len=3,
        crop=(64, 96),
        val_every=-1,
        val_clips=2,
        val_frames=4,
        checkpoint_every=2,
        threads=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_run_writes_checkpoints_log_and_validation(tmp_path):
    cfg = _cfg(tmp_path / "run", val_every=0)
    last = train(cfg, quiet=True)
    assert last == tmp_path / "run" / "last.pth"
    rows = _rows(tmp_path / "run" / "log.csv")
    assert [r["step"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["stage"] for r in rows] == ["static", "video", "video", "video"]
    for r in rows:
        for term in ("loss", "ce", "ssim", "iou"):
            assert 0 <= float(r[term]) < 100
        assert float(r["loss"]) == pytest.approx(
            float(r["ce"]) + float(r["ssim"]) + float(r["iou"]), abs=2e-4
        )
    assert 0 <= float(rows[-1]["val_j"]) <= 1 and 0 <= float(rows[-1]["val_jf"]) <= 1
    assert rows[0]["val_j"] == ""
    model = load_checkpoint(tmp_path / "run" / "model.pth")
    torch.manual_seed(0)
    init = build_model(TINY_CONFIG)
    assert not torch.equal(model.decoder.pred.weight, init.decoder.pred.weight)
    ckpt = read_checkpoint(last)
    assert ckpt["step"] == 4 and "optimizer" in ckpt and ckpt["train_config"]["batch_size"] == 2


def test_resume_continues_bit_for_bit(tmp_path):
    train(_cfg(tmp_path / "a"), quiet=True)
    train(_cfg(tmp_path / "b", stop_at=2), quiet=True)
    assert not (tmp_path / "b" / "model.pth").exists()
    assert read_checkpoint(tmp_path / "b" / "last.pth")["step"] == 2
    train(_cfg(tmp_path / "b", resume=tmp_path / "b" / "last.pth"), quiet=True)
    a = read_checkpoint(tmp_path / "a" / "last.pth")
    b = read_checkpoint(tmp_path / "b" / "last.pth")
    assert a["model"].keys() == b["model"].keys()
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    for sa, sb in zip(
        a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True
    ):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    assert [r["step"] for r in _rows(tmp_path / "b" / "log.csv")] == ["0", "1", "2", "3"]
    assert [r["loss"] for r in _rows(tmp_path / "b" / "log.csv")] == [
        r["loss"] for r in _rows(tmp_path / "a" / "log.csv")
    ]


def test_resume_from_another_config_is_one_clear_error(tmp_path, tiny_ckpt):
    train(_cfg(tmp_path / "a", stop_at=2), quiet=True)
    last = tmp_path / "a" / "last.pth"
    with pytest.raises(CheckpointError, match=r"batch_size=2 but this run has batch_size=4"):
        train(_cfg(tmp_path / "a", batch_size=4, resume=last), quiet=True)
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        train(_cfg(tmp_path / "c", resume=tiny_ckpt), quiet=True)


def test_init_decoder_copies_only_the_decoder(tmp_path):
    torch.manual_seed(1)
    donor = build_model(TINY_CONFIG)
    path = save_checkpoint(donor, tmp_path / "donor.pth")
    torch.manual_seed(0)
    fresh = build_model(TINY_CONFIG)
    torch.manual_seed(0)
    model = build_model(TINY_CONFIG)
    n = init_decoder_from(model, path)
    assert n == len(donor.decoder.state_dict())
    for name, t in model.decoder.state_dict().items():
        assert torch.equal(t, donor.decoder.state_dict()[name])
    for part in ("key_encoder", "value_encoder"):
        for name, t in getattr(model, part).state_dict().items():
            assert torch.equal(t, getattr(fresh, part).state_dict()[name]), name


def test_init_decoder_shape_mismatch_names_the_tensors(tmp_path):
    other = build_model(replace(ModelConfig(), decoder_dims=(24, 16, 8), width_mult=0.25))
    path = save_checkpoint(other, tmp_path / "other.pth")
    model = build_model(TINY_CONFIG)
    with pytest.raises(
        CheckpointError, match=r"mis-shaped: decoder\.compress\.conv1\.bias \(24,\) vs \(16,\)"
    ):
        init_decoder_from(model, path)
    train_cfg = _cfg(tmp_path / "run", init_decoder_from=path)
    with pytest.raises(CheckpointError, match="does not match the model config"):
        train(train_cfg, quiet=True)


def test_init_decoder_through_training(tmp_path):
    train(_cfg(tmp_path / "pre", steps=2), quiet=True)
    train(
        _cfg(
            tmp_path / "run",
            steps=1,
            static_steps=0,
            init_decoder_from=tmp_path / "pre" / "model.pth",
            lr=1e-12,
        ),
        quiet=True,
    )
    pre = load_checkpoint(tmp_path / "pre" / "model.pth")
    run = load_checkpoint(tmp_path / "run" / "model.pth")
    # One step at lr 1e-12 leaves the copied decoder (nearly) as pretrained; the encoders are new.
    w_pre, w_run = pre.decoder.pred.weight, run.decoder.pred.weight
    assert torch.allclose(w_pre, w_run, atol=1e-6)
    assert not torch.allclose(
        pre.key_encoder.key_proj.weight, run.key_encoder.key_proj.weight, atol=1e-3
    )


def test_init_from_loads_every_weight_and_refuses_other_architectures(tmp_path):
    torch.manual_seed(1)
    donor = build_model(TINY_CONFIG)
    path = save_checkpoint(donor, tmp_path / "donor.pth")
    torch.manual_seed(0)
    model = build_model(TINY_CONFIG)
    init_from(model, path)
    for name, t in model.state_dict().items():
        assert torch.equal(t, donor.state_dict()[name]), name
    other = save_checkpoint(build_model(ModelConfig()), tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="does not match the model config"):
        train(_cfg(tmp_path / "run", init_from=other), quiet=True)
    with pytest.raises(ConfigError, match="init_from already sets the decoder"):
        _cfg(tmp_path / "x", init_from=path, init_decoder_from=path)


def test_init_from_through_training_starts_from_the_checkpoint(tmp_path):
    train(_cfg(tmp_path / "pre", steps=2), quiet=True)
    pre_path = tmp_path / "pre" / "model.pth"
    train(_cfg(tmp_path / "run", steps=1, static_steps=0, init_from=pre_path, lr=1e-12), quiet=True)
    pre, run = load_checkpoint(pre_path), load_checkpoint(tmp_path / "run" / "model.pth")
    for part in ("key_encoder", "decoder"):
        for (name, a), b in zip(
            getattr(pre, part).named_parameters(), getattr(run, part).parameters(), strict=True
        ):
            assert torch.allclose(a, b, atol=1e-6), name


def test_training_memory_is_first_plus_previous_frame():
    """Frame t reads [frame 0, frame t-1]: keys and first-frame values as inference uses them."""
    model = build_model(TINY_CONFIG).eval()
    clip = make_clip(4, 64, 96, 2, seed=0)
    frames = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    frames = ((frames - mean) / std)[None]  # 1 x T x 3 x H x W
    labels = torch.from_numpy(clip.masks).long()[None]
    valid = torch.ones(1, 2, dtype=torch.bool)
    seen = []
    original = model.segment

    def spy(qk, mk, mv, f16c, f8, f4):
        seen.append((qk.clone(), mk.clone(), mv.clone()))
        return original(qk, mk, mv, f16c, f8, f4)

    model.segment = spy
    with torch.no_grad():
        ClipLoss(model, LossWeights())(frames, labels, valid)
        keys = [model.encode_key(frames[0, t : t + 1]).key for t in range(4)]
    n = keys[0].shape[2]
    assert len(seen) == 3
    for t, (qk, mk, mv) in enumerate(seen, start=1):
        assert mk.shape[2] == 2 * n and mv.shape[2] == 2 * n and qk.shape[0] == 2  # 2 objects
        torch.testing.assert_close(qk[:1], keys[t])
        torch.testing.assert_close(mk[:1, :, :n], keys[0])
        torch.testing.assert_close(mk[:1, :, n:], keys[t - 1])
    # The first-frame values are the ground-truth masks', the same on every frame.
    assert torch.equal(seen[0][2][:, :, :n], seen[2][2][:, :, :n])
    # The runtime driver (over TorchGraphs) feeds the decoder the same memory, one object a call.
    driver = SegmentationDriver(TorchGraphs(model), (64, 96))
    list(driver.run(clip.frames, clip.masks[0]))
    assert len(seen) == 3 + 3 * 2
    for t, (qa, ma, va) in enumerate(seen[:3]):
        for obj in range(2):
            qb, mb, vb = seen[3 + 2 * t + obj]
            torch.testing.assert_close(qa[obj : obj + 1], qb)
            torch.testing.assert_close(ma[obj : obj + 1], mb)
            torch.testing.assert_close(va[obj : obj + 1], vb, rtol=1e-4, atol=1e-5)


def test_training_evaluation_is_the_runtime_driver(tiny_model, monkeypatch):
    """Evaluation during and after training returns exactly the driver's labels."""
    clip = make_clip(5, 64, 96, 2, seed=4)
    for kind in ("none", "cv"):
        driver = SegmentationDriver(TorchGraphs(tiny_model), (64, 96), tracker_factory(kind))
        want = [driver.step(clip.frames[0], clip.masks[0])]
        want += [driver.step(frame) for frame in clip.frames[1:]]
        got = predict_clip(tiny_model, clip.frames, clip.masks[0], tracker_factory(kind))
        np.testing.assert_array_equal(got, np.stack(want))
        assert len(np.unique(got[1:])) > 1  # real decisions, not all background
    # validate (training's validation, evaluate_synthetic's scores) steps the driver every frame.
    steps = []
    real_step = SegmentationDriver.step

    def counting_step(self, frame, mask=None):
        steps.append(mask is not None)
        return real_step(self, frame, mask)

    monkeypatch.setattr(SegmentationDriver, "step", counting_step)
    validate(tiny_model, clips=2, frames=4, size=(64, 96), seed=0)
    assert steps == [True, False, False, False] * 2


def test_evaluate_synthetic_scores_every_tracker_kind(tiny_ckpt):
    scores = {
        kind: evaluate_synthetic(tiny_ckpt, clips=2, frames=4, size=(64, 96), tracker=kind)
        for kind in ("none", "cv", "pt")
    }
    for j, f, jf in scores.values():
        assert 0.0 <= j <= 1.0 and 0.0 <= f <= 1.0 and jf == pytest.approx((j + f) / 2)
    with pytest.raises(ConfigError, match="tracker 'kalman'"):
        evaluate_synthetic(tiny_ckpt, clips=1, frames=3, size=(64, 96), tracker="kalman")


def test_lr_schedule():
    cfg = TrainConfig(out_dir="x", steps=11, lr=1.0, lr_final=0.1, warmup_steps=2)
    assert lr_at(cfg, 0) == pytest.approx(0.5)
    assert lr_at(cfg, 2) < 1.0 and lr_at(cfg, 10) == pytest.approx(0.1)
    assert lr_at(TrainConfig(out_dir="x"), 500) == 1e-5


@pytest.mark.parametrize(
    ("kw", "word"),
    [
        ({"crop": (60, 96)}, "multiples of 16"),
        ({"seq_len": 1}, "sequence length"),
        ({"static_steps": 9}, "static_steps"),
        ({"ce": 0.0, "ssim": 0.0, "iou": 0.0}, "all loss weights are 0"),
        ({"copy_paste": 1.5}, "copy_paste"),
        ({"crop_scale": (0.6, 0.3)}, "crop_scale"),
    ],
)
def test_bad_options(tmp_path, kw, word):
    with pytest.raises(ConfigError, match=word):
        _cfg(tmp_path, **kw)


def test_cli_train_and_one_line_errors(tmp_path, monkeypatch, capsys):
    out = tmp_path / "cli"
    args = ["train", "-o", out, "--tiny", "--steps", "2", "--batch", "2", "--lr", "1e-3"]
    args += [
        "--crop",
        "64x96",
        "--seq-len",
        "3",
        "--no-ssim",
        "--val-every",
        "-1",
        "--threads",
        "1",
    ]
    assert run_cli(monkeypatch, *args) == 0
    rows = _rows(out / "log.csv")
    assert len(rows) == 2 and all(float(r["ssim"]) == 0 for r in rows)
    capsys.readouterr()
    assert run_cli(monkeypatch, "train", "-o", tmp_path / "x", "--crop", "60x96") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "multiples of 16" in err[0]
    assert run_cli(monkeypatch, "train", "-o", tmp_path / "y", "--tiny", "--data", tmp_path) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a DAVIS-2017" in err[0]


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "vosx.cli", "train", "-o", str(out), "--tiny", "--steps", "2", "--batch", "4"]
    cmd += ["--lr", "1e-3", "--crop", "64x96", "--seq-len", "3", "--val-every", "-1"]
    cmd += ["--threads", "1", "--static-steps", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert [r["step"] for r in _rows(out / "log.csv")] == ["0", "1"]  # rank 0 writes once
    ckpt = read_checkpoint(out / "last.pth")
    assert ckpt["step"] == 2
    # model.pth holds the final weights: those of last.pth (written at the same step).
    final = read_checkpoint(out / "model.pth")
    assert final["step"] == 2 and final["model"].keys() == ckpt["model"].keys()
    for name, tensor in ckpt["model"].items():
        assert torch.equal(final["model"][name], tensor), name
    # Each process trained on half of every global batch; the gradients were averaged, and
    # train() checked at the end that both processes hold identical weights.
    bad = cmd[:]
    bad[bad.index("--batch") + 1] = "3"
    res = subprocess.run(bad, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "does not split over 2 processes" in res.stderr
