"""Every file that leaves the program is written through here: atomic files and folder swaps.

Two pieces, standard library only (``tracker_runtime`` and ``android_bench`` import it); the
output policy checked before writing (``check_output``) is ``vosx.output_policy``'s:

- ``atomic_write`` / ``atomic_path`` / ``PendingFile``: a file is written to a temporary name in
  its own folder (``.NAME.tmp-XXXX``), flushed to disk and renamed onto its target, so readers
  see the old file or the whole new one, never half of one.
- ``replace_dir``: a folder is built in a temporary sibling and swapped in at the end; the
  previous folder is removed only once the new one is in place, and nothing (``.NAME.tmp-*``,
  ``.NAME.old-*``) is left behind on any exit.

A target that did not exist when it was checked is created with ``overwrite=False`` (the
commands pass their ``--force``): if another program created it meanwhile, the final rename
refuses (``OutputError``) instead of replacing it. Temporary names are ``.NAME.tmp-XXXXXXXX``
with NAME shortened so that they fit ``NAME_MAX`` bytes.

While a temporary file or folder exists, SIGTERM and SIGHUP raise ``vosx.signals.Terminated``
in the main thread, so the ``finally`` clauses that remove temporaries run for ``timeout``, CI
runners, container stops and closed terminals exactly as they do for Ctrl-C; renames and
clean-ups finish before a signal is handled (``vosx.signals.signals_deferred``).
"""

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from vosx.errors import OutputError
from vosx.signals import GUARD, signals_deferred, terminate_raises

TMP_TAG = ".tmp-"
OLD_TAG = ".old-"
NAME_MAX = 255
"""Longest file name in bytes (ext4, XFS, APFS, NTFS...): outputs and their temporaries fit it."""
_RANDOM = 8  # characters tempfile adds to a prefix


# ---------------------------------------------------------------- helpers


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def make_dirs(folder: str | os.PathLike) -> list[Path]:
    """Create ``folder`` and its missing ancestors; returns those created, deepest first.

    Give the list to ``remove_empty_dirs`` when the command fails, so that it leaves no empty
    folder it created behind.

    Raises:
        OutputError: a folder cannot be created.
    """
    folder = Path(folder)
    missing = []
    p = folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _output_error(folder, e) from None
    return missing


def remove_empty_dirs(folders: Iterable[Path]) -> None:
    """Remove the folders ``make_dirs`` created, deepest first, as long as they are empty."""
    for p in folders:
        try:
            p.rmdir()
        except OSError:
            return


def _output_error(path: Path, e: OSError) -> OutputError:
    return OutputError(
        f"{path}: cannot write there ({e.strerror or e}); choose an output path in a writable "
        "folder"
    )


def _appeared(path: Path) -> OutputError:
    return OutputError(
        f"{path}: was created by another program while this command ran, and is kept; nothing "
        "was written — pass --force to replace it, or choose another output path"
    )


def _tmp_prefix(name: str, tag: str, suffix: str = "") -> str:
    """``.NAME<tag>`` for ``tempfile``, NAME shortened (whole characters) so that the temporary
    name, with tempfile's random part and ``suffix``, fits ``NAME_MAX`` bytes."""
    budget = NAME_MAX - 1 - len(os.fsencode(tag)) - _RANDOM - len(os.fsencode(suffix))
    kept, used = [], 0
    for ch in name:
        n = len(os.fsencode(ch))
        if used + n > budget:
            break
        kept.append(ch)
        used += n
    return f".{''.join(kept)}{tag}"


def _place_new(tmp: Path, target: Path) -> None:
    """Move the finished file ``tmp`` onto ``target`` only if nothing is there (atomic where
    the file system has hard links: ``link`` never replaces).

    Raises:
        OutputError: ``target`` exists (another program created it after it was checked).
    """
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise _appeared(target) from None
    except OSError:  # no hard links here (FAT, some network file systems): check, then rename
        if os.path.lexists(target):
            raise _appeared(target) from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


# ---------------------------------------------------------------- files


class PendingFile:
    """A temporary file beside ``path`` that ``commit()`` moves onto it; ``discard()`` drops it.

    For writers that stream into a file over a long time (an overlay video). SIGTERM and SIGHUP
    raise ``Terminated`` from creation until ``commit()`` or ``discard()``. As a context manager
    it commits on success and discards on any exception.

    Args:
        path: the target file.
        suffix: ending of the temporary name (some writers pick the format from it).
        overwrite: replace a file at ``path``; False (a command without ``--force``): ``commit``
            refuses with ``OutputError`` when one appeared since the output was checked.

    Attributes:
        path: the target file.
        tmp: the temporary file to write.

    Raises:
        OutputError: the folder cannot be created or written.
    """

    def __init__(self, path: str | os.PathLike, suffix: str = "", overwrite: bool = True) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self._open = True
        GUARD.enter()
        try:
            self._made = make_dirs(self.path.parent)
            fd, tmp = tempfile.mkstemp(
                prefix=_tmp_prefix(self.path.name, TMP_TAG, suffix),
                suffix=suffix,
                dir=self.path.parent,
            )
            os.close(fd)
        except OSError as e:
            GUARD.exit()
            self._open = False
            raise _output_error(self.path, e) from None
        except BaseException:
            GUARD.exit()
            self._open = False
            raise
        self.tmp = Path(tmp)

    def commit(self) -> Path:
        """Flush the temporary file to disk and rename it onto ``path``; returns ``path``.

        Raises:
            OutputError: ``overwrite`` is False and ``path`` exists now (nothing is replaced; the
                temporary file is removed).
        """
        if not self._open:
            raise RuntimeError(f"{self.path}: already committed or discarded")
        try:
            with open(self.tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary
            with signals_deferred():
                if self.overwrite:
                    os.replace(self.tmp, self.path)
                else:
                    _place_new(self.tmp, self.path)
                _fsync_dir(self.path.parent)
                self._close()
        except BaseException:
            self.discard()
            raise
        return self.path

    def discard(self) -> None:
        """Remove the temporary file (and any folder created for it); safe to call twice."""
        if not self._open:
            return
        with signals_deferred():
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()
            remove_empty_dirs(self._made)
            self._close()

    def _close(self) -> None:
        self._open = False
        GUARD.exit()

    def __enter__(self) -> "PendingFile":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, suffix: str = "", overwrite: bool = True
) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed onto ``path`` (else removed).

    For writers that want a path (``torch.save``, ``Image.save``, ``np.savez``).

    Args:
        path: the target file.
        suffix: ending of the temporary name.
        overwrite: as ``PendingFile``'s (False: never replace a file that appeared meanwhile).

    Raises:
        OutputError: the folder cannot be created or written, or (``overwrite`` False) ``path``
            appeared while the file was written.
    """
    with PendingFile(path, suffix, overwrite) as pending:
        yield pending.tmp


def atomic_write(
    path: str | os.PathLike, data: str | bytes, encoding: str = "utf-8", overwrite: bool = True
) -> Path:
    """Write ``data`` (text or bytes) to ``path`` atomically; returns ``path``.

    Raises:
        OutputError: as ``atomic_path``.
    """
    raw = data.encode(encoding) if isinstance(data, str) else data
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(raw)
    return Path(path)


def _finite_or_none(value):
    """``value`` with every NaN / infinity (in lists, tuples and dicts) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


def json_text(data, indent: int | None = 2) -> str:
    """``data`` as strict JSON text (RFC 8259) with a final newline: NaN and infinities, which
    JSON cannot hold, are written as ``null`` (a score that is undefined, not a number)."""
    return json.dumps(_finite_or_none(data), indent=indent, allow_nan=False) + "\n"


# ---------------------------------------------------------------- folders


def _swap_in(tmp: Path, target: Path, overwrite: bool = True) -> None:
    """Rename ``tmp`` onto ``target``; an existing target is removed only after that worked.

    Raises:
        OutputError: ``overwrite`` is False and ``target`` exists (created meanwhile).
    """
    with signals_deferred():
        if not target.exists() and not target.is_symlink():
            try:
                os.rename(tmp, target)  # refuses a non-empty folder or a file created meanwhile
            except OSError as e:
                if os.path.lexists(target):
                    raise _appeared(target) from None
                raise _output_error(target, e) from None
            _fsync_dir(target.parent)
            return
        if not overwrite:
            raise _appeared(target)
        holder = Path(tempfile.mkdtemp(prefix=_tmp_prefix(target.name, OLD_TAG), dir=target.parent))
        try:
            os.rename(target, holder / target.name)
            try:
                os.rename(tmp, target)
            except BaseException:
                os.rename(holder / target.name, target)  # put the previous folder back
                raise
            _fsync_dir(target.parent)
        finally:
            shutil.rmtree(holder, ignore_errors=True)


@contextlib.contextmanager
def replace_dir(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces ``path``.

    The previous ``path`` (folder or file) is deleted only once the new folder is in place. On
    any exception, Ctrl-C, SIGTERM or SIGHUP the temporary folder is removed and ``path`` is
    untouched. Apply ``check_output`` first: this function replaces whatever is at ``path``
    (unless ``overwrite`` is False).

    Args:
        path: the folder to write.
        overwrite: replace what is at ``path``; False (a command without ``--force``): refuse
            with ``OutputError`` at the swap when something appeared there since the check.

    Raises:
        OutputError: the folder cannot be created or written, or (``overwrite`` False) ``path``
            appeared while the folder was filled.
    """
    target = Path(path).absolute()
    with terminate_raises():
        try:
            made = make_dirs(target.parent)
            tmp = Path(
                tempfile.mkdtemp(prefix=_tmp_prefix(target.name, TMP_TAG), dir=target.parent)
            )
        except OSError as e:
            raise _output_error(target, e) from None
        done = False
        try:
            yield tmp
            tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result is ordinary
            _swap_in(tmp, target, overwrite)
            done = True
        finally:
            with signals_deferred():
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
                if not done:
                    remove_empty_dirs(made)


@contextlib.contextmanager
def temp_dir(prefix: str = "vosx-") -> Iterator[Path]:
    """A scratch folder under ``$TMPDIR``, removed on every exit (SIGTERM and SIGHUP included)."""
    with terminate_raises():
        tmp = Path(tempfile.mkdtemp(prefix=prefix))
        try:
            yield tmp
        finally:
            with signals_deferred():
                shutil.rmtree(tmp, ignore_errors=True)


__all__ = [
    "NAME_MAX",
    "OLD_TAG",
    "TMP_TAG",
    "PendingFile",
    "atomic_path",
    "atomic_write",
    "json_text",
    "make_dirs",
    "remove_empty_dirs",
    "replace_dir",
    "temp_dir",
]
