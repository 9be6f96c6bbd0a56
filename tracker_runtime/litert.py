"""The exported TFLite graphs run with the LiteRT interpreter, addressed by the manifest's names.

Shapes: NumPy arrays exactly as the manifest lists them (NHWC images, ``1 x 1 x N x C`` memory).
"""

from pathlib import Path
from typing import Literal

import numpy as np

from vosx.errors import ManifestError
from vosx.manifest import Manifest, load_manifest
from vosx.tracker_runtime.accelerator import CompiledGraph


def make_interpreter(path: Path, threads: int = 2, xnnpack: bool = True):
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
        ManifestError: a file does not have the manifest's tensors.
        AcceleratorError: ``accelerator="gpu"`` without a usable GPU, or a graph it refuses.
    """

    def __init__(
        self,
        manifest: Manifest,
        precision: str = "fp32",
        threads: int = 2,
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
        for name, spec in manifest.graphs.items():
            path = manifest.tflite_path(name, precision)  # checked inside the export folder
            if accelerator == "gpu":
                self._gpu[name] = graph = CompiledGraph(path, "gpu")
                ins = outs = {n: {"shape": s} for n, s in graph.shapes.items()}
            else:
                interp = make_interpreter(path, threads, xnnpack)
                ins = {d["name"]: d for d in interp.get_input_details()}
                outs = {d["name"]: d for d in interp.get_output_details()}
            for t, have in [(t, ins) for t in spec.inputs] + [(t, outs) for t in spec.outputs]:
                if t.name not in have or tuple(have[t.name]["shape"]) != t.shape:
                    raise ManifestError(
                        f"{path}: tensor {t.name} {list(t.shape)} from the manifest is not in "
                        "the model; re-run `vosx export`"
                    )
            if accelerator == "gpu":
                continue
            self._interp[name] = interp
            self._in_idx[name] = {t.name: ins[t.name]["index"] for t in spec.inputs}
            self._out_idx[name] = {t.name: outs[t.name]["index"] for t in spec.outputs}

    @classmethod
    def open(
        cls,
        export_dir: str | Path,
        precision: str = "fp32",
        threads: int = 2,
        xnnpack: bool = True,
        accelerator: Literal["cpu", "gpu"] = "cpu",
    ):
        """Load the manifest of ``export_dir`` (checking the sha256 of that precision's files)."""
        manifest = load_manifest(export_dir, precision=precision)
        return cls(manifest, precision, threads, xnnpack, accelerator)

    def set_inputs(self, graph: str, inputs: dict) -> None:
        """Copy inputs (by name) into a graph's input tensors."""
        interp = self._interp[graph]
        for name, idx in self._in_idx[graph].items():
            interp.set_tensor(idx, np.ascontiguousarray(inputs[name], dtype=np.float32))

    def invoke(self, graph: str) -> None:
        """Run a graph on the inputs already set."""
        self._interp[graph].invoke()

    def outputs(self, graph: str) -> dict:
        """A graph's outputs by name (copies)."""
        interp = self._interp[graph]
        return {name: interp.get_tensor(idx) for name, idx in self._out_idx[graph].items()}

    def run(self, graph: str, inputs: dict) -> dict:
        """set_inputs + invoke + outputs (on the GPU: one run of its compiled graph)."""
        if self.accelerator == "gpu":
            return self._gpu[graph].run(inputs)
        self.set_inputs(graph, inputs)
        self.invoke(graph)
        return self.outputs(graph)
