"""``vosx bench EXPORT_DIR --device adb --runtime browser`` against the fake adb, whose phone
browser is headless Chromium on this machine (tests/fakes/fake_phone_browser.py): the reverse
rule is set and removed, the page is opened with a quoted VIEW intent, a phone without WebGPU is
reported (not a crash) while wasm is timed, and a page that never answers is one line after the
timeout.
"""

import json
import os
import signal
import time

import pytest

from tests.conftest import run_cli
from tests.fakes.world import FakeAdbWorld
from tests.web_fixtures import real_export

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return real_export(tmp_path_factory)


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = FakeAdbWorld(tmp_path, monkeypatch)
    yield w
    pids = w.dir / "browser_pids"
    for line in pids.read_text().split() if pids.exists() else []:
        try:  # the fake phone browsers this test started (each leads its own process group)
            os.killpg(int(line), signal.SIGTERM)
        except ProcessLookupError:
            pass


def test_phone_without_webgpu_is_reported_and_wasm_is_timed(
    world, export_dir, tmp_path, monkeypatch, capsys
):
    world.add_device(browser={"webgpu": False, "answers": True})
    out_json = tmp_path / "browser.json"
    code = run_cli(
        monkeypatch, "bench", export_dir, "--runtime", "browser", "--runs", "3",
        "--timeout", "600", "--json", out_json,
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    webgpu = next(ln for ln in lines if ln.startswith("webgpu"))
    assert "unavailable: WebGPU is not available in this browser" in webgpu
    wasm = next(ln for ln in lines if ln.startswith("wasm"))
    assert float(wasm.split()[1]) > 0  # FPS
    report = json.loads(out_json.read_text())
    by_acc = {r["accelerator"]: r for r in report["results"]}
    assert by_acc["wasm"]["frames"] == 3 and by_acc["wasm"]["mean_ms"]["key_encoder"] > 0
    assert report["cross_origin_isolated"] is True
    # the reverse rule was set for the server's port, then removed
    calls = [c[2:] for c in world.calls() if c[:1] == ["-s"]]
    rule = next(c for c in calls if c[:1] == ["reverse"] and c[1] != "--remove")[1]
    assert ["reverse", "--remove", rule] in calls
    assert world.reload()["devices"]["R5CT10ABCDE"]["reverse"] == {}
    # the intent's URL (with '&') reached the device shell quoted
    am = next(c for c in world.shell_commands() if c.startswith("am start"))
    assert f"-d 'http://localhost:{rule[4:]}/?bench=1&" in am, am


def test_page_that_never_answers_times_out_in_one_line(world, export_dir, monkeypatch, capsys):
    world.add_device(browser={"webgpu": True, "answers": False})
    t0 = time.monotonic()
    code = run_cli(monkeypatch, "bench", export_dir, "--runtime", "browser", "--timeout", "3")
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert "\n" not in err and "posted no timings within 3 s" in err, err
    assert time.monotonic() - t0 < 60
    assert world.reload()["devices"]["R5CT10ABCDE"]["reverse"] == {}
