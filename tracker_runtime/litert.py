"""The exported TFLite graphs run with the LiteRT interpreter, addressed by the manifest's names.

Shapes: NumPy arrays exactly as the manifest lists them (NHWC images, ``1 x 1 x N x C`` memory).
An export folder is untrusted: each file's real inputs and outputs (names, shapes, dtypes) are
checked against the manifest when it is opened (``check_signature``; the manifest checks the
graphs against each other), and any error LiteRT raises while running a graph becomes one
``ManifestError`` line naming the file and the graph.
"""

from pathlib import Path
from typing import Literal

import numpy as np

from vosx.errors import ManifestError
from vosx.limits import DEFAULT_THREADS
from vosx.manifest import REEXPORT, GraphSpec, Manifest, load_manifest
from vosx.tracker_runtime.accelerator import CompiledGraph


def make_interpreter(path: Path, threads: int = DEFAULT_THREADS, xnnpack: bool = True):
    """A LiteRT interpreter for one .tflite file, tensors allocated.

    When XNNPACK cannot take the model (seen with some int8 graphs) it falls back to LiteRT's
    builtin kernels; ``interp.xnnpack`` says which ran.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    for use_xnnpack in (True, False) if xnnpack else (False,):
        resolver = (
            OpResolverType.AUTO if use_xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        try:
            interp = Interpreter(
                model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver
            )
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            if use_xnnpack and "XNNPACK" in str(e):
                continue
            why = " ".join(str(e).split())[:300] or type(e).__name__  # one line
            raise ManifestError(
                f"{path}: LiteRT cannot load this model ({why}); re-run `vosx export`"
            ) from None
        interp.xnnpack = use_xnnpack
        return interp
    raise AssertionError("unreachable")


Signature = dict[str, tuple[tuple[int, ...], str]]  # tensor name -> (shape, dtype name)


def interpreter_signature(interp) -> tuple[Signature, Signature]:
    """(inputs, outputs) of a LiteRT interpreter: name -> (shape, dtype name)."""

    def rows(details) -> Signature:
        return {
            d["name"]: (tuple(int(v) for v in d["shape"]), np.dtype(d["dtype"]).name)
            for d in details
        }

    return rows(interp.get_input_details()), rows(interp.get_output_details())


def check_signature(path: Path, spec: GraphSpec, inputs: Signature, outputs: Signature) -> None:
    """The file's real inputs and outputs must be exactly the manifest's (names, shapes, dtypes).

    Raises:
        ManifestError: one line naming the file, the graph, the tensor and both descriptions.
    """
    for kind, listed, real in (("inputs", spec.inputs, inputs), ("outputs", spec.outputs, outputs)):
        want = {t.name: (tuple(t.shape), t.dtype) for t in listed}
        if set(want) != set(real):
            raise ManifestError(
                f"{path}: the {spec.name} model's {kind} are {', '.join(sorted(real)) or 'none'} "
                f"but the manifest lists {', '.join(sorted(want))}; {REEXPORT}"
            )
        for name, (shape, dtype) in want.items():
            if real[name] != (shape, dtype):
                have_shape, have_dtype = real[name]
                raise ManifestError(
                    f"{path}: {spec.name} tensor {name} is {list(have_shape)} {have_dtype} in the "
                    f"model but {list(shape)} {dtype} in the manifest; {REEXPORT}"
                )


def _run_error(path: Path, graph: str, e: Exception) -> ManifestError:
    why = " ".join(str(e).split())[:300] or type(e).__name__
    return ManifestError(f"{path}: LiteRT failed running the {graph} graph ({why}); {REEXPORT}")


class TFLiteGraphs:
    """The three graphs of an export folder on LiteRT (one precision).

    Args:
        manifest: A loaded manifest.
        precision: "fp32", "fp16" or "int8".
        threads: CPU threads per interpreter.
        xnnpack: Use the XNNPACK delegate (LiteRT's default CPU path).
        accelerator: "cpu" (LiteRT interpreters) or "gpu" (LiteRT's GPU accelerator, GPU-only,
            on the CompiledModel API with buffers reused across frames; ``run`` only).

    Raises:
        ManifestError: a file's inputs or outputs differ from the manifest's (``check_signature``);
            later, a graph LiteRT fails to run (one line naming it).
        AcceleratorError: ``accelerator="gpu"`` without a usable GPU, or a graph it refuses.
    """

    def __init__(
        self,
        manifest: Manifest,
        precision: str = "fp32",
        threads: int = DEFAULT_THREADS,
        xnnpack: bool = True,
        accelerator: Literal["cpu", "gpu"] = "cpu",
    ):
        self.manifest = manifest
        self.precision = precision
        self.accelerator = accelerator
        self._interp = {}
        self._gpu: dict[str, CompiledGraph] = {}
        self._in_idx = {}
        self._out_idx = {}
        self._paths = {}
        for name, spec in manifest.graphs.items():
            path = manifest.tflite_path(name, precision)  # checked inside the export folder
            self._paths[name] = path
            if accelerator == "gpu":
                self._gpu[name] = graph = CompiledGraph(path, "gpu")
                check_signature(path, spec, *graph.signature)
                continue
            interp = make_interpreter(path, threads, xnnpack)
            check_signature(path, spec, *interpreter_signature(interp))
            ins = {d["name"]: d for d in interp.get_input_details()}
            outs = {d["name"]: d for d in interp.get_output_details()}
            self._interp[name] = interp
            self._in_idx[name] = {t.name: ins[t.name]["index"] for t in spec.inputs}
            self._out_idx[name] = {t.name: outs[t.name]["index"] for t in spec.outputs}

    @classmethod
    def open(
        cls,
        export_dir: str | Path,
        precision: str = "fp32",
        threads: int = DEFAULT_THREADS,
        xnnpack: bool = True,
        accelerator: Literal["cpu", "gpu"] = "cpu",
    ):
        """Load the manifest of ``export_dir`` (checking the sha256 of that precision's files)."""
        manifest = load_manifest(export_dir, precision=precision)
        return cls(manifest, precision, threads, xnnpack, accelerator)

    def set_inputs(self, graph: str, inputs: dict) -> None:
        """Copy inputs (by name) into a graph's input tensors.

        Raises:
            ManifestError: LiteRT refuses an input (one line naming the file and the graph).
        """
        interp = self._interp[graph]
        try:
            for name, idx in self._in_idx[graph].items():
                interp.set_tensor(idx, np.ascontiguousarray(inputs[name], dtype=np.float32))
        except (ValueError, RuntimeError) as e:
            raise _run_error(self._paths[graph], graph, e) from None

    def invoke(self, graph: str) -> None:
        """Run a graph on the inputs already set.

        Raises:
            ManifestError: LiteRT fails to run it (one line naming the file and the graph).
        """
        try:
            self._interp[graph].invoke()
        except (ValueError, RuntimeError) as e:
            raise _run_error(self._paths[graph], graph, e) from None

    def outputs(self, graph: str) -> dict:
        """A graph's outputs by name (copies)."""
        interp = self._interp[graph]
        try:
            return {name: interp.get_tensor(idx) for name, idx in self._out_idx[graph].items()}
        except (ValueError, RuntimeError) as e:
            raise _run_error(self._paths[graph], graph, e) from None

    def run(self, graph: str, inputs: dict) -> dict:
        """set_inputs + invoke + outputs (on the GPU: one run of its compiled graph).

        Raises:
            ManifestError: LiteRT fails to run the graph (one line naming the file and graph).
            AcceleratorError: the GPU fails to run it (one line naming the file).
        """
        if self.accelerator == "gpu":
            try:
                return self._gpu[graph].run(inputs)
            except ValueError as e:
                raise _run_error(self._paths[graph], graph, e) from None
        self.set_inputs(graph, inputs)
        self.invoke(graph)
        return self.outputs(graph)
