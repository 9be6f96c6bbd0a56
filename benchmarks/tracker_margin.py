"""Choose Trick 3's margin by measurement: J&F on synthetic validation clips, per margin, CV and PT.

Shapes: label maps T x H x W uint8; per-object probability maps H x W float32.

The predictions are simulated from the ground truth of synthetic clips (``vosx.training.synthetic``,
seeds disjoint from ``vosx train-tracker``'s) with the errors Trick 3 is meant to remove and the
ones it can make worse: soft boundaries, *distractor episodes* (for a few frames an object's
probability also fires on a same-shaped region elsewhere, the global-matching error of paper
§3.4), and partial misses. Frame 0 gets the given mask, as in the driver. Each object's maps go
through its own tracker; labels are the arg-max over background (0.5) and objects; J&F follows
the DAVIS 2017 rules (``vosx.tracker_runtime.metrics``). The margins with the best mean J&F are
the defaults (``DEFAULT_MARGIN_CV``, ``DEFAULT_MARGIN_PT`` in ``tracker_runtime/trackers.py``);
rerun this after retraining PT.

With ``--checkpoint CKPT`` the predictions are a trained model's instead, through the real
driver (PyTorch backend; the filtered maps feed the memory, so every margin is a full rerun).

Run: python benchmarks/tracker_margin.py [--clips 40] [--frames 30] [--size 240x432]
     [--checkpoint CKPT]
"""

import argparse
from importlib.resources import files

import numpy as np

from vosx.sizes import parse_size
from vosx.tracker_runtime.metrics import evaluate_labels
from vosx.tracker_runtime.trackers import ConstantVelocityTracker, MotionMLP, ParametricTracker
from vosx.training.synthetic import make_clip

MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)
VAL_SEED0 = 1_000_000  # train-tracker uses seeds seed * 100_003 + i, i < clips


def box_blur(m: np.ndarray, r: int) -> np.ndarray:
    """Separable (2r+1)-box blur of an H x W float map (edge-padded)."""
    k = 2 * r + 1
    p = np.pad(m, r, mode="edge")
    c = np.cumsum(np.pad(p, ((0, 0), (1, 0))), axis=1)
    m = (c[:, k:] - c[:, :-k]) / k  # (H + 2r) x W
    c = np.cumsum(np.pad(m, ((1, 0), (0, 0))), axis=0)
    return (c[k:] - c[:-k]) / k  # H x W


def simulate(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """T x H x W labels -> K x T x H x W float32 simulated object probabilities."""
    t_len, h, w = masks.shape
    k_num = int(masks[0].max())
    probs = np.zeros((k_num, t_len, h, w), np.float32)
    for k in range(1, k_num + 1):
        episode = 0
        shift = (0, 0)
        for t in range(t_len):
            gt = (masks[t] == k).astype(np.float32)
            p = box_blur(gt, 2) * rng.uniform(0.85, 1.0)
            if t == 0:
                probs[k - 1, t] = gt
                continue
            if episode == 0 and rng.random() < 0.08:  # a distractor episode starts
                episode = int(rng.integers(2, 8))
                ys, xs = np.nonzero(gt)
                size = max(int(np.ptp(ys)), int(np.ptp(xs)), 8) if len(ys) else 8
                dy, dx = rng.integers(-3 * size, 3 * size + 1, 2)
                if abs(dy) < 1.5 * size and abs(dx) < 1.5 * size:
                    dx = int(np.sign(dx) or 1) * int(1.5 * size)
                shift = (int(dy), int(dx))
            if episode > 0:
                fake = np.roll(gt, shift, axis=(0, 1))
                p = np.maximum(p, box_blur(fake, 2) * rng.uniform(0.6, 0.95))
                episode -= 1
            if rng.random() < 0.1:  # partial miss: a random half-plane of the object drops
                yy, xx = np.mgrid[0:h, 0:w]
                ang = rng.uniform(0, 2 * np.pi)
                ys, xs = np.nonzero(gt)
                if len(ys):
                    cy, cx = ys.mean(), xs.mean()
                    side = np.cos(ang) * (xx - cx) + np.sin(ang) * (yy - cy)  # H x W
                    cut = side > rng.uniform(0, 0.5) * max(np.ptp(xs), 1)
                    p = np.where(cut, p * 0.3, p)
            probs[k - 1, t] = np.clip(p + rng.normal(0, 0.03, (h, w)), 0, 1)
    return probs


def labels_of(probs: np.ndarray) -> np.ndarray:
    """K x H x W probabilities -> H x W labels (arg-max over background 0.5 and objects)."""
    stack = np.concatenate([np.full((1, *probs.shape[1:]), 0.5, np.float32), probs])
    return stack.argmax(0).astype(np.uint8)


def run(clips, probs_all, make_tracker) -> float:
    """Mean J&F over all objects of all clips with one tracker per object (None: unfiltered)."""
    jf = []
    for masks, probs in zip(clips, probs_all, strict=True):
        k_num, t_len = probs.shape[:2]
        trackers = [make_tracker() for _ in range(k_num)] if make_tracker else None
        pred = np.zeros_like(masks)
        for t in range(t_len):
            frame = probs[:, t]
            if trackers:
                frame = np.stack([tr.step(p).copy() for tr, p in zip(trackers, frame, strict=True)])
            pred[t] = labels_of(frame)
        seq = evaluate_labels("clip", masks, pred)
        jf += [(o.j_stats[0] + o.f_stats[0]) / 2 for o in seq.objects]
    return float(np.mean(jf))


def run_driver(clips, graphs, size, make_tracker) -> float:
    """Mean J&F over all objects with the real two-frame driver (tracker output feeds memory)."""
    from vosx.tracker_runtime.driver import SegmentationDriver

    jf = []
    for clip in clips:
        driver = SegmentationDriver(graphs, size, make_tracker)
        pred = [driver.step(clip.frames[0], clip.masks[0])]
        pred += [driver.step(f) for f in clip.frames[1:]]
        seq = evaluate_labels("clip", clip.masks, np.stack(pred))
        jf += [(o.j_stats[0] + o.f_stats[0]) / 2 for o in seq.objects]
    return float(np.mean(jf))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", default="240x432", help="HxW, multiples of 16 with --checkpoint")
    parser.add_argument("--pt", default=str(files("vosx") / "assets" / "pt_tracker.npz"))
    parser.add_argument(
        "--checkpoint",
        help="segment with this trained checkpoint through the real driver (PyTorch backend) "
        "instead of simulating predictions",
    )
    args = parser.parse_args()
    h, w = parse_size(args.size)
    clips = [make_clip(args.frames, h, w, 1 + i % 3, seed=VAL_SEED0 + i) for i in range(args.clips)]
    n_obj = sum(c.num_objects for c in clips)
    mlp = MotionMLP.load(args.pt)
    if args.checkpoint:
        from vosx.model import load_checkpoint
        from vosx.model.graphs import TorchGraphs

        graphs = TorchGraphs(load_checkpoint(args.checkpoint))

        def score(make_tracker):
            return run_driver(clips, graphs, (h, w), make_tracker)

        source = f"driver with {args.checkpoint}"
    else:
        rng = np.random.default_rng(0)
        masks = [c.masks for c in clips]
        probs_all = [simulate(m, rng) for m in masks]

        def score(make_tracker):
            return run(masks, probs_all, make_tracker)

        source = "simulated predictions"
    base = score(None)
    print(
        f"J&F on {args.clips} synthetic validation clips ({n_obj} objects, {args.frames} "
        f"frames, {h}x{w}, {source}); no tracker: {base:.4f}"
    )
    print(f"{'margin':>6}  {'CV J&F':>7}  {'CV gain':>7}  {'PT J&F':>7}  {'PT gain':>7}")
    best = {}
    for margin in MARGINS:
        cv = score(lambda m=margin: ConstantVelocityTracker(m))
        pt = score(lambda m=margin: ParametricTracker(mlp, m))
        for name, v in (("CV", cv), ("PT", pt)):
            if v > best.get(name, (-1, 0))[0]:
                best[name] = (v, margin)
        print(f"{margin:6.2f}  {cv:7.4f}  {cv - base:+7.4f}  {pt:7.4f}  {pt - base:+7.4f}")
    for name, (v, margin) in best.items():
        print(f"best {name} margin: {margin} (J&F {v:.4f}, {v - base:+.4f} over no tracker)")


if __name__ == "__main__":
    main()
