"""Upper bounds of the options that size work, and their shared defaults, in one place
(standard library only).

Every command-line option that sets how much work, memory or waiting a command does has a bound
here, derived from this machine (threads: ``2 x`` its CPU count) or from the formats (image sides:
``vosx.sizes.MAX_SIDE``; objects: uint8 label maps); the command line declares them (``--help``
shows each range) and the libraries check them again (``check_count``, ``check_float``). The
README's "Errors, outputs and --force" section lists them. The defaults that several commands
share (``DEFAULT_THREADS``, ``DEFAULT_MASK_OBJECTS``) are defined here too.
"""

import math
import os

from vosx.errors import ConfigError


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


MAX_THREADS = 2 * cpu_count()
"""CPU threads (or worker processes) of one command on this machine: twice its CPU count."""
DEFAULT_THREADS = 2
"""CPU threads of the commands that run the graphs (export verification, segment, demo)."""
MAX_PHONE_THREADS = 32
"""``vosx bench --device adb --threads``: phones have at most 12 cores today."""
MAX_TIMEOUT_S = 3600.0
"""Longest wait for one benchmark run (``vosx bench --timeout``), seconds."""
MAX_COOLDOWN_S = 600.0
"""Longest pause between benchmark trials (``vosx bench --cooldown``), seconds."""
MAX_RUNS = 10_000
"""Timed runs of one benchmark (``--runs``)."""
MAX_WARMUP = 1_000
"""Warm-up runs of one benchmark (``--warmup``)."""
MAX_TRIALS = 100
"""Repetitions of a whole benchmark sweep (``--trials``)."""
MAX_STEPS = 100_000_000
"""Optimiser steps of one training run (the paper trains 300K)."""
MAX_BATCH = 1024
"""Clips per training batch (the paper uses 16)."""
MAX_SEQ_LEN = 64
"""Frames per training clip (the paper uses 5)."""
MAX_OBJECTS = 255
"""Objects of one label map: labels are uint8 (training clips, ``vosx bench --objects``)."""
MAX_MASK_OBJECTS = MAX_OBJECTS - 1
"""``vosx segment --max-objects``: a first-frame mask's objects are 1..254 (255 is void)."""
DEFAULT_MASK_OBJECTS = 50
"""Objects a first-frame mask may have unless ``--max-objects`` says otherwise: more are refused
as implausible (a photo given as the mask); DAVIS 2017 has at most 10 per video."""
MAX_CLIPS = 100_000
"""Synthetic clips generated for validation or tracker training."""
MAX_CLIP_FRAMES = 10_000
"""Frames of one synthetic clip."""
MAX_HIDDEN = 4096
"""Width of the parametric tracker's hidden layers."""
MAX_SKIP = 1_000
"""Largest frame gap drawn from a real video."""


def check_count(value: int, option: str, low: int, high: int) -> None:
    """Refuse an integer option outside ``low..high``.

    Raises:
        ConfigError: naming the option, the value and the range.
    """
    if not low <= value <= high:
        raise ConfigError(f"{option} {value}: must be in {low}..{high}; give a value in range")


def check_float(value: float, option: str, low: float = -math.inf, high: float = math.inf) -> None:
    """Refuse a float option that is NaN, infinite or outside ``low..high``.

    Raises:
        ConfigError: naming the option, the value and the range.
    """
    if not math.isfinite(value):
        raise ConfigError(f"{option} {value}: must be a finite number")
    if not low <= value <= high:
        raise ConfigError(f"{option} {value:g}: must be in {low:g}..{high:g}")
