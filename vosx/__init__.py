"""vosx: the TrickVOS toolchain from a PyTorch checkpoint to TFLite graphs on a phone.

Subpackages, in the direction data flows: ``vosx.model`` (PyTorch network), ``vosx.training``
(data, loss, training loop), ``vosx.export`` (ONNX/TFLite conversion and verification),
``vosx.tracker_runtime`` (NumPy + LiteRT driver and trackers) and ``vosx.android_bench``
(benchmark_model over adb). ``vosx.manifest`` is the export contract they share. Nothing heavy is
imported here.
"""

__version__ = "0.1.0"
