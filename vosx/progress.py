"""One progress line per stage of a long command (``vosx export``, the first-use export of
``vosx segment``), with the stage's elapsed time.

``StageProgress`` is the ``progress(stage, message)`` callable ``export_all`` takes. When a stage
ends (the next one starts, or the command finishes) it prints one line: the time since the
start, the stage, its message and how long it took. On a terminal the running stage is also
shown live, with a spinner and its elapsed time, and removed when it ends. Imports rich only.
"""

import time


class StageProgress:
    """Progress lines per stage on ``console`` (a rich ``Console``, usually stderr).

    Use as a context manager around the work; call it with ``(stage, message)`` whenever a stage
    starts (a second call for the running stage replaces its message).

    Args:
        console: Where the lines go.
        prefix: What the lines are about ("export").
    """

    def __init__(self, console, prefix: str = "export"):
        self.console = console
        self.prefix = prefix
        self.start = time.perf_counter()
        self.stage: str | None = None
        self.message = ""
        self.stage_start = self.start
        self.lines: list[str] = []  # every line printed, for tests and summaries
        self._live = None
        self._task = None

    def __enter__(self) -> "StageProgress":
        if self.console.is_terminal:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._live = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._live.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._end_stage()
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)

    def __call__(self, stage: str, message: str) -> None:
        """Stage ``stage`` starts (or, when running, says ``message``)."""
        if stage != self.stage:
            self._end_stage()
            self.stage, self.stage_start = stage, time.perf_counter()
        self.message = message
        if self._live is not None:
            description = f"{self.prefix}: {stage}: {message}"
            if self._task is None:
                self._task = self._live.add_task(description)
            else:
                self._live.reset(self._task, description=description)

    def _end_stage(self) -> None:
        """Print the running stage's line (elapsed since the start, stage, message, duration)."""
        if self.stage is None:
            return
        now = time.perf_counter()
        line = (
            f"[{now - self.start:6.1f} s] {self.prefix}: {self.stage}: {self.message} "
            f"({now - self.stage_start:.1f} s)"
        )
        self.lines.append(line)
        self.console.print(line, soft_wrap=True, highlight=False, markup=False)
        self.stage = None
