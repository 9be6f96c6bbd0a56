"""adb for ``vosx bench``: find adb, pick the device, check it, push, run, clean up.

Every adb call is an argument list with a timeout; every command sent to ``adb shell`` is built
from ``shlex.quote``-d parts and ends with ``; echo __VOSX_RC__=$?`` so the exit status is read the
same way on old and new adb, and a missing status means the device went away. Device-side files go
to one run folder under ``/data/local/tmp/vosx_bench``; files whose sha256 already matches there
are not pushed again. Setting ``STOP`` (``vosx bench`` does on Ctrl-C and SIGTERM) kills every adb
call in flight within ``POLL_S`` and refuses new ones (``Stopped``), so the worker threads of a
multi-phone run end at once. What a phone reports (properties, thermal state) is parsed in
``device_state``; the binaries pushed are ``tools.BINARIES``.
"""

import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from vosx.android_bench.device_state import (
    DeviceInfo,
    ThermalState,
    parse_getprop,
    parse_sysfs_thermal,
    parse_thermalservice,
)
from vosx.errors import DeviceError
from vosx.export_folder import sha256_file

DEVICE_ROOT = "/data/local/tmp/vosx_bench"
RC_MARKER = "__VOSX_RC__="
REQUIRED_ABI = "arm64-v8a"
ADB_INSTALL_HINT = (
    "install Android platform-tools (https://developer.android.com/tools/releases/platform-tools) "
    "and put adb on PATH, or set ADB=/path/to/adb"
)
_RC_RE = re.compile(rf"{RC_MARKER}(\d+)\s*$")
_GONE = re.compile(
    r"device '?\S*'? not found|no devices/emulators found|device offline|error: closed|"
    r"device still connecting|protocol fault|device unauthorized"
)
STOP = threading.Event()
"""Set to end every adb call in flight (killed within ``POLL_S``) and refuse new ones."""
POLL_S = 0.1


class DeviceDisconnected(DeviceError):
    """The device stopped answering in the middle of a run."""


class Stopped(DeviceError):
    """``STOP`` was set (the user interrupted ``vosx bench``): the adb call was ended."""


@dataclass(frozen=True)
class DeviceEntry:
    """One line of ``adb devices -l``."""

    serial: str
    state: str  # "device", "unauthorized", "offline", "no permissions", "recovery", ...
    details: dict  # product / model / device / transport_id


@dataclass(frozen=True)
class ShellResult:
    """What a device command printed (stdout and stderr together) and its exit status."""

    rc: int
    output: str


def find_adb(env: dict | None = None) -> str:
    """Path of adb: ``$ADB`` when set, else ``adb`` on PATH.

    Raises:
        DeviceError: not found or not executable, with how to install it.
    """
    env = os.environ if env is None else env
    explicit = env.get("ADB")
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise DeviceError(
                f"ADB={explicit}: not an executable file; point ADB at platform-tools/adb"
            )
        return explicit
    found = shutil.which("adb", path=env.get("PATH"))
    if not found:
        raise DeviceError(f"adb: not found on PATH; {ADB_INSTALL_HINT}")
    return found


def run_adb(adb: str, args: list[str], timeout_s: float, what: str) -> subprocess.CompletedProcess:
    """Run ``adb *args`` (an argument list) with a timeout; ``DeviceError`` when it hangs.

    The process is killed (and waited for) on its timeout, on ``STOP`` (checked every
    ``POLL_S``) and on any exception in this thread (Ctrl-C).

    Raises:
        Stopped: ``STOP`` is set.
        DeviceError: adb cannot be started, or ran past ``timeout_s``.
    """
    if STOP.is_set():
        raise Stopped(f"adb {' '.join(args[:2])}: stopped ({what}): the run was interrupted")
    try:
        proc = subprocess.Popen(
            [adb, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
    except OSError as e:
        raise DeviceError(f"{adb}: cannot run adb ({e}); {ADB_INSTALL_HINT}") from None
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                if STOP.is_set():
                    raise Stopped(
                        f"adb {' '.join(args[:2])}: stopped ({what}): the run was interrupted"
                    ) from None
                if time.monotonic() >= deadline:
                    raise DeviceError(
                        f"adb {' '.join(args[:4])}: {what} took longer than {timeout_s:.0f} s; "
                        "check the USB connection (adb devices) or give a longer --timeout"
                    ) from None
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def parse_devices(text: str) -> list[DeviceEntry]:
    """Entries of ``adb devices -l`` output (daemon start-up chatter ignored)."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("List of devices", "*", "adb server")):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        serial, state, rest = parts[0], parts[1], parts[2:]
        if state == "no" and rest[:1] and rest[0].startswith("permissions"):
            state, rest = "no permissions", []
        details = dict(p.split(":", 1) for p in rest if ":" in p)
        entries.append(DeviceEntry(serial, state, details))
    return entries


def list_devices(adb: str) -> list[DeviceEntry]:
    """``adb devices -l`` (starts the adb server when needed)."""
    proc = run_adb(adb, ["devices", "-l"], 30, "listing devices")
    if proc.returncode != 0:
        raise DeviceError(
            f"adb devices failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()}; "
            "run `adb kill-server` and try again"
        )
    return parse_devices(proc.stdout)


def _state_problem(entry: DeviceEntry) -> str | None:
    """Why a device in this state cannot be used, with the fix; None when it is ready."""
    s = entry.serial
    if entry.state == "device":
        return None
    if entry.state == "unauthorized":
        return (
            f"device {s} is unauthorized; unlock the phone and accept the 'Allow USB debugging' "
            "prompt (if none shows, revoke USB debugging authorizations in Developer options and "
            "reconnect)"
        )
    if entry.state == "offline":
        return (
            f"device {s} is offline; reconnect the USB cable or run `adb reconnect offline`, then "
            "check `adb devices` shows it as 'device'"
        )
    if entry.state == "no permissions":
        return (
            f"device {s}: no permissions to open the USB device; add a udev rule for it (or run "
            "`adb kill-server` and start adb as a user in the plugdev group)"
        )
    return f"device {s} is in state '{entry.state}'; boot it normally and enable USB debugging"


def select_serials(
    entries: list[DeviceEntry], requested: list[str] | tuple[str, ...], env: dict | None = None
) -> list[str]:
    """The serials to use: ``requested`` (--serial), else ANDROID_SERIAL, else the only device.

    Raises:
        DeviceError: no device, several without --serial, a requested one missing, or one that is
            unauthorized / offline / without permissions; each message says what to do.
    """
    env = os.environ if env is None else env
    by_serial = {e.serial: e for e in entries}
    wanted = list(dict.fromkeys(requested))
    if not wanted and env.get("ANDROID_SERIAL"):
        wanted = [env["ANDROID_SERIAL"]]
    if wanted:
        for s in wanted:
            if s not in by_serial:
                have = ", ".join(by_serial) or "none"
                raise DeviceError(
                    f"device {s} is not connected (adb sees: {have}); plug it in, or pass the "
                    "--serial shown by `adb devices`"
                )
            problem = _state_problem(by_serial[s])
            if problem:
                raise DeviceError(problem)
        return wanted
    if not entries:
        raise DeviceError(
            "no Android device found by adb; connect a phone with USB debugging enabled "
            "(Settings > Developer options) and check `adb devices`, or use --device host"
        )
    if len(entries) > 1:
        listing = ", ".join(f"{e.serial} ({e.state})" for e in entries)
        raise DeviceError(
            f"several devices are connected ({listing}); choose with --serial SERIAL (repeat it to "
            "run on several) or set ANDROID_SERIAL"
        )
    problem = _state_problem(entries[0])
    if problem:
        raise DeviceError(problem)
    return [entries[0].serial]


class Adb:
    """One device over adb.

    Args:
        adb: Path of the adb executable.
        serial: The device serial (``adb -s``).
        timeout_s: Default timeout of short commands, seconds.
    """

    def __init__(self, adb: str, serial: str, timeout_s: float = 30.0):
        self.adb = adb
        self.serial = serial
        self.timeout_s = timeout_s

    def run(
        self, args: list[str], timeout_s: float | None = None, what: str = ""
    ) -> subprocess.CompletedProcess:
        """``adb -s SERIAL *args`` with a timeout."""
        return run_adb(
            self.adb, ["-s", self.serial, *args], timeout_s or self.timeout_s, what or args[0]
        )

    def state(self) -> str | None:
        """``adb get-state`` ("device", "offline", ...) or None when the device is gone."""
        try:
            proc = self.run(["get-state"], 10, "get-state")
        except DeviceError:
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    def _lost(self, doing: str, detail: str) -> DeviceDisconnected:
        return DeviceDisconnected(
            f"device {self.serial} disconnected while {doing} "
            f"({detail.strip()[:160] or 'no answer'}); reconnect it and re-run"
        )

    def shell(self, argv: list[str], timeout_s: float | None = None, what: str = "") -> ShellResult:
        """Run ``argv`` on the device (each part ``shlex.quote``-d); stdout and stderr together.

        Raises:
            DeviceDisconnected: no exit status came back and the device is no longer there.
            DeviceError: adb failed or the command hung past its timeout.
        """
        doing = what or f"running {argv[0]}"
        command = " ".join(shlex.quote(a) for a in argv) + f" 2>&1; echo {RC_MARKER}$?"
        try:
            proc = self.run(["shell", command], timeout_s, doing)
        except DeviceError as e:
            if self.state() != "device":
                raise self._lost(doing, "timed out") from None
            raise e
        out = proc.stdout
        m = _RC_RE.search(out)
        if m:
            return ShellResult(int(m.group(1)), out[: m.start()])
        detail = proc.stderr or out
        if _GONE.search(detail) or self.state() != "device":
            raise self._lost(doing, detail)
        raise DeviceError(
            f"device {self.serial}: adb shell gave no exit status while {doing} "
            f"(adb exit {proc.returncode}: {detail.strip()[:200]}); update platform-tools and retry"
        )

    def check(self, argv: list[str], timeout_s: float | None = None, what: str = "") -> str:
        """``shell`` that raises ``DeviceError`` on a non-zero exit status; returns the output."""
        res = self.shell(argv, timeout_s, what)
        if res.rc != 0:
            raise DeviceError(
                f"device {self.serial}: `{' '.join(argv)[:120]}` failed (exit {res.rc}): "
                f"{res.output.strip()[-200:]}; check free space and permissions under {DEVICE_ROOT}"
            )
        return res.output

    def getprops(self) -> dict[str, str]:
        """All system properties."""
        return parse_getprop(self.check(["getprop"], what="reading system properties"))

    def device_info(self) -> DeviceInfo:
        """Model, SoC, Android version, ABI and (when readable) the GPU of the device."""
        p = self.getprops()
        soc = " ".join(x for x in (p.get("ro.soc.manufacturer"), p.get("ro.soc.model")) if x)
        soc = soc or p.get("ro.board.platform") or p.get("ro.hardware.chipname") or None
        return DeviceInfo(
            serial=self.serial,
            model=p.get("ro.product.model"),
            manufacturer=p.get("ro.product.manufacturer"),
            soc=soc,
            hardware=p.get("ro.hardware"),
            android_version=p.get("ro.build.version.release"),
            sdk=p.get("ro.build.version.sdk"),
            abi=p.get("ro.product.cpu.abi"),
            abilist=p.get("ro.product.cpu.abilist"),
            gpu=self._gpu() or p.get("ro.hardware.egl") or None,
        )

    def _gpu(self) -> str | None:
        """The GLES renderer line of SurfaceFlinger ("Qualcomm, Adreno (TM) 730, ..."), if any."""
        try:
            res = self.shell(["dumpsys", "SurfaceFlinger"], 20, "reading the GPU name")
        except DeviceDisconnected:
            raise
        except DeviceError:
            return None
        m = re.search(r"^GLES:\s*(.+)$", res.output, re.M)
        return m.group(1).strip() if m else None

    def check_abi(self, info: DeviceInfo) -> None:
        """Refuse a device that cannot run an android_aarch64 binary."""
        abis = {info.abi, *((info.abilist or "").split(","))}
        if REQUIRED_ABI not in abis:
            raise DeviceError(
                f"device {self.serial} ({info.model}): ABI {info.abi or 'unknown'} is not "
                f"{REQUIRED_ABI}; benchmark_model for android_aarch64 needs a 64-bit ARM phone "
                "(or an arm64 emulator image)"
            )

    def thermal(self) -> ThermalState:
        """Thermal status and temperatures (thermalservice, else /sys/class/thermal)."""
        res = self.shell(["dumpsys", "thermalservice"], 20, "reading the thermal state")
        state = parse_thermalservice(res.output) if res.rc == 0 else None
        if state is not None:
            return state
        ls = self.shell(["ls", "/sys/class/thermal"], 10, "listing thermal zones")
        zones = sorted(set(re.findall(r"thermal_zone\d+", ls.output)))[:64]
        if ls.rc != 0 or not zones:
            return ThermalState(None, {}, None)
        files = [f"/sys/class/thermal/{z}/{f}" for z in zones for f in ("type", "temp")]
        temps = parse_sysfs_thermal(
            self.shell(["grep", "-H", ".", *files], 20, "reading thermal zones").output
        )
        return ThermalState(None, temps, "sysfs" if temps else None)

    def sha256(self, remote: list[str]) -> dict[str, str]:
        """sha256 of device files that exist (``sha256sum``); missing files are left out."""
        if not remote:
            return {}
        res = self.shell(["sha256sum", *remote], 120, "hashing files on the device")
        return {
            path: h for h, path in re.findall(r"^([0-9a-f]{64})\s+\*?(\S.*?)\s*$", res.output, re.M)
        }

    def exists(self, remote: str) -> bool:
        return self.shell(["test", "-e", remote], what="checking the run folder").rc == 0

    def push(self, local: Path, remote: str) -> None:
        """``adb push`` one file; the timeout grows with its size (2 MB/s plus 30 s)."""
        timeout = 30 + local.stat().st_size / 2e6
        proc = self.run(["push", str(local), remote], timeout, f"pushing {local.name}")
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()
            if _GONE.search(detail) or self.state() != "device":
                raise self._lost(f"pushing {local.name}", detail)
            raise DeviceError(
                f"{local}: adb push to {remote} failed: {detail[-200:]}; check free space on the "
                "device"
            )

    def sync(self, files: dict[str, Path], hashes: dict[str, str] | None = None) -> list[str]:
        """Push ``{remote path: local file}``, skipping files whose sha256 already matches.

        Args:
            files: Remote path -> local file.
            hashes: Remote path -> sha256 of the local file, when already known.

        Returns:
            The remote paths actually pushed.
        """
        have = self.sha256(list(files))
        hashes = hashes or {}
        pushed = []
        for remote, local in files.items():
            if have.get(remote) == (hashes.get(remote) or sha256_file(local)):
                continue
            self.push(local, remote)
            pushed.append(remote)
        return pushed

    def remove(self, paths: list[str], recursive: bool = False) -> None:
        """Delete device paths (best effort; a vanished device is not an error here)."""
        if not paths:
            return
        try:
            self.shell(["rm", "-rf" if recursive else "-f", *paths], 60, "cleaning up")
        except DeviceError:
            pass
