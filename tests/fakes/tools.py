"""Fake ``benchmark_model`` tools and ``inference_diff`` for the fake device: real output formats.

TensorFlow's tool follows the real outputs in ../shared/fixtures/benchmark_model/: TF 2.x ``INFO:``
lines with percentiles, the older un-prefixed TF 2.4 form with "Peak memory footprint (MB)", and
Android logcat lines as the benchmark APK prints them. LiteRT's CompiledModel tool (fake marker
``litert_benchmark_model``) follows its source (litert/tools/benchmark_litert_model.h/.cc, on top
of tflite's BenchmarkModel): ``LITERT_LOG`` lines tagged ``[file:line]`` and the "BENCHMARK
RESULTS" block in milliseconds; the fixtures hold no output of it. Both tools print tflite's
``Flags::Usage`` for ``--help`` (the flag lists below are theirs) and warn "Unconsumed cmdline
flags" about flags they do not list. Numbers are printed like C++ ostreams: integers for int64
stats, 6 significant digits (scientific above 1e6) for doubles. A fake binary is a 64-byte aarch64
ELF header plus a marker naming the tool.
"""

import struct

FAKE_MARKER = b"\nVOSX_FAKE_TOOL="
LITERT_TOOL = "litert_benchmark_model"  # the marker of LiteRT's tool (its device name is the same)

# (name, type, default) of tflite's BenchmarkModel::GetFlags, shared by both tools.
_BASE_FLAGS = [
    ("num_runs", "int32", "50"),
    ("min_secs", "float", "1"),
    ("max_secs", "float", "150"),
    ("run_delay", "float", "-1"),
    ("run_frequency", "float", "-1"),
    ("num_threads", "int32", "-1"),
    ("use_caching", "bool", "false"),
    ("benchmark_name", "string", ""),
    ("output_prefix", "string", ""),
    ("warmup_runs", "int32", "1"),
    ("warmup_min_secs", "float", "0.5"),
    ("verbose", "bool", "false"),
    ("dry_run", "bool", "false"),
    ("report_peak_memory_footprint", "bool", "false"),
    ("memory_footprint_check_interval_ms", "int32", "50"),
    ("gpu_invoke_loop_times", "int32", "1"),
]
# BenchmarkTfLiteModel's own flags and its delegate providers (default, GPU, NNAPI, XNNPACK, ...).
TF_FLAGS = _BASE_FLAGS + [
    ("graph", "string", ""),
    ("signature_to_run_for", "string", ""),
    ("list_signatures", "bool", "false"),
    ("input_layer", "string", ""),
    ("input_layer_shape", "string", ""),
    ("input_layer_value_range", "string", ""),
    ("input_layer_value_files", "string", ""),
    ("allow_dynamic_profiling_buffer_increase", "bool", "false"),
    ("require_full_delegation", "bool", "false"),
    ("enable_op_profiling", "bool", "false"),
    ("max_profiling_buffer_entries", "int32", "1024"),
    ("profiling_output_csv_file", "string", ""),
    ("print_preinvoke_state", "bool", "false"),
    ("print_postinvoke_state", "bool", "false"),
    ("release_dynamic_tensors", "bool", "false"),
    ("optimize_memory_for_large_tensors", "int32", "0"),
    ("disable_delegate_clustering", "bool", "false"),
    ("help", "bool", "false"),
    ("max_delegated_partitions", "int32", "0"),
    ("min_nodes_per_partition", "int32", "0"),
    ("delegate_serialize_dir", "string", ""),
    ("delegate_serialize_token", "string", ""),
    ("use_gpu", "bool", "false"),
    ("gpu_precision_loss_allowed", "bool", "true"),
    ("gpu_experimental_enable_quant", "bool", "true"),
    ("gpu_inference_for_sustained_speed", "bool", "false"),
    ("gpu_backend", "string", ""),
    ("gpu_wait_type", "string", ""),
    ("use_nnapi", "bool", "false"),
    ("nnapi_execution_preference", "string", ""),
    ("nnapi_execution_priority", "string", ""),
    ("nnapi_accelerator_name", "string", ""),
    ("disable_nnapi_cpu", "bool", "true"),
    ("nnapi_allow_fp16", "bool", "false"),
    ("nnapi_allow_dynamic_dimensions", "bool", "false"),
    ("nnapi_use_burst_mode", "bool", "false"),
    ("use_xnnpack", "bool", "false"),
    ("xnnpack_force_fp16", "bool", "false"),
    ("use_hexagon", "bool", "false"),
    ("external_delegate_path", "string", ""),
    ("external_delegate_options", "string", ""),
]
# BenchmarkLiteRtModel::GetFlags: no delegate providers (no NNAPI, no XNNPACK flags, no --help).
LITERT_FLAGS = _BASE_FLAGS + [
    ("graph", "string", ""),
    ("signature_to_run_for", "string", ""),
    ("use_cpu", "bool", "true"),
    ("use_gpu", "bool", "false"),
    ("use_npu", "bool", "false"),
    ("dispatch_library_path", "string", ""),
    ("compiler_plugin_library_path", "string", ""),
    ("require_full_delegation", "bool", "false"),
    ("use_profiler", "bool", "false"),
    ("gpu_backend", "string", ""),
    ("allow_fp16", "bool", "true"),
    ("result_file_path", "string", ""),
]


def tool_flags(tool: str) -> list[tuple[str, str, str]]:
    """The flag list of a fake benchmark tool (``benchmark_model`` or ``LITERT_TOOL``)."""
    return LITERT_FLAGS if tool == LITERT_TOOL else TF_FLAGS


def help_lines(tool: str, argv0: str) -> list[str]:
    """What ``--help`` prints: STARTING!, tflite's ``Flags::Usage`` as an ERROR log, the failure."""
    flags = tool_flags(tool)
    names = [f"--{n}={d}" for n, _, d in flags]
    width = max(len(x) for x in names)
    usage = [f"\t{x:<{width}}\t{t}\toptional\t{n.replace('_', ' ')}" for x, (n, t, _) in
             zip(names, flags, strict=True)]  # fmt: skip
    return ["INFO: STARTING!", f"ERROR: usage: {argv0} <flags>", "Flags:", *usage, "",
            "ERROR: Benchmarking failed."]  # fmt: skip


def unconsumed_line(args: list[str]) -> str:
    """tflite's BenchmarkModel::ParseFlags warning about flags no parser took."""
    return "WARNING: Unconsumed cmdline flags: " + " ".join(args)


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


def litert_lines(graph: str, t: dict) -> list[str]:
    """The output of one successful run of LiteRT's tool (``t`` as for ``benchmark_lines``)."""
    warm = _stats(t["warmup_us"], t["warmup_runs"], t["first_us"])
    timed = _stats(t["avg_us"], t["runs"], t["avg_us"] * 1.01)
    ms = lambda us: f"{us / 1000:.2f}"  # noqa: E731 - "%.2f" of a value in ms

    def tag(line: int, text: str, file: str = "benchmark_litert_model.h") -> str:
        return f"INFO: [{file}:{line}] {text}"

    return [
        "INFO: STARTING!",
        "INFO: Log parameter values verbosely: [0]",
        f"INFO: Min num runs: [{t['runs']}]",
        f"INFO: Num threads: [{t['threads']}]",
        f"INFO: Min warmup runs: [{t['warmup_runs']}]",
        "INFO: Report the peak memory footprint: [1]",
        tag(112, f"Loading model from: {graph}", "benchmark_litert_model.cc"),
        tag(86, "dispatch_library_path: ", "benchmark_litert_model.cc"),
        tag(89, "compiler_plugin_library_path: ", "benchmark_litert_model.cc"),
        tag(36, "Creating LiteRT environment with options", "environment.cc"),
        "INFO: The input model file size (MB): 1.02345",
        f"INFO: Initialized session in {g6(t['init_us'] / 1000)}ms.",
        f"INFO: Running benchmark for at least {t['warmup_runs']} iterations and at least 0.5 "
        "seconds but terminate if exceeding 150 seconds.",
        f"INFO: {_count_line(warm, True)}",
        "",
        f"INFO: Running benchmark for at least {t['runs']} iterations and at least 1 seconds but "
        "terminate if exceeding 150 seconds.",
        f"INFO: {_count_line(timed, True)}",
        "",
        tag(71, ""),
        "========== BENCHMARK RESULTS ==========",
        tag(72, f"Model initialization: {ms(t['init_us'])} ms"),
        tag(73, f"Warmup (first):       {ms(t['first_us'])} ms"),
        tag(75, f"Warmup (avg):         {ms(t['warmup_us'])} ms ({t['warmup_runs']} runs)"),
        tag(77, f"Inference (avg):      {ms(t['avg_us'])} ms ({t['runs']} runs)"),
        tag(81, f"Inference (min):      {ms(timed['min'])} ms"),
        tag(83, f"Inference (max):      {ms(timed['max'])} ms"),
        tag(85, f"Inference (std):      {ms(timed['std'])}"),
        tag(93, "Throughput:           118.20 MB/s"),
        tag(102, ""),
        "Memory Usage:",
        tag(103, f"Init footprint:       {t['mem_init']:.2f} MB"),
        tag(105, f"Overall footprint:    {t['mem_overall']:.2f} MB"),
        tag(110, f"Peak memory:          {t['peak_mb']:.2f} MB"),
        tag(116, "======================================"),
        "",
    ]


def litert_refused_lines(graph: str) -> list[str]:
    """LiteRT's tool when the GPU-only compile (full delegation required) refuses the graph."""
    return [
        "INFO: STARTING!",
        f"INFO: [benchmark_litert_model.cc:112] Loading model from: {graph}",
        "ERROR: [benchmark_litert_model.cc:131] Failed to compile model.",
        "ERROR: Benchmarking failed.",
    ]


def litert_abort_lines() -> list[str]:
    """LiteRT's tool asked for full delegation while --use_cpu keeps its default (true)."""
    return [
        "INFO: STARTING!",
        "ERROR: [benchmark_litert_model.cc:52] Requesting full delegation and CPU acceleration "
        "are incompatible.",
        "Aborted",
    ]


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
