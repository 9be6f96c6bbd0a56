"""``vosx demo``: the whole product on the bundled checkpoint and clip, in one folder.

Export (fp32 + fp16, verified) -> segment the bundled real clip (DAVIS 2016 ``bear``) with the
TFLite graphs, with no tracker, CV and PT -> DAVIS J&F against its ground truth ->
``bench --device host`` -> ``report.md`` and ``report.html`` (overlay GIF, bench plot, parity
and J&F tables).
Everything is written into a temporary sibling folder and renamed at the end.
"""

import base64
import html
import json
from pathlib import Path

import numpy as np

from vosx.files import check_output, replace_dir
from vosx.paths import DEMO_CLIP

TRACKERS = ("none", "cv", "pt")


def run_demo(
    out_dir: Path,
    checkpoint: Path | None = None,
    size: tuple[int, int] = (480, 864),
    threads: int = 2,
    force: bool = False,
    progress=None,
    clip: Path = DEMO_CLIP,
) -> dict:
    """Run every stage and write ``out_dir``; returns the summary written to ``summary.json``.

    ``clip`` is a folder with ``frames/`` and ``masks/`` (a ground-truth mask per frame): by
    default the bundled 30 real frames of DAVIS 2016 ``bear``.

    Raises:
        ConfigError: ``out_dir`` exists without ``force``.
        VosxError: any stage's own error (export parity, bad checkpoint, ...).
    """
    say = progress or (lambda stage, msg: None)
    out_dir = Path(out_dir)
    check_output(out_dir, [checkpoint, clip], force, kind="dir", what="-o")
    with replace_dir(out_dir) as tmp:
        summary = _run(tmp, checkpoint, size, threads, say, Path(clip))
    return summary


def _run(out: Path, checkpoint, size, threads, say, clip: Path) -> dict:
    from vosx.android_bench.bench import BenchOptions, run_bench
    from vosx.android_bench.report import per_frame, write_json, write_plot
    from vosx.export.pipeline import ExportOptions, export_all
    from vosx.manifest import load_manifest
    from vosx.tracker_runtime.io import Frames, OverlayWriter, read_label_sequence, write_labels
    from vosx.tracker_runtime.litert import TFLiteGraphs
    from vosx.tracker_runtime.metrics import evaluate_labels
    from vosx.tracker_runtime.segment import segment

    say("export", "exporting the checkpoint (fp32 + fp16) and verifying it")
    export_dir = out / "export"
    report = export_all(
        ExportOptions(checkpoint=checkpoint, out_dir=export_dir, size=size, threads=threads)
    ).report

    frames_src = Frames(clip / "frames")
    gt = read_label_sequence(clip / "masks")
    frames = list(frames_src)
    graphs = TFLiteGraphs(load_manifest(export_dir), "fp32", threads=threads)
    scores = {}
    for tracker in TRACKERS:
        say("segment", f"segmenting the demo clip with the TFLite graphs, tracker {tracker}")
        pred = list(segment(frames, gt[0], graphs, size, tracker))
        if tracker == "cv":
            seg_dir = out / "segment"
            seg_dir.mkdir()
            with OverlayWriter(out / "overlay.gif", fps=6) as gif:
                for name, frame, lab in zip(frames_src.names, frames, pred, strict=True):
                    write_labels(seg_dir / f"{name}.png", lab)
                    gif.add(frame, lab)
        scores[tracker] = evaluate_labels("demo", gt, np.stack(pred)).summary()

    say("bench", "timing the graphs on this CPU (LiteRT, XNNPACK)")
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
    frames_rows = [r.to_dict() for r in per_frame(bench)]

    summary = {
        "checkpoint": report["checkpoint"],
        "size": list(size),
        "export": {
            "seconds": report["export_seconds"],
            "parity": {
                g: {p: v["parity"] for p, v in e["precisions"].items()}
                for g, e in report["graphs"].items()
            },
            "gpu_compatible": all(
                v["gpu"]["compatible"]
                for e in report["graphs"].values()
                for v in e["precisions"].values()
                if v["gpu"] is not None
            ),
            "end_to_end": {
                p: {k: e[k] for k in ("min_iou", "mean_iou", "tie_fraction", "conclusive")}
                for p, e in report["end_to_end"].items()
            },
        },
        "jf": scores,
        "bench": frames_rows,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "report.md").write_text(render_md(summary))
    (out / "report.html").write_text(render_html(summary, out))
    return summary


def _tables(summary: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table in the report."""
    parity = [
        [g, p, f"{v['max_abs']:.2e}", f"{v['rel']:.2e}"]
        for g, precs in summary["export"]["parity"].items()
        for p, v in precs.items()
    ]
    e2e = [
        [
            p,
            f"{e['min_iou']:.4f}",
            f"{e['mean_iou']:.4f}",
            f"{e['tie_fraction']:.1%}",
            "yes" if e["conclusive"] else "no (untrained model)",
        ]
        for p, e in summary["export"]["end_to_end"].items()
    ]
    jf = [
        [t, f"{s['J&F-Mean']:.3f}", f"{s['J-Mean']:.3f}", f"{s['F-Mean']:.3f}"]
        for t, s in summary["jf"].items()
    ]
    bench = [
        [
            r["precision"],
            str(r["objects"]),
            f"{r['key_ms']:.1f}",
            f"{r['value_ms']:.1f}",
            f"{r['decoder_ms']:.1f}",
            "-" if r["tracker_ms"] is None else f"{r['tracker_ms']:.2f}",
            "-" if r["driver_ms"] is None else f"{r['driver_ms']:.1f}",
            f"{r['frame_ms']:.1f}",
            f"{r['fps']:.2f}",
        ]
        for r in summary["bench"]
    ]
    return [
        (
            "Parity of each TFLite graph against PyTorch",
            ["graph", "precision", "max abs", "rel"],
            parity,
        ),
        (
            "End to end: TFLite vs PyTorch, same driver (10-frame synthetic clip)",
            ["precision", "min IoU", "mean IoU", "near ties left out", "conclusive"],
            e2e,
        ),
        ("DAVIS J&F on the demo clip (TFLite fp32)", ["tracker", "J&F", "J", "F"], jf),
        (
            "Host latency per frame (this CPU, LiteRT + XNNPACK)",
            [
                "precision",
                "K",
                "key ms",
                "value ms",
                "decoder ms",
                "tracker ms",
                "driver ms",
                "frame ms",
                "FPS",
            ],
            bench,
        ),
    ]


def render_md(summary: dict) -> str:
    """The report as Markdown (images referenced beside it)."""
    lines = [
        "# vosx demo",
        "",
        f"Checkpoint `{summary['checkpoint']}`, input {summary['size'][0]}x{summary['size'][1]}, "
        f"export {summary['export']['seconds']} s, GPU delegate: "
        f"{'every op supported' if summary['export']['gpu_compatible'] else 'CPU fallback'}.",
        "",
        "![overlay](overlay.gif) ![bench](bench.png)",
    ]
    for title, header, rows in _tables(summary):
        lines += [
            "",
            f"## {title}",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def render_html(summary: dict, folder: Path) -> str:
    """The report as one self-contained HTML page (images inlined)."""

    def img(name: str, mime: str) -> str:
        data = base64.b64encode((folder / name).read_bytes()).decode()
        return f'<img alt="{name}" src="data:{mime};base64,{data}" style="max-width:48%">'

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>vosx demo</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px 8px;text-align:right}</style></head><body>",
        "<h1>vosx demo</h1>",
        f"<p>Checkpoint <code>{html.escape(summary['checkpoint'])}</code>, input "
        f"{summary['size'][0]}x{summary['size'][1]}, export {summary['export']['seconds']} s.</p>",
        img("overlay.gif", "image/gif"),
        img("bench.png", "image/png"),
    ]
    for title, header, rows in _tables(summary):
        parts.append(f"<h2>{html.escape(title)}</h2><table><tr>")
        parts += [f"<th>{html.escape(h)}</th>" for h in header]
        parts.append("</tr>")
        for r in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
