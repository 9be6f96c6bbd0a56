"""Shared helpers of the browser-app tests: the real export they run, the clips, the reference.

The export is the bundled checkpoint at the default 480x864 input, fp32 only, made once per
session into pytest's base temp folder (both browser test modules reuse it). The reference labels
are ``vosx.tracker_runtime.segment.segment`` over LiteRT (what ``vosx segment --model`` runs).
"""

import json
import os
from pathlib import Path

import numpy as np

from tests.conftest import shared_path
from vosx.paths import DEMO_CLIP

ARTIFACTS = Path(
    os.environ.get(
        "VOSX_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "build" / "test-artifacts"
    )
)


def clips() -> dict[str, tuple[Path, Path]]:
    """name -> (frames folder, first mask): the bundled demo clip and the shared real clips."""
    real = shared_path("fixtures", "real_clips")
    return {
        "demo_real": (DEMO_CLIP / "frames", DEMO_CLIP / "masks" / "00000.png"),
        "judo": (real / "judo" / "frames", real / "judo" / "first_mask.png"),
        "bike": (real / "bike" / "frames", real / "bike" / "first_mask.png"),
    }


def real_export(tmp_path_factory) -> Path:
    """The bundled checkpoint exported at 480x864 (fp32), once per session.

    ``VOSX_TEST_WEB_EXPORT=DIR`` reuses a folder made by ``vosx export -o DIR`` (the bundled
    checkpoint at the default size) instead, to save the export's minutes when iterating.
    """
    reuse = os.environ.get("VOSX_TEST_WEB_EXPORT")
    if reuse:
        return Path(reuse)
    out = tmp_path_factory.getbasetemp() / "web_real_export"
    if (out / "manifest.json").is_file():
        return out
    from vosx.export.pipeline import ExportOptions, export_all
    from vosx.paths import DEFAULT_CHECKPOINT

    export_all(
        ExportOptions(
            checkpoint=DEFAULT_CHECKPOINT, out_dir=out, size=(480, 864), precisions=("fp32",)
        )
    )
    return out


def reference_labels(export_dir: Path, frames_dir: Path, mask: Path, tracker: str) -> np.ndarray:
    """T x H x W labels of the NumPy driver over LiteRT fp32 (as `vosx segment --model`)."""
    from vosx.tracker_runtime.io import Frames, read_labels
    from vosx.tracker_runtime.litert import TFLiteGraphs
    from vosx.tracker_runtime.segment import segment

    graphs = TFLiteGraphs.open(export_dir, precision="fp32", threads=2)
    labels = segment(
        Frames(frames_dir), read_labels(mask), graphs, graphs.manifest.input_size, tracker
    )
    return np.stack(list(labels))


def agreement(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Per frame, the fraction of pixels with the same label."""
    assert a.shape == b.shape, (a.shape, b.shape)
    return [float((x == y).mean()) for x, y in zip(a, b, strict=True)]


def min_object_iou(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Per frame, the lowest IoU over the objects present in either map (1.0 when none)."""
    out = []
    for x, y in zip(a, b, strict=True):
        ids = [int(i) for i in np.union1d(np.unique(x), np.unique(y)) if i]
        ious = [((x == i) & (y == i)).sum() / max(1, ((x == i) | (y == i)).sum()) for i in ids]
        out.append(float(min(ious, default=1.0)))
    return out


def record(name: str, data: dict) -> Path:
    """Write a figure set as a JSON test artefact (printed by the tests too)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path
