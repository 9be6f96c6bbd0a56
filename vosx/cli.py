"""The ``vosx`` command line: thin typed commands that validate, call one function, print a summary.

Heavy libraries (torch, tensorflow, onnx) are imported inside commands, so ``vosx --help`` is
instant.
``VosxError`` becomes one line on stderr and exit 1 (re-raised when VOSX_RAISE_ERRORS=1).
"""

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vosx.errors import VosxError, raise_errors

app = typer.Typer(
    name="vosx",
    help="TrickVOS from a PyTorch checkpoint to a phone: export, segment, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def init(
    out: Annotated[Path, typer.Argument(help="Where to write the checkpoint (.pth).")],
    seed: Annotated[int, typer.Option(help="Random seed of the initialisation.")] = 0,
    tiny: Annotated[bool, typer.Option(help="Use the few-channel test config.")] = False,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a randomly initialised checkpoint (for speed checks before training)."""
    from vosx.files import check_output

    check_output(out, force=force, example="model.pth")
    import torch

    from vosx.model import TINY_CONFIG, ModelConfig, build_model, count_parameters, save_checkpoint

    torch.manual_seed(seed)
    model = build_model(TINY_CONFIG if tiny else ModelConfig())
    save_checkpoint(model, out)
    typer.echo(f"wrote {out} ({count_parameters(model)['total']:,} parameters, seed {seed})")


@app.command()
def info(
    checkpoint: Annotated[Path, typer.Argument(help="A vosx checkpoint (.pth).")],
) -> None:
    """Print a checkpoint's config and its parameter count per part."""
    from rich.console import Console
    from rich.table import Table

    from vosx.model import count_parameters, load_checkpoint

    model = load_checkpoint(checkpoint)
    table = Table(title=f"{checkpoint}")
    table.add_column("part")
    table.add_column("parameters", justify="right")
    for part, n in count_parameters(model).items():
        table.add_row(part, f"{n:,}")
    console = Console()
    console.print(table)
    for key, value in model.config.to_dict().items():
        console.print(f"{key} = {value}")


@app.command()
def export(
    checkpoint: Annotated[
        Path | None, typer.Argument(help="Checkpoint (.pth); the bundled default when omitted.")
    ] = None,
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")] = Path("vosx_export"),
    size: Annotated[
        str, typer.Option(help="Padded input HEIGHTxWIDTH, multiples of 16.")
    ] = "480x864",
    precision: Annotated[
        str, typer.Option(help="Comma-separated precisions: fp32, fp16, int8.")
    ] = "fp32,fp16",
    calib: Annotated[
        Path | None,
        typer.Option(
            exists=True, file_okay=False, help="Frames for int8 calibration (else synthetic)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    allow_cpu_ops: Annotated[
        bool, typer.Option(help="Accept ops the GPU delegate cannot run (CPU fallback).")
    ] = False,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads for verification runs.")] = 2,
) -> None:
    """Export CKPT to ONNX and TFLite key/value/decoder graphs, verified, with a manifest."""
    import time

    from rich.console import Console
    from rich.table import Table

    from vosx.export.pipeline import ExportOptions, export_all, parse_size

    console = Console(stderr=True)
    opts = ExportOptions(
        checkpoint=checkpoint,
        out_dir=out,
        size=parse_size(size),
        precisions=tuple(p.strip() for p in precision.split(",") if p.strip()),
        calib_dir=calib,
        force=force,
        allow_cpu_ops=allow_cpu_ops,
        threads=threads,
    )
    start = time.time()
    with console.status("starting") as status:

        def progress(stage: str, message: str) -> None:
            console.log(f"[{time.time() - start:5.1f}s] {stage}: {message}")
            status.update(f"{stage}: {message}")

        result = export_all(opts, progress)
    report = result.report
    table = Table(title=f"vosx export -> {result.out_dir}")
    for col in ("graph", "precision", "KB", "rel. diff vs PyTorch", "GPU delegate", "MMAC"):
        table.add_column(col, justify="right" if col in ("KB", "MMAC") else "left")
    for name, g in report["graphs"].items():
        for prec, p in g["precisions"].items():
            gpu = p["gpu"]
            verdict = "n/a" if gpu is None else ("ok" if gpu["compatible"] else "CPU fallback")
            table.add_row(
                name,
                prec,
                f"{p['bytes'] / 1024:.0f}",
                f"{p['parity']['rel']:.1e}",
                verdict,
                f"{g['macs'] / 1e6:.0f}",
            )
    Console().print(table)
    for prec, e in report["end_to_end"].items():
        note = "" if e["conclusive"] else " (inconclusive: untrained model)"
        typer.echo(f"end-to-end {prec}: min IoU {e['min_iou']:.4f} vs PyTorch{note}")
    typer.echo(f"wrote {result.out_dir} in {report['export_seconds']} s (manifest.json, report.md)")


@app.command("eval")
def eval_(
    pred_dir: Annotated[
        Path, typer.Argument(metavar="PRED_DIR", help="Predicted label PNGs (<seq>/<frame>.png).")
    ],
    gt_dir: Annotated[
        Path,
        typer.Argument(
            metavar="GT_DIR", help="Ground truth: DAVIS root, folder of sequences, or one sequence."
        ),
    ],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write all scores to this JSON file.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --json file.")] = False,
) -> None:
    """DAVIS 2017 semi-supervised J, F and J&F of PRED_DIR against GT_DIR (official rules)."""
    import json

    from vosx.files import atomic_write, check_output
    from vosx.tracker_runtime.metrics import evaluate_folders, format_table

    if json_out is not None:
        check_output(json_out, [pred_dir, gt_dir], force, what="--json", example="scores.json")
    result = evaluate_folders(pred_dir, gt_dir)
    typer.echo(f"DAVIS 2017 semi-supervised: {pred_dir} vs {gt_dir}")
    typer.echo(format_table(result))
    if json_out is not None:
        atomic_write(json_out, json.dumps(result.to_dict(), indent=2) + "\n")
        typer.echo(f"wrote {json_out}")


@app.command("train-tracker")
def train_tracker(
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Output weights (.npz).")],
    data: Annotated[
        list[Path] | None,
        typer.Option(help="DAVIS-layout folder of ground-truth PNGs (repeatable)."),
    ] = None,
    synthetic: Annotated[
        int | None, typer.Option(min=0, help="Synthetic clips to train on (200 when no --data).")
    ] = None,
    frames: Annotated[int, typer.Option(min=3, help="Frames per synthetic clip.")] = 30,
    size: Annotated[str, typer.Option(help="Synthetic frame HEIGHTxWIDTH.")] = "240x432",
    hidden: Annotated[int, typer.Option(min=1, help="Width of the MLP's hidden layers.")] = 32,
    steps: Annotated[int, typer.Option(min=1, help="Adam steps.")] = 3000,
    under_weight: Annotated[
        float, typer.Option(min=1.0, help="Loss weight of box edges cutting into the object.")
    ] = 4.0,
    seed: Annotated[int, typer.Option(help="Seed of data, split and initialisation.")] = 0,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Train the Trick 3 parametric tracker (PT) on boxes of ground-truth masks; save as .npz."""
    from vosx.errors import ConfigError
    from vosx.files import check_output

    check_output(out, data or (), force, example="pt.npz")
    if out.suffix != ".npz":
        raise ConfigError(
            f"{out}: tracker weights must be a .npz file; e.g. {out.with_suffix('.npz')}"
        )
    try:
        height, width = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {size!r}: expected HEIGHTxWIDTH such as 240x432") from None
    if min(height, width) < 16 or max(height, width) > 4096:
        raise ConfigError(f"--size {size}: height and width must be in 16..4096, e.g. 240x432")
    from vosx.training import tracker_train

    n_synth = synthetic if synthetic is not None else (0 if data else 200)
    result = tracker_train.train_tracker(
        out,
        tracker_train.TrackerDataConfig(tuple(data or ()), n_synth, frames, height, width),
        tracker_train.TrackerTrainConfig(
            hidden=hidden, steps=steps, under_weight=under_weight, seed=seed
        ),
        progress=typer.echo,
    )
    typer.echo(
        f"edge loss x1000 (under-weight {under_weight:g}): train {result.train_loss:.3f}, "
        f"validation {result.val_loss:.3f} (constant velocity: {result.cv_val_loss:.3f})"
    )
    typer.echo(f"wrote {out} ({result.num_train} training / {result.num_val} validation triples)")


def _pair(text: str, option: str, kind: type, sep: str) -> tuple:
    """Parse 'AxB' / 'A,B' option values into a pair of ``kind``."""
    from vosx.errors import ConfigError

    try:
        a, b = (kind(v) for v in text.lower().split(sep))
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected two values as A{sep}B") from None
    return a, b


@app.command()
def train(
    out: Annotated[
        Path, typer.Option("-o", "--out", help="Run folder: last.pth, model.pth, log.csv.")
    ],
    data: Annotated[
        str, typer.Option(help="Video stage: 'synthetic' or a DAVIS-2017 / YouTube-VOS folder.")
    ] = "synthetic",
    static_data: Annotated[
        str, typer.Option(help="Static stage: 'synthetic' or a folder of image + mask pairs.")
    ] = "synthetic",
    steps: Annotated[int, typer.Option(min=1, help="Total steps (static + video).")] = 1000,
    static_steps: Annotated[
        int, typer.Option(min=0, help="Steps of the static-image stage first (0 skips it).")
    ] = 0,
    batch: Annotated[int, typer.Option(min=1, help="Global batch size (paper 16).")] = 16,
    lr: Annotated[
        float, typer.Option(help="Adam learning rate (paper 1e-5 over 300K steps).")
    ] = 1e-5,
    weight_decay: Annotated[float, typer.Option(help="Adam weight decay (paper 1e-7).")] = 1e-7,
    lr_final: Annotated[
        float, typer.Option(help="Cosine decay to lr x this at the last step (1 = constant).")
    ] = 1.0,
    warmup: Annotated[int, typer.Option(min=0, help="Linear warm-up steps.")] = 0,
    ce: Annotated[bool, typer.Option("--ce/--no-ce", help="Trick 1: cross-entropy term.")] = True,
    ssim: Annotated[bool, typer.Option("--ssim/--no-ssim", help="Trick 1: 1 - SSIM term.")] = True,
    iou: Annotated[bool, typer.Option("--iou/--no-iou", help="Trick 1: soft IoU term.")] = True,
    seq_len: Annotated[int, typer.Option(min=2, help="Frames per training clip (paper 5).")] = 5,
    crop: Annotated[
        str, typer.Option(help="Training crop HEIGHTxWIDTH, multiples of 16.")
    ] = "384x384",
    max_objects: Annotated[int, typer.Option(min=1, help="Objects per training clip.")] = 2,
    synthetic_zoom: Annotated[
        str,
        typer.Option(
            help="Synthetic scenes are crop x MIN,MAX large; only a 1.25 x crop window is "
            "rendered, so zoom > 1 shows objects larger (as a 480x864 frame does)."
        ),
    ] = "1.0,1.0",
    max_skip: Annotated[int, typer.Option(min=1, help="Largest frame gap in real videos.")] = 5,
    tiny: Annotated[bool, typer.Option(help="Train the few-channel test config.")] = False,
    init_decoder_from: Annotated[
        Path | None, typer.Option(help="Trick 2: copy only the decoder weights from this file.")
    ] = None,
    init_from: Annotated[
        Path | None, typer.Option(help="Start from every weight of this checkpoint (fine-tune).")
    ] = None,
    exclude_videos: Annotated[
        str, typer.Option(help="Comma-separated videos of the data folders to hold out.")
    ] = "",
    copy_paste: Annotated[
        float, typer.Option(help="Probability of pasting an object of another clip (0 = off).")
    ] = 0.0,
    crop_scale: Annotated[
        str, typer.Option(help="Area fraction MIN,MAX of the random resized crop.")
    ] = "0.36,1.0",
    resume: Annotated[
        Path | None, typer.Option(help="Continue a run from its last.pth (same settings).")
    ] = None,
    checkpoint_every: Annotated[
        int, typer.Option(min=1, help="Write last.pth every N steps.")
    ] = 1000,
    snapshot_every: Annotated[
        int, typer.Option(min=0, help="Also keep step_N.pth weights every N steps (0 = off).")
    ] = 0,
    val_every: Annotated[
        int, typer.Option(min=-1, help="Validate every N steps (0 = at the end, -1 = never).")
    ] = 0,
    val_clips: Annotated[int, typer.Option(min=1, help="Held-out synthetic validation clips.")] = 8,
    val_size: Annotated[
        str | None, typer.Option(help="Validation HEIGHTxWIDTH (default: the crop).")
    ] = None,
    stop_at: Annotated[
        int | None, typer.Option(min=1, help="Stop after this step (resume later).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the initialisation and the batches.")] = 0,
    threads: Annotated[int, typer.Option(min=0, help="torch CPU threads (0 = default).")] = 0,
    workers: Annotated[int, typer.Option(min=0, help="Data-loading worker processes.")] = 0,
) -> None:
    """Train TrickVOS with Tricks 1 (hybrid loss) and 2 (decoder init); static -> video stages.

    Runs under torchrun for DistributedDataParallel (gloo on CPU, nccl on GPU).
    """
    from vosx.training.train import TrainConfig
    from vosx.training.train import train as run

    cfg = TrainConfig(
        out_dir=out,
        model="tiny" if tiny else "default",
        data=data,
        static_data=static_data,
        static_steps=static_steps,
        steps=steps,
        batch_size=batch,
        lr=lr,
        weight_decay=weight_decay,
        ce=float(ce),
        ssim=float(ssim),
        iou=float(iou),
        seq_len=seq_len,
        crop=_pair(crop, "--crop", int, "x"),
        max_objects=max_objects,
        seed=seed,
        lr_final=lr_final,
        warmup_steps=warmup,
        synthetic_zoom=_pair(synthetic_zoom, "--synthetic-zoom", float, ","),
        max_skip=max_skip,
        checkpoint_every=checkpoint_every,
        snapshot_every=snapshot_every,
        val_every=val_every,
        val_clips=val_clips,
        val_size=_pair(val_size, "--val-size", int, "x") if val_size else None,
        init_decoder_from=init_decoder_from,
        init_from=init_from,
        exclude_videos=tuple(v for v in exclude_videos.split(",") if v),
        copy_paste=copy_paste,
        crop_scale=_pair(crop_scale, "--crop-scale", float, ","),
        resume=resume,
        stop_at=stop_at,
        threads=threads,
        num_workers=workers,
    )
    last = run(cfg)
    typer.echo(f"wrote {last} and {out / 'log.csv'}")


class BenchDevice(StrEnum):
    """Where ``vosx bench`` times the graphs."""

    adb = "adb"
    host = "host"


class BenchDelegate(StrEnum):
    """benchmark_model delegates (``all`` = each of them)."""

    gpu = "gpu"
    cpu = "cpu"
    nnapi = "nnapi"
    all = "all"


class BenchPrecision(StrEnum):
    """Exported precisions to time (``all`` = every one in the manifest)."""

    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"
    all = "all"


@app.command()
def bench(
    export_dir: Annotated[Path, typer.Argument(help="Output folder of `vosx export`.")],
    device: Annotated[
        BenchDevice,
        typer.Option(help="adb: phones over adb; host: this machine (LiteRT, ONNX Runtime)."),
    ] = BenchDevice.adb,
    serial: Annotated[
        list[str] | None,
        typer.Option(
            help="Device serial; repeat to run on several in parallel "
            "(default: ANDROID_SERIAL, else the only device)."
        ),
    ] = None,
    benchmark_binary: Annotated[
        Path | None,
        typer.Option(
            help="TensorFlow benchmark_model for android_aarch64 "
            "(else $VOSX_BENCHMARK_MODEL or the user cache dir)."
        ),
    ] = None,
    delegate: Annotated[
        BenchDelegate | None,
        typer.Option(help="Delegate to time (default: gpu on adb, cpu on host)."),
    ] = None,
    precision: Annotated[
        BenchPrecision, typer.Option(help="Precision to time.")
    ] = BenchPrecision.all,
    threads: Annotated[int, typer.Option(help="CPU threads (benchmark_model --num_threads).")] = 4,
    objects: Annotated[int, typer.Option(help="K, objects per frame for the FPS estimate.")] = 1,
    runs: Annotated[int, typer.Option(help="Timed runs per benchmark.")] = 50,
    warmup: Annotated[int, typer.Option(help="Warm-up runs per benchmark.")] = 5,
    trials: Annotated[
        int, typer.Option(help="Repetitions of the whole sweep (median and spread).")
    ] = 3,
    cooldown: Annotated[
        float | None, typer.Option(help="Seconds between trials (default: 10 on adb, 0 on host).")
    ] = None,
    check_outputs: Annotated[
        bool, typer.Option(help="Compare GPU with CPU outputs on the phone with inference_diff.")
    ] = False,
    inference_diff_binary: Annotated[
        Path | None,
        typer.Option(
            help="TensorFlow inference_diff (run_eval) for android_aarch64 "
            "(else $VOSX_INFERENCE_DIFF)."
        ),
    ] = None,
    diff_threshold: Annotated[
        float, typer.Option(help="GPU-vs-CPU mean absolute error above which a graph is flagged.")
    ] = 0.05,
    tracker_margin: Annotated[
        float | None,
        typer.Option(help="Margin of the timed constant-velocity tracker (default: its own)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Longest one benchmark run may take, seconds.")
    ] = 600.0,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the full report as JSON.")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Write the per-frame plot as PNG.")] = None,
    keep: Annotated[bool, typer.Option(help="Leave the pushed files on the device.")] = False,
    force: Annotated[bool, typer.Option(help="Overwrite an existing --json / --plot.")] = False,
) -> None:
    """Time the exported graphs per delegate and precision on a phone or this host; FPS estimate."""
    from rich.console import Console

    from vosx.android_bench.bench import DELEGATES, BenchOptions, run_bench
    from vosx.android_bench.report import render, write_json, write_plot
    from vosx.errors import ConfigError
    from vosx.files import check_output

    inputs = [export_dir, benchmark_binary, inference_diff_binary]
    for out, what, example in ((json_out, "--json", "bench.json"), (plot, "--plot", "bench.png")):
        if out is not None:  # before anything is measured; never the export folder's files
            check_output(out, inputs, force, kind="file", what=what, example=example)
    if json_out and plot and json_out.absolute() == plot.absolute():
        raise ConfigError(f"--json and --plot are both {json_out}; give two different files")

    on_host = device is BenchDevice.host
    chosen = delegate or (BenchDelegate.cpu if on_host else BenchDelegate.gpu)
    if chosen is BenchDelegate.all:
        delegates = ("cpu",) if on_host else DELEGATES
    else:
        delegates = (chosen.value,)
    opts = BenchOptions(
        export_dir=export_dir,
        device=device.value,
        serials=tuple(serial or ()),
        delegates=delegates,
        precisions=() if precision is BenchPrecision.all else (precision.value,),
        threads=threads,
        objects=objects,
        runs=runs,
        warmup=warmup,
        trials=trials,
        cooldown_s=(0.0 if on_host else 10.0) if cooldown is None else cooldown,
        keep=keep,
        check_outputs=check_outputs,
        diff_threshold=diff_threshold,
        benchmark_binary=benchmark_binary,
        inference_diff_binary=inference_diff_binary,
        timeout_s=timeout,
        tracker_margin=tracker_margin,
    )
    report = run_bench(opts)
    if json_out:
        write_json(report, json_out)
    if plot:
        write_plot(report, plot)
    render(report, Console())
    report.raise_if_failed(json_out)
    if json_out or plot:
        typer.echo("wrote " + " and ".join(str(p) for p in (json_out, plot) if p))


@app.command()
def doctor() -> None:
    """Check this machine for every command (packages vs constraints, LiteRT, adb, devices)."""
    from rich.console import Console
    from rich.table import Table

    from vosx.doctor import run_checks

    checks = run_checks()
    table = Table(title="vosx doctor")
    for col in ("needed by", "what", "status", "found", "fix"):
        table.add_column(col, overflow="fold")
    for c in checks:
        status = "[green]ok[/green]" if c.ok else "[red]missing[/red]"
        table.add_row(c.command, c.what, status, c.found, c.fix)
    Console(width=160).print(table)
    missing = [c.what for c in checks if not c.ok]
    typer.echo(
        f"{len(checks) - len(missing)}/{len(checks)} ok"
        + (f"; missing: {', '.join(missing)}" if missing else "")
    )


class SegmentBackend(StrEnum):
    """What runs the graphs in ``vosx segment``."""

    tflite = "tflite"
    torch = "torch"


class SegmentTracker(StrEnum):
    """Trick 3 box tracker per object (``none`` = no filtering)."""

    none = "none"
    cv = "cv"
    pt = "pt"


class SegmentPrecision(StrEnum):
    """Which exported .tflite files ``vosx segment`` runs."""

    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"


def _segment_export(checkpoint: Path | None, size: tuple[int, int], precision: str) -> Path:
    """The cached export of ``checkpoint`` (bundled when None) at ``size``; exported on first use.

    torch and tensorflow are imported only when an export has to run.
    """
    from vosx.errors import CheckpointError, ManifestError
    from vosx.manifest import load_manifest, sha256_file
    from vosx.paths import DEFAULT_CHECKPOINT
    from vosx.tracker_runtime.segment import default_export_dir

    ckpt = DEFAULT_CHECKPOINT if checkpoint is None else checkpoint
    if not ckpt.is_file():
        what = "no bundled checkpoint at" if checkpoint is None else "no such checkpoint file"
        raise CheckpointError(
            f"{ckpt}: {what}; pass --checkpoint CKPT or --model EXPORT_DIR from `vosx export`"
        )
    out = default_export_dir(sha256_file(ckpt), size)
    precisions = ("fp32", "fp16") + (("int8",) if precision == "int8" else ())
    if out.is_dir():
        try:
            load_manifest(out, precision=precision).tflite_path("decoder", precision)
            return out
        except ManifestError as e:
            reason = f" (the cached one is unusable: {e})"
    else:
        reason = ""
    from rich.console import Console

    from vosx.export.pipeline import ExportOptions, export_all

    console = Console(stderr=True)
    console.print(
        f"vosx: exporting {ckpt} at {size[0]}x{size[1]} ({', '.join(precisions)}) into {out} "
        f"once; later runs reuse it{reason}",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    with console.status("exporting") as status:
        export_all(
            ExportOptions(
                checkpoint=ckpt, out_dir=out, size=size, precisions=precisions, force=True
            ),
            lambda stage, message: status.update(f"exporting: {stage}: {message}"),
        )
    return out


@app.command()
def segment(
    source: Annotated[
        Path, typer.Argument(metavar="FRAMES_DIR|VIDEO", help="Folder of frames or a video file.")
    ],
    mask: Annotated[
        Path, typer.Option(help="First frame's object labels (indexed PNG, 0 = background).")
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder of label PNGs.")],
    model: Annotated[
        Path | None,
        typer.Option(
            metavar="EXPORT_DIR",
            help="Output folder of `vosx export` (default: the checkpoint exported at the "
            "frames' size into the user cache, once).",
        ),
    ] = None,
    backend: Annotated[
        SegmentBackend, typer.Option(help="Run the TFLite graphs or the PyTorch model.")
    ] = SegmentBackend.tflite,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            metavar="CKPT",
            help="Checkpoint for the torch backend, or to export without --model "
            "(default: the bundled one).",
        ),
    ] = None,
    tracker: Annotated[
        SegmentTracker, typer.Option(help="Trick 3 box tracker per object.")
    ] = SegmentTracker.none,
    margin: Annotated[
        float | None, typer.Option(help="Tracker box growth per side (default: measured).")
    ] = None,
    precision: Annotated[
        SegmentPrecision, typer.Option(help="TFLite files to run.")
    ] = SegmentPrecision.fp32,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads per interpreter.")] = 2,
    max_objects: Annotated[
        int,
        typer.Option(
            min=1, max=254, help="Refuse first-frame masks with more objects (a photo as mask)."
        ),
    ] = 50,
    xnnpack: Annotated[
        bool, typer.Option("--xnnpack/--no-xnnpack", help="Use the XNNPACK CPU delegate.")
    ] = True,
    overlay: Annotated[
        Path | None, typer.Option(help="Also write an overlay video (.mp4 or .gif).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Segment a video from its first-frame mask: one DAVIS-palette PNG per frame."""
    import time

    import numpy as np
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from vosx.errors import ConfigError
    from vosx.files import check_output, replace_dir
    from vosx.tracker_runtime.io import Frames, OverlayWriter, read_first_mask, write_labels
    from vosx.tracker_runtime.segment import padded_size
    from vosx.tracker_runtime.segment import segment as run_segment

    inputs = [source, mask, model, checkpoint]
    check_output(out, inputs, force, kind="dir", what="-o")
    if overlay is not None and overlay.suffix.lower() not in (".gif", ".mp4"):
        raise ConfigError(f"--overlay {overlay}: must end in .gif or .mp4")
    if overlay is not None:
        check_output(overlay, inputs, force, what="--overlay", example="overlay.gif")
        if out.absolute() in overlay.absolute().parents:
            raise ConfigError(
                f"--overlay {overlay}: is inside the -o folder {out}, which is replaced as a "
                "whole; write the overlay beside it"
            )
    torch_backend = backend is SegmentBackend.torch
    if not torch_backend and model is not None and checkpoint is not None:
        raise ConfigError(
            "--checkpoint is not used with --model on the tflite backend; drop one of them"
        )
    frames = Frames(source, exclude=[mask])  # a mask stored with the frames is not a frame
    first_mask = read_first_mask(mask, frames.size, max_objects)
    if torch_backend:
        import torch

        from vosx.export.graphs import TorchGraphs
        from vosx.manifest import load_manifest
        from vosx.model.checkpoint import load_checkpoint, resolve_checkpoint

        torch.set_num_threads(threads)
        size = load_manifest(model).input_size if model else padded_size(frames.size)
        graphs = TorchGraphs(load_checkpoint(resolve_checkpoint(checkpoint)))
    else:
        from vosx.tracker_runtime.litert import TFLiteGraphs

        export_dir = model or _segment_export(checkpoint, padded_size(frames.size), precision)
        graphs = TFLiteGraphs.open(export_dir, precision.value, threads, xnnpack)
        size = graphs.manifest.input_size
    current: list = [None]  # the frame being segmented: frames are read once, for both uses

    def read_frames():
        for frame in frames:
            current[0] = frame
            yield frame

    labels_iter = run_segment(read_frames(), first_mask, graphs, size, tracker.value, margin)
    console = Console(stderr=True)
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
    with replace_dir(out) as tmp:  # the labels appear as a whole folder at the end, or not at all
        try:
            writer = OverlayWriter(overlay, frames.fps) if overlay is not None else None
            with progress:
                task = progress.add_task("segment", total=len(frames), fps="-")
                for i, labels in enumerate(labels_iter):
                    write_labels(tmp / f"{frames.names[i]}.png", labels)  # H x W uint8
                    if writer is not None:
                        writer.add(current[0], labels)
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
    objects = len([i for i in np.unique(first_mask) if i])
    typer.echo(
        f"wrote {written} label PNGs to {out} ({objects} object(s), {backend.value}"
        f"{'' if torch_backend else ' ' + precision.value}, tracker {tracker.value}, "
        f"{written / seconds:.1f} frames/s)"
    )
    if writer is not None:
        typer.echo(f"wrote {overlay}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")] = Path("demo_out"),
    checkpoint: Annotated[
        Path | None, typer.Option(help="Checkpoint (default: the bundled one).")
    ] = None,
    size: Annotated[str, typer.Option(help="Padded input HEIGHTxWIDTH.")] = "480x864",
    threads: Annotated[int, typer.Option(min=1, help="CPU threads.")] = 2,
    force: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    clip: Annotated[
        Path | None,
        typer.Option(help="Clip folder with frames/ and masks/ (default: the bundled real one)."),
    ] = None,
) -> None:
    """Export the bundled checkpoint, segment the bundled clip, evaluate, benchmark, report."""
    import time

    from rich.console import Console

    from vosx.demo import run_demo
    from vosx.export.pipeline import parse_size

    console = Console(stderr=True)
    start = time.time()

    def progress(stage: str, message: str) -> None:
        console.log(f"[{time.time() - start:5.1f}s] {stage}: {message}")

    from vosx.paths import DEMO_CLIP

    summary = run_demo(
        out, checkpoint, parse_size(size), threads, force, progress, clip or DEMO_CLIP
    )
    for tracker, s in summary["jf"].items():
        typer.echo(f"J&F with tracker {tracker}: {s['J&F-Mean']:.3f}")
    for row in summary["bench"]:
        typer.echo(
            f"{row['delegate']} {row['precision']} K={row['objects']}: "
            f"{row['frame_ms']:.1f} ms/frame "
            f"({row['fps']:.2f} FPS on this CPU)"
        )
    typer.echo(f"wrote {out}/report.md and {out}/report.html in {time.time() - start:.0f} s")


# Missing modules -> the extra that installs them (`vosx export` on the app-side core install).
_EXTRAS = {
    **dict.fromkeys(
        ("torch", "onnx", "onnxruntime", "onnx2tf", "onnx_graphsurgeon", "sng4onnx"), "export"
    ),
    **dict.fromkeys(("tensorflow", "tf_keras", "psutil"), "export"),
    "imageio_ffmpeg": "video",
}


def _printable(text: str) -> str:
    """``text`` on one line: control characters (NUL, newline, ESC...) and undecodable bytes of
    a path are written escaped (``\\x00``, ``\\n``, ``\\xff``) instead of raw."""
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def _fail(message: str, code: int = 1) -> None:
    print(f"vosx: error: {_printable(message)}", file=sys.stderr)
    sys.exit(code)


def _command(args: list[str]) -> str:
    """``vosx NAME`` of the command being run (``vosx`` when none is named)."""
    names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    name = next((a for a in args if not a.startswith("-")), "")
    return f"vosx {name}" if name in names else "vosx"


def main() -> None:
    """Console-script entry point: every failure is one stderr line and exit code 1.

    ``VosxError``, usage errors (unknown option, missing argument, bad value), a missing optional
    dependency (named with the ``vosx[export]`` / ``vosx[video]`` extra that installs it) and
    OS errors on a file all print ``vosx: error: ...``, with control characters escaped. Ctrl-C
    prints ``vosx: interrupted`` and exits 130, SIGTERM ``vosx: terminated`` and 143. ``vosx``
    alone and ``--help`` print the help (exit 0). With ``VOSX_RAISE_ERRORS=1`` errors other than
    usage errors propagate.
    """
    args = sys.argv[1:] or ["--help"]
    try:
        code = app(args=args, prog_name="vosx", standalone_mode=False)
    except VosxError as e:
        if raise_errors():
            raise
        _fail(str(e), e.exit_code)
    except typer.TyperException as e:  # click usage errors: unknown option, missing argument...
        ctx = getattr(e, "ctx", None)
        where = ctx.command_path if ctx is not None else _command(args)
        message = " ".join(e.format_message().split()).rstrip(".")
        _fail(f"{where}: {message}; see `{where} --help`")
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if raise_errors() or top not in _EXTRAS:
            raise
        extra = _EXTRAS[top]
        _fail(
            f"`{_command(args)}` needs the Python package {top}, which is not installed; "
            f"run pip install 'vosx[{extra}]'"
        )
    except OSError as e:
        if raise_errors():
            raise
        where = f"{e.filename}: " if e.filename is not None else ""
        reason = e.strerror or str(e) or type(e).__name__
        _fail(f"{where}{reason} ({type(e).__name__}); choose another path or fix its permissions")
    except SystemExit as e:
        if e.code == 143:  # vosx.files.Terminated: SIGTERM while output was pending
            print("vosx: terminated", file=sys.stderr)
        raise
    if code == 130:  # typer turns Ctrl-C into exit code 130
        print("vosx: interrupted", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
