"""An export folder is untrusted input: ``load_manifest`` validates the schema and every file path.

Each malformed manifest (wrong top level, missing keys, wrong types, out-of-range or huge shapes,
oversize or deeply nested JSON) is one ``ManifestError`` line naming manifest.json, the field and
the fix. Files named by the manifest must be regular files inside the folder: absolute paths,
``..`` components, symlinks (the file or a folder on the way) and FIFOs are refused before anything
is hashed or loaded. Uses the small placeholder export of ``tests/fakes/world.py`` (no conversion).
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.fakes.world import make_export
from vosx import manifest as manifest_mod
from vosx.errors import ManifestError
from vosx.export_folder import export_file, path_problem
from vosx.manifest import MAX_ELEMENTS, MAX_MANIFEST_BYTES, load_manifest
from vosx.tracker_runtime.io import write_labels

NULL = object()  # an edit returning this writes a manifest that is JSON null


@pytest.fixture
def export_dir(tmp_path) -> Path:
    return make_export(tmp_path / "export")


def edit_manifest(root: Path, edit) -> None:
    """Apply ``edit`` to the parsed manifest; a non-None result replaces the whole document."""
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    new = edit(data)
    path.write_text(json.dumps(data if new is None else None if new is NULL else new))


def _tensor(data: dict, graph: str, kind: str, name: str) -> dict:
    return next(t for t in data["graphs"][graph][kind] if t["name"] == name)


def _set(d: dict, key, value) -> None:
    d[key] = value


CASES = [
    ("top level list", lambda d: [], "the top level is a list, must be a JSON object"),
    ("top level null", lambda d: NULL, "the top level is null, must be a JSON object"),
    ("top level string", lambda d: "x", "the top level is the string 'x', must be a JSON object"),
    ("top level number", lambda d: 3, "the top level is 3, must be a JSON object"),
    ("no format", lambda d: d.pop("format") and None, "is not vosx-trickvos-tflite v1"),
    ("float version", lambda d: _set(d, "format_version", 1.0), "format_version is the number"),
    ("no input", lambda d: d.pop("input") and None, "input is missing"),
    ("input a list", lambda d: _set(d, "input", [64, 96]), "input is a list, must be a JSON"),
    ("no height", lambda d: d["input"].pop("height") and None, "input.height is missing"),
    (
        "string height",
        lambda d: _set(d["input"], "height", "64"),
        "input.height is the string '64', must be a positive integer multiple of 16 up to 4096",
    ),
    (
        "negative height",
        lambda d: _set(d["input"], "height", -64),
        "input.height is -64, must be a positive integer multiple of 16 up to 4096",
    ),
    ("zero width", lambda d: _set(d["input"], "width", 0), "input.width is 0, must be a positive"),
    ("bool width", lambda d: _set(d["input"], "width", True), "input.width is a boolean"),
    ("odd height", lambda d: _set(d["input"], "height", 65), "input.height is 65, must be a"),
    ("huge height", lambda d: _set(d["input"], "height", 10**6), "input.height is 1000000"),
    ("no graphs", lambda d: d.pop("graphs") and None, "graphs is missing"),
    (
        "graph missing",
        lambda d: d["graphs"].pop("decoder") and None,
        "graphs missing: decoder; re-run `vosx export`",
    ),
    ("extra graph", lambda d: _set(d["graphs"], "evil", {}), "graphs.evil is not a graph"),
    (
        "no files list",
        lambda d: d["graphs"]["decoder"].pop("files") and None,
        "graphs.decoder.files is missing",
    ),
    (
        "files a list",
        lambda d: _set(d["graphs"]["decoder"], "files", ["decoder_float32.tflite"]),
        "graphs.decoder.files is a list, must be a JSON object",
    ),
    (
        "empty files",
        lambda d: _set(d["graphs"]["decoder"], "files", {}),
        "graphs.decoder.files is empty",
    ),
    (
        "unknown precision",
        lambda d: _set(d["graphs"]["decoder"]["files"], "fp64", {}),
        "graphs.decoder.files.fp64 is not a precision",
    ),
    (
        "bad sha256",
        lambda d: _set(d["graphs"]["decoder"]["files"]["fp32"], "sha256", "abc"),
        "graphs.decoder.files.fp32.sha256 'abc' is not 64 lowercase hex digits",
    ),
    (
        "string bytes",
        lambda d: _set(d["graphs"]["decoder"]["files"]["fp32"], "bytes", "1"),
        "graphs.decoder.files.fp32.bytes is the string '1'",
    ),
    (
        "no inputs",
        lambda d: d["graphs"]["decoder"].pop("inputs") and None,
        "graphs.decoder.inputs is missing",
    ),
    (
        "missing input tensor",
        lambda d: d["graphs"]["decoder"]["inputs"].pop() and None,
        "graphs.decoder.inputs lack f4 (must be exactly qk, mk_first, mk_last, mv_first, mv_last, "
        "f16c, f8, f4, the names the runtime driver feeds)",
    ),
    (
        "duplicate tensor",
        lambda d: d["graphs"]["value_encoder"]["outputs"].append(
            dict(d["graphs"]["value_encoder"]["outputs"][0])
        ),
        "graphs.value_encoder.outputs[1].name 'value' appears twice",
    ),
    (
        "huge input shape",
        lambda d: _set(_tensor(d, "key_encoder", "inputs", "image"), "shape", [10**6, 10**6]),
        "graphs.key_encoder.inputs[0].shape[0] is 1000000, must be an integer from 1 to 65536",
    ),
    (
        "huge output shape",
        lambda d: _set(_tensor(d, "decoder", "outputs", "logits"), "shape", [1, 10**6, 10**6, 1]),
        "graphs.decoder.outputs[0].shape[1] is 1000000, must be an integer from 1 to 65536",
    ),
    (
        "too many elements",
        lambda d: _set(_tensor(d, "key_encoder", "outputs", "f4"), "shape", [16384] * 4),
        f"graphs.key_encoder.outputs[4].shape [16384, 16384, 16384, 16384] has "
        f"{16384**4} elements, more than {MAX_ELEMENTS}",
    ),
    (
        "negative dim",
        lambda d: _set(_tensor(d, "decoder", "inputs", "qk"), "shape", [1, 1, -24, 32]),
        "graphs.decoder.inputs[0].shape[2] is -24, must be an integer from 1 to 65536",
    ),
    (
        "string dim",
        lambda d: _set(_tensor(d, "decoder", "inputs", "qk"), "shape", [1, 1, "24", 32]),
        "graphs.decoder.inputs[0].shape[2] is the string '24'",
    ),
    (
        "rank 5",
        lambda d: _set(_tensor(d, "decoder", "inputs", "qk"), "shape", [1, 1, 1, 24, 32]),
        "graphs.decoder.inputs[0].shape has 5 entries, at most 4 are allowed",
    ),
    (
        "shape not a list",
        lambda d: _set(_tensor(d, "decoder", "inputs", "qk"), "shape", 24),
        "graphs.decoder.inputs[0].shape is 24, must be a list",
    ),
    (
        "bad dtype",
        lambda d: _set(_tensor(d, "decoder", "inputs", "qk"), "dtype", "object"),
        "graphs.decoder.inputs[0].dtype 'object' is not one of float32",
    ),
    (
        "tensor name",
        lambda d: _set(_tensor(d, "decoder", "inputs", "qk"), "name", "q k;rm"),
        "graphs.decoder.inputs[0].name 'q k;rm' is not a tensor name",
    ),
    (
        "image not the input size",
        lambda d: _set(_tensor(d, "key_encoder", "inputs", "image"), "shape", [1, 32, 96, 3]),
        "graphs.key_encoder.inputs.image.shape is [1, 32, 96, 3], but input is 64x96 so it must "
        "be [1, 64, 96, 3]",
    ),
    (
        "dotdot path",
        lambda d: _set(d["graphs"]["decoder"]["files"]["fp32"], "path", "../x.tflite"),
        "graphs.decoder.files.fp32.path '../x.tflite' has a '..' component; files must lie "
        "inside the export folder",
    ),
    (
        "inner dotdot path",
        lambda d: _set(d["graphs"]["decoder"]["files"]["fp32"], "path", "a/../../x.tflite"),
        "has a '..' component",
    ),
    (
        "absolute path",
        lambda d: _set(d["graphs"]["decoder"]["files"]["fp32"], "path", "/etc/passwd"),
        "graphs.decoder.files.fp32.path '/etc/passwd' is an absolute path",
    ),
    (
        "windows path",
        lambda d: _set(d["graphs"]["decoder"]["files"]["fp32"], "path", "C:/x.tflite"),
        "is an absolute path",
    ),
    (
        "backslash path",
        lambda d: _set(d["graphs"]["decoder"]["files"]["fp32"], "path", "..\\x.tflite"),
        "contains a NUL byte or a backslash",
    ),
    (
        "nul path",
        lambda d: _set(d["graphs"]["decoder"]["files"]["fp32"], "path", "x\0.tflite"),
        "contains a NUL byte or a backslash",
    ),
    (
        "empty path",
        lambda d: _set(d["graphs"]["decoder"]["files"]["fp32"], "path", ""),
        "graphs.decoder.files.fp32.path '' is empty",
    ),
    (
        "onnx escapes",
        lambda d: _set(d["graphs"]["decoder"], "onnx", "../../decoder.onnx"),
        "graphs.decoder.onnx '../../decoder.onnx' has a '..' component",
    ),
]


@pytest.mark.parametrize("edit, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_manifest_is_one_line(export_dir, edit, message):
    edit_manifest(export_dir, edit)
    with pytest.raises(ManifestError) as e:
        load_manifest(export_dir)
    text = str(e.value)
    assert message in text, text
    assert text.startswith(f"{export_dir / 'manifest.json'}: "), text
    assert "\n" not in text and ("re-export" in text or "re-run `vosx export`" in text), text


def test_malformed_manifest_via_cli_is_one_line(export_dir, monkeypatch, capsys):
    """Through ``vosx bench`` (the CLI's one-line error path), exit 1, no traceback."""
    edit_manifest(export_dir, lambda d: _set(d["input"], "height", -64))
    code = run_cli(monkeypatch, "bench", export_dir, "--device", "host")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "input.height is -64, must be a positive integer multiple of 16" in err[0]
    assert "larger than" not in err[0]  # not the old "frame 1x1 is larger than -64x96"


def test_valid_manifest_still_loads(export_dir):
    m = load_manifest(export_dir)
    assert m.input_size == (64, 96) and m.precisions == ["fp32", "fp16"]
    assert m.tflite_path("decoder", "fp16") == export_dir / "decoder_float16.tflite"
    assert m.onnx_path("decoder") == export_dir / "decoder.onnx"


def test_manifest_with_the_dropped_onnx_perm_still_loads(export_dir):
    # Exports written before ``onnx_perm`` (always the identity) was dropped carry it per tensor.
    def add_perm(d: dict) -> None:
        _tensor(d, "decoder", "inputs", "qk")["onnx_perm"] = [0, 1, 2, 3]

    edit_manifest(export_dir, add_perm)
    assert load_manifest(export_dir).graphs["decoder"].inputs[0].shape == (1, 1, 24, 32)


def test_largest_input_size_loads(tmp_path):
    from vosx.export.options import parse_size
    from vosx.manifest import MAX_INPUT_SIDE

    side = f"{MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}"
    assert parse_size(side) == (MAX_INPUT_SIDE, MAX_INPUT_SIDE)  # `vosx export --size` takes it
    root = make_export(tmp_path / "big", size=(MAX_INPUT_SIDE, MAX_INPUT_SIDE))
    assert load_manifest(root).input_size == (MAX_INPUT_SIDE, MAX_INPUT_SIDE)
    edit_manifest(root, lambda d: _set(d["input"], "height", MAX_INPUT_SIDE + 16))
    with pytest.raises(ManifestError, match="input.height is 4112, must be a positive integer"):
        load_manifest(root)


def test_oversize_manifest_is_refused_before_parsing(export_dir, monkeypatch):
    path = export_dir / "manifest.json"
    data = json.loads(path.read_text())
    data["padding"] = "x" * MAX_MANIFEST_BYTES
    path.write_text(json.dumps(data))
    monkeypatch.setattr(manifest_mod.json, "loads", lambda *a, **k: pytest.fail("parsed"))
    with pytest.raises(ManifestError, match=r"bytes, larger than the 1048576 bytes a manifest"):
        load_manifest(export_dir)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ('{"format": ' + "9" * 5000 + "}", "not valid JSON"),
        ("{", r"not valid JSON \(Expecting property name"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
    ids=["deep nesting", "huge integer", "truncated", "not utf-8"],
)
def test_unparsable_manifest_is_one_line(export_dir, text, message):
    path = export_dir / "manifest.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ManifestError, match=message) as e:
        load_manifest(export_dir)
    assert "\n" not in str(e.value) and "re-run `vosx export`" in str(e.value)


def test_manifest_that_is_a_fifo_does_not_hang(export_dir):
    (export_dir / "manifest.json").unlink()
    os.mkfifo(export_dir / "manifest.json")
    with pytest.raises(ManifestError, match="manifest.json: is not a regular file"):
        load_manifest(export_dir)


# ---------------------------------------------------------------- files inside the folder


@pytest.fixture
def hashed(monkeypatch) -> list[Path]:
    """Every file the manifest check hashes, in order."""
    seen: list[Path] = []
    real = manifest_mod.sha256_regular

    def spy(path):
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(manifest_mod, "sha256_regular", spy)
    return seen


def _symlink_to_outside(export_dir: Path, outside: Path, graph: str = "decoder") -> None:
    """Replace a graph's fp32 file with a symlink to ``outside``, its sha256 and size in the
    manifest made to match (as an attacker would)."""
    from vosx.export_folder import sha256_file

    rel = f"{graph}_float32.tflite"
    (export_dir / rel).unlink(missing_ok=True)
    (export_dir / rel).symlink_to(outside)

    def edit(d):
        entry = d["graphs"][graph]["files"]["fp32"]
        entry.update(path=rel, sha256=sha256_file(outside), bytes=outside.stat().st_size)

    edit_manifest(export_dir, edit)


def test_symlink_to_etc_passwd_is_not_hashed(export_dir, hashed):
    outside = Path("/etc/passwd")
    assert outside.is_file()
    _symlink_to_outside(export_dir, outside)
    with pytest.raises(ManifestError) as e:
        load_manifest(export_dir)
    assert str(e.value) == (
        f"{export_dir / 'decoder_float32.tflite'}: is a symbolic link; files named by "
        "manifest.json must be regular files inside the export folder (copy the real file in, "
        "or re-export with `vosx export`)"
    )
    assert all(p.resolve() != outside.resolve() for p in hashed), hashed
    assert export_dir / "decoder_float32.tflite" not in hashed


def test_symlink_is_refused_without_verify_too(export_dir, tmp_path):
    outside = tmp_path / "outside.tflite"
    outside.write_bytes(b"outside model")
    _symlink_to_outside(export_dir, outside)
    m = load_manifest(export_dir, verify=False)
    with pytest.raises(ManifestError, match="is a symbolic link"):
        m.tflite_path("decoder", "fp32")
    assert m.tflite_path("decoder", "fp16").name == "decoder_float16.tflite"


def test_symlinked_folder_on_the_way_is_refused(export_dir, tmp_path, hashed):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "decoder_float32.tflite").write_bytes(
        (export_dir / "decoder_float32.tflite").read_bytes()
    )
    (export_dir / "sub").symlink_to(outside, target_is_directory=True)
    edit_manifest(
        export_dir,
        lambda d: _set(
            d["graphs"]["decoder"]["files"]["fp32"], "path", "sub/decoder_float32.tflite"
        ),
    )
    with pytest.raises(ManifestError, match=r"/sub: is a symbolic link"):
        load_manifest(export_dir)
    assert not any("elsewhere" in str(p.resolve()) for p in hashed)


def test_real_subfolder_is_accepted(export_dir):
    (export_dir / "sub").mkdir()
    (export_dir / "decoder_float32.tflite").rename(export_dir / "sub" / "d.tflite")
    edit_manifest(
        export_dir,
        lambda d: _set(d["graphs"]["decoder"]["files"]["fp32"], "path", "./sub/d.tflite"),
    )
    assert (
        load_manifest(export_dir).tflite_path("decoder", "fp32") == export_dir / "sub" / "d.tflite"
    )


def test_fifo_and_folder_are_not_regular_files(export_dir):
    (export_dir / "decoder_float32.tflite").unlink()
    os.mkfifo(export_dir / "decoder_float32.tflite")
    with pytest.raises(ManifestError, match="decoder_float32.tflite: is not a regular file"):
        load_manifest(export_dir)  # would hang if the FIFO were opened for hashing
    (export_dir / "decoder_float32.tflite").unlink()
    (export_dir / "decoder_float32.tflite").mkdir()
    with pytest.raises(ManifestError, match="is not a regular file"):
        load_manifest(export_dir, verify=False).tflite_path("decoder", "fp32")


def test_missing_file_message_is_unchanged(export_dir):
    (export_dir / "decoder_float16.tflite").unlink()
    with pytest.raises(ManifestError, match="listed in the manifest but missing; re-run"):
        load_manifest(export_dir)
    load_manifest(export_dir, precision="fp32")  # only that precision is checked


def test_export_file_refuses_unsafe_strings_itself(export_dir):
    for rel in ("../x", "/etc/passwd", "a/../../b", "", None):
        assert path_problem(rel)
        with pytest.raises(ManifestError):
            export_file(export_dir, rel)
    assert path_problem("decoder_float32.tflite") is None


def test_tflite_graphs_never_load_a_symlinked_file(export_dir, tmp_path, monkeypatch):
    """``TFLiteGraphs`` reaches files only through the manifest's checked paths."""
    from vosx.tracker_runtime import litert

    outside = tmp_path / "outside.tflite"
    outside.write_bytes(b"outside model")
    _symlink_to_outside(export_dir, outside, "key_encoder")  # the first graph loaded
    loaded = []
    monkeypatch.setattr(litert, "make_interpreter", lambda p, *a, **k: loaded.append(p))
    with pytest.raises(ManifestError, match="is a symbolic link"):
        litert.TFLiteGraphs.open(export_dir, "fp32")
    with pytest.raises(ManifestError, match="is a symbolic link"):
        litert.TFLiteGraphs(load_manifest(export_dir, verify=False), "fp32")
    assert all(Path(p).resolve() != outside for p in loaded)


def test_segment_does_not_run_an_outside_tflite(export_dir, tmp_path, monkeypatch, capsys):
    """The issue's reproducer: ``vosx segment --model`` with a graph symlinked outside."""
    from vosx.tracker_runtime import litert

    outside = tmp_path / "outside.tflite"
    outside.write_bytes(b"outside model")
    _symlink_to_outside(export_dir, outside)
    (tmp_path / "frames").mkdir()
    for i in range(2):
        Image.fromarray(np.zeros((60, 90, 3), np.uint8)).save(tmp_path / "frames" / f"{i:05d}.png")
    mask = np.zeros((60, 90), np.uint8)
    mask[10:30, 20:50] = 1
    write_labels(tmp_path / "mask.png", mask)
    loaded = []
    real = litert.make_interpreter
    monkeypatch.setattr(
        litert, "make_interpreter", lambda p, *a, **k: loaded.append(p) or real(p, *a, **k)
    )
    code = run_cli(
        monkeypatch, "segment", tmp_path / "frames", "--mask", tmp_path / "mask.png",
        "--model", export_dir, "-o", tmp_path / "pred",
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "decoder_float32.tflite: is a symbolic link" in err[0]
    assert loaded == [] and not (tmp_path / "pred").exists()
