"""LiteRT's GPU accelerator, run on this machine: the delegation verdict and GPU numerics.

The ``ai-edge-litert`` wheel ships ``libLiteRtWebGpuAccelerator.so``: ML Drift's GPU kernels over
WebGPU (Dawn) and Vulkan. With Mesa >= 25's software Vulkan driver (lavapipe) it runs on a CPU, so
what an app's GPU delegate would do with an exported graph can be checked without a phone:

* ``probe_gpu``: whether the accelerator can run here, on which Vulkan device, and if not, why and
  the command that installs the driver;
* ``CompiledGraph``: one ``.tflite`` file on LiteRT's CompiledModel API, on the CPU or GPU-only
  (no CPU fallback: the strict compile is the delegation verdict), with its input and output
  buffers created once and reused by every ``run``;
* ``compare_on_gpu``: a graph's GPU outputs against reference outputs (max relative error).

LiteRT's GPU path crashes (segfault) in a process that loaded TensorFlow, so ``probe_gpu`` and
``compare_on_gpu`` run it in a child process (``python -m vosx.tracker_runtime.accelerator``,
``tracker_runtime.child``'s protocol), and ``CompiledGraph`` refuses the GPU in such a process.

The GPU computes in fp16 unless ``enforce_f32`` (the accelerator's default, as on a phone that
allows precision loss). NumPy + LiteRT only. Shapes: NumPy arrays exactly as the graph's tensors.
"""

import atexit
import base64
import functools
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from vosx.errors import AcceleratorError
from vosx.tracker_runtime.child import ChildResult, run_child, serve

T = TypeVar("T")
ACCELERATORS = ("cpu", "gpu")  # what CompiledGraph and TFLiteGraphs run on

# y = x + 1 on a float32 [1, 4] input "x" (output "y"): generated once with TensorFlow 2.21,
# tf.lite.TFLiteConverter.from_concrete_functions of that tf.function, then base64 -w 96.
_PROBE_MODEL = base64.b64decode(
    """
HAAAAFRGTDMUACAAHAAYABQAEAAMAAAACAAEABQAAAAcAAAAhAAAANwAAACkAQAAtAEAABQDAAADAAAAAQAAABAAAAAAAAoA
EAAMAAgABAAKAAAADAAAABwAAAA0AAAADwAAAHNlcnZpbmdfZGVmYXVsdAABAAAABAAAAKT///8CAAAABAAAAAEAAAB5AAAA
AQAAAAQAAADm/v//BAAAAAEAAAB4AAAAAgAAADQAAAAEAAAA3P///wUAAAAEAAAAEwAAAENPTlZFUlNJT05fTUVUQURBVEEA
CAAMAAgABAAIAAAABAAAAAQAAAATAAAAbWluX3J1bnRpbWVfdmVyc2lvbgAGAAAAxAAAALwAAACoAAAAmAAAAHQAAAAEAAAA
bv///wQAAABgAAAAEAAAAAAAAAAIAA4ACAAEAAgAAAAQAAAAJAAAAAAABgAIAAQABgAAAAQAAAAAAAAADAAYABQAEAAMAAQA
DAAAADpUyLF8t25CAwAAAAIAAAAEAAAABgAAADIuMjEuMAAA2v///wQAAAAQAAAAMS41LjAAAAAAAAAAAAAAAAQABgAEAAAA
AAAGAAgABAAGAAAABAAAAAQAAAAAAIA/eP7//3z+//8PAAAATUxJUiBDb252ZXJ0ZWQuAAEAAAAUAAAAAAAOABgAFAAQAAwA
CAAEAA4AAAAUAAAAHAAAAFwAAABgAAAAZAAAAAQAAABtYWluAAAAAAEAAAAUAAAAAAAOABQAAAAQAAwACwAEAA4AAAAQAAAA
AAAACwwAAAAQAAAA/P7//wEAAAACAAAAAgAAAAAAAAABAAAAAQAAAAIAAAABAAAAAAAAAAMAAACQAAAASAAAAAQAAACS////
AAAAARAAAAAQAAAAAwAAACAAAABM////EQAAAFBhcnRpdGlvbmVkQ2FsbDowAAAAAgAAAAEAAAAEAAAA0v///wAAAAEQAAAA
EAAAAAIAAAAUAAAAjP///wUAAABhZGQveQAAAAAAAAAAABYAGAAUAAAAEAAMAAgAAAAAAAAABwAWAAAAAAAAARAAAAAQAAAA
AQAAACAAAADQ////EwAAAHNlcnZpbmdfZGVmYXVsdF94OjAAAgAAAAEAAAAEAAAAAQAAAAgAAAAEAAQABAAAAA==
"""
)
_ADAPTER = re.compile(r"Selected adapter: (.+?)(?:, arch=|$)", re.M)
_UNSUPPORTED = "Following operations are not supported by GPU delegate:"
_NO_DEVICE = re.compile(r"(No adapters found|Found no drivers|vkCreateInstance failed[^\n]*)")


@dataclass(frozen=True)
class GpuProbe:
    """Whether LiteRT's GPU accelerator runs here.

    ``adapter``: the Vulkan device's name (e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"), None when
    unknown; ``reason``: why it cannot run, with the command that enables it (None when it can).
    """

    available: bool
    adapter: str | None
    reason: str | None


@dataclass(frozen=True)
class GpuResult:
    """A graph compiled GPU-only and run: its outputs against reference outputs.

    ``max_rel``: output name -> max |gpu - reference| / max |reference| (as ``vosx export``'s
    parity ``rel``).
    """

    fully_delegated: bool
    adapter: str | None
    max_rel: dict[str, float]

    @property
    def worst(self) -> tuple[str, float]:
        """(output, error) of the output with the largest relative error."""
        return max(self.max_rel.items(), key=lambda kv: kv[1])


def install_hint() -> str:
    """How to get a Vulkan driver Dawn accepts (Mesa >= 25's lavapipe) on this Linux."""
    release = _os_release()
    if release.get("ID") == "debian" and release.get("VERSION_CODENAME") == "bookworm":
        return (
            "Debian 12's Mesa 22 is too old; as root: echo 'deb http://deb.debian.org/debian "
            "bookworm-backports main' > /etc/apt/sources.list.d/backports.list && apt-get update "
            "&& apt-get install -y -t bookworm-backports mesa-vulkan-drivers"
        )
    if release.get("ID") in ("debian", "ubuntu"):
        return "as root: apt-get install -y mesa-vulkan-drivers (Mesa >= 25; Debian 13 has it)"
    return "install Mesa >= 25's Vulkan drivers (Debian: mesa-vulkan-drivers) or a GPU's driver"


def ensure_runtime_dir() -> None:
    """Point ``XDG_RUNTIME_DIR`` (which Dawn wants) at a private temporary folder when unset."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        path = tempfile.mkdtemp(prefix="vosx-xdg-")  # mode 0700
        atexit.register(shutil.rmtree, path, True)
        os.environ["XDG_RUNTIME_DIR"] = path


@functools.cache
def probe_gpu() -> GpuProbe:
    """Compile and run a built-in one-op model GPU-only, in a child process (cached).

    A child process, because LiteRT's GPU path crashes in a process that loaded TensorFlow (seen
    with lavapipe), and so that a broken driver becomes a reason instead of a crash.
    """
    try:
        answer = _child({"job": "probe"}, {}, "the GPU probe", timeout_s=300).answer
    except AcceleratorError as e:
        return GpuProbe(False, None, f"{e}; {install_hint()}")
    return GpuProbe(bool(answer["available"]), answer["adapter"], answer["reason"])


def _probe_here() -> GpuProbe:
    """``probe_gpu``'s check, in this process."""
    import ai_edge_litert

    lib = Path(ai_edge_litert.__file__).parent / "libLiteRtWebGpuAccelerator.so"
    if not lib.is_file():
        return GpuProbe(
            False, None, f"{lib} is missing: this ai-edge-litert has no GPU accelerator"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.tflite"
        path.write_bytes(_PROBE_MODEL)
        try:
            graph = CompiledGraph(path, "gpu")
            y = graph.run({"x": np.arange(4, dtype=np.float32).reshape(1, 4)})["y"]
        except AcceleratorError as e:
            return GpuProbe(False, None, str(e).removeprefix(f"{path}: "))
    adapter = graph.adapter or _vulkaninfo_device()
    if not np.allclose(y, np.arange(1, 5).reshape(1, 4)):
        return GpuProbe(False, adapter, f"the GPU computed x + 1 = {y.ravel()} on {adapter}")
    return GpuProbe(True, adapter, None)


class CompiledGraph:
    """One ``.tflite`` file compiled by LiteRT for the CPU, or for the GPU alone.

    Args:
        path: The graph file.
        accelerator: "cpu" (XNNPACK) or "gpu" (GPU-only: any op the GPU cannot take refuses
            the whole graph, as ``--require_full_delegation`` would on a phone).
        enforce_f32: Compute in float32 on the GPU (default: fp16 arithmetic).

    Raises:
        AcceleratorError: no usable Vulkan device (with the install command), or the GPU refuses
            the graph (the message names the file and, where the accelerator says, the ops).
    """

    def __init__(
        self,
        path: Path,
        accelerator: Literal["cpu", "gpu"],
        enforce_f32: bool = False,
    ):
        from ai_edge_litert.compiled_model import (
            CompiledModel,
            CpuOptions,
            GpuOptions,
            HardwareAccelerator,
            Options,
        )

        if accelerator not in ("cpu", "gpu"):
            raise ValueError(f"accelerator must be 'cpu' or 'gpu', got {accelerator!r}")
        self.path = Path(path)
        self.accelerator = accelerator
        if accelerator == "gpu" and "tensorflow" in sys.modules:
            raise AcceleratorError(
                f"{self.path}: LiteRT's GPU accelerator crashes in a process that loaded "
                "TensorFlow; use compare_on_gpu (a child process) or a process without it"
            )
        ensure_runtime_dir()
        options = Options(
            hardware_accelerators=HardwareAccelerator.GPU
            if accelerator == "gpu"
            else HardwareAccelerator.CPU,
            cpu_options=CpuOptions(num_threads=1),
            # run() reads the outputs right after: ask for a synchronous run
            gpu_options=GpuOptions(enforce_f32=enforce_f32, hint_waiting_for_completion=True),
        )
        model, log = _quiet(lambda: CompiledModel.from_file(str(self.path), options=options))
        if isinstance(model, Exception):
            raise _refusal(self.path, accelerator, model, log) from model
        found = _ADAPTER.search(log)
        self.adapter = found.group(1).strip() if found else None  # GPU only; None when unlogged
        self._model = model
        key = next(iter(model.get_signature_list()))
        sig = model.get_signature_list()[key]
        self.input_names: list[str] = list(sig["inputs"])
        self.output_names: list[str] = list(sig["outputs"])
        ins, outs = model.get_input_tensor_details(key), model.get_output_tensor_details(key)
        self._in_specs = {n: (tuple(ins[n]["shape"]), np.dtype(ins[n]["dtype"])) for n in ins}
        self._out_specs = {n: (tuple(outs[n]["shape"]), np.dtype(outs[n]["dtype"])) for n in outs}
        self.shapes: dict[str, tuple[int, ...]] = {  # every input and output by name
            n: spec[0] for n, spec in (self._in_specs | self._out_specs).items()
        }
        self._in_buffers = model.create_input_buffers(0)  # created once, reused by every run
        self._out_buffers = model.create_output_buffers(0)

    @property
    def signature(self) -> tuple[dict, dict]:
        """(inputs, outputs) of the compiled graph: name -> (shape, dtype name)."""

        def rows(specs: dict) -> dict:
            return {n: (shape, dtype.name) for n, (shape, dtype) in specs.items()}

        return rows(self._in_specs), rows(self._out_specs)

    @property
    def fully_delegated(self) -> bool:
        """Every op runs on the chosen accelerator (always true for a GPU-only compile)."""
        return bool(self._model.is_fully_accelerated())

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on ``inputs`` (by name, shapes as the graph's) -> outputs by name (new arrays)."""
        for name, buf in zip(self.input_names, self._in_buffers, strict=True):
            shape, dtype = self._in_specs[name]
            array = np.ascontiguousarray(inputs[name], dtype=dtype)
            if array.shape != shape:
                raise ValueError(f"{self.path}: input {name} is {array.shape}, expected {shape}")
            buf.write(array)
        try:
            self._model.run_by_index(0, self._in_buffers, self._out_buffers)
        except RuntimeError as e:
            why = " ".join(str(e).split())[:300]
            raise AcceleratorError(
                f"{self.path}: run on the {self.accelerator} failed: {why}"
            ) from None
        out = {}
        for name, buf in zip(self.output_names, self._out_buffers, strict=True):
            shape, dtype = self._out_specs[name]
            try:
                out[name] = buf.read(int(np.prod(shape)), dtype).reshape(shape)
            except RuntimeError as e:
                why = " ".join(str(e).split())[:300]
                raise AcceleratorError(
                    f"{self.path}: reading output {name} failed: {why}"
                ) from None
        return out


def abs_error(got: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(max |got - reference|, max |reference|), NaN-aware: a NaN or infinity in either array
    makes the error infinite, the worst parity there is (``max`` would drop a NaN).

    Raises:
        ValueError: the shapes differ.
    """
    g, r = np.asarray(got), np.asarray(reference)
    if g.shape != r.shape:
        raise ValueError(f"shape {g.shape} differs from reference {r.shape}")
    if not (np.isfinite(g).all() and np.isfinite(r).all()):
        return math.inf, float(np.abs(np.nan_to_num(r, posinf=0, neginf=0)).max(initial=0.0))
    diff = np.abs(g.astype(np.float64) - r.astype(np.float64))
    return float(diff.max(initial=0.0)), float(np.abs(r).max(initial=0.0))


def max_rel(reference: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, float]:
    """Output name -> max |got - reference| / max |reference| (``vosx export``'s parity ``rel``);
    infinite where either holds a NaN or infinity (``abs_error``)."""
    errors = {}
    for name, r in reference.items():
        try:
            err, scale = abs_error(got[name], r)
        except ValueError as e:
            raise ValueError(f"output {name}: {e}") from None
        errors[name] = err / max(scale, 1e-12)
    return errors


def compare_on_gpu(
    path: Path,
    inputs: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    enforce_f32: bool = False,
) -> GpuResult:
    """Compile ``path`` GPU-only, run ``inputs``, and compare with ``reference`` per output.

    Runs in a child process (see ``probe_gpu``), so TensorFlow may be loaded here.

    Raises:
        AcceleratorError: the GPU is unavailable or refuses the graph (named, with its ops).
    """
    args = {"job": "run", "path": str(Path(path).absolute()), "enforce_f32": enforce_f32}
    what = f"the GPU check of {Path(path).name}"
    child = _child(args, {name: np.asarray(v) for name, v in inputs.items()}, what, 1800)
    answer = child.answer
    adapter = answer["adapter"] or probe_gpu().adapter
    return GpuResult(bool(answer["fully_delegated"]), adapter, max_rel(reference, child.arrays))


def _child(args: dict, arrays: dict, what: str, timeout_s: float) -> ChildResult:
    """This module's ``_handle`` in a child process (``tracker_runtime.child``)."""
    return run_child(
        "vosx.tracker_runtime.accelerator",
        args,
        arrays,
        error=AcceleratorError,
        what=what,
        timeout_s=timeout_s,
    )


def _handle(args: dict, arrays: dict) -> tuple[dict, dict]:
    """Child side: job "probe" (``_probe_here``) or "run" (one graph GPU-only on ``arrays``)."""
    ensure_runtime_dir()
    if args["job"] == "probe":
        return asdict(_probe_here()), {}
    graph = CompiledGraph(Path(args["path"]), "gpu", enforce_f32=args["enforce_f32"])
    got = graph.run(arrays)
    return {"fully_delegated": graph.fully_delegated, "adapter": graph.adapter}, got


def _quiet(fn: Callable[[], T]) -> tuple[T | Exception, str]:
    """Call ``fn`` with file descriptor 2 captured (LiteRT and Dawn log there) -> (result, log).

    An exception ``fn`` raises is returned, not raised, so the caller can read the log first,
    without its traceback: the traceback's frames would hold ``fn``'s half-built LiteRT objects
    in a reference cycle, and the garbage collector freeing them later, after the graphs compiled
    beside them were released, crashes LiteRT (a segfault in the GPU child).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            result: T | Exception = fn()
        except Exception as e:  # noqa: BLE001 - handed back with the log
            result = e.with_traceback(None)  # no frame cycle: freed once handled
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return result, tmp.read().decode(errors="replace")


def _refusal(path: Path, accelerator: str, error: Exception, log: str) -> AcceleratorError:
    """The one-line error of a failed compile: the ops the GPU refused, or why it could not run."""
    lines = [line.strip() for line in log.splitlines()]
    heads = [i for i, line in enumerate(lines) if line.endswith(_UNSUPPORTED)]
    if heads:
        ops = []
        for line in lines[heads[-1] + 1 :]:
            if not line or "will run on the CPU" in line or line.startswith(("INFO", "ERROR")):
                break
            ops.append(line)
        return AcceleratorError(
            f"{path}: LiteRT's GPU accelerator refuses this graph GPU-only: {'; '.join(ops)}"
        )
    device = _NO_DEVICE.search(log)
    if device:
        return AcceleratorError(
            f"{path}: no usable Vulkan device for LiteRT's GPU accelerator ({device[1]}); "
            + install_hint()
        )
    why = " ".join(str(error).split())[:300] or type(error).__name__
    return AcceleratorError(
        f"{path}: LiteRT cannot compile this graph for the {accelerator}: {why}"
    )


def _os_release() -> dict[str, str]:
    """/etc/os-release as key -> value (empty when absent)."""
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k: v.strip().strip('"') for k, v in pairs}


def _vulkaninfo_device() -> str | None:
    """The first deviceName ``vulkaninfo --summary`` lists (None without vulkan-tools)."""
    exe = shutil.which("vulkaninfo")
    if not exe:
        return None
    try:
        out = subprocess.run(
            [exe, "--summary"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"deviceName\s*=\s*(.+)", out)
    return found.group(1).strip() if found else None


if __name__ == "__main__":
    serve(_handle)
