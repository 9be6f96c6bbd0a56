"""Fake ``benchmark_model`` and ``inference_diff`` for the fake device: real output formats.

The formats follow the real tools (see ../shared/fixtures/benchmark_model/): TF 2.x ``INFO:``
lines with percentiles, the older un-prefixed TF 2.4 form with "Peak memory footprint (MB)", Android
logcat lines as the benchmark APK prints them, and the LiteRT tool's "BENCHMARK RESULTS" block in
milliseconds. Numbers are printed like C++ ostreams: integers for int64 stats, 6 significant digits
(scientific above 1e6) for doubles. A fake binary is a 64-byte aarch64 ELF header plus a marker.
"""

import struct

FAKE_MARKER = b"\nVOSX_FAKE_TOOL="
EM_AARCH64 = 183
EM_X86_64 = 62


def fake_elf(tool: str, machine: int = EM_AARCH64, elf_class: int = 2) -> bytes:
    """Bytes of a fake executable: an ELF64 header for ``machine`` followed by the tool marker."""
    ident = b"\x7fELF" + bytes([elf_class, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHI", 3, machine, 1) + bytes(64 - 16 - 8)
    return header + FAKE_MARKER + tool.encode() + b"\n"


def tool_of(data: bytes) -> str | None:
    """Which fake tool a device file is (None if it is not one)."""
    i = data.find(FAKE_MARKER)
    if i < 0:
        return None
    return data[i + len(FAKE_MARKER) :].split(b"\n", 1)[0].decode()


def g6(x: float) -> str:
    """A double as ``std::ostream`` prints it by default (6 significant digits)."""
    return f"{x:g}"


def _stats(avg: float, n: int, first: float) -> dict:
    std = max(1, int(avg * 0.02))
    return {
        "count": n,
        "first": int(first),
        "curr": int(avg),
        "min": int(avg - 2 * std),
        "max": int(avg + 3 * std),
        "avg": avg,
        "std": std,
    }


def _count_line(s: dict, percentiles: bool) -> str:
    line = (
        f"count={s['count']} first={s['first']} curr={s['curr']} min={s['min']} max={s['max']} "
        f"avg={g6(s['avg'])} std={s['std']}"
    )
    if percentiles:
        line += f" p5={s['min']} median={s['curr']} p95={s['max']}"
    return line


def benchmark_lines(
    fmt: str, graph: str, delegate: str, t: dict, nodes: tuple[int, int]
) -> list[str]:
    """The output of one successful benchmark_model run in format ``fmt``.

    ``t`` holds init_us, first_us, warmup_us, avg_us, runs, warmup_runs, threads, mem_init,
    mem_overall, peak_mb and delegation ("full" / "partial" / "none").
    """
    warm = _stats(t["warmup_us"], t["warmup_runs"], t["first_us"])
    timed = _stats(t["avg_us"], t["runs"], t["avg_us"] * 1.01)
    summary = (
        f"Inference timings in us: Init: {int(t['init_us'])}, "
        f"First inference: {int(t['first_us'])}, "
        f"Warmup (avg): {g6(t['warmup_us'])}, Inference (avg): {g6(t['avg_us'])}"
    )
    note = (
        "Note: as the benchmark tool itself affects memory footprint, the following is only "
        "APPROXIMATE to the actual memory footprint of the model at runtime. Take the information "
        "at your discretion."
    )
    done, total = nodes
    name = {"gpu": "GPU", "nnapi": "NNAPI"}.get(delegate)
    applied = []
    if name:
        applied.append(f"Created TensorFlow Lite delegate for {name}.")
        if delegate == "gpu":
            applied.append(
                f"Replacing {done} out of {total} node(s) with delegate (TfLiteGpuDelegateV2) "
                "node, yielding 1 partitions for the whole graph."
            )
        how = {
            "full": f"Explicitly applied {name} delegate, and the model graph will be completely "
            "executed by the delegate.",
            "partial": f"Explicitly applied {name} delegate, and the model graph will be partially "
            "executed by the delegate w/ 3 delegate kernels.",
            "none": f"Though {name} delegate is explicitly applied, the model graph will not be "
            "executed by the delegate.",
        }[t["delegation"]]
        applied.append(how)
    else:
        applied += [
            "Created TensorFlow Lite XNNPACK delegate for CPU.",
            f"Replacing {total} out of {total} node(s) with delegate (TfLiteXNNPackDelegate) node, "
            "yielding 1 partitions for the whole graph.",
        ]
    if fmt == "plain":  # TF 2.4 as in the lp6m/yolov5s_android README
        return [
            "STARTING!",
            f"Num threads: [{t['threads']}]",
            f"Graph: [{graph}]",
            f"Loaded model {graph}",
            *applied,
            _count_line(timed, False),
            summary,
            note,
            f"Peak memory footprint (MB): init={g6(t['mem_init'])} overall={g6(t['mem_overall'])}",
        ]
    body = [
        "STARTING!",
        "Log parameter values verbosely: [0]",
        f"Min num runs: [{t['runs']}]",
        f"Num threads: [{t['threads']}]",
        f"Graph: [{graph}]",
        f"#threads used for CPU inference: [{t['threads']}]",
        f"Loaded model {graph}",
        "Initialized TensorFlow Lite runtime.",
        *applied,
        "The input model file size (MB): 1.02345",
        f"Initialized session in {g6(t['init_us'] / 1000)}ms.",
        f"Running benchmark for at least {t['warmup_runs']} iterations and at least 0.5 seconds "
        "but terminate if exceeding 150 seconds.",
        _count_line(warm, True),
        "",
        f"Running benchmark for at least {t['runs']} iterations and at least 1 seconds but "
        "terminate if exceeding 150 seconds.",
        _count_line(timed, True),
        "",
    ]
    if fmt == "litert":
        ms = lambda us: f"{us / 1000:.2f}"  # noqa: E731
        block = [
            "",
            "========== BENCHMARK RESULTS ==========",
            f"Model initialization: {ms(t['init_us'])} ms",
            f"Warmup (first):       {ms(t['first_us'])} ms",
            f"Warmup (avg):         {ms(t['warmup_us'])} ms ({t['warmup_runs']} runs)",
            f"Inference (avg):      {ms(t['avg_us'])} ms ({t['runs']} runs)",
            f"Inference (min):      {ms(timed['min'])} ms",
            f"Inference (max):      {ms(timed['max'])} ms",
            f"Inference (std):      {ms(timed['std'])}",
            "Throughput:           118.20 MB/s",
            "",
            "Memory Usage:",
            f"Init footprint:       {t['mem_init']:.2f} MB",
            f"Overall footprint:    {t['mem_overall']:.2f} MB",
            f"Peak memory:          {t['peak_mb']:.2f} MB",
            "======================================",
            "",
        ]
        tagged = [f"INFO: {ln}" if ln else ln for ln in body]
        return tagged + [
            f"INFO: [benchmark_litert_model.h:{80 + i}] {ln}" for i, ln in enumerate(block)
        ]
    body += [
        summary,
        note,
        f"Memory footprint delta from the start of the tool (MB): init={g6(t['mem_init'])} "
        f"overall={g6(t['mem_overall'])}",
        f"Overall peak memory footprint (MB) via periodic monitoring: {g6(t['peak_mb'])}",
        "Memory status at the end of exeution:",
        "- VmRSS              : 61 MB",
        "+ RssAnnon           : 30 MB",
        "+ RssFile + RssShmem : 31 MB",
    ]
    if fmt == "logcat":  # the benchmark APK's lines as `adb logcat` shows them
        return [
            f"05-30 15:16:{44 + i // 60:02d}.{i % 1000:03d}  3380  3380 I tflite  : {ln}"
            for i, ln in enumerate(body)
        ]
    level = {"Replacing": "VERBOSE"}
    return [f"{level.get(ln.split(' ', 1)[0], 'INFO')}: {ln}" if ln else ln for ln in body]


def gpu_failure_lines(graph: str) -> list[str]:
    """benchmark_model when the GPU delegate cannot take the graph (exit status 1)."""
    return [
        "INFO: STARTING!",
        f"INFO: Graph: [{graph}]",
        f"INFO: Loaded model {graph}",
        "INFO: Initialized TensorFlow Lite runtime.",
        "INFO: Created TensorFlow Lite delegate for GPU.",
        "INFO: GPU delegate created.",
        "ERROR: Following operations are not supported by GPU delegate:",
        "GATHER_ND: Operation is not supported.",
        "ERROR: TfLiteGpuDelegate Prepare: Failed to build program executable",
        "ERROR: Node number 48 (TfLiteGpuDelegateV2) failed to prepare.",
        "ERROR: Restored original execution plan after delegate application failure.",
        "Failed to apply GPU delegate.",
        "Benchmarking failed.",
    ]


def inference_diff_lines(
    errors: list[float], ref_us: float, test_us: float, runs: int
) -> list[str]:
    """The output of TensorFlow's inference_diff (run_eval) with one OutputDiff line per output."""
    lines = [
        "INFO: Initialized TensorFlow Lite runtime.",
        "INFO: Created TensorFlow Lite delegate for GPU.",
        f"INFO: Num evaluation runs: {runs}",
        f"INFO: Reference run latency: avg={g6(ref_us)}(us), std_dev={int(ref_us * 0.01)}(us)",
        f"INFO: Test run latency: avg={g6(test_us)}(us), std_dev={int(test_us * 0.02)}(us)",
    ]
    lines += [
        f"INFO: OutputDiff[{i}]: avg_error={g6(e)}, std_dev={g6(e / 4)}"
        for i, e in enumerate(errors)
    ]
    return lines
