"""In-browser wasm per-frame time beside ``vosx bench --device host`` LiteRT, on the same graphs.

Both sides time the same export folder's fp32 graphs on this machine, in one run:

* browser: headless Chromium (Selenium) opens the app served by ``vosx web``'s server on the
  bundled demo clip (one object, no tracker), LiteRT.js with ``accelerator: 'wasm'`` (threaded
  WebAssembly + relaxed SIMD when the page is cross-origin isolated, which the server arranges);
  per-stage means over the frames after the first;
* host: ``vosx bench EXPORT_DIR --device host --precision fp32 --objects 1`` (LiteRT + XNNPACK),
  its per-graph steady-state latency and per-frame estimate.

Target (issue 22): browser wasm per-frame time within 2x of the host LiteRT figure.

Usage:
    vosx export -o /tmp/web_export --precision fp32
    python benchmarks/web_bench.py /tmp/web_export [--frames 10] [--threads 2]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from vosx.paths import DEMO_CLIP
from vosx.web import Clip, WebServer
from vosx.web_browser import headless_chromium, wait_done

GRAPH_STAGE = {"key_encoder": "key_encoder", "decoder": "decoder", "value_encoder": "value_encoder"}


def browser_wasm(export_dir: Path, frames: int) -> dict:
    """The page's timings (``vosxDone.timings``) for ``frames`` demo frames on wasm."""
    clip = Clip.open(DEMO_CLIP / "frames", DEMO_CLIP / "masks" / "00000.png")
    with WebServer(export_dir, clip, port=0) as server:
        driver = headless_chromium()
        try:
            driver.get(
                f"{server.url}?clip=/clip/&accelerator=wasm&tracker=none&auto=1&frames={frames}"
            )
            done = wait_done(driver, 1800)
        finally:
            driver.quit()
    if not done or "error" in done:
        sys.exit(f"web_bench: the page failed: {done}")
    return done["timings"]


def host_litert(export_dir: Path, threads: int) -> dict:
    """``vosx bench --device host`` JSON (fp32, one object)."""
    vosx = Path(sys.executable).with_name("vosx")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "host.json"
        cmd = [str(vosx), "bench", str(export_dir), "--device", "host", "--precision", "fp32"]
        cmd += ["--objects", "1", "--threads", str(threads), "--json", str(out)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("--frames", type=int, default=10, help="demo frames in the browser")
    parser.add_argument("--threads", type=int, default=2, help="host LiteRT threads")
    args = parser.parse_args()

    page = browser_wasm(args.export_dir, args.frames)
    host = host_litert(args.export_dir, args.threads)
    rows = [
        r
        for r in host["summary"]
        if r["precision"] == "fp32" and r["delegate"] == "cpu" and "onnx" not in str(r["tool"])
    ]
    host_ms = {r["graph"]: r["steady_ms"] for r in rows}
    frame = [
        r
        for r in host["per_frame"]
        if r["precision"] == "fp32" and r["delegate"] == "cpu" and r["objects"] == 1
    ]
    ms = page["mean_ms"]
    print(
        f"browser: headless Chromium, LiteRT.js wasm, threads={page['threads']}, "
        f"{page['frames']} demo frames (means over frames 2..N); host: vosx bench --device host "
        f"LiteRT fp32, {args.threads} threads"
    )
    print(f"{'stage':<16}{'browser wasm ms':>18}{'host LiteRT ms':>18}{'ratio':>8}")
    for graph, stage in GRAPH_STAGE.items():
        h = host_ms.get(graph)
        ratio = f"{ms[stage] / h:8.2f}" if h else f"{'-':>8}"
        print(f"{stage:<16}{ms[stage]:>18.1f}{(h or float('nan')):>18.1f}{ratio}")
    for stage in ("preprocess", "postprocess"):
        print(f"{stage:<16}{ms[stage]:>18.1f}{'(driver)':>18}")
    if frame:
        f = frame[0]
        ratio = ms["total"] / f["frame_ms"]
        print(f"{'per frame':<16}{ms['total']:>18.1f}{f['frame_ms']:>18.1f}{ratio:8.2f}")
        verdict = "within" if ratio <= 2 else "NOT within"
        print(f"browser wasm per-frame time is {verdict} 2x of host LiteRT ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
