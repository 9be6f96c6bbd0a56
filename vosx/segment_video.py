"""``vosx segment``: open the graphs (TFLite export or PyTorch), segment a video, write PNGs.

``SegmentOptions`` holds the command's options and their defaults (the CLI reads them here, so
this module imports only the standard library, ``vosx.limits`` and the numpy-only tracker
registry at the top).
``segment_video`` checks the outputs, opens the backend (exporting the checkpoint into the user
cache on first use when no export folder is given), runs ``tracker_runtime.segment.segment``
and writes one label PNG per frame and the optional overlay. torch and tensorflow are imported
only by the torch backend or an export.

Shapes: frames H x W x 3 uint8 RGB; label maps H x W uint8 (0 = background, 1..K objects).
"""

import time
from dataclasses import dataclass
from pathlib import Path

from vosx import limits
from vosx.tracker_runtime.trackers import DEFAULT_TRACKER, TRACKER_KINDS

BACKENDS = ("tflite", "torch")  # what runs the graphs
TRACKERS = TRACKER_KINDS  # Trick 3 box tracker per object ("none" = no filtering)
OVERLAY_SUFFIXES = (".gif", ".mp4")


@dataclass(frozen=True)
class SegmentOptions:
    """What ``vosx segment`` was asked to do.

    Args:
        source: Folder of frames or a video file.
        mask: The first frame's object labels (indexed PNG, 0 = background).
        out: Output folder of label PNGs (replaced as a whole).
        model: Output folder of ``vosx export``; None: the checkpoint exported at the frames'
            size into the user cache, once.
        backend: One of ``BACKENDS``.
        checkpoint: For the torch backend, or to export without ``model``; None: the bundled one.
        tracker: One of ``TRACKERS``.
        margin: Tracker box growth per side; None: the tracker's measured default.
        precision: The .tflite files the tflite backend runs (``vosx.precision.PRECISION_NAMES``).
        threads: CPU threads per interpreter (torch threads on the torch backend).
        max_objects: First-frame masks with more objects are refused (a photo given as mask).
        xnnpack: Use the XNNPACK CPU delegate.
        accelerator: "cpu" or "gpu" (tflite backend: LiteRT's GPU accelerator, GPU-only).
        overlay: Also write an overlay video (.mp4 or .gif).
        force: Replace existing outputs.
    """

    source: Path
    mask: Path
    out: Path
    model: Path | None = None
    backend: str = "tflite"
    checkpoint: Path | None = None
    tracker: str = DEFAULT_TRACKER
    margin: float | None = None
    precision: str = "fp32"
    threads: int = limits.DEFAULT_THREADS
    max_objects: int = limits.DEFAULT_MASK_OBJECTS
    xnnpack: bool = True
    accelerator: str = "cpu"
    overlay: Path | None = None
    force: bool = False


@dataclass(frozen=True)
class SegmentSummary:
    """What ``segment_video`` wrote."""

    frames: int  # label PNGs written
    objects: int  # objects of the first-frame mask
    seconds: float  # segmenting and writing, excluding opening the backend

    @property
    def fps(self) -> float:
        """Frames segmented (and written) per second."""
        return self.frames / self.seconds


def segment_video(opts: SegmentOptions, console) -> SegmentSummary:
    """Segment ``opts.source`` from its first-frame mask into ``opts.out`` (and the overlay).

    Args:
        opts: The options.
        console: A rich console (stderr) for the progress bar and the first-use export.

    Raises:
        OutputError / ConfigError: a refused output, an overlay that is not .gif / .mp4 or lies
            inside ``out``, ``checkpoint`` with ``model`` on the tflite backend.
        InputDataError, ManifestError, CheckpointError: unusable frames, mask, export or
            checkpoint.
    """
    import numpy as np

    from vosx.tracker_runtime.io import Frames, read_first_mask
    from vosx.tracker_runtime.segment import segment

    check_segment_options(opts)
    frames = Frames(opts.source, exclude=[opts.mask])  # a mask stored with the frames is not one
    first_mask = read_first_mask(opts.mask, frames.size, opts.max_objects)
    graphs, size = open_graphs(opts, frames.size, console)
    current: list = [None]  # the frame being segmented: frames are read once, for both uses

    def read_frames():
        for frame in frames:
            current[0] = frame
            yield frame

    labels = segment(read_frames(), first_mask, graphs, size, opts.tracker, opts.margin)
    written, seconds = _write(labels, frames, current, opts, console)
    return SegmentSummary(written, len([i for i in np.unique(first_mask) if i]), seconds)


def check_segment_options(opts: SegmentOptions) -> None:
    """Refuse bad outputs and option combinations before anything is read.

    Raises:
        OutputError / ConfigError: as ``segment_video``.
    """
    from vosx.errors import ConfigError
    from vosx.output_policy import check_distinct_outputs, check_output

    limits.check_count(opts.threads, "--threads", 1, limits.MAX_THREADS)
    inputs = [opts.source, opts.mask, opts.model, opts.checkpoint]
    check_output(opts.out, inputs, opts.force, kind="dir", what="-o")
    overlay = opts.overlay
    if overlay is not None and overlay.suffix.lower() not in OVERLAY_SUFFIXES:
        raise ConfigError(f"--overlay {overlay}: must end in .gif or .mp4")
    if overlay is not None:
        check_output(overlay, inputs, opts.force, what="--overlay", example="overlay.gif")
        if opts.out.absolute() in overlay.absolute().parents:
            raise ConfigError(
                f"--overlay {overlay}: is inside the -o folder {opts.out}, which is replaced as a "
                "whole; write the overlay beside it"
            )
        check_distinct_outputs([("-o", opts.out), ("--overlay", overlay)])
    if opts.backend != "torch" and opts.model is not None and opts.checkpoint is not None:
        raise ConfigError(
            "--checkpoint is not used with --model on the tflite backend; drop one of them"
        )


def open_graphs(opts: SegmentOptions, frame_size: tuple[int, int], console):
    """The backend's graphs and the padded input size they run at, for (H, W) frames.

    The torch backend runs the checkpoint at the export's size (``model``) or the frames'
    padded size; the tflite backend runs ``model`` or the cached export (``cached_export``).
    """
    from vosx.tracker_runtime.segment import padded_size

    if opts.backend == "torch":
        import torch

        from vosx.manifest import load_manifest
        from vosx.model.checkpoint import load_checkpoint, resolve_checkpoint
        from vosx.model.graphs import TorchGraphs

        torch.set_num_threads(opts.threads)
        size = load_manifest(opts.model).input_size if opts.model else padded_size(frame_size)
        return TorchGraphs(load_checkpoint(resolve_checkpoint(opts.checkpoint))), size
    from vosx.tracker_runtime.litert import TFLiteGraphs

    export_dir = opts.model or cached_export(
        opts.checkpoint, padded_size(frame_size), opts.precision, console
    )
    graphs = TFLiteGraphs.open(
        export_dir, opts.precision, opts.threads, opts.xnnpack, opts.accelerator
    )
    return graphs, graphs.manifest.input_size


def _write(labels, frames, current: list, opts: SegmentOptions, console) -> tuple[int, float]:
    """Write each label map as a PNG (and the overlay) with a progress bar: (count, seconds).

    The labels appear as a whole folder at the end, or not at all; so does the overlay.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from vosx.files import replace_dir
    from vosx.tracker_runtime.io import write_labels
    from vosx.tracker_runtime.overlay import OverlayWriter

    progress = Progress(
        TextColumn("segment"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]} frames/s"),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # no stray newline on stderr when it is not a terminal
    )
    start = time.perf_counter()
    written = 0
    writer = None
    with replace_dir(opts.out, overwrite=opts.force) as tmp:  # refused if -o appeared meanwhile
        try:
            overlay = opts.overlay
            writer = OverlayWriter(overlay, frames.fps, opts.force) if overlay is not None else None
            with progress:
                task = progress.add_task("segment", total=len(frames), fps="-")
                for i, label_map in enumerate(labels):
                    write_labels(tmp / f"{frames.names[i]}.png", label_map)  # H x W uint8
                    if writer is not None:
                        writer.add(current[0], label_map)
                    written = i + 1
                    fps = written / (time.perf_counter() - start)
                    progress.update(task, advance=1, fps=f"{fps:.1f}")
            if writer is not None:
                writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        seconds = time.perf_counter() - start
    return written, seconds


def cached_export(checkpoint: Path | None, size: tuple[int, int], precision: str, console) -> Path:
    """The cached export of ``checkpoint`` (bundled when None) at ``size``; exported on first use.

    torch and tensorflow are imported only when an export has to run.

    Raises:
        CheckpointError: no such checkpoint file (or no bundled one).
    """
    from vosx.errors import CheckpointError, ManifestError
    from vosx.export_folder import sha256_file
    from vosx.manifest import load_manifest
    from vosx.paths import checkpoint_or_bundled
    from vosx.tracker_runtime.segment import default_export_dir

    ckpt = checkpoint_or_bundled(checkpoint)
    if not ckpt.is_file():
        what = "no bundled checkpoint at" if checkpoint is None else "no such checkpoint file"
        raise CheckpointError(
            f"{ckpt}: {what}; pass --checkpoint CKPT or --model EXPORT_DIR from `vosx export`"
        )
    out = default_export_dir(sha256_file(ckpt), size)
    cached: list[str] = []  # precisions of a usable cached export that lacks this one
    if out.is_dir():
        try:
            manifest = load_manifest(out, verify=False)
            cached = manifest.precisions
            load_manifest(out, precision=precision).tflite_path("decoder", precision)
            return out
        except ManifestError as e:
            reason = f" (the cached one is unusable: {e})"
    else:
        reason = ""
    from vosx.export.options import ExportOptions
    from vosx.export.pipeline import export_all
    from vosx.precision import PRECISION_NAMES
    from vosx.progress import StageProgress

    # Only what segment runs: its precision (and those already cached), the CPU gates.
    precisions = tuple(p for p in PRECISION_NAMES if p == precision or p in cached)
    console.print(
        f"vosx: exporting {ckpt} at {size[0]}x{size[1]} ({', '.join(precisions)}) into {out} "
        f"once, later runs reuse it; checked on the CPU only: a full `vosx export` verifies "
        f"more (GPU delegate, fp16, end-to-end clip){reason}",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    opts = ExportOptions(
        checkpoint=ckpt,
        out_dir=out,
        size=size,
        precisions=precisions,
        force=True,
        scope="segment",
    )
    with StageProgress(console, prefix="first-use export") as progress:
        export_all(opts, progress)
    return out
