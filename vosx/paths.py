"""Where the files shipped inside the package live (no heavy imports: the CLI and apps use it)."""

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_CHECKPOINT = ASSETS / "trickvos_synthetic.pth"  # trained on synthetic clips (README)
PT_TRACKER = ASSETS / "pt_tracker.npz"  # Trick 3 parametric tracker weights
DEMO_CLIP = ASSETS / "demo_clip"  # frames/ and masks/ of the synthetic demo clip
