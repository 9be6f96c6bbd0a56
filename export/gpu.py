"""Every GPU check of an export on LiteRT's GPU accelerator, in one child process.

LiteRT's GPU path crashes in a process that loaded TensorFlow (the converter's checks did), so
``run_gpu_checks`` runs ``python -m vosx.export.gpu`` (``tracker_runtime.child``'s protocol):
every float file compiled GPU-only, then one precision's graphs on each graph's probe inputs and
a short clip through the driver. The parent judges the figures (``stage_gpu``). Shapes: NumPy
arrays as the manifest lists them (NHWC, ``1 x 1 x N x C`` memory).
"""

import gc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vosx.errors import AcceleratorError
from vosx.export.clip import run_clip
from vosx.export.measure import first_nonfinite
from vosx.precision import PRECISIONS
from vosx.tracker_runtime.child import run_child, serve

RUN_PRECISIONS = tuple(  # GPU precisions, fp16 arithmetic allowed first: the GPU runs the first
    p.name  # whose graphs all compile GPU-only ("fp16", "fp32")
    for p in sorted(PRECISIONS, key=lambda p: not p.gpu_precision_loss_allowed)
    if p.gpu
)
GPU_TIMEOUT_S = 3600


@dataclass(frozen=True)
class GpuRun:
    """Everything one ``run_gpu_checks`` child did on LiteRT's GPU accelerator.

    Every file is compiled GPU-only; one precision's files (``ran``: the first of
    ``RUN_PRECISIONS`` whose graphs all compiled, None: none did) run the probes and the clip.
    The GPU computes fp32 and fp16 files alike in fp16 (their outputs agree within fp16 weight
    rounding), so running one precision measures both.

    ``refused``: (graph, precision) -> why the GPU-only compile (or run) failed, the ops where
    named; ``outputs``: graph -> outputs by name on each probe input; ``clip_labels``: the
    clip's labels of frames 1.. (empty: no clip, ``clip_skipped`` says why);
    ``clip_nonfinite``: where the clip first met a NaN or an Inf (None: never).
    """

    adapter: str | None
    refused: dict[tuple[str, str], str]
    ran: str | None
    outputs: dict[str, list[dict[str, np.ndarray]]]
    clip_labels: list[np.ndarray] = field(default_factory=list)
    clip_nonfinite: str | None = None
    clip_skipped: str | None = None


def run_gpu_checks(
    export_dir: Path,
    files: dict[tuple[str, str], str],
    probes: dict[str, list[dict]],
    clip: tuple[np.ndarray, np.ndarray, tuple[int, int]] | None,
) -> GpuRun:
    """Compile every file GPU-only, then run each graph's probe inputs and (optionally) a clip
    through the driver on one precision's files, all in one child process without TensorFlow.

    Args:
        export_dir: The export folder.
        files: (graph, precision) -> file name inside ``export_dir`` (the GPU's precisions).
        probes: graph -> its probe inputs (by input name).
        clip: (frames, first mask, padded size) to run through the driver; None: no clip.

    Raises:
        AcceleratorError: the child failed or ran past ``GPU_TIMEOUT_S`` (its last words).
    """
    arrays = {
        f"probe.{g}.{i}.{name}": np.asarray(v)
        for g, inputs in probes.items()
        for i, probe in enumerate(inputs)
        for name, v in probe.items()
    }
    args = {
        "export_dir": str(Path(export_dir).absolute()),
        "files": [[g, p, f] for (g, p), f in files.items()],
        "probes": {g: [list(p) for p in inputs] for g, inputs in probes.items()},
        "run_precisions": list(RUN_PRECISIONS),
        "clip_size": None,
    }
    if clip is not None:
        frames, first_mask, size = clip
        arrays.update({"clip.frames": frames, "clip.first_mask": first_mask})
        args["clip_size"] = list(size)
    child = run_child(
        "vosx.export.gpu",
        args,
        arrays,
        error=AcceleratorError,
        what="the GPU checks",
        timeout_s=GPU_TIMEOUT_S,
    )
    outputs, labels = _unpack(child.arrays)
    answer = child.answer
    return GpuRun(
        adapter=answer["adapter"],
        refused={tuple(k.split(".", 1)): v for k, v in answer["refused"].items()},
        ran=answer["ran"],
        outputs=outputs,
        clip_labels=labels,
        clip_nonfinite=answer["clip"]["nonfinite"],
        clip_skipped=answer["clip"]["skipped"],
    )


def _unpack(arrays: dict[str, np.ndarray]) -> tuple[dict, list[np.ndarray]]:
    """The child's arrays -> (graph -> outputs by name per probe, the clip's labels in order)."""
    outputs: dict[str, list[dict[str, np.ndarray]]] = {}
    labels = {}
    for key, value in arrays.items():  # out.graph.probe.output, label.frame
        kind, rest = key.split(".", 1)
        if kind == "label":
            labels[int(rest)] = value
            continue
        g, i, name = rest.split(".", 2)
        runs = outputs.setdefault(g, [])
        while len(runs) <= int(i):
            runs.append({})
        runs[int(i)][name] = value
    return outputs, [labels[t] for t in sorted(labels)]


# --------------------------------------------------------------------------- child process


class _Watched:
    """A ``Graphs`` backend over compiled GPU graphs that notes the first non-finite output."""

    def __init__(self, graphs: dict):
        self.graphs = graphs
        self.calls = 0
        self.nonfinite: str | None = None

    def run(self, graph: str, inputs: dict) -> dict:
        out = self.graphs[graph].run(inputs)
        self.calls += 1
        bad = first_nonfinite(out)
        if bad is not None and self.nonfinite is None:
            self.nonfinite = f"{graph} output {bad} (run {self.calls} of the clip)"
        return out


def _gpu_clip(args: dict, arrays: dict, compiled: dict, out: dict) -> dict:
    """The clip of ``arrays`` through the driver over ``compiled`` (graph -> compiled graph);
    labels of frames 1.. into ``out`` -> ``nonfinite`` and ``skipped``."""
    backend = _Watched(compiled)
    size = tuple(args["clip_size"])
    try:
        labels, _ = run_clip(backend, size, arrays["clip.frames"], arrays["clip.first_mask"])
    except AcceleratorError as e:
        return {"nonfinite": None, "skipped": str(e)}
    out.update({f"label.{t}": lab for t, lab in enumerate(labels)})
    return {"nonfinite": backend.nonfinite, "skipped": None}


def _compile(args: dict, prec: str, refused: dict) -> dict:
    """Precision ``prec``'s files compiled GPU-only: graph -> compiled graph (a refusal goes to
    ``refused`` instead)."""
    from vosx.tracker_runtime.accelerator import CompiledGraph

    compiled = {}
    for g, p, fname in args["files"]:
        if p != prec:
            continue
        path = Path(args["export_dir"]) / fname
        try:
            compiled[g] = CompiledGraph(path, "gpu")
        except AcceleratorError as e:
            refused[f"{g}.{p}"] = str(e).replace(f"{path}: ", "")
    return compiled


def _probe_outputs(compiled: dict, probes: dict, prec: str, refused: dict) -> dict | None:
    """Every compiled graph on its probe inputs -> "out.graph.probe.output" -> array (None: a
    run failed, which ``refused`` then says)."""
    outputs = {}
    for g, graph in compiled.items():
        try:
            for i, inputs in enumerate(probes.get(g, [])):
                run = graph.run(inputs)
                outputs.update({f"out.{g}.{i}.{name}": v for name, v in run.items()})
        except AcceleratorError as e:  # compiled, but the run failed: a refusal too
            refused[f"{g}.{prec}"] = str(e).replace(f"{graph.path}: ", "")
            return None
    return outputs


def _handle(args: dict, arrays: dict) -> tuple[dict, dict]:
    """Child side of ``run_gpu_checks``: every precision's files compiled, the first complete
    one's run on the probes and the clip."""
    from vosx.tracker_runtime.accelerator import ensure_runtime_dir

    ensure_runtime_dir()
    probes = {
        g: [{name: arrays[f"probe.{g}.{i}.{name}"] for name in names} for i, names in enumerate(p)]
        for g, p in args["probes"].items()
    }
    refused, out, adapter, ran = {}, {}, None, None
    clip = {"nonfinite": None, "skipped": "not asked" if args["clip_size"] is None else None}
    preferred = args["run_precisions"]
    precisions = list(dict.fromkeys(p for _, p, _ in args["files"]))
    precisions.sort(key=lambda p: preferred.index(p) if p in preferred else len(preferred))
    # One precision's graphs alive at a time, released before the next: LiteRT's GPU
    # accelerator fails to read outputs back once several precisions' graphs live in a process.
    for prec in precisions:
        compiled = _compile(args, prec, refused)
        adapter = adapter or next((c.adapter for c in compiled.values() if c.adapter), None)
        complete = len(compiled) == len({g for g, p, _ in args["files"] if p == prec})
        if ran is None and complete:
            outputs = _probe_outputs(compiled, probes, prec, refused)
            if outputs is not None:
                ran = prec
                out.update(outputs)
                if args["clip_size"] is not None:
                    clip = _gpu_clip(args, arrays, compiled, out)
        compiled = None  # released before the next precision's
        gc.collect()
    if args["clip_size"] is not None and ran is None:
        clip["skipped"] = "no precision has all its graphs on the GPU"
    return {"adapter": adapter, "refused": refused, "ran": ran, "clip": clip}, out


if __name__ == "__main__":
    serve(_handle)
