"""The paper's Table 1 on real video: every row trained from the same ImageNet start for the same
number of steps on the 30 DAVIS-2016 train sequences, scored on the DAVIS-2016 val dev split.

Rows (Trick 1 = CE + SSIM + IoU; Trick 2 = decoder initialised from the completed Trick-1 row, the
rest from ImageNet again; Trick 3 = the none / CV / PT columns):

    baseline (CE) | + SSIM | + IoU | + Trick 1 | + Trick 2 | + Trick 1+2

Each row is a ``vosx.training.train`` run in ``OUT/<row>/`` with the recipe below (the bundled
checkpoint's, shorter); a finished row (``model.pth``) is reused, an interrupted one resumed from
its ``last.pth``, so the script can be stopped and run again. Scoring is ``real_jf``'s: the
runtime driver over the PyTorch graphs at the frames' padded size, DAVIS rules, per sequence.

Usage: python benchmarks/table1.py --steps 600 [--out runs/table1] [--rows a,b] [--trackers ...]
    [--sequences all] [--threads 2] [--json table1.json]
"""

import argparse
import json
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import real_jf

TRAIN_DATA = real_jf.SHARED / "davis2016_train"
ROWS = {  # name -> (ce, ssim, iou, decoder from the trick1 row)
    "baseline": (1.0, 0.0, 0.0, False),
    "ssim": (1.0, 1.0, 0.0, False),
    "iou": (1.0, 0.0, 1.0, False),
    "trick1": (1.0, 1.0, 1.0, False),
    "trick2": (1.0, 0.0, 0.0, True),
    "trick12": (1.0, 1.0, 1.0, True),
}
LABELS = {
    "baseline": "baseline (CE)",
    "ssim": "+ SSIM",
    "iou": "+ IoU",
    "trick1": "+ Trick 1",
    "trick2": "+ Trick 2",
    "trick12": "+ Trick 1+2",
}


def recipe(out: Path, steps: int, threads: int):
    """The shared recipe (the bundled run's settings, ``steps`` long; static stage = 10%)."""
    from vosx.training.config import TrainConfig

    return TrainConfig(
        out_dir=out,
        data=str(TRAIN_DATA),
        static_data=str(TRAIN_DATA),
        static_steps=max(1, steps // 10),
        steps=steps,
        batch_size=4,
        lr=3e-4,
        lr_final=0.05,
        warmup_steps=min(50, steps // 10),
        seq_len=3,
        crop=(192, 352),
        crop_scale=(0.15, 0.5),
        copy_paste=0.5,
        max_skip=4,
        init_backbone="imagenet",
        val_every=-1,
        checkpoint_every=50,
        threads=threads,
        num_workers=1,
    )


def train_row(root: Path, name: str, steps: int, threads: int) -> Path:
    """Train (or resume, or reuse) one row; returns its ``model.pth``."""
    from vosx.training.train import train

    out = root / name
    done = out / "model.pth"
    if done.is_file():
        return done
    ce, ssim, iou, decoder = ROWS[name]
    cfg = replace(recipe(out, steps, threads), ce=ce, ssim=ssim, iou=iou)
    if decoder:
        cfg = replace(cfg, init_decoder_from=train_row(root, "trick1", steps, threads))
    resume = (out / "last.pth").is_file()
    if resume:
        cfg = replace(cfg, resume=out / "last.pth")
    print(f"training {name} ({steps} steps) into {out}", flush=True)
    # a row folder without last.pth holds nothing of this row's to keep: start it afresh
    train(cfg, quiet=True, force=out.exists() and not resume)
    return done


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, required=True, help="training steps of every row")
    ap.add_argument("--out", type=Path, default=Path("runs/table1"), help="runs folder")
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated, of " + ",".join(ROWS))
    ap.add_argument("--data", type=Path, default=real_jf.DEFAULT_DATA, help="scoring folder")
    ap.add_argument("--sequences", default="all")
    ap.add_argument("--trackers", default="none,cv,pt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--size",
        default=None,
        help="HxW the graphs run at (default: the frames' padded size; labels are upscaled back "
        "and scored at full size)",
    )
    ap.add_argument("--json", type=Path, default=None)
    return ap.parse_args()


def score_rows(checkpoints: dict, args: argparse.Namespace, data: dict, size) -> list[dict]:
    """Every row's checkpoint x tracker scored on ``data`` (``real_jf.score``)."""
    results = []
    for r, ckpt in checkpoints.items():
        if real_jf.seen_sequences(str(ckpt), args.data, list(data)):
            sys.exit(f"{ckpt}: trained on {args.data}; score on sequences it never saw")
        for tr in [t for t in args.trackers.split(",") if t]:
            run = partial(real_jf.run_model, str(ckpt), tr, size=size)  # of (frames, first mask)
            res = real_jf.score(f"{LABELS[r]} / {tr}", run, data)
            results.append(
                {"row": r, "tracker": tr, "J&F": res["J&F"], "per_sequence": res["per_sequence"]}
            )
            print(f"{res['config']}: J&F {res['J&F']:.3f} ({res['sec']:.0f} s)", flush=True)
    return results


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split("x")) if args.size else None
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        sys.exit(f"--rows: unknown {', '.join(unknown)}; use {', '.join(ROWS)}")
    sequences = [s for s in args.sequences.split(",") if s]
    if sequences == ["all"]:
        sequences = sorted(p.name for p in (args.data / "Annotations").iterdir() if p.is_dir())
    checkpoints = {r: train_row(args.out, r, args.steps, args.threads) for r in rows}
    data = {s: real_jf.load_sequence(args.data, s) for s in sequences}
    results = score_rows(checkpoints, args, data, size)
    at = f"graphs at {args.size}" if args.size else "graphs at the frames' size"
    print(
        f"\nTable 1 on {args.data.name} ({len(sequences)} sequences, {at}), "
        f"{args.steps} steps a row\n"
    )
    print("| row | tracker | J&F | " + " | ".join(sequences) + " |")
    print("|---|---|---|" + "---|" * len(sequences))
    for x in results:
        cells = " | ".join(f"{x['per_sequence'][s]:.3f}" for s in sequences)
        print(f"| {LABELS[x['row']]} | {x['tracker']} | {x['J&F']:.3f} | {cells} |")
    if args.json:
        figures = {"steps": args.steps, "size": args.size, "rows": results}
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
