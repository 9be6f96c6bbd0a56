"""Gates and findings of export verification without converting anything: the checks table
(also the README's), the verdicts and their one-line messages, fp16 arithmetic in PyTorch, the
NaN/Inf gate on PyTorch's own outputs, and the progress lines per stage.
"""

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY_SIZE, run_cli
from vosx.errors import ParityError
from vosx.export import gpu, measure, verify
from vosx.export.fp16 import Fp16Graphs, _fp16_mode
from vosx.export.judge import Verdicts, percent
from vosx.export.pipeline import ExportOptions, export_all
from vosx.export.prepare import random_inputs
from vosx.export.report import BEYOND, INCONCLUSIVE, NOT_RUN, WITHIN, EndToEnd
from vosx.export.verify import SHIP_FP32
from vosx.model import save_checkpoint
from vosx.model.graphs import TorchGraphs
from vosx.progress import StageProgress

README = Path(__file__).resolve().parents[1] / "README.md"
GATES = {"onnx_parity", "tflite_fp32", "finite", "gpu_ops", "gpu_defect", "fp16_overflow"}


def test_checks_table_is_the_readmes_and_names_real_tolerances():
    assert {c.name for c in verify.CHECKS if c.kind == verify.GATE} == GATES
    findings = {c.name for c in verify.CHECKS if c.kind == verify.FINDING}
    assert findings == {
        "fp16_file",
        "fp16_arithmetic",
        "gpu_arithmetic",
        "end_to_end_fp16",
        "end_to_end_gpu",
        "int8_file",
        "end_to_end_int8",
    }
    table = verify.checks_table()
    assert table in README.read_text(), "README's gate/finding table differs from CHECKS"
    for c in verify.CHECKS:  # every `NAME` a bound cites is a tolerance with that value
        for name in re.findall(r"`([A-Z0-9_]+)` ([0-9.e-]+)", c.bound):
            assert getattr(verify, name[0]) == pytest.approx(float(name[1])), (c.name, name)


def test_drift_finding_names_figure_range_and_meaning():
    v = Verdicts()
    within = v.drift("fp16_file", {"key_encoder fp16 file": 2e-3, "decoder fp16 file": 1e-3}, 1e-2)
    assert within.verdict == WITHIN and within.figure == 2e-3
    assert within.subject == "key_encoder fp16 file" and within.expected == "<= 1e-02"
    assert within.message == (
        "fp16 weights move key_encoder fp16 file by 0.2% of its output range (expected <= 1%)"
    )
    gpu = v.drift(
        "gpu_arithmetic",
        {"key_encoder fp16 file": 0.0598, "decoder fp16 file": 0.01},
        3e-2,
        adapter="llvmpipe",
        reference={"key_encoder fp16 file": 0.0041, "decoder fp16 file": 0.001},
    )
    assert gpu.verdict == BEYOND and gpu.figure == 0.0598
    assert gpu.message.startswith(
        "the GPU, llvmpipe, moves key_encoder fp16 file by 6% of its output range "
        "(expected <= 3%; fp16 arithmetic in PyTorch: 0.41%): the model is fp16-sensitive"
    )
    assert gpu.message.endswith(SHIP_FP32) and "\n" not in gpu.message
    assert gpu.details == {"key_encoder fp16 file": 0.0598, "decoder fp16 file": 0.01}
    assert v.warnings() == [gpu.message]
    assert [f.check for f in v.findings] == ["fp16_file", "gpu_arithmetic"]  # CHECKS order
    with pytest.raises(ValueError, match="not a finding"):
        v.drift("onnx_parity", {"x": 1.0}, 1.0)


def _e2e(ious, ties=0.1) -> EndToEnd:
    return EndToEnd(min(ious), float(np.mean(ious)), tuple(ious), ties, 1 - ties >= 0.05)


def test_clip_finding_counts_changed_pixels_and_knows_ties():
    v = Verdicts()
    beyond = v.clip("end_to_end_gpu", _e2e([0.999, 0.979, 0.99]), 0.97 + 0.02, "llvmpipe")
    assert beyond.verdict == BEYOND and beyond.figure == 0.979 and beyond.subject == "frame 2 of 4"
    assert beyond.message.startswith(
        "2.1% of mask pixels change under fp16 arithmetic on the GPU, llvmpipe, on this clip "
        "(worst frame's IoU 0.9790, expected >= 0.99): the model is fp16-sensitive; train longer"
    )
    within = v.clip("end_to_end_fp16", _e2e([1.0, 0.995]), 0.99)
    assert within.verdict == WITHIN and "expected >= 0.99" in within.message
    ties = v.clip("end_to_end_int8", _e2e([0.2, 0.5], ties=0.99), 0.9)
    assert ties.verdict == INCONCLUSIVE and "99% of pixels are near ties" in ties.message
    assert v.warnings() == [beyond.message]


def test_objects_of_a_few_pixels_count_as_absent_from_both():
    """A lost object (the reference predicts none of it) against a run predicting a few pixels is
    agreement, not IoU 0; a real disagreement still counts (``E2E_MIN_AREA``)."""
    from vosx.export import clip as clips

    h, w = 48, 64  # 3072 pixels: E2E_MIN_AREA 1e-3 is 3 of them
    first = np.zeros((h, w), np.uint8)
    first[:10, :10] = 1
    lost = np.zeros((h, w), np.uint8)
    few, many = lost.copy(), lost.copy()
    few[0, :3] = 1  # 3 pixels: absent from both
    many[0, :4] = 1  # 4 pixels: judged, IoU 0
    gaps = np.ones((h, w), np.float32)
    ref = ([lost, lost], [gaps, gaps])
    ious, ties = clips.label_ious(ref, [few, many], first, verify.E2E_TIE_MARGIN)
    assert ious == [1.0, 0.0] and ties == 0.0
    ref_found = ([first, first], [gaps, gaps])
    ious, _ = clips.label_ious(ref_found, [first, lost], first, verify.E2E_TIE_MARGIN)
    assert ious == [1.0, 0.0]  # the candidate lost a 100-pixel object: judged


@pytest.mark.parametrize("user_frames", [False, True])
def test_int8_advice_follows_the_calibration(user_frames):
    """The int8 advice says how the int8 files were calibrated (bundled clip or --calib)."""
    v = Verdicts(user_calibration=user_frames)
    drift = v.drift("int8_file", {"decoder int8 file": 0.5}, 0.25)
    assert drift.expected == "<= 2.5e-01"  # every digit of the bound (it was 2e-01)
    clip = v.clip("end_to_end_int8", _e2e([0.3, 0.5]), 0.9)
    advice = verify.CALIBRATE_HINTS[user_frames]
    other = verify.CALIBRATE_HINTS[not user_frames]
    for f in (drift, clip):
        assert f.verdict == BEYOND and f.message.endswith(f"({advice}); ship the fp16 / fp32 files")
        assert other not in f.message and "{" not in f.message


def test_gates_fail_together_unless_accepted():
    v = Verdicts(allow_cpu_ops=False)
    v.gate("onnx_parity", [])
    v.not_run("onnx_parity", "never mind")  # a gate that ran stays "passed"
    v.not_run("gpu_defect", "no Vulkan device")
    v.gate("gpu_ops", ["decoder_float32.tflite: TRANSPOSE rank 5"])
    v.gate("finite", ["x.tflite: output f16 is NaN or infinite"])
    assert v.gates["onnx_parity"] == "passed"
    assert v.gates["gpu_defect"] == f"{NOT_RUN}: no Vulkan device"
    with pytest.raises(ParityError, match=r"^verification stage: decoder.*rank 5 \| x.tflite"):
        v.raise_failures("verification stage")
    lenient = Verdicts(allow_cpu_ops=True)
    lenient.gate("gpu_ops", ["decoder_float32.tflite: TRANSPOSE rank 5"])
    lenient.gate("gpu_defect", ["decoder_float16.tflite: 300x fp16 arithmetic"])
    lenient.raise_failures("verification stage")  # accepted: nothing raised
    assert lenient.gates["gpu_ops"].startswith("accepted (--allow-cpu-ops): decoder_float32")
    lenient.gate("finite", ["x: NaN"])  # never acceptable
    with pytest.raises(ParityError, match="x: NaN"):
        lenient.raise_failures("verification stage")


def test_percent_keeps_two_digits():
    assert [percent(x) for x in (0.0598, 0.0011, 0.021, 0.25, 1e-5, 1.234, float("inf"))] == [
        "6%",
        "0.11%",
        "2.1%",
        "25%",
        "0.001%",
        "123%",
        "Inf (an fp16 overflow)",
    ]


def _representable(x: np.ndarray) -> bool:
    return np.array_equal(x, x.astype(np.float16).astype(np.float32))


def test_fp16_graphs_round_weights_and_every_tensor(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    fp16 = Fp16Graphs(tiny_model)
    reference = TorchGraphs(tiny_model)
    from vosx.export.graphs import graph_ios

    for i, (name, gio) in enumerate(graph_ios(tiny_model, TINY_SIZE).items()):
        inputs = random_inputs(gio, seed=i)
        got, ref = fp16.run(name, inputs), reference.run(name, inputs)
        for out, value in got.items():
            assert _representable(value), (name, out)  # the result was rounded to fp16
            rel = measure.compare({out: ref[out]}, {out: value}).rel
            assert 0 < rel < 0.05, (name, out, rel)  # fp16 drift: not zero, not large
    for k, v in tiny_model.state_dict().items():  # the exported model itself is untouched
        assert torch.equal(v, before[k]), k


def test_fp16_mode_rounds_in_place_ops_and_overflows_like_fp16():
    class Net(torch.nn.Module):
        def forward(self, x):
            y = x * 3.0001  # not representable in fp16
            y.add_(0.0001)  # in place: rounded where written
            return y, torch.relu(x * 40000.0)  # 40000 * 2 overflows fp16

    x = torch.tensor([[1.0, 2.0]])
    with _fp16_mode():
        y, big = Net()(x)
    assert _representable(y.numpy()) and y[0, 0].item() == pytest.approx(3.0002, abs=2e-3)
    assert big[0, 0].item() == 40000.0 and big[0, 1].item() == float("inf")


def test_pytorch_nan_or_inf_fails_before_conversion(tiny_model, tmp_path):
    import copy

    broken = copy.deepcopy(tiny_model)
    with torch.no_grad():  # finite weights whose logits overflow float32
        broken.decoder.pred.weight.fill_(3e38)
    ckpt = save_checkpoint(broken, tmp_path / "overflow.pth")
    out = tmp_path / "out"
    with pytest.raises(ParityError, match=r"PyTorch itself gives NaN or Inf in decoder output"):
        export_all(ExportOptions(checkpoint=ckpt, out_dir=out, size=TINY_SIZE))
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["overflow.pth"]


def test_watched_gpu_backend_notes_the_first_nonfinite_output():
    class Fake:
        def __init__(self, value):
            self.value = value

        def run(self, inputs):
            return {"y": np.full((1, 2), self.value, np.float32)}

    backend = gpu._Watched({"key_encoder": Fake(1.0), "decoder": Fake(np.inf)})
    backend.run("key_encoder", {})
    assert backend.nonfinite is None
    backend.run("decoder", {})
    backend.run("decoder", {})
    assert backend.nonfinite == "decoder output y (run 2 of the clip)"


def test_strict_with_gpu_check_off_and_required_contradict(tiny_ckpt, tmp_path, monkeypatch):
    args = ("export", tiny_ckpt, "-o", tmp_path / "o", "--size", "64x96")
    assert run_cli(monkeypatch, *args, "--no-gpu-check", "--require-gpu-check") == 1
    assert not (tmp_path / "o").exists()


def _progress_lines(console_file: io.StringIO, terminal: bool) -> list[str]:
    from rich.console import Console

    console = Console(file=console_file, force_terminal=terminal, width=200)
    with StageProgress(console, prefix="export") as progress:
        progress("onnx", "exporting ONNX graphs")
        progress("convert", "converting")
        progress("convert", "converting (fp32)")  # the running stage's message
        progress("report", "report.json")
    return progress.lines


@pytest.mark.parametrize("terminal", [False, True])
def test_one_progress_line_per_stage_with_its_time(terminal):
    buf = io.StringIO()
    lines = _progress_lines(buf, terminal)
    pattern = r"\[ *\d+\.\d s\] export: (\w+): (.+) \((\d+\.\d) s\)"
    parsed = [re.fullmatch(pattern, line) for line in lines]
    assert all(parsed), lines
    assert [(m[1], m[2]) for m in parsed] == [
        ("onnx", "exporting ONNX graphs"),
        ("convert", "converting (fp32)"),
        ("report", "report.json"),
    ]
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", buf.getvalue())
    for line in lines:
        assert line in text
