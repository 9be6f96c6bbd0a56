"""Files of an export folder, reached as untrusted input: safe relative paths, symlink-free
resolution inside the folder, and sha256 hashes.

Pure standard library (app-side code uses it). ``vosx.manifest`` parses the manifest; everything
that opens a file the manifest names goes through ``export_file`` here.
"""

import hashlib
import os
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

from vosx.errors import ManifestError

MANIFEST_NAME = "manifest.json"
MAX_PATH = 1024  # characters of a file path in the manifest
REEXPORT = "re-export with `vosx export`"


def describe(value) -> str:
    """A short description of a JSON value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, float):
        return f"the number {value!r}"
    return repr(value)[:40]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_regular(path: Path) -> str:
    """sha256 of a file opened without following a symlink at its last component."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise ManifestError(f"{path}: cannot be read ({e.strerror}); {REEXPORT}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ManifestError(f"{path}: is not a regular file; {REEXPORT}")
        h = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def path_problem(rel) -> str | None:
    """Why ``rel`` is not a safe relative path inside an export folder (None when it is).

    Refused: non-strings, empty or over-long paths, NUL bytes, backslashes, absolute paths (POSIX
    or Windows), drive letters and ``..`` components.
    """
    if not isinstance(rel, str):
        return f"is {describe(rel)}, not a path"
    if not rel or rel in (".", "./"):
        return "is empty, not a file path"
    if len(rel) > MAX_PATH:
        return f"is longer than {MAX_PATH} characters"
    if "\0" in rel or "\\" in rel:
        return "contains a NUL byte or a backslash"
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).anchor:
        return "is an absolute path; files must be named relative to the export folder"
    if ".." in PurePosixPath(rel).parts:
        return "has a '..' component; files must lie inside the export folder"
    return None


def export_file(root: Path, rel: str, what: str = "listed in the manifest") -> Path:
    """The path of a file the manifest names, checked to lie inside ``root`` without symlinks.

    Every component below ``root`` is checked with ``lstat`` (no symlink; folders, then a regular
    file at the end), so neither hashing nor loading can reach a file outside the export folder.
    This is the one resolution function: the runtime, ``vosx bench`` and export verification all
    reach the export's files through it (``Manifest.tflite_path`` / ``Manifest.onnx_path``).

    Args:
        root: The export folder.
        rel: The manifest's relative path.
        what: How the file is described in the missing-file error.

    Raises:
        ManifestError: unsafe path, symlink, not a regular file, or missing.
    """
    root = Path(root)
    problem = path_problem(rel)
    if problem:
        raise ManifestError(
            f"{root / MANIFEST_NAME}: file path {str(rel)[:80]!r} {problem}; {REEXPORT}"
        )
    parts = [p for p in PurePosixPath(rel).parts if p != "."]
    cur = root
    for i, part in enumerate(parts):
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            raise ManifestError(f"{cur}: {what} but missing; re-run `vosx export`") from None
        except OSError as e:
            raise ManifestError(f"{cur}: cannot be read ({e.strerror}); {REEXPORT}") from None
        last = i == len(parts) - 1
        if stat.S_ISLNK(st.st_mode):
            raise ManifestError(
                f"{cur}: is a symbolic link; files named by {MANIFEST_NAME} must be regular files "
                f"inside the export folder (copy the real file in, or {REEXPORT})"
            )
        if not last and not stat.S_ISDIR(st.st_mode):
            raise ManifestError(f"{cur}: is not a folder; {REEXPORT}")
        if last and not stat.S_ISREG(st.st_mode):
            raise ManifestError(
                f"{cur}: is not a regular file (a folder, FIFO or device); {REEXPORT}"
            )
    return cur
