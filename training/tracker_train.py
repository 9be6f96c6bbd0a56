"""Training of the Trick 3 parametric tracker (PT) in PyTorch; the result is a NumPy ``.npz``.

Shapes: label maps T x H x W (0 = background, 1..K objects); boxes ``Box(x, y, w, h)`` in pixels;
motions (dx, dy, dw, dh). Training samples are triples of consecutive boxes b0, b1, b2 of one
object: the input is the motion b1 - b0, the target the motion b2 - b1.

Normalisation (the contract with ``vosx.tracker_runtime.trackers.MotionMLP``): motions are made
frame-relative by dividing (dx, dy, dw, dh) by (W, H, W, H), then divided by ``motion_scale``, the
per-component standard deviation of the training inputs (floored at 1e-3). The network maps the
scaled input motion to the scaled next motion.

Loss (paper §4.1: "predicted boxes smaller than the ground truth" penalised more): an L1 loss on
the four edges of the predicted box b1 + T' against b2, in frame-relative units, where an edge
that lies inside the ground-truth box (so that the box cuts the object) weighs ``under_weight``
times more than an edge outside it.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vosx.tracker_runtime.boxes import Box, box_of
from vosx.tracker_runtime.trackers import NUM_LAYERS, MotionMLP
from vosx.training.config import TrackerDataConfig, TrackerTrainConfig

MIN_SCALE = 1e-3


class MotionNet(nn.Module):
    """The PT MLP: 5 linear layers, exact GELU between them, 4 -> hidden -> ... -> 4.

    Args:
        hidden: width of the hidden layers.
    """

    def __init__(self, hidden: int = TrackerTrainConfig.hidden):
        super().__init__()
        sizes = [4] + [hidden] * (NUM_LAYERS - 1) + [4]
        layers: list[nn.Module] = []
        for i in range(NUM_LAYERS):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < NUM_LAYERS - 1:
                layers.append(nn.GELU())
        self.net = nn.Sequential(*layers)
        with torch.no_grad():  # start as "no change of motion" plus a small residual
            self.net[-1].weight.mul_(0.1)
            self.net[-1].bias.zero_()

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Scaled motion (B, 4) -> scaled next motion (B, 4)."""
        return self.net(u)

    def linears(self) -> list[nn.Linear]:
        return [m for m in self.net if isinstance(m, nn.Linear)]

    def to_numpy(self, motion_scale: np.ndarray) -> MotionMLP:
        """The same network as a NumPy ``MotionMLP`` (weights transposed to in x out)."""
        lin = self.linears()
        return MotionMLP(
            [m.weight.detach().double().numpy().T.copy() for m in lin],
            [m.bias.detach().double().numpy().copy() for m in lin],
            motion_scale,
        )


@dataclass(frozen=True)
class MotionSamples:
    """Frame-relative training samples (N rows each).

    Attributes:
        t_in: N x 4 motion b1 - b0 divided by (W, H, W, H).
        t_out: N x 4 motion b2 - b1 divided by (W, H, W, H).
    """

    t_in: np.ndarray
    t_out: np.ndarray

    def __len__(self) -> int:
        return len(self.t_in)

    @staticmethod
    def concat(parts: Sequence["MotionSamples"]) -> "MotionSamples":
        if not parts:
            return MotionSamples(np.zeros((0, 4)), np.zeros((0, 4)))
        return MotionSamples(
            np.concatenate([p.t_in for p in parts]), np.concatenate([p.t_out for p in parts])
        )


def box_tracks(labels: np.ndarray) -> list[list[Box | None]]:
    """Per object id in the first frame, its box in every frame (None where absent).

    Args:
        labels: T x H x W integer label maps.
    """
    ids = [int(i) for i in np.unique(labels[0]) if i != 0]
    return [[box_of((frame == i).view(np.uint8)) for frame in labels] for i in ids]


def samples_from_tracks(
    tracks: Iterable[Sequence[Box | None]], height: int, width: int
) -> MotionSamples:
    """Triples of consecutive present boxes -> frame-relative (input, target) motions."""
    size = np.array((width, height, width, height), np.float64)
    t_in, t_out = [], []
    for track in tracks:
        for b0, b1, b2 in zip(track, track[1:], track[2:], strict=False):
            if b0 is None or b1 is None or b2 is None:
                continue
            t_in.append(np.subtract(b1, b0) / size)
            t_out.append(np.subtract(b2, b1) / size)
    if not t_in:
        return MotionSamples.concat([])
    return MotionSamples(np.asarray(t_in), np.asarray(t_out))


def edge_loss(pred: torch.Tensor, target: torch.Tensor, under_weight: float) -> torch.Tensor:
    """Asymmetric L1 on box edges; pred/target (B, 4) frame-relative next motions.

    Both boxes start from the same b1, so edge errors depend only on e = pred - target: left
    e_x, top e_y, right e_x + e_w, bottom e_y + e_h. An edge cuts the object (the predicted box
    is smaller there) when left/top errors are > 0 or right/bottom errors are < 0.
    """
    e = pred - target  # B x 4
    left, top = e[:, 0], e[:, 1]
    right, bottom = e[:, 0] + e[:, 2], e[:, 1] + e[:, 3]
    cut = torch.stack([left > 0, top > 0, right < 0, bottom < 0], 1)  # B x 4
    err = torch.stack([left, top, right, bottom], 1).abs()
    weight = torch.where(cut, torch.full_like(err, under_weight), torch.ones_like(err))
    return (weight * err).mean()


@dataclass(frozen=True)
class TrainResult:
    """A trained PT and its losses (edge loss, frame-relative units, x 1000).

    Attributes:
        mlp: the NumPy network to save.
        train_loss: PT loss on the training samples.
        val_loss: PT loss on the held-out samples.
        cv_val_loss: the constant-velocity baseline (T' = T) on the held-out samples.
        num_train: training samples.
        num_val: held-out samples.
    """

    mlp: MotionMLP
    train_loss: float
    val_loss: float
    cv_val_loss: float
    num_train: int
    num_val: int


def train_motion_mlp(
    train: MotionSamples, val: MotionSamples, config: TrackerTrainConfig
) -> TrainResult:
    """Fit the PT MLP on frame-relative motion samples.

    Args:
        train: training samples (at least one).
        val: held-out samples (may be empty; losses are then NaN).
        config: hyper-parameters.
    """
    if len(train) == 0:
        raise ValueError("no training samples: need objects visible in 3 consecutive frames")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny MLP: more threads only add synchronisation
    try:
        return _train(train, val, config)
    finally:
        torch.set_num_threads(threads)


def _train(train: MotionSamples, val: MotionSamples, config: TrackerTrainConfig) -> TrainResult:
    g = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    scale = np.maximum(train.t_in.std(0), MIN_SCALE)  # 4
    s = torch.as_tensor(scale, dtype=torch.float32)
    x = torch.as_tensor(train.t_in, dtype=torch.float32) / s  # N x 4
    y = torch.as_tensor(train.t_out, dtype=torch.float32)  # N x 4, frame-relative
    net = MotionNet(config.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(config.steps, 1))
    n = len(x)
    for _ in range(config.steps):
        idx = torch.randint(0, n, (min(config.batch_size, n),), generator=g)
        loss = edge_loss(net(x[idx]) * s, y[idx], config.under_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()

    def pt_loss(samples: MotionSamples) -> float:
        if len(samples) == 0:
            return math.nan
        with torch.no_grad():
            xs = torch.as_tensor(samples.t_in, dtype=torch.float32) / s
            ys = torch.as_tensor(samples.t_out, dtype=torch.float32)
            return 1000 * float(edge_loss(net(xs) * s, ys, config.under_weight))

    if len(val):
        cv = 1000 * float(
            edge_loss(torch.as_tensor(val.t_in), torch.as_tensor(val.t_out), config.under_weight)
        )
    else:
        cv = math.nan
    return TrainResult(
        mlp=net.to_numpy(scale),
        train_loss=pt_loss(train),
        val_loss=pt_loss(val),
        cv_val_loss=cv,
        num_train=len(train),
        num_val=len(val),
    )


def split_tracks(
    groups: list[tuple[list, int, int]], val_fraction: float, seed: int
) -> tuple[MotionSamples, MotionSamples]:
    """Split (tracks, H, W) groups per clip into train / validation samples."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(groups))
    n_val = int(round(val_fraction * len(groups))) if len(groups) > 1 else 0
    val_ids = set(order[:n_val].tolist())
    train, val = [], []
    for i, (tracks, h, w) in enumerate(groups):
        (val if i in val_ids else train).append(samples_from_tracks(tracks, h, w))
    return MotionSamples.concat(train), MotionSamples.concat(val)


def synthetic_groups(
    num_clips: int, num_frames: int, height: int, width: int, seed: int
) -> list[tuple[list, int, int]]:
    """Box tracks of synthetic clips (1-3 objects each) from ``vosx.training.synthetic``."""
    from vosx.training.synthetic import make_clip

    groups = []
    for i in range(num_clips):
        clip = make_clip(num_frames, height, width, 1 + i % 3, seed=seed * 100_003 + i)
        groups.append((box_tracks(clip.masks), height, width))
    return groups


def dataset_groups(root: Path) -> list[tuple[list, int, int]]:
    """Box tracks of every sequence of label PNGs under a DAVIS-layout folder.

    ``root`` may be a DAVIS root (``Annotations/480p/<seq>/*.png``), a folder of sequence
    folders, or one sequence folder.
    """
    from vosx.tracker_runtime.io import find_sequences, read_label_sequence

    groups = []
    for seq in find_sequences(root):
        labels = read_label_sequence(seq)  # T x H x W
        groups.append((box_tracks(labels), labels.shape[1], labels.shape[2]))
    return groups


def train_tracker(
    out: Path,
    data: TrackerDataConfig,
    config: TrackerTrainConfig,
    progress=None,
    force: bool = False,
) -> TrainResult:
    """Collect boxes, train PT, and write ``out`` (.npz) atomically (``vosx train-tracker``).

    Args:
        out: output ``.npz`` path.
        data: the box sources.
        config: training hyper-parameters.
        progress: optional ``progress(message)`` callback.
        force: replace an existing ``out``.

    Raises:
        ConfigError: ``out`` is not a .npz, exists without ``force``, or lies in a data folder.
        InputDataError: no usable data (no source, or no object in 3 consecutive frames).
    """
    from vosx.errors import ConfigError, InputDataError
    from vosx.files import atomic_path
    from vosx.output_policy import check_output

    check_output(out, data.data_dirs, force, example="pt.npz")
    if out.suffix != ".npz":
        raise ConfigError(
            f"{out}: tracker weights must be a .npz file; e.g. {out.with_suffix('.npz')}"
        )
    say = progress or (lambda message: None)
    groups = []
    for d in data.data_dirs:
        found = dataset_groups(Path(d))
        say(f"{d}: {len(found)} sequence(s)")
        groups += found
    if data.synthetic_clips > 0:
        say(f"rendering {data.synthetic_clips} synthetic clips of {data.frames} frames")
        groups += synthetic_groups(data.synthetic_clips, data.frames, *data.size, config.seed)
    if not groups:
        raise InputDataError("no training data: pass --data DAVIS_DIR and/or --synthetic N (N > 0)")
    train, val = split_tracks(groups, config.val_fraction, config.seed)
    if len(train) == 0:
        raise InputDataError(
            "no object is visible in 3 consecutive frames of the training data; "
            "give longer sequences or more synthetic clips"
        )
    say(f"training on {len(train)} box triples, validating on {len(val)}")
    result = train_motion_mlp(train, val, config)
    with atomic_path(out, overwrite=force) as tmp:
        result.mlp.save(tmp)
    return result
