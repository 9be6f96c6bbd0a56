"""Tests of the NumPy synthetic clip generator (``vosx.training.synthetic``)."""

import subprocess
import sys

import numpy as np
import pytest

from vosx.training.synthetic import SyntheticClip, deform_to_clip, make_clip, make_static_image


def test_shapes_dtypes_and_labels():
    clip = make_clip(6, 64, 96, 3, seed=0)
    assert isinstance(clip, SyntheticClip)
    assert clip.frames.shape == (6, 64, 96, 3) and clip.frames.dtype == np.uint8
    assert clip.masks.shape == (6, 64, 96) and clip.masks.dtype == np.uint8
    assert set(np.unique(clip.masks)) <= {0, 1, 2, 3}
    assert clip.num_objects == 3


@pytest.mark.parametrize("k", [1, 2, 5, 9])
def test_every_object_visible_in_first_frame(k):
    for seed in range(4):
        clip = make_clip(2, 64, 96, k, seed=seed)
        labels = set(np.unique(clip.masks[0]).tolist())
        assert labels == set(range(k + 1)), (seed, labels)


def test_deterministic_for_a_seed_and_different_across_seeds():
    a = make_clip(4, 48, 80, 2, seed=7)
    b = make_clip(4, 48, 80, 2, seed=7)
    c = make_clip(4, 48, 80, 2, seed=8)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.masks, b.masks)
    assert not np.array_equal(a.frames, c.frames)


def test_a_window_renders_that_part_of_the_frame():
    full = make_clip(3, 96, 160, 2, seed=5)
    part = make_clip(3, 96, 160, 2, seed=5, window=(10, 20, 50, 70))
    assert part.frames.shape == (3, 50, 70, 3) and part.masks.shape == (3, 50, 70)
    assert np.array_equal(part.masks, full.masks[:, 10:60, 20:90])
    # The same scene; only the sensor noise (std 3) is drawn anew.
    diff = np.abs(part.frames.astype(np.int16) - full.frames[:, 10:60, 20:90])
    assert diff.mean() < 6.0


@pytest.mark.parametrize(
    "window", [(-1, 0, 10, 10), (0, 0, 97, 10), (0, 155, 10, 10), (0, 0, 0, 5)]
)
def test_a_window_outside_the_frame_is_refused(window):
    with pytest.raises(ValueError, match="does not fit"):
        make_clip(2, 96, 160, 1, seed=0, window=window)


def test_objects_move_smoothly():
    clip = make_clip(10, 96, 160, 2, seed=3)
    centres = []
    for t in range(10):
        ys, xs = np.nonzero(clip.masks[t] == 1)
        if len(xs) == 0:
            continue
        centres.append((xs.mean(), ys.mean()))
    steps = np.hypot(*np.diff(np.array(centres), axis=0).T)
    assert steps.max() > 0.1  # it moves
    assert steps.max() < 0.25 * 160  # no teleporting


def test_objects_are_textured_not_flat():
    clip = make_clip(1, 96, 160, 1, seed=11)
    pixels = clip.frames[0][clip.masks[0] == 1].astype(np.float32)
    assert pixels.std(axis=0).max() > 5.0


def test_occlusion_happens_somewhere():
    # With many objects in a small frame some pixel of an object's full shape is covered.
    covered = False
    for seed in range(5):
        clip = make_clip(8, 64, 96, 6, seed=seed)
        areas = np.array([[np.count_nonzero(m == k) for k in range(1, 7)] for m in clip.masks])
        covered |= bool((areas == 0).any() or (areas.max(0) > 1.5 * areas.min(0)).any())
    assert covered


def test_static_image_and_deformation():
    img = make_static_image(64, 96, 2, seed=1)
    assert img.frames.shape == (1, 64, 96, 3)
    clip = deform_to_clip(img.frames[0], img.masks[0], 3, seed=2)
    assert clip.frames.shape == (3, 64, 96, 3) and clip.masks.shape == (3, 64, 96)
    assert np.array_equal(clip.frames[0], img.frames[0])
    assert not np.array_equal(clip.masks[1], clip.masks[0])
    assert set(np.unique(clip.masks)) <= {0, 1, 2}
    same = deform_to_clip(img.frames[0], img.masks[0], 3, seed=2, strength=0.0)
    assert np.array_equal(same.masks[2], img.masks[0])


@pytest.mark.parametrize(
    ("args", "word"),
    [((0, 64, 96, 1), "num_frames"), ((2, 8, 96, 1), "height"), ((2, 64, 96, 0), "num_objects")],
)
def test_bad_arguments(args, word):
    with pytest.raises(ValueError, match=word):
        make_clip(*args, seed=0)


def test_module_does_not_import_torch():
    # Export and tests import the generator; it must not pull in torch or the training loop.
    code = (
        "import sys; from vosx.training.synthetic import make_clip; make_clip(1, 32, 48, 1, 0); "
        "print([m for m in ('torch', 'vosx.training.train', 'vosx.model') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
