"""fp16 arithmetic in PyTorch: what fp16 does to *this* model (``Fp16Graphs``).

The GPU delegate is judged against it (``verify.GPU_DEFECT_FACTOR``): the same inputs run with
fp16 weights and every intermediate tensor rounded to fp16, the memory read-out summed in fp16.
Shapes: NumPy arrays as the manifest lists them (NHWC, ``1 x 1 x N x C`` memory).
"""

import numpy as np

FP16_ACC_MIN = 256  # Fp16Graphs sums matrix products this long term by term in fp16 (read-out)


def _fp16_mode():
    """A ``TorchDispatchMode`` in which PyTorch computes as fp16 GPU kernels do (tensors stay
    float32, so every CPU kernel runs):

    * every float32 tensor an op produces is rounded to fp16 precision (fp16 storage);
    * a matrix product whose inner dimension is at least ``FP16_ACC_MIN`` long (the memory
      read-out, summed over every memory token) is summed one term at a time in fp16, as the
      GPU's kernel does. Measured on the decoder at 480x864, GPU vs PyTorch / this / rounding
      each op's result only: bundled checkpoint 5.0e-2 / 4.8e-2 / 8.5e-4, ``vosx init --tiny``
      1.03e-1 / 1.02e-1 / 2.6e-3 (summing the softmax in fp16 as well, or instead,
      overshoots: 7.6e-1 / 9.2e-1).
    """
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten

    def rounded(t):
        if isinstance(t, torch.Tensor) and t.dtype == torch.float32:
            return t.to(torch.float16).to(torch.float32)
        return t

    def matmul(a, b):  # (..., n, k) @ (..., k, m), k summed term by term in fp16
        acc = rounded(a[..., :, :1] * b[..., :1, :])
        for i in range(1, a.shape[-1]):
            acc = rounded(acc + rounded(a[..., :, i : i + 1] * b[..., i : i + 1, :]))
        return acc

    class Fp16Arithmetic(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in (aten.bmm.default, aten.mm.default) and args[0].shape[-1] >= FP16_ACC_MIN:
                return matmul(args[0], args[1])
            out = func(*args, **(kwargs or {}))
            if func.is_view:  # same values, same storage
                return out
            results = out if isinstance(out, (tuple, list)) else (out,)
            if func._schema.is_mutable:  # in place (relu_, add_): round where it was written
                for t in results:
                    if isinstance(t, torch.Tensor) and t.dtype == torch.float32:
                        t.copy_(t.to(torch.float16))
                return out
            if isinstance(out, (tuple, list)):
                return type(out)(rounded(t) for t in out)
            return rounded(out)

    return Fp16Arithmetic()


class Fp16Graphs:
    """The model's graphs run in fp16 arithmetic in PyTorch: what fp16 does to *this* model.

    Weights, inputs and every intermediate tensor are rounded to fp16 (each op computes in
    float32 and its result is rounded, as a GPU that stores activations in fp16), and the memory
    read-out is summed in fp16 term by term (``_fp16_mode``). A GPU's convolutions also sum in
    fp16, which this does not model: ``GPU_DEFECT_FACTOR`` allows for it. A ``Graphs`` backend
    of the driver, like ``TorchGraphs``.

    Args:
        model: The TrickVOS being exported (not modified: a rounded copy is run).
    """

    def __init__(self, model):
        import copy

        import torch

        from vosx.model.graphs import TorchGraphs

        rounded = copy.deepcopy(model)
        with torch.no_grad():
            for t in [*rounded.parameters(), *rounded.buffers()]:
                if t.dtype == torch.float32:
                    t.copy_(t.to(torch.float16))
        self._graphs = TorchGraphs(rounded)

    def run(self, graph: str, inputs: dict) -> dict:
        """One graph on NumPy inputs (rounded to fp16 first) -> NumPy outputs by name."""
        rounded = {k: np.asarray(v, np.float16).astype(np.float32) for k, v in inputs.items()}
        with _fp16_mode():
            return self._graphs.run(graph, rounded)
