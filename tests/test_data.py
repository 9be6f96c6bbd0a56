"""Tests of the training data (vosx.training: folders, sources, augment, data): errors,
augmentation, determinism."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import shared_path
from vosx.errors import InputDataError
from vosx.tracker_runtime.io import davis_palette
from vosx.training.augment import AugmentConfig, augment, select_objects
from vosx.training.data import ClipDataset, StepBatchSampler
from vosx.training.folders import detect_layout, read_mask
from vosx.training.sources import (
    CopyPasteSource,
    ImageFolderSource,
    SyntheticStaticSource,
    SyntheticVideoSource,
    VideoFolderSource,
    VideoFrameStaticSource,
    make_source,
    paste_object,
)
from vosx.training.synthetic import SyntheticClip, make_clip

SIZE = (64, 96)
NO_AUG = AugmentConfig(
    crop_scale=(1.0, 1.0),
    crop_ratio=(1.0, 1.0),
    degrees=0.0,
    shear=0.0,
    brightness=0.0,
    contrast=0.0,
    saturation=0.0,
    grayscale=0.0,
    flip=0.0,
)


def _palette_png(path: Path, labels: np.ndarray) -> None:
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    im.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0, 0, 0, 200] + [0] * (256 * 3 - 12))
    im.save(path)


def _write_clip(img_dir: Path, ann_dir: Path | None, clip: SyntheticClip, every: int = 1) -> None:
    img_dir.mkdir(parents=True)
    if ann_dir is not None:
        ann_dir.mkdir(parents=True)
    for t, (frame, mask) in enumerate(zip(clip.frames, clip.masks, strict=True)):
        Image.fromarray(frame).save(img_dir / f"{t:05d}.jpg")
        if ann_dir is not None and t % every == 0:
            _palette_png(ann_dir / f"{t:05d}.png", mask)


def _davis(root: Path, videos: int = 2, frames: int = 6) -> Path:
    for v in range(videos):
        clip = make_clip(frames, 48, 80, 2, seed=v)
        name = f"vid{v}"
        _write_clip(root / "JPEGImages" / "480p" / name, root / "Annotations" / "480p" / name, clip)
    return root


def test_davis_folder_draws_clips(tmp_path):
    root = _davis(tmp_path / "DAVIS")
    assert detect_layout(root)[0] == "davis"
    src = VideoFolderSource(root, max_skip=2)
    clip = src.draw(np.random.default_rng(0), 3)
    assert clip.frames.shape == (3, 48, 80, 3) and clip.masks.shape == (3, 48, 80)
    assert set(np.unique(clip.masks)) <= {0, 1, 2}


def test_davis_train_list_selects_videos(tmp_path):
    root = _davis(tmp_path / "DAVIS", videos=3)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "train.txt").write_text("vid1\n")
    assert [v.name for v in VideoFolderSource(root).videos] == ["vid1"]


def test_youtube_layout_with_sparse_annotations(tmp_path):
    base = tmp_path / "ytvos" / "train"
    clip = make_clip(11, 48, 80, 2, seed=3)
    _write_clip(base / "JPEGImages" / "abc", base / "Annotations" / "abc", clip, every=5)
    layout, found = detect_layout(tmp_path / "ytvos")
    assert layout == "youtube" and found == base
    src = VideoFolderSource(tmp_path / "ytvos")
    assert [p.name for p in src.videos[0].masks] == ["00000.png", "00005.png", "00010.png"]
    assert src.draw(np.random.default_rng(1), 3).frames.shape == (3, 48, 80, 3)


def test_empty_and_unknown_folders_name_the_folder(tmp_path):
    with pytest.raises(InputDataError, match="no such dataset folder"):
        VideoFolderSource(tmp_path / "missing")
    (tmp_path / "junk").mkdir()
    with pytest.raises(InputDataError, match="not a DAVIS-2017"):
        VideoFolderSource(tmp_path / "junk")
    root = tmp_path / "DAVIS"
    (root / "JPEGImages" / "480p").mkdir(parents=True)
    (root / "Annotations" / "480p").mkdir(parents=True)
    with pytest.raises(InputDataError, match="no video folders"):
        VideoFolderSource(root)
    (root / "JPEGImages" / "480p" / "empty").mkdir()
    with pytest.raises(InputDataError, match=r"empty.*empty video folder"):
        VideoFolderSource(root)


def test_frame_without_mask_is_named(tmp_path):
    root = _davis(tmp_path / "DAVIS", videos=1)
    (root / "Annotations" / "480p" / "vid0" / "00003.png").unlink()
    with pytest.raises(InputDataError, match=r"00003\.jpg: frame without a mask"):
        VideoFolderSource(root)


def test_malformed_frame_is_named(tmp_path):
    root = _davis(tmp_path / "DAVIS", videos=1, frames=3)
    (root / "JPEGImages" / "480p" / "vid0" / "00001.jpg").write_bytes(b"not a jpeg")
    src = VideoFolderSource(root, max_skip=1)
    with pytest.raises(InputDataError, match=r"00001\.jpg: cannot read the frame"):
        for seed in range(5):
            src.draw(np.random.default_rng(seed), 3)


def test_masks_follow_the_runtime_rules(tmp_path):
    # Training reads masks as `vosx segment` does: DAVIS palette colours saved as RGB are labels,
    # any other colour is refused with the file's name.
    labels = np.zeros((8, 8), np.uint8)
    labels[2:5, 3:6] = 2
    Image.fromarray(davis_palette()[labels]).save(tmp_path / "palette.png")
    assert np.array_equal(read_mask(tmp_path / "palette.png"), labels)
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(InputDataError, match=r"m\.png: colour \(7, 7, 7\) is not a DAVIS palette"):
        read_mask(tmp_path / "m.png")


def test_labels_that_change_across_frames_are_an_error(tmp_path):
    root = _davis(tmp_path / "DAVIS", videos=1, frames=3)
    bad = root / "Annotations" / "480p" / "vid0" / "00002.png"
    labels = np.array(Image.open(bad))
    labels[:4, :4] = 7
    _palette_png(bad, labels)
    src = VideoFolderSource(root, max_skip=1)
    with pytest.raises(
        InputDataError, match=r"00002\.png: labels \[7\] are not in the video's first"
    ):
        src.draw(np.random.default_rng(0), 3)


def test_mask_size_mismatch_is_named(tmp_path):
    root = _davis(tmp_path / "DAVIS", videos=1, frames=3)
    _palette_png(root / "Annotations" / "480p" / "vid0" / "00000.png", np.zeros((10, 10)))
    src = VideoFolderSource(root, max_skip=1)
    with pytest.raises(InputDataError, match=r"00000\.png: mask is 10x10 but frame"):
        src.draw(np.random.default_rng(0), 3)


def test_image_folder_pairs_and_binary_masks(tmp_path):
    folder = tmp_path / "static"
    folder.mkdir()
    img = make_clip(1, 48, 80, 1, seed=5)
    Image.fromarray(img.frames[0]).save(folder / "a.jpg")
    Image.fromarray((img.masks[0] > 0).astype(np.uint8) * 255, mode="L").save(folder / "a.png")
    src = ImageFolderSource(folder)
    clip = src.draw(np.random.default_rng(0), 3)
    assert clip.frames.shape == (3, 48, 80, 3)
    assert set(np.unique(clip.masks[0])) == {0, 1}
    Image.fromarray(img.frames[0]).save(folder / "b.jpg")
    with pytest.raises(InputDataError, match=r"b\.jpg: image without a mask"):
        ImageFolderSource(folder)
    (tmp_path / "none").mkdir()
    with pytest.raises(InputDataError, match="no images"):
        ImageFolderSource(tmp_path / "none")


def test_augment_without_randomness_is_the_identity():
    clip = make_clip(3, *SIZE, 2, seed=0)
    frames, masks = augment(clip, SIZE, NO_AUG, np.random.default_rng(0))
    assert torch.equal(masks, torch.from_numpy(clip.masks).long())
    np.testing.assert_allclose(
        (frames.permute(0, 2, 3, 1).numpy() * 255), clip.frames.astype(np.float32), atol=1e-3
    )


def test_augment_moves_frames_independently_but_keeps_masks_aligned():
    frames = np.zeros((3, 96, 160, 3), np.uint8)
    masks = np.zeros((3, 96, 160), np.uint8)
    frames[:, 30:70, 50:110, 0] = 255  # a red object
    masks[:, 30:70, 50:110] = 1
    out, lab = augment(
        SyntheticClip(frames, masks), SIZE, AugmentConfig(), np.random.default_rng(3)
    )
    assert out.shape == (3, 3, *SIZE) and lab.shape == (3, *SIZE)
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(lab[0], lab[1])  # per-frame affine
    red = out[:, 0] > out[:, 1] + 0.3  # T x h x w, where the image shows the object
    agree = (red == (lab == 1)).float().mean()
    assert agree > 0.97


def test_select_objects_renumbers_and_caps():
    masks = torch.zeros(2, 8, 8, dtype=torch.long)
    masks[0, :4, :4] = 5
    masks[0, 4:, 4:] = 9
    masks[1, :4, 4:] = 3  # not in frame 0 -> background
    labels, valid = select_objects(masks, 3, np.random.default_rng(0))
    assert set(labels.unique().tolist()) == {0, 1, 2}
    assert valid.tolist() == [True, True, False]
    assert (labels[1] == 0).all()
    labels, valid = select_objects(masks, 1, np.random.default_rng(0))
    assert valid.tolist() == [True] and set(labels.unique().tolist()) == {0, 1}
    assert (
        select_objects(torch.zeros(2, 8, 8, dtype=torch.long), 2, np.random.default_rng(0)) is None
    )


@pytest.mark.parametrize("source", [SyntheticVideoSource(SIZE), SyntheticStaticSource(SIZE)])
def test_dataset_items_are_deterministic_and_normalised(source):
    ds = ClipDataset(source, SIZE, 3, 2, AugmentConfig(), seed=4)
    a, b, c = ds[7], ds[7], ds[8]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a.frames, c.frames)
    assert a.frames.shape == (3, 3, *SIZE) and a.frames.dtype == torch.float32
    assert a.labels.shape == (3, *SIZE) and a.labels.dtype == torch.int64
    assert a.valid.shape == (2,) and a.valid[0]
    assert int(a.labels.max()) <= int(a.valid.sum())
    assert -2.2 < float(a.frames.min()) and float(a.frames.max()) < 2.7  # ImageNet-normalised


@pytest.mark.parametrize("cls", [SyntheticVideoSource, SyntheticStaticSource])
def test_synthetic_zoom_renders_a_window_with_larger_objects(cls):
    # Zoom 3 makes a 3x larger scene but renders only a 1.25 x crop window of it, so objects
    # come out larger (the pixel scale of a 480x864 frame) at the cost of the crop alone.
    def drawn(zoom: float) -> list[SyntheticClip]:
        src = cls(SIZE, objects=(1, 1), zoom=(zoom, zoom))
        rng = np.random.default_rng(0)
        return [src.draw(rng, 2) for _ in range(24)]

    small, big = drawn(1.0), drawn(3.0)
    assert all(c.frames.shape[1:3] == SIZE for c in small)
    assert all(c.frames.shape[1:3] == (80, 120) and c.masks.shape[1:] == (80, 120) for c in big)

    def mean_visible_area(clips: list[SyntheticClip]) -> float:
        areas = [np.count_nonzero(c.masks[0]) for c in clips]
        return float(np.mean([a for a in areas if a > 0]))

    assert mean_visible_area(big) > 2.0 * mean_visible_area(small)


def test_step_sampler_splits_global_batches_over_ranks():
    one = list(StepBatchSampler(3, 5, 4))
    r0 = list(StepBatchSampler(3, 5, 4, rank=0, world_size=2))
    r1 = list(StepBatchSampler(3, 5, 4, rank=1, world_size=2))
    assert one == [[12, 13, 14, 15], [16, 17, 18, 19]]
    assert [a + b for a, b in zip(r0, r1, strict=True)] == one


def _one_object_clip(
    t: int, h: int, w: int, box: tuple[int, int, int, int], colour
) -> SyntheticClip:
    frames = np.full((t, h, w, 3), 40, np.uint8)
    masks = np.zeros((t, h, w), np.uint8)
    y0, y1, x0, x1 = box
    frames[:, y0:y1, x0:x1] = colour
    masks[:, y0:y1, x0:x1] = 1
    return SyntheticClip(frames=frames, masks=masks)


def test_paste_object_adds_a_new_label_with_the_donor_pixels():
    clip = _one_object_clip(3, 48, 80, (10, 30, 10, 30), (200, 0, 0))
    donor = _one_object_clip(3, 60, 60, (20, 40, 20, 40), (0, 0, 250))
    before = clip.masks.copy(), clip.frames.copy()
    out = paste_object(clip, donor, np.random.default_rng(0), scale=(0.5, 0.5), behind=0.0)
    assert np.array_equal(clip.masks, before[0]) and np.array_equal(clip.frames, before[1])
    assert set(np.unique(out.masks)) <= {0, 1, 2} and (out.masks == 2).any()
    pasted = out.masks == 2
    # inside the pasted label the pixels are the donor's blue (soft edges only at the border)
    assert np.median(out.frames[pasted][:, 2]) > 200 and np.median(out.frames[pasted][:, 0]) < 60


def test_paste_behind_never_covers_existing_objects():
    for seed in range(5):
        clip = _one_object_clip(3, 48, 80, (5, 45, 5, 75), (200, 0, 0))
        donor = _one_object_clip(3, 48, 80, (0, 48, 0, 80), (0, 0, 250))
        out = paste_object(clip, donor, np.random.default_rng(seed), scale=(0.8, 0.8), behind=1.0)
        assert np.array_equal(out.masks == 1, clip.masks == 1)
        assert np.array_equal(out.frames[clip.masks == 1], clip.frames[clip.masks == 1])


def test_paste_object_skips_a_donor_without_objects():
    clip = _one_object_clip(2, 32, 32, (4, 12, 4, 12), (200, 0, 0))
    empty = SyntheticClip(frames=clip.frames.copy(), masks=np.zeros_like(clip.masks))
    assert paste_object(clip, empty, np.random.default_rng(0)) is clip


def test_copy_paste_source_makes_two_object_clips_from_one_object_videos(tmp_path):
    root = tmp_path / "ytvos"
    for v in range(2):
        clip = make_clip(4, 48, 80, 1, seed=10 + v)
        _write_clip(root / "JPEGImages" / f"v{v}", root / "Annotations" / f"v{v}", clip)
    src = make_source(str(root), "video", SIZE, copy_paste=1.0)
    assert isinstance(src, CopyPasteSource)
    counts = {len(np.unique(src.draw(np.random.default_rng(s), 3).masks)) for s in range(6)}
    assert 3 in counts  # background + the video's object + a pasted one


def test_excluded_videos_are_never_drawn_and_typos_are_refused(tmp_path):
    root = _davis(tmp_path / "DAVIS", videos=3)
    src = VideoFolderSource(root, exclude=("vid0", "vid2"))
    assert [v.name for v in src.videos] == ["vid1"]
    with pytest.raises(InputDataError, match="no video named vid9 to exclude"):
        VideoFolderSource(root, exclude=("vid9",))
    with pytest.raises(InputDataError, match="every video is excluded"):
        VideoFolderSource(root, exclude=("vid0", "vid1", "vid2"))


def test_static_stage_takes_a_video_folder_as_image_mask_pairs(tmp_path):
    root = _davis(tmp_path / "DAVIS", videos=2)
    src = make_source(str(root), "static", SIZE, exclude=("vid0",))
    assert isinstance(src, VideoFrameStaticSource)
    assert [v.name for v in src.videos.videos] == ["vid1"]
    clip = src.draw(np.random.default_rng(0), 3)
    assert clip.frames.shape == (3, 48, 80, 3)
    assert not np.array_equal(clip.frames[0], clip.frames[1])  # deformed copies of one frame
    # an image + mask folder is still read as pairs
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    img = make_clip(1, 32, 32, 1, seed=0)
    Image.fromarray(img.frames[0]).save(pairs / "a.jpg")
    _palette_png(pairs / "a.png", img.masks[0])
    assert isinstance(make_source(str(pairs), "static", SIZE), ImageFolderSource)


def test_real_davis2016_fixture_trains_both_stages():
    # Two real sequences of the shared DAVIS-2016 train fixture, tiny crops.
    root = shared_path("fixtures", "davis2016_train")
    names = sorted(p.name for p in (root / "JPEGImages").iterdir())
    keep = ("bear", "tennis")
    exclude = tuple(n for n in names if n not in keep)
    for stage in ("static", "video"):
        src = make_source(str(root), stage, SIZE, exclude=exclude, copy_paste=0.5)
        ds = ClipDataset(src, SIZE, 3, 2, AugmentConfig(), seed=0)
        sample = ds[0]
        assert sample.frames.shape == (3, 3, *SIZE) and sample.valid[0]
