"""Trick 3 trackers: box semantics, hand-computed Algorithm 1, a literal reference, PT vs torch.

Maps are H x W float32 in [0, 1]; boxes are (x, y, w, h) inclusive pixel bounds of map > 0.5.
"""

import math

import numpy as np
import pytest

from vosx.errors import CheckpointError, ConfigError
from vosx.tracker_runtime.boxes import (
    Box,
    attention_map,
    box_in_window,
    box_of,
    motion,
    predicted_window,
)
from vosx.tracker_runtime.trackers import (
    ConstantVelocityTracker,
    MotionMLP,
    ParametricTracker,
    gelu,
)


def square(h, w, x, y, sw, sh, value=0.9, base=None):
    """An H x W map with a filled rectangle at columns x..x+sw-1, rows y..y+sh-1."""
    m = np.zeros((h, w), np.float32) if base is None else base.copy()
    m[y : y + sh, x : x + sw] = value
    return m


# ---------------------------------------------------------------- boxes


def test_box_of_inclusive_bounds_and_strict_threshold():
    m = np.zeros((10, 12), np.float32)
    m[2, 3] = 0.51
    m[6, 9] = 1.0
    m[8, 11] = 0.5  # exactly 0.5 is not above the threshold
    assert box_of(m) == Box(3, 2, 7, 5)
    assert box_of(np.full((4, 4), 0.5, np.float32)) is None
    one = np.zeros((5, 5), np.float32)
    one[4, 4] = 0.7
    assert box_of(one) == Box(4, 4, 1, 1)


def test_box_in_window_equals_box_of_filtered_map():
    rng = np.random.default_rng(1)
    for _ in range(50):
        m = (rng.random((20, 30)) > 0.93).astype(np.float32) * rng.uniform(0.4, 1.0)
        y0, x0 = rng.integers(0, 20), rng.integers(0, 30)
        win = (y0, rng.integers(y0, 21), x0, rng.integers(x0, 31))
        assert box_in_window(m, win) == box_of(m * attention_map(win, 20, 30))


def test_motion_is_difference_of_boxes():
    assert motion(Box(10, 20, 5, 6), Box(13, 18, 7, 6)) == (3, -2, 2, 0)


@pytest.mark.parametrize(
    "box, margin, expected",
    [
        ((10, 20, 5, 6), 0.0, (20, 26, 10, 15)),  # margin 0: exactly the box
        ((10, 20, 30, 10), 0.1, (19, 31, 7, 43)),  # 3 px and 1 px per side, no float-noise pixel
        ((10, 20, 10, 10), 0.25, (17, 33, 7, 23)),  # 2.5 px rounds outward to 3
        ((10.4, 20.6, 5.2, 3.0), 0.0, (20, 24, 10, 16)),  # fractional box: floor / ceil
        ((-3, 2, 10, 50), 0.0, (2, 40, 0, 7)),  # clipped to the 40 x 60 frame
        ((10, 20, 0, 5), 0.5, (0, 0, 0, 0)),  # empty box: empty window
        ((10, 20, 5, -2), 0.0, (0, 0, 0, 0)),
        ((-49, 31, 8, 3), 0.0, (0, 0, 0, 0)),  # entirely left of the frame
        ((70, 31, 8, 3), 0.0, (0, 0, 0, 0)),  # entirely right of the frame
    ],
)
def test_predicted_window_grows_rounds_outward_and_clips(box, margin, expected):
    assert predicted_window(box, margin, 40, 60) == expected


# ---------------------------------------------------------------- Algorithm 1 by hand


def test_cv_margin0_is_algorithm1_by_hand():
    h, w = 40, 60
    tr = ConstantVelocityTracker(margin=0)
    f0 = square(h, w, 10, 20, 5, 5)
    f1 = square(h, w, 12, 20, 5, 5)
    # frames 0 and 1 only initialise: output is the input itself
    assert tr.step(f0) is f0 and tr.box == Box(10, 20, 5, 5)
    assert tr.step(f1) is f1 and tr.box == Box(12, 20, 5, 5)
    # frame 2: T = (2, 0, 0, 0); predicted box (14, 20, 5, 5); a distractor far away is removed
    f2 = square(h, w, 50, 5, 3, 3, base=square(h, w, 14, 20, 5, 5))
    out2 = tr.step(f2)
    expected2 = square(h, w, 14, 20, 5, 5)
    np.testing.assert_array_equal(out2, expected2)
    assert tr.window == (20, 25, 14, 19) and tr.box == Box(14, 20, 5, 5)
    # frame 3: the object grows to 6 wide at x=16; predicted (16, 20, 5, 5) cuts column 21 off
    f3 = square(h, w, 16, 20, 6, 5)
    out3 = tr.step(f3)
    np.testing.assert_array_equal(out3, square(h, w, 16, 20, 5, 5))
    assert tr.box == Box(16, 20, 5, 5)
    # frame 4: T = (2, 0, 0, 0) again; soft values below 0.5 inside the box are kept as they are
    f4 = square(h, w, 18, 20, 5, 5)
    f4[0, 0] = 0.3
    f4[21, 19] = 0.2
    out4 = tr.step(f4)
    assert out4[21, 19] == np.float32(0.2) and out4[0, 0] == 0
    np.testing.assert_array_equal(out4, f4 * attention_map((20, 25, 18, 23), h, w))


def test_cv_with_margin_keeps_growing_object():
    h, w = 40, 60
    tr = ConstantVelocityTracker(margin=0.2)
    tr.step(square(h, w, 10, 10, 10, 10))
    tr.step(square(h, w, 12, 10, 10, 10))
    # predicted (14, 10, 10, 10) grown by 2 px per side -> columns 12..25, rows 8..21
    f2 = square(h, w, 14, 10, 12, 11)  # columns 14..25, rows 10..20: inside the window
    out = tr.step(f2)
    assert tr.window == (8, 22, 12, 26)
    np.testing.assert_array_equal(out, f2)
    assert tr.box == Box(14, 10, 12, 11)


def test_lost_object_passes_through_until_two_boxes_again():
    h, w = 30, 40
    tr = ConstantVelocityTracker(margin=0)
    tr.step(square(h, w, 5, 5, 4, 4))
    tr.step(square(h, w, 6, 5, 4, 4))
    # frame 2: the object jumps out of the predicted box: the filtered map is empty and returned
    f2 = square(h, w, 30, 20, 4, 4)
    out2 = tr.step(f2)
    assert not (out2 > 0.5).any() and tr.box is None
    # frames 3 and 4 pass through unfiltered (one box, then two consecutive boxes)
    f3 = square(h, w, 31, 20, 4, 4)
    assert tr.step(f3) is f3 and tr.window is None
    f4 = square(h, w, 32, 20, 4, 4)
    assert tr.step(f4) is f4 and tr.window is None
    # frame 5 is filtered again with T = (1, 0, 0, 0): predicted box (33, 20, 4, 4)
    f5 = square(h, w, 33, 20, 4, 4, base=square(h, w, 0, 0, 2, 2))
    out5 = tr.step(f5)
    assert tr.window == (20, 24, 33, 37)
    np.testing.assert_array_equal(out5, square(h, w, 33, 20, 4, 4))


def test_empty_map_in_initialisation_breaks_consecutiveness():
    h, w = 20, 20
    tr = ConstantVelocityTracker(margin=0)
    empty = np.zeros((h, w), np.float32)
    tr.step(square(h, w, 2, 2, 3, 3))
    assert tr.step(empty) is empty and tr.box is None
    f = square(h, w, 4, 2, 3, 3)
    assert tr.step(f) is f  # one box only: still initialising
    g = square(h, w, 5, 2, 3, 3, base=square(h, w, 15, 15, 2, 2))
    assert tr.step(g) is g  # second consecutive box
    # filtering resumes: T = (5, 2, 12, 15) - (4, 2, 3, 3) = (1, 0, 9, 12); predicted box
    # (6, 2, 21, 27) clipped to the 20 x 20 frame
    tr.step(square(h, w, 6, 2, 3, 3))
    assert tr.window == (2, 20, 6, 20)


def test_reset_forgets_boxes_and_output_buffer_is_read_only():
    h, w = 20, 30
    tr = ConstantVelocityTracker(margin=0)
    for x in (2, 3):
        tr.step(square(h, w, x, 2, 3, 3))
    out = tr.step(square(h, w, 4, 2, 3, 3, base=square(h, w, 20, 10, 3, 3)))
    assert not out.flags.writeable
    tr.reset()
    assert tr.box is None
    f = square(h, w, 20, 10, 3, 3)
    assert tr.step(f) is f


def test_window_covering_whole_frame_returns_input():
    tr = ConstantVelocityTracker(margin=2.0)
    for x in (2, 3, 4):
        f = square(10, 10, x, 2, 4, 4)
        out = tr.step(f)
    assert tr.window == (0, 10, 0, 10) and out is f


def test_bad_margin_is_config_error():
    for bad in (-0.1, float("nan"), "0.1"):
        with pytest.raises(ConfigError, match="margin"):
            ConstantVelocityTracker(margin=bad)


# ---------------------------------------------------------------- literal reference


class ReferenceTrick3:
    """Algorithm 1 written literally: full-frame argwhere, dense attention map, multiply."""

    def __init__(self, margin, predict):
        self.margin, self.predict, self.boxes = margin, predict, []

    @staticmethod
    def init(m):
        idx = np.argwhere(m > 0.5)
        if len(idx) == 0:
            return None
        (y0, x0), (y1, x1) = idx.min(0), idx.max(0)
        return (x0, y0, x1 - x0 + 1, y1 - y0 + 1)

    def step(self, m):
        h, w = m.shape
        if len(self.boxes) < 2 or self.boxes[-1] is None or self.boxes[-2] is None:
            self.boxes.append(self.init(m))
            return m
        b1, b2 = self.boxes[-2], self.boxes[-1]
        t = tuple(b - a for a, b in zip(b1, b2, strict=True))
        d = self.predict(t, h, w)
        bx, by, bw, bh = (b2[i] + d[i] for i in range(4))
        am = np.zeros((h, w), np.float32)
        if bw > 0 and bh > 0:
            snap = lambda v, f: round(v) if abs(v - round(v)) <= 1e-6 else f(v)  # noqa: E731
            x0 = snap(bx - self.margin * bw, math.floor)
            x1 = snap(bx + bw + self.margin * bw, math.ceil)
            y0 = snap(by - self.margin * bh, math.floor)
            y1 = snap(by + bh + self.margin * bh, math.ceil)
            cols, rows = np.arange(w), np.arange(h)
            am[(rows >= y0) & (rows < y1)] = 1
            am[:, (cols < x0) | (cols >= x1)] = 0
        out = m * am
        self.boxes.append(self.init(out))
        return out


def random_clip(rng, n, h, w):
    """A blob drifting with noise, distractors, and some empty frames."""
    frames = []
    x, y, vx, vy = 20.0, 15.0, 1.5, 0.7
    for _ in range(n):
        m = rng.random((h, w)).astype(np.float32) * 0.45
        if rng.random() > 0.1:
            sw, sh = int(rng.integers(4, 12)), int(rng.integers(4, 12))
            m[int(y) : int(y) + sh, int(x) : int(x) + sw] = rng.uniform(0.55, 1.0)
        if rng.random() > 0.6:
            m[rng.integers(0, h - 3), rng.integers(0, w - 3)] = 0.8
        x, y = (x + vx) % (w - 12), (y + vy) % (h - 12)
        frames.append(m)
    return frames


@pytest.mark.parametrize("margin", [0.0, 0.1, 0.35])
def test_cv_equals_literal_reference(margin):
    rng = np.random.default_rng(7)
    for _ in range(4):
        tr = ConstantVelocityTracker(margin=margin)
        ref = ReferenceTrick3(margin, lambda t, h, w: t)
        filtered = lost = 0
        for m in random_clip(rng, 40, 48, 64):
            np.testing.assert_array_equal(tr.step(m), ref.step(m))
            filtered += tr.window is not None
            lost += tr.window is not None and tr.box is None
        assert filtered > 10 and lost > 0  # both branches were exercised


# ---------------------------------------------------------------- PT


def identity_free_mlp(bias_out, hidden=8, scale=(0.1, 0.1, 0.1, 0.1)):
    """An MLP whose output is the constant ``bias_out`` (last layer weights are zero)."""
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=(4, hidden))] + [rng.normal(size=(hidden, hidden)) for _ in range(3)]
    ws.append(np.zeros((hidden, 4)))
    bs = [rng.normal(size=hidden) for _ in range(4)] + [np.asarray(bias_out, float)]
    return MotionMLP(ws, bs, scale)


def test_pt_applies_predicted_motion_by_hand():
    # v = (0.5, 0, 0.2, 0) -> T' = v * 0.1 * (W, H, W, H) = (5, 0, 2, 0) px for W = 100
    mlp = identity_free_mlp((0.5, 0.0, 0.2, 0.0))
    assert mlp.predict((3, 1, 0, 0), 50, 100) == pytest.approx((5.0, 0.0, 2.0, 0.0))
    tr = ParametricTracker(mlp, margin=0)
    tr.step(square(50, 100, 10, 10, 6, 6))
    tr.step(square(50, 100, 13, 11, 6, 6))
    out = tr.step(square(50, 100, 18, 11, 9, 6, base=square(50, 100, 80, 40, 3, 3)))
    # predicted (13 + 5, 11, 6 + 2, 6): columns 18..25, rows 11..16
    assert tr.window == (11, 17, 18, 26)
    np.testing.assert_array_equal(out, square(50, 100, 18, 11, 8, 6))


def test_pt_equals_literal_reference_with_same_mlp():
    mlp = identity_free_mlp((0.2, -0.1, 0.05, 0.0))
    mlp.weights[-1] = np.random.default_rng(3).normal(size=(8, 4)) * 0.3
    rng = np.random.default_rng(11)
    tr = ParametricTracker(mlp, margin=0.1)
    ref = ReferenceTrick3(0.1, mlp.predict)
    for m in random_clip(rng, 40, 48, 64):
        np.testing.assert_array_equal(tr.step(m), ref.step(m))


def test_gelu_is_exact_erf_form():
    x = np.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    expected = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x]
    np.testing.assert_allclose(gelu(x), expected, rtol=0, atol=1e-15)
    assert gelu(x.reshape(5, 1)).shape == (5, 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_forward_matches_torch_to_1e6(dtype):
    import torch

    from vosx.training.tracker_train import MotionNet

    torch.manual_seed(0)
    net = MotionNet(hidden=32).to(getattr(torch, dtype)).eval()
    with torch.no_grad():  # larger weights than the default init, so GELU's curve matters
        for p in net.parameters():
            p.mul_(3.0)
    mlp = net.to_numpy(motion_scale=np.ones(4))
    u = np.random.default_rng(0).normal(0, 2, (256, 4))
    with torch.no_grad():
        ref = net(torch.as_tensor(u, dtype=getattr(torch, dtype))).double().numpy()
    got = mlp.forward(u)
    assert np.abs(ref).max() > 0.5  # not a trivially small output
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_mlp_save_load_roundtrip(tmp_path):
    mlp = identity_free_mlp((0.1, 0.2, 0.3, 0.4), scale=(0.01, 0.02, 0.03, 0.04))
    path = mlp.save(tmp_path / "pt.npz")
    back = ParametricTracker.load(path, margin=0.05)
    assert back.margin == 0.05 and back.mlp.hidden == 8
    u = np.random.default_rng(2).normal(size=(10, 4))
    np.testing.assert_allclose(back.mlp.forward(u), mlp.forward(u), atol=1e-5)
    np.testing.assert_allclose(back.mlp.motion_scale, (0.01, 0.02, 0.03, 0.04), rtol=1e-6)


def test_mlp_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such tracker weights file"):
        MotionMLP.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable .npz"):
        MotionMLP.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a vosx-pt-tracker"):
        MotionMLP.load(other)


def test_bundled_pt_weights_load():
    from importlib.resources import files

    path = files("vosx") / "assets" / "pt_tracker.npz"
    tr = ParametricTracker.load(path)
    assert tr.mlp.hidden > 0
    # trained with boxes smaller than the truth weighted 4x, PT covers the constant-velocity box
    # of a steady motion with a few pixels to spare on every side, at 480p
    for t in ((4, 0, 0, 0), (-6, 3, 0, 0), (0, 0, 0, 0)):
        dx, dy, dw, dh = tr.mlp.predict(t, 480, 854)
        assert dx <= t[0] and dx + dw >= t[0] and dy <= t[1] and dy + dh >= t[1], (t, dx, dy)
        assert max(abs(dx - t[0]), abs(dy - t[1]), abs(dw), abs(dh)) < 20


def test_runtime_modules_load_neither_torch_nor_tensorflow(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from vosx.tracker_runtime import boxes, io, metrics, trackers\n"
        "tr = trackers.ConstantVelocityTracker()\n"
        "for x in (2, 3, 4):\n"
        "    m = np.zeros((20, 30), np.float32); m[5:9, x:x + 4] = 1; tr.step(m)\n"
        "trackers.ParametricTracker.load(sys.argv[1]).step(m)\n"
        "gt = np.zeros((3, 20, 30), np.uint8); gt[:, 5:9, 5:9] = 1\n"
        "metrics.evaluate_labels('s', gt, gt)\n"
        "io.write_labels(sys.argv[2], gt[0]); io.read_labels(sys.argv[2])\n"
        "heavy = [m for m in ('torch', 'tensorflow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    from importlib.resources import files

    pt = str(files("vosx") / "assets" / "pt_tracker.npz")
    subprocess.run([sys.executable, "-c", code, pt, str(tmp_path / "m.png")], check=True)


# ---------------------------------------------------------------- PT training


def test_box_tracks_and_samples_by_hand():
    from vosx.training.tracker_train import box_tracks, samples_from_tracks

    labels = np.zeros((4, 10, 20), np.uint8)
    for t, x in enumerate((2, 4, 7, 9)):
        labels[t, 3:5, x : x + 3] = 1
    labels[0, 8, 18] = 2  # object 2: only in frames 0 and 3
    labels[3, 8, 17] = 2
    tracks = box_tracks(labels)
    assert tracks[0] == [Box(2, 3, 3, 2), Box(4, 3, 3, 2), Box(7, 3, 3, 2), Box(9, 3, 3, 2)]
    assert tracks[1] == [Box(18, 8, 1, 1), None, None, Box(17, 8, 1, 1)]
    s = samples_from_tracks(tracks, 10, 20)
    # two triples of object 1; none of object 2 (not 3 consecutive boxes)
    np.testing.assert_allclose(s.t_in, [[2 / 20, 0, 0, 0], [3 / 20, 0, 0, 0]])
    np.testing.assert_allclose(s.t_out, [[3 / 20, 0, 0, 0], [2 / 20, 0, 0, 0]])


def test_edge_loss_weighs_boxes_smaller_than_ground_truth():
    import torch

    from vosx.training.tracker_train import edge_loss

    target = torch.zeros(1, 4)
    # predicted left edge 0.1 to the right of the truth (cuts the object): weight 4; the right
    # edge moves with it (outside the object): weight 1 -> (4 * 0.1 + 1 * 0.1) / 4
    assert float(edge_loss(torch.tensor([[0.1, 0, 0, 0]]), target, 4.0)) == pytest.approx(0.125)
    # the mirror error (box moved left) cuts on the right instead: same loss
    assert float(edge_loss(torch.tensor([[-0.1, 0, 0, 0]]), target, 4.0)) == pytest.approx(0.125)
    # a box grown by 0.1 on the right cuts nothing; shrunk by 0.1 cuts on the right
    assert float(edge_loss(torch.tensor([[0, 0, 0.1, 0]]), target, 4.0)) == pytest.approx(0.025)
    assert float(edge_loss(torch.tensor([[0, 0, -0.1, 0]]), target, 4.0)) == pytest.approx(0.1)


def test_training_beats_zero_motion_and_exports_equal_forward():
    import torch

    from vosx.training.tracker_train import (
        MotionSamples,
        TrackerTrainConfig,
        edge_loss,
        train_motion_mlp,
    )

    rng = np.random.default_rng(0)
    t_in = rng.normal(0, 0.02, (600, 4))
    t_out = t_in * 0.8  # damped motion
    train = MotionSamples(t_in[:500], t_out[:500])
    val = MotionSamples(t_in[500:], t_out[500:])
    cfg = TrackerTrainConfig(hidden=16, steps=1000, batch_size=256, lr=1e-2)
    res = train_motion_mlp(train, val, cfg)
    zero = 1000 * float(edge_loss(torch.zeros(100, 4), torch.as_tensor(val.t_out), 4.0))
    assert res.val_loss < 0.2 * zero
    assert res.mlp.hidden == 16 and res.num_train == 500 and res.num_val == 100
    # the saved network predicts in pixels: normalise, forward, de-normalise
    d = res.mlp.predict((10, -4, 2, 0), 240, 432)
    assert d[0] == pytest.approx(8.0, abs=1.5) and d[1] == pytest.approx(-3.2, abs=1.0)


def test_train_tracker_cli(tmp_path, monkeypatch, capsys):
    from tests.conftest import run_cli

    def run(*args):
        return run_cli(monkeypatch, *args)

    out = tmp_path / "pt.npz"
    args = ("train-tracker", out, "--synthetic", 3, "--frames", 6, "--size", "48x64")
    assert run(*args, "--steps", 20, "--hidden", 8) in (0, None)
    text = capsys.readouterr().out
    assert "constant velocity" in text and "wrote" in text
    assert ParametricTracker.load(out).mlp.hidden == 8
    assert (out.stat().st_mode & 0o777) == 0o644
    assert run(*args) == 1
    assert "--force" in capsys.readouterr().err
    assert run("train-tracker", tmp_path / "x.npz", "--synthetic", 0) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no training data" in err[0]
    assert not (tmp_path / "x.npz").exists() and not list(tmp_path.glob(".pt-*"))


def test_tracker_factory(tmp_path):
    from vosx.tracker_runtime.trackers import (
        DEFAULT_MARGIN_CV,
        DEFAULT_MARGIN_PT,
        tracker_factory,
    )

    assert tracker_factory("none") is None
    make = tracker_factory("cv")
    a, b = make(), make()
    assert isinstance(a, ConstantVelocityTracker) and a is not b and a.margin == DEFAULT_MARGIN_CV
    pt = tracker_factory("pt")()
    assert isinstance(pt, ParametricTracker) and pt.margin == DEFAULT_MARGIN_PT
    assert tracker_factory("pt", margin=0.0)().margin == 0.0
    with pytest.raises(ConfigError, match="unknown"):
        tracker_factory("kalman")
    with pytest.raises(ConfigError, match="margin"):
        tracker_factory("cv", margin=-1)
    with pytest.raises(CheckpointError, match="no such tracker weights"):
        tracker_factory("pt", pt_path=tmp_path / "missing.npz")
