"""Training loop with Tricks 1 and 2: static -> video stages, two-frame memory, DDP, resumable.

Shapes: a batch holds frames B x T x 3 x H x W (normalised), labels B x T x H x W int64 in
0..K and valid B x K bool; keys and values are B x 1 x N x C as in ``vosx.model.network``;
per-object tensors flatten B and K into one B*K batch axis.

Memory during training is the inference memory: frame t reads the first frame (ground-truth
mask) and the previous frame (its soft-aggregated prediction), exactly as the runtime driver;
validation runs that driver itself (``vosx.training.evaluate``), so its figures are the runtime's.
Every batch is a deterministic function of (seed, step), so ``resume`` continues bit for bit and
a DDP run sees the same global batches as a single process.

The run folder follows the output policy of ``vosx.files`` (``vosx.training.runs``, checked
before anything is loaded), and a run stops with one ``TrainingError`` line at the first NaN or
infinite loss or weight, before any checkpoint could hold it (``last.pth`` keeps the last finite
weights).
"""

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from vosx.errors import ConfigError, TrainingError
from vosx.files import remove_empty_dirs
from vosx.model.checkpoint import save_checkpoint
from vosx.model.memory import soft_aggregate
from vosx.model.network import TrickVOS, build_model
from vosx.training.augment import AugmentConfig
from vosx.training.checkpoints import init_decoder_from, init_from, resume, save_training
from vosx.training.config import TrainConfig
from vosx.training.data import ClipDataset, StepBatchSampler
from vosx.training.evaluate import validate
from vosx.training.losses import LossTerms, LossWeights, hybrid_loss
from vosx.training.runs import (
    LOSS_NAMES,
    RunProgress,
    append_csv,
    check_run_folder,
    csv_restart,
    make_run_folder,
    remove_earlier_run,
    resumes_in_place,
)
from vosx.training.sources import ClipSource, make_source


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate of a step: linear warm-up, then cosine from ``lr`` to ``lr * lr_final``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_final >= 1.0:
        return cfg.lr
    frac = min(1.0, step / max(1, cfg.steps - 1))
    return cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * frac)))


# --------------------------------------------------------------------------- the clip forward


class ClipLoss(nn.Module):
    """Runs a batch of clips through the two-frame memory and returns Trick 1's loss.

    A module (rather than a function) so that DistributedDataParallel can wrap it.

    Args:
        model: The network.
        weights: Loss weights.
    """

    def __init__(self, model: TrickVOS, weights: LossWeights):
        super().__init__()
        self.model = model
        self.weights = weights

    def forward(self, frames: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> LossTerms:
        """Mean loss over frames 1..T-1.

        Args:
            frames: B x T x 3 x H x W normalised.
            labels: B x T x H x W int64 in 0..K.
            valid: B x K bool.
        """
        b, t = frames.shape[:2]
        k = valid.shape[1]
        feats = self.model.encode_key(frames.flatten(0, 1))  # (B*T) x ...

        def per_frame(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, t, *x.shape[1:])  # B x T x ...

        key, f16c, f16, f8, f4 = (per_frame(x) for x in feats)
        obj_ids = torch.arange(1, k + 1, device=labels.device)[None, :, None, None]
        first = (labels[:, 0, None] == obj_ids).float() * valid[:, :, None, None]  # B x K x H x W
        v_first = self._values(first, f16[:, 0])  # B*K x 1 x N x CV
        k_first = key[:, 0]  # B x 1 x N x CK
        v_prev, k_prev = v_first, k_first
        totals = []
        for ti in range(1, t):
            mk = torch.cat([k_first, k_prev], 2).repeat_interleave(k, 0)  # B*K x 1 x 2N x CK
            mv = torch.cat([v_first, v_prev], 2)  # B*K x 1 x 2N x CV
            logits = self.model.segment(
                key[:, ti].repeat_interleave(k, 0),
                mk,
                mv,
                f16c[:, ti].repeat_interleave(k, 0),
                f8[:, ti].repeat_interleave(k, 0),
                f4[:, ti].repeat_interleave(k, 0),
            )  # B*K x 1 x H x W
            prob = torch.sigmoid(logits).view(b, k, *logits.shape[2:])  # B x K x H x W
            totals.append(hybrid_loss(prob, labels[:, ti], valid, self.weights))
            if ti < t - 1:
                agg = soft_aggregate(prob * valid[:, :, None, None], dim=1)[:, 1:]  # B x K x H x W
                v_prev, k_prev = self._values(agg, f16[:, ti]), key[:, ti]
        return LossTerms(*(torch.stack(x).mean() for x in zip(*totals, strict=True)))

    def _values(self, prob: torch.Tensor, f16: torch.Tensor) -> torch.Tensor:
        """B x K x H x W object maps + B x C x h x w f16 -> B*K x 1 x N x CV memory values."""
        k = prob.shape[1]
        return self.model.encode_value(prob.flatten(0, 1)[:, None], f16.repeat_interleave(k, 0))


# --------------------------------------------------------------------------- the loop


def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


def train(cfg: TrainConfig, quiet: bool = False, force: bool = False) -> Path:
    """Train (or resume) a model; returns the path of the last checkpoint written.

    Under ``torchrun`` (WORLD_SIZE > 1) the process group is initialised here (gloo on CPU,
    nccl on CUDA) and the model is wrapped in DistributedDataParallel; rank 0 writes files.

    Args:
        cfg: The run's settings.
        quiet: No progress output.
        force: Start a new run in an existing ``cfg.out_dir`` (``check_run_folder``).

    Raises:
        OutputError: the run folder is refused (``check_run_folder``), before anything is loaded.
        ConfigError: inconsistent options (e.g. a batch that does not split over processes).
        CheckpointError: a resume or init-decoder checkpoint that does not fit.
        InputDataError: unusable dataset folders.
        TrainingError: the loss or the weights became NaN or infinite (``last.pth`` keeps the
            last finite weights).
    """
    rank, world = _dist_info()
    if cfg.batch_size % world:
        raise ConfigError(f"batch size {cfg.batch_size} does not split over {world} processes")
    # Every rank, before the process group exists: no rank has written anything yet.
    check_run_folder(cfg, force)
    new = not os.path.lexists(cfg.out_dir)  # then created here, never taken over (a race)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = torch.device(
        f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    )
    own_group = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        own_group = True
    try:
        fresh = force and not resumes_in_place(cfg)
        return _train(cfg, rank, world, device, quiet, fresh, new)
    finally:
        if own_group:
            dist.destroy_process_group()


@dataclass
class _Run:
    """What the steps of one training run share (set up by ``_setup``)."""

    cfg: TrainConfig
    model: TrickVOS
    optim: torch.optim.Optimizer
    loss_mod: nn.Module  # ClipLoss, DDP-wrapped when world > 1
    device: torch.device
    rank: int
    world: int
    start: int  # first step to run (0, or the resumed checkpoint's step)
    end: int  # step to stop before (``steps``, or ``stop_at``)
    progress: RunProgress | None = None
    saved: int | None = None  # step of the last last.pth this run wrote or resumed from

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0


def _train(
    cfg: TrainConfig,
    rank: int,
    world: int,
    device: torch.device,
    quiet: bool,
    fresh: bool,
    new: bool,
) -> Path:
    """The run: ``fresh`` removes an earlier run's files first (``--force``); ``new``: the run
    folder did not exist when it was checked, so it is created here or the run refuses."""
    run = _setup(cfg, rank, world, device)
    run.saved = run.start if cfg.resume is not None else None
    out = Path(cfg.out_dir)
    stages = [
        (stage, max(s0, run.start), min(s1, run.end))
        for stage, s0, s1 in (
            ("static", 0, cfg.static_steps),
            ("video", cfg.static_steps, cfg.steps),
        )
    ]
    stages = [(stage, lo, hi) for stage, lo, hi in stages if lo < hi]
    sources = {stage: _stage_source(cfg, stage) for stage, _, _ in stages}  # data checked first
    made = make_run_folder(out, new) if run.main else []  # removed if the run fails early
    if run.main:
        if fresh:  # --force: the earlier run's files go just before this run's first step
            remove_earlier_run(out)
        csv_restart(out / "log.csv", run.start)
    run.progress = RunProgress(cfg.steps, run.start, cfg.log_every, run.main and not quiet)
    try:
        for stage, lo, hi in stages:
            _run_stage(run, stage, lo, hi, sources[stage])
    except BaseException:
        remove_empty_dirs(made)
        raise
    finally:
        run.progress.close()
    if world > 1:
        _check_ranks_in_sync(run.model, device)
    _check_finite_weights(run, run.end)
    if run.main and run.end == cfg.steps:
        save_checkpoint(
            run.model, out / "model.pth", extra={"train_config": cfg.to_dict(), "step": cfg.steps}
        )
    return out / "last.pth"


def _setup(cfg: TrainConfig, rank: int, world: int, device: torch.device) -> _Run:
    """The model (fresh, resumed or initialised from a checkpoint), optimiser and loss module."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model_config)
    optim = torch.optim.Adam(_param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = 0
    if cfg.init_backbone == "imagenet" and cfg.resume is None:
        from vosx.training.imagenet import fetch_imagenet_weights, init_backbones_imagenet

        init_backbones_imagenet(model, cfg.mask_stem, fetch_imagenet_weights())
    if cfg.resume is not None:
        start = resume(cfg, model, optim)
    elif cfg.init_decoder_from is not None:
        init_decoder_from(model, cfg.init_decoder_from)
    elif cfg.init_from is not None:
        init_from(model, cfg.init_from)
    # Channels-last convolutions train ~1.4x faster on CPU (oneDNN) and on tensor-core GPUs.
    model.to(device, memory_format=torch.channels_last).train()
    loss_mod: nn.Module = ClipLoss(model, cfg.loss_weights)
    if world > 1:
        loss_mod = nn.parallel.DistributedDataParallel(
            loss_mod, device_ids=[device.index] if device.type == "cuda" else None
        )
    end = min(cfg.steps, cfg.stop_at) if cfg.stop_at is not None else cfg.steps
    return _Run(cfg, model, optim, loss_mod, device, rank, world, start, end)


def _param_groups(model: TrickVOS, cfg: TrainConfig) -> list[dict]:
    """Adam groups: the two MobileNetV2 trunks at ``trunk_lr`` x lr, everything else at lr."""
    trunk = [p for n, p in model.named_parameters() if ".trunk." in n]
    rest = [p for n, p in model.named_parameters() if ".trunk." not in n]
    return [{"params": trunk, "lr_scale": cfg.trunk_lr}, {"params": rest, "lr_scale": 1.0}]


def _stage_source(cfg: TrainConfig, stage: str) -> ClipSource:
    """The clip source of one stage ("static" or "video"); unusable data folders raise here."""
    return make_source(
        cfg.static_data if stage == "static" else cfg.data,
        stage,
        cfg.crop,
        zoom=tuple(cfg.synthetic_zoom),
        objects=tuple(cfg.synthetic_objects),
        max_skip=cfg.max_skip,
        exclude=tuple(cfg.exclude_videos),
        copy_paste=cfg.copy_paste if stage == "video" else 0.0,
    )


def _leave_signals_to_the_main_process(_worker_id: int) -> None:
    """DataLoader workers ignore SIGTERM and SIGHUP. A signal sent to the whole process group
    (``timeout``, a closing terminal) is the main process's to handle: it stops the workers as it
    cleans up, where a worker killed by the signal would turn the one-line exit into a traceback.
    """
    import signal

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def _run_stage(run: _Run, stage: str, lo: int, hi: int, source: ClipSource) -> None:
    """Steps ``lo`` to ``hi`` - 1 of one stage ("static" or "video") on its clip source."""
    cfg = run.cfg
    aug = AugmentConfig.static() if stage == "static" else AugmentConfig()
    aug = replace(aug, crop_scale=tuple(cfg.crop_scale))
    dataset = ClipDataset(source, cfg.crop, cfg.seq_len, cfg.max_objects, aug, cfg.seed)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=StepBatchSampler(lo, hi, cfg.batch_size, run.rank, run.world),
        num_workers=cfg.num_workers,
        persistent_workers=False,
        worker_init_fn=_leave_signals_to_the_main_process,
    )
    tick = time.perf_counter()
    for step, batch in zip(range(lo, hi), loader, strict=True):
        lr, vals = _optimise(run, step, batch)
        if not all(math.isfinite(v) for v in vals):  # all-reduced: every rank stops here
            bad = ", ".join(f"{n} {v}" for n, v in zip(LOSS_NAMES, vals, strict=True))
            raise _diverged(run, step + 1, f"the loss became non-finite ({bad})")
        _check_finite_weights(run, step + 1)
        now = time.perf_counter()
        sec, tick = now - tick, now
        row = {"step": step, "stage": stage, "lr": f"{lr:.3g}", "sec": f"{sec:.3f}"}
        row.update({n: f"{v:.5f}" for n, v in zip(LOSS_NAMES, vals, strict=True)})
        done = step + 1
        if (
            cfg.val_every > 0
            and done % cfg.val_every == 0
            or (done == cfg.steps and cfg.val_every >= 0)
        ):
            _validate_into(run, done, row)
            tick = time.perf_counter()  # validation time is not a step's time
        _after_step(run, stage, step, row, vals, sec)


def _optimise(run: _Run, step: int, batch: list) -> tuple[float, list[float]]:
    """One optimiser step on a batch -> (learning rate, loss terms averaged over processes)."""
    lr = lr_at(run.cfg, step)
    for g in run.optim.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
    frames, labels, valid = (x.to(run.device) for x in batch)
    terms = run.loss_mod(frames, labels, valid)
    run.optim.zero_grad(set_to_none=True)
    terms.total.backward()
    run.optim.step()
    vals = [float(x.detach()) for x in terms]
    if run.world > 1:
        t = torch.tensor(vals, device=run.device)
        dist.all_reduce(t)
        vals = (t / run.world).tolist()
    return lr, vals


def _diverged(run: _Run, done: int, what: str) -> TrainingError:
    """The one line a run stops with when its loss or weights are no longer finite."""
    last = Path(run.cfg.out_dir) / "last.pth"
    kept = (
        f"{last} keeps step {run.saved}, the last finite weights"
        if run.saved is not None
        else "no checkpoint was written"
    )
    return TrainingError(
        f"{run.cfg.out_dir}: training stopped at step {done}: {what}; {kept} — lower --lr "
        f"(now {run.cfg.lr:g}) or check the data, and start again"
    )


def _check_finite_weights(run: _Run, done: int) -> None:
    """Raise ``_diverged`` when a weight is NaN or infinite (one sum per tensor, one sync)."""
    with torch.no_grad():
        sums = torch.stack([p.detach().float().sum() for p in run.model.parameters()])
        if bool(torch.isfinite(sums).all()):
            return
        name = next(n for n, p in run.model.named_parameters() if not bool(torch.isfinite(p).all()))
    raise _diverged(run, done, f"weight {name} became NaN or infinite")


def _validate_into(run: _Run, done: int, row: dict) -> None:
    """Validate on rank 0 (the others wait) and add the scores to the log row."""
    cfg = run.cfg
    if run.main:
        val_size = cfg.val_size or cfg.crop
        j, f, jf = validate(run.model, cfg.val_clips, cfg.val_frames, val_size, cfg.seed)
        row.update({"val_j": f"{j:.4f}", "val_f": f"{f:.4f}", "val_jf": f"{jf:.4f}"})
        run.progress.message(f"step {done}: validation J {j:.4f} F {f:.4f} J&F {jf:.4f}")
    if run.world > 1:
        dist.barrier()


def _after_step(run: _Run, stage: str, step: int, row: dict, vals: list, sec: float) -> None:
    """Log the step, and write the snapshot and training checkpoint when they are due."""
    cfg, out, done = run.cfg, Path(run.cfg.out_dir), step + 1
    if run.main:
        append_csv(out / "log.csv", row)
        terms_txt = " ".join(f"{n} {v:.4f}" for n, v in zip(LOSS_NAMES, vals, strict=True))
        run.progress.update(step, f"{stage} {terms_txt} {1 / max(sec, 1e-9):.2f} it/s")
    if run.main and cfg.snapshot_every > 0 and done % cfg.snapshot_every == 0:
        save_checkpoint(
            run.model,
            out / f"step_{done:07d}.pth",
            extra={"step": done, "train_config": cfg.to_dict()},
        )
    if done % cfg.checkpoint_every == 0 or done == run.end:
        if run.main:
            save_training(run.model, run.optim, done, cfg, out / "last.pth")
        run.saved = done
        if run.world > 1:
            dist.barrier()


def _check_ranks_in_sync(model: TrickVOS, device: torch.device) -> None:
    """Raise if the processes' weights diverged (DDP keeps them equal; this proves it)."""
    with torch.no_grad():
        flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
        local = torch.stack([flat.sum(), (flat * flat).sum()]).to(device)
        lo, hi = local.clone(), local.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if not torch.equal(lo, hi):
        raise RuntimeError(
            f"DDP processes ended with different weights: {lo.tolist()} vs {hi.tolist()}"
        )


__all__ = ["ClipLoss", "lr_at", "train"]
