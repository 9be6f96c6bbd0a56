"""Frames, label PNGs and overlays: reading, writing, and one-line errors for bad input.

Frames are H x W x 3 uint8 RGB; labels H x W uint8 (0 = background).
"""

import numpy as np
import pytest
from PIL import Image

from tests.conftest import shared_path
from vosx.errors import InputDataError
from vosx.tracker_runtime.io import (
    Frames,
    davis_palette,
    find_sequences,
    read_first_mask,
    read_label_sequence,
    read_labels,
    write_labels,
)
from vosx.tracker_runtime.overlay import OverlayWriter, overlay


def save_rgb(path, h, w, value):
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)


def test_davis_palette_known_colours():
    pal = davis_palette()
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    assert pal[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert pal[255].tolist() == [224, 224, 192]


def test_folder_frames_sorted_by_name(tmp_path):
    for name, v in [("b.png", 20), ("a.jpg", 10), ("c.bmp", 30)]:
        save_rgb(tmp_path / name, 8, 12, v)
    (tmp_path / "notes.txt").write_text("ignored")
    frames = Frames(tmp_path)
    assert frames.names == ["a", "b", "c"] and len(frames) == 3 and frames.size == (8, 12)
    got = list(frames)
    assert [f.shape for f in got] == [(8, 12, 3)] * 3 and got[1][0, 0, 0] == 20
    assert abs(int(got[0][0, 0, 0]) - 10) <= 2  # JPEG


def test_real_clip_frames_and_mask():
    clip = shared_path("fixtures", "real_clips", "bike")
    frames = Frames(clip / "frames")
    assert frames.size == (480, 854) and len(frames) == 4
    mask = read_first_mask(clip / "first_mask.png", frames.size)
    assert set(np.unique(mask).tolist()) == {0, 1, 2}


def test_mixed_frame_sizes_name_the_file(tmp_path):
    save_rgb(tmp_path / "0.png", 8, 12, 0)
    save_rgb(tmp_path / "1.png", 8, 12, 0)
    save_rgb(tmp_path / "2.png", 9, 12, 0)
    with pytest.raises(InputDataError, match=r"2\.png: frame is 9x12 but 0\.png is 8x12"):
        list(Frames(tmp_path))


def test_empty_and_missing_folder(tmp_path):
    with pytest.raises(InputDataError, match="has no .jpg"):
        Frames(tmp_path)
    with pytest.raises(InputDataError, match="no such folder"):
        Frames(tmp_path / "missing")


def test_unreadable_image(tmp_path):
    save_rgb(tmp_path / "0.png", 8, 12, 0)
    (tmp_path / "1.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(InputDataError, match=r"1\.jpg: cannot read the image"):
        list(Frames(tmp_path))
    (tmp_path / "0.png").write_bytes(b"garbage")
    with pytest.raises(InputDataError, match=r"0\.png: cannot read the image"):
        Frames(tmp_path)


def test_not_a_video_file(tmp_path):
    p = tmp_path / "clip.txt"
    p.write_text("x")
    with pytest.raises(InputDataError, match="not a frames folder or a video"):
        Frames(p)
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(InputDataError, match="cannot decode the video"):
        Frames(bad)


def test_mp4_overlay_roundtrip_through_video_reader(tmp_path):
    frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(5)]
    labels = np.zeros((48, 64), np.uint8)
    labels[10:30, 20:40] = 1
    out = tmp_path / "o.mp4"
    with OverlayWriter(out, fps=10) as w:
        for f in frames:
            w.add(f, labels)
    assert out.is_file() and not list(tmp_path.glob(".overlay-*"))
    video = Frames(out)
    assert video.size == (48, 64) and video.names == [f"{i:05d}" for i in range(5)]
    got = list(video)
    assert len(got) == 5
    # background pixels keep the frame's grey; object pixels are tinted red
    assert abs(int(got[3][2, 2, 0]) - 120) <= 6
    assert got[3][20, 30, 0] > got[3][20, 30, 2] + 30


def test_gif_overlay_and_blend(tmp_path):
    frame = np.full((6, 8, 3), 100, np.uint8)
    labels = np.zeros((6, 8), np.uint8)
    labels[1:3, 1:3] = 2  # palette (0, 128, 0)
    blended = overlay(frame, labels)
    assert blended[1, 1].tolist() == [50, 114, 50] and blended[0, 0].tolist() == [100, 100, 100]
    out = tmp_path / "o.gif"
    with OverlayWriter(out, fps=5) as w:
        for i in range(3):  # distinct frames (Pillow merges identical consecutive ones)
            w.add(frame + 40 * i, labels)
    with Image.open(out) as im:
        assert im.n_frames == 3 and im.size == (8, 6)


def test_overlay_writer_aborts_on_error(tmp_path):
    out = tmp_path / "o.gif"
    with pytest.raises(RuntimeError):
        with OverlayWriter(out) as w:
            w.add(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputDataError, match=".gif or .mp4"):
        OverlayWriter(tmp_path / "o.avi")


def test_label_png_roundtrip_and_modes(tmp_path):
    labels = np.zeros((5, 7), np.uint8)
    labels[1, 2], labels[3, 4] = 1, 3
    write_labels(tmp_path / "p.png", labels)
    with Image.open(tmp_path / "p.png") as im:
        assert im.mode == "P" and im.getpalette()[3:6] == [128, 0, 0]
    np.testing.assert_array_equal(read_labels(tmp_path / "p.png"), labels)
    Image.fromarray(labels, mode="L").save(tmp_path / "l.png")
    np.testing.assert_array_equal(read_labels(tmp_path / "l.png"), labels)
    Image.fromarray(davis_palette()[labels]).save(tmp_path / "rgb.png")  # palette colours as RGB
    np.testing.assert_array_equal(read_labels(tmp_path / "rgb.png"), labels)
    odd = davis_palette()[labels]
    odd[0, 0] = (1, 2, 3)
    Image.fromarray(odd).save(tmp_path / "odd.png")
    with pytest.raises(InputDataError, match=r"colour \(1, 2, 3\) is not a DAVIS palette colour"):
        read_labels(tmp_path / "odd.png")


def test_first_mask_checks(tmp_path):
    labels = np.zeros((6, 8), np.uint8)
    labels[2:4, 2:4] = 1
    labels[0, :] = 255  # void is background
    write_labels(tmp_path / "m.png", labels)
    got = read_first_mask(tmp_path / "m.png", (6, 8))
    assert got[0].max() == 0 and got[2, 2] == 1
    with pytest.raises(InputDataError, match="mask is 6x8 but the frames are 6x9"):
        read_first_mask(tmp_path / "m.png", (6, 9))
    write_labels(tmp_path / "empty.png", np.zeros((6, 8), np.uint8))
    with pytest.raises(InputDataError, match="the mask has no object"):
        read_first_mask(tmp_path / "empty.png", (6, 8))
    with pytest.raises(InputDataError, match="no such mask file"):
        read_first_mask(tmp_path / "missing.png", (6, 8))
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(InputDataError, match="cannot read the mask"):
        read_first_mask(tmp_path / "bad.png", (6, 8))


def test_find_sequences_layouts(tmp_path):
    lab = np.ones((4, 4), np.uint8)
    for seq in ("b", "a"):
        (tmp_path / "davis" / "Annotations" / "480p" / seq).mkdir(parents=True)
        write_labels(tmp_path / "davis" / "Annotations" / "480p" / seq / "00000.png", lab)
    assert [p.name for p in find_sequences(tmp_path / "davis")] == ["a", "b"]
    flat = tmp_path / "davis" / "Annotations" / "480p"
    assert [p.name for p in find_sequences(flat)] == ["a", "b"]
    assert find_sequences(flat / "a") == [flat / "a"]
    (tmp_path / "none").mkdir()
    with pytest.raises(InputDataError, match="no sequence of .png label files"):
        find_sequences(tmp_path / "none")


def test_label_sequence_mixed_sizes(tmp_path):
    write_labels(tmp_path / "0.png", np.zeros((4, 4), np.uint8))
    write_labels(tmp_path / "1.png", np.zeros((4, 5), np.uint8))
    with pytest.raises(InputDataError, match=r"1\.png: mask is 4x5 but 0\.png is 4x4"):
        read_label_sequence(tmp_path)
