"""Accuracy table: DAVIS J&F of checkpoints on held-out synthetic clips, per Trick 3 tracker.

Every checkpoint is scored on the same held-out clips
(``vosx.training.evaluate.evaluate_synthetic``: the runtime driver's algorithm in PyTorch, DAVIS
2017 rules) with no tracker, the CV tracker and the PT tracker, in one run, and the table is
printed as Markdown (the README's small-scale version of the paper's Table 1). The clip seeds
come from ``val_seed(--seed, j)``: training never draws them, and ``--seed 1`` also differs from
the clips that a ``--seed 0`` run validated on.

Usage: python benchmarks/synthetic_jf.py "LABEL=CKPT" ... [--clips 10] [--frames 12]
    [--size 480x864] [--seed 1] [--trackers none,cv,pt] [--threads 2] [--json out.json]
"""

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="LABEL=CHECKPOINT pairs (a bare path is its label)")
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--size", default="480x864")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--trackers", default="none,cv,pt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = ap.parse_args()

    from vosx.export.options import parse_size
    from vosx.training.evaluate import evaluate_synthetic

    h, w = parse_size(args.size)
    trackers = [t.strip() for t in args.trackers.split(",") if t.strip()]
    rows = []
    for item in args.models:
        label, _, path = item.rpartition("=")
        label = label or Path(path).name
        scores = {}
        for tr in trackers:
            t0 = time.perf_counter()
            j, f, jf = evaluate_synthetic(
                path, args.clips, args.frames, (h, w), args.seed, tr, args.threads
            )
            scores[tr] = {"J": j, "F": f, "J&F": jf, "sec": time.perf_counter() - t0}
            print(f"{label} / {tr}: J&F {jf:.3f} (J {j:.3f}, F {f:.3f})", flush=True)
        rows.append({"label": label, "checkpoint": path, "scores": scores})

    names = {"none": "no tracker", "cv": "CV tracker", "pt": "PT tracker"}
    print(
        f"\nJ&F on {args.clips} held-out synthetic clips of {args.frames} frames at {h}x{w} "
        f"(seed {args.seed})\n"
    )
    print("| model | " + " | ".join(names.get(t, t) for t in trackers) + " |")
    print("|---|" + "---|" * len(trackers))
    for r in rows:
        cells = [
            f"{s['J&F']:.3f} (J {s['J']:.3f}, F {s['F']:.3f})"
            for s in (r["scores"][t] for t in trackers)
        ]
        print(f"| {r['label']} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(
            json.dumps({"options": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
