"""``vosx segment`` and ``vosx.tracker_runtime.segment``: resizing, backends, trackers, bad input.

Shapes: frames H x W x 3 uint8 RGB, label maps H x W uint8 (0 = background). The tiny export
(``tiny_export_dir``) takes a padded 64 x 96 input, so 60 x 90 clips are padded and larger ones
(the real 480 x 854 clip) go through the downscale / upscale path.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY_SIZE, run_cli, shared_path
from vosx.errors import CheckpointError, ConfigError
from vosx.tracker_runtime.io import davis_palette, write_labels
from vosx.tracker_runtime.litert import TFLiteGraphs
from vosx.tracker_runtime.segment import (
    default_export_dir,
    downscale_labels,
    fit_size,
    padded_size,
    segment,
    upscale_labels,
)
from vosx.training.synthetic import make_clip


def write_clip(folder: Path, frames: np.ndarray, mask: np.ndarray) -> tuple[Path, Path]:
    """Frames as PNGs in ``folder/frames`` and the first mask as ``folder/mask.png``."""
    (folder / "frames").mkdir(parents=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / "frames" / f"{i:05d}.png")
    write_labels(folder / "mask.png", mask)
    return folder / "frames", folder / "mask.png"


def iou(a: np.ndarray, b: np.ndarray, ids) -> list[float]:
    """Per-object IoU of two label maps (1.0 when both lack the object)."""
    out = []
    for i in ids:
        inter = np.count_nonzero((a == i) & (b == i))
        union = np.count_nonzero((a == i) | (b == i))
        out.append(1.0 if union == 0 else inter / union)
    return out


@pytest.fixture(scope="module")
def tflite(tiny_export_dir):
    return TFLiteGraphs.open(tiny_export_dir)


# ---------------------------------------------------------------- resizing


def test_fit_size_keeps_aspect_and_only_shrinks():
    assert fit_size((60, 90), TINY_SIZE) == (60, 90)  # fits: padded by the driver
    assert fit_size((480, 854), TINY_SIZE) == (54, 96)  # width limits: 854 * 96/854
    assert fit_size((128, 96), TINY_SIZE) == (64, 48)  # height limits
    assert fit_size((128, 192), TINY_SIZE) == (64, 96)
    assert padded_size((480, 854)) == (480, 864) and padded_size((64, 96)) == (64, 96)


def test_label_resizing_keeps_every_object():
    labels = np.zeros((100, 160), np.uint8)
    labels[10:60, 20:100] = 1
    labels[80, 150] = 2  # one pixel: lost by plain nearest or area downscaling
    small = downscale_labels(labels, (10, 16))
    assert small.shape == (10, 16) and set(np.unique(small)) == {0, 1, 2}
    assert (small == 2).sum() == 1 and small[8, 15] == 2
    assert (small[1:6, 2:10] == 1).all()  # area majority
    big = upscale_labels(small, (100, 160))
    assert big.shape == (100, 160) and big.dtype == np.uint8
    assert set(np.unique(big)) == {0, 1, 2}


# ---------------------------------------------------------------- library


@pytest.mark.slow
def test_tflite_and_torch_backends_agree(tflite, tiny_model, monkeypatch):
    """Labels agree on a one-object clip; soft-aggregated maps agree on a two-object clip.

    (The random tiny model gives two objects nearly equal logits almost everywhere, so which one
    wins a pixel is decided by float rounding; its probabilities are what can be compared.)
    """
    from vosx.model.graphs import TorchGraphs
    from vosx.tracker_runtime.driver import SegmentationDriver

    backends = (tflite, TorchGraphs(tiny_model))
    one = make_clip(8, 120, 180, 1, seed=2)  # downscaled to 64 x 96 for both backends
    runs = [list(segment(one.frames, one.masks[0], g, TINY_SIZE)) for g in backends]
    assert all(len(r) == 8 and r[-1].shape == (120, 180) for r in runs)
    np.testing.assert_array_equal(runs[0][0], one.masks[0])
    scores = [s for a, b in zip(*runs, strict=True) for s in iou(a, b, (1,))]
    assert np.mean(scores) >= 0.999, scores
    assert np.count_nonzero(runs[0][-1]) > 0

    probs = {}  # backend -> per frame K+1 x Hp x Wp soft-aggregated probabilities
    real_step = SegmentationDriver.step

    def recording_step(self, frame, mask=None):
        labels = real_step(self, frame, mask)
        probs.setdefault(id(self.graphs), []).append(self.prob.copy())
        return labels

    monkeypatch.setattr(SegmentationDriver, "step", recording_step)
    two = make_clip(8, 120, 180, 2, seed=5)
    for g in backends:
        list(segment(two.frames, two.masks[0], g, TINY_SIZE))
    a, b = (probs[id(g)] for g in backends)
    assert len(a) == len(b) == 8 and a[1].shape == (3, *TINY_SIZE)
    for t, (pa, pb) in enumerate(zip(a, b, strict=True)):
        np.testing.assert_allclose(pa, pb, atol=1e-5, err_msg=f"frame {t}")


@pytest.mark.parametrize("kind", ["none", "cv", "pt"])
@pytest.mark.slow
def test_trackers_run_on_every_object_and_frame(tflite, monkeypatch, kind):
    from vosx.tracker_runtime import trackers

    calls = []
    real_step = trackers.BoxTracker.step

    def counting_step(self, prob):
        calls.append(prob.shape)
        return real_step(self, prob)

    monkeypatch.setattr(trackers.BoxTracker, "step", counting_step)
    clip = make_clip(5, 60, 90, 2, seed=1)
    out = list(segment(clip.frames, clip.masks[0], tflite, TINY_SIZE, kind, margin=0.2))
    assert len(out) == 5 and all(o.shape == (60, 90) and o.dtype == np.uint8 for o in out)
    assert set(np.unique(np.stack(out))) <= {0, 1, 2}
    # one step per object per frame (the first from the mask), on the unpadded 60 x 90 map
    assert calls == ([] if kind == "none" else [(60, 90)] * 2 * 5)


@pytest.mark.slow
def test_segment_checks_arguments_eagerly(tflite, tmp_path):
    clip = make_clip(2, 60, 90, 1, seed=2)
    with pytest.raises(ConfigError, match="unknown"):
        segment(clip.frames, clip.masks[0], tflite, TINY_SIZE, "kalman")
    with pytest.raises(ConfigError, match="margin"):
        segment(clip.frames, clip.masks[0], tflite, TINY_SIZE, "cv", margin=-1.0)
    with pytest.raises(CheckpointError, match="no such tracker weights"):
        segment(clip.frames, clip.masks[0], tflite, TINY_SIZE, "pt", pt_path=tmp_path / "x.npz")


@pytest.mark.slow
def test_library_runs_without_torch_or_tensorflow(tiny_export_dir, tmp_path):
    clip = make_clip(4, 96, 140, 2, seed=4)  # larger than 64 x 96: the resize path
    frames_dir, mask = write_clip(tmp_path, clip.frames, clip.masks[0])
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import vosx.tracker_runtime\n"
        "from vosx.tracker_runtime.io import Frames, read_first_mask\n"
        "from vosx.tracker_runtime.litert import TFLiteGraphs\n"
        "from vosx.tracker_runtime.segment import segment\n"
        "export, frames_dir, mask = sys.argv[1:]\n"
        "graphs = TFLiteGraphs.open(export, 'fp16')\n"
        "frames = Frames(Path(frames_dir))\n"
        "first = read_first_mask(Path(mask), frames.size)\n"
        "out = list(segment(frames, first, graphs, graphs.manifest.input_size, 'pt'))\n"
        "assert len(out) == 4 and out[-1].shape == (96, 140), [o.shape for o in out]\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow'))\n"
        "assert not heavy, heavy[:5]\n"
        "print('segmented', len(out))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tiny_export_dir), str(frames_dir), str(mask)],
        capture_output=True,
        text=True,
        env={**os.environ, "VOSX_RAISE_ERRORS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "segmented 4" in result.stdout


# ---------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_real_clip_resize_path(tiny_export_dir, tmp_path, monkeypatch, capsys):
    judo = shared_path("fixtures", "real_clips", "judo")
    out = tmp_path / "pred"
    gif = tmp_path / "overlay.gif"
    code = run_cli(
        monkeypatch,
        "segment",
        judo / "frames",
        "--mask",
        judo / "first_mask.png",
        "--model",
        tiny_export_dir,
        "--tracker",
        "cv",
        "-o",
        out,
        "--overlay",
        gif,
    )
    assert code in (None, 0), capsys.readouterr().err
    assert "wrote 16 label PNGs" in capsys.readouterr().out
    names = sorted(p.stem for p in (judo / "frames").iterdir())
    assert sorted(p.stem for p in out.iterdir()) == names and len(names) == 16
    first = np.asarray(Image.open(judo / "first_mask.png"))
    for p in sorted(out.iterdir()):
        with Image.open(p) as im:
            assert im.mode == "P" and im.size == (854, 480)  # the input's own size
            pal = np.asarray(im.getpalette(), np.uint8).reshape(-1, 3)
            np.testing.assert_array_equal(pal[:4], davis_palette()[:4])
            labels = np.asarray(im)
        assert set(np.unique(labels)) <= {0, 1}
        if p.stem == names[0]:
            np.testing.assert_array_equal(labels, first)
    with Image.open(gif) as im:
        assert im.n_frames == 16 and im.size == (854, 480)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overlay.gif", "pred"]  # no temp left


def test_cli_torch_backend_and_force(tiny_ckpt, tmp_path, monkeypatch, capsys):
    clip = make_clip(3, 60, 90, 2, seed=6)
    frames_dir, mask = write_clip(tmp_path, clip.frames, clip.masks[0])
    out = tmp_path / "pred"
    out.mkdir()
    (out / "stale.png").write_bytes(b"old")
    args = ["segment", frames_dir, "--mask", mask, "--backend", "torch", "--checkpoint", tiny_ckpt]
    assert run_cli(monkeypatch, *args, "-o", out) == 1
    assert "--force" in capsys.readouterr().err
    assert run_cli(monkeypatch, *args, "-o", out, "--force") in (None, 0)
    assert "torch" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "mask.png", "pred"]


@pytest.mark.slow
def test_cli_exports_once_into_the_cache(tiny_export_dir, tiny_ckpt, tmp_path, monkeypatch, capsys):
    """Without --model the checkpoint is exported at the frames' padded size, then reused."""
    from vosx.export import pipeline
    from vosx.export.report import ExportReport
    from vosx.export_folder import sha256_file

    exported = []

    def fake_export_all(opts, progress=None):  # the real one is tested in test_export.py
        exported.append(opts)
        shutil.copytree(tiny_export_dir, opts.out_dir)
        saved = (opts.out_dir / "report.json").read_text()
        return ExportReport.from_json(json.loads(saved), opts.out_dir)

    monkeypatch.setattr(pipeline, "export_all", fake_export_all)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    clip = make_clip(3, 50, 81, 1, seed=7)  # pads to 64 x 96
    frames_dir, mask = write_clip(tmp_path, clip.frames, clip.masks[0])
    args = ["segment", frames_dir, "--mask", mask, "--checkpoint", tiny_ckpt]
    assert run_cli(monkeypatch, *args, "-o", tmp_path / "a") in (None, 0)
    err = capsys.readouterr().err
    assert "exporting" in err and "later runs reuse it" in err
    assert "a full `vosx export` verifies more" in err  # the implicit export checks less
    assert run_cli(monkeypatch, *args, "-o", tmp_path / "b") in (None, 0)
    assert "exporting" not in capsys.readouterr().err
    assert len(exported) == 1
    opts = exported[0]
    expected = tmp_path / "cache" / "vosx" / "exports" / f"{sha256_file(tiny_ckpt)[:12]}-64x96"
    assert opts.out_dir == expected == default_export_dir(sha256_file(tiny_ckpt), (64, 96))
    assert opts.size == (64, 96) and opts.precisions == ("fp32",)  # only what segment runs
    assert opts.scope == "segment"
    assert opts.checkpoint == tiny_ckpt
    for name in ("a", "b"):
        assert len(list((tmp_path / name).iterdir())) == 3


def _mixed_sizes(d):
    Image.fromarray(np.zeros((50, 90, 3), np.uint8)).save(d / "frames" / "00001.png")
    return [], "all frames of a video must have one size"


def _mask_size(d):
    write_labels(d / "mask.png", np.ones((50, 90), np.uint8))
    return [], "mask is 50x90 but the frames are 60x90"


def _mask_empty(d):
    write_labels(d / "mask.png", np.zeros((60, 90), np.uint8))
    return [], "has no object"


def _empty_folder(d):
    for p in (d / "frames").iterdir():
        p.unlink()
    return [], "has no"


def _unreadable(d):
    (d / "frames" / "00002.png").write_bytes(b"not an image")
    return [], "cannot read the image"


def _no_manifest(d):
    (d / "model").mkdir()
    return ["--model", d / "model"], "no manifest.json"


def _bad_sha(d, export_dir):
    shutil.copytree(export_dir, d / "model")
    with open(d / "model" / "decoder_float32.tflite", "ab") as f:
        f.write(b"\0")
    return ["--model", d / "model"], "sha256 does not match"


@pytest.mark.parametrize(
    "make_bad",
    [_mixed_sizes, _mask_size, _mask_empty, _empty_folder, _unreadable, _no_manifest, _bad_sha],
)
def test_cli_bad_input_is_one_line_and_leaves_nothing(
    make_bad, tiny_export_dir, tmp_path, monkeypatch, capsys
):
    clip = make_clip(4, 60, 90, 2, seed=8)
    write_clip(tmp_path, clip.frames, clip.masks[0])
    if make_bad is _bad_sha:
        extra, message = make_bad(tmp_path, tiny_export_dir)
    else:
        extra, message = make_bad(tmp_path)
    model = [] if extra else ["--model", tiny_export_dir]
    before = sorted(p.name for p in tmp_path.iterdir())
    code = run_cli(
        monkeypatch,
        "segment",
        tmp_path / "frames",
        "--mask",
        tmp_path / "mask.png",
        *model,
        *extra,
        "-o",
        tmp_path / "pred",
        "--overlay",
        tmp_path / "overlay.gif",
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("vosx: error: ") and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no temp files


@pytest.mark.slow
def test_cli_bad_options_are_one_line(tiny_export_dir, tiny_ckpt, tmp_path, monkeypatch, capsys):
    clip = make_clip(2, 60, 90, 1, seed=9)
    frames_dir, mask = write_clip(tmp_path, clip.frames, clip.masks[0])
    base = ["segment", frames_dir, "--mask", mask, "-o", tmp_path / "pred"]
    cases = [
        (["--model", tiny_export_dir, "--overlay", tmp_path / "o.avi"], "must end in .gif or .mp4"),
        (["--model", tiny_export_dir, "--checkpoint", tiny_ckpt], "drop one of them"),
        (["--model", tiny_export_dir, "--precision", "int8"], "no int8 file"),
        (["--model", tiny_export_dir, "--tracker", "cv", "--margin", "-1"], "margin"),
        (["--checkpoint", tmp_path / "none.pth"], "no such checkpoint file"),
    ]
    for extra, message in cases:
        assert run_cli(monkeypatch, *base, *extra) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (extra, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "mask.png"]


def test_default_tracker_is_defined_once():
    # The CLI reads its defaults from the stdlib-only SegmentOptions; the library's own default
    # (tracker_runtime.trackers.DEFAULT_TRACKER, chosen on real training sequences) must agree.
    import inspect

    from vosx.segment_video import SegmentOptions
    from vosx.tracker_runtime import segment as segment_mod
    from vosx.tracker_runtime.trackers import DEFAULT_TRACKER, TRACKER_KINDS

    assert DEFAULT_TRACKER in TRACKER_KINDS
    assert SegmentOptions.tracker == DEFAULT_TRACKER
    assert inspect.signature(segment_mod.segment).parameters["tracker"].default == DEFAULT_TRACKER
