"""Shared fixtures: tiny models, checkpoints and (session-wide) a real tiny export folder.

Errors propagate as exceptions in tests (VOSX_RAISE_ERRORS=1) except where CLI tests unset it.
"""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("VOSX_RAISE_ERRORS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TINY_SIZE = (64, 96)  # non-square, so onnx2tf cannot confuse H, W and C
SHARED = Path(__file__).resolve().parents[2] / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared beside the checkout; fails clearly when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.fail(
            f"{p} is missing: the tests need the shared fixtures folder beside the checkout"
        )
    return p


def one_error_line(capsys) -> str:
    """The one ``vosx: error: ...`` line a refused command printed on stderr."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vosx: error: "), err
    return err[0]


def make_workspace(root: Path, ckpt: Path) -> np.ndarray:
    """Inputs the CLI tests feed commands, in ``root``: ``frames/`` (3 random 60x90 PNGs),
    ``mask.png`` (two objects), ``ckpt/model.pth`` (a copy of ``ckpt``) and ``gt/judo`` +
    ``pred/judo`` (the mask on 3 frames). Returns the mask (60 x 90 labels).
    """
    import shutil

    from PIL import Image

    from vosx.tracker_runtime.io import write_labels

    rng = np.random.default_rng(0)
    (root / "frames").mkdir()
    for i in range(3):
        frame = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
        Image.fromarray(frame).save(root / "frames" / f"{i:05d}.png")
    mask = np.zeros((60, 90), np.uint8)
    mask[10:30, 10:40], mask[35:55, 50:80] = 1, 2
    write_labels(root / "mask.png", mask)
    (root / "ckpt").mkdir()
    shutil.copy(ckpt, root / "ckpt" / "model.pth")
    for sub in ("gt", "pred"):
        (root / sub / "judo").mkdir(parents=True)
        for i in range(3):
            write_labels(root / sub / "judo" / f"{i:05d}.png", mask)
    return mask


def run_cli(monkeypatch, *args) -> int:
    """Run the real ``vosx`` entry point in-process (one-line errors included) -> exit code."""
    from vosx.cli import main

    monkeypatch.delenv("VOSX_RAISE_ERRORS", raising=False)
    monkeypatch.setattr(sys, "argv", ["vosx", *map(str, args)])
    with pytest.raises(SystemExit) as e:
        main()
    return e.value.code


@pytest.fixture(scope="session")
def tiny_model():
    """A tiny TrickVOS in eval mode with non-trivial BatchNorm statistics."""
    import torch

    from vosx.model import TINY_CONFIG, build_model

    torch.manual_seed(0)
    model = build_model(TINY_CONFIG)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    with torch.no_grad():  # decisive logits, so end-to-end label checks compare real decisions
        model.decoder.pred.weight.mul_(20.0)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_model, tmp_path_factory) -> Path:
    """The tiny model saved as a vosx checkpoint."""
    from vosx.model import save_checkpoint

    return save_checkpoint(tiny_model, tmp_path_factory.mktemp("ckpt") / "tiny.pth")


@pytest.fixture(scope="session")
def tiny_export_dir(tiny_ckpt, tmp_path_factory) -> Path:
    """A real export (onnx2tf, fp32 + fp16) of the tiny checkpoint at 64x96."""
    from vosx.export.pipeline import ExportOptions, export_all

    out = tmp_path_factory.mktemp("export") / "tiny_export"
    export_all(
        ExportOptions(
            checkpoint=tiny_ckpt, out_dir=out, size=TINY_SIZE, precisions=("fp32", "fp16")
        )
    )
    return out
