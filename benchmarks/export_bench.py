"""Export benchmark: what a user waits for, and which checkpoints export, measured side by side.

Three parts, each printing a table (``--parts timing,matrix,latency``; default all but latency):

* ``timing``: ``vosx export`` of a checkpoint (the bundled one) at 480x864, fp32 + fp16, with the
  GPU check and with ``--no-gpu-check``, alternating, ``--repeat`` times each: wall and CPU
  seconds (this process's children: the export and its own children) of each run, the fastest
  of each, their ratio, and the share of the export the GPU work takes (goals: <= 90 s with the
  GPU check, GPU work <= half); then ``vosx segment`` of a 10-frame 854x480 clip without
  ``--model`` on a fresh cache (the implicit first-use export), from start to exit (goal
  <= 60 s).
* ``matrix``: ``vosx export`` exit status, wall time and warnings for every checkpoint (``vosx
  init`` default and ``--tiny``, the bundled one, a short ``vosx train`` run) x size x Vulkan
  (lavapipe present, and hidden with ``VK_ICD_FILENAMES``), each export fp32 + fp16 + int8.
* ``latency``: TFLite (LiteRT + XNNPACK) vs ONNX Runtime vs PyTorch eager per graph of one
  export, and the per-frame total for one object.

Every export runs as the real command line (``python -m vosx.cli``) in a child process, so exit
codes and timings are what a user sees. CPU seconds are reported beside wall seconds because
this machine is shared: on a loaded machine wall time says little, CPU time still says what the
work costs.

Usage: python benchmarks/export_bench.py [--parts timing,matrix] [--ckpt CKPT] [--repeat 2]
    [--sizes 64x96,240x432,480x864,720x1280] [--trained CKPT] [--train-steps 200] [--runs 20]
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BLOCK = 5  # latency: timed calls per backend before switching to the next
SIZES = ("64x96", "240x432", "480x864", "720x1280")
NO_VULKAN = {"VK_ICD_FILENAMES": "/nonexistent/icd.json", "VK_DRIVER_FILES": ""}


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process this one has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def vosx(
    args: list, env: dict | None = None, cwd: Path | None = None
) -> tuple[int, float, float, str]:
    """Run ``python -m vosx.cli ARGS`` -> (exit code, wall s, CPU s, stderr)."""
    cpu0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "vosx.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )
    return proc.returncode, time.perf_counter() - t0, children_cpu() - cpu0, proc.stderr


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def last_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


def timing(tmp: Path, ckpt: Path | None, repeat: int) -> None:
    """Export with and without the GPU check, then first-use segment on a fresh cache."""
    export_timing(tmp, ckpt, repeat)
    first_use_segment(tmp, ckpt)


def export_timing(tmp: Path, ckpt: Path | None, repeat: int) -> None:
    """Export with and without the GPU check (alternating, ``repeat`` times each; the fastest
    run of each counts, as machine noise only adds time), side by side with their ratio."""
    base = [] if ckpt is None else [ckpt]
    common = ["--size", "480x864", "--precision", "fp32,fp16", "--force"]
    configs = (("with GPU check", []), ("--no-gpu-check", ["--no-gpu-check"]))
    runs: dict[str, list[tuple[int, float, float]]] = {label: [] for label, _ in configs}
    for i in range(repeat):
        for label, extra in configs:
            code, wall, cpu, err = vosx(["export", *base, "-o", tmp / "exp", *common, *extra])
            runs[label].append((code, wall, cpu))
            print(
                f"{label}, run {i + 1}: exit {code}, {wall:.1f} s wall, {cpu:.1f} s CPU, "
                f"load {os.getloadavg()[0]:.1f}"
            )
            for line in err.splitlines():
                if "] export: " in line:
                    print(f"    {line}")
            if code:
                print(f"    {last_line(err)}")
    best = {label: min(r, key=lambda x: x[1]) for label, r in runs.items()}
    (c1, w1, p1), (c2, w2, p2) = best.values()
    print()
    print("| export 480x864 fp32,fp16 (fastest run) | exit | wall s | CPU s | every run, wall s |")
    print("|---|---:|---:|---:|---|")
    for label, (code, wall, cpu) in best.items():
        every = ", ".join(f"{w:.1f}" for _, w, _ in runs[label])
        print(f"| {label} | {code} | {wall:.1f} | {cpu:.1f} | {every} |")
    print(
        f"| ratio with / without | | {w1 / w2:.2f} | {p1 / p2:.2f} | |\n"
        f"GPU work: {w1 - w2:.1f} s wall = {(w1 - w2) / w1:.0%} of the export "
        f"({(p1 - p2) / p1:.0%} of its CPU time); goals: export <= 90 s "
        f"({'PASS' if w1 <= 90 else 'MISS'} on wall time), GPU work <= 50% "
        f"({'PASS' if (w1 - w2) / w1 <= 0.5 else 'MISS'})"
    )


def first_use_segment(tmp: Path, ckpt: Path | None) -> None:
    """``vosx segment`` of a 10-frame 854x480 clip on a fresh cache (the implicit export), then
    again with the cache filled."""
    from PIL import Image

    from vosx.tracker_runtime.io import write_labels
    from vosx.training.synthetic import make_clip

    base = [] if ckpt is None else [ckpt]
    clip = make_clip(10, 480, 854, 2, seed=3)
    frames = tmp / "clip"
    frames.mkdir()
    for i, frame in enumerate(clip.frames):
        Image.fromarray(frame).save(frames / f"{i:05d}.jpg", quality=95)
    write_labels(tmp / "mask.png", clip.masks[0])
    env = {"XDG_CACHE_HOME": str(tmp / "fresh_cache")}
    args = ["segment", frames, "--mask", tmp / "mask.png", "-o", tmp / "seg", *base]
    if ckpt is not None:
        args[-1:] = ["--checkpoint", ckpt]
    code, wall, cpu, err = vosx(args, env=env)
    print(
        f"\nfirst-use `vosx segment` (10 frames, 854x480, fresh cache): exit {code}, "
        f"{wall:.1f} s wall, {cpu:.1f} s CPU (goal <= 60 s: {'PASS' if wall <= 60 else 'MISS'})"
    )
    for line in err.splitlines():
        if line.startswith("vosx: exporting") or "] first-use export: " in line:
            print(f"    {line}")
    if code:
        print(f"    {last_line(err)}")
    code, wall2, _, _ = vosx([*args, "--force"], env=env)
    print(f"second run (cache reused): exit {code}, {wall2:.1f} s wall")


def checkpoints(tmp: Path, trained: Path | None, steps: int) -> dict[str, Path | None]:
    """The matrix's checkpoints: vosx init default and --tiny, bundled, short-trained."""
    out: dict[str, Path | None] = {}
    for label, extra in (("init", []), ("init --tiny", ["--tiny"])):
        path = tmp / f"{label.replace(' --', '_')}.pth"
        code, _, _, err = vosx(["init", path, *extra])
        if code:
            raise SystemExit(f"vosx init failed: {last_line(err)}")
        out[label] = path
    out["bundled"] = None
    if trained is None:
        run = tmp / "train"
        args = ["train", "-o", run, "--steps", steps, "--batch", 2, "--crop", "96x160"]
        args += ["--seq-len", 3, "--val-every", -1, "--checkpoint-every", steps]
        code, wall, _, err = vosx(args)
        if code:
            raise SystemExit(f"vosx train failed: {last_line(err)}")
        print(f"trained {steps} steps in {wall:.0f} s")
        trained = run / "model.pth"
    out[f"trained ({trained.name})"] = trained
    return out


def matrix(tmp: Path, sizes: list[str], trained: Path | None, steps: int) -> None:
    """Every checkpoint x size x Vulkan present/absent, fp32 + fp16 + int8 in one export."""
    ckpts = checkpoints(tmp, trained, steps)
    print("| checkpoint | size | Vulkan | exit | wall s | CPU s | warnings | last line if failed |")
    print("|---|---|---|---:|---:|---:|---|---|")
    failed = 0
    for label, ckpt in ckpts.items():
        for size in sizes:
            for vulkan, env in (("lavapipe", None), ("absent", NO_VULKAN)):
                args = ["export", *([] if ckpt is None else [ckpt]), "-o", tmp / "m"]
                args += ["--size", size, "--precision", "fp32,fp16,int8", "--force"]
                code, wall, cpu, err = vosx(args, env=env)
                failed += code != 0
                found = "; ".join(w.split(":")[1].strip()[:60] for w in warnings_of(err)) or "-"
                why = last_line(err) if code else ""
                print(
                    f"| {label} | {size} | {vulkan} | {code} | {wall:.0f} | {cpu:.0f} | "
                    f"{len(warnings_of(err))}: {found} | {why} |",
                    flush=True,
                )
    print(f"\n{failed} of {len(ckpts) * len(sizes) * 2} exports failed (goal: none)")


def latency(tmp: Path, ckpt: Path | None, runs: int, threads: int) -> None:
    """TFLite vs ONNX Runtime vs PyTorch eager per graph of a 480x864 export."""
    import onnxruntime as ort
    import torch

    from vosx.manifest import load_manifest
    from vosx.model.checkpoint import load_checkpoint, resolve_checkpoint
    from vosx.model.graphs import TorchGraphs
    from vosx.tracker_runtime.litert import TFLiteGraphs

    torch.set_num_threads(threads)
    out = tmp / "lat"
    code, _, _, err = vosx(
        ["export", *([] if ckpt is None else [ckpt]), "-o", out, "--no-gpu-check"]
    )
    if code:
        raise SystemExit(f"export failed: {last_line(err)}")
    manifest = load_manifest(out)
    tfl = TFLiteGraphs(manifest, "fp32", threads=threads)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sessions = {
        g: ort.InferenceSession(str(out / f"{g}.onnx"), so, providers=["CPUExecutionProvider"])
        for g in manifest.graphs
    }
    torch_graphs = TorchGraphs(load_checkpoint(resolve_checkpoint(ckpt)))
    rng = np.random.default_rng(0)
    runners = {
        "tflite": lambda g, x: tfl.run(g, x),
        "onnxruntime": lambda g, x: sessions[g].run(None, x),
        "torch": lambda g, x: torch_graphs.run(g, x),
    }
    times = {(b, g): [] for b in runners for g in manifest.graphs}
    for g, spec in manifest.graphs.items():
        x = {t.name: rng.standard_normal(t.shape).astype(np.float32) for t in spec.inputs}
        for fn in runners.values():  # warm-up
            fn(g, x)
        # Rounds of short blocks, alternating backends, so that machine noise hits all alike;
        # the first call of each block is dropped: the previous runtime's worker threads may
        # still be spinning (ONNX Runtime, OpenMP and XNNPACK all busy-wait for a while).
        for _ in range(max(1, runs // BLOCK)):
            for b, fn in runners.items():
                fn(g, x)
                for _ in range(BLOCK):
                    t = time.perf_counter()
                    fn(g, x)
                    times[(b, g)].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"host latency, 480x864, {threads} threads, median of {runs} (ms)")
    print(f"{'graph':<14}{'tflite':>9}{'onnxrt':>9}{'torch':>9}{'tfl/ort':>9}{'tfl/torch':>10}")
    for g in manifest.graphs:
        t, o, p = med[("tflite", g)], med[("onnxruntime", g)], med[("torch", g)]
        print(f"{g:<14}{t:9.1f}{o:9.1f}{p:9.1f}{t / o:9.2f}{t / p:10.2f}")
    tot = {b: sum(med[(b, g)] for g in manifest.graphs) for b in runners}
    print(
        f"{'frame (K=1)':<14}{tot['tflite']:9.1f}{tot['onnxruntime']:9.1f}{tot['torch']:9.1f}"
        f"{tot['tflite'] / tot['onnxruntime']:9.2f}{tot['tflite'] / tot['torch']:10.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="timing,matrix", help="timing, matrix, latency")
    ap.add_argument("--ckpt", type=Path, default=None, help="timing/latency (default: bundled)")
    ap.add_argument("--sizes", default=",".join(SIZES), help="matrix sizes")
    ap.add_argument("--trained", type=Path, default=None, help="matrix: a short-trained ckpt")
    ap.add_argument("--train-steps", type=int, default=200, help="matrix: else train this many")
    ap.add_argument("--repeat", type=int, default=2, help="timing: runs of each export")
    ap.add_argument("--runs", type=int, default=20, help="latency: timed calls per graph")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - {"timing", "matrix", "latency"}
    if unknown:
        raise SystemExit(f"--parts: unknown {sorted(unknown)}; choose timing, matrix, latency")
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="vosx-export-bench-") as tmp:
        if "timing" in parts:
            (Path(tmp) / "timing").mkdir()
            timing(Path(tmp) / "timing", args.ckpt, args.repeat)
        if "matrix" in parts:
            (Path(tmp) / "matrix").mkdir()
            sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
            matrix(Path(tmp) / "matrix", sizes, args.trained, args.train_steps)
        if "latency" in parts:
            (Path(tmp) / "latency").mkdir()
            latency(Path(tmp) / "latency", args.ckpt, args.runs, args.threads)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
