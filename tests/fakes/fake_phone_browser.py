"""The fake adb's phone browser: headless Chromium opening the page an ``am start`` intent named.

Started detached by ``fake_adb.py`` (``cmd_am``) with the URL already mapped through the fake's
``adb reverse`` rules to this machine's port. ``--no-webgpu`` emulates a phone whose Chrome has no
WebGPU (``navigator.gpu`` removed before any page script runs). The browser stays until the page
resolves ``window.vosxDone`` (it has posted its timings by then) or ``--timeout`` passes.

Usage: python fake_phone_browser.py URL [--no-webgpu] [--timeout S]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vosx.web_browser import headless_chromium, wait_done  # noqa: E402

NO_WEBGPU = "Object.defineProperty(Navigator.prototype, 'gpu', {get: () => undefined});"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--no-webgpu", action="store_true")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    driver = headless_chromium(webgpu=not args.no_webgpu)
    try:
        if args.no_webgpu:
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": NO_WEBGPU})
        driver.get(args.url)
        print(wait_done(driver, args.timeout), flush=True)
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
