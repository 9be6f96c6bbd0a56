"""Training side of TrickVOS: data sources, the synthetic clip generator, Trick 1's loss, the
training loop and the motion tracker's trainer. Imports nothing from ``export``; the network lives
in ``vosx.model``. Importing this package is cheap: each module is imported on its own."""
