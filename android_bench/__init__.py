"""benchmark_model over adb (or LiteRT on the host): per-graph latency and per-frame FPS."""
