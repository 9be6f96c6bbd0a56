"""DAVIS 2017 metrics: hand-computed J, boundaries, dilation, F, statistics, sequences, folders.

Masks are H x W bool; label maps T x H x W uint8. The golden values at the end were computed once
with the official davis2017-evaluation code (cv2.dilate + skimage disk) on the same inputs.
"""

import numpy as np
import pytest

from vosx.errors import InputDataError
from vosx.tracker_runtime.io import write_labels
from vosx.tracker_runtime.metrics import (
    boundary_tolerance,
    dilate,
    disk,
    evaluate_folders,
    evaluate_labels,
    f_measure,
    jaccard,
    seg2bmap,
    statistics,
)


def rect(h, w, y0, y1, x0, x1):
    """H x W bool with rows y0..y1-1 and columns x0..x1-1 set."""
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_jaccard_by_hand():
    gt = rect(6, 6, 1, 3, 1, 3)  # 4 px
    pred = rect(6, 6, 2, 3, 2, 4)  # 2 px, 1 shared
    assert jaccard(gt, pred) == pytest.approx(1 / 5)
    assert jaccard(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    assert jaccard(gt, np.zeros_like(gt)) == 0.0


def test_seg2bmap_by_hand():
    seg = rect(6, 6, 1, 4, 1, 4)  # 3 x 3 square at rows/cols 1..3
    expected = np.zeros((6, 6), bool)
    expected[0, 0:4] = True  # above, shifted towards the origin
    expected[0:4, 0] = True  # left
    expected[3, 1:4] = True  # the square's own last row
    expected[1:4, 3] = True  # and last column
    np.testing.assert_array_equal(seg2bmap(seg), expected)


def test_seg2bmap_last_row_and_column_rules():
    seg = rect(4, 5, 2, 4, 3, 5)  # touches the bottom-right corner
    b = seg2bmap(seg)
    # last row: seg ^ right neighbour; last column: seg ^ lower neighbour; corner cleared
    np.testing.assert_array_equal(b[-1], [False, False, True, False, False])
    np.testing.assert_array_equal(b[:, -1], [False, True, False, False])
    assert not b[-1, -1]


def test_disk_matches_skimage_definition():
    expected = np.array(
        [
            [0, 0, 1, 0, 0],
            [0, 1, 1, 1, 0],
            [1, 1, 1, 1, 1],
            [0, 1, 1, 1, 0],
            [0, 0, 1, 0, 0],
        ],
        bool,
    )
    np.testing.assert_array_equal(disk(2), expected)
    assert disk(0).tolist() == [[True]]
    assert disk(8).sum() == 197  # skimage.morphology.disk(8).sum()


@pytest.mark.parametrize("radius", [0, 1, 2, 3, 5, 8])
def test_dilate_equals_brute_force(radius):
    rng = np.random.default_rng(radius)
    b = rng.random((23, 31)) > 0.97
    b[0, 0] = b[-1, -1] = True  # pixels at the borders
    expected = np.zeros_like(b)
    for dy, dx in np.argwhere(disk(radius)) - radius:
        shifted = np.zeros_like(b)
        ys, xs = np.nonzero(b)
        ys, xs = ys + dy, xs + dx
        keep = (ys >= 0) & (ys < b.shape[0]) & (xs >= 0) & (xs < b.shape[1])
        shifted[ys[keep], xs[keep]] = True
        expected |= shifted
    np.testing.assert_array_equal(dilate(b, radius), expected)


def test_boundary_tolerance():
    assert boundary_tolerance(480, 854) == 8  # ceil(0.008 * 979.73)
    assert boundary_tolerance(10, 10) == 1
    assert boundary_tolerance(480, 854, 3) == 3


def test_f_measure_by_hand():
    # gt: top 5 rows of 10 x 10 -> boundary = row 4 (10 px)
    # pred: 5 x 5 block top-left -> boundary = row 4 cols 0..4 and col 4 rows 0..3 (9 px)
    gt = rect(10, 10, 0, 5, 0, 10)
    pred = rect(10, 10, 0, 5, 0, 5)
    # tolerance ceil(0.008 * 14.1) = 1 (a plus-shaped disk):
    # precision 6/9 (row 4 cols 0..4 and (3, 4)); recall 6/10 (row 4 cols 0..5)
    assert f_measure(pred, gt) == pytest.approx(12 / 19)
    # pred boundary 2 rows below the gt's: matched at tolerance 2, not at 1
    low = rect(10, 10, 0, 7, 0, 10)
    assert f_measure(low, gt, bound_th=2) == 1.0
    assert f_measure(low, gt, bound_th=1) == 0.0


def test_f_measure_empty_conventions():
    empty = np.zeros((8, 8), bool)
    some = rect(8, 8, 2, 5, 2, 5)
    assert f_measure(empty, empty) == 1.0  # P = R = 1
    assert f_measure(empty, some) == 0.0  # P = 1, R = 0
    assert f_measure(some, empty) == 0.0  # P = 0, R = 1
    assert f_measure(some, some) == 1.0


def test_statistics_by_hand():
    # bins from round(linspace(1, 4, 5) + 1e-10) - 1 = [0, 1, 2, 2, 3]: [1, .8] ... [.4, .2]
    m, r, d = statistics(np.array([1.0, 0.8, 0.4, 0.2]))
    assert m == pytest.approx(0.6) and r == pytest.approx(0.5) and d == pytest.approx(0.6)
    m, r, d = statistics(np.array([0.7]))
    assert (m, r, d) == (pytest.approx(0.7), 1.0, 0.0)


def test_evaluate_labels_by_hand():
    h, w = 10, 10
    gt = np.zeros((5, h, w), np.uint8)
    gt[:, 0:5, 0:5] = 1
    gt[:, 6:9, 6:9] = 2
    gt[0, 0, 9] = 3  # object 3 exists only in frame 0: empty later, J = F = 1 when not predicted
    pred = gt.copy()
    pred[0] = 0  # the first and last frames are not evaluated
    pred[4] = 0
    pred[2, 0:5, 0:5] = 0  # object 1 missed in frame 2 (J = 0; F = 0 as P = 1, R = 0)
    seq = evaluate_labels("s", gt, pred)
    assert seq.frames == 3 and [o.name for o in seq.objects] == ["s_1", "s_2", "s_3"]
    j1 = seq.objects[0].j
    np.testing.assert_allclose(j1, [1.0, 0.0, 1.0])
    np.testing.assert_allclose(seq.objects[0].f, [1.0, 0.0, 1.0])
    np.testing.assert_allclose(seq.objects[1].j, [1, 1, 1])
    np.testing.assert_allclose(seq.objects[2].j, [1, 1, 1])
    # object 1: mean 2/3, recall 2/3; bins of n=3: ids [0, 1, 1, 2, 2] -> [1, 0] and [1] -> -0.5
    assert seq.objects[0].j_stats == pytest.approx((2 / 3, 2 / 3, -0.5))
    s = seq.summary()
    assert s["J-Mean"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert s["J&F-Mean"] == pytest.approx((s["J-Mean"] + s["F-Mean"]) / 2)


def test_evaluate_labels_errors():
    gt = np.zeros((4, 6, 6), np.uint8)
    gt[:, 1:3, 1:3] = 1
    with pytest.raises(InputDataError, match="object id 2"):
        evaluate_labels("s", gt, gt * 2)
    with pytest.raises(InputDataError, match="at least 3"):
        evaluate_labels("s", gt[:2], gt[:2])
    with pytest.raises(InputDataError, match="do not match"):
        evaluate_labels("s", gt, gt[:, :5])


def write_seq(folder, labels, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i, lab in enumerate(labels):
        write_labels(folder / f"{(names or [f'{j:05d}' for j in range(len(labels))])[i]}.png", lab)


def test_evaluate_folders_layouts_and_void(tmp_path):
    rng = np.random.default_rng(0)
    gt = np.zeros((5, 12, 16), np.uint8)
    gt[:, 2:8, 3:9] = 1
    gt[:, 9:11, 10:15] = 2
    gt_void = gt.copy()
    gt_void[:, 0, :] = 255  # void: background for the evaluation, as in the official reader
    pred = gt.copy()
    pred[1:4, 2:4, 3:9] = 0
    pred[2, 0:2, 0:2] = 2 * (rng.random((2, 2)) > 0.5)
    write_seq(tmp_path / "davis" / "Annotations" / "480p" / "a", gt_void)
    write_seq(tmp_path / "davis" / "Annotations" / "480p" / "b", gt)
    write_seq(tmp_path / "pred" / "a", pred[1:4], ["00001", "00002", "00003"])  # only evaluated
    write_seq(tmp_path / "pred" / "b", gt)
    result = evaluate_folders(tmp_path / "pred", tmp_path / "davis")
    assert [s.name for s in result.sequences] == ["a", "b"]
    direct = evaluate_labels("a", gt, pred)
    for got, want in zip(result.sequences[0].objects, direct.objects, strict=True):
        np.testing.assert_allclose(got.j, want.j)
        np.testing.assert_allclose(got.f, want.f)
    assert result.sequences[1].summary()["J&F-Mean"] == 1.0
    d = result.to_dict()
    assert len(d["per_object"]) == 4 and d["global"]["J-Mean"] == pytest.approx(
        np.mean([o.j_stats[0] for o in result.objects])
    )
    # one sequence folder against one predictions folder
    one = evaluate_folders(
        tmp_path / "pred" / "b", tmp_path / "davis" / "Annotations" / "480p" / "b"
    )
    assert [s.name for s in one.sequences] == ["b"]


def test_evaluate_folders_missing_prediction(tmp_path):
    gt = np.zeros((4, 8, 8), np.uint8)
    gt[:, 2:5, 2:5] = 1
    write_seq(tmp_path / "gt" / "s", gt)
    write_seq(tmp_path / "pred" / "s", gt[:2])
    with pytest.raises(InputDataError, match="00002.png: missing prediction"):
        evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    (tmp_path / "other").mkdir()
    with pytest.raises(InputDataError, match="no predictions for sequence s"):
        evaluate_folders(tmp_path / "other", tmp_path / "gt")
    with pytest.raises(InputDataError, match="no such predictions folder"):
        evaluate_folders(tmp_path / "nothing_here", tmp_path / "gt")


def official_case():
    """Deterministic random blobs on 60 x 90 frames, 2 objects, 9 frames."""
    rng = np.random.default_rng(123)
    yy, xx = np.mgrid[0:60, 0:90]
    gt = np.zeros((9, 60, 90), np.uint8)
    pred = np.zeros_like(gt)
    for t in range(9):
        for k, (cx, cy) in enumerate([(25 + 2 * t, 30), (60 - t, 20 + t)], start=1):
            r_gt = 10 + 3 * np.sin(0.7 * t + k)
            gt[t][(xx - cx) ** 2 + ((yy - cy) * 1.3) ** 2 < r_gt**2] = k
            noise = rng.normal(0, 1.5, 2)
            r_p = r_gt + rng.normal(0, 1.5)
            inside = (xx - cx - noise[0]) ** 2 + (yy - cy - noise[1]) ** 2 < r_p**2
            pred[t][inside & (rng.random((60, 90)) > 0.03)] = k
    return gt, pred


def test_agrees_with_official_golden_values():
    gt, pred = official_case()
    seq = evaluate_labels("case", gt, pred)
    got = [v for o in seq.objects for v in (*o.j_stats, *o.f_stats)]
    np.testing.assert_allclose(got, GOLDEN, rtol=0, atol=1e-6)


# (J mean, recall, decay, F mean, recall, decay) per object from the official code (cv2 4.x,
# skimage disk) on official_case(): see the note at the top of this file.
GOLDEN = [
    *(0.6230611976399789, 0.8571428571428571, 0.04409778154063526),
    *(0.55438953139843, 0.7142857142857143, -0.15377782276512036),
    *(0.5395959319594937, 0.5714285714285714, -0.07058710452993655),
    *(0.3628421747925707, 0.14285714285714285, 0.00970849088989717),
]
