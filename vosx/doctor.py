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


def run_checks(env: dict | None = None) -> list[Check]:
    """Every check, in the order of the commands that need them."""
    from vosx.android_bench.adb import (
        find_adb,
        find_tool,
        list_devices,
    )
    from vosx.errors import DeviceError
    from vosx.paths import user_cache_dir

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
    from vosx.training.imagenet import weights_status

    checks.append(
        Check("train --init-backbone imagenet", "ImageNet MobileNetV2", *weights_status())
    )
    try:
        adb = find_adb(env)
        checks.append(Check("bench --device adb", "adb", True, adb))
        try:
            devices = list_devices(adb)
            ready = [d.serial for d in devices if d.state == "device"]
            other = [f"{d.serial} ({d.state})" for d in devices if d.state != "device"]
            checks.append(
                Check(
                    "bench --device adb",
                    "connected devices",
                    bool(ready),
                    ", ".join(ready + other) or "none",
                    "" if ready else "connect a phone with USB debugging on and accept its prompt",
                )
            )
        except DeviceError as e:
            checks.append(Check("bench --device adb", "connected devices", False, "error", str(e)))
    except DeviceError as e:
        checks.append(Check("bench --device adb", "adb", False, "missing", str(e)))
    for tool, var, option in (
        ("benchmark_model", "VOSX_BENCHMARK_MODEL", "--benchmark-binary"),
        ("inference_diff", "VOSX_INFERENCE_DIFF", "--inference-diff-binary"),
    ):
        hint = (
            f"get TensorFlow's android_aarch64 {tool} and pass {option} PATH, set ${var}, "
            f"or copy it to {user_cache_dir() / tool}"
        )
        try:
            checks.append(
                Check("bench --device adb", tool, True, str(find_tool(None, var, (tool,), hint)))
            )
        except DeviceError:
            checks.append(Check("bench --device adb", tool, False, "not found", hint))
    return checks
