"""The export folder's ``manifest.json``: the contract for apps, ``tracker_runtime`` and
``android_bench``.

Written and read here only; pure standard library so that app-side code can use it without
torch or tensorflow. Shapes are TFLite shapes (NHWC for images and feature maps, ``[1, 1, N, C]``
for memory keys and values); ``onnx_perm[i]`` is the ONNX axis that becomes TFLite axis ``i``.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from vosx.errors import ManifestError

FORMAT_NAME = "vosx-trickvos-tflite"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
GRAPH_NAMES = ("key_encoder", "value_encoder", "decoder")
PRECISIONS = ("fp32", "fp16", "int8")
PRECISION_SUFFIX = {"fp32": "float32", "fp16": "float16", "int8": "int8"}
SLOTS = ("first", "last")


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as the TFLite file has it."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    onnx_perm: tuple[int, ...]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "onnx_perm": list(self.onnx_perm),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        return cls(d["name"], tuple(d["shape"]), d["dtype"], tuple(d["onnx_perm"]))


@dataclass(frozen=True)
class GraphSpec:
    """One exported graph: its files per precision and its I/O."""

    name: str
    onnx: str
    files: dict  # precision -> {"path": str, "sha256": str, "bytes": int}
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest plus the folder it lives in."""

    root: Path
    data: dict

    @property
    def graphs(self) -> dict[str, GraphSpec]:
        out = {}
        for name, g in self.data["graphs"].items():
            out[name] = GraphSpec(
                name,
                g["onnx"],
                g["files"],
                tuple(TensorSpec.from_dict(t) for t in g["inputs"]),
                tuple(TensorSpec.from_dict(t) for t in g["outputs"]),
            )
        return out

    @property
    def input_size(self) -> tuple[int, int]:
        """Padded network input (height, width)."""
        return int(self.data["input"]["height"]), int(self.data["input"]["width"])

    @property
    def precisions(self) -> list[str]:
        """Precisions present for every graph, in PRECISIONS order."""
        have = [set(g["files"]) for g in self.data["graphs"].values()]
        return [p for p in PRECISIONS if all(p in h for h in have)]

    def tflite_path(self, graph: str, precision: str) -> Path:
        """Path of a graph's .tflite file; ``ManifestError`` when that precision was not
        exported.
        """
        files = self.data["graphs"][graph]["files"]
        if precision not in files:
            raise ManifestError(
                f"{self.root / MANIFEST_NAME}: no {precision} file for {graph} (have "
                f"{', '.join(files)}); re-export with --precision {precision}"
            )
        return self.root / files[precision]["path"]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entry(root: Path, rel: str) -> dict:
    """The manifest entry of one file: relative path, sha256 and size."""
    p = root / rel
    return {"path": rel, "sha256": sha256_file(p), "bytes": p.stat().st_size}


def write_manifest(root: Path, data: dict) -> Path:
    """Write ``data`` (already complete) as ``root/manifest.json``."""
    data = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **data}
    path = root / MANIFEST_NAME
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def load_manifest(
    export_dir: str | Path, verify: bool = True, precision: str | None = None
) -> Manifest:
    """Read and check an export folder's manifest.

    Args:
        export_dir: The folder written by ``vosx export``.
        verify: Check the sha256 of the .tflite files (of ``precision`` only, when given).
        precision: Limit the hash check to this precision.

    Raises:
        ManifestError: no manifest, wrong format, missing file or sha256 mismatch.
    """
    root = Path(export_dir)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise ManifestError(f"{root}: not a folder; give the output folder of `vosx export`")
    if not path.is_file():
        raise ManifestError(f"{root}: no {MANIFEST_NAME}; is this a `vosx export` output folder?")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: not valid JSON ({e}); re-run `vosx export`") from None
    if data.get("format") != FORMAT_NAME or data.get("format_version") != FORMAT_VERSION:
        raise ManifestError(
            f"{path}: format {data.get('format')!r} v{data.get('format_version')} is not "
            f"{FORMAT_NAME} v{FORMAT_VERSION}; re-export with this vosx version"
        )
    missing = [g for g in GRAPH_NAMES if g not in data.get("graphs", {})]
    if missing:
        raise ManifestError(f"{path}: graphs missing: {', '.join(missing)}; re-run `vosx export`")
    manifest = Manifest(root, data)
    if verify:
        for _, g in data["graphs"].items():
            for prec, entry in g["files"].items():
                if precision is not None and prec != precision:
                    continue
                f = root / entry["path"]
                if not f.is_file():
                    raise ManifestError(
                        f"{f}: listed in the manifest but missing; re-run `vosx export`"
                    )
                if sha256_file(f) != entry["sha256"]:
                    raise ManifestError(
                        f"{f}: sha256 does not match the manifest (file changed or corrupt); "
                        "re-run `vosx export`"
                    )
    return manifest
