"""The ``vosx bench`` report: statistics over trials, the per-frame estimate; table, JSON, PNG.

``bench_and_write`` is what the command runs: the benchmark, then these outputs.

Latencies are reported in milliseconds (the measurements are in microseconds). For K objects with
the two-frame memory, one frame costs ``key_encoder + K * (value_encoder + decoder)`` on the graphs
plus the host-measured NumPy driver and ``K`` tracker steps; FPS is 1000 / that.
"""

import statistics
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from vosx.android_bench.bench import run_bench
from vosx.android_bench.host import HOST_COLUMNS
from vosx.android_bench.options import BenchOptions
from vosx.android_bench.results import HOST_GPU_LABEL, BenchReport, DeviceRun
from vosx.android_bench.tools import TOOLS
from vosx.files import atomic_path, atomic_write, json_text
from vosx.manifest import GRAPH_NAMES
from vosx.output_policy import check_distinct_outputs, check_output

FORMAT_NAME = "vosx-bench"
FORMAT_VERSION = 1
NOT_MEASURED = "not measured"
# Measurement.tool -> the per-graph table's "tool" column
TOOL_COLUMN = {**{t.key: t.column for t in TOOLS.values()}, **HOST_COLUMNS}


@dataclass(frozen=True)
class SummaryRow:
    """One graph x delegate x precision on one device, over its trials (ms, MB)."""

    device: str
    graph: str
    delegate: str
    precision: str
    trials_ok: int
    trials_failed: int
    steady_ms: float | None  # median over trials of the average timed inference
    steady_min_ms: float | None  # smallest / largest trial average
    steady_max_ms: float | None
    spread_pct: float | None  # (max - min) / median * 100
    init_ms: float | None
    first_ms: float | None
    warmup_ms: float | None
    memory_mb: float | None  # overall footprint delta
    peak_memory_mb: float | None
    delegation: str | None
    diff_error: float | None  # GPU-vs-CPU mean absolute error (inference_diff)
    flagged: bool
    error: str | None
    tool: str | None = None  # which tool measured it (TOOL_COLUMN keys)
    gpu_max_rel: float | None = None  # host GPU vs CPU, max relative error over the outputs
    latency_label: str | None = None  # e.g. host GPU: "software Vulkan, not a phone figure"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FrameRow:
    """The per-frame estimate for K objects on one device, delegate and precision (ms)."""

    device: str
    delegate: str
    precision: str
    objects: int
    key_ms: float
    value_ms: float
    decoder_ms: float
    tracker_ms: float | None  # K tracker steps; None = not measured
    driver_ms: float | None
    graphs_ms: float  # key + K * (value + decoder)
    frame_ms: float  # graphs + tracker + driver (those measured)
    fps: float
    flagged: bool

    def to_dict(self) -> dict:
        return asdict(self)


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else None


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000.0


def summarize(report: BenchReport) -> list[SummaryRow]:
    """Per device x graph x delegate x precision statistics over the trials."""
    rows = []
    for run in report.runs:
        checks = {(c.graph, c.precision): c for c in run.checks}
        gpu = {(c.graph, c.precision): c for c in run.gpu_checks}
        groups: dict[tuple, list] = {}
        for m in run.measurements:
            groups.setdefault((m.graph, m.delegate, m.precision), []).append(m)
        for (g, d, p), ms in groups.items():
            ok = [m.result for m in ms if m.result is not None]
            avgs = [r.inference_avg_us / 1000.0 for r in ok]
            med = _median(avgs)
            spread = (max(avgs) - min(avgs)) / med * 100 if avgs and med else None
            delegations = Counter(r.delegation for r in ok if r.delegation)
            check = checks.get((g, p)) if d == "gpu" else None
            errors = [m.error for m in ms if m.error]
            rows.append(
                SummaryRow(
                    device=run.device,
                    graph=g,
                    delegate=d,
                    precision=p,
                    trials_ok=len(ok),
                    trials_failed=len(ms) - len(ok),
                    steady_ms=med,
                    steady_min_ms=min(avgs) if avgs else None,
                    steady_max_ms=max(avgs) if avgs else None,
                    spread_pct=spread,
                    init_ms=_median([_ms(r.init_us) for r in ok]),
                    first_ms=_median([_ms(r.first_inference_us) for r in ok]),
                    warmup_ms=_median([_ms(r.warmup_avg_us) for r in ok]),
                    memory_mb=_median([r.memory_overall_mb for r in ok]),
                    peak_memory_mb=_median([r.peak_memory_mb for r in ok]),
                    delegation="/".join(sorted(delegations)) or None,
                    diff_error=check.diff.max_error if check and check.diff else None,
                    flagged=bool(check and check.flagged),
                    error=errors[-1]
                    if errors
                    else (check.error if check and check.error else None),
                    tool="/".join(sorted({m.tool for m in ms if m.tool})) or None,
                    gpu_max_rel=gpu[g, p].worst if d == "gpu" and (g, p) in gpu else None,
                    latency_label=HOST_GPU_LABEL if run.device == "host" and d == "gpu" else None,
                )
            )
    return rows


def per_frame(report: BenchReport, rows: list[SummaryRow] | None = None) -> list[FrameRow]:
    """The per-frame estimate of every device x delegate x precision with all three graphs timed."""
    rows = summarize(report) if rows is None else rows
    k = report.options.objects
    costs = report.host_costs
    tracker = None if costs.tracker_ms_per_object is None else k * costs.tracker_ms_per_object
    by_key: dict[tuple, dict] = {}
    for r in rows:
        by_key.setdefault((r.device, r.delegate, r.precision), {})[r.graph] = r
    out = []
    for (dev, d, p), graphs in by_key.items():
        if any(g not in graphs or graphs[g].steady_ms is None for g in GRAPH_NAMES):
            continue
        key, value, dec = (graphs[g].steady_ms for g in GRAPH_NAMES)
        graphs_ms = key + k * (value + dec)
        frame = graphs_ms + (tracker or 0.0) + (costs.driver_ms or 0.0)
        out.append(
            FrameRow(
                device=dev,
                delegate=d,
                precision=p,
                objects=k,
                key_ms=key,
                value_ms=value,
                decoder_ms=dec,
                tracker_ms=tracker,
                driver_ms=costs.driver_ms,
                graphs_ms=graphs_ms,
                frame_ms=frame,
                fps=1000.0 / frame,
                flagged=any(graphs[g].flagged for g in GRAPH_NAMES),
            )
        )
    return out


def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def to_json_dict(report: BenchReport) -> dict:
    """Everything in the report as plain JSON data."""
    rows = summarize(report)
    return _jsonable(
        {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "started": report.started,
            "export_dir": report.options.export_dir,
            "device_mode": report.options.device,
            "input_size": report.input_size,
            "precisions": report.precisions,
            "options": asdict(report.options),
            "notes": [*report.notes, *report.host_costs.notes],
            "host_costs": report.host_costs.to_dict(),
            "summary": [r.to_dict() for r in rows],
            "per_frame": [r.to_dict() for r in per_frame(report, rows)],
            "devices": [run.to_dict() for run in report.runs],
        }
    )


def write_json(report: BenchReport, path: Path, overwrite: bool = True) -> Path:
    """Write the report as strict JSON (atomically; a NaN figure is null).

    ``overwrite`` False: refuse (``OutputError``) when ``path`` appeared meanwhile.
    """
    return atomic_write(path, json_text(to_json_dict(report)), overwrite=overwrite)


def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def _device_label(run: DeviceRun) -> str:
    i = run.info
    if run.device == "host":
        return f"host: {i.get('cpu', '?')} ({i.get('cores', '?')} cores)"
    parts = [i.get("manufacturer"), i.get("model"), i.get("soc"), i.get("gpu")]
    android = f"Android {i['android_version']}" if i.get("android_version") else None
    return f"{run.device}: " + ", ".join(x for x in [*parts, android] if x)


def render(report: BenchReport, console) -> None:
    """Print the device lines, the per-graph table, the per-frame table and notes (rich)."""
    rows = summarize(report)
    for run in report.runs:
        _print_device(run, console)
    console.print(_graph_table(rows))
    console.print(_frame_table(per_frame(report, rows), report.options.objects))
    _print_notes(report, rows, console)


def _print_device(run: DeviceRun, console) -> None:
    """The device line, its thermal state per trial and why it stopped."""
    console.print(f"[bold]{_device_label(run)}[/bold]")
    for t in run.thermal:
        b, a = t["before"] or {}, t["after"] or {}
        warn = " [red]throttled[/red]" if b.get("throttled") or a.get("throttled") else ""
        console.print(
            f"  trial {t['trial']}: thermal {b.get('status_name') or '?'} "
            f"({_f(b.get('max_temperature_c'), '{:.1f}')} C) -> {a.get('status_name') or '?'} "
            f"({_f(a.get('max_temperature_c'), '{:.1f}')} C){warn}"
        )
    if run.error:
        console.print(f"  [red]stopped: {run.error}[/red]")


_GRAPH_COLUMNS = ("device", "tool", "graph", "delegate", "prec", "steady", "spread", "init")
_GRAPH_COLUMNS += ("first",)
_GRAPH_COLUMNS += ("warmup", "mem MB", "delegation", "gpu diff", "trials")
_FRAME_COLUMNS = ("device", "delegate", "prec", "key", "value", "decoder", "tracker", "driver")
_FRAME_COLUMNS += ("frame", "FPS")
_LEFT = ("device", "tool", "graph", "delegate", "prec")  # the other columns are right-aligned


def _table(title: str, columns: tuple[str, ...]):
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col in _LEFT else "right")
    return table


def _graph_table(rows: list[SummaryRow]):
    """The per-graph table: one row per device x graph x delegate x precision."""
    table = _table("per graph (ms; median over trials, spread = (max-min)/median)", _GRAPH_COLUMNS)
    for r in rows:
        diff = _f(r.diff_error, "{:.2e}")
        if r.gpu_max_rel is not None:  # host GPU: max relative error against the CPU
            diff = f"rel {r.gpu_max_rel:.1e}"
        if r.flagged:
            diff = f"[bold red]{diff} !![/bold red]"
        trials = f"{r.trials_ok}" + (
            f" [red]({r.trials_failed} failed)[/red]" if r.trials_failed else ""
        )
        table.add_row(
            r.device,
            TOOL_COLUMN.get(r.tool, r.tool or "-"),
            r.graph,
            r.delegate,
            r.precision,
            _f(r.steady_ms),
            _f(r.spread_pct, "{:.1f}%"),
            _f(r.init_ms, "{:.1f}"),
            _f(r.first_ms),
            _f(r.warmup_ms),
            _f(r.peak_memory_mb if r.peak_memory_mb is not None else r.memory_mb, "{:.1f}"),
            r.delegation or "-",
            diff,
            trials,
        )
    return table


def _frame_table(frames: list[FrameRow], k: int):
    """The per-frame table: one row per device x delegate x precision with every graph timed."""
    title = f"per frame, K={k} objects: key + K*(value + decoder) + tracker + driver (ms)"
    table = _table(title, _FRAME_COLUMNS)
    for f in frames:
        fps = f"{f.fps:.1f}"
        table.add_row(
            f.device,
            f.delegate,
            f.precision,
            _f(f.key_ms),
            _f(f.value_ms),
            _f(f.decoder_ms),
            NOT_MEASURED if f.tracker_ms is None else _f(f.tracker_ms),
            NOT_MEASURED if f.driver_ms is None else _f(f.driver_ms),
            _f(f.frame_ms),
            f"[bold red]{fps} !![/bold red]" if f.flagged else f"[bold]{fps}[/bold]",
        )
    return table


def _print_notes(report: BenchReport, rows: list[SummaryRow], console) -> None:
    """The host costs line, the notes, every failed row and the GPU-diff warning."""
    costs = report.host_costs
    console.print(
        f"tracker and driver: NumPy, timed on this host at {report.input_size[0]}x"
        f"{report.input_size[1]} (tracker {_f(costs.tracker_ms_per_object)} ms per object, "
        f"driver {_f(costs.driver_ms)} ms per frame)"
    )
    for note in (*report.notes, *costs.notes):
        console.print(f"[yellow]note:[/yellow] {note}")
    for r in rows:
        if r.error:
            console.print(f"[red]{r.device} {r.graph} {r.delegate} {r.precision}:[/red] {r.error}")
    if any(r.flagged for r in rows):
        console.print(
            f"[bold red]!![/bold red] GPU outputs differ from CPU by more than "
            f"{report.options.diff_threshold:g} (mean absolute error): do not trust that graph on "
            "the GPU"
        )


_COLORS = {
    "key": (66, 133, 244),
    "value": (52, 168, 83),
    "decoder": (251, 188, 5),
    "tracker": (234, 67, 53),
    "driver": (154, 160, 166),
}


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def draw_plot(report: BenchReport):
    """A PIL image: one stacked bar per device x delegate x precision, with its FPS."""
    from PIL import Image, ImageDraw

    frames = per_frame(report)
    k = report.options.objects
    font, small = _font(16), _font(13)
    left, right, top, bar_h, gap = 300, 170, 90, 26, 14
    width = 1100
    height = top + max(1, len(frames)) * (bar_h + gap) + 60
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    d.text(
        (20, 12),
        f"vosx bench: per-frame latency, K={k} objects ({report.options.device})",
        fill="black",
        font=font,
    )
    x = 20
    for name, color in _COLORS.items():
        d.rectangle([x, 48, x + 14, 62], fill=color)
        label = f"{'K x ' if name in ('value', 'decoder', 'tracker') else ''}{name}"
        d.text((x + 20, 47), label, fill="black", font=small)
        x += 40 + int(d.textlength(label, font=small))
    if not frames:
        d.text((20, top), "no configuration has all three graphs measured", fill="red", font=font)
        return img
    span = max(max(f.frame_ms for f in frames), 1000.0 / 30.0) * 1.05
    scale = (width - left - right) / span
    x30 = left + (1000.0 / 30.0) * scale  # the paper's 30 FPS target
    d.line([x30, top - 8, x30, height - 40], fill=(120, 120, 120), width=1)
    d.text((x30 + 4, height - 36), "30 FPS", fill=(90, 90, 90), font=small)
    for i, f in enumerate(frames):
        y = top + i * (bar_h + gap)
        d.text((20, y + 4), f"{f.device} {f.delegate} {f.precision}", fill="black", font=small)
        parts = [
            ("key", f.key_ms),
            ("value", k * f.value_ms),
            ("decoder", k * f.decoder_ms),
            ("tracker", f.tracker_ms or 0.0),
            ("driver", f.driver_ms or 0.0),
        ]
        x = float(left)
        for name, ms in parts:
            w = ms * scale
            if w > 0:
                d.rectangle([x, y, x + w, y + bar_h], fill=_COLORS[name])
            x += w
        color = (200, 0, 0) if f.flagged else (0, 0, 0)
        d.text((x + 8, y + 4), f"{f.frame_ms:.1f} ms  {f.fps:.1f} FPS", fill=color, font=small)
    return img


def write_plot(report: BenchReport, path: Path, overwrite: bool = True) -> Path:
    """Write the per-frame plot as PNG (atomically; drawn with Pillow); ``overwrite`` as
    ``write_json``'s."""
    img = draw_plot(report)
    with atomic_path(path, overwrite=overwrite) as tmp:
        img.save(tmp, format="PNG")
    return Path(path)


def bench_and_write(
    opts: BenchOptions, json_path: Path | None, plot_path: Path | None, force: bool, console
) -> tuple[Path, ...]:
    """``vosx bench``: run, write the JSON and the plot, print the report; the files written.

    The output paths are checked before anything is measured; a device error met during the run
    is raised after the files and the table are written (``BenchReport.raise_if_failed``).

    Raises:
        OutputError: an output path is refused (exists without ``force``, is an input, or both
            outputs are one file).
        ConfigError, ManifestError, DeviceError, BenchmarkError: as ``run_bench`` and
            ``BenchReport.raise_if_failed``.
    """
    inputs = [opts.export_dir, opts.benchmark_binary, opts.inference_diff_binary]
    for out, what, example in (
        (json_path, "--json", "bench.json"),
        (plot_path, "--plot", "bench.png"),
    ):
        if out is not None:  # never the export folder's files
            check_output(out, inputs, force, kind="file", what=what, example=example)
    check_distinct_outputs([("--json", json_path), ("--plot", plot_path)])
    report = run_bench(opts)
    if json_path:
        write_json(report, json_path, overwrite=force)
    if plot_path:
        write_plot(report, plot_path, overwrite=force)
    render(report, console)
    report.raise_if_failed(json_path)
    return tuple(p for p in (json_path, plot_path) if p)
