"""What a training run writes besides its checkpoints: the run folder, ``log.csv``, progress.

``check_run_folder`` applies ``vosx.output_policy`` to ``-o`` before anything is
loaded; ``make_run_folder`` and ``remove_earlier_run`` create the folder or clear an earlier
run's files (``--force``) just before the first step. ``log.csv`` holds one row per step
(``CSV_FIELDS``); a resumed run first drops the rows it will write again (``csv_restart``).
``RunProgress`` shows the steps: a rich progress bar on terminals, a log line otherwise.
"""

import csv
import os
import sys
from pathlib import Path

from vosx.errors import OutputError
from vosx.files import atomic_path, make_dirs, remove_empty_dirs
from vosx.output_policy import check_output
from vosx.training.config import TrainConfig

LOSS_NAMES = ("loss", "ce", "ssim", "iou")  # the log's names of ``LossTerms``
CSV_FIELDS = ("step", "stage", "lr", *LOSS_NAMES, "sec", "val_j", "val_f", "val_jf")
RUN_FILES = ("last.pth", "model.pth", "log.csv", "step_*.pth")
"""What a run writes into its folder (an earlier run's are removed by a ``--force`` run)."""


def resumes_in_place(cfg: TrainConfig) -> bool:
    """Whether ``cfg.resume`` lies in the run folder itself (the run continues where it is)."""
    if cfg.resume is None:
        return False
    here = Path(os.path.realpath(os.path.abspath(cfg.out_dir)))
    return Path(os.path.realpath(os.path.abspath(cfg.resume))).parent == here


def check_run_folder(cfg: TrainConfig, force: bool = False) -> None:
    """``vosx train``'s output policy (``vosx.output_policy.check_output``), before loading.

    The run folder may never be, contain or (existing) lie inside an input: ``init_from``,
    ``init_decoder_from``, the ``data`` / ``static_data`` folders, the ImageNet weights and a
    ``resume`` checkpoint of another folder. ``resume`` reads its own folder only: a run resumed
    from ``OUT/last.pth`` continues in ``OUT``. Any other existing folder needs ``force`` (the
    earlier run's ``RUN_FILES`` are removed before the first step).

    Raises:
        OutputError: one line naming ``-o``, the problem and the fix.
    """
    inputs = [cfg.init_from, cfg.init_decoder_from]
    inputs += [d for d in (cfg.data, cfg.static_data) if d != "synthetic"]
    if cfg.init_backbone == "imagenet":
        from vosx.training.imagenet import cached_weights_path

        inputs.append(cached_weights_path())
    if resumes_in_place(cfg):
        check_output(cfg.out_dir, inputs, True, kind="dir", what="-o")
        return
    try:
        check_output(cfg.out_dir, [*inputs, cfg.resume], force, kind="dir", what="-o")
    except OutputError as e:
        if "pass --force" not in str(e):
            raise
        raise OutputError(
            f"-o {cfg.out_dir}: already exists (an earlier run?); pass --resume "
            f"{Path(cfg.out_dir) / 'last.pth'} to continue it, --force to replace its files with "
            "a new run, or choose another -o"
        ) from None


def make_run_folder(out: Path, new: bool) -> list[Path]:
    """Create the run folder (and missing parents; returned for ``remove_empty_dirs``).

    Raises:
        OutputError: ``new`` and another program created it since it was checked.
    """
    if not new:
        return make_dirs(out)
    made = make_dirs(out.parent)
    try:
        out.mkdir()
    except FileExistsError:
        remove_empty_dirs(made)
        raise OutputError(
            f"-o {out}: was created by another program while this run was set up, and is kept; "
            "pass --force to replace its files, or choose another -o"
        ) from None
    except OSError as e:
        remove_empty_dirs(made)
        raise OutputError(f"-o {out}: cannot create it ({e.strerror or e})") from None
    return [out, *made]


def remove_earlier_run(out: Path) -> None:
    """Remove an earlier run's ``RUN_FILES`` from ``out`` (a ``--force`` run, just before its
    first step; other files are left alone)."""
    for pattern in RUN_FILES:
        for path in out.glob(pattern):
            if path.is_file() or path.is_symlink():
                path.unlink()


def csv_restart(path: Path, start: int) -> None:
    """Keep only the rows of steps before ``start`` (a resumed run rewrites the rest)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [
            r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) < start
        ]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)


def append_csv(path: Path, row: dict) -> None:
    """Append one step's row (``CSV_FIELDS``) to ``log.csv``, writing the header first."""
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


class RunProgress:
    """A rich progress bar on terminals, a log line every few steps otherwise.

    Args:
        total: The run's last step.
        start: The step it starts at.
        log_every: Steps between log lines (no terminal).
        enabled: Show anything (rank 0, not quiet).
    """

    def __init__(self, total: int, start: int, log_every: int, enabled: bool):
        self.enabled = enabled
        self.tty = enabled and sys.stdout.isatty()
        self.log_every = max(1, log_every)
        self.total = total
        self.bar = None
        if self.tty:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
            )
            self.task = self.bar.add_task("train", total=total, completed=start, info="")
            self.bar.start()

    def update(self, step: int, info: str) -> None:
        """Show that ``step`` is done, with ``info`` (the losses, the speed)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=step + 1, info=info)
        elif (step + 1) % self.log_every == 0 or step + 1 == self.total:
            print(f"step {step + 1}/{self.total} {info}", flush=True)

    def message(self, text: str) -> None:
        """Print one line (above the bar on a terminal)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.console.print(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        """Stop the bar."""
        if self.bar is not None:
            self.bar.stop()
