"""``vosx bench --device adb``: the sweep on phones, one worker thread per phone.

The exported .tflite files and the phone tools' binaries (``tools.BINARIES``) are pushed once
into a run folder named after their hashes; a graph's file there is named after the graph and
precision only. Which ``benchmark_model`` a phone runs is read from its own ``--help``
(``tools.parse_help``), and each run gets only the flags that listing names. Every graph x
delegate x precision is run per trial, with the thermal state read before and after each trial;
``inference_diff`` optionally compares GPU with CPU outputs. A failed run is recorded and the
sweep goes on; a device error ends that phone's sweep, kept in ``DeviceRun.error``.
"""

import dataclasses
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from vosx.android_bench.adb import (
    DEVICE_ROOT,
    STOP,
    Adb,
    DeviceDisconnected,
    Stopped,
    find_adb,
    list_devices,
    select_serials,
)
from vosx.android_bench.benchmark_output import BenchmarkRunError
from vosx.android_bench.device_state import ThermalState
from vosx.android_bench.options import BenchOptions
from vosx.android_bench.results import DeviceRun, Measurement, OutputCheck
from vosx.android_bench.tools import (
    BENCHMARK_MODEL,
    INFERENCE_DIFF,
    INFERENCE_DIFF_TOOL,
    TOOL_NAMES,
    BenchmarkTool,
    benchmark_args,
    parse_help,
)
from vosx.errors import DeviceError
from vosx.export_folder import sha256_file
from vosx.manifest import GRAPH_NAMES, Manifest
from vosx.precision import PRECISION_NAMES
from vosx.precision import precision as precision_of

DIFF_MAX_RUNS = 20  # inference_diff runs per graph (--runs, at most this)


@dataclass(frozen=True)
class Phones:
    """The phones a sweep runs on and the tool binaries it pushes, checked before anything runs."""

    adb: str
    serials: tuple[str, ...]
    binaries: dict[str, Path]  # binary name (tools.TOOL_NAMES) -> local path


def find_phones(opts: BenchOptions) -> Phones:
    """adb, the phones (``--serial``, else ANDROID_SERIAL, else the only one) and the binaries.

    Raises:
        DeviceError: no adb, no usable phone, or a binary that is missing or not aarch64.
    """
    STOP.clear()  # an earlier run in this process may have been interrupted
    adb = find_adb()
    serials = select_serials(list_devices(adb), opts.serials)
    given = {BENCHMARK_MODEL: opts.benchmark_binary}
    if opts.check_outputs:
        given[INFERENCE_DIFF] = opts.inference_diff_binary
    binaries = {b.name: b.resolve(path) for b, path in given.items()}
    return Phones(adb, tuple(serials), binaries)


def run_phones(
    phones: Phones, manifest: Manifest, precisions: tuple[str, ...], opts: BenchOptions
) -> tuple[DeviceRun, ...]:
    """The sweep on every phone in parallel; device errors end up in ``DeviceRun.error``.

    Ctrl-C or SIGTERM sets ``adb.STOP``: every adb call in flight ends within 0.1 s.
    """
    files = _device_files(manifest, precisions, phones.binaries)
    try:
        with ThreadPoolExecutor(max_workers=len(phones.serials)) as pool:
            try:
                return tuple(
                    pool.map(
                        lambda s: run_device(phones.adb, s, manifest, precisions, files, opts),
                        phones.serials,
                    )
                )
            except BaseException:  # Ctrl-C, SIGTERM
                STOP.set()
                raise
    finally:
        STOP.clear()  # the worker threads have ended


def device_graph_name(graph: str, precision: str) -> str:
    """The name of a graph's file in the device run folder, e.g. ``key_encoder_float32.tflite``.

    Derived from the graph and precision names only (both fixed vocabularies the manifest is
    checked against), never from a file name in the manifest: every graph name ends in
    ``.tflite`` and no tool name (``TOOL_NAMES``) does, so no export can take a tool's place.
    """
    if graph not in GRAPH_NAMES or precision not in PRECISION_NAMES:
        raise ValueError(f"not a graph / precision: {graph!r} {precision!r}")
    return precision_of(precision).file_name(graph)


@dataclass(frozen=True)
class _DeviceFiles:
    """What goes to the phone: {name in the run folder: (local path, sha256)} and the folder."""

    files: dict
    run_dir: str
    tools: dict  # tool name -> remote path

    def remote(self, name: str) -> str:
        return f"{self.run_dir}/{name}"


def _device_files(manifest: Manifest, precisions: tuple[str, ...], tools: dict) -> _DeviceFiles:
    if not set(tools) <= set(TOOL_NAMES):
        raise ValueError(f"unknown device tools {sorted(tools)}")
    files = {name: (path, sha256_file(path)) for name, path in tools.items()}
    for p in precisions:
        for g in GRAPH_NAMES:
            name = device_graph_name(g, p)
            if name in files:  # unreachable: graph and tool names are disjoint by construction
                raise ValueError(f"device name {name} taken twice")
            files[name] = (manifest.tflite_path(g, p), manifest.graphs[g].files[p].sha256)
    key = hashlib.sha256("".join(f"{n}:{h};" for n, (_, h) in sorted(files.items())).encode())
    run_dir = f"{DEVICE_ROOT}/run_{key.hexdigest()[:12]}"
    return _DeviceFiles(files, run_dir, {name: f"{run_dir}/{name}" for name in tools})


def run_device(
    adb: str,
    serial: str,
    manifest: Manifest,
    precisions: tuple[str, ...],
    files: _DeviceFiles,
    opts: BenchOptions,
) -> DeviceRun:
    """The whole sweep on one phone; device errors end up in ``DeviceRun.error``."""
    run = DeviceRun(serial)
    dev = Adb(adb, serial)
    created = False
    try:
        info = dev.device_info()
        run.info = info.to_dict()
        dev.check_abi(info)
        run.run_dir = files.run_dir
        created = not dev.exists(files.run_dir)
        dev.check(["mkdir", "-p", files.run_dir], what="creating the run folder")
        remote = {files.remote(n): path for n, (path, _) in files.files.items()}
        hashes = {files.remote(n): h for n, (_, h) in files.files.items()}
        run.pushed = dev.sync(remote, hashes)
        dev.check(["chmod", "755", *files.tools.values()], what="making the tools executable")
        tool = identify_tool(dev, files.tools[BENCHMARK_MODEL.name])
        run.tool = tool.kind
        for d in opts.delegates:  # refused before anything runs: NNAPI of LiteRT, missing flags
            for p in precisions:
                benchmark_args("benchmark_model", "graph.tflite", d, p, 1, 1, 0, tool)
        for trial in range(opts.trials):
            if trial and STOP.wait(opts.cooldown_s):  # a cooldown Ctrl-C cuts short
                raise Stopped(f"device {serial}: stopped: the run was interrupted")
            record = {"trial": trial, "before": _thermal(dev), "after": None}
            run.thermal.append(record)
            for p in precisions:
                for d in opts.delegates:
                    for g in GRAPH_NAMES:
                        remote_graph = files.remote(device_graph_name(g, p))
                        run.measurements.append(
                            _measure(dev, files, tool, remote_graph, g, d, p, trial, opts)
                        )
            record["after"] = _thermal(dev)
        if INFERENCE_DIFF.name in files.tools:
            for p in precisions:
                for g in GRAPH_NAMES:
                    run.checks.append(_check(dev, files, device_graph_name(g, p), g, p, opts))
    except DeviceError as e:
        run.error = str(e)
        run.disconnected = isinstance(e, DeviceDisconnected)
    finally:
        if not opts.keep and not run.disconnected and run.run_dir and not STOP.is_set():
            dev.remove([files.run_dir] if created else run.pushed, recursive=created)
    return run


def identify_tool(dev: Adb, remote: str) -> BenchmarkTool:
    """Which benchmark_model the device runs, from the flags its own ``--help`` lists.

    Raises:
        BenchmarkRunError: the listing fits neither tool (one line with the tail of the output).
    """
    res = dev.shell([remote, "--help"], 60, f"reading {BENCHMARK_MODEL.name} --help")
    return parse_help(res.output, BENCHMARK_MODEL)  # both exit with status 1 after the usage


def _thermal(dev: Adb) -> dict:
    """The thermal state as a dict; an unreadable one is recorded as unknown, not fatal."""
    try:
        return dev.thermal().to_dict()
    except DeviceDisconnected:
        raise
    except DeviceError:
        return ThermalState(None, {}, None).to_dict()


def _measure(
    dev: Adb,
    files: _DeviceFiles,
    tool: BenchmarkTool,
    graph_path: str,
    g: str,
    d: str,
    p: str,
    trial: int,
    opts: BenchOptions,
) -> Measurement:
    binary = files.tools[BENCHMARK_MODEL.name]
    args = benchmark_args(binary, graph_path, d, p, opts.threads, opts.runs, opts.warmup, tool)
    base = {
        "device": dev.serial,
        "graph": g,
        "delegate": d,
        "precision": p,
        "trial": trial,
        "tool": tool.kind,
    }
    try:
        res = dev.shell(args, opts.timeout_s, f"benchmarking {g} ({d}, {p})")
    except DeviceDisconnected:
        raise
    except DeviceError as e:  # a hung run: recorded, the sweep goes on
        return Measurement(**base, error=str(e))
    try:
        result = tool.spec.parser(res.output)
    except BenchmarkRunError as e:
        return Measurement(**base, error=f"exit {res.rc}: {e}", output_tail=e.output_tail)
    if tool.spec.fully_delegated(d) and result.delegation is None:
        # it ran with --require_full_delegation (LiteRT's GPU runs): every op runs on the delegate
        result = dataclasses.replace(result, delegation="full")
    return Measurement(**base, result=result)


def _check(
    dev: Adb, files: _DeviceFiles, name: str, g: str, p: str, opts: BenchOptions
) -> OutputCheck:
    runs = min(opts.runs, DIFF_MAX_RUNS)
    args = INFERENCE_DIFF_TOOL.command(
        files.tools[INFERENCE_DIFF.name], files.remote(name), "gpu", p, opts.threads, runs, 0
    )
    base = {"device": dev.serial, "graph": g, "precision": p, "threshold": opts.diff_threshold}
    try:
        res = dev.shell(args, opts.timeout_s, f"comparing GPU and CPU outputs of {g} ({p})")
    except DeviceDisconnected:
        raise
    except DeviceError as e:
        return OutputCheck(**base, error=str(e))
    try:
        return OutputCheck(**base, diff=INFERENCE_DIFF_TOOL.parser(res.output))
    except BenchmarkRunError as e:
        return OutputCheck(**base, error=f"exit {res.rc}: {e}")
