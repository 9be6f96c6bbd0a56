"""Checkpoint save/load round trip and every kind of bad checkpoint."""

import os

import pytest
import torch

from vosx.errors import CheckpointError
from vosx.model import TINY_CONFIG, ModelConfig, build_model, load_checkpoint, save_checkpoint


class _Exploit:
    """Pickles to a call of os.system that would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_is_bit_exact(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "m.pth")
    loaded = load_checkpoint(path)
    assert loaded.config == TINY_CONFIG
    assert not loaded.training
    for (k, a), (_, b) in zip(
        tiny_model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k
    assert not list(tmp_path.glob(".m.pth.*")), "temp file left behind"


def test_bare_state_dict_loads_with_default_config(tmp_path):
    model = build_model(ModelConfig())
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    assert load_checkpoint(tmp_path / "bare.pth").config == ModelConfig()


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "nope.pth")


def test_directory(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_truncated_file(tiny_ckpt, tmp_path):
    data = tiny_ckpt.read_bytes()
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(bad)


def test_non_torch_file(tmp_path):
    bad = tmp_path / "notes.pth"
    bad.write_text("hello, not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(bad)


def test_code_executing_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pth"
    torch.save({"model": _Exploit(marker)}, bad)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_mismatched_state_dict_lists_keys(tmp_path):
    sd = build_model(TINY_CONFIG).state_dict()
    sd.pop("decoder.pred.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["decoder.pred.weight"] = torch.zeros(2, 2, 3, 3)
    torch.save({"config": TINY_CONFIG.to_dict(), "model": sd}, tmp_path / "mismatch.pth")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "mismatch.pth")
    msg = str(e.value)
    assert "1 missing: decoder.pred.bias" in msg
    assert "1 unexpected: extra.weight" in msg
    assert "mis-shaped: decoder.pred.weight (2, 2, 3, 3)" in msg


def test_wrong_structure(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="not a vosx checkpoint"):
        load_checkpoint(tmp_path / "list.pth")


def test_bad_config(tmp_path, tiny_model):
    torch.save({"config": {"bogus": 1}, "model": tiny_model.state_dict()}, tmp_path / "cfg.pth")
    with pytest.raises(CheckpointError, match="bad model config.*bogus"):
        load_checkpoint(tmp_path / "cfg.pth")


def test_bundled_default_checkpoint_resolves_and_loads():
    from vosx.model.checkpoint import count_parameters, resolve_checkpoint
    from vosx.paths import DEFAULT_CHECKPOINT

    assert resolve_checkpoint(None) == DEFAULT_CHECKPOINT
    model = load_checkpoint(DEFAULT_CHECKPOINT)
    assert model.config == ModelConfig()  # the default architecture, trained
    assert DEFAULT_CHECKPOINT.stat().st_size <= 10 * 2**20
    assert 1.6e6 <= count_parameters(model)["total"] <= 2.2e6


@pytest.mark.slow
def test_bundled_default_checkpoint_segments_real_video():
    # The bundled real clip (DAVIS 2016 `bear`, held out of the bundled checkpoint's training),
    # 12 frames downscaled to 240x432, through the runtime driver: the bundled checkpoint scores
    # 0.80 J&F (with the default PT tracker), its synthetic-only initialisation 0.61, a random
    # init near 0.
    import numpy as np

    from vosx.model.graphs import TorchGraphs
    from vosx.paths import DEFAULT_CHECKPOINT, DEMO_CLIP
    from vosx.tracker_runtime.io import Frames, read_label_sequence
    from vosx.tracker_runtime.metrics import evaluate_labels
    from vosx.tracker_runtime.segment import segment

    frames = list(Frames(DEMO_CLIP / "frames"))[:12]
    gt = read_label_sequence(DEMO_CLIP / "masks")[:12]
    graphs = TorchGraphs(load_checkpoint(DEFAULT_CHECKPOINT))
    pred = np.stack(list(segment(frames, gt[0], graphs, (240, 432))))
    jf = evaluate_labels("bear", gt, pred).summary()["J&F-Mean"]
    assert jf > 0.72, f"the bundled checkpoint scores J&F {jf:.3f} on real video: is it trained?"


def test_missing_bundled_checkpoint_names_the_fix(monkeypatch, tmp_path):
    from vosx.model import checkpoint

    monkeypatch.setattr("vosx.paths.DEFAULT_CHECKPOINT", tmp_path / "gone.pth")
    with pytest.raises(CheckpointError, match="no checkpoint given and no bundled default"):
        checkpoint.resolve_checkpoint(None)
