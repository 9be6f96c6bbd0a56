"""Parse what TensorFlow's ``benchmark_model`` (or LiteRT's newer tool) prints: ``BenchmarkResult``.

Latencies are microseconds, memory is MB. Reads the plain console output, lines prefixed with
``INFO: `` (or another TFLite log level), Android logcat lines (``05-30 15:16:44.857  3380  3380 I
tflite  : ...``, ``I/tflite  ( 3380): ...``), LiteRT's ``[file.h:82]`` source tags, the ``count=``
statistics line in all its variants, both memory lines, the LiteRT "BENCHMARK RESULTS" block (in
milliseconds, converted here), and ``--enable_op_profiling`` tables (kept as rows). Also parses the
``OutputDiff[i]: avg_error=...`` lines of TensorFlow's ``inference_diff`` tool and the flags a
tool's ``--help`` lists (which tool that is, is ``tools.parse_help``'s business).
"""

import math
import re
from dataclasses import asdict, dataclass

from vosx.errors import BenchmarkError

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
TAIL_LINES = 12

_LOGCAT_PREFIXES = (
    # threadtime: "05-30 15:16:44.857  3380  3380 I tflite  : text"
    re.compile(r"^\d{2}-\d{2}\s+\d{2}:\d{2}:\d{2}\.\d+\s+\d+\s+\d+\s+[VDIWEFA]\s+[^:]*?\s*: ?"),
    # time: "05-30 15:16:44.857 I/tflite  ( 3380): text"
    re.compile(r"^\d{2}-\d{2}\s+\d{2}:\d{2}:\d{2}\.\d+\s+[VDIWEFA]/[^(]*\(\s*\d+\): ?"),
    # brief: "I/tflite  ( 3380): text"
    re.compile(r"^[VDIWEFA]/[^(]*\(\s*\d+\): ?"),
    # elided in documentation: "... tflite  : text"
    re.compile(r"^\.\.\.\s+\S+\s*: ?"),
)
_LEVEL_PREFIX = re.compile(r"^(?:INFO|WARNING|WARN|ERROR|VERBOSE|DEBUG|FATAL): ?")
_SOURCE_TAG = re.compile(r"^\[[\w./-]+:\d+\] ?")

_SUMMARY = re.compile(r"(?:Average )?[Ii]nference timings in us:\s*(.*)")
_COUNT = re.compile(r"^count=(\d+)\b(.*)$")
_MEMORY_DELTA = re.compile(
    rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):"
    rf"\s*init=({NUMBER})\s+overall=({NUMBER})"
)
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*({NUMBER})")
_APPLIED = re.compile(
    r"(?:Explicitly applied (?P<a>\S+) delegate, and the model graph will be "
    r"(?P<how>completely|partially) executed by the delegate)"
    r"|(?:Though (?P<b>\S+) delegate is explicitly applied, the model graph will not be executed)"
)
_REPLACING = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \((\w+)\)")
_FAILED = re.compile(r"Benchmarking failed\.|Failed to apply \S+ delegate|Could not evaluate model")
_TABLE_TITLE = re.compile(r"^=+ (.+?) =+$")
_LITERT_BLOCK = "BENCHMARK RESULTS"
_LITERT_MS = {
    "Model initialization": "init_us",
    "Warmup (first)": "first_inference_us",
    "Warmup (avg)": "warmup_avg_us",
    "Inference (avg)": "inference_avg_us",
    "Inference (min)": "inference_min_us",
    "Inference (max)": "inference_max_us",
    "Inference (std)": "inference_std_us",
}
_LITERT_MB = {
    "Init footprint": "memory_init_mb",
    "Overall footprint": "memory_overall_mb",
    "Peak memory": "peak_memory_mb",
}
_SUMMARY_KEYS = {
    "Init": "init_us",
    "First inference": "first_inference_us",
    "Warmup (avg)": "warmup_avg_us",
    "Warmup": "warmup_avg_us",
    "Inference (avg)": "inference_avg_us",
    "Inference": "inference_avg_us",
}
_UNCONSUMED = re.compile(r"Unconsumed cmdline flags:\s*(.*\S)")
_HELP_FLAG = re.compile(r"^\s*--([A-Za-z0-9_]+)=")
_OUTPUT_DIFF = re.compile(
    rf"OutputDiff\[(\d+)\]: avg_error=({NUMBER}|nan|inf), std_dev=({NUMBER}|nan|inf)"
)


class BenchmarkRunError(BenchmarkError):
    """A benchmark tool failed; ``output_tail`` keeps the last lines it printed."""

    def __init__(self, message: str, output_tail: str):
        super().__init__(message)
        self.output_tail = output_tail


@dataclass(frozen=True)
class OpProfileRow:
    """One row of an ``--enable_op_profiling`` table (times in ms, as the tool prints them).

    ``section`` is "init" (Profiling Info for Benchmark Initialization) or "run"; ``table`` the
    table title in snake case ("run_order", "top_by_computation_time", "summary_by_node_type").
    """

    section: str
    table: str
    node_type: str
    name: str | None
    avg_ms: float | None
    first_ms: float | None
    start_ms: float | None
    percent: float | None
    cdf_percent: float | None
    mem_kb: float | None
    times_called: int | None
    count: int | None


@dataclass(frozen=True)
class BenchmarkResult:
    """The numbers of one benchmark_model run (us and MB; None when the tool did not print them).

    ``delegation`` is "full", "partial" or "none" for the explicitly applied delegate, None when
    the output names no delegate (a CPU run).
    """

    inference_avg_us: float
    init_us: float | None = None
    first_inference_us: float | None = None
    warmup_avg_us: float | None = None
    inference_count: int | None = None
    inference_min_us: float | None = None
    inference_max_us: float | None = None
    inference_std_us: float | None = None
    inference_median_us: float | None = None
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None
    peak_memory_mb: float | None = None
    delegation: str | None = None
    delegate_nodes: tuple[int, int] | None = None  # (delegated, total) from "Replacing X out of Y"
    op_profile: tuple[OpProfileRow, ...] = ()
    source: str = "benchmark_model"  # or "litert" (BENCHMARK RESULTS block) or "host"

    def to_dict(self) -> dict:
        """JSON-ready dict (op profile rows as dicts)."""
        d = asdict(self)
        d["delegate_nodes"] = list(self.delegate_nodes) if self.delegate_nodes else None
        d["op_profile"] = [asdict(r) for r in self.op_profile]
        return d


def strip_prefix(line: str) -> str:
    """Remove a logcat prefix, a TFLite log level (``INFO: ``) and a LiteRT ``[file:line]`` tag."""
    line = line.rstrip("\r\n")
    for pat in _LOGCAT_PREFIXES:
        m = pat.match(line)
        if m:
            line = line[m.end() :]
            break
    line = _LEVEL_PREFIX.sub("", line, count=1)
    return _SOURCE_TAG.sub("", line, count=1)


def output_tail(text: str, n: int = TAIL_LINES) -> str:
    """The last ``n`` non-empty lines of ``text`` joined by " | " (one line, for error messages)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) if lines else "(no output)"


def run_failure(what: str, text: str) -> BenchmarkRunError:
    """The error of a tool run that failed: ``what`` and the output's tail on one line."""
    return BenchmarkRunError(f"{what}; output ends: {output_tail(text, 6)}", output_tail(text))


def _num(s: str) -> float:
    return float(s)


def _parse_count(rest: str, count: int) -> dict:
    """Fields of a ``count=`` line after the count: first/curr/min/max/avg/std/p5/median/p95."""
    fields = {k: float(v) for k, v in re.findall(rf"\b(\w+)=({NUMBER})", rest)}
    if "avg" not in fields and "curr" in fields:  # "count=N curr=T" or "...(all same)"
        t = fields["curr"]
        fields.update(min=t, max=t, avg=t, std=0.0)
    fields["count"] = count
    return fields


def _close(a: float, b: float, abs_tol: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=abs_tol)


def _parse_summary(body: str) -> dict:
    out = {}
    for part in body.split(","):
        key, _, value = part.partition(":")
        m = re.search(NUMBER, value)
        if key.strip() in _SUMMARY_KEYS and m:
            out[_SUMMARY_KEYS[key.strip()]] = float(m.group(0))
    return out


def _snake(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def parse_op_profile(text: str) -> tuple[OpProfileRow, ...]:
    """Rows of every ``--enable_op_profiling`` table in ``text`` (prefixes stripped)."""
    return _parse_tables([strip_prefix(ln) for ln in text.splitlines()])


def _parse_tables(lines: list[str]) -> tuple[OpProfileRow, ...]:
    """Rows of every op-profiling table, tagged with their section and table name."""
    rows: list[OpProfileRow] = []
    section = "run"
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("Profiling Info for Benchmark Initialization"):
            section = "init"
        elif line.startswith("Operator-wise Profiling Info"):
            section = "run"
        m = _TABLE_TITLE.match(line)
        if m and i + 1 < len(lines) and "[node type]" in lines[i + 1].lower():
            table = _snake(m.group(1))
            cols = [c.lower() for c in re.findall(r"\[([^\]]+)\]", lines[i + 1])]
            i += 2
            while i < len(lines) and lines[i].strip() and not _TABLE_TITLE.match(lines[i].strip()):
                parts = lines[i].split(None, len(cols) - 1)
                if len(parts) != len(cols):
                    break
                rows.append(_table_row(section, table, dict(zip(cols, parts, strict=True))))
                i += 1
            continue
        i += 1
    return tuple(rows)


def _table_row(section: str, table: str, cells: dict) -> OpProfileRow:
    def f(key: str) -> float | None:
        v = cells.get(key)
        if v is None:
            return None
        try:
            return float(v.rstrip("%"))
        except ValueError:
            return None

    def i(key: str) -> int | None:
        v = f(key)
        return None if v is None else int(v)

    return OpProfileRow(
        section=section,
        table=table,
        node_type=cells["node type"],
        name=cells.get("name"),
        avg_ms=f("avg ms"),
        first_ms=f("first"),
        start_ms=f("start"),
        percent=f("%") if "%" in cells else f("avg %"),
        cdf_percent=f("cdf%") if "cdf%" in cells else f("cdf %"),
        mem_kb=f("mem kb"),
        times_called=i("times called"),
        count=i("count"),
    )


def _delegation(lines: list[str]) -> tuple[str | None, tuple[int, int] | None]:
    """ "full" | "partial" | "none" from the "Explicitly applied" lines, else from "Replacing"."""
    verdicts = []
    nodes = None
    for line in lines:
        m = _APPLIED.search(line)
        if m:
            name = m.group("a") or m.group("b")
            if name.upper() == "XNNPACK":
                continue
            how = m.group("how")
            verdicts.append({"completely": "full", "partially": "partial"}.get(how, "none"))
        r = _REPLACING.search(line)
        if r and "xnnpack" not in r.group(3).lower():
            nodes = (int(r.group(1)), int(r.group(2)))
    for v in ("full", "partial", "none"):
        if v in verdicts:
            return v, nodes
    if nodes is not None:
        done, total = nodes
        return ("full" if done == total else "partial" if done else "none"), nodes
    return None, None


def _parse_litert_block(lines: list[str]) -> dict:
    out: dict = {}
    start = max((i for i, ln in enumerate(lines) if _LITERT_BLOCK in ln), default=None)
    if start is None:
        return out
    for line in lines[start + 1 :]:
        if line.strip().startswith("=====") and out:
            break
        key, _, value = line.partition(":")
        key = key.strip()
        m = re.match(rf"\s*({NUMBER})", value)
        if not m:
            continue
        if key in _LITERT_MS:
            out[_LITERT_MS[key]] = float(m.group(1)) * 1000.0
            runs = re.search(r"\((\d+) runs\)", value)
            if key == "Inference (avg)" and runs:
                out["inference_count"] = int(runs.group(1))
        elif key in _LITERT_MB:
            out[_LITERT_MB[key]] = float(m.group(1))
    return out


def _console_fields(lines: list[str]) -> tuple[dict, list[dict]]:
    """The summary and memory fields of TensorFlow's console output, and every ``count=`` line."""
    fields: dict = {}
    counts = []
    for line in lines:
        s = line.strip()
        m = _SUMMARY.search(s)
        if m:
            fields.update(_parse_summary(m.group(1)))
            continue
        c = _COUNT.match(s)
        if c:
            counts.append(_parse_count(c.group(2), int(c.group(1))))
            continue
        mem = _MEMORY_DELTA.search(s)
        if mem:
            fields["memory_init_mb"] = _num(mem.group(1))
            fields["memory_overall_mb"] = _num(mem.group(2))
        peak = _PEAK.search(s)
        if peak:
            fields["peak_memory_mb"] = _num(peak.group(1))
    return fields, counts


def _timed_count(counts: list[dict], avg: float, source: str) -> dict:
    """The statistics of the last ``count=`` line whose average is the summary's (else none)."""
    tol = 6.0 if source == "litert" else 1.0  # the LiteRT block rounds to 0.01 ms
    timed = next((c for c in reversed(counts) if _close(c["avg"], avg, tol)), None)
    if timed is None:
        return {}
    return {
        "inference_count": timed["count"],
        "inference_min_us": timed["min"],
        "inference_max_us": timed["max"],
        "inference_std_us": timed.get("std"),
        "inference_median_us": timed.get("median"),
    }


def parse_benchmark_output(text: str) -> BenchmarkResult:
    """Read one benchmark_model run's output (stdout and stderr together).

    Args:
        text: Everything the tool printed, with or without ``INFO:`` / logcat prefixes.

    Returns:
        The parsed result; ``inference_count`` etc. are None when no timed ``count=`` line matches
        the summary (for example in op-profiling-only excerpts).

    Raises:
        BenchmarkRunError: the tool ignored flags ("Unconsumed cmdline flags"), the run failed
            ("Benchmarking failed.", a delegate that could not be applied) or the output has no
            summary; the message carries the tail of the output.
    """
    lines = [strip_prefix(ln) for ln in text.splitlines()]
    check_consumed(text)
    failed = [ln.strip() for ln in lines if _FAILED.search(ln)]
    if failed:
        errors = [ln.strip() for ln in text.splitlines() if "ERROR" in ln]
        reason = errors[0] if errors else failed[0]
        raise run_failure(f"benchmark_model failed: {strip_prefix(reason).strip()}", text)
    fields, counts = _console_fields(lines)
    source = "benchmark_model"
    litert = _parse_litert_block(lines)
    if "inference_avg_us" not in fields and "inference_avg_us" in litert:
        source = "litert"
    for key, value in litert.items():
        fields.setdefault(key, value)
    if "inference_avg_us" not in fields:
        raise run_failure(
            "benchmark_model output has no 'Inference timings' summary (the run did not finish "
            "or the output was cut)",
            text,
        )
    fields.update(_timed_count(counts, fields["inference_avg_us"], source))
    delegation, nodes = _delegation(lines)
    return BenchmarkResult(
        **fields,
        delegation=delegation,
        delegate_nodes=nodes,
        op_profile=_parse_tables(lines),
        source=source,
    )


def check_consumed(text: str) -> None:
    """Refuse an output whose tool warned that it ignored flags it does not know.

    Both benchmark tools only warn ("Unconsumed cmdline flags: ...") and then measure something
    other than what was asked (an fp32 file in fp16, a CPU run under an "nnapi" label).

    Raises:
        BenchmarkRunError: one line naming the ignored flags.
    """
    for line in text.splitlines():
        m = _UNCONSUMED.search(line)
        if m:
            raise run_failure(
                f"benchmark_model ignored flags it does not know ({m.group(1)}), so it measured "
                "something other than what was asked; use a build that lists them in --help",
                text,
            )


def help_flags(text: str) -> frozenset[str]:
    """The flags a tool's ``--help`` lists (``\t--name=default\ttype\toptional\ttext`` lines of
    tflite's ``Flags::Usage``, with or without log prefixes)."""
    return frozenset(
        m.group(1) for m in (_HELP_FLAG.match(strip_prefix(ln)) for ln in text.splitlines()) if m
    )


@dataclass(frozen=True)
class OutputDiff:
    """What ``inference_diff`` printed: delegate (test) vs CPU (reference) on random inputs."""

    avg_errors: tuple[float, ...]  # mean absolute difference per output tensor
    std_devs: tuple[float, ...]
    reference_avg_us: float | None
    test_avg_us: float | None
    num_runs: int | None

    @property
    def max_error(self) -> float:
        """The worst output's mean absolute error (nan counts as infinitely wrong)."""
        return max((math.inf if math.isnan(e) else e) for e in self.avg_errors)

    def to_dict(self) -> dict:
        return {**asdict(self), "max_error": self.max_error}


def parse_inference_diff(text: str) -> OutputDiff:
    """Read the output of TensorFlow's ``inference_diff`` (run_eval) tool.

    Raises:
        BenchmarkRunError: the tool ignored flags, failed or printed no ``OutputDiff`` line.
    """
    check_consumed(text)
    lines = [strip_prefix(ln).strip() for ln in text.splitlines()]
    diffs = [m for m in (_OUTPUT_DIFF.search(ln) for ln in lines) if m]
    if not diffs or any(_FAILED.search(ln) for ln in lines):
        raise run_failure("inference_diff printed no OutputDiff lines (it failed)", text)

    def latency(prefix: str) -> float | None:
        for ln in lines:
            if ln.startswith(prefix):
                m = re.search(rf"avg=({NUMBER})", ln)
                return float(m.group(1)) if m else None
        return None

    runs = next(
        (re.search(r"\d+", ln) for ln in lines if ln.startswith("Num evaluation runs")), None
    )
    return OutputDiff(
        avg_errors=tuple(float(m.group(2)) for m in diffs),
        std_devs=tuple(float(m.group(3)) for m in diffs),
        reference_avg_us=latency("Reference run latency"),
        test_avg_us=latency("Test run latency"),
        num_runs=int(runs.group(0)) if runs else None,
    )
