"""The output policy, applied by every command before any heavy work: an existing target is
refused without ``--force``; a target that is, contains or lies inside one of the command's inputs
is refused even with ``--force``; the target's folder must be writable and its name fit
``NAME_MAX`` bytes. ``check_distinct_outputs``: two outputs of one command are never one path or
inside each other. Standard library only. Writing the outputs is ``vosx.files``'.
"""

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from vosx.errors import OutputError
from vosx.files import NAME_MAX


def _real(path: Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_writable(path: Path, label: str) -> None:
    """The nearest existing ancestor of ``path`` must be a folder we can create files in."""
    folder = Path(os.path.abspath(path)).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(
            f"{label}: {folder} is a file, not a folder; choose an output path inside a folder"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".vosx-write-test-", dir=folder)
    except OSError as e:
        raise OutputError(
            f"{label}: cannot write in {folder} ({e.strerror or e}); choose an output path in a "
            "writable folder"
        ) from None
    os.close(fd)
    os.unlink(probe)


def check_output(
    path: str | os.PathLike,
    inputs: Iterable[str | os.PathLike | None] = (),
    force: bool = False,
    kind: str = "file",
    what: str = "",
    example: str = "out",
) -> Path:
    """Apply the output policy to ``path`` before any heavy work; returns ``path``.

    Args:
        path: the file or folder the command will write.
        inputs: every file or folder the command reads (``None`` entries are skipped).
        force: the user passed ``--force`` (replace an existing target that is not an input).
        kind: ``"file"`` or ``"dir"``: what the command writes at ``path``.
        what: the option's name for the message, e.g. ``"--json"``.
        example: a file name suggested when a folder is given where a file is expected.

    Raises:
        OutputError: one line naming the path, the problem and the fix. Refused even with
            ``force``: a target that is, contains or lies inside an input; a folder where a
            file is written or the reverse. Refused without ``force``: an existing target.
            Always: a target whose folder cannot be written, a name longer than ``NAME_MAX``
            bytes.
    """
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', not {kind!r}")
    p = Path(path)
    label = f"{what} {p}" if what else str(p)
    if "\0" in str(p):
        raise OutputError(f"{what or 'output path'} {str(p)!r}: contains a NUL byte; fix the path")
    for part in p.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise OutputError(
                f"{label}: the name {part[:40]}... is {len(os.fsencode(part))} bytes, longer than "
                f"the {NAME_MAX} a file or folder name may have; choose a shorter name"
            )
    exists = p.exists() or p.is_symlink()
    _check_not_an_input(p, label, inputs, exists)
    if exists:
        if kind == "dir" and not p.is_dir():
            raise OutputError(f"{label}: is a file, not a folder; give a folder path")
        if kind == "file" and p.is_dir():
            raise OutputError(f"{label}: is a folder; give a file path such as {p / example}")
        if not force:
            raise OutputError(f"{label}: already exists; pass --force to replace it")
    _check_writable(p, label)
    return p


def _check_not_an_input(
    p: Path, label: str, inputs: Iterable[str | os.PathLike | None], exists: bool
) -> None:
    """Refuse an output ``p`` that is, contains or (``exists``) lies inside one of ``inputs``.

    Raises:
        OutputError: naming the output (``label``), the input and the fix.
    """
    target = _real(p)
    for given in inputs:
        if given is None or "\0" in str(given):
            continue
        inp = _real(Path(given))
        if target == inp or (exists and _same(p, Path(given))):
            raise OutputError(
                f"{label}: is the input {given}; --force never replaces a command's input; "
                "choose another output path"
            )
        if target in inp.parents:
            raise OutputError(
                f"{label}: contains the input {given}; replacing it would delete that input, "
                "which --force never does; choose an output path outside it"
            )
        if exists and inp in target.parents:
            raise OutputError(
                f"{label}: already exists inside the input {given}; --force never replaces part "
                "of a command's input; choose an output path outside it"
            )


def check_distinct_outputs(outputs: Iterable[tuple[str, str | os.PathLike | None]]) -> None:
    """Two outputs of one command may not be one path, nor one inside the other.

    Args:
        outputs: (option name, path) of every output the command writes (None entries skipped).

    Raises:
        OutputError: naming both options and the fix (before any work).
    """
    given = [(what, Path(p)) for what, p in outputs if p is not None]
    for i, (what_a, a) in enumerate(given):
        for what_b, b in given[i + 1 :]:
            ra, rb = _real(a), _real(b)
            if ra == rb or _same(a, b):
                raise OutputError(
                    f"{what_a} {a} and {what_b} {b}: are the same path, so one output would "
                    "replace the other; give two different paths"
                )
            for (wi, inner), (wo, outer), ri, ro in (
                ((what_a, a), (what_b, b), ra, rb),
                ((what_b, b), (what_a, a), rb, ra),
            ):
                if ro in ri.parents:
                    raise OutputError(
                        f"{wi} {inner}: is inside {wo} {outer}, which is written as a whole; "
                        f"write {wi} beside it"
                    )
