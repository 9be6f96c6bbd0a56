"""Training settings and the defaults of ``vosx train`` and ``vosx train-tracker``.

``TrainConfig`` (a TrickVOS training run), ``TrackerDataConfig`` and ``TrackerTrainConfig``
(Trick 3's parametric tracker, trained by ``vosx.training.tracker_train``). Imports no torch
(only the ``loss_weights`` and ``model_config`` properties do, when read), so the command line
reads the defaults of its options from here at start-up. Sizes are (height, width) tuples.
"""

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from vosx.errors import ConfigError
from vosx.sizes import MAX_SIDE

if TYPE_CHECKING:
    from vosx.model.config import ModelConfig
    from vosx.training.losses import LossWeights


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (paper defaults where the paper gives one).

    Attributes:
        out_dir: Folder for ``last.pth``, ``model.pth`` and ``log.csv``.
        model: ``"default"`` (the paper's network) or ``"tiny"`` (tests).
        data: Video stage data: ``"synthetic"`` or a DAVIS-2017 / YouTube-VOS folder.
        static_data: Static stage data: ``"synthetic"`` or an image + mask folder.
        static_steps: Steps of the static stage (0 skips it); the video stage follows.
        steps: Total steps (static + video).
        batch_size: Global batch size (split over DDP processes).
        lr: Adam learning rate (paper 1e-5 for 300K iterations).
        weight_decay: Adam weight decay (paper 1e-7).
        ce: λ1 of the cross-entropy (0 switches it off).
        ssim: λ2 of 1 - SSIM.
        iou: λ3 of the soft IoU loss.
        seq_len: Frames per training clip (paper 5).
        crop: Training crop (height, width), multiples of 16.
        max_objects: Object slots per clip.
        seed: Seed of the initialisation and of every batch.
        lr_final: Cosine decay to ``lr * lr_final`` at ``steps`` (1.0 = constant lr).
        warmup_steps: Linear warm-up steps.
        synthetic_zoom: Synthetic scenes are crop x zoom (range) large; a 1.25 x crop window
            of them is rendered and cropped, so zoom > 1 shows larger objects.
        synthetic_objects: Range of objects per synthetic clip.
        max_skip: Largest frame gap when sampling real videos.
        checkpoint_every: Write ``last.pth`` every this many steps (and at the end).
        snapshot_every: Also keep weights-only ``step_<n>.pth`` every this many steps (0 = off).
        val_every: Validate every this many steps (0 = only at the end; -1 = never).
        val_clips: Held-out synthetic clips for validation.
        val_frames: Frames per validation clip.
        val_size: Validation (height, width); None = the crop.
        init_decoder_from: Trick 2: copy only decoder weights from this checkpoint.
        init_from: Start from every weight of this checkpoint (STCN's ``--load_network``).
        init_backbone: ``"imagenet"``: both MobileNetV2 trunks start from ImageNet weights
            (``vosx.training.imagenet``); ``"none"``: random.
        mask_stem: With ImageNet trunks, the value encoder's 1-channel stem: ``"sum"`` of the RGB
            filters, or ``"random"``.
        trunk_lr: The trunks' learning rate as a fraction of ``lr`` (1.0 = the same).
        exclude_videos: Videos of the data folders never drawn (held-out sequences).
        copy_paste: Probability of pasting an object cut from another clip into a video clip.
        crop_scale: Area fraction range of the per-clip random resized crop.
        resume: Continue from this ``last.pth``.
        stop_at: Stop after this step (for resuming later); None = ``steps``.
        threads: torch CPU threads (0 = torch's default).
        num_workers: DataLoader worker processes.
        log_every: Print a line every this many steps when stdout is not a terminal.
    """

    out_dir: Path
    model: str = "default"
    data: str = "synthetic"
    static_data: str = "synthetic"
    static_steps: int = 0
    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-5
    weight_decay: float = 1e-7
    ce: float = 1.0
    ssim: float = 1.0
    iou: float = 1.0
    seq_len: int = 5
    crop: tuple[int, int] = (384, 384)
    max_objects: int = 2
    seed: int = 0
    lr_final: float = 1.0
    warmup_steps: int = 0
    synthetic_zoom: tuple[float, float] = (1.0, 1.0)
    synthetic_objects: tuple[int, int] = (1, 3)
    max_skip: int = 5
    checkpoint_every: int = 1000
    snapshot_every: int = 0
    val_every: int = 0
    val_clips: int = 8
    val_frames: int = 8
    val_size: tuple[int, int] | None = None
    init_decoder_from: Path | None = None
    init_from: Path | None = None
    init_backbone: str = "none"
    mask_stem: str = "sum"
    trunk_lr: float = 1.0
    exclude_videos: tuple[str, ...] = ()
    copy_paste: float = 0.0
    crop_scale: tuple[float, float] = (0.36, 1.0)
    resume: Path | None = None
    stop_at: int | None = None
    threads: int = 0
    num_workers: int = 0
    log_every: int = 10

    def __post_init__(self) -> None:
        def bad(msg: str) -> None:
            raise ConfigError(f"training option: {msg}")

        if self.model not in ("default", "tiny"):
            bad(f"model {self.model!r}: use 'default' or 'tiny'")
        if self.steps < 1 or not 0 <= self.static_steps <= self.steps:
            bad(
                f"need steps >= 1 and 0 <= static_steps <= steps, got "
                f"{self.steps}, {self.static_steps}"
            )
        if self.batch_size < 1:
            bad(f"batch size {self.batch_size}: must be >= 1")
        if self.seq_len < 2:
            bad(f"sequence length {self.seq_len}: needs >= 2 frames (a first frame and a target)")
        for name in ("crop", "val_size"):
            hw = getattr(self, name)
            if hw is not None and (len(hw) != 2 or any(v < 16 or v % 16 for v in hw)):
                bad(f"{name} {hw}: height and width must be multiples of 16, >= 16")
        if self.lr <= 0 or self.weight_decay < 0:
            bad(f"lr {self.lr} must be > 0 and weight decay {self.weight_decay} >= 0")
        if not 0 < self.lr_final <= 1:
            bad(f"lr_final {self.lr_final}: must be in (0, 1]")
        if self.max_objects < 1:
            bad(f"max_objects {self.max_objects}: must be >= 1")
        if self.init_from is not None and self.init_decoder_from is not None:
            bad("init_from already sets the decoder; drop init_decoder_from")
        if self.init_backbone not in ("none", "imagenet"):
            bad(f"init_backbone {self.init_backbone!r}: use 'none' or 'imagenet'")
        if self.init_backbone != "none" and self.init_from is not None:
            bad("init_from sets every weight; drop init_backbone (a resume ignores it)")
        if self.init_backbone != "none" and self.model != "default":
            bad("ImageNet trunks need the default model (width 1.0), not --tiny")
        if self.mask_stem not in ("sum", "random"):
            bad(f"mask_stem {self.mask_stem!r}: use 'sum' or 'random'")
        if not 0 < self.trunk_lr <= 1:
            bad(f"trunk_lr {self.trunk_lr}: must be in (0, 1] (a fraction of lr)")
        if not 0 <= self.copy_paste <= 1:
            bad(f"copy_paste {self.copy_paste}: must be a probability in [0, 1]")
        if len(self.crop_scale) != 2 or not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            bad(f"crop_scale {self.crop_scale}: need 0 < MIN <= MAX <= 1 (area fractions)")
        if self.checkpoint_every < 1:
            bad(f"checkpoint_every {self.checkpoint_every}: must be >= 1")
        self._check_finite_and_bounded(bad)
        try:
            self.loss_weights  # noqa: B018 (LossWeights checks the weights)
        except ValueError as e:
            bad(str(e))

    def _check_finite_and_bounded(self, bad) -> None:
        """Every float finite (NaN passes every ``<`` test), every size of work bounded
        (``vosx.limits``, ``vosx.sizes.MAX_SIDE``)."""
        import math

        from vosx import limits

        floats = {"lr": self.lr, "weight_decay": self.weight_decay, "lr_final": self.lr_final}
        floats |= {"trunk_lr": self.trunk_lr, "copy_paste": self.copy_paste}
        floats |= {"ce": self.ce, "ssim": self.ssim, "iou": self.iou}
        floats |= {f"crop_scale[{i}]": v for i, v in enumerate(self.crop_scale)}
        floats |= {f"synthetic_zoom[{i}]": v for i, v in enumerate(self.synthetic_zoom)}
        for name, value in floats.items():
            if not math.isfinite(value):
                bad(f"{name} {value}: must be a finite number")
        if not 0 < self.synthetic_zoom[0] <= self.synthetic_zoom[1] <= 16:
            bad(f"synthetic_zoom {self.synthetic_zoom}: need 0 < MIN <= MAX <= 16")
        counts = {
            "steps": (self.steps, limits.MAX_STEPS),
            "batch_size": (self.batch_size, limits.MAX_BATCH),
            "seq_len": (self.seq_len, limits.MAX_SEQ_LEN),
            "max_objects": (self.max_objects, limits.MAX_OBJECTS),
            "max_skip": (self.max_skip, limits.MAX_SKIP),
            "val_clips": (self.val_clips, limits.MAX_CLIPS),
            "val_frames": (self.val_frames, limits.MAX_CLIP_FRAMES),
            "threads": (self.threads, limits.MAX_THREADS),
            "num_workers": (self.num_workers, limits.MAX_THREADS),
        }
        for name, (value, most) in counts.items():
            if value > most:
                bad(f"{name} {value}: at most {most} (vosx.limits); give a smaller value")
        for name in ("crop", "val_size"):
            hw = getattr(self, name)
            if hw is not None and max(hw) > MAX_SIDE:
                bad(f"{name} {hw}: each side must be at most {MAX_SIDE}")

    @property
    def loss_weights(self) -> "LossWeights":
        """λ1..λ3 as a ``LossWeights``."""
        from vosx.training.losses import LossWeights  # torch: only once a run is configured

        return LossWeights(self.ce, self.ssim, self.iou)

    @property
    def model_config(self) -> "ModelConfig":
        """The network's config."""
        from vosx.model.config import TINY_CONFIG, ModelConfig  # the package imports torch

        return TINY_CONFIG if self.model == "tiny" else ModelConfig()

    def to_dict(self) -> dict:
        """Plain values (str, numbers, lists) for checkpoints."""
        d = {}
        for f in fields(self):
            v = getattr(self, f.name)
            d[f.name] = str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
        return d


PT_SYNTHETIC_CLIPS = 200
"""Synthetic clips PT trains on when it is given no data folder (``vosx train-tracker``)."""


@dataclass(frozen=True)
class TrackerTrainConfig:
    """Hyper-parameters of PT training.

    Attributes:
        hidden: width of the four hidden layers.
        steps: Adam steps (full batches up to ``batch_size`` samples).
        batch_size: samples per step.
        lr: Adam learning rate (cosine-decayed to 0).
        under_weight: loss weight of box edges inside the ground truth (>= 1).
        seed: seed of initialisation, batching and the train/validation split.
        val_fraction: fraction of tracks held out for validation.
    """

    hidden: int = 32
    steps: int = 3000
    batch_size: int = 1024
    lr: float = 3e-3
    under_weight: float = 4.0
    seed: int = 0
    val_fraction: float = 0.15

    def __post_init__(self) -> None:
        from vosx import limits

        limits.check_count(self.hidden, "--hidden", 1, limits.MAX_HIDDEN)
        limits.check_count(self.steps, "--steps", 1, limits.MAX_STEPS)
        limits.check_count(self.batch_size, "batch_size", 1, 1 << 20)
        limits.check_float(self.lr, "lr", 1e-12, 10.0)
        limits.check_float(self.under_weight, "--under-weight", 1.0, 1000.0)
        limits.check_float(self.val_fraction, "val_fraction", 0.0, 0.9)


@dataclass(frozen=True)
class TrackerDataConfig:
    """Where PT training boxes come from.

    Attributes:
        data_dirs: DAVIS-layout folders of ground-truth label PNGs (any number).
        synthetic_clips: synthetic clips to add (``vosx.training.synthetic``).
        frames: frames per synthetic clip.
        size: synthetic frame (height, width), each in 16..``vosx.sizes.MAX_SIDE``.

    Raises:
        ConfigError: a side outside 16..``MAX_SIDE``.
    """

    data_dirs: tuple[Path, ...] = ()
    synthetic_clips: int = 0
    frames: int = 30
    size: tuple[int, int] = (240, 432)

    def __post_init__(self) -> None:
        from vosx import limits

        limits.check_count(self.synthetic_clips, "--synthetic", 0, limits.MAX_CLIPS)
        limits.check_count(self.frames, "--frames", 3, limits.MAX_CLIP_FRAMES)
        if min(self.size) < 16 or max(self.size) > MAX_SIDE:
            raise ConfigError(
                f"--size {self.size[0]}x{self.size[1]}: height and width must be in "
                f"16..{MAX_SIDE}, e.g. {_size_text(TrackerDataConfig.size)}"
            )

    @classmethod
    def from_options(
        cls, data_dirs: Sequence[Path], synthetic_clips: int | None, frames: int, size: str
    ) -> "TrackerDataConfig":
        """``vosx train-tracker``'s data options as a config.

        Args:
            data_dirs: ``--data`` folders.
            synthetic_clips: ``--synthetic``; None: ``PT_SYNTHETIC_CLIPS`` without data folders,
                else none.
            frames: ``--frames``.
            size: ``--size`` as HEIGHTxWIDTH.

        Raises:
            ConfigError: ``size`` is not HEIGHTxWIDTH or out of bounds.
        """
        from vosx.sizes import parse_size

        hw = parse_size(size, example=_size_text(cls.size), low=16)
        if synthetic_clips is None:
            synthetic_clips = 0 if data_dirs else PT_SYNTHETIC_CLIPS
        return cls(tuple(data_dirs), synthetic_clips, frames, hw)


def _size_text(size: tuple[int, int]) -> str:
    """(240, 432) -> '240x432'."""
    return f"{size[0]}x{size[1]}"
