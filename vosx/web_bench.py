"""``vosx bench EXPORT_DIR --device adb --runtime browser``: graphs timed in the phone's browser.

Flow: serve the app, the export folder and the bundled demo clip on 127.0.0.1 (``vosx.web``);
``adb reverse tcp:PORT tcp:PORT`` so that ``http://localhost:PORT`` on the phone is this server
(a secure origin, so WebGPU is allowed); open the bench page in Chrome with a VIEW intent
(``am start``, every argument ``shlex.quote``-d by ``Device.shell``); the page segments N frames per
accelerator (``webgpu``, then ``wasm``) and POSTs its per-stage timings to ``/bench/result``; then
the reverse rule is removed (also on errors and Ctrl-C). An accelerator the phone lacks (no
WebGPU) is reported as unavailable, not an error; a page that never posts is one line after
``timeout_s``.
"""

import json
import secrets
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vosx.errors import BenchmarkError, ConfigError, DeviceError
from vosx.paths import DEMO_CLIP

if TYPE_CHECKING:
    from vosx.android_bench.adb import Adb
    from vosx.web import WebServer

CHROME_ACTIVITY = "com.android.chrome/com.google.android.apps.chrome.Main"
ACCELERATORS = ("webgpu", "wasm")
STAGES = ("preprocess", "key_encoder", "decoder", "postprocess", "value_encoder", "total")


@dataclass
class BrowserBenchResult:
    """What the page posted, per accelerator, plus where it ran."""

    serial: str
    url: str
    user_agent: str
    cross_origin_isolated: bool
    results: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "serial": self.serial,
            "url": self.url,
            "user_agent": self.user_agent,
            "cross_origin_isolated": self.cross_origin_isolated,
            "results": self.results,
        }

    def lines(self) -> list[str]:
        """A plain-text table: accelerator, FPS and per-stage mean milliseconds."""
        out = [f"browser bench on {self.serial} ({self.user_agent[:80]})"]
        out.append(f"{'accelerator':<12}{'FPS':>8}" + "".join(f"{s:>15}" for s in STAGES))
        for r in self.results:
            if r.get("error"):
                out.append(f"{r['accelerator']:<12}  unavailable: {r['error']}")
                continue
            ms = r.get("mean_ms", {})
            out.append(
                f"{r['accelerator']:<12}{r.get('fps', 0):>8.2f}"
                + "".join(f"{ms.get(s, float('nan')):>15.1f}" for s in STAGES)
            )
        return out


def bench_browser_adb(
    export_dir: Path,
    serials: tuple[str, ...] = (),
    frames: int = 10,
    timeout_s: float = 300.0,
    accelerators: tuple[str, ...] = ACCELERATORS,
    clip: tuple[Path, Path] = (DEMO_CLIP / "frames", DEMO_CLIP / "masks" / "00000.png"),
    port: int = 0,
) -> BrowserBenchResult:
    """Time the export folder's graphs in the phone's Chrome, N frames per accelerator.

    Args:
        export_dir: The ``vosx export`` folder.
        serials: ``--serial`` (at most one here), else ANDROID_SERIAL, else the only device.
        frames: Frames segmented per accelerator (the first, which only memorises, is excluded
            from the means).
        timeout_s: How long to wait for the page's timings.
        accelerators: Tried in order; one the phone lacks is reported, not fatal.
        clip: (frames folder, first mask) the page segments.
        port: Port of the local server (0: a free one; the phone uses the same number).

    Raises:
        DeviceError: adb or the phone is unusable, or ``adb reverse`` / ``am start`` failed.
        BenchmarkError: the page posted nothing within ``timeout_s``.
        ManifestError: a bad export folder.
    """
    from vosx.web import Clip, WebServer

    if not 1 <= frames <= 10_000:
        raise ConfigError(f"--runs {frames}: give 1..10000 frames per accelerator")
    device = _one_phone(serials)
    token = secrets.token_hex(8)
    got: list[dict] = []

    def accept(data: dict) -> None:
        if data.get("token") == token:
            got.append(data)

    server = WebServer(export_dir, Clip.open(*clip), port=port, on_result=accept).start()
    url = _bench_url(server.port, frames, accelerators, token)
    try:
        _run_page(device, server, url, timeout_s, got)
    finally:
        server.close()
    report = got[0]
    results = report.get("results")
    if not isinstance(results, list):
        raise BenchmarkError(f"device {device.serial}: the page posted no results list")
    return BrowserBenchResult(
        serial=device.serial,
        url=url,
        user_agent=str(report.get("user_agent", "")),
        cross_origin_isolated=bool(report.get("cross_origin_isolated")),
        results=[r for r in results if isinstance(r, dict)],
    )


def _one_phone(serials: tuple[str, ...]) -> "Adb":
    """The one phone to use (``--serial``, else ANDROID_SERIAL, else the only device)."""
    from vosx.android_bench.adb import Adb, find_adb, list_devices, select_serials

    adb = find_adb()
    chosen = select_serials(list_devices(adb), serials)
    if len(chosen) != 1:
        raise ConfigError("--runtime browser runs on one phone at a time; give one --serial")
    return Adb(adb, chosen[0])


def _bench_url(port: int, frames: int, accelerators: tuple[str, ...], token: str) -> str:
    """The bench page's URL on the phone (``localhost`` through ``adb reverse``)."""
    query = urllib.parse.urlencode(
        {
            "bench": "1",
            "clip": "/clip/",
            "tracker": "none",
            "frames": str(frames),
            "accelerators": ",".join(accelerators),
            "token": token,
        }
    )
    return f"http://localhost:{port}/?{query}"


def _run_page(
    device: "Adb", server: "WebServer", url: str, timeout_s: float, got: list[dict]
) -> None:
    """``adb reverse``, open ``url`` in Chrome, wait for the page's post into ``got``; the
    reverse rule is removed on every exit."""
    rule = f"tcp:{server.port}"
    proc = device.run(["reverse", rule, rule], 30, "adb reverse")
    if proc.returncode != 0:
        raise DeviceError(
            f"device {device.serial}: adb reverse {rule} failed "
            f"({(proc.stderr or proc.stdout).strip()[:160]}); update platform-tools"
        )
    try:
        res = device.shell(
            ["am", "start", "-a", "android.intent.action.VIEW", "-d", url, "-n", CHROME_ACTIVITY],
            30,
            "opening the bench page in Chrome",
        )
        if res.rc != 0 or "Error" in res.output:
            raise DeviceError(
                f"device {device.serial}: Chrome did not open the page "
                f"({res.output.strip()[-160:]}); install Chrome and unlock the phone"
            )
        if not server.result_event.wait(timeout_s) or not got:
            raise BenchmarkError(
                f"device {device.serial}: the bench page posted no timings within "
                f"{timeout_s:.0f} s; unlock the phone, keep Chrome in front, or give a longer "
                "--timeout"
            )
    finally:
        device.run(["reverse", "--remove", rule], 30, "adb reverse --remove")


def write_json(result: BrowserBenchResult, path: Path) -> Path:
    """The full result as JSON (``--json``), written atomically."""
    from vosx.files import atomic_write

    return atomic_write(path, json.dumps(result.to_dict(), indent=1) + "\n")


def bench_cli(
    export_dir: Path,
    runtime: str,
    device: str,
    serials: list[str] | None,
    frames: int,
    timeout_s: float,
    json_out: Path | None,
    force: bool,
    echo=print,
) -> None:
    """``vosx bench --runtime browser``: check the options, run, print the table, write --json.

    Raises:
        ConfigError: an unknown runtime, ``--device host`` or a refused ``--json`` path.
    """
    from vosx.output_policy import check_output

    if runtime != "browser":
        raise ConfigError(f"--runtime {runtime}: use native (benchmark_model) or browser")
    if device != "adb":
        raise ConfigError(
            "--runtime browser times a phone's browser (--device adb); on this machine run "
            "benchmarks/web_bench.py"
        )
    if json_out is not None:
        check_output(json_out, [export_dir], force=force, example="bench.json")
    result = bench_browser_adb(export_dir, tuple(serials or ()), frames, timeout_s)
    for line in result.lines():
        echo(line)
    if json_out is not None:
        echo(f"wrote {write_json(result, json_out)}")
