"""``vosx doctor``: what each command needs, what this machine has, and the exact fix for each gap.

Checks run without importing torch or tensorflow (package versions come from metadata), so the
report is quick and works on an app-side install too.
"""

import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    command: str  # which vosx command needs it
    what: str
    ok: bool
    found: str
    fix: str = ""


def pinned_versions(constraints: Path | None = None) -> dict[str, str]:
    """name -> version from constraints.txt (empty when the file is not beside the package)."""
    path = constraints or ROOT / "constraints.txt"
    pins = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if "==" in line and not line.lstrip().startswith("#"):
                name, version = line.split("==", 1)
                pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def _package(command: str, name: str, pins: dict, extra: str | None) -> Check:
    """One package against its pin; a missing one's fix installs the vosx extra that has it.

    ``extra`` None: a core dependency (reinstall vosx itself).
    """
    want = pins.get(name)
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        target = f"vosx[{extra}]" if extra else "vosx"
        pinned = "-c constraints.txt " if pins else ""
        fix = f"pip install {pinned}'{target}'" + (f" (tested: {name}=={want})" if want else "")
        return Check(command, name, False, "missing", fix)
    if want and have.split("+")[0] != want.split("+")[0]:
        return Check(command, name, False, have, f"pip install '{name}=={want}' (tested version)")
    return Check(command, name, True, have)


def _gpu_check() -> Check:
    """Whether LiteRT's GPU accelerator runs here (export's GPU check, --accelerator gpu)."""
    from vosx.tracker_runtime.accelerator import probe_gpu

    probe = probe_gpu()
    found = probe.adapter or ("unknown device" if probe.available else "none")
    return Check(
        "export GPU check / segment --accelerator gpu",
        "GPU accelerator (Vulkan)",
        probe.available,
        found,
        probe.reason or "",
    )


def _adb_checks(env: dict | None) -> list[Check]:
    """adb and the devices it sees."""
    from vosx.android_bench.adb import find_adb, list_devices
    from vosx.errors import DeviceError

    try:
        adb = find_adb(env)
    except DeviceError as e:
        return [Check("bench --device adb", "adb", False, "missing", str(e))]
    checks = [Check("bench --device adb", "adb", True, adb)]
    try:
        devices = list_devices(adb)
    except DeviceError as e:
        return [*checks, Check("bench --device adb", "connected devices", False, "error", str(e))]
    ready = [d.serial for d in devices if d.state == "device"]
    other = [f"{d.serial} ({d.state})" for d in devices if d.state != "device"]
    fix = "" if ready else "connect a phone with USB debugging on and accept its prompt"
    found = ", ".join(ready + other) or "none"
    return [*checks, Check("bench --device adb", "connected devices", bool(ready), found, fix)]


def _tool_checks() -> list[Check]:
    """Each phone tool binary ``vosx bench`` pushes (``android_bench.tools.BINARIES``)."""
    from vosx.android_bench.tools import BINARIES
    from vosx.errors import DeviceError

    checks = []
    for binary in BINARIES:
        try:
            found = str(binary.find(None))
        except DeviceError:
            checks.append(
                Check("bench --device adb", binary.name, False, "not found", binary.doctor_hint())
            )
        else:
            checks.append(Check("bench --device adb", binary.name, True, found))
    return checks


def run_checks(env: dict | None = None) -> list[Check]:
    """Every check, in the order of the commands that need them."""
    from vosx.training.imagenet import weights_status

    pins = pinned_versions()
    py = platform.python_version()
    checks = [
        Check(
            "all",
            "python 3.11",
            sys.version_info[:2] == (3, 11),
            py,
            "" if sys.version_info[:2] == (3, 11) else "use Python 3.11 (onnx2tf 1.x)",
        ),
        _package("segment/bench", "ai-edge-litert", pins, None),
        _package("segment/bench", "numpy", pins, None),
        _package("segment VIDEO / --overlay .mp4", "imageio-ffmpeg", pins, "video"),
        _gpu_check(),
    ]
    for name in ("torch", "onnx", "onnxruntime", "onnx2tf", "tensorflow", "tf-keras"):
        checks.append(_package("export/train", name, pins, "export"))
    checks.append(
        Check("train --init-backbone imagenet", "ImageNet MobileNetV2", *weights_status())
    )
    return checks + _adb_checks(env) + _tool_checks()
