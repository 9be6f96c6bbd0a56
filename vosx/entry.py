"""How the ``vosx`` process ends: every failure becomes one ``vosx: error: ...`` line on stderr
and an exit code (1 for errors, 130 for Ctrl-C, 143 / 129 for SIGTERM / SIGHUP), with control
characters escaped; ``VOSX_RAISE_ERRORS=1`` lets errors propagate. ``vosx.cli.main`` runs the
commands through ``run_app``.
"""

import sys

import typer

from vosx.errors import VosxError, raise_errors
from vosx.signals import Terminated, exit_on_signals

# Missing modules -> the extra that installs them (`vosx export` on the app-side core install).
_EXTRAS = {
    **dict.fromkeys(
        ("torch", "onnx", "onnxruntime", "onnx2tf", "onnx_graphsurgeon", "sng4onnx"), "export"
    ),
    **dict.fromkeys(("tensorflow", "tf_keras", "psutil"), "export"),
    "imageio_ffmpeg": "video",
}


def _printable(text: str) -> str:
    """``text`` on one line: control characters (NUL, newline, ESC...) and undecodable bytes of
    a path are written escaped (``\\x00``, ``\\n``, ``\\xff``) instead of raw."""
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def _fail(message: str, code: int = 1) -> None:
    print(f"vosx: error: {_printable(message)}", file=sys.stderr)
    sys.exit(code)


def _signal_name(signum: int) -> str:
    """'SIGHUP' for 1, ... ('signal N' when unnamed)."""
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _command(app: typer.Typer, args: list[str]) -> str:
    """``vosx NAME`` of the command being run (``vosx`` when none is named)."""
    names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    name = next((a for a in args if not a.startswith("-")), "")
    return f"vosx {name}" if name in names else "vosx"


def run_app(app: typer.Typer, args: list[str]) -> None:
    """Run the command line ``app`` on ``args`` and exit: every failure one stderr line.

    SIGTERM and SIGHUP raise ``vosx.signals.Terminated`` while it runs (``exit_on_signals``), so
    temporaries are removed before the exit; ``vosx.cli.main`` says what each failure prints.
    """
    with exit_on_signals():
        _run(app, args)


def _run(app: typer.Typer, args: list[str]) -> None:
    """``run_app`` inside the signal guard."""
    try:
        code = app(args=args, prog_name="vosx", standalone_mode=False)
    except VosxError as e:
        if raise_errors():
            raise
        _fail(str(e), e.exit_code)
    except typer.TyperException as e:  # click usage errors: unknown option, missing argument...
        ctx = getattr(e, "ctx", None)
        where = ctx.command_path if ctx is not None else _command(app, args)
        message = " ".join(e.format_message().split()).rstrip(".").replace("Value error, ", "")
        _fail(f"{where}: {message}; see `{where} --help`")
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if raise_errors() or top not in _EXTRAS:
            raise
        extra = _EXTRAS[top]
        _fail(
            f"`{_command(app, args)}` needs the Python package {top}, which is not installed; "
            f"run pip install 'vosx[{extra}]'"
        )
    except OSError as e:
        if raise_errors():
            raise
        where = f"{e.filename}: " if e.filename is not None else ""
        reason = e.strerror or str(e) or type(e).__name__
        _fail(f"{where}{reason} ({type(e).__name__}); choose another path or fix its permissions")
    except SystemExit as e:  # Terminated (SIGTERM / SIGHUP): every finally clause has run
        signum = e.signum if isinstance(e, Terminated) else {143: 15, 129: 1}.get(e.code)
        if signum is not None:
            how = "" if signum == 15 else f" ({_signal_name(signum)})"
            try:
                print(f"vosx: terminated{how}", file=sys.stderr, flush=True)
            except OSError:  # SIGHUP: the terminal may be gone
                pass
        raise
    if code == 130:  # typer turns Ctrl-C into exit code 130
        print("vosx: interrupted", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)
