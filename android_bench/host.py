"""``vosx bench --device host``: the same report timed on this machine.

Each .tflite file runs in the LiteRT interpreter with XNNPACK (delegate "cpu") and, for
comparison, each .onnx file in ONNX Runtime (when installed), and/or (``--delegate gpu``) on
LiteRT's GPU accelerator, each graph's GPU outputs checked against the CPU's (latencies: software
Vulkan, not a phone figure). Every timed run is one ``Measurement`` with a ``BenchmarkResult`` in
the phone tools' units (microseconds, MB of this process's resident memory).
"""

import dataclasses
import os
import platform
import time
from pathlib import Path

import numpy as np

from vosx.android_bench.benchmark_output import BenchmarkResult
from vosx.android_bench.options import BenchOptions
from vosx.android_bench.results import HOST_GPU_LABEL, DeviceRun, HostGpuCheck, Measurement
from vosx.errors import AcceleratorError
from vosx.manifest import GRAPH_NAMES, Manifest

HOST_LITERT = "cpu"  # LiteRT interpreter with XNNPACK on the host
HOST_ORT = "onnxruntime"
HOST_GPU = "gpu"  # LiteRT's GPU accelerator (CompiledModel, GPU only) on the host
HOST_TOOLS = {HOST_LITERT: "litert-interpreter", HOST_ORT: "onnxruntime", HOST_GPU: "litert-gpu"}
# Measurement.tool -> the per-graph table's "tool" column
HOST_COLUMNS = {
    "litert-interpreter": "LiteRT interpreter",
    "onnxruntime": "ONNX Runtime",
    "litert-gpu": f"LiteRT GPU ({HOST_GPU_LABEL})",
}
ORT_MISSING = (
    "ONNX Runtime comparison skipped: onnxruntime is not installed (it is in the export extra: "
    "pip install 'vosx[export]')"
)


def _rss_mb() -> float | None:
    """Resident memory of this process in MB (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def _random_input(shape, dtype, rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.random(size=shape, dtype=np.float32).astype(dtype)


def _stats(
    init_s: float, first_s: float, warm: list[float], times: list[float], rss0, rss_init, rss_end
) -> BenchmarkResult:
    t = np.asarray(times) * 1e6  # us
    return BenchmarkResult(
        inference_avg_us=float(t.mean()),
        init_us=init_s * 1e6,
        first_inference_us=first_s * 1e6,
        warmup_avg_us=float(np.mean(warm) * 1e6) if warm else None,
        inference_count=len(times),
        inference_min_us=float(t.min()),
        inference_max_us=float(t.max()),
        inference_std_us=float(t.std()),
        inference_median_us=float(np.median(t)),
        memory_init_mb=None if rss0 is None else rss_init - rss0,
        memory_overall_mb=None if rss0 is None else rss_end - rss0,
        source="host",
    )


def _time_calls(setup, call, runs: int, warmup: int) -> BenchmarkResult:
    """Time ``setup()`` (init), the first ``call``, ``warmup`` calls and ``runs`` timed calls."""
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    handle = setup()
    init_s = time.perf_counter() - t0
    rss_init = _rss_mb()
    t0 = time.perf_counter()
    call(handle)
    first_s = time.perf_counter() - t0
    laps = []
    for _ in range(warmup + runs):
        t0 = time.perf_counter()
        call(handle)
        laps.append(time.perf_counter() - t0)
    return _stats(init_s, first_s, laps[:warmup], laps[warmup:], rss0, rss_init, _rss_mb())


def time_litert(path: Path, threads: int, runs: int, warmup: int) -> BenchmarkResult:
    """Time one .tflite file with the LiteRT interpreter (XNNPACK) on random inputs."""
    from vosx.tracker_runtime.litert import make_interpreter

    rng = np.random.default_rng(0)

    def setup():
        interp = make_interpreter(path, threads=threads, xnnpack=True)
        for d in interp.get_input_details():
            interp.set_tensor(d["index"], _random_input(d["shape"], d["dtype"], rng))
        return interp

    return _time_calls(setup, lambda interp: interp.invoke(), runs, warmup)


def time_onnxruntime(path: Path, threads: int, runs: int, warmup: int) -> BenchmarkResult:
    """Time one .onnx file with ONNX Runtime (CPU) on random inputs."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    types = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}

    def setup():
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feeds = {
            i.name: _random_input(
                [s if isinstance(s, int) else 1 for s in i.shape],
                types.get(i.type, np.float32),
                rng,
            )
            for i in sess.get_inputs()
        }
        return sess, feeds

    return _time_calls(setup, lambda h: h[0].run(None, h[1]), runs, warmup)


def host_info() -> dict:
    """This machine, as the report records it."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": platform.platform(),
    }
    try:
        from importlib.metadata import version

        info["ai_edge_litert"] = version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - metadata is only informative
        pass
    return info


def _onnx_path(manifest: Manifest, graph: str) -> Path:
    """A graph's .onnx file, checked inside the export folder; a missing one is left to ONNX
    Runtime to report (recorded in the sweep), as an app-side export folder may lack it.
    """
    rel = manifest.graphs[graph].onnx
    if not os.path.lexists(manifest.root / rel):
        return manifest.root / rel  # safe: the manifest check refused absolute and '..' paths
    return manifest.onnx_path(graph)


def check_loadable(manifest: Manifest, precisions: tuple[str, ...]) -> None:
    """Load every .tflite file to be timed on the host once, before anything is measured, and
    check its inputs and outputs against the manifest (whose shapes the GPU check and the
    driver's cost are timed with).

    Raises:
        ManifestError: a file LiteRT cannot load, or whose signature is not the manifest's (one
            line naming it and the fix).
    """
    from vosx.tracker_runtime.litert import check_signature, interpreter_signature, make_interpreter

    specs = manifest.graphs
    for p in precisions:
        for g in GRAPH_NAMES:
            path = manifest.tflite_path(g, p)
            interp = make_interpreter(path, threads=1, xnnpack=False)
            check_signature(path, specs[g], *interpreter_signature(interp))


def gpu_adapter() -> str:
    """The Vulkan device LiteRT's GPU accelerator runs on here.

    Raises:
        AcceleratorError: it cannot run here (the reason and the command that enables it).
    """
    from vosx.tracker_runtime.accelerator import probe_gpu

    probe = probe_gpu()
    if not probe.available:
        raise AcceleratorError(
            f"--delegate gpu with --device host: LiteRT's GPU accelerator cannot run here: "
            f"{probe.reason}"
        )
    return probe.adapter or "an unnamed Vulkan device"


def _manifest_inputs(manifest: Manifest, graph: str) -> dict[str, np.ndarray]:
    """Random float inputs of a graph's manifest shapes (the same for the CPU and the GPU)."""
    rng = np.random.default_rng(0)
    return {
        t.name: rng.random(size=t.shape, dtype=np.float32) for t in manifest.graphs[graph].inputs
    }


def time_gpu(path: Path, inputs: dict, runs: int, warmup: int) -> BenchmarkResult:
    """Time one .tflite file compiled GPU-only by LiteRT's accelerator (init = the compile)."""
    from vosx.tracker_runtime.accelerator import CompiledGraph

    def setup():
        return CompiledGraph(path, "gpu")

    result = _time_calls(setup, lambda graph: graph.run(inputs), runs, warmup)
    return dataclasses.replace(result, delegation="full", source="host-gpu")  # GPU-only compile


def check_host_gpu(manifest: Manifest, graph: str, precision: str) -> HostGpuCheck:
    """Compile one graph GPU-only and compare its outputs with the CPU's on the same inputs."""
    from vosx.tracker_runtime.accelerator import CompiledGraph, compare_on_gpu

    path = manifest.tflite_path(graph, precision)
    inputs = _manifest_inputs(manifest, graph)
    try:
        reference = CompiledGraph(path, "cpu").run(inputs)
        got = compare_on_gpu(path, inputs, reference)
    except AcceleratorError as e:  # a refused graph is recorded; the sweep goes on
        return HostGpuCheck(graph, precision, False, {}, None, str(e))
    return HostGpuCheck(graph, precision, got.fully_delegated, got.max_rel, got.adapter)


def _host_jobs(manifest: Manifest, precisions: tuple[str, ...], opts: BenchOptions, ort: bool):
    """(graph, backend, precision, path) of one host trial, for the asked delegates."""
    jobs = []
    for backend in (HOST_LITERT, HOST_GPU):
        if backend in opts.delegates:
            jobs += [
                (g, backend, p, manifest.tflite_path(g, p)) for p in precisions for g in GRAPH_NAMES
            ]
    if ort and HOST_LITERT in opts.delegates:
        jobs += [(g, HOST_ORT, "fp32", _onnx_path(manifest, g)) for g in GRAPH_NAMES]
    return jobs


def _time_host(manifest: Manifest, job: tuple, opts: BenchOptions) -> BenchmarkResult:
    g, backend, _, path = job
    if backend == HOST_GPU:
        return time_gpu(path, _manifest_inputs(manifest, g), opts.runs, opts.warmup)
    timer = time_litert if backend == HOST_LITERT else time_onnxruntime
    return timer(path, opts.threads, opts.runs, opts.warmup)


def prepare_host(manifest: Manifest, precisions: tuple[str, ...], opts: BenchOptions) -> str | None:
    """What is checked before anything is timed here: every .tflite file loads with the
    manifest's signature; with ``--delegate gpu``, LiteRT's GPU accelerator runs (its device).

    Raises:
        ManifestError: a file LiteRT cannot load, or not the manifest's.
        AcceleratorError: ``--delegate gpu`` where the GPU accelerator cannot run.
    """
    check_loadable(manifest, precisions)
    return gpu_adapter() if HOST_GPU in opts.delegates else None


def run_host(
    manifest: Manifest, precisions: tuple[str, ...], opts: BenchOptions, adapter: str | None
) -> tuple[DeviceRun, tuple[str, ...]]:
    """The sweep on this machine: LiteRT per precision on the CPU (and ONNX Runtime on the fp32
    .onnx files, if installed) and/or on LiteRT's GPU accelerator (``adapter``: its device, from
    ``prepare_host``), checked against the CPU.
    """
    run = DeviceRun("host", info=host_info())
    try:
        import onnxruntime  # noqa: F401 - only probing whether it is installed

        ort_ok = True
        notes: tuple[str, ...] = ()
    except ImportError:
        ort_ok = False
        notes = (ORT_MISSING,) if HOST_LITERT in opts.delegates else ()
    if HOST_GPU in opts.delegates:
        run.gpu_checks = [check_host_gpu(manifest, g, p) for p in precisions for g in GRAPH_NAMES]
    for trial in range(opts.trials):
        if trial:
            time.sleep(opts.cooldown_s)
        for job in _host_jobs(manifest, precisions, opts, ort_ok):
            g, backend, p, path = job
            base = ("host", g, backend, p, trial)
            try:
                r = _time_host(manifest, job, opts)
            except Exception as e:  # any backend failure is recorded; the sweep goes on
                run.measurements.append(
                    Measurement(*base, error=f"{path}: {e}", tool=HOST_TOOLS[backend])
                )
                continue
            run.measurements.append(Measurement(*base, r, tool=HOST_TOOLS[backend]))
    if adapter is not None:
        run.info["gpu"] = adapter
        notes += (f"host gpu rows: LiteRT's GPU accelerator on {adapter}: {HOST_GPU_LABEL}",)
    return run, notes
