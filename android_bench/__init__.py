"""benchmark_model over adb (or LiteRT on the host): per-graph latency and per-frame FPS.

``parse_benchmark_output`` reads the tool's output; ``tools.TOOLS`` is the registry of the
programs run on a phone; ``bench.run_bench`` runs ``vosx bench`` (the sweeps: ``phone`` over
``adb``, ``host``; the NumPy side of a frame: ``frame_cost``) into ``results``; ``report`` turns
them into a table, JSON and a PNG plot. Imports neither torch nor tensorflow.
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
