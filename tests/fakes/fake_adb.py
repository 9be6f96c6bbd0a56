"""A fake ``adb``: phones emulated from a JSON state file (``$FAKE_ADB_STATE``), run as a process.

Each device's filesystem is a folder (``<state dir>/devices/<serial>/``) standing for
``/data/local/tmp`` and ``/sys/class/thermal``. Supported: ``devices -l``, ``-s SERIAL``,
``get-state``, ``push``, and ``shell`` with getprop, sha256sum, mkdir, chmod, rm, test, ls, cat,
grep -H, dumpsys (thermalservice, SurfaceFlinger) and executing pushed fake tools (see tools.py);
``reverse`` and ``shell am start`` (the phone's browser: headless Chromium, fake_phone_browser.py).
Shell commands are split with ``shlex`` exactly as the device shell would; the ``2>&1; echo
__VOSX_RC__=$?`` suffix vosx appends is honoured. Every call is logged to ``calls.jsonl``.

State (all optional but ``devices``): ``devices`` {serial: {state, props, gpu, throttle_after,
sysfs_only, no_sha256sum, disconnect_after, speed, hang_on}}, ``benchmark`` {latency_us,
delegate_factor, precision_factor, format, delegation, fail, outputs, unconsumed (flags its
--help lists but it ignores)}, ``inference_diff`` {errors, fail}. Which benchmark tool a pushed
binary emulates (TensorFlow's or LiteRT's) is its fake marker (tools.py).
"""

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tools import (  # noqa: E402 - the launcher runs this file as a script
    LITERT_TOOL,
    benchmark_lines,
    gpu_failure_lines,
    help_lines,
    inference_diff_lines,
    litert_abort_lines,
    litert_lines,
    litert_refused_lines,
    tool_flags,
    tool_of,
    unconsumed_line,
)

SUFFIX = ["2>&1;", "echo", "__VOSX_RC__=$?"]
ALLOWED = ("/data/local/tmp", "/sys/class/thermal")
DISCONNECT = -1
GRAPH_OUTPUTS = {"key_encoder": 5, "value_encoder": 1, "decoder": 1}
PRECISION_OF = {"float32": "fp32", "float16": "fp16", "int8": "int8"}


class Fake:
    """The fake adb for one invocation."""

    def __init__(self, state_path: Path):
        self.state_path = state_path
        self.dir = state_path.parent
        self.state = json.loads(state_path.read_text())
        self.out: list[str] = []
        self.err: list[str] = []

    @contextmanager
    def locked(self):
        """Read-modify-write of the state under a lock (parallel devices share the file)."""
        with open(self.dir / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.state = json.loads(self.state_path.read_text())
            yield self.state
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.state))
            os.replace(tmp, self.state_path)

    def log(self, argv: list[str]) -> None:
        with open(self.dir / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with open(self.dir / "calls.jsonl", "a") as f:
                f.write(json.dumps(argv) + "\n")

    # ---- devices ---------------------------------------------------------------------------

    def listed(self) -> dict:
        return {
            s: d for s, d in self.state["devices"].items() if d.get("state", "device") != "gone"
        }

    def devices(self) -> int:
        self.out.append("List of devices attached")
        for serial, d in self.listed().items():
            state = d.get("state", "device")
            if state == "device":
                model = d.get("props", {}).get("ro.product.model", "SM_S901U").replace(" ", "_")
                extra = f"usb:1-1 product:r0q model:{model} device:r0q transport_id:1"
            elif state == "no permissions":
                extra = "(user in plugdev group; are your udev rules wrong?); see [http://developer.android.com/tools/device.html]"
            else:
                extra = "usb:1-1 transport_id:2"
            self.out.append(f"{serial:<22} {state} {extra}")
        self.out.append("")
        return 0

    def root(self, serial: str) -> Path:
        return self.dir / "devices" / serial

    def local(self, serial: str, remote: str) -> Path | None:
        """The host path standing for a device path (None outside the emulated folders)."""
        norm = os.path.normpath(remote)
        if not norm.startswith(ALLOWED):
            return None
        return self.root(serial) / norm.lstrip("/")

    def main(self, argv: list[str]) -> int:
        self.log(argv)
        if argv[:1] == ["devices"]:
            return self.devices()
        if argv[:1] == ["-s"]:
            serial, argv = argv[1], argv[2:]
        else:
            listed = list(self.listed())
            if len(listed) != 1:
                self.err.append(
                    "adb: more than one device/emulator"
                    if listed
                    else "adb: no devices/emulators found"
                )
                return 1
            serial = listed[0]
        dev = self.listed().get(serial)
        if dev is None:
            self.err.append(f"adb: device '{serial}' not found")
            return 1
        state = dev.get("state", "device")
        if argv[:1] == ["get-state"] and state == "device":
            self.out.append("device")
            return 0
        if state == "unauthorized":
            self.err += [
                "adb: device unauthorized.",
                "This adb server's $ADB_VENDOR_KEYS is not set",
                "Try 'adb kill-server' if that seems wrong.",
                "Otherwise check for a confirmation dialog on your device.",
            ]
            return 1
        if state != "device":
            self.err.append(f"adb: device {state}")
            return 1
        if argv[:1] == ["push"]:
            return self.push(serial, argv[1], argv[2])
        if argv[:1] == ["shell"]:
            return self.shell(serial, dev, " ".join(argv[1:]))
        if argv[:1] == ["reverse"]:
            return self.reverse(serial, argv[1:])
        self.err.append(f"adb: unknown command {argv[:1]}")
        return 1

    def push(self, serial: str, local: str, remote: str) -> int:
        dst = self.local(serial, remote)
        if dst is None or not dst.parent.is_dir():
            self.err.append(
                f"adb: error: failed to copy '{local}' to '{remote}': remote couldn't create "
                "file: Permission denied"
            )
            return 1
        shutil.copyfile(local, dst)
        size = dst.stat().st_size
        self.out.append(f"{local}: 1 file pushed, 0 skipped. 48.3 MB/s ({size} bytes in 0.001s)")
        return 0

    # ---- shell -----------------------------------------------------------------------------

    def shell(self, serial: str, dev: dict, command: str) -> int:
        tokens = shlex.split(command)
        marker = tokens[-3:] == SUFFIX
        if marker:
            tokens = tokens[:-3]
        rc = self.command(serial, dev, tokens)
        if rc == DISCONNECT:
            self.err.append("error: closed")
            return 255
        if marker:
            self.out.append(f"__VOSX_RC__={rc}")
            return 0
        return rc

    def command(self, serial: str, dev: dict, argv: list[str]) -> int:
        if not argv:
            return 0
        name, args = argv[0], argv[1:]
        if name == dev.get("hang_on"):  # a command that never returns
            time.sleep(60)
        if name.startswith("/"):
            return self.execute(serial, dev, name, args)
        fn = getattr(self, f"cmd_{name}", None)
        if fn is None or (name == "sha256sum" and dev.get("no_sha256sum")):
            self.out.append(f"/system/bin/sh: {name}: inaccessible or not found")
            return 127
        return fn(serial, dev, args)

    # ---- the phone's browser (vosx bench --runtime browser) --------------------------------

    def reverse(self, serial: str, args: list[str]) -> int:
        """``reverse tcp:P tcp:Q``, ``reverse --remove tcp:P``, ``reverse --list``."""
        with self.locked() as state:
            rules = state["devices"][serial].setdefault("reverse", {})
            if args[:1] == ["--list"]:
                self.out += [f"UsbFfs tcp:{p} tcp:{q}" for p, q in rules.items()]
            elif args[:1] == ["--remove"] and len(args) == 2 and args[1] in rules.values():
                del rules[args[1].removeprefix("tcp:")]
            elif len(args) == 2 and all(a.startswith("tcp:") for a in args):
                rules[args[0].removeprefix("tcp:")] = args[1]
            else:
                self.err.append(f"adb: error: cannot reverse {' '.join(args)}")
                return 1
        return 0

    def cmd_am(self, serial, dev, args) -> int:
        """``am start -a VIEW -d URL -n PKG/ACTIVITY``: headless Chromium opens the URL, mapped
        through the reverse rules (state ``browser``: {"webgpu": bool, "answers": bool}).
        """
        browser = dev.get("browser")
        if args[:1] != ["start"] or "-d" not in args or browser is None:
            self.out.append("Error: Activity not started, unable to resolve Intent")
            return 1
        url = args[args.index("-d") + 1]
        self.out.append(f"Starting: Intent {{ act=android.intent.action.VIEW dat={url[:40]} }}")
        if not browser.get("answers", True):
            return 0  # the page is opened but never posts (a locked phone, Chrome in background)
        host, _, rest = url.removeprefix("http://").partition("/")
        port = host.rpartition(":")[2]
        mapped = dev.get("reverse", {}).get(port, "tcp:1").removeprefix("tcp:")
        local = f"http://127.0.0.1:{mapped}/{rest}"
        cmd = [sys.executable, str(Path(__file__).with_name("fake_phone_browser.py")), local]
        if not browser.get("webgpu", True):
            cmd.append("--no-webgpu")
        log = open(self.dir / f"browser_{serial}.log", "a")  # noqa: SIM115 - kept by the child
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
        with open(self.dir / "browser_pids", "a") as f:
            f.write(f"{proc.pid}\n")
        return 0

    def cmd_getprop(self, serial, dev, args) -> int:
        props = dev.get("props", {})
        if args:
            self.out.append(props.get(args[0], ""))
        else:
            self.out += [f"[{k}]: [{v}]" for k, v in props.items()]
        return 0

    def _files(self, serial, paths):
        for p in paths:
            yield p, self.local(serial, p)

    def cmd_sha256sum(self, serial, dev, args) -> int:
        rc = 0
        for p, loc in self._files(serial, args):
            if loc is None or not loc.is_file():
                self.out.append(f"sha256sum: {p}: No such file or directory")
                rc = 1
            else:
                self.out.append(f"{hashlib.sha256(loc.read_bytes()).hexdigest()}  {p}")
        return rc

    def cmd_mkdir(self, serial, dev, args) -> int:
        for p, loc in self._files(serial, [a for a in args if a != "-p"]):
            if loc is None:
                self.out.append(f"mkdir: '{p}': Permission denied")
                return 1
            loc.mkdir(parents=True, exist_ok=True)
        return 0

    def cmd_chmod(self, serial, dev, args) -> int:
        mode, paths = int(args[0], 8), args[1:]
        for p, loc in self._files(serial, paths):
            if loc is None or not loc.exists():
                self.out.append(f"chmod: {p}: No such file or directory")
                return 1
            loc.chmod(mode)
        return 0

    def cmd_rm(self, serial, dev, args) -> int:
        for p, loc in self._files(serial, [a for a in args if not a.startswith("-")]):
            if loc is None:
                self.out.append(f"rm: {p}: Permission denied")
                return 1
            if loc.is_dir():
                shutil.rmtree(loc)
            elif loc.exists():
                loc.unlink()
        return 0

    def cmd_test(self, serial, dev, args) -> int:
        loc = self.local(serial, args[-1])
        return 0 if loc is not None and loc.exists() else 1

    def cmd_ls(self, serial, dev, args) -> int:
        loc = self.local(serial, args[-1])
        if loc is None or not loc.is_dir():
            self.out.append(f"ls: {args[-1]}: No such file or directory")
            return 1
        self.out += sorted(p.name for p in loc.iterdir())
        return 0

    def cmd_cat(self, serial, dev, args) -> int:
        for p, loc in self._files(serial, args):
            if loc is None or not loc.is_file():
                self.out.append(f"cat: {p}: No such file or directory")
                return 1
            self.out.append(loc.read_text().rstrip("\n"))
        return 0

    def cmd_grep(self, serial, dev, args) -> int:
        files = [a for a in args if a not in ("-H", ".")]
        for p, loc in self._files(serial, files):
            if loc is not None and loc.is_file():
                self.out += [f"{p}:{ln}" for ln in loc.read_text().splitlines() if ln]
        return 0

    def runs_so_far(self, serial: str) -> int:
        return self.state.get("counters", {}).get(serial, 0)

    def cmd_dumpsys(self, serial, dev, args) -> int:
        if args[:1] == ["SurfaceFlinger"]:
            self.out += [
                "Build configuration: [sf PRESENT_TIME_OFFSET=0 FORCE_HWC_FOR_RBG_TO_YUV=1]"
            ]
            if dev.get("gpu"):
                self.out.append(f"GLES: {dev['gpu']}")
            self.out.append("Display 4619827259835644672 HWC layers:")
            return 0
        if args[:1] == ["thermalservice"]:
            if dev.get("sysfs_only"):
                self.out.append("Can't find service: thermalservice")
                return 0
            n = self.runs_so_far(serial)
            after = dev.get("throttle_after")
            status = 2 if after is not None and n >= after else 0
            t = 38.0 + 0.5 * n
            self.out += [
                "IsStatusOverride: false",
                "ThermalEventListeners:",
                "\tcallbacks: 1",
                "\tkilled: false",
                "\tbroadcasts count: -1",
                f"Thermal Status: {status}",
                "Cached temperatures:",
                f"\tTemperature{{mValue={t - 1:.1f}, mType=3, mName=skin-therm, mStatus={status}}}",
                "HAL Ready: true",
                "HAL connection:",
                "\tThermalHAL 2.0 connected: yes",
                "Current temperatures from HAL:",
                f"\tTemperature{{mValue={t + 4:.6f}, mType=0, mName=cpu-1-0, mStatus={status}}}",
                f"\tTemperature{{mValue={t + 2:.6f}, mType=1, mName=gpuss-0, mStatus={status}}}",
                f"\tTemperature{{mValue={t - 6:.1f}, mType=2, mName=battery, mStatus=0}}",
                f"\tTemperature{{mValue={t - 1:.1f}, mType=3, mName=skin-therm, mStatus={status}}}",
                "Current cooling devices from HAL:",
                "\tCoolingDevice{mValue=0, mType=2, mName=battery}",
            ]
            return 0
        self.out.append(f"Can't find service: {args[0] if args else ''}")
        return 0

    # ---- fake tools ------------------------------------------------------------------------

    def execute(self, serial: str, dev: dict, path: str, args: list[str]) -> int:
        loc = self.local(serial, path)
        if loc is None or not loc.is_file():
            self.out.append(f"/system/bin/sh: {path}: inaccessible or not found")
            return 127
        if not os.access(loc, os.X_OK):
            self.out.append(f"/system/bin/sh: {path}: can't execute: Permission denied")
            return 126
        data = loc.read_bytes()
        tool = tool_of(data)
        if data[:4] != b"\x7fELF" or int.from_bytes(data[18:20], "little") != 183 or tool is None:
            self.out.append(f"/system/bin/sh: {path}: can't execute: Exec format error")
            return 126
        if tool == "inference_diff":
            flags = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
            return self.inference_diff(serial, flags)
        if "--help" in args or "--help=true" in args:
            self.out += help_lines(tool, path)
            return 1
        known = {name for name, _, _ in tool_flags(tool)}
        known -= set(self.state.get("benchmark", {}).get("unconsumed", []))
        flags, unknown = {}, []
        for a in args:
            name, _, value = a[2:].partition("=")
            if a.startswith("--") and name in known:
                flags[name] = value or "true"
            else:
                unknown.append(a)
        start = len(self.out)
        rc = self.benchmark_model(serial, dev, tool, flags)
        if unknown:  # warned right after STARTING!, as tflite's ParseFlags does
            self.out.insert(start + 1, unconsumed_line(unknown))
        return rc

    def _model(self, serial: str, path: str) -> tuple[str, str, bool]:
        stem = Path(path).name.removesuffix(".tflite")
        graph, _, suffix = stem.rpartition("_")
        loc = self.local(serial, path)
        return graph, PRECISION_OF.get(suffix, suffix), loc is not None and loc.is_file()

    def benchmark_model(self, serial: str, dev: dict, tool: str, flags: dict) -> int:
        cfg = self.state.get("benchmark", {})
        litert = tool == LITERT_TOOL
        graph_path = flags.get("graph", "")
        graph, precision, exists = self._model(serial, graph_path)
        delegate = (
            "gpu"
            if flags.get("use_gpu") == "true"
            else "nnapi"
            if flags.get("use_nnapi") == "true"
            else "cpu"
        )
        if litert and flags.get("require_full_delegation") == "true":
            if flags.get("use_cpu", "true") != "false":
                self.out += litert_abort_lines()
                return 134
        key = f"{serial}/{graph}/{delegate}/{precision}"
        with self.locked() as st:
            n = st.setdefault("counters", {}).get(serial, 0) + 1
            st["counters"][serial] = n
            k = st.setdefault("per_key", {}).get(key, 0) + 1  # this graph's trial, from 1
            st["per_key"][key] = k
            limit = dev.get("disconnect_after")
            if limit is not None and n > limit:
                st["devices"][serial]["state"] = "gone"
        if limit is not None and n > limit:
            self.out += ["INFO: STARTING!", f"INFO: Graph: [{graph_path}]"]
            return DISCONNECT
        if not exists:
            self.out += [
                f"ERROR: Could not open '{graph_path}'.",
                f"Failed to mmap model {graph_path}",
                "Benchmarking failed.",
            ]
            return 1
        for rule in cfg.get("fail", []):
            if (
                rule.get("graph", graph) == graph
                and rule.get("delegate", delegate) == delegate
                and rule.get("precision", precision) == precision
            ):
                if "output" in rule:
                    self.out += rule["output"].splitlines()
                elif litert:
                    self.out += litert_refused_lines(graph_path)
                else:
                    self.out += gpu_failure_lines(graph_path)
                return 1
        verbatim = cfg.get("outputs", {}).get(f"{graph}/{delegate}/{precision}")
        if verbatim is not None:
            self.out += verbatim.splitlines()
            return 0
        base = cfg.get("latency_us", {}).get(graph, 10000.0)
        avg = (
            base
            * cfg.get("delegate_factor", {}).get(delegate, 1.0)
            * cfg.get("precision_factor", {}).get(precision, 1.0)
        )
        avg *= dev.get("speed", 1.0) * (1.0 + 0.02 * (k - 1))  # 2 % slower each trial
        gpu = delegate == "gpu"
        timings = {
            "init_us": 350000.0 if gpu else 4200.0,
            "first_us": avg * (5.0 if gpu else 1.5),
            "warmup_us": avg * 1.1,
            "avg_us": round(avg, 1),
            "runs": int(flags.get("num_runs", 50)),
            "warmup_runs": max(1, int(flags.get("warmup_runs", 1))),
            "threads": int(flags.get("num_threads", 1)),
            "mem_init": 12.5,
            "mem_overall": 40.25,
            "peak_mb": 55.1,
            "delegation": cfg.get("delegation", {}).get(delegate, "full"),
        }
        if litert:
            self.out += litert_lines(graph_path, timings)
            return 0
        fmt = cfg.get("format", {}).get(delegate, "info")
        self.out += benchmark_lines(fmt, graph_path, delegate, timings, (120, 120))
        return 0

    def inference_diff(self, serial: str, flags: dict) -> int:
        cfg = self.state.get("inference_diff", {})
        graph, _, exists = self._model(serial, flags.get("model_file", ""))
        if not exists or graph in cfg.get("fail", []):
            self.out += [
                "INFO: Initialized TensorFlow Lite runtime.",
                "ERROR: Failed to apply GPU delegate.",
                "ERROR: Could not evaluate model!",
            ]
            return 1
        err = cfg.get("errors", {}).get(graph, 2.5e-6)
        errors = [err * (1 + 0.1 * i) for i in range(GRAPH_OUTPUTS.get(graph, 1))]
        self.out += inference_diff_lines(errors, 25210.4, 4120.3, int(flags.get("num_runs", 50)))
        return 0


def main(argv: list[str]) -> int:
    fake = Fake(Path(os.environ["FAKE_ADB_STATE"]))
    rc = fake.main(argv)
    if fake.out:
        sys.stdout.write("\n".join(fake.out) + "\n")
    if fake.err:
        sys.stderr.write("\n".join(fake.err) + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
