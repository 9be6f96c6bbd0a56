"""The programs ``vosx bench`` runs on a phone: one ``PhoneTool`` record each, in ``TOOLS``.

A phone tool is an android_aarch64 program pushed to the phone and run on each graph file. Its
record says where its binary comes from (a ``ToolBinary``: the ``vosx bench`` option, the
environment variable, the names looked for in the user cache, how to get it), how its ``--help``
tells it from the other tools of that binary, its flags per delegate and precision, and the
parser of what it prints. TensorFlow's ``benchmark_model`` and LiteRT's CompiledModel tool (also
installed as ``benchmark_model``) are both given as ``--benchmark-binary``: which one a binary is,
is read from its own ``--help`` on the phone, and it gets only the flags that listing names.
TensorFlow's ``inference_diff`` (``--check-outputs``) compares GPU with CPU outputs.

The phone sweep (``phone``), the report's tool column, ``vosx bench --help`` and ``vosx doctor``
read ``TOOLS`` and ``BINARIES``, so a new tool is one record here plus its parser. Standard
library only: the CLI reads its option help from here.
"""

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from vosx.android_bench.benchmark_output import (
    BenchmarkResult,
    OutputDiff,
    help_flags,
    parse_benchmark_output,
    parse_inference_diff,
    run_failure,
)
from vosx.errors import ConfigError, DeviceError
from vosx.paths import user_cache_dir
from vosx.precision import precision as precision_of

EM_AARCH64 = 183
R = TypeVar("R", BenchmarkResult, OutputDiff)


class DelegateUnsupported(ConfigError):
    """The phone tool has no such delegate (LiteRT's ``benchmark_model`` has no NNAPI)."""


def check_elf_aarch64(path: Path, what: str = "benchmark_model") -> None:
    """Refuse anything but a 64-bit little-endian aarch64 ELF executable (read from its header).

    Raises:
        DeviceError: missing file, not ELF, or ELF for another machine, with where to get the
            android_aarch64 build.
    """
    if not path.is_file():
        raise DeviceError(
            f"{path}: {what} binary not found; give the path of the android_aarch64 build"
        )
    with open(path, "rb") as f:
        head = f.read(64)
    fix = f"use the android_aarch64 build of {what}"
    if len(head) < 20 or head[:4] != b"\x7fELF":
        kind = "an APK/zip" if head[:2] == b"PK" else "a script" if head[:2] == b"#!" else "not ELF"
        raise DeviceError(f"{path}: is {kind}, not an ELF executable; {fix}")
    if head[4] != 2 or head[5] != 1:
        raise DeviceError(f"{path}: is a 32-bit or big-endian ELF, not aarch64; {fix}")
    machine = int.from_bytes(head[18:20], "little")
    if machine != EM_AARCH64:
        names = {3: "x86", 62: "x86-64", 40: "32-bit ARM", 243: "RISC-V"}
        raise DeviceError(
            f"{path}: is an ELF for {names.get(machine, f'machine {machine}')}, not aarch64; {fix}"
        )


@dataclass(frozen=True)
class ToolBinary:
    """Where one phone binary comes from: the tools one ``vosx bench`` option may give.

    Args:
        name: Its name in the device run folder (graph files end in .tflite, so none is so named).
        option: The ``vosx bench`` option that gives its path.
        env_var: The environment variable read when the option is not given.
        cache_names: Names looked for in the user cache folder when neither is, in order.
        summary: What it is, in ``vosx bench --help`` ("TensorFlow benchmark_model").
        origin: Whose build ``vosx doctor`` tells the user to get ("TensorFlow").
        install_hint: How to get it; with "and pass OPTION PATH", it ends the message when it is
            not found.
    """

    name: str
    option: str
    env_var: str
    cache_names: tuple[str, ...]
    summary: str
    origin: str
    install_hint: str

    @property
    def help(self) -> str:
        """The option's line in ``vosx bench --help``."""
        return f"{self.summary} for android_aarch64 (else ${self.env_var} or the user cache dir)."

    def doctor_hint(self) -> str:
        """What ``vosx doctor`` says to do when the binary is not found."""
        return (
            f"get {self.origin}'s android_aarch64 {self.name} and pass {self.option} PATH, set "
            f"${self.env_var}, or copy it to {user_cache_dir() / self.name}"
        )

    def find(self, explicit: Path | None) -> Path:
        """The binary: ``explicit`` (the option), else ``$env_var``, else the cache.

        Raises:
            DeviceError: none found; says where it was looked for and how to get it.
        """
        if explicit is not None:
            return Path(explicit)
        if os.environ.get(self.env_var):
            return Path(os.environ[self.env_var])
        cache = user_cache_dir()
        for name in self.cache_names:
            if (cache / name).is_file():
                return cache / name
        raise DeviceError(
            f"{self.cache_names[0]}: not given, ${self.env_var} unset and not in {cache}; "
            f"{self.install_hint} and pass {self.option} PATH"
        )

    def resolve(self, explicit: Path | None) -> Path:
        """``find``, then refuse anything but an aarch64 ELF executable (``check_elf_aarch64``)."""
        path = self.find(explicit)
        check_elf_aarch64(path, self.name)
        return path


@dataclass(frozen=True)
class PhoneTool(Generic[R]):
    """One program ``vosx bench`` runs on a phone, and how.

    Args:
        key: Its name in the report (``Measurement.tool``, the JSON's ``benchmark_tool``).
        label: Its name in messages.
        column: Its name in the per-graph table's "tool" column.
        binary: Where its binary comes from (shared by the tools one option may give).
        run_flags: Its flags for every run: ``str.format`` templates of ``graph`` (the file on the
            phone), ``runs``, ``warmup``, ``threads`` and ``delegate``.
        delegate_flags: Delegate -> its flags, templates of ``fp16``: the precision's
            ``gpu_precision_loss_allowed`` ("false" for fp32 files: they measure fp32).
        parser: Reads one run's output (stdout and stderr together).
        refused: Delegate -> why the tool cannot run it (raised as ``DelegateUnsupported``).
        marks: Flags its ``--help`` lists that tell it from the other tools of its binary.
        all_marks: Whether it is recognised by every mark (else by any one).
        help_hint: How a ``--help`` that fits no tool names it.
        optional_flags: Flags left out, not refused, when its ``--help`` does not list them.
    """

    key: str
    label: str
    column: str
    binary: ToolBinary
    run_flags: tuple[str, ...]
    delegate_flags: Mapping[str, tuple[str, ...]]
    parser: Callable[[str], R]
    refused: Mapping[str, str] = field(default_factory=dict)
    marks: frozenset[str] = frozenset()
    all_marks: bool = False
    help_hint: str = ""
    optional_flags: frozenset[str] = frozenset()

    @property
    def model_flag(self) -> str:
        """The flag that names the graph file (``graph`` for ``--graph=...``)."""
        return next(f[2:].split("=", 1)[0] for f in self.run_flags if "{graph}" in f)

    def recognises(self, listed: frozenset[str]) -> bool:
        """Whether a ``--help`` listing these flags is this tool's."""
        marked = self.marks <= listed if self.all_marks else bool(self.marks & listed)
        return self.model_flag in listed and marked

    def command(
        self,
        binary: str,
        graph: str,
        delegate: str,
        precision: str,
        threads: int,
        runs: int,
        warmup: int,
    ) -> list[str]:
        """The command line of one run (fp32 files never run with fp16 arithmetic).

        Raises:
            DelegateUnsupported: the tool has no such delegate.
        """
        if delegate in self.refused:
            raise DelegateUnsupported(self.refused[delegate])
        values = {
            "graph": graph,
            "runs": runs,
            "warmup": warmup,
            "threads": threads,
            "delegate": delegate,
            "fp16": "true" if precision_of(precision).gpu_precision_loss_allowed else "false",
        }
        flags = (*self.run_flags, *self.delegate_flags[delegate])
        return [binary, *(f.format(**values) for f in flags)]

    def fully_delegated(self, delegate: str) -> bool:
        """Whether a run on ``delegate`` that succeeds ran every op on it (full delegation is
        required of it, so the tool refuses a graph it cannot take whole)."""
        return "--require_full_delegation=true" in self.delegate_flags.get(delegate, ())


BENCHMARK_MODEL = ToolBinary(
    name="benchmark_model",
    option="--benchmark-binary",
    env_var="VOSX_BENCHMARK_MODEL",
    cache_names=("android_aarch64_benchmark_model", "benchmark_model"),
    summary="TensorFlow benchmark_model",
    origin="TensorFlow",
    install_hint=(
        "download android_aarch64_benchmark_model from https://storage.googleapis.com/"
        "tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest/"
        "android_aarch64_benchmark_model"
    ),
)
INFERENCE_DIFF = ToolBinary(
    name="inference_diff",
    option="--inference-diff-binary",
    env_var="VOSX_INFERENCE_DIFF",
    cache_names=("inference_diff", "run_eval"),
    summary="TensorFlow inference_diff (run_eval)",
    origin="TensorFlow",
    install_hint=(
        "build it with `bazel build -c opt --config=android_arm64 "
        "//tensorflow/lite/tools/evaluation/tasks/inference_diff:run_eval`"
    ),
)
_BENCHMARK_RUN = (
    "--graph={graph}",
    "--num_runs={runs}",
    "--warmup_runs={warmup}",
    "--num_threads={threads}",
    "--report_peak_memory_footprint=true",
)
TENSORFLOW = PhoneTool(
    key="tensorflow",
    label="TensorFlow's benchmark_model",
    column="TF benchmark_model",
    binary=BENCHMARK_MODEL,
    run_flags=_BENCHMARK_RUN,
    delegate_flags={  # GPU on OpenCL; NNAPI may use fp16 for the fp16 files
        "gpu": ("--use_gpu=true", "--gpu_precision_loss_allowed={fp16}", "--gpu_backend=cl"),
        "cpu": (),  # the default XNNPACK path
        "nnapi": ("--use_nnapi=true", "--nnapi_allow_fp16={fp16}"),
    },
    parser=parse_benchmark_output,
    marks=frozenset({"use_xnnpack", "use_nnapi", "gpu_precision_loss_allowed"}),
    help_hint="TensorFlow's tool (--use_xnnpack, --use_nnapi)",
    optional_flags=frozenset({"report_peak_memory_footprint"}),  # older builds lack it
)
LITERT = PhoneTool(
    key="litert",
    label="LiteRT's benchmark_model (CompiledModel)",
    column="LiteRT benchmark_model",
    binary=BENCHMARK_MODEL,
    run_flags=_BENCHMARK_RUN,
    delegate_flags={  # GPU only: without --use_cpu=false it silently falls back to the CPU
        "gpu": (
            "--use_gpu=true",
            "--use_cpu=false",
            "--require_full_delegation=true",
            "--allow_fp16={fp16}",
        ),
        "cpu": (),
    },
    parser=parse_benchmark_output,  # its "BENCHMARK RESULTS" block, in milliseconds
    refused={
        "nnapi": "--delegate nnapi: the device's benchmark_model is LiteRT's CompiledModel tool, "
        "which has no NNAPI (--delegate all includes it); use --delegate gpu or cpu, or "
        "TensorFlow's benchmark_model with --benchmark-binary"
    },
    marks=frozenset({"use_cpu", "allow_fp16"}),  # it has no delegate providers: no XNNPACK, NNAPI
    all_marks=True,
    help_hint="LiteRT's (--use_cpu, --allow_fp16)",
    optional_flags=frozenset({"report_peak_memory_footprint"}),
)
INFERENCE_DIFF_TOOL = PhoneTool(
    key="inference_diff",
    label="TensorFlow's inference_diff",
    column="TF inference_diff",
    binary=INFERENCE_DIFF,
    run_flags=(  # the delegate (test) against single-threaded CPU (reference)
        "--model_file={graph}",
        "--delegate={delegate}",
        "--num_runs={runs}",
        "--num_interpreter_threads={threads}",
    ),
    delegate_flags={"gpu": ("--gpu_precision_loss_allowed={fp16}",)},
    parser=parse_inference_diff,
)
TOOLS: dict[str, PhoneTool] = {t.key: t for t in (TENSORFLOW, LITERT, INFERENCE_DIFF_TOOL)}
BINARIES: tuple[ToolBinary, ...] = tuple(dict.fromkeys(t.binary for t in TOOLS.values()))
TOOL_NAMES = tuple(b.name for b in BINARIES)  # device names of the binaries (no .tflite)


@dataclass(frozen=True)
class BenchmarkTool:
    """A phone tool as identified on the device (``parse_help``), with the flags it lists."""

    kind: str  # a TOOLS key
    flags: frozenset[str]

    @property
    def spec(self) -> PhoneTool:
        """Its record in ``TOOLS``."""
        return TOOLS[self.kind]

    @property
    def label(self) -> str:
        return self.spec.label


def parse_help(text: str, binary: ToolBinary = BENCHMARK_MODEL) -> BenchmarkTool:
    """Which of ``binary``'s tools printed this ``--help``, from the flags it lists.

    Both ``benchmark_model`` tools print ``Flags::Usage`` (``\\t--name=default\\ttype\\toptional
    \\ttext`` lines, the first after an ``ERROR: usage:`` line) and exit with status 1.

    Raises:
        BenchmarkRunError: the listing names no model flag (``--graph``), or fits no tool or
            several.
    """
    listed = help_flags(text)
    tools = [t for t in TOOLS.values() if t.binary == binary]
    model_flags = sorted({t.model_flag for t in tools})
    if not set(model_flags) & listed:
        flags = " / ".join(f"--{f}" for f in model_flags)
        raise run_failure(
            f"{binary.name} --help listed no {flags} flag (is it {binary.name}?)", text
        )
    fits = [t for t in tools if t.recognises(listed)]
    if len(fits) != 1:
        raise run_failure(
            f"{binary.name} --help fits neither {' nor '.join(t.help_hint for t in tools)}; "
            "give one of those builds",
            text,
        )
    return BenchmarkTool(fits[0].key, listed)


def benchmark_args(
    binary: str,
    graph: str,
    delegate: str,
    precision: str,
    threads: int,
    runs: int,
    warmup: int,
    tool: BenchmarkTool,
) -> list[str]:
    """The identified tool's command line for one graph, delegate and precision.

    Only flags the tool's ``--help`` lists are passed; its optional ones it does not list are
    left out.

    Raises:
        DelegateUnsupported: a delegate the tool has not (NNAPI of LiteRT's tool).
        DeviceError: the tool does not list a flag this run needs.
    """
    spec = tool.spec
    args = spec.command(binary, graph, delegate, precision, threads, runs, warmup)
    kept = [binary]
    for arg in args[1:]:
        name = arg[2:].split("=", 1)[0]
        if name in tool.flags:
            kept.append(arg)
        elif name not in spec.optional_flags:
            raise DeviceError(
                f"{tool.label} on the device does not list --{name} in its --help, so it would "
                f"ignore it and measure something else; use a build that has it"
            )
    return kept
