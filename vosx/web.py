"""``vosx web``: a local HTTP server for the browser app (``web/``, built into ``vosx/web_app``).

Serves, on 127.0.0.1 by default:

* ``/`` and the app's files (``index.html``, ``app.js``, ``wasm/...``) from the built app folder;
* ``/export/<path>``: files of the export folder, resolved with ``vosx.export_folder.export_file``
  (relative, no ``..``, no symlink on the way, a regular file inside the folder);
* ``/assets/pt_tracker.npz``: the bundled PT tracker weights (the app's default);
* with a clip: ``/clip/index.json`` (``{"frames": [...], "mask": "mask.png"}``), the frames it
  lists and ``/clip/mask.png``;
* ``POST /bench/result``: the JSON the page posts in bench mode (``vosx bench --runtime browser``).

Anything else is 404; a path outside the export folder and the app is refused (403). Every
response carries COOP/COEP headers, so the page is cross-origin isolated and LiteRT.js can use
its threaded WebAssembly build. Standard library only.
"""

import json
import mimetypes
import os
import stat
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath

from vosx.errors import ConfigError, InputDataError, ManifestError
from vosx.export_folder import MANIFEST_NAME, export_file, path_problem
from vosx.manifest import load_manifest
from vosx.paths import PT_TRACKER

WEB_APP = Path(__file__).resolve().parent / "web_app"
"""The built app (``make web`` / ``make install`` write it from ``web/``)."""
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_POST_BYTES = 16 << 20
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".tflite": "application/octet-stream",
    ".npz": "application/octet-stream",
}


class WebAppMissingError(ConfigError):
    """The built browser app is not in the package (a source checkout without ``make web``)."""


class NotServed(Exception):
    """A request for something the server does not serve (status + reason)."""

    def __init__(self, status: HTTPStatus, reason: str):
        super().__init__(reason)
        self.status = status


def check_app(app_dir: Path = WEB_APP) -> Path:
    """The built app folder, checked to hold ``index.html``, ``app.js`` and the wasm runtime.

    Raises:
        WebAppMissingError: the app was never built here.
    """
    need = ("index.html", "app.js", "wasm/litert_wasm_internal.wasm")
    missing = [n for n in need if not (app_dir / n).is_file()]
    if missing:
        raise WebAppMissingError(
            f"{app_dir}: the browser app is not built (no {missing[0]}); run `make web` "
            "(needs Node 18+ and npm) or install a vosx wheel that ships it"
        )
    return app_dir


@dataclass(frozen=True)
class Clip:
    """A frame folder and its first mask, served under ``/clip/``."""

    frames_dir: Path
    mask: Path
    names: tuple[str, ...]

    @classmethod
    def open(cls, frames_dir: Path, mask: Path) -> "Clip":
        """Check the folder (image files, sorted by name) and the mask file.

        Raises:
            InputDataError: not a folder, no image in it, or the mask is not a regular file.
        """
        frames_dir, mask = Path(frames_dir), Path(mask)
        if not frames_dir.is_dir():
            raise InputDataError(
                f"{frames_dir}: --clip must be a folder of frames (.jpg/.png ...); extract a "
                "video's frames first, or open the video in the page"
            )
        names = tuple(
            sorted(
                p.name
                for p in frames_dir.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and _regular(p)
            )
        )
        if not names:
            raise InputDataError(
                f"{frames_dir}: the folder has no {'/'.join(IMAGE_SUFFIXES)} image; give a "
                "folder of frames"
            )
        if not _regular(mask):
            raise InputDataError(f"{mask}: no such mask file; give the first frame's label PNG")
        return cls(frames_dir, mask, names)

    def index(self) -> dict:
        """The ``/clip/index.json`` document."""
        return {"frames": list(self.names), "mask": "mask.png"}


def _regular(p: Path) -> bool:
    """A regular file, not a symlink."""
    try:
        return stat.S_ISREG(os.lstat(p).st_mode)
    except OSError:
        return False


class WebServer:
    """The app + export folder (+ clip) server.

    Args:
        export_dir: The ``vosx export`` folder to serve under ``/export/``.
        clip: An optional clip served under ``/clip/``.
        host: Interface to bind (127.0.0.1 unless asked otherwise).
        port: TCP port (0 picks a free one).
        app_dir: The built app folder.
        check_export: Load the manifest first (one-line ``ManifestError`` when bad); tests of the
            page's own messages turn this off.
        on_result: Called with the JSON the page posts to ``/bench/result``.
    """

    def __init__(
        self,
        export_dir: Path,
        clip: Clip | None = None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        app_dir: Path = WEB_APP,
        check_export: bool = True,
        on_result: Callable[[dict], None] | None = None,
    ):
        self.app_dir = check_app(Path(app_dir)).resolve()
        self.export_dir = Path(export_dir)
        if check_export:
            load_manifest(self.export_dir, verify=False)
        elif not self.export_dir.is_dir():
            raise ManifestError(
                f"{export_dir}: not a folder; give the output folder of `vosx export`"
            )
        self.export_dir = self.export_dir.resolve()
        self.clip = clip
        self.on_result = on_result
        self.results: list[dict] = []
        self.result_event = threading.Event()
        handler = type("Handler", (_Handler,), {"web": self})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as e:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({e.strerror or e}); choose another --port"
            ) from None
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self.httpd.server_address[0]
        host = DEFAULT_HOST if host in ("0.0.0.0", "") else host
        return f"http://{host}:{self.port}/"

    def start(self) -> "WebServer":
        """Serve in a background thread (tests, ``vosx bench``)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until Ctrl-C (KeyboardInterrupt propagates after closing)."""
        try:
            self.httpd.serve_forever()
        finally:
            self.httpd.server_close()

    def close(self) -> None:
        """Stop a background server and free the port."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
        self.httpd.server_close()

    def __enter__(self) -> "WebServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- routing -------------------------------------------------------------------------

    def resolve(self, url_path: str) -> Path | bytes:
        """The file (or generated bytes) for a GET path.

        Raises:
            NotServed: 403 for paths outside the served folders, 404 for unknown ones.
        """
        path = urllib.parse.unquote(url_path)
        if "\0" in path or "\\" in path:
            raise NotServed(HTTPStatus.FORBIDDEN, "refused path")
        parts = PurePosixPath(path).parts[1:]  # drop "/"
        if ".." in parts:
            raise NotServed(HTTPStatus.FORBIDDEN, "paths with '..' are refused")
        if not parts:
            return self._app_file("index.html")
        head, rest = parts[0], "/".join(parts[1:])
        if head == "export":
            return self._export_file(rest)
        if head == "clip":
            return self._clip_file(rest)
        if head == "assets" and rest == "pt_tracker.npz":
            return PT_TRACKER
        return self._app_file("/".join(parts))

    def _app_file(self, rel: str) -> Path:
        p = (self.app_dir / rel).resolve()
        if self.app_dir not in p.parents or not p.is_file():
            raise NotServed(HTTPStatus.NOT_FOUND, "not part of the app")
        return p

    def _export_file(self, rel: str) -> Path:
        if path_problem(rel):
            raise NotServed(HTTPStatus.FORBIDDEN, "not a file inside the export folder")
        try:
            return export_file(self.export_dir, rel, "requested")
        except ManifestError as e:  # the body names no local path
            if "missing" in str(e):
                raise NotServed(HTTPStatus.NOT_FOUND, "missing in the export folder") from None
            raise NotServed(
                HTTPStatus.FORBIDDEN, "not a regular file inside the export folder"
            ) from None

    def _clip_file(self, rel: str) -> Path | bytes:
        if self.clip is None:
            raise NotServed(HTTPStatus.NOT_FOUND, "no clip is served (vosx web --clip)")
        if rel == "index.json":
            return (json.dumps(self.clip.index()) + "\n").encode()
        if rel == "mask.png":
            return self.clip.mask
        if rel in self.clip.names:  # only the listed frames, by exact name
            return self.clip.frames_dir / rel
        raise NotServed(HTTPStatus.NOT_FOUND, "not a frame of the clip")

    def post_result(self, body: bytes) -> None:
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise NotServed(HTTPStatus.BAD_REQUEST, "not JSON") from None
        if not isinstance(data, dict):
            raise NotServed(HTTPStatus.BAD_REQUEST, "not a JSON object")
        self.results.append(data)
        if self.on_result is not None:
            self.on_result(data)
        self.result_event.set()


class _Handler(BaseHTTPRequestHandler):
    """One request: GET files, POST /bench/result; quiet unless something is refused."""

    web: WebServer
    server_version = "vosx-web"
    sys_version = ""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - BaseHTTPRequestHandler API
        pass

    def _headers(self, status: HTTPStatus, ctype: str, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()

    def _error(self, status: HTTPStatus, reason: str) -> None:
        body = (f"{status.value} {status.phrase}: {reason}\n").encode()
        self._headers(status, "text/plain; charset=utf-8", len(body))
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler API
        url = urllib.parse.urlsplit(self.path)
        try:
            target = self.web.resolve(url.path)
        except NotServed as e:
            self._error(e.status, str(e))
            return
        if isinstance(target, bytes):
            self._headers(HTTPStatus.OK, "application/json", len(target))
            self.wfile.write(target)
            return
        ctype = _TYPES.get(target.suffix.lower()) or (
            mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        )
        try:
            with open(target, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                self._headers(HTTPStatus.OK, ctype, size)
                while chunk := f.read(1 << 20):
                    self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except OSError:
            self._error(HTTPStatus.NOT_FOUND, "cannot be read")

    def do_POST(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler API
        if urllib.parse.urlsplit(self.path).path != "/bench/result":
            self._error(HTTPStatus.NOT_FOUND, "only /bench/result takes POST")
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_POST_BYTES:
            self._error(HTTPStatus.BAD_REQUEST, "bad Content-Length")
            return
        try:
            self.web.post_result(self.rfile.read(length))
        except NotServed as e:
            self._error(e.status, str(e))
            return
        self._headers(HTTPStatus.OK, "application/json", 3)
        self.wfile.write(b"{}\n")


def serve(
    export_dir: Path,
    clip_dir: Path | None = None,
    mask: Path | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    echo: Callable[[str], None] = print,
) -> None:
    """``vosx web``: serve until Ctrl-C, printing the URL(s) first.

    Raises:
        ConfigError: ``--clip`` without ``--mask`` (or the reverse), a port in use, no app.
        ManifestError: the export folder's manifest is bad.
        InputDataError: a bad clip folder or mask.
    """
    if (clip_dir is None) != (mask is None):
        raise ConfigError(
            "--clip and --mask go together: give the frames folder and its first mask"
        )
    clip = Clip.open(clip_dir, mask) if clip_dir is not None else None
    server = WebServer(export_dir, clip, host, port)
    echo(f"vosx web: serving {server.export_dir} ({MANIFEST_NAME} checked) at {server.url}")
    if host not in (DEFAULT_HOST, "localhost", "::1"):
        echo(f"vosx web: listening on {host}, reachable from other machines; Ctrl-C to stop")
    if clip is not None:
        echo(
            f"automation: {server.url}?clip=/clip/&accelerator=wasm&tracker=pt&auto=1 "
            f"({len(clip.names)} frames)"
        )
    echo("Ctrl-C to stop")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        echo("vosx web: stopped")
