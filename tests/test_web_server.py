"""``vosx web``'s server and command, without a browser: what is served (app, export folder,
clip, bench results), what is refused (paths outside the export folder and the app, symlinks,
unlisted clip files), the cross-origin-isolation headers, the 127.0.0.1 default, the one-line
errors, and a clean stop on Ctrl-C of the real command.
"""

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fakes import default_sigint
from vosx.errors import ConfigError, InputDataError, ManifestError
from vosx.manifest import FORMAT_NAME, FORMAT_VERSION
from vosx.web import WEB_APP, Clip, WebAppMissingError, WebServer, check_app

H, W = 64, 96


def _manifest(h: int = H, w: int = W) -> dict:
    """A schema-valid manifest for an h x w export (files need not exist: verify=False)."""
    n, h16, w16 = (h // 16) * (w // 16), h // 16, w // 16

    def t(name, shape):
        return {"name": name, "shape": shape, "dtype": "float32"}

    feats = [t("f16c", [1, h16, w16, 96]), t("f8", [1, 2 * h16, 2 * w16, 32])]
    feats.append(t("f4", [1, 4 * h16, 4 * w16, 24]))
    io = {
        "key_encoder": (
            [t("image", [1, h, w, 3])],
            [t("key", [1, 1, n, 32]), feats[0], t("f16", [1, h16, w16, 96]), *feats[1:]],
        ),
        "value_encoder": (
            [t("mask", [1, h, w, 1]), t("f16", [1, h16, w16, 96])],
            [t("value", [1, 1, n, 64])],
        ),
        "decoder": (
            [t(k, [1, 1, n, 32]) for k in ("qk", "mk_first", "mk_last")]
            + [t(k, [1, 1, n, 64]) for k in ("mv_first", "mv_last")]
            + feats,
            [t("logits", [1, h, w, 1])],
        ),
    }
    graphs = {
        g: {
            "onnx": f"{g}.onnx",
            "files": {"fp32": {"path": f"{g}_float32.tflite", "sha256": "0" * 64, "bytes": 4}},
            "inputs": ins,
            "outputs": outs,
        }
        for g, (ins, outs) in io.items()
    }
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "input": {"height": h, "width": w},
        "graphs": graphs,
    }


@pytest.fixture
def export_dir(tmp_path) -> Path:
    d = tmp_path / "export"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps(_manifest()))
    for g in ("key_encoder", "value_encoder", "decoder"):
        (d / f"{g}_float32.tflite").write_bytes(b"TFL3")
    (tmp_path / "secret.txt").write_text("outside the export folder")
    return d


@pytest.fixture
def clip(tmp_path) -> Clip:
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        Image.new("RGB", (W, H), (i, 0, 0)).save(frames / f"{i:05d}.jpg")
    (frames / "notes.txt").write_text("not a frame")
    mask = tmp_path / "mask.png"
    Image.new("P", (W, H), 1).save(mask)
    return Clip.open(frames, mask)


def _get(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_built_app_is_in_the_package():
    assert check_app() == WEB_APP
    for name in ("index.html", "app.js", "style.css", "BUILD.json"):
        assert (WEB_APP / name).is_file(), name
    build = json.loads((WEB_APP / "BUILD.json").read_text())
    lock = json.loads(
        (Path(__file__).resolve().parents[1] / "web" / "package-lock.json").read_text()
    )
    assert build["litertjs"] == lock["packages"]["node_modules/@litertjs/core"]["version"]
    for stem in build["wasm"]:
        assert (WEB_APP / "wasm" / f"{stem}.wasm").stat().st_size > 1_000_000, stem


def test_serves_app_export_and_clip(export_dir, clip):
    with WebServer(export_dir, clip, port=0) as server:
        assert server.httpd.server_address[0] == "127.0.0.1"
        status, body, headers = _get(server.url)
        assert status == 200 and b'<script type="module" src="app.js">' in body
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        status, _, headers = _get(server.url + "wasm/litert_wasm_internal.wasm")
        assert status == 200 and headers["Content-Type"] == "application/wasm"
        status, body, _ = _get(server.url + "export/manifest.json")
        assert status == 200 and json.loads(body)["input"] == {"height": H, "width": W}
        assert _get(server.url + "export/decoder_float32.tflite")[1] == b"TFL3"
        status, body, _ = _get(server.url + "clip/index.json")
        assert json.loads(body) == {
            "frames": ["00000.jpg", "00001.jpg", "00002.jpg"],
            "mask": "mask.png",
        }
        assert _get(server.url + "clip/00001.jpg")[0] == 200
        assert _get(server.url + "clip/mask.png")[0] == 200
        assert _get(server.url + "assets/pt_tracker.npz")[0] == 200


@pytest.mark.parametrize(
    "path, status",
    [
        ("export/../secret.txt", 403),
        ("export/%2e%2e/secret.txt", 403),
        ("export/..%2fsecret.txt", 403),
        ("export//etc/passwd", 404),  # read as export/etc/passwd: inside, missing
        ("export/link.tflite", 403),  # a symlink inside the export folder
        ("export/nothing.tflite", 404),
        ("%2e%2e/%2e%2e/etc/passwd", 403),
        ("..%2f..%2fetc%2fpasswd", 403),
        ("web.py", 404),  # the package beside the app is not the app
        ("clip/notes.txt", 404),  # only the listed frames
        ("clip/../secret.txt", 403),
    ],
)
def test_refuses_paths_outside_the_export_folder_and_the_app(export_dir, clip, path, status):
    os.symlink(export_dir.parent / "secret.txt", export_dir / "link.tflite")
    with WebServer(export_dir, clip, port=0) as server:
        got, body, _ = _get(server.url + path)
    assert got == status, (path, got, body)
    assert b"outside the export folder" not in body


def test_bench_results_are_posted_back(export_dir):
    got = []
    with WebServer(export_dir, port=0, on_result=got.append) as server:
        req = urllib.request.Request(
            server.url + "bench/result", data=b'{"results": []}', method="POST"
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
        bad = urllib.request.Request(server.url + "bench/result", data=b"[1, 2", method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(bad, timeout=10)
        assert e.value.code == 400
        assert server.result_event.is_set()
    assert got == [{"results": []}]


def test_bad_inputs_are_one_line_errors(export_dir, tmp_path, clip):
    with pytest.raises(ManifestError, match="no manifest.json"):
        WebServer(tmp_path, port=0)
    with pytest.raises(InputDataError, match="must be a folder of frames"):
        Clip.open(tmp_path / "video.mp4", clip.mask)
    with pytest.raises(InputDataError, match="no such mask file"):
        Clip.open(clip.frames_dir, tmp_path / "missing.png")
    with pytest.raises(WebAppMissingError, match="run `make web`"):
        check_app(tmp_path)
    with WebServer(export_dir, port=0) as server:
        with pytest.raises(ConfigError, match="choose another --port"):
            WebServer(export_dir, port=server.port)


def test_cli_errors_are_one_line(export_dir, clip, tmp_path, monkeypatch, capsys):
    assert run_cli(monkeypatch, "web", tmp_path / "nothing") == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not a folder" in err
    assert run_cli(monkeypatch, "web", export_dir, "--clip", clip.frames_dir) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--clip and --mask go together" in err


def test_cli_serves_prints_the_url_and_stops_on_ctrl_c(export_dir, clip):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("VOSX_RAISE_ERRORS", None)
    cmd = [sys.executable, "-m", "vosx.cli", "web", str(export_dir), "--port", "0"]
    cmd += ["--clip", str(clip.frames_dir), "--mask", str(clip.mask)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=default_sigint,  # a shell's background job would hand it SIGINT ignored
    )
    try:
        first = proc.stdout.readline()
        assert "at http://127.0.0.1:" in first, first
        url = first.rsplit(" at ", 1)[1].strip()
        assert "auto=1" in proc.stdout.readline()
        assert _get(url + "clip/index.json")[0] == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "vosx web: stopped" in out and "Traceback" not in err


def test_browser_runtime_refuses_host_and_unknown_runtimes(export_dir, monkeypatch, capsys):
    assert (
        run_cli(monkeypatch, "bench", export_dir, "--device", "host", "--runtime", "browser") == 1
    )
    assert "benchmarks/web_bench.py" in capsys.readouterr().err
    assert run_cli(monkeypatch, "bench", export_dir, "--runtime", "phone") == 1
    assert "use native (benchmark_model) or browser" in capsys.readouterr().err


def test_app_tracker_defaults_are_the_runtime_s():
    """The TypeScript trackers' default margins are the NumPy runtime's (one measured choice)."""
    import re

    from vosx.tracker_runtime import trackers

    src = (Path(__file__).resolve().parents[1] / "web/src/trackers.ts").read_text()
    for name in ("DEFAULT_MARGIN_CV", "DEFAULT_MARGIN_PT"):
        found = re.search(rf"export const {name} = ([0-9.]+);", src)
        assert found, f"web/src/trackers.ts: no {name}"
        assert float(found.group(1)) == getattr(trackers, name), name
