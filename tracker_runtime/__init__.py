"""App-side runtime: two-frame memory driver and box trackers on NumPy + LiteRT (no torch, no TF)."""
