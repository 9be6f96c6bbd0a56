"""The one protocol for work in a child process: ``python -m MODULE FOLDER``.

Used where a library must not run in the calling process: onnx2tf and TensorFlow for the
conversion, and LiteRT's GPU accelerator, which crashes in a process that loaded TensorFlow.

* The parent (``run_child``) makes a private temporary folder holding ``args.json`` (JSON
  arguments) and ``inputs.npz`` (named arrays), and runs ``sys.executable -m MODULE FOLDER`` from
  an argument list (no shell) in that folder, its output going to ``child.log`` there.
* The child (``serve``, called by the module's ``__main__``) runs a handler on them and writes
  ``outputs.npz`` (named arrays), then ``answer.json``, each under a temporary name renamed into
  place, so a child that dies leaves no answer and the parent reads no half-written output.
* One error path: a ``VosxError`` the handler raises becomes one line in ``answer.json``; the
  parent raises it as the caller's ``VosxError`` subclass. A child that crashes, exits non-zero
  or runs past its timeout raises the same class with the last lines of its log.
* The child is killed when it runs past its timeout or the parent is interrupted (Ctrl-C, or
  SIGTERM, which raises ``vosx.files.Terminated`` while the folder exists), and the folder is
  removed on every exit.

NumPy and the standard library only. Shapes: arrays as the caller gives them.
"""

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vosx.errors import VosxError
from vosx.files import temp_dir

ARGS, INPUTS, LOG = "args.json", "inputs.npz", "child.log"  # written by the parent
OUTPUTS, ANSWER = "outputs.npz", "answer.json"  # by the child, answer last

Arrays = dict[str, np.ndarray]
Handler = Callable[[dict, Arrays], tuple[dict, Arrays]]
"""A child's work: (JSON arguments, named arrays) -> (JSON answer, named arrays)."""


@dataclass(frozen=True)
class ChildResult:
    """What a child answered: its JSON object and its named arrays (loaded into memory)."""

    answer: dict
    arrays: Arrays


def run_child(
    module: str,
    args: dict,
    arrays: Mapping[str, np.ndarray] | None = None,
    *,
    error: type[VosxError],
    what: str,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
) -> ChildResult:
    """Run ``python -m MODULE`` on ``args`` and ``arrays`` and return its answer.

    Args:
        module: The module whose ``__main__`` calls ``serve``.
        args: JSON arguments.
        arrays: Named arrays for the child.
        error: The ``VosxError`` subclass every failure is raised as.
        what: The work, as failure messages name it ("the GPU checks").
        timeout_s: How long the child may run before it is killed.
        env: Variables set for the child, over this process's environment.

    Raises:
        VosxError: ``error``: the child's one-line error, or its exit code and last log lines,
            or the timeout.
    """
    with temp_dir(prefix="vosx-child-") as folder:
        (folder / ARGS).write_text(json.dumps(args))
        np.savez(folder / INPUTS, **dict(arrays or {}))
        command = [sys.executable, "-m", module, str(folder)]
        with open(folder / LOG, "wb") as log:
            try:
                proc = subprocess.run(
                    command,
                    cwd=folder,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **(env or {})},
                    timeout=timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired:  # run() killed it
                raise error(f"{what} ran past {timeout_s:.0f} s") from None
        reply = json.loads((folder / ANSWER).read_text()) if (folder / ANSWER).is_file() else {}
        if "error" in reply:
            raise error(reply["error"])
        if proc.returncode != 0 or "answer" not in reply:
            raise error(f"{what} failed with exit code {proc.returncode}: {_tail(folder / LOG)}")
        with np.load(folder / OUTPUTS) as z:
            outputs = {name: z[name] for name in z.files}
    return ChildResult(reply["answer"], outputs)


def _tail(log: Path) -> str:
    """The last three non-empty lines of a child's log, on one line."""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return " | ".join(lines[-3:])[-400:] or "no output"


def serve(handler: Handler) -> None:
    """The child side: run ``handler`` on the folder ``sys.argv[1]`` names and write its answer.

    A ``VosxError`` from the handler is answered as one line (exit code 1); any other exception
    leaves no answer (its traceback goes to the log).
    """
    folder = Path(sys.argv[1])
    args = json.loads((folder / ARGS).read_text())
    with np.load(folder / INPUTS) as z:
        arrays = {name: z[name] for name in z.files}
    try:
        answer, outputs = handler(args, arrays)
    except VosxError as e:
        _publish(folder / ANSWER, json.dumps({"error": " ".join(str(e).split())}).encode())
        sys.exit(1)
    buffer = io.BytesIO()
    np.savez(buffer, **outputs)
    _publish(folder / OUTPUTS, buffer.getvalue())
    _publish(folder / ANSWER, json.dumps({"answer": answer}).encode())


def _publish(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` under a temporary name, then rename it into place."""
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_bytes(data)
    os.replace(partial, path)
