"""Export benchmark: export wall time and host latency of each graph, measured side by side.

Prints ratios measured in one run (these machines are noisy): TFLite (LiteRT + XNNPACK) vs ONNX
Runtime vs PyTorch eager per graph at 480x864 with 2 threads, the per-frame total for one object
(key + value + decoder), and the export wall time (fp32 + fp16) against its 120 s goal.

Usage: python benchmarks/export_bench.py [--ckpt CKPT] [--size 480x864] [--runs 20] [--threads 2]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

BLOCK = 5  # timed calls per backend before switching to the next


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", type=Path, default=None, help="checkpoint (default: a random init)")
    ap.add_argument("--size", default="480x864")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from vosx.export.pipeline import ExportOptions, export_all, parse_size
    from vosx.manifest import load_manifest
    from vosx.model import ModelConfig, build_model, load_checkpoint, save_checkpoint
    from vosx.model.graphs import TorchGraphs
    from vosx.tracker_runtime.litert import TFLiteGraphs

    size = parse_size(args.size)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.ckpt
        if ckpt is None:
            torch.manual_seed(0)
            ckpt = save_checkpoint(build_model(ModelConfig()), Path(tmp) / "random.pth")
        out = Path(tmp) / "export"
        t0 = time.perf_counter()
        export_all(ExportOptions(checkpoint=ckpt, out_dir=out, size=size, threads=args.threads))
        export_s = time.perf_counter() - t0

        manifest = load_manifest(out)
        tfl = TFLiteGraphs(manifest, "fp32", threads=args.threads)
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        sessions = {
            g: ort.InferenceSession(str(out / f"{g}.onnx"), so, providers=["CPUExecutionProvider"])
            for g in manifest.graphs
        }
        torch_graphs = TorchGraphs(load_checkpoint(ckpt))
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
            for _ in range(max(1, args.runs // BLOCK)):
                for b, fn in runners.items():
                    fn(g, x)
                    for _ in range(BLOCK):
                        t = time.perf_counter()
                        fn(g, x)
                        times[(b, g)].append(time.perf_counter() - t)

    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"host latency, {size[0]}x{size[1]}, {args.threads} threads, median of {args.runs} (ms)")
    print(f"{'graph':<14}{'tflite':>9}{'onnxrt':>9}{'torch':>9}{'tfl/ort':>9}{'tfl/torch':>10}")
    for g in manifest.graphs:
        t, o, p = med[("tflite", g)], med[("onnxruntime", g)], med[("torch", g)]
        print(f"{g:<14}{t:9.1f}{o:9.1f}{p:9.1f}{t / o:9.2f}{t / p:10.2f}")
    tot = {b: sum(med[(b, g)] for g in manifest.graphs) for b in runners}
    print(
        f"{'frame (K=1)':<14}{tot['tflite']:9.1f}{tot['onnxruntime']:9.1f}{tot['torch']:9.1f}"
        f"{tot['tflite'] / tot['onnxruntime']:9.2f}{tot['tflite'] / tot['torch']:10.2f}"
    )
    worst = max(med[("tflite", g)] / med[("onnxruntime", g)] for g in manifest.graphs)
    print(
        f"goal TFLite <= 1.0x ONNX Runtime per graph: worst {worst:.2f}x "
        f"{'PASS' if worst <= 1.0 else 'MISS'}"
    )
    ratio = tot["tflite"] / tot["torch"]
    print(f"goal frame <= 0.5x PyTorch eager: {ratio:.2f}x {'PASS' if ratio <= 0.5 else 'MISS'}")
    print(
        f"export wall time fp32+fp16: {export_s:.1f} s (goal <= 120 s: "
        f"{'PASS' if export_s <= 120 else 'MISS'})"
    )


if __name__ == "__main__":
    main()
