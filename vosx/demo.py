"""``vosx demo``: the whole product on the bundled checkpoint and clip, in one folder.

Export (fp32 + fp16, verified) -> segment the bundled real clip (DAVIS 2016 ``bear``) with the
TFLite graphs, with no tracker, CV and PT -> DAVIS J&F against its ground truth ->
``bench --device host`` -> ``report.md`` and ``report.html`` (overlay GIF, bench plot, parity
and J&F tables).
Everything is written into a temporary sibling folder and renamed at the end.
"""

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vosx import limits
from vosx.export.options import DEFAULT_SIZE, DEFAULT_THREADS, ExportOptions
from vosx.files import json_text, replace_dir
from vosx.output_policy import check_output
from vosx.paths import DEMO_CLIP
from vosx.tracker_runtime.trackers import TRACKER_KINDS as TRACKERS

if TYPE_CHECKING:
    from vosx.android_bench.report import FrameRow
    from vosx.export.render import Table
    from vosx.export.report import ExportReport


@dataclass(frozen=True)
class DemoSummary:
    """What ``vosx demo`` measured: ``summary.json`` holds ``to_dict()``, it prints ``lines()``.

    Attributes:
        checkpoint: The exported checkpoint.
        size: The padded input (height, width).
        export: The export's figures (``vosx.export.render.demo_summary``).
        jf: Per tracker, the official DAVIS measures on the clip (``J&F-Mean``, ``J-Mean``,
            ``F-Mean``, ...).
        bench: The host latency per frame, per runtime and precision.
    """

    checkpoint: str
    size: tuple[int, int]
    export: dict
    jf: dict[str, dict[str, float]]
    bench: tuple["FrameRow", ...]

    def to_dict(self) -> dict:
        """The summary as ``summary.json`` holds it."""
        return {
            "checkpoint": self.checkpoint,
            "size": list(self.size),
            "export": self.export,
            "jf": self.jf,
            "bench": [r.to_dict() for r in self.bench],
        }

    def lines(self) -> list[str]:
        """What ``vosx demo`` prints: J&F per tracker, then per benchmark row its time per frame
        and FPS."""
        lines = [f"J&F with tracker {t}: {s['J&F-Mean']:.3f}" for t, s in self.jf.items()]
        for row in self.bench:
            lines.append(
                f"{row.delegate} {row.precision} K={row.objects}: "
                f"{row.frame_ms:.1f} ms/frame ({row.fps:.2f} FPS on this CPU)"
            )
        return lines


def run_demo(
    out_dir: Path,
    checkpoint: Path | None = None,
    size: tuple[int, int] = DEFAULT_SIZE,
    threads: int = DEFAULT_THREADS,
    force: bool = False,
    progress=None,
    clip: Path | None = None,
) -> DemoSummary:
    """Run every stage and write ``out_dir``; returns the summary written to ``summary.json``.

    ``clip`` is a folder with ``frames/`` and ``masks/`` (a ground-truth mask per frame); None:
    the bundled 30 real frames of DAVIS 2016 ``bear``.

    Raises:
        ConfigError: ``out_dir`` exists without ``force``.
        VosxError: any stage's own error (export parity, bad checkpoint, ...).
    """
    say = progress or (lambda stage, msg: None)
    out_dir, clip = Path(out_dir), Path(clip or DEMO_CLIP)
    limits.check_count(threads, "--threads", 1, limits.MAX_THREADS)
    check_output(out_dir, [checkpoint, clip], force, kind="dir", what="-o")
    with replace_dir(out_dir, overwrite=force) as tmp:
        summary = _run(tmp, checkpoint, size, threads, say, clip)
    return summary


def _run(out: Path, checkpoint, size, threads, say, clip: Path) -> DemoSummary:
    from vosx.export.pipeline import export_all
    from vosx.export.render import demo_summary

    say("export", "exporting the checkpoint (fp32 + fp16) and verifying it")
    export_dir = out / "export"
    report = export_all(
        ExportOptions(checkpoint=checkpoint, out_dir=export_dir, size=size, threads=threads)
    )
    scores = _segment_and_score(out, export_dir, size, threads, say, clip)
    bench = _bench(out, export_dir, threads, say)
    summary = DemoSummary(report.checkpoint, size, demo_summary(report), scores, tuple(bench))
    (out / "summary.json").write_text(json_text(summary.to_dict()))  # strict JSON: NaN is null
    tables = _tables(report, summary)
    (out / "report.md").write_text(render_md(report, tables))
    (out / "report.html").write_text(render_html(report, tables, out))
    return summary


def _segment_and_score(out: Path, export_dir: Path, size, threads, say, clip: Path) -> dict:
    """Segment the clip with the TFLite fp32 graphs per tracker -> tracker -> J&F summary.

    The default tracker's labels are also written as ``segment/*.png`` and ``overlay.gif``.
    """
    from vosx.manifest import load_manifest
    from vosx.tracker_runtime.io import Frames, read_label_sequence, write_labels
    from vosx.tracker_runtime.litert import TFLiteGraphs
    from vosx.tracker_runtime.metrics import evaluate_labels
    from vosx.tracker_runtime.overlay import OverlayWriter
    from vosx.tracker_runtime.segment import segment
    from vosx.tracker_runtime.trackers import DEFAULT_TRACKER

    frames_src = Frames(clip / "frames")
    gt = read_label_sequence(clip / "masks")
    frames = list(frames_src)
    graphs = TFLiteGraphs(load_manifest(export_dir), "fp32", threads=threads)
    scores = {}
    for tracker in TRACKERS:
        say("segment", f"segmenting the demo clip with the TFLite graphs, tracker {tracker}")
        pred = list(segment(frames, gt[0], graphs, size, tracker))
        if tracker == DEFAULT_TRACKER:
            seg_dir = out / "segment"
            seg_dir.mkdir()
            with OverlayWriter(out / "overlay.gif", fps=6) as gif:
                for name, frame, lab in zip(frames_src.names, frames, pred, strict=True):
                    write_labels(seg_dir / f"{name}.png", lab)
                    gif.add(frame, lab)
        scores[tracker] = evaluate_labels("demo", gt, np.stack(pred)).summary()
    return scores


def _bench(out: Path, export_dir: Path, threads: int, say) -> list["FrameRow"]:
    """``bench --device host`` on fp32 + fp16: ``bench.json``, ``bench.png`` -> FrameRows."""
    from vosx.android_bench.bench import BenchOptions, run_bench
    from vosx.android_bench.report import per_frame, write_json, write_plot

    say("bench", "timing the graphs on this CPU (LiteRT with XNNPACK, and ONNX Runtime)")
    bench = run_bench(
        BenchOptions(
            export_dir=export_dir,
            device="host",
            delegates=("cpu",),
            precisions=("fp32", "fp16"),
            threads=threads,
            objects=2,
            runs=10,
            warmup=2,
            trials=1,
            cooldown_s=0.0,
        )
    )
    write_json(bench, out / "bench.json")
    write_plot(bench, out / "bench.png")
    return per_frame(bench)


def _ms(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _tables(report: "ExportReport", summary: DemoSummary) -> list["Table"]:
    """(title, header, rows) of every table: the export's, J&F per tracker, host latency."""
    from vosx.android_bench.bench import HOST_LITERT, HOST_ORT
    from vosx.export.render import demo_tables

    runtimes = {HOST_LITERT: "LiteRT + XNNPACK", HOST_ORT: "ONNX Runtime"}
    jf = [
        [t, f"{s['J&F-Mean']:.3f}", f"{s['J-Mean']:.3f}", f"{s['F-Mean']:.3f}"]
        for t, s in summary.jf.items()
    ]
    latency = [
        [
            runtimes.get(r.delegate, r.delegate),
            r.precision,
            str(r.objects),
            *(_ms(v) for v in (r.key_ms, r.value_ms, r.decoder_ms)),
            _ms(r.tracker_ms, "{:.2f}"),
            _ms(r.driver_ms),
            _ms(r.frame_ms),
            f"{r.fps:.2f}",
        ]
        for r in summary.bench
    ]
    latency_header = ["runtime", "precision", "K", "key ms", "value ms", "decoder ms"]
    latency_header += ["tracker ms", "driver ms", "frame ms", "FPS"]
    return [
        *demo_tables(report),
        ("DAVIS J&F on the demo clip (TFLite fp32)", ["tracker", "J&F", "J", "F"], jf),
        ("Host latency per frame (this CPU)", latency_header, latency),
    ]


def render_md(report: "ExportReport", tables: list["Table"]) -> str:
    """The report as Markdown (images referenced beside it; the bench plot on its own line)."""
    gpu = "every op supported" if report.gpu_compatible else "CPU fallback"
    lines = [
        "# vosx demo",
        "",
        f"Checkpoint `{report.checkpoint}`, input {report.size[0]}x{report.size[1]}, "
        f"export {report.export_seconds} s, GPU delegate: {gpu}.",
        "",
        "![overlay](overlay.gif)",
        "",
        "![bench](bench.png)",
    ]
    for title, header, rows in tables:
        lines += [
            "",
            f"## {title}",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def render_html(report: "ExportReport", tables: list["Table"], folder: Path) -> str:
    """The report as one self-contained HTML page (images inlined, the bench plot full width)."""

    def img(name: str, mime: str, style: str) -> str:
        data = base64.b64encode((folder / name).read_bytes()).decode()
        return f'<p><img alt="{name}" src="data:{mime};base64,{data}" style="{style}"></p>'

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>vosx demo</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px 8px;text-align:right}</style></head><body>",
        "<h1>vosx demo</h1>",
        f"<p>Checkpoint <code>{html.escape(report.checkpoint)}</code>, input "
        f"{report.size[0]}x{report.size[1]}, export {report.export_seconds} s.</p>",
        img("overlay.gif", "image/gif", "max-width:48%"),
        img("bench.png", "image/png", "width:100%;max-width:1100px"),
    ]
    for title, header, rows in tables:
        parts.append(f"<h2>{html.escape(title)}</h2><table><tr>")
        parts += [f"<th>{html.escape(h)}</th>" for h in header]
        parts.append("</tr>")
        for r in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
