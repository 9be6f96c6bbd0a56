"""The export folder's ``manifest.json``: the contract for apps, ``tracker_runtime`` and
``android_bench``.

Written and read here only; pure standard library so that app-side code can use it without
torch or tensorflow. ``load_manifest`` checks the JSON once (it is untrusted input) and parses it
into typed records (``Manifest``: ``GraphSpec``, ``FileEntry``, ``TensorSpec``); the keys the
runtime does not read (normalisation, memory, bindings, tools: for apps) stay in the file.
Shapes are TFLite shapes (NHWC for images and feature maps, ``[1, 1, N, C]`` for memory keys and
values), the same as the ONNX graphs'. A tensor entry is its name, shape and dtype; other keys in
it are not read (manifests written before vosx dropped ``onnx_perm``, always the identity, still
load).
"""

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from vosx.errors import ManifestError
from vosx.export_folder import (
    MANIFEST_NAME,
    REEXPORT,
    describe,
    export_file,
    path_problem,
    sha256_file,
    sha256_regular,
)
from vosx.precision import PRECISION_NAMES
from vosx.sizes import MAX_SIDE, STRIDE

FORMAT_NAME = "vosx-trickvos-tflite"
FORMAT_VERSION = 1
GRAPH_NAMES = ("key_encoder", "value_encoder", "decoder")

# Limits of what ``load_manifest`` accepts (an export folder is untrusted input).
MAX_MANIFEST_BYTES = 1 << 20  # 1 MiB; a real manifest is a few kB
MAX_INPUT_SIDE = MAX_SIDE  # largest input height / width: export's --size bound
MAX_DIM = 1 << 16  # largest tensor axis: (MAX_SIDE / STRIDE) ** 2 memory tokens at the largest
MAX_ELEMENTS = 1 << 27  # elements of one tensor (512 MiB as float32)
MAX_RANK = 4  # TFLite GPU delegate tensors are BHWC
MAX_TENSORS = 64  # inputs or outputs of one graph
MAX_NAME = 128  # characters of a tensor name
MAX_FILE_BYTES = 1 << 40
INPUT_MULTIPLE = STRIDE  # padded network input sides are multiples of the network's stride
DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool")
GRAPH_IO = {  # graph -> (input names, output names) the runtime driver addresses
    "key_encoder": (("image",), ("key", "f16c", "f16", "f8", "f4")),
    "value_encoder": (("mask", "f16"), ("value",)),
    "decoder": (
        ("qk", "mk_first", "mk_last", "mv_first", "mv_last", "f16c", "f8", "f4"),
        ("logits",),
    ),
}
# The tensors that are full-size images: (graph, "inputs" / "outputs", name, channels).
FULL_SIZE = (
    ("key_encoder", "inputs", "image", 3),
    ("value_encoder", "inputs", "mask", 1),
    ("decoder", "outputs", "logits", 1),
)
# Which output feeds which input (the runtime driver's wiring, ``export.graphs.BINDINGS``): each
# pair must have one shape and dtype, or graphs that fit the manifest one by one fail together.
GRAPH_WIRING = (
    (("key_encoder", "key"), ("decoder", "qk")),
    (("key_encoder", "key"), ("decoder", "mk_first")),
    (("key_encoder", "key"), ("decoder", "mk_last")),
    (("key_encoder", "f16c"), ("decoder", "f16c")),
    (("key_encoder", "f8"), ("decoder", "f8")),
    (("key_encoder", "f4"), ("decoder", "f4")),
    (("key_encoder", "f16"), ("value_encoder", "f16")),
    (("value_encoder", "value"), ("decoder", "mv_first")),
    (("value_encoder", "value"), ("decoder", "mv_last")),
    (("decoder", "logits"), ("value_encoder", "mask")),
)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TENSOR_NAME = re.compile(r"[A-Za-z0-9_.:/-]+")


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as the TFLite file has it."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class FileEntry:
    """One .tflite file of a graph: its path relative to the export folder, sha256 and size."""

    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class GraphSpec:
    """One exported graph: its ONNX file, its files per precision and its I/O."""

    name: str
    onnx: str  # path relative to the export folder
    files: dict[str, FileEntry]  # precision -> its file, in the manifest's order
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class Manifest:
    """A checked manifest (``load_manifest``) plus the folder it lives in."""

    root: Path
    input_size: tuple[int, int]  # padded network input (height, width)
    graphs: dict[str, GraphSpec]  # every name of GRAPH_NAMES, in the manifest's order

    @property
    def precisions(self) -> list[str]:
        """Precisions present for every graph, in ``vosx.precision.PRECISIONS`` order."""
        return [p for p in PRECISION_NAMES if all(p in g.files for g in self.graphs.values())]

    def tflite_path(self, graph: str, precision: str) -> Path:
        """Path of a graph's .tflite file, checked to lie inside the export folder.

        Raises:
            ManifestError: that precision was not exported, or the file is missing, a symlink,
                not a regular file or outside the folder (see ``export_file``).
        """
        files = self.graphs[graph].files
        if precision not in files:
            raise ManifestError(
                f"{self.root / MANIFEST_NAME}: no {precision} file for {graph} (have "
                f"{', '.join(files)}); re-export with --precision {precision}"
            )
        return export_file(self.root, files[precision].path)

    def onnx_path(self, graph: str) -> Path:
        """Path of a graph's .onnx file, checked like ``tflite_path`` (``ManifestError``)."""
        return export_file(self.root, self.graphs[graph].onnx)


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


class _Checker:
    """Parses manifest data into typed records; every problem is a one-line ``ManifestError``
    naming the field."""

    def __init__(self, where: Path):
        self.where = where

    def fail(self, field: str, what: str) -> None:
        raise ManifestError(f"{self.where}: {field} {what}; {REEXPORT}")

    def obj(self, parent: dict, key: str, field: str) -> dict:
        if key not in parent:
            self.fail(field, "is missing")
        value = parent[key]
        if not isinstance(value, dict):
            self.fail(field, f"is {describe(value)}, must be a JSON object")
        return value

    def lst(self, parent: dict, key: str, field: str, most: int) -> list:
        if key not in parent:
            self.fail(field, "is missing")
        value = parent[key]
        if not isinstance(value, list):
            self.fail(field, f"is {describe(value)}, must be a list")
        if not value:
            self.fail(field, "is empty")
        if len(value) > most:
            self.fail(field, f"has {len(value)} entries, at most {most} are allowed")
        return value

    def int_(self, parent: dict, key: str, field: str, lo: int, hi: int) -> int:
        if key not in parent:
            self.fail(field, "is missing")
        return self.int_value(parent[key], field, lo, hi)

    def int_value(self, value, field: str, lo: int, hi: int, must: str = "") -> int:
        must = must or f"an integer from {lo} to {hi}"
        if type(value) is not int:  # bool is an int subclass, and "64" is not a number
            self.fail(field, f"is {describe(value)}, must be {must}")
        if not lo <= value <= hi:
            self.fail(field, f"is {value}, must be {must}")
        return value

    def str_(self, parent: dict, key: str, field: str) -> str:
        if key not in parent:
            self.fail(field, "is missing")
        value = parent[key]
        if not isinstance(value, str):
            self.fail(field, f"is {describe(value)}, must be a string")
        return value

    def path(self, parent: dict, key: str, field: str) -> str:
        value = self.str_(parent, key, field)
        problem = path_problem(value)
        if problem:
            self.fail(field, f"{value[:80]!r} {problem}")
        return value

    def tensor(self, t, field: str) -> TensorSpec:
        if not isinstance(t, dict):
            self.fail(field, f"is {describe(t)}, must be a JSON object")
        name = self.str_(t, "name", f"{field}.name")
        if not (len(name) <= MAX_NAME and _TENSOR_NAME.fullmatch(name)):
            self.fail(f"{field}.name", f"{name[:40]!r} is not a tensor name ([A-Za-z0-9_.:/-]+)")
        shape = self.lst(t, "shape", f"{field}.shape", MAX_RANK)
        n = 1
        for i, dim in enumerate(shape):
            n *= self.int_value(dim, f"{field}.shape[{i}]", 1, MAX_DIM)
        if n > MAX_ELEMENTS:
            self.fail(f"{field}.shape", f"{shape} has {n} elements, more than {MAX_ELEMENTS}")
        dtype = self.str_(t, "dtype", f"{field}.dtype")
        if dtype not in DTYPES:
            self.fail(f"{field}.dtype", f"{dtype[:40]!r} is not one of {', '.join(DTYPES)}")
        return TensorSpec(name, tuple(shape), dtype)

    def tensors(self, g: dict, graph: str, kind: str, expected: tuple[str, ...]) -> dict:
        """A graph's inputs or outputs: name -> ``TensorSpec``, in the manifest's order."""
        field = f"graphs.{graph}.{kind}"
        specs = self.lst(g, kind, field, MAX_TENSORS)
        by_name: dict[str, TensorSpec] = {}
        for i, t in enumerate(specs):
            spec = self.tensor(t, f"{field}[{i}]")
            if spec.name in by_name:
                self.fail(f"{field}[{i}].name", f"{spec.name!r} appears twice")
            by_name[spec.name] = spec
        if sorted(by_name) != sorted(expected):
            missing = [n for n in expected if n not in by_name]
            extra = [n for n in by_name if n not in expected]
            what = " and ".join(
                part
                for part in (
                    f"lack {', '.join(missing)}" if missing else "",
                    f"have unexpected {', '.join(extra)}" if extra else "",
                )
                if part
            )
            self.fail(
                field,
                f"{what} (must be exactly {', '.join(expected)}, the names the runtime driver "
                "feeds)",
            )
        return by_name

    def files(self, g: dict, graph: str) -> dict[str, FileEntry]:
        field = f"graphs.{graph}.files"
        files = self.obj(g, "files", field)
        if not files:
            self.fail(field, "is empty: no .tflite file is listed")
        entries = {}
        for prec, entry in files.items():
            f = f"{field}.{prec}"
            if prec not in PRECISION_NAMES:
                self.fail(f, f"is not a precision (one of {', '.join(PRECISION_NAMES)})")
            if not isinstance(entry, dict):
                self.fail(f, f"is {describe(entry)}, must be a JSON object")
            path = self.path(entry, "path", f"{f}.path")
            sha = self.str_(entry, "sha256", f"{f}.sha256")
            if not _SHA256.fullmatch(sha):
                self.fail(f"{f}.sha256", f"{sha[:80]!r} is not 64 lowercase hex digits")
            entries[prec] = FileEntry(
                path, sha, self.int_(entry, "bytes", f"{f}.bytes", 0, MAX_FILE_BYTES)
            )
        return entries

    def graph(self, graphs: dict, name: str) -> GraphSpec:
        g = self.obj(graphs, name, f"graphs.{name}")
        onnx = self.path(g, "onnx", f"graphs.{name}.onnx")
        files = self.files(g, name)
        ins, outs = GRAPH_IO[name]
        inputs = self.tensors(g, name, "inputs", ins)
        outputs = self.tensors(g, name, "outputs", outs)
        return GraphSpec(name, onnx, files, tuple(inputs.values()), tuple(outputs.values()))

    def format(self, data) -> None:
        if not isinstance(data, dict):
            raise ManifestError(
                f"{self.where}: the top level is {describe(data)}, must be a JSON object; "
                f"{REEXPORT}"
            )
        if data.get("format") != FORMAT_NAME or data.get("format_version") != FORMAT_VERSION:
            raise ManifestError(
                f"{self.where}: format {repr(data.get('format'))[:40]} "
                f"v{repr(data.get('format_version'))[:20]} is not "
                f"{FORMAT_NAME} v{FORMAT_VERSION}; re-export with this vosx version"
            )
        if type(data["format_version"]) is not int:
            self.fail("format_version", f"is {describe(data['format_version'])}, must be 1")

    def input_size(self, data: dict) -> tuple[int, int]:
        inp = self.obj(data, "input", "input")
        side = f"a positive integer multiple of {INPUT_MULTIPLE} up to {MAX_INPUT_SIDE}"
        size = []
        for key in ("height", "width"):
            if key not in inp:
                self.fail(f"input.{key}", "is missing")
            value = self.int_value(inp[key], f"input.{key}", INPUT_MULTIPLE, MAX_INPUT_SIDE, side)
            if value % INPUT_MULTIPLE:
                self.fail(f"input.{key}", f"is {value}, must be {side}")
            size.append(value)
        return size[0], size[1]

    def graphs(self, data: dict) -> dict[str, GraphSpec]:
        graphs = self.obj(data, "graphs", "graphs")
        missing = [g for g in GRAPH_NAMES if g not in graphs]
        if missing:
            raise ManifestError(
                f"{self.where}: graphs missing: {', '.join(missing)}; re-run `vosx export`"
            )
        for name in graphs:
            if name not in GRAPH_NAMES:
                self.fail(f"graphs.{name[:40]}", f"is not a graph ({', '.join(GRAPH_NAMES)})")
        specs = {name: self.graph(graphs, name) for name in GRAPH_NAMES}
        return {name: specs[name] for name in graphs}

    def fit(self, size: tuple[int, int], graphs: dict[str, GraphSpec]) -> None:
        """The full-size tensors match the input size, and every output fits the input it
        feeds (``GRAPH_WIRING``)."""

        def io(graph: str, kind: str, name: str) -> TensorSpec:
            return next(t for t in getattr(graphs[graph], kind) if t.name == name)

        h, w = size
        for graph, kind, tname, channels in FULL_SIZE:
            shape = list(io(graph, kind, tname).shape)
            want = [1, h, w, channels]
            if shape != want:
                self.fail(
                    f"graphs.{graph}.{kind}.{tname}.shape",
                    f"is {shape}, but input is {h}x{w} so it must be {want}",
                )
        for (src, out), (dst, inp) in GRAPH_WIRING:
            a, b = io(src, "outputs", out), io(dst, "inputs", inp)
            if (a.shape, a.dtype) != (b.shape, b.dtype):
                self.fail(
                    f"graphs.{dst}.inputs.{inp}",
                    f"is {list(b.shape)} {b.dtype}, but {src} output {out}, which the driver "
                    f"feeds into it, is {list(a.shape)} {a.dtype}; the graphs do not fit together",
                )

    def manifest(self, data, root: Path) -> Manifest:
        self.format(data)
        size = self.input_size(data)
        graphs = self.graphs(data)
        self.fit(size, graphs)
        return Manifest(root, size, graphs)


def _read_manifest(path: Path) -> Manifest:
    """The parsed, schema-checked ``manifest.json`` (size, JSON and schema errors: one line).

    Like every file of the folder it must be a regular file, not a symbolic link (which could
    point out of the export folder).
    """
    try:
        st = os.lstat(path)
    except OSError as e:
        raise ManifestError(f"{path}: cannot be read ({e.strerror}); {REEXPORT}") from None
    if stat.S_ISLNK(st.st_mode):
        raise ManifestError(
            f"{path}: is a symbolic link; the manifest must be a regular file inside the export "
            f"folder (copy the real file in, or {REEXPORT})"
        )
    if not stat.S_ISREG(st.st_mode):
        raise ManifestError(f"{path}: is not a regular file; {REEXPORT}")
    if st.st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"{path}: {st.st_size} bytes, larger than the {MAX_MANIFEST_BYTES} bytes a manifest "
            f"may have; {REEXPORT}"
        )
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        with os.fdopen(os.open(path, flags), "rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as e:
        raise ManifestError(f"{path}: cannot be read ({e.strerror}); {REEXPORT}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes; {REEXPORT}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, bad UTF-8, huge ints, nesting
        why = " ".join(str(e).split())[:120] or type(e).__name__
        raise ManifestError(f"{path}: not valid JSON ({why}); re-run `vosx export`") from None
    return _Checker(path).manifest(data, path.parent)


def load_manifest(
    export_dir: str | Path, verify: bool = True, precision: str | None = None
) -> Manifest:
    """Read and check an export folder's manifest.

    Args:
        export_dir: The folder written by ``vosx export``.
        verify: Check the sha256 of the .tflite files (of ``precision`` only, when given).
        precision: Limit the hash check to this precision.

    The manifest is untrusted input: it is refused (one-line ``ManifestError`` naming the file,
    the field and the fix) when it is larger than ``MAX_MANIFEST_BYTES``, not a JSON object, lacks
    a required key, has a value of the wrong type, a tensor shape outside ``1..MAX_DIM`` per axis
    or ``MAX_ELEMENTS`` in all, graphs that do not fit each other (``GRAPH_WIRING``: an output and
    the input it feeds differ in shape or dtype), or a file path that is absolute or has a ``..``
    component. ``manifest.json`` and the files it names are reached without following symbolic
    links (``export_file``: regular files inside the folder), before anything is hashed or
    loaded.

    Raises:
        ManifestError: no manifest, wrong format or schema, unsafe or missing file, or sha256
            mismatch.
    """
    root = Path(export_dir)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise ManifestError(f"{root}: not a folder; give the output folder of `vosx export`")
    if not os.path.lexists(path):
        raise ManifestError(f"{root}: no {MANIFEST_NAME}; is this a `vosx export` output folder?")
    manifest = _read_manifest(path)
    if verify:
        for g in manifest.graphs.values():
            for prec, entry in g.files.items():
                if precision is not None and prec != precision:
                    continue
                f = export_file(root, entry.path)
                if sha256_regular(f) != entry.sha256:
                    raise ManifestError(
                        f"{f}: sha256 does not match the manifest (file changed or corrupt); "
                        "re-run `vosx export`"
                    )
    return manifest
