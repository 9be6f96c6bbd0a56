"""``vosx eval``: the per-sequence table, the JSON file, and one-line errors with exit 1.

Label maps are T x H x W uint8 written as DAVIS-palette PNGs.
"""

import json

import numpy as np
import pytest

from tests.conftest import run_cli
from vosx.tracker_runtime.io import write_labels


def write_seq(folder, labels):
    folder.mkdir(parents=True)
    for i, lab in enumerate(labels):
        write_labels(folder / f"{i:05d}.png", lab)


@pytest.fixture
def dataset(tmp_path):
    """Sequences 'perfect' (predicted exactly) and 'half' (object 1 missed on 1 of 2 frames)."""
    gt = np.zeros((4, 12, 16), np.uint8)
    gt[:, 2:6, 2:6] = 1
    gt[:, 7:10, 8:14] = 2
    half = gt.copy()
    half[1][half[1] == 1] = 0
    write_seq(tmp_path / "gt" / "perfect", gt)
    write_seq(tmp_path / "gt" / "half", gt)
    write_seq(tmp_path / "pred" / "perfect", gt)
    write_seq(tmp_path / "pred" / "half", half)
    return tmp_path


def test_eval_table_and_json(dataset, monkeypatch, capsys):
    out = dataset / "res" / "scores.json"
    code = run_cli(monkeypatch, "eval", dataset / "pred", dataset / "gt", "--json", out)
    assert code in (0, None)
    text = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line}
    assert rows["perfect"][1:3] == ["2", "1.0000"] and rows["half"][1:3] == ["2", "0.7500"]
    assert rows["all"][3:5] == ["4", "0.8750"]  # (J 0.875 + F 0.875) / 2 over four objects
    data = json.loads(out.read_text())
    seqs = {s["sequence"]: s for s in data["per_sequence"]}
    assert seqs["perfect"]["J&F-Mean"] == 1.0
    # half: object 1 has J = F = [0, 1] over the 2 evaluated frames, object 2 is perfect
    assert seqs["half"]["J-Mean"] == pytest.approx((0.5 + 1.0) / 2)
    assert seqs["half"]["F-Mean"] == pytest.approx((0.5 + 1.0) / 2)
    assert [o["object"] for o in data["per_object"]] == [
        "half_1",
        "half_2",
        "perfect_1",
        "perfect_2",
    ]
    # global: four objects weighted equally
    assert data["global"]["J-Mean"] == pytest.approx((0.5 + 1 + 1 + 1) / 4)
    assert data["global"]["J-Recall"] == pytest.approx((0.5 + 1 + 1 + 1) / 4)


def test_eval_one_sequence(dataset, monkeypatch, capsys):
    code = run_cli(monkeypatch, "eval", dataset / "pred" / "half", dataset / "gt" / "half")
    assert code in (0, None)
    assert "half" in capsys.readouterr().out


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("missing_pred", "missing prediction for frame 00002"),
        ("bad_png", "cannot read the mask"),
        ("extra_object", "object id 3"),
        ("wrong_size", "prediction is 12x15 but the ground truth is 12x16"),
    ],
)
def test_eval_bad_input_one_line_exit_1(dataset, monkeypatch, capsys, breakage, message):
    target = dataset / "pred" / "half" / "00002.png"
    if breakage == "missing_pred":
        target.unlink()
    elif breakage == "bad_png":
        target.write_bytes(b"not a png")
    elif breakage == "extra_object":
        write_labels(target, np.full((12, 16), 3, np.uint8))
    else:
        write_labels(target, np.zeros((12, 15), np.uint8))
    out = dataset / "scores.json"
    assert run_cli(monkeypatch, "eval", dataset / "pred", dataset / "gt", "--json", out) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_eval_missing_ground_truth(tmp_path, monkeypatch, capsys):
    (tmp_path / "pred").mkdir()
    assert run_cli(monkeypatch, "eval", tmp_path / "pred", tmp_path / "nothing") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such folder" in err[0]
