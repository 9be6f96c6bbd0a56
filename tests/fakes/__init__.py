"""Test doubles for ``vosx bench`` (a fake ``adb`` on PATH emulating phones, fake device tools),
and a helper for tests that signal child processes."""


def default_sigint() -> None:
    """``preexec_fn`` for a child that must see SIGINT: a shell's background job (``cmd &``)
    ignores SIGINT, children inherit that, and Python then installs no KeyboardInterrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
