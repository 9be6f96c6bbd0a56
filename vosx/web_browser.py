"""Drive the browser app in headless Chromium (Selenium + Debian's chromium / chromium-driver).

Used by the real-browser tests, ``benchmarks/web_bench.py`` and the fake adb's stand-in phone:
open a page of ``vosx web`` and read ``window.vosxDone`` back. Needs the ``dev`` extra
(``selenium``) and the ``chromium`` + ``chromium-driver`` packages (``.ci/run`` installs them).

WebGPU in headless Chromium runs on SwiftShader's Vulkan (shipped with Debian's chromium):
``--enable-unsafe-webgpu --enable-features=Vulkan --use-vulkan=swiftshader
--use-webgpu-adapter=swiftshader``.
"""

import base64
import ctypes
import io
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from vosx.errors import ConfigError, InputDataError

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_CANDIDATES = ("chromedriver", "chromium-driver")
WEBGPU_FLAGS = (
    "--enable-unsafe-webgpu",
    "--enable-features=Vulkan",
    "--use-vulkan=swiftshader",
    "--use-webgpu-adapter=swiftshader",
    "--ignore-gpu-blocklist",
)
_PR_CAPBSET_DROP = 24  # linux/prctl.h
_CAP_SYS_NICE = 23  # linux/capability.h


def _no_priority_raise() -> None:
    """In the chromedriver child before exec: drop CAP_SYS_NICE from the bounding set, so that
    neither chromedriver nor the Chromium it starts can lower their nice value below the caller's.

    Run as root, Chromium otherwise sets its renderer to nice 0 and its browser process to -8
    whatever the caller's nice value: it would time the page at a higher priority than the host
    side of a benchmark run under ``nice``, and take CPU from the machine's other jobs. Without
    root (no CAP_SYS_NICE) or off Linux this changes nothing.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_CAPBSET_DROP, _CAP_SYS_NICE, 0, 0, 0)  # EPERM without root: nothing to drop


def find_chromium() -> tuple[str, str]:
    """Paths of the chromium binary and its chromedriver.

    Raises:
        ConfigError: either is missing, with the apt command that installs them.
    """
    browser = os.environ.get("VOSX_CHROMIUM") or next(
        (p for p in map(shutil.which, CHROMIUM_CANDIDATES) if p), None
    )
    driver = os.environ.get("VOSX_CHROMEDRIVER") or next(
        (p for p in map(shutil.which, DRIVER_CANDIDATES) if p), None
    )
    if not browser or not driver:
        raise ConfigError(
            "headless Chromium is needed (chromium and chromedriver not both found); "
            "run apt-get install chromium chromium-driver"
        )
    return browser, driver


def headless_chromium(
    webgpu: bool = False, width: int = 1280, height: int = 1000, flags: tuple[str, ...] = ()
):
    """A Selenium WebDriver on headless Chromium (WebGPU on SwiftShader when ``webgpu``; extra
    command-line ``flags``, e.g. ``--js-flags=...``). Chromium runs at the caller's nice value.
    """
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise ConfigError(
            "driving the browser needs selenium; run pip install 'vosx[dev]'"
        ) from None
    browser, driver = find_chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(flag)
    for flag in (*(WEBGPU_FLAGS if webgpu else ()), *flags):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=driver, popen_kw={"preexec_fn": _no_priority_raise})
    return webdriver.Chrome(options=opts, service=service)


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc (Linux): e.g. a WebDriver's
    ``driver.service.process.pid``, chromedriver, and the Chromium processes under it."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(p for p, pp in parent.items() if pp == pid)
    return tree


def wait_done(driver, timeout_s: float, poll_s: float = 0.5) -> dict | None:
    """Wait for ``window.vosxDone``: its value, ``{"error": message}`` when it rejected, or None
    after ``timeout_s`` (polled, so that no single WebDriver call outlives its HTTP timeout).
    """
    driver.execute_script(
        """
        window.__vosxResult = undefined;
        const hook = () => {
          if (!window.vosxDone) { setTimeout(hook, 50); return; }
          window.vosxDone.then((v) => { window.__vosxResult = v; },
            (e) => { window.__vosxResult = {error: String(e && e.message || e)}; });
        };
        hook();
        """
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = driver.execute_script("return window.__vosxResult === undefined ? null : true;")
        if result:
            return driver.execute_script("return window.__vosxResult;")
        time.sleep(poll_s)
    return None


def page_message(driver) -> tuple[str, str]:
    """The page's one-line message and its class ("error" or "status"), read together in one
    script (read one at a time, an error shown in between pairs the old text with "error")."""
    text, cls = driver.execute_script(
        "const m = document.getElementById('message'); return [m.innerText, m.className];"
    )
    return text.strip(), cls


def decode_labels(pngs: list[str]) -> list[np.ndarray]:
    """The base64 indexed PNGs of ``vosxDone.labels`` -> H x W uint8 label maps."""
    from PIL import Image

    out = []
    for i, b64 in enumerate(pngs):
        with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
            if im.mode != "P":
                raise InputDataError(f"label map {i} from the page is {im.mode}, not indexed")
            out.append(np.asarray(im).copy())
    return out


def save_screenshot(driver, path: Path) -> Path:
    """A PNG screenshot of the page (a test artefact)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path
