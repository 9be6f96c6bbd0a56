"""benchmark_model over adb (or LiteRT on the host): per-graph latency and per-frame FPS.

``parse_benchmark_output`` reads the tool's output; ``bench.run_bench`` runs ``vosx bench``;
``report`` turns its result into a table, JSON and a PNG plot.
"""

from vosx.android_bench.benchmark_output import (
    BenchmarkResult,
    BenchmarkRunError,
    OpProfileRow,
    parse_benchmark_output,
    parse_inference_diff,
)

__all__ = [
    "BenchmarkResult",
    "BenchmarkRunError",
    "OpProfileRow",
    "parse_benchmark_output",
    "parse_inference_diff",
]
