"""SIGTERM and SIGHUP as exceptions, so that temporaries are removed on every exit.

While a temporary file or folder exists (``terminate_raises``, used by ``vosx.files``), or for a
whole command (``exit_on_signals``), SIGTERM and SIGHUP raise ``Terminated`` (a ``SystemExit``
with code 128 + the signal) in the main thread, so the ``finally`` clauses that remove temporaries
run for ``timeout``, CI runners, container stops and closed terminals exactly as they do for
Ctrl-C (``KeyboardInterrupt``). ``signals_deferred`` holds the signals back while a rename or a
clean-up must finish. Standard library only.
"""

import contextlib
import signal
import threading
from collections.abc import Iterator

EXIT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""Signals that end a command through ``Terminated`` (its ``finally`` clauses run)."""


class Terminated(SystemExit):
    """Raised by the SIGTERM / SIGHUP handler; exits 128 + the signal (143 for SIGTERM).

    Args:
        signum: The signal received.

    Attributes:
        signum: The signal received.
    """

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(128 + int(signum))
        self.signum = int(signum)


def _in_main_thread() -> bool:
    """Whether this is the main thread (the only one Python delivers signals to)."""
    return threading.current_thread() is threading.main_thread()


def _on_exit_signal(signum, frame) -> None:
    """Handler of ``EXIT_SIGNALS``: raise ``Terminated`` (later ones must not stop the cleanup)."""
    for sig in EXIT_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


class SignalGuard:
    """Reference-counted SIGTERM / SIGHUP handler: installed while at least one temporary exists.

    ``enter()`` when a temporary is created, ``exit()`` once it is gone (``terminate_raises``
    does both around a block); only the main thread installs handlers.
    """

    def __init__(self) -> None:
        self._depth = 0
        self._previous: dict = {}  # signal -> the handler it had, for those installed here

    def enter(self) -> None:
        if not _in_main_thread():
            return
        if self._depth == 0:
            for sig in EXIT_SIGNALS:
                previous = signal.getsignal(sig)
                # Leave a handler someone else installed (an embedding program, a test runner,
                # ``exit_on_signals``) or an ignored signal (nohup) alone.
                if previous in (signal.SIG_DFL, None):
                    self._previous[sig] = previous
                    signal.signal(sig, _on_exit_signal)
        self._depth += 1

    def exit(self) -> None:
        if not _in_main_thread() or self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0:
            for sig, previous in self._previous.items():
                signal.signal(sig, previous or signal.SIG_DFL)
            self._previous = {}


GUARD = SignalGuard()
"""The process's one guard (``vosx.files`` enters it for each temporary)."""


@contextlib.contextmanager
def terminate_raises() -> Iterator[None]:
    """While active, SIGTERM raises ``Terminated`` in the main thread (nestable).

    Use it around any work that leaves something to clean up in a ``finally`` clause.
    """
    GUARD.enter()
    try:
        yield
    finally:
        GUARD.exit()


@contextlib.contextmanager
def exit_on_signals() -> Iterator[None]:
    """For a whole command: SIGTERM and SIGHUP raise ``Terminated`` in the main thread.

    So every exit path runs the ``finally`` clauses that remove temporaries, and the command line
    can print its one line. Handlers someone else installed, and ignored signals (``nohup``), are
    left alone; the previous handlers are restored on exit.
    """
    previous = {}
    if _in_main_thread():
        for sig in EXIT_SIGNALS:
            handler = signal.getsignal(sig)
            if handler in (signal.SIG_DFL, None):
                previous[sig] = signal.signal(sig, _on_exit_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler or signal.SIG_DFL)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back while a swap or a clean-up runs; they arrive right after."""
    can_block = hasattr(signal, "pthread_sigmask") and _in_main_thread()
    if can_block:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, *EXIT_SIGNALS})
    try:
        yield
    finally:
        if can_block:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
