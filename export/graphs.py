"""The exported graphs' contract: names, NHWC shapes and bindings of the three TrickVOS graphs.

Shapes: every image-like tensor is NHWC (``1 x H x W x C``), memory keys/values ``1 x 1 x N x C``.
The NHWC wrappers themselves (and ``TorchGraphs``, which runs them in PyTorch) live in
``vosx.model.graphs``, so that training can run them without importing ``vosx.export``.
"""

from dataclasses import dataclass

from vosx.model.graphs import DecoderGraph, KeyEncoderGraph, ValueEncoderGraph
from vosx.model.network import TrickVOS
from vosx.sizes import STRIDE


@dataclass(frozen=True)
class GraphIO:
    """Names and NHWC shapes of one graph's inputs and outputs."""

    name: str
    wrapper: type
    inputs: dict  # name -> shape
    outputs: dict  # name -> shape


def graph_ios(model: TrickVOS, size: tuple[int, int]) -> dict[str, GraphIO]:
    """The three graphs' I/O for a padded input size (H, W), in execution order."""
    cfg = model.config
    trunk = model.key_encoder.trunk
    hh, ww = size
    h, w = hh // STRIDE, ww // STRIDE
    n = h * w
    key = (1, 1, n, cfg.key_dim)
    value = (1, 1, n, cfg.value_dim)
    f16c = (1, h, w, cfg.f16_dim)
    f16 = (1, h, w, trunk.f16_channels)
    f8 = (1, 2 * h, 2 * w, trunk.f8_channels)
    f4 = (1, 4 * h, 4 * w, trunk.f4_channels)
    return {
        "key_encoder": GraphIO(
            "key_encoder",
            KeyEncoderGraph,
            {"image": (1, hh, ww, 3)},
            {"key": key, "f16c": f16c, "f16": f16, "f8": f8, "f4": f4},
        ),
        "value_encoder": GraphIO(
            "value_encoder",
            ValueEncoderGraph,
            {"mask": (1, hh, ww, 1), "f16": f16},
            {"value": value},
        ),
        "decoder": GraphIO(
            "decoder",
            DecoderGraph,
            {
                "qk": key,
                "mk_first": key,
                "mk_last": key,
                "mv_first": value,
                "mv_last": value,
                "f16c": f16c,
                "f8": f8,
                "f4": f4,
            },
            {"logits": (1, hh, ww, 1)},
        ),
    }


BINDINGS = (
    # (from "graph:output", to "graph:input", slot or None, per_object)
    ("key_encoder:key", "decoder:qk", None, False),
    ("key_encoder:f16c", "decoder:f16c", None, False),
    ("key_encoder:f8", "decoder:f8", None, False),
    ("key_encoder:f4", "decoder:f4", None, False),
    ("key_encoder:f16", "value_encoder:f16", None, False),
    ("key_encoder:key", "decoder:mk_first", "first", False),
    ("key_encoder:key", "decoder:mk_last", "last", False),
    ("value_encoder:value", "decoder:mv_first", "first", True),
    ("value_encoder:value", "decoder:mv_last", "last", True),
    ("decoder:logits", "value_encoder:mask", None, True),
)
"""Which output feeds which input; a slot means "stored in that memory slot, read on later
frames".
"""
