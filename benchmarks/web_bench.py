"""In-browser wasm per-frame time beside ``vosx bench --device host`` LiteRT, on the same graphs.

Both sides time the same export folder's fp32 graphs on this machine, in one run, with the same
CPU thread count and at the same nice value (``vosx.web_browser`` keeps Chromium at the caller's
nice value; run as root it would otherwise raise its own priority above a niced host side):

* browser: headless Chromium (Selenium) opens the app served by ``vosx web``'s server on the
  bundled demo clip (one object, no tracker), LiteRT.js with ``accelerator: 'wasm'`` (threaded
  WebAssembly + relaxed SIMD when the page is cross-origin isolated, which the server arranges),
  ``threads=N``; the page warms each graph up once, then the per-stage means over the frames
  after the first; ``--app DIR`` (repeatable) times other builds of the app beside it;
* host: ``vosx bench EXPORT_DIR --device host --precision fp32 --objects 1 --threads N``
  (LiteRT + XNNPACK), its per-graph steady-state latency and per-frame estimate.

Wall times on a loaded machine measure its scheduler as much as the kernels: each side's load
average is printed, and ``--cpu`` adds a load-independent figure, CPU milliseconds per frame on
one thread (the page's renderer process, read from /proc, beside host LiteRT's three graphs in
this process, ``time.process_time``).

Target (issue 22): browser wasm per-frame time within 2x of the host LiteRT figure.

Usage:
    vosx export -o /tmp/web_export --precision fp32
    python benchmarks/web_bench.py /tmp/web_export [--frames 10] [--threads 2] [--cpu]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from vosx.paths import DEMO_CLIP
from vosx.web import WEB_APP, Clip, WebServer
from vosx.web_browser import headless_chromium, process_tree, wait_done

GRAPHS = ("key_encoder", "decoder", "value_encoder")
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _load() -> float:
    return os.getloadavg()[0]


def _page_url(server: WebServer, frames: int, threads: int) -> str:
    return (
        f"{server.url}?clip=/clip/&accelerator=wasm&tracker=none&auto=1&frames={frames}"
        f"&threads={threads}&labels=0"
    )


def browser_wasm(export_dir: Path, frames: int, threads: int, app_dir: Path) -> dict:
    """The page's timings (``vosxDone.timings``) for ``frames`` demo frames on wasm."""
    clip = Clip.open(DEMO_CLIP / "frames", DEMO_CLIP / "masks" / "00000.png")
    with WebServer(export_dir, clip, port=0, app_dir=app_dir) as server:
        driver = headless_chromium()
        try:
            driver.get(_page_url(server, frames, threads))
            done = wait_done(driver, 1800)
        finally:
            driver.quit()
    if not done or "error" in done:
        sys.exit(f"web_bench: the page failed: {done}")
    return done["timings"]


def _renderer_cpu_s(root: int) -> float:
    """CPU seconds (user + system, all threads) of the Chromium renderers under ``root``."""
    total = 0.0
    for pid in process_tree(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if b"--type=renderer" in cmdline:
            total += (int(stat[11]) + int(stat[12])) / CLK_TCK
    return total


def browser_cpu_ms(export_dir: Path, frames: int, app_dir: Path) -> float:
    """Renderer CPU milliseconds per frame, one thread, frames 2..N (after the page's warm-up).

    A thread samples the renderers' CPU time every 10 ms with the wall clock; the CPU time at the
    end of frame 1 and of frame N is interpolated at the times the page lists in
    ``window.vosxFrameEnds``, so that a late poll of the page cannot move the marks.
    """
    clip = Clip.open(DEMO_CLIP / "frames", DEMO_CLIP / "masks" / "00000.png")
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    with WebServer(export_dir, clip, port=0, app_dir=app_dir) as server:
        driver = headless_chromium()
        root = driver.service.process.pid

        def sample() -> None:
            while not stop.is_set():
                samples.append((time.time() * 1e3, _renderer_cpu_s(root)))
                stop.wait(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            driver.get(_page_url(server, frames, 1))
            done = wait_done(driver, 1800)
            ends = driver.execute_script("return window.vosxFrameEnds || [];")
        finally:
            stop.set()
            sampler.join()
            driver.quit()
    if not done or "error" in done or len(ends) != frames:
        sys.exit(f"web_bench: the page failed: {done}")
    t, cpu = zip(*samples, strict=True)
    start, end = np.interp([ends[0], ends[-1]], t, cpu)
    return (end - start) / (frames - 1) * 1e3


def host_cpu_ms(export_dir: Path, runs: int = 4) -> float:
    """Host LiteRT (XNNPACK, one thread) CPU milliseconds for key + decoder + value encoder."""
    from vosx.tracker_runtime.litert import make_interpreter

    total = 0.0
    for graph in GRAPHS:
        interp = make_interpreter(export_dir / f"{graph}_float32.tflite", threads=1)
        for d in interp.get_input_details():
            interp.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
        interp.invoke()  # warm-up, as the page's
        t0 = time.process_time()
        for _ in range(runs):
            interp.invoke()
        total += (time.process_time() - t0) / runs * 1e3
    return total


def host_litert(export_dir: Path, threads: int, runs: int, trials: int) -> dict:
    """``vosx bench --device host`` JSON (fp32, one object)."""
    vosx = Path(sys.executable).with_name("vosx")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "host.json"
        cmd = [str(vosx), "bench", str(export_dir), "--device", "host", "--precision", "fp32"]
        cmd += ["--objects", "1", "--threads", str(threads), "--json", str(out)]
        cmd += ["--runs", str(runs), "--trials", str(trials)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("--frames", type=int, default=10, help="demo frames in the browser")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads, both sides")
    parser.add_argument(
        "--app",
        type=Path,
        action="append",
        help="a built app folder to time (repeatable; default: the package's vosx/web_app)",
    )
    parser.add_argument("--host-runs", type=int, default=10, help="vosx bench --runs")
    parser.add_argument("--host-trials", type=int, default=1, help="vosx bench --trials")
    parser.add_argument("--cpu", action="store_true", help="also CPU ms per frame, one thread")
    args = parser.parse_args()
    if args.frames < 2:
        parser.error("--frames must be >= 2 (frame 1 only memorises the mask)")
    return args


def host_figures(host: dict) -> tuple[dict[str, float], float | None]:
    """``host_litert``'s LiteRT fp32 CPU rows: steady ms per graph, and ms per frame (K=1)."""
    rows = [
        r
        for r in host["summary"]
        if r["precision"] == "fp32" and r["delegate"] == "cpu" and "onnx" not in str(r["tool"])
    ]
    frame = [
        r
        for r in host["per_frame"]
        if r["precision"] == "fp32" and r["delegate"] == "cpu" and r["objects"] == 1
    ]
    return {r["graph"]: r["steady_ms"] for r in rows}, frame[0]["frame_ms"] if frame else None


def print_page(app: Path, load: float, page: dict, host_ms: dict, host_frame: float | None) -> None:
    """One app's browser stages beside the host's, with the per-frame ratio and its verdict."""
    ms = page["mean_ms"]
    print(
        f"\nbrowser ({app}): headless Chromium, LiteRT.js wasm, threaded={page['threads']}, "
        f"cpu_threads={page.get('cpu_threads', '?')}, {page['frames']} demo frames (means over "
        f"frames 2..N), warm-up {page.get('warmup_ms', float('nan')):.0f} ms, load average "
        f"{load:.1f}"
    )
    print(f"{'stage':<16}{'browser wasm ms':>18}{'host LiteRT ms':>18}{'ratio':>8}")
    for graph in GRAPHS:
        h = host_ms.get(graph)
        ratio = f"{ms[graph] / h:8.2f}" if h else f"{'-':>8}"
        print(f"{graph:<16}{ms[graph]:>18.1f}{(h or float('nan')):>18.1f}{ratio}")
    for stage in ("preprocess", "postprocess"):
        print(f"{stage:<16}{ms[stage]:>18.1f}{'(driver)':>18}")
    if "copy_ms" in page:
        print(f"{'  of it copies':<16}{page['copy_ms']:>18.1f}{'-':>18}")
    if host_frame:
        ratio = ms["total"] / host_frame
        print(f"{'per frame':<16}{ms['total']:>18.1f}{host_frame:>18.1f}{ratio:8.2f}")
        verdict = "within" if ratio <= 2 else "NOT within"
        print(f"browser wasm per-frame time is {verdict} 2x of host LiteRT ({ratio:.2f}x)")


def main() -> None:
    args = parse_args()
    apps = args.app or [WEB_APP]
    pages = []
    for app in apps:
        load = _load()
        pages.append((app, load, browser_wasm(args.export_dir, args.frames, args.threads, app)))
    load = _load()
    host = host_litert(args.export_dir, args.threads, args.host_runs, args.host_trials)
    host_load = (load + _load()) / 2
    host_ms, host_frame = host_figures(host)
    print(
        f"host: vosx bench --device host LiteRT fp32, {args.threads} threads, load average "
        f"{host_load:.1f} on {os.cpu_count()} CPUs"
    )
    for app, load, page in pages:
        print_page(app, load, page, host_ms, host_frame)
    if args.cpu:
        load = _load()
        page_cpu = browser_cpu_ms(args.export_dir, args.frames, apps[-1])
        host_cpu = host_cpu_ms(args.export_dir)
        print(
            f"\nCPU ms per frame, one thread (load average {load:.1f}): browser renderer "
            f"{page_cpu:.0f} (whole frame: graphs, JS pre/post-processing, drawing), host "
            f"LiteRT graphs {host_cpu:.0f}: {page_cpu / host_cpu:.2f}x"
        )


if __name__ == "__main__":
    main()
