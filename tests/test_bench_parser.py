"""``parse_benchmark_output`` on every real output in ../shared/fixtures/benchmark_model, and more.

Also: telling TensorFlow's and LiteRT's ``benchmark_model`` apart from their ``--help``, LiteRT's
output (the fake tool's, written from its source), and "Unconsumed cmdline flags" as an error.

The fixture files are documentation pages and issue threads quoting benchmark_model; their fenced
blocks (or "## excerpt" sections) are the tool's outputs, cut exactly as the sources cut them.
"""

import math
from pathlib import Path

import pytest

from tests.fakes.tools import LITERT_TOOL, help_lines, litert_lines, litert_refused_lines
from tests.fakes.world import fixtures_dir
from vosx.android_bench import (
    BenchmarkRunError,
    parse_benchmark_output,
    parse_inference_diff,
    tools,
)
from vosx.android_bench.benchmark_output import parse_op_profile, strip_prefix
from vosx.android_bench.tools import parse_help
from vosx.errors import BenchmarkError


def blocks(path: Path) -> list[str]:
    """The fenced code blocks of a fixture file, or its "## excerpt" sections when it has none."""
    text = path.read_text()
    out, cur = [], None
    for line in text.splitlines():
        if line.strip().startswith("```"):
            if cur is None:
                cur = []
            else:
                out.append("\n".join(cur))
                cur = None
        elif cur is not None:
            cur.append(line)
    return out or text.split("## excerpt")[1:]


def fixture(name: str) -> list[str]:
    return blocks(fixtures_dir("benchmark_model", name))


def fixture_files() -> list[Path]:
    return sorted(fixtures_dir("benchmark_model").glob("*.txt"))


def test_every_fixture_file_is_read():
    files = fixture_files()
    assert len(files) >= 4
    for f in files:
        parsed = 0
        for b in blocks(f):
            try:
                r = parse_benchmark_output(b)
            except BenchmarkRunError as e:  # commands, cut excerpts, failed runs
                assert "output ends:" in str(e)
                continue
            parsed += 1
            assert r.inference_avg_us > 0
        assert parsed >= 1, f"{f.name}: no block parsed"


def test_op_profiling_readme_sample():
    r = parse_benchmark_output(fixture("docs_litert_benchmark_README_op_profiling_sample.txt")[1])
    # "Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9" (old form)
    assert (r.inference_avg_us, r.init_us, r.warmup_avg_us) == (79760.9, 38467.0, 83235.0)
    assert r.first_inference_us is None
    assert r.inference_count is None  # only the profiler's "Timings (microseconds)" line
    tables = {row.table for row in r.op_profile}
    assert tables == {"run_order", "top_by_computation_time", "summary_by_node_type"}
    run_order = [row for row in r.op_profile if row.table == "run_order"]
    assert len(run_order) == 31
    first = run_order[0]
    assert (first.node_type, first.start_ms, first.first_ms, first.avg_ms) == (
        "CONV_2D",
        0.0,
        4.269,
        4.269,
    )
    assert (first.percent, first.cdf_percent, first.name) == (
        0.107,
        0.107,
        "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]",
    )
    by_type = [row for row in r.op_profile if row.table == "summary_by_node_type"]
    assert [(b.node_type, b.count, b.avg_ms) for b in by_type][:2] == [
        ("CONV_2D", 15, 1.406),
        ("DEPTHWISE_CONV_2D", 13, 0.169),
    ]
    assert by_type[0].name is None and by_type[0].percent == 89.270


def test_docs_logcat_summary_line():
    block = next(
        b for b in fixture("docs_litert_measurement_md_apk_logcat_line.txt") if "tflite  :" in b
    )
    r = parse_benchmark_output(block)
    assert r.init_us == 5685 and r.first_inference_us == 18535
    assert r.warmup_avg_us == 14462.3 and r.inference_avg_us == 14575.2


def test_apk_logcat_excerpts_nnapi_partial():
    a, b = fixture("github_issue_tensorflow_56301_android_apk_nnapi_summary_and_memory.txt")
    r = parse_benchmark_output(a)
    assert r.delegation == "partial"
    assert (r.init_us, r.first_inference_us, r.warmup_avg_us, r.inference_avg_us) == (
        126059,
        32942,
        12581.9,
        12167.6,
    )
    # the timed count= line (75 runs), not the warm-up one (40 runs)
    assert (r.inference_count, r.inference_min_us, r.inference_max_us, r.inference_std_us) == (
        75,
        11787,
        13649,
        325,
    )
    with pytest.raises(BenchmarkRunError, match="no 'Inference timings' summary") as e:
        parse_benchmark_output(b)  # the memory note and init profile only
    assert "ModifyGraphWithDelegate" in e.value.output_tail
    init_rows = parse_op_profile(b)
    assert [(x.section, x.node_type, x.first_ms, x.mem_kb, x.times_called) for x in init_rows] == [
        ("init", "ModifyGraphWithDelegate", 54.571, 1132.0, 1),
        ("init", "AllocateTensors", 2.833, 0.0, 2),
    ]
    both = parse_benchmark_output(a + "\n" + b)
    assert (both.memory_init_mb, both.memory_overall_mb) == (2.03516, 2.03516)
    assert len(both.op_profile) == 2


def test_yolov5_readme_runs():
    bs = fixture("github_lp6m_yolov5s_android_benchmark_README_mi11_android_nnapi_gpu_opprof.txt")
    results = []
    for b in bs:
        try:
            results.append(parse_benchmark_output(b))
        except BenchmarkRunError:
            pass
    cpu_fp32, gpu_fp32, gpu_fp16, cpu_int8 = results
    assert cpu_fp32.inference_avg_us == 249684 and cpu_fp32.inference_count == 50
    assert (cpu_fp32.inference_min_us, cpu_fp32.inference_max_us, cpu_fp32.inference_std_us) == (
        247067,
        254474,
        1442,
    )
    # the older "Peak memory footprint (MB): init=... overall=..." line
    assert (cpu_fp32.memory_init_mb, cpu_fp32.memory_overall_mb) == (4.92969, 138.809)
    assert cpu_fp32.peak_memory_mb is None
    assert gpu_fp32.init_us == 404292 and gpu_fp16.inference_avg_us == 92571.2
    assert cpu_int8.first_inference_us == 152949 and cpu_int8.memory_overall_mb == 36.9883


def test_yolov5_profile_and_failures():
    bs = fixture("github_lp6m_yolov5s_android_benchmark_README_mi11_android_nnapi_gpu_opprof.txt")
    profile = next(b for b in bs if "Operator-wise Profiling Info" in b)
    rows = parse_op_profile(profile)
    assert {r.section for r in rows} == {"init", "run"}
    run_order = [r for r in rows if r.section == "run" and r.table == "run_order"]
    assert len(run_order) == 11
    nnapi = [r for r in run_order if r.node_type == "TfLiteNnapiDelegate"]
    assert (
        nnapi[0].name
        == "[model/tf.nn.silu_16/mul, model/tf.nn.silu_26/mul, model/tf.nn.silu_35/mul]:231"
    )
    assert nnapi[0].avg_ms == 79.010 and nnapi[0].times_called == 1
    failures = [b for b in bs if "Benchmarking failed." in b]
    assert len(failures) == 2
    with pytest.raises(BenchmarkRunError, match="ANEURALNETWORKS_OP_FAILED") as e:
        parse_benchmark_output(failures[0])
    assert e.value.output_tail.endswith("Failed to apply NNAPI delegate. | Benchmarking failed.")
    assert isinstance(e.value, BenchmarkError)
    with pytest.raises(BenchmarkRunError, match="ANEURALNETWORKS_BAD_DATA"):
        parse_benchmark_output(failures[1])


SUMMARY = (
    "Inference timings in us: Init: {init}, First inference: 20, Warmup (avg): 30, "
    "Inference (avg): {avg}"
)
MODERN = """\
INFO: STARTING!
INFO: Graph: [/data/local/tmp/decoder_float16.tflite]
INFO: Loaded model /data/local/tmp/decoder_float16.tflite
INFO: Created TensorFlow Lite delegate for GPU.
VERBOSE: Replacing 58 out of 58 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 1 partitions for the whole graph.
INFO: Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate.
INFO: Initialized session in 842.225ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=13 first=115098 curr=36666 min=32079 max=115098 avg=40199.8 std=21694 p5=32079 median=36666 p95=115098

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=1694 first=35688 curr=35301 min=34118 max=38903 avg=35402.7 std=541 p5=34698 median=35355 p95=36222

INFO: Inference timings in us: Init: 842225, First inference: 115098, Warmup (avg): 40199.8, Inference (avg): 35402.7
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=170.5 overall=190.25
INFO: Overall peak memory footprint (MB) via periodic monitoring: 201.129
INFO: Memory status at the end of exeution:
INFO: - VmRSS              : 180 MB
"""  # noqa: E501


def test_info_prefix_percentiles_memory_and_delegation():
    r = parse_benchmark_output(MODERN)
    assert (r.init_us, r.first_inference_us, r.warmup_avg_us, r.inference_avg_us) == (
        842225,
        115098,
        40199.8,
        35402.7,
    )
    assert (r.inference_count, r.inference_min_us, r.inference_max_us) == (1694, 34118, 38903)
    assert (r.inference_std_us, r.inference_median_us) == (541, 35355)
    assert (r.memory_init_mb, r.memory_overall_mb, r.peak_memory_mb) == (170.5, 190.25, 201.129)
    assert r.delegation == "full" and r.delegate_nodes == (58, 58)
    assert r.source == "benchmark_model"
    d = r.to_dict()
    assert d["delegate_nodes"] == [58, 58] and d["op_profile"] == []


@pytest.mark.parametrize(
    "prefix",
    [
        "05-30 15:16:46.366  3380  3380 I tflite  : ",  # logcat threadtime
        "05-30 15:16:46.366 I/tflite  ( 3380): ",  # logcat time
        "I/tflite  ( 3380): ",  # logcat brief
        "",
    ],
)
def test_logcat_prefixes(prefix):
    text = "\n".join(prefix + strip_prefix(ln) for ln in MODERN.splitlines())
    r = parse_benchmark_output(text)
    assert r.inference_avg_us == 35402.7 and r.inference_count == 1694
    assert r.peak_memory_mb == 201.129 and r.delegation == "full"


def test_scientific_notation():
    text = (
        "count=3 first=1234567 curr=1200000 min=1190000 max=1234567 avg=1.20833e+06 std=19817\n"
        "count=20 first=1.1e6 curr=1100000 min=1.09e+06 max=1.2E6 avg=1.15e+06 std=2.5e4\n"
        "Inference timings in us: Init: 2.5e+06, First inference: 1234567, "
        "Warmup (avg): 1.20833e+06, Inference (avg): 1.15e+06\n"
    )
    r = parse_benchmark_output(text)
    assert r.init_us == 2.5e6 and r.inference_avg_us == 1.15e6 and r.warmup_avg_us == 1.20833e6
    assert (r.inference_count, r.inference_min_us, r.inference_max_us, r.inference_std_us) == (
        20,
        1.09e6,
        1.2e6,
        2.5e4,
    )


@pytest.mark.parametrize(
    "line, count, value",
    [
        ("count=50 curr=1234(all same)", 50, 1234.0),  # every run the same time
        ("count=1 curr=729391", 1, 729391.0),  # a single run prints no first/min/max
        ("count=7 curr=900 min=880 max=950 avg=1234 std=20", 7, None),  # no first=: timed avg 1234
    ],
)
def test_count_line_variants(line, count, value):
    avg = value if value is not None else 1234.0
    text = f"{line}\n{SUMMARY.format(init=10, avg=f'{avg:g}')}\n"
    r = parse_benchmark_output(text)
    assert r.inference_count == count
    if value is not None:
        assert r.inference_min_us == r.inference_max_us == value and r.inference_std_us == 0
    else:
        assert (r.inference_min_us, r.inference_max_us, r.inference_std_us) == (880, 950, 20)


def test_warmup_count_line_is_not_the_timed_one():
    text = (
        "count=4 first=50000 curr=11000 min=10000 max=50000 avg=20000 std=17000\n"
        "Inference timings in us: Init: 100, First inference: 50000, Warmup (avg): 20000, "
        "Inference (avg): 10500\n"
    )
    r = parse_benchmark_output(text)
    assert r.inference_avg_us == 10500 and r.inference_count is None


LITERT = """\
INFO: [litert_environment.cc:42] Loading model from: /data/local/tmp/key_encoder_float16.tflite
INFO: count=5 first=21000 curr=9100 min=9000 max=21000 avg=11420 std=4790
INFO: count=50 first=9050 curr=9010 min=8900 max=9800 avg=9123.4 std=140
INFO: [benchmark_litert_model.h:81] 
========== BENCHMARK RESULTS ==========
INFO: [benchmark_litert_model.h:82] Model initialization: 312.50 ms
INFO: [benchmark_litert_model.h:83] Warmup (first):       21.00 ms
INFO: [benchmark_litert_model.h:85] Warmup (avg):         11.42 ms (5 runs)
INFO: [benchmark_litert_model.h:87] Inference (avg):      9.12 ms (50 runs)
INFO: [benchmark_litert_model.h:90] Inference (min):      8.90 ms
INFO: [benchmark_litert_model.h:92] Inference (max):      9.80 ms
INFO: [benchmark_litert_model.h:94] Inference (std):      0.14
INFO: [benchmark_litert_model.h:101] Throughput:           118.20 MB/s
INFO: [benchmark_litert_model.h:110] 
Memory Usage:
INFO: [benchmark_litert_model.h:111] Init footprint:       12.50 MB
INFO: [benchmark_litert_model.h:113] Overall footprint:    40.25 MB
INFO: [benchmark_litert_model.h:118] Peak memory:          55.10 MB
INFO: [benchmark_litert_model.h:124] ======================================
"""  # noqa: W291


def test_litert_results_block_in_ms():
    r = parse_benchmark_output(LITERT)
    assert r.source == "litert"
    assert math.isclose(r.init_us, 312500) and math.isclose(r.first_inference_us, 21000)
    assert math.isclose(r.warmup_avg_us, 11420) and math.isclose(r.inference_avg_us, 9120)
    assert (r.memory_init_mb, r.memory_overall_mb, r.peak_memory_mb) == (12.5, 40.25, 55.1)
    # the block rounds to 0.01 ms; the timed count= line (avg 9123.4 us) still matches it
    assert r.inference_count == 50 and r.inference_min_us == 8900 and r.inference_std_us == 140
    only_block = "\n".join(ln for ln in LITERT.splitlines() if "count=" not in ln)
    r2 = parse_benchmark_output(only_block)
    assert r2.inference_count == 50 and math.isclose(r2.inference_std_us, 140)
    assert math.isclose(r2.inference_min_us, 8900) and math.isclose(r2.inference_max_us, 9800)


NOT_EXECUTED = "the model graph will not be executed by the delegate."
REPLACING = "Replacing {} out of 12 node(s) with delegate ({}) node, yielding 1 partitions."


@pytest.mark.parametrize(
    "lines, expected",
    [
        ([f"INFO: Though GPU delegate is explicitly applied, {NOT_EXECUTED}"], "none"),
        ([f"VERBOSE: {REPLACING.format(10, 'TfLiteGpuDelegateV2')}"], "partial"),
        ([f"INFO: {REPLACING.format(12, 'TfLiteXNNPackDelegate')}"], None),
        (
            [
                "INFO: Explicitly applied GPU delegate, and the model graph will be completely "
                "executed by the delegate.",
                f"INFO: Though NNAPI delegate is explicitly applied, {NOT_EXECUTED}",
            ],
            "full",
        ),
    ],
)
def test_delegation(lines, expected):
    text = "\n".join([*lines, SUMMARY.format(init=1, avg=4)])
    assert parse_benchmark_output(text).delegation == expected


def test_missing_summary_and_empty_output():
    cut = "\n".join(MODERN.splitlines()[:10])
    with pytest.raises(BenchmarkRunError, match="no 'Inference timings' summary") as e:
        parse_benchmark_output(cut)
    assert "count=13" in str(e.value)  # the message carries the tail of the output
    with pytest.raises(BenchmarkRunError, match=r"\(no output\)"):
        parse_benchmark_output("")


def test_gpu_delegate_failure_keeps_the_reason_and_tail():
    text = (
        "INFO: Created TensorFlow Lite delegate for GPU.\n"
        "ERROR: Following operations are not supported by GPU delegate:\n"
        "GATHER_ND: Operation is not supported.\n"
        "ERROR: Restored original execution plan after delegate application failure.\n"
        "Failed to apply GPU delegate.\nBenchmarking failed.\n"
    )
    with pytest.raises(BenchmarkRunError) as e:
        parse_benchmark_output(text)
    msg = str(e.value)
    assert msg.startswith("benchmark_model failed: Following operations are not supported by GPU")
    assert "\n" not in msg and "GATHER_ND" in e.value.output_tail


def test_inference_diff():
    text = (
        "INFO: Num evaluation runs: 20\n"
        "INFO: Reference run latency: avg=25210.4(us), std_dev=252(us)\n"
        "INFO: Test run latency: avg=4120.3(us), std_dev=82(us)\n"
        "INFO: OutputDiff[0]: avg_error=1.2e-06, std_dev=3e-07\n"
        "INFO: OutputDiff[1]: avg_error=0.31, std_dev=0.05\n"
    )
    d = parse_inference_diff(text)
    assert d.avg_errors == (1.2e-6, 0.31) and d.max_error == 0.31
    assert (d.reference_avg_us, d.test_avg_us, d.num_runs) == (25210.4, 4120.3, 20)
    assert (
        parse_inference_diff("INFO: OutputDiff[0]: avg_error=nan, std_dev=nan").max_error
        == math.inf
    )
    with pytest.raises(BenchmarkRunError, match="no OutputDiff"):
        parse_inference_diff(
            "ERROR: Failed to apply GPU delegate.\nERROR: Could not evaluate model!\n"
        )


def test_help_tells_the_two_tools_apart():
    tf = parse_help("\n".join(help_lines("benchmark_model", "/data/local/tmp/benchmark_model")))
    lt = parse_help("\n".join(help_lines(LITERT_TOOL, "/data/local/tmp/benchmark_model")))
    assert (tf.spec, lt.spec) == (tools.TENSORFLOW, tools.LITERT)
    assert {"use_nnapi", "gpu_precision_loss_allowed"} <= tf.flags and "allow_fp16" not in tf.flags
    assert {"use_cpu", "require_full_delegation", "allow_fp16"} <= lt.flags
    assert "use_nnapi" not in lt.flags and lt.label == "LiteRT's benchmark_model (CompiledModel)"
    with pytest.raises(BenchmarkRunError, match="listed no --graph flag"):
        parse_help("/system/bin/sh: benchmark_model: can't execute: Exec format error")
    both = "\n".join(help_lines(LITERT_TOOL, "b") + ["\t--use_xnnpack=false\tbool\toptional\tx"])
    with pytest.raises(BenchmarkRunError, match="fits neither TensorFlow's tool"):
        parse_help(both)


def test_litert_tool_output():
    t = {
        "init_us": 350000.0, "first_us": 30600.0, "warmup_us": 6732.0, "avg_us": 6120.0,
        "runs": 10, "warmup_runs": 2, "threads": 4, "mem_init": 12.5, "mem_overall": 40.25,
        "peak_mb": 55.1,
    }  # fmt: skip
    r = parse_benchmark_output("\n".join(litert_lines("/d/key_encoder_float32.tflite", t)))
    assert r.source == "litert" and math.isclose(r.inference_avg_us, 6120)
    assert math.isclose(r.init_us, 350000) and math.isclose(r.first_inference_us, 30600)
    assert r.inference_count == 10 and r.inference_min_us == 6120 - 2 * 122
    assert (r.memory_init_mb, r.memory_overall_mb, r.peak_memory_mb) == (12.5, 40.25, 55.1)
    assert r.delegation is None  # LiteRT prints no delegate lines: bench knows from its flags
    with pytest.raises(BenchmarkRunError, match=r"benchmark_model failed: .*Failed to compile"):
        parse_benchmark_output("\n".join(litert_refused_lines("/d/g.tflite")))


# As TensorFlow's tool printed it in a published result (an unknown --allow_fp16).
UNCONSUMED = "Unconsumed cmdline flags: --allow_fp16"


def test_unconsumed_flags_are_an_error():
    cpu = next(
        b
        for b in fixture(
            "github_lp6m_yolov5s_android_benchmark_README_mi11_android_nnapi_gpu_opprof.txt"
        )
        if b.startswith("count=50 first=249042")
    )
    assert parse_benchmark_output(cpu).inference_avg_us == 249684
    for line in (UNCONSUMED, "WARNING: " + UNCONSUMED + " --use_nnapi=true"):
        with pytest.raises(BenchmarkRunError) as e:
            parse_benchmark_output("STARTING!\n" + line + "\n" + cpu)
        msg = str(e.value)
        assert msg.startswith("benchmark_model ignored flags it does not know (--allow_fp16")
        assert "\n" not in msg
    with pytest.raises(BenchmarkRunError, match=r"ignored flags .*--gpu_precision_loss_allowed"):
        parse_inference_diff(
            "WARNING: Unconsumed cmdline flags: --gpu_precision_loss_allowed=false\n"
            "INFO: OutputDiff[0]: avg_error=1.2e-06, std_dev=3e-07\n"
        )
