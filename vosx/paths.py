"""Where the files shipped inside the package live (no heavy imports: the CLI and apps use it)."""

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_CHECKPOINT = ASSETS / "trickvos_davis.pth"  # fine-tuned on real DAVIS video (README)
SYNTHETIC_CHECKPOINT = ASSETS / "trickvos_synthetic.pth"  # its initialisation (synthetic only)
PT_TRACKER = ASSETS / "pt_tracker.npz"  # Trick 3 parametric tracker weights
DEMO_CLIP = ASSETS / "demo_real"  # frames/ and masks/ of 30 real DAVIS frames (its README)
SYNTHETIC_CLIP = ASSETS / "synthetic_clip"  # frames/ and masks/ of a 12-frame synthetic clip
