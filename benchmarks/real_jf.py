"""Accuracy on real video: DAVIS J&F / J / F of checkpoints x trackers on DAVIS-2016 sequences no
training step saw, beside two baselines on the same frames, in one run.

By default it reports on the 13-sequence dev split of DAVIS-2016 *validation*
(``../shared/fixtures/davis2016_val_dev``, every frame): the selection set of every recipe,
checkpoint and tracker choice, never trained on. ``--data ../shared/fixtures/davis2016_train
--sequences bear,...`` scores held-out train sequences instead (the previous yardstick).

Every configuration segments each sequence from its first ground-truth mask with the runtime's
``vosx.tracker_runtime.segment.segment`` (the ``SegmentationDriver`` of ``vosx segment``) over the
PyTorch graphs (``TorchGraphs``; the TFLite export agrees with them to IoU 1.0000), at the
frames' padded size (480x854 -> 480x864), and is scored with ``vosx.tracker_runtime.metrics``
(DAVIS 2017 rules: first and last frames not evaluated, objects weighed equally). The baselines
need no model: copying the first mask to every frame, and warping it frame to frame along
OpenCV's Farneback optical flow (``pip install opencv-python-headless``; benchmark-only).

A checkpoint whose ``train_config`` trained on a folder without excluding an evaluated sequence
is refused (a held-out figure must come from sequences no training step saw); ``--allow-seen``
lifts that for tuning on training sequences, and the table is then labelled "seen".

Usage: python benchmarks/real_jf.py [LABEL=CKPT ...] [--data DIR] [--sequences a,b,...|all]
    [--trackers none,cv,pt,cv@0.2] [--baselines copy,flow] [--threads 2] [--json out.json]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HELDOUT = ("bear", "car-turn", "dance-jump", "mallard-water", "motocross-bumps", "soccerball")
"""DAVIS-2016 train sequences held out of every real-video training run (6 of 30)."""

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"
DEFAULT_DATA = SHARED / "davis2016_val_dev"
"""DAVIS-2016 val, 13-sequence dev split: select and report on it, never train on it."""


def load_sequence(root: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(frames T x H x W x 3 uint8, labels T x H x W uint8) of one DAVIS-layout sequence."""
    from vosx.tracker_runtime.io import read_image, read_labels

    frames = sorted((root / "JPEGImages" / name).glob("*.jpg"))
    if not frames:
        sys.exit(f"{root / 'JPEGImages' / name}: no frames; check --data and --sequences")
    gt = [read_labels(root / "Annotations" / name / (p.stem + ".png")) for p in frames]
    labels = np.stack(gt)
    labels[labels == 255] = 0
    return np.stack([read_image(p) for p in frames]), labels


def seen_sequences(checkpoint: str, data: Path, sequences: list[str]) -> list[str]:
    """Evaluated sequences of ``data`` that the checkpoint's own training run may have drawn.

    A run trained on another folder saw none of them; one trained on ``data`` itself saw every
    sequence it did not exclude. (Runs initialised from another checkpoint inherit nothing here:
    the bundled checkpoints' lineage never trained on the dev split.)
    """
    import torch

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    cfg = ckpt.get("train_config") or {}
    folders = [cfg.get(k) for k in ("data", "static_data")]
    same = [f for f in folders if f and f != "synthetic" and Path(f).resolve() == data.resolve()]
    if not same:
        return []
    excluded = set(cfg.get("exclude_videos") or ())
    return [s for s in sequences if s not in excluded]


def run_model(
    checkpoint: str,
    tracker: str,
    frames: np.ndarray,
    mask: np.ndarray,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Labels T x H x W from the runtime driver over the PyTorch graphs, run at ``size`` (the
    frames' padded size when None; a smaller one downscales the frames and upscales the labels,
    as ``vosx segment`` does).
    """
    from vosx.model.checkpoint import load_checkpoint
    from vosx.model.graphs import TorchGraphs
    from vosx.tracker_runtime.segment import padded_size, segment

    kind, _, margin = tracker.partition("@")
    graphs = TorchGraphs(load_checkpoint(checkpoint))
    size = size or padded_size(mask.shape)
    out = segment(iter(frames), mask, graphs, size, kind, float(margin) if margin else None)
    return np.stack(list(out))


def copy_baseline(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The first mask on every frame."""
    return np.repeat(mask[None], len(frames), 0)


def flow_baseline(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The first mask carried frame to frame along Farneback flow (backward warp, nearest)."""
    try:
        import cv2
    except ImportError:
        sys.exit("the flow baseline needs OpenCV: pip install opencv-python-headless")
    h, w = mask.shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    out = [mask]
    for t in range(1, len(frames)):
        # flow from frame t to frame t-1: pixel x of t came from x + flow(x) of t-1
        flow = cv2.calcOpticalFlowFarneback(grey[t], grey[t - 1], None, 0.5, 3, 15, 3, 5, 1.2, 0)
        out.append(
            cv2.remap(
                out[-1],
                grid_x + flow[..., 0],
                grid_y + flow[..., 1],
                cv2.INTER_NEAREST,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
        )
    return np.stack(out)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help="LABEL=CHECKPOINT pairs (default: the bundled one)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="DAVIS-2016 layout folder")
    ap.add_argument("--sequences", default="all", help="comma-separated, or all (the folder's)")
    ap.add_argument("--trackers", default="none,cv,pt", help="kinds, KIND@MARGIN for a margin")
    ap.add_argument("--baselines", default="copy,flow")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--allow-seen", action="store_true", help="score training sequences too")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure here")
    return ap.parse_args()


def configurations(args: argparse.Namespace, sequences: list[str]) -> tuple[list, bool]:
    """The baselines, then every checkpoint x tracker, as (label, function of (frames, mask));
    and whether any checkpoint's training saw an evaluated sequence (``--allow-seen``)."""
    from vosx.paths import DEFAULT_CHECKPOINT

    configs = []
    for name in [b for b in args.baselines.split(",") if b]:
        fn = {"copy": copy_baseline, "flow": flow_baseline}[name]
        configs.append((f"baseline: {name}", fn))
    seen_any = False
    for item in args.models or [f"bundled={DEFAULT_CHECKPOINT}"]:
        label, _, path = item.rpartition("=")
        label = label or Path(path).name
        seen = seen_sequences(path, args.data, sequences)
        if seen and not args.allow_seen:
            sys.exit(
                f"{path}: its training run drew {', '.join(seen)}; evaluate held-out sequences "
                "only (or pass --allow-seen for a tuning run)"
            )
        seen_any |= bool(seen)
        for tr in [t for t in args.trackers.split(",") if t]:
            configs.append((f"{label} / {tr}", lambda f, m, p=path, t=tr: run_model(p, t, f, m)))
    return configs, seen_any


def score(label: str, fn, data: dict) -> dict:
    """One configuration over every sequence: J&F, J, F overall and per sequence, seconds."""
    from vosx.tracker_runtime.metrics import evaluate_labels, summarise

    t0 = time.perf_counter()
    per_seq, per_seq_j, per_seq_f, objects = {}, {}, {}, []
    for s, (frames, gt) in data.items():
        scores = evaluate_labels(s, gt, fn(frames, gt[0]))
        objects += scores.objects
        summary = scores.summary()
        per_seq[s], per_seq_j[s], per_seq_f[s] = (
            summary[k] for k in ("J&F-Mean", "J-Mean", "F-Mean")
        )
    res = summarise(objects)
    return {
        "config": label,
        "J&F": res["J&F-Mean"],
        "J": res["J-Mean"],
        "F": res["F-Mean"],
        "per_sequence": per_seq,
        "per_sequence_j": per_seq_j,
        "per_sequence_f": per_seq_f,
        "sec": time.perf_counter() - t0,
    }


def print_table(rows: list[dict], sequences: list[str], heading: str) -> None:
    """Every configuration's J&F, J, F and per-sequence J&F as a Markdown table."""
    print(f"\n{heading}\n")
    print("| configuration | J&F | J | F | " + " | ".join(sequences) + " |")
    print("|---|---|---|---|" + "---|" * len(sequences))
    for r in rows:
        cells = [f"{r['per_sequence'][s]:.3f}" for s in sequences]
        print(
            f"| {r['config']} | {r['J&F']:.3f} | {r['J']:.3f} | {r['F']:.3f} | "
            + " | ".join(cells)
            + " |"
        )


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    sequences = [s for s in args.sequences.split(",") if s]
    if sequences == ["all"]:
        sequences = sorted(p.name for p in (args.data / "Annotations").iterdir() if p.is_dir())
    configs, seen_any = configurations(args, sequences)
    data = {s: load_sequence(args.data, s) for s in sequences}
    n_frames = sum(len(f) for f, _ in data.values())
    rows = []
    for label, fn in configs:
        rows.append(score(label, fn, data))
        print(f"{label}: J&F {rows[-1]['J&F']:.3f} ({rows[-1]['sec']:.0f} s)", flush=True)
    kind = "SEEN (tuning) sequences" if seen_any else "sequences no training step saw"
    print_table(
        rows,
        sequences,
        f"DAVIS J&F on {len(sequences)} {kind} of {args.data.name} ({n_frames} frames)",
    )
    if args.json:
        figures = {"sequences": sequences, "frames": n_frames, "seen": seen_any, "rows": rows}
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
