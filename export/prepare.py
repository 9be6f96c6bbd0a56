"""Stage ``prepare`` of ``vosx export``: the ``ExportRun`` every later stage reads.

Probe inputs (a random and a realistic one per graph, the realistic ones from a clip's frames and
masks through PyTorch), PyTorch's outputs on them (the reference of every parity figure, checked
finite), the calibration samples, costs and the ``judge.Verdicts`` the stages fill.

Shapes: as in ``vosx.export.graphs`` (NHWC, ``1 x 1 x N x C`` memory); frames T x H x W x 3
uint8, masks T x H x W uint8.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vosx.errors import ConfigError
from vosx.export import measure
from vosx.export.fp16 import Fp16Graphs
from vosx.export.judge import Verdicts
from vosx.export.options import ExportOptions

E2E_FRAMES = 10  # the end-to-end clip: the bundled real clip's first frames
CALIB_FRAMES = 8  # without --calib: the bundled real clip's first frames calibrate int8
BUNDLED_SOURCE = "the bundled real clip (DAVIS 2016 bear, vosx/assets/demo_real)"
CALIB_CLIPS = 8  # --calib: videos sampled, spread over the folder
CALIB_CLIP_FRAMES = 4  # the first frames of each (memory 0 and t-1, query t: two samples each)
SEGMENT_ONLY = "scope segment (what `vosx segment` needs); `vosx export` runs it"


@dataclass(frozen=True)
class ExportRun:
    """What every stage reads: the model, its graphs, probe inputs, references and costs."""

    model: object  # the TrickVOS being exported
    opts: ExportOptions
    out: Path  # the temporary folder everything is written into
    started: float  # time.time() at the start
    ios: dict  # graph name -> GraphIO
    torch_graphs: object  # TorchGraphs of the model: the reference of every parity figure
    realistic: list[dict]  # per sample: graph name -> input name -> array (from a clip)
    random_in: dict  # graph name -> input name -> array (random, seeded per graph)
    refs: dict  # graph name -> PyTorch's outputs on each of ``probes(name)``
    calib_source: str  # where the sample frames came from
    macs: dict[str, int]  # graph name -> MACs of one run with one object
    params: dict[str, int]  # top-level part -> parameters, and "total"
    verdicts: Verdicts  # gates and findings, filled stage by stage
    fp16_graphs: Fp16Graphs | None  # fp16 arithmetic in PyTorch (scope "full"), else None
    fp16_rel: dict = field(default_factory=dict)  # graph -> output -> fp16 arithmetic's rel

    @property
    def full(self) -> bool:
        """Every check runs (``scope`` "full"); else only what ``vosx segment`` needs."""
        return self.opts.scope == "full"

    def probes(self, name: str) -> list[dict]:
        """The inputs every parity figure of graph ``name`` is the worst case over."""
        return [self.random_in[name], self.realistic[0][name]]

    def clip(self) -> "Clip":
        """The end-to-end clip: the bundled real clip's first ``E2E_FRAMES`` frames and masks at
        the export's size (``bundled_clip``)."""
        return Clip(*bundled_clip(self.opts.size, E2E_FRAMES))


@dataclass(frozen=True)
class Clip:
    """A clip at the export's size: frames T x H x W x 3 uint8, masks T x H x W uint8."""

    frames: np.ndarray
    masks: np.ndarray


def bundled_clip(size: tuple[int, int], length: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``length`` frames and masks of the bundled real clip (``vosx.paths.DEMO_CLIP``:
    DAVIS 2016 ``bear``, one object), resized to ``size``.

    Real video, not the synthetic clips the checks used before: on the bundled model the
    synthetic clip flagged fp16 weights (worst-frame IoU 0.945) and the GPU (0.570) where the
    dev split through ``vosx segment`` lost nothing (README, Measured figures); this clip gives
    0.999 for fp16, as three dev sequences tried did (0.993 to 0.997).

    Returns:
        (frames T x H x W x 3 uint8, masks T x H x W uint8).
    """
    from vosx.paths import DEMO_CLIP

    frames = sorted((DEMO_CLIP / "frames").glob("*.jpg"))
    masks = sorted((DEMO_CLIP / "masks").glob("*.png"))
    return _read_clip(frames, masks, size, length, "bundled clip frame")


def sample_clips(
    size: tuple[int, int], calib_dir: Path | None, calibrated: bool
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """The clips the realistic probes and the int8 calibration samples come from.

    Without ``--calib``: the bundled real clip (``bundled_clip``; ``CALIB_FRAMES`` frames when
    calibrating, else 3).
    With it: a video folder with masks (DAVIS or YouTube-VOS layout, as ``vosx train`` reads), of
    which up to ``CALIB_CLIPS`` videos spread over the folder give their first
    ``CALIB_CLIP_FRAMES`` frames and masks (3 and one video when not calibrating). The masks must
    be the frames' own: frames paired with unrelated masks collapsed the bundled model's int8
    files (dev-split J&F 0.000; README, Measured figures).

    Returns:
        ([(frames T x H x W x 3 uint8, masks T x H x W uint8), ...] at ``size``, their source).

    Raises:
        ConfigError: ``calib_dir`` is not a video folder with masks, or holds a bad file.
    """
    if calib_dir is None:
        return [bundled_clip(size, CALIB_FRAMES if calibrated else 3)], BUNDLED_SOURCE
    from vosx.errors import InputDataError
    from vosx.training.folders import is_video_folder, scan_video_folder

    if not is_video_folder(Path(calib_dir)):
        raise ConfigError(
            f"--calib {calib_dir}: not a video folder with masks; give one in DAVIS or "
            "YouTube-VOS layout (JPEGImages/<video>/ frames, Annotations/<video>/ their masks), "
            "as `vosx train --data` takes"
        )
    try:
        _, videos = scan_video_folder(Path(calib_dir))
        videos = [v for v in videos if len(v.frames) >= 3]  # memory 0 and t-1, query t >= 2
        if not videos:
            raise ConfigError(
                f"--calib {calib_dir}: no video has 3 or more annotated frames; add longer videos"
            )
        count, length = (CALIB_CLIPS, CALIB_CLIP_FRAMES) if calibrated else (1, 3)
        picks = np.linspace(0, len(videos) - 1, min(count, len(videos))).round().astype(int)
        picked = [videos[i] for i in sorted(set(picks.tolist()))]
        clips = [_read_clip(v.frames, v.masks, size, length, "--calib frame") for v in picked]
    except InputDataError as e:
        raise ConfigError(f"--calib {e}") from None
    return clips, f"real clips with their masks from {calib_dir}"


def _read_clip(
    frame_paths: list[Path], mask_paths: list[Path], size: tuple[int, int], length: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``length`` frames and their masks, resized to ``size`` (``what``: the frames'
    name in an error)."""
    from PIL import Image

    from vosx.tracker_runtime.io import read_image
    from vosx.training.folders import check_same_size, read_mask

    h, w = size
    frames, masks = [], []
    for fpath, mpath in list(zip(frame_paths, mask_paths, strict=True))[:length]:
        frame, mask = read_image(fpath, what), read_mask(mpath)
        check_same_size(fpath, frame, mpath, mask)
        frames.append(np.asarray(Image.fromarray(frame).resize((w, h), Image.BILINEAR)))
        masks.append(np.asarray(Image.fromarray(mask).resize((w, h), Image.NEAREST)))
    return np.stack(frames), np.stack(masks)


def _graph_inputs(graphs, size, frames: np.ndarray, masks: np.ndarray) -> list[dict]:
    """Realistic inputs of every graph from a clip: memory = frames 0 and t-1, query = frame t."""
    from vosx.tracker_runtime.preprocess import preprocess

    samples = []
    feats = [graphs.run("key_encoder", {"image": preprocess(f, size)[0]}) for f in frames]
    for t in range(2, len(frames)):
        obj = (masks[t] == 1).astype(np.float32)[None, :, :, None]
        m0 = (masks[0] == 1).astype(np.float32)[None, :, :, None]
        m1 = (masks[t - 1] == 1).astype(np.float32)[None, :, :, None]
        v0 = graphs.run("value_encoder", {"mask": m0, "f16": feats[0]["f16"]})["value"]
        v1 = graphs.run("value_encoder", {"mask": m1, "f16": feats[t - 1]["f16"]})["value"]
        samples.append(
            {
                "key_encoder": {"image": preprocess(frames[t], size)[0]},
                "value_encoder": {"mask": obj, "f16": feats[t]["f16"]},
                "decoder": {
                    "qk": feats[t]["key"],
                    "mk_first": feats[0]["key"],
                    "mk_last": feats[t - 1]["key"],
                    "mv_first": v0,
                    "mv_last": v1,
                    "f16c": feats[t]["f16c"],
                    "f8": feats[t]["f8"],
                    "f4": feats[t]["f4"],
                },
            }
        )
    return samples


def random_inputs(gio, seed: int) -> dict:
    """Seeded standard-normal inputs of one graph (``GraphIO``); the mask is 0 / 1."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in gio.inputs.items():
        x = rng.standard_normal(shape).astype(np.float32)
        out[name] = (x > 0).astype(np.float32) if name == "mask" else x
    return out


def _nonfinite_references(refs: dict) -> list[str]:
    """The ``finite`` gate's problems with PyTorch's own outputs on the probes."""
    problems = []
    for name, outputs in refs.items():
        for kind, out in zip(("random", "realistic"), outputs, strict=True):
            bad = measure.first_nonfinite(out)
            if bad is not None:
                problems.append(
                    f"PyTorch itself gives NaN or Inf in {name} output {bad} on a {kind} input: "
                    "the checkpoint is not sound"
                )
    return problems


def prepare(model, opts: ExportOptions, out: Path, say) -> ExportRun:
    """Stage ``prepare``: shapes, probe inputs, PyTorch's outputs on them (``finite`` gate).

    Raises:
        ParityError: PyTorch itself gives NaN or Inf.
    """
    from vosx.export.graphs import graph_ios
    from vosx.model.checkpoint import count_parameters
    from vosx.model.graphs import TorchGraphs

    say("prepare", "probe inputs and PyTorch's outputs on them")
    started = time.time()
    ios = graph_ios(model, opts.size)
    torch_graphs = TorchGraphs(model)
    # calibration takes every sample; the float checks need one (frames 0, 1 as memory, 2 as query)
    clips, calib_source = sample_clips(opts.size, opts.calib_dir, opts.calibrated)
    realistic = [s for f, m in clips for s in _graph_inputs(torch_graphs, opts.size, f, m)]
    random_in = {name: random_inputs(gio, seed=i) for i, (name, gio) in enumerate(ios.items())}
    refs = {
        name: [torch_graphs.run(name, p) for p in (random_in[name], realistic[0][name])]
        for name in ios
    }
    verdicts = Verdicts(opts.allow_cpu_ops, user_calibration=opts.calib_dir is not None)
    verdicts.gate("finite", _nonfinite_references(refs))
    verdicts.raise_failures("verification stage")
    return ExportRun(
        model=model,
        opts=opts,
        out=out,
        started=started,
        ios=ios,
        torch_graphs=torch_graphs,
        realistic=realistic,
        random_in=random_in,
        refs=refs,
        calib_source=calib_source,
        macs=measure.count_macs(model, opts.size),
        params=count_parameters(model),
        verdicts=verdicts,
        fp16_graphs=Fp16Graphs(model) if opts.scope == "full" else None,
    )
