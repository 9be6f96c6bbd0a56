"""The three TrickVOS graphs with the exported NHWC contract, and ``TorchGraphs`` to run them.

Shapes: every image-like tensor is NHWC (``1 x H x W x C``), memory keys/values ``1 x 1 x N x C``.
Taking and returning NHWC lets onnx2tf keep every input and output exactly as declared
(``keep_shape_absolutely_input_names``), so the manifest's TFLite shapes are the ONNX shapes; the
wrappers permute to the model's NCHW internally.

``vosx.export`` exports these wrappers (its ``graphs`` module holds their names and shapes);
``TorchGraphs`` runs them in PyTorch as the runtime driver's second backend, which is how training
evaluation and export verification run the one two-frame loop (``SegmentationDriver``).
"""

import numpy as np
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


class TorchGraphs:
    """Runs the three graphs in PyTorch with the exported NHWC contract (NumPy in, NumPy out).

    The driver's second backend, and the reference of every parity check. Inputs go to the
    model's device and outputs come back to the CPU, so a model being trained on a GPU runs too.

    Args:
        model: The network; put in eval mode here.
    """

    def __init__(self, model: TrickVOS):
        self.model = model.eval()
        self.device = next(model.parameters()).device
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
    def run(self, graph: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one graph on NumPy inputs (by name, in declaration order) -> NumPy outputs by
        name.
        """
        args = [torch.from_numpy(v).to(self.device) for v in inputs.values()]
        out = self.modules[graph](*args)
        out = out if isinstance(out, tuple) else (out,)
        names = self.output_names[graph]
        return {n: t.cpu().numpy() for n, t in zip(names, out, strict=True)}
