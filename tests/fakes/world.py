"""The fake phone world for tests: a fake ``adb`` on PATH, its devices, and a small export folder.

``FakeAdbWorld`` writes the JSON state that ``fake_adb.py`` reads (see its docstring) and a launcher
``adb`` (a Python script whose shebang is this interpreter, with -S: the fake needs only the
standard library) into a temp ``bin`` folder put first on PATH. ``make_export`` writes a
manifest with the real tensor names and NHWC shapes for a small input plus placeholder .tflite
files (enough for adb runs, which never load them on the host).
"""

import json
import os
import sys
from pathlib import Path

from tests.conftest import shared_path
from tests.fakes.tools import EM_AARCH64, fake_elf

FAKES = Path(__file__).resolve().parent

S22_PROPS = {
    "ro.product.model": "SM-S901U",
    "ro.product.manufacturer": "samsung",
    "ro.soc.manufacturer": "QTI",
    "ro.soc.model": "SM8450",
    "ro.board.platform": "taro",
    "ro.hardware": "qcom",
    "ro.hardware.egl": "adreno",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
}
S22_GPU = "Qualcomm, Adreno (TM) 730, OpenGL ES 3.2 V@0615.65 (GIT@e3ad8b5, I3f54a5f5b9)"


def fixtures_dir(*parts: str) -> Path:
    """A folder under ../shared/fixtures beside the checkout; a clear failure when it is absent."""
    return shared_path("fixtures", *parts)


class FakeAdbWorld:
    """A fake adb on PATH plus the devices it shows.

    Args:
        tmp: A temp folder for the state, the devices' filesystems and the launcher.
        monkeypatch: pytest's monkeypatch (PATH, FAKE_ADB_STATE; ADB/ANDROID_SERIAL removed).
    """

    def __init__(self, tmp: Path, monkeypatch):
        self.dir = tmp / "fake_adb"
        self.bin = self.dir / "bin"
        self.bin.mkdir(parents=True)
        self.state_path = self.dir / "state.json"
        self.state: dict = {
            "devices": {},
            "benchmark": {
                "latency_us": {"key_encoder": 12000.0, "value_encoder": 3000.0, "decoder": 6000.0},
                "delegate_factor": {"gpu": 0.5, "cpu": 1.0, "nnapi": 0.75},
                "precision_factor": {"fp32": 1.0, "fp16": 0.8, "int8": 0.6},
            },
            "inference_diff": {},
        }
        launcher = self.bin / "adb"
        launcher.write_text(
            f"#!{sys.executable} -S\nimport sys\nsys.path.insert(0, {str(FAKES)!r})\n"
            "from fake_adb import main\nsys.exit(main(sys.argv[1:]))\n"
        )
        launcher.chmod(0o755)
        self.adb = str(launcher)
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}")
        monkeypatch.setenv("FAKE_ADB_STATE", str(self.state_path))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        for var in ("ADB", "ANDROID_SERIAL", "VOSX_BENCHMARK_MODEL", "VOSX_INFERENCE_DIFF"):
            monkeypatch.delenv(var, raising=False)
        self.save()

    def add_device(self, serial: str = "R5CT10ABCDE", state: str = "device", **fields) -> dict:
        """Add a phone (a Galaxy S22 unless ``props`` say otherwise) and save the state."""
        dev = {"state": state, "props": dict(S22_PROPS), "gpu": S22_GPU, **fields}
        self.state["devices"][serial] = dev
        (self.dir / "devices" / serial / "data" / "local" / "tmp").mkdir(
            parents=True, exist_ok=True
        )
        self.save()
        return dev

    def save(self) -> None:
        self.state_path.write_text(json.dumps(self.state))

    def reload(self) -> dict:
        self.state = json.loads(self.state_path.read_text())
        return self.state

    def calls(self) -> list[list[str]]:
        """Every adb invocation so far (argument lists)."""
        log = self.dir / "calls.jsonl"
        return [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []

    def shell_commands(self, serial: str | None = None) -> list[str]:
        """The command strings sent with ``adb shell``."""
        out = []
        for argv in self.calls():
            if argv[:1] == ["-s"]:
                if serial is not None and argv[1] != serial:
                    continue
                argv = argv[2:]
            if argv[:1] == ["shell"]:
                out.append(" ".join(argv[1:]))
        return out

    def pushes(self, serial: str | None = None) -> list[str]:
        """Remote paths pushed so far."""
        return [
            a[4]
            for a in self.calls()
            if a[:1] == ["-s"] and a[2] == "push" and serial in (None, a[1])
        ]

    def device_path(self, serial: str, remote: str) -> Path:
        """The host file standing for a device path."""
        return self.dir / "devices" / serial / remote.lstrip("/")

    def write_tool(self, path: Path, tool: str, machine: int = EM_AARCH64) -> Path:
        """A fake device binary on the host (``benchmark_model`` or ``inference_diff``)."""
        path.write_bytes(fake_elf(tool, machine))
        return path


def make_export(root: Path, size: tuple[int, int] = (64, 96), precisions=("fp32", "fp16")) -> Path:
    """A manifest-valid export folder with placeholder .tflite files (not loadable models)."""
    from vosx.manifest import file_entry, write_manifest
    from vosx.precision import precision

    root.mkdir(parents=True)
    hh, ww = size
    h, w = hh // 16, ww // 16
    n = h * w

    def t(name, shape):
        return {"name": name, "shape": list(shape), "dtype": "float32"}

    io = {
        "key_encoder": (
            [t("image", (1, hh, ww, 3))],
            [
                t("key", (1, 1, n, 32)),
                t("f16c", (1, h, w, 96)),
                t("f16", (1, h, w, 96)),
                t("f8", (1, 2 * h, 2 * w, 32)),
                t("f4", (1, 4 * h, 4 * w, 24)),
            ],
        ),
        "value_encoder": (
            [t("mask", (1, hh, ww, 1)), t("f16", (1, h, w, 96))],
            [t("value", (1, 1, n, 64))],
        ),
        "decoder": (
            [t("qk", (1, 1, n, 32)), t("mk_first", (1, 1, n, 32)), t("mk_last", (1, 1, n, 32))]
            + [t("mv_first", (1, 1, n, 64)), t("mv_last", (1, 1, n, 64)), t("f16c", (1, h, w, 96))]
            + [t("f8", (1, 2 * h, 2 * w, 32)), t("f4", (1, 4 * h, 4 * w, 24))],
            [t("logits", (1, hh, ww, 1))],
        ),
    }
    graphs = {}
    for g, (ins, outs) in io.items():
        files = {}
        for p in precisions:
            rel = precision(p).file_name(g)
            (root / rel).write_bytes(f"placeholder {g} {p}\n".encode() * 64)
            files[p] = file_entry(root, rel)
        (root / f"{g}.onnx").write_bytes(b"placeholder")
        graphs[g] = {"onnx": f"{g}.onnx", "files": files, "inputs": ins, "outputs": outs}
    write_manifest(root, {"input": {"height": hh, "width": ww}, "graphs": graphs})
    return root
