"""The TrickVOS network in PyTorch: config, network, checkpoints (``vosx.model``).

Importing this package imports torch; the CLI imports it only inside the commands that need it.
"""

from vosx.model.checkpoint import count_parameters, load_checkpoint, save_checkpoint
from vosx.model.config import TINY_CONFIG, ModelConfig
from vosx.model.network import TrickVOS, build_model

__all__ = [
    "TINY_CONFIG",
    "ModelConfig",
    "TrickVOS",
    "build_model",
    "count_parameters",
    "load_checkpoint",
    "save_checkpoint",
]
