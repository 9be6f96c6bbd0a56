"""NHWC export wrappers: the three TrickVOS graphs with fixed names, shapes and layouts.

Shapes: every image-like tensor is NHWC (``1 x H x W x C``), memory keys/values ``1 x 1 x N x C``.
Taking and returning NHWC lets onnx2tf keep every input and output exactly as declared
(``keep_shape_absolutely_input_names``), so the manifest's ``onnx_perm`` is the identity; the
wrappers permute to the model's NCHW internally.
"""

from dataclasses import dataclass

import torch
from torch import nn

from vosx.model.network import TrickVOS


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


class KeyEncoderGraph(nn.Module):
    """image 1xHxWx3 -> key 1x1xNxCK, f16c 1xhxwxCF, f16 1xhxwxC16, f8, f4 (NHWC)."""

    def __init__(self, model: TrickVOS):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        k = self.model.encode_key(_nchw(image))
        return k.key, _nhwc(k.f16c), _nhwc(k.f16), _nhwc(k.f8), _nhwc(k.f4)


class ValueEncoderGraph(nn.Module):
    """mask 1xHxWx1, f16 1xhxwxC16 -> value 1x1xNxCV."""

    def __init__(self, model: TrickVOS):
        super().__init__()
        self.model = model

    def forward(self, mask: torch.Tensor, f16: torch.Tensor):
        return self.model.encode_value(_nchw(mask), _nchw(f16))


class DecoderGraph(nn.Module):
    """qk, mk_first, mk_last (1x1xNxCK), mv_first, mv_last (1x1xNxCV), f16c, f8, f4 ->
    logits 1xHxWx1.
    """

    def __init__(self, model: TrickVOS):
        super().__init__()
        self.model = model

    def forward(self, qk, mk_first, mk_last, mv_first, mv_last, f16c, f8, f4):
        mk = torch.cat([mk_first, mk_last], 2)  # 1 x 1 x 2N x CK
        mv = torch.cat([mv_first, mv_last], 2)  # 1 x 1 x 2N x CV
        logits = self.model.segment(qk, mk, mv, _nchw(f16c), _nchw(f8), _nchw(f4))
        return _nhwc(logits)


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
    h, w = hh // 16, ww // 16
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


class TorchGraphs:
    """Runs the three graphs in PyTorch with the exported NHWC contract (NumPy in, NumPy out).

    The driver's second backend, and the reference of every parity check.
    """

    def __init__(self, model: TrickVOS):
        self.model = model.eval()
        self.modules = {
            "key_encoder": KeyEncoderGraph(model).eval(),
            "value_encoder": ValueEncoderGraph(model).eval(),
            "decoder": DecoderGraph(model).eval(),
        }
        self.output_names = {
            "key_encoder": ("key", "f16c", "f16", "f8", "f4"),
            "value_encoder": ("value",),
            "decoder": ("logits",),
        }

    @torch.no_grad()
    def run(self, graph: str, inputs: dict) -> dict:
        """Run one graph on NumPy inputs (by name, in declaration order) -> NumPy outputs by
        name.
        """
        args = [torch.from_numpy(v) for v in inputs.values()]
        out = self.modules[graph](*args)
        out = out if isinstance(out, tuple) else (out,)
        return {n: t.numpy() for n, t in zip(self.output_names[graph], out, strict=True)}
