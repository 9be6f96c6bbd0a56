"""A training run's checkpoints: the weights it starts from, resuming it, saving its state.

``init_from`` (fine-tuning) and ``init_decoder_from`` (Trick 2) load weights into a fresh model;
``resume`` continues a run from its ``last.pth`` (weights, optimiser, RNG state and step), after
checking that every setting that shapes the schedule or the batches (``RESUME_KEYS``) is the
same; ``save_training`` writes that state. Files are read and checked by
``vosx.model.checkpoint``; a file that does not fit raises one ``CheckpointError`` line.
"""

import os
from pathlib import Path

import torch

from vosx.errors import CheckpointError
from vosx.model.checkpoint import check_state_dict, config_of, read_checkpoint, save_checkpoint
from vosx.model.network import TrickVOS
from vosx.training.config import TrainConfig

# Settings that must match when resuming (everything that changes the schedule or the batches).
RESUME_KEYS = (
    "model",
    "data",
    "static_data",
    "static_steps",
    "batch_size",
    "lr",
    "weight_decay",
    "ce",
    "ssim",
    "iou",
    "seq_len",
    "crop",
    "max_objects",
    "seed",
    "lr_final",
    "warmup_steps",
    "synthetic_zoom",
    "synthetic_objects",
    "max_skip",
    "exclude_videos",
    "copy_paste",
    "crop_scale",
    "trunk_lr",
)


def init_decoder_from(model: TrickVOS, path: str | os.PathLike) -> int:
    """Trick 2: copy only the decoder's weights from a checkpoint into ``model``.

    Returns:
        The number of tensors copied.

    Raises:
        CheckpointError: the checkpoint has no decoder, or its decoder tensors differ in name or
            shape (listed by ``check_state_dict``).
    """
    ckpt = read_checkpoint(path)
    state = {k: v for k, v in ckpt["model"].items() if k.startswith("decoder.")}
    if not state:
        raise CheckpointError(f"{path}: has no decoder.* tensors; give a TrickVOS checkpoint")
    # Checked against the whole model with this model's own encoders: only decoder keys can differ.
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("decoder.")}
    check_state_dict(path, model, own | state)
    model.decoder.load_state_dict({k[len("decoder.") :]: v for k, v in state.items()})
    return len(state)


def init_from(model: TrickVOS, path: str | os.PathLike) -> None:
    """Load every weight of a checkpoint into ``model`` (fine-tuning; STCN's ``--load_network``).

    Raises:
        CheckpointError: an unreadable file, or weights of another architecture (listed).
    """
    ckpt = read_checkpoint(path)
    check_state_dict(path, model, ckpt["model"])
    model.load_state_dict(ckpt["model"])


def _check_resume(path: Path, ckpt: dict, cfg: TrainConfig) -> None:
    """Refuse a checkpoint that is not a training checkpoint or has other ``RESUME_KEYS``."""
    saved = ckpt.get("train_config")
    if not isinstance(saved, dict) or "optimizer" not in ckpt or "step" not in ckpt:
        raise CheckpointError(
            f"{path}: not a training checkpoint (no optimizer state or step); resume from the "
            "last.pth of a `vosx train` run"
        )
    now = cfg.to_dict()
    for key in RESUME_KEYS:
        if saved.get(key) != now[key]:
            raise CheckpointError(
                f"{path}: written with {key}={saved.get(key)!r} but this run has "
                f"{key}={now[key]!r}; "
                "resume with the same settings, or start a new run without --resume"
            )


def resume(cfg: TrainConfig, model: TrickVOS, optim: torch.optim.Optimizer) -> int:
    """Load ``cfg.resume``'s weights, optimiser and RNG state; returns the step to continue at.

    Raises:
        CheckpointError: not a training checkpoint, other settings (``RESUME_KEYS``) or another
            model config.
    """
    ckpt = read_checkpoint(cfg.resume)
    _check_resume(Path(cfg.resume), ckpt, cfg)
    if config_of(cfg.resume, ckpt) != cfg.model_config:
        raise CheckpointError(f"{cfg.resume}: model config differs from this run's --model")
    model.load_state_dict(ckpt["model"])
    optim.load_state_dict(ckpt["optimizer"])
    if "torch_rng" in ckpt:
        torch.set_rng_state(ckpt["torch_rng"])
    return int(ckpt["step"])


def save_training(
    model: TrickVOS, optim: torch.optim.Optimizer, step: int, cfg: TrainConfig, path: Path
) -> None:
    """Write ``path`` (``last.pth``): the weights with the optimiser, step, settings and torch
    RNG state that ``resume`` reads."""
    extra = {
        "optimizer": optim.state_dict(),
        "step": step,
        "train_config": cfg.to_dict(),
        "torch_rng": torch.get_rng_state(),
    }
    save_checkpoint(model, path, extra=extra)
