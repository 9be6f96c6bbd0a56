"""Where vosx's files live: those shipped inside the package and the user cache folder.

Standard library only (the CLI, ``tracker_runtime`` and ``android_bench`` all use it).
"""

import os
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_CHECKPOINT = ASSETS / "trickvos_davis.pth"  # fine-tuned on real DAVIS video (README)
SYNTHETIC_CHECKPOINT = ASSETS / "trickvos_synthetic.pth"  # its initialisation (synthetic only)
PT_TRACKER = ASSETS / "pt_tracker.npz"  # Trick 3 parametric tracker weights
DEMO_CLIP = ASSETS / "demo_real"  # frames/ and masks/ of 30 real DAVIS frames (its README)
SYNTHETIC_CLIP = ASSETS / "synthetic_clip"  # frames/ and masks/ of a 12-frame synthetic clip


def checkpoint_or_bundled(given: str | os.PathLike | None) -> Path:
    """The checkpoint a command runs: ``given``, else the bundled ``DEFAULT_CHECKPOINT`` (read
    when called; the callers say what is missing, in their own terms)."""
    return DEFAULT_CHECKPOINT if given is None else Path(given)


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vosx`` (default ``~/.cache/vosx``): cached exports and device tools.

    A relative ``XDG_CACHE_HOME`` is ignored, as the XDG Base Directory specification says (it
    would put the cache under whatever folder a command is run from).
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = str(Path.home() / ".cache")
    return Path(base) / "vosx"
