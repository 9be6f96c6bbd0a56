"""The two-frame memory driver: NumPy maths against torch, memory slots, and bad input."""

import numpy as np
import pytest
import torch

from tests.conftest import TINY_SIZE
from vosx.errors import InputDataError
from vosx.model.graphs import TorchGraphs
from vosx.model.memory import soft_aggregate as torch_soft_aggregate
from vosx.tracker_runtime.driver import (
    Memory,
    SegmentationDriver,
    argmax0,
    sigmoid,
    soft_aggregate,
)
from vosx.tracker_runtime.preprocess import MEAN, STD, pad_to, preprocess, unpad


def test_numpy_maths_match_torch():
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((3, 20, 30)) * 30).astype(np.float32)
    np.testing.assert_allclose(sigmoid(logits), torch.sigmoid(torch.from_numpy(logits)), atol=1e-7)
    p = sigmoid(logits)
    agg = soft_aggregate(p)
    ref = torch_soft_aggregate(torch.from_numpy(p), dim=0).numpy()
    np.testing.assert_allclose(agg, ref, atol=1e-6)
    np.testing.assert_allclose(agg.sum(0), 1.0, atol=1e-6)
    assert (argmax0(agg) == agg.argmax(0)).all()


def test_preprocess_normalises_and_pads_symmetrically():
    frame = np.random.default_rng(1).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    x, pads = preprocess(frame, (48, 80))
    assert x.shape == (1, 48, 80, 3) and pads == (1, 2, 5, 5)
    expected = (frame / 255.0 - np.asarray(MEAN)) / np.asarray(STD)
    np.testing.assert_allclose(unpad(x[0], pads), expected, atol=1e-5)
    assert not x[0, 0].any() and not x[0, :, :5].any()  # zero padding
    np.testing.assert_array_equal(pad_to(frame[..., 0], (48, 80))[0][1:46, 5:75], frame[..., 0])


class _Recorder:
    """Wraps a backend and records the memory each decoder call reads."""

    def __init__(self, inner):
        self.inner = inner
        self.decoder_calls = []

    def run(self, graph, inputs):
        if graph == "decoder":
            self.decoder_calls.append({k: v.copy() for k, v in inputs.items()})
        return self.inner.run(graph, inputs)


def _clip(t=4, objects=2):
    from vosx.training.synthetic import make_clip

    return make_clip(t, TINY_SIZE[0], TINY_SIZE[1] - 6, objects, seed=3)


def test_memory_slots_first_fixed_last_updated(tiny_model):
    rec = _Recorder(TorchGraphs(tiny_model))
    clip = _clip()
    driver = SegmentationDriver(rec, TINY_SIZE)
    labels = [driver.step(clip.frames[0], clip.masks[0])]
    keys = [
        rec.inner.run("key_encoder", {"image": preprocess(f, TINY_SIZE)[0]})["key"]
        for f in clip.frames
    ]
    for f in clip.frames[1:]:
        labels.append(driver.step(f))
    assert all(lab.shape == clip.masks[0].shape and lab.dtype == np.uint8 for lab in labels)
    np.testing.assert_array_equal(labels[0], clip.masks[0])
    calls = rec.decoder_calls
    assert len(calls) == 2 * 3  # two objects, three frames after the first
    for t, call in enumerate(calls):
        frame = 1 + t // 2
        np.testing.assert_allclose(call["mk_first"], keys[0], atol=1e-6)  # never changes
        np.testing.assert_allclose(call["mk_last"], keys[frame - 1], atol=1e-6)  # previous frame
        np.testing.assert_allclose(call["qk"], keys[frame], atol=1e-6)
    assert set(np.unique(labels[-1])) <= {0, 1, 2}
    # The typed memory: slot "first" is frame 0's, slot "last" the previous frame's.
    memory = driver.memory
    assert isinstance(memory, Memory) and len(memory.first.values) == len(memory.last.values) == 2
    np.testing.assert_allclose(memory.first.key, keys[0], atol=1e-6)
    np.testing.assert_allclose(memory.last.key, keys[-1], atol=1e-6)
    assert not np.allclose(memory.first.values[0], memory.last.values[0])
    # run() restarts the video and makes the same steps.
    again = list(driver.run(clip.frames, clip.masks[0]))
    for a, b in zip(again, labels, strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_input(tiny_model):
    driver = SegmentationDriver(TorchGraphs(tiny_model), TINY_SIZE)
    clip = _clip(2)
    with pytest.raises(InputDataError, match="first frame needs a mask"):
        driver.step(clip.frames[0])
    with pytest.raises(InputDataError, match="no object"):
        driver.step(clip.frames[0], np.zeros(clip.masks[0].shape, np.uint8))
    with pytest.raises(InputDataError, match="frame 0 is 64x90 but .* first mask is 63x90"):
        driver.step(clip.frames[0], clip.masks[0][:-1])
    with pytest.raises(InputDataError, match="larger than the exported input"):
        driver.step(np.zeros((80, 96, 3), np.uint8), np.ones((80, 96), np.uint8))
    driver.step(clip.frames[0], clip.masks[0])
    with pytest.raises(InputDataError, match="frame 1 is 62x90 .* all frames and the mask"):
        driver.step(clip.frames[1][:-2])
