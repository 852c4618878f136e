"""GEMMs of a Linear layer sent to an executor as output tiles: the autograd Function and layer."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class GemmExecutor(Protocol):
    """Anything that computes ``a @ b`` for numpy matrices (the parameter server's scheduler)."""

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray: ...


class RemoteLinearFunction(torch.autograd.Function):
    """``y = x W^T`` whose forward and both backward GEMMs run on a :class:`GemmExecutor`.

    Forward: ``Y = X W^T``; backward: ``dX = dY W`` and ``dW = dY^T X``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, executor: GemmExecutor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.executor = executor
        out = executor.matmul(x.detach().numpy(), weight.detach().numpy().T)
        return torch.from_numpy(np.ascontiguousarray(out))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        g = grad.detach().contiguous().numpy()
        dx = None
        if ctx.needs_input_grad[0]:
            dx = torch.from_numpy(np.ascontiguousarray(ctx.executor.matmul(g, weight.detach().numpy())))
        dw = torch.from_numpy(np.ascontiguousarray(ctx.executor.matmul(g.T, x.detach().numpy())))
        return dx, dw, None


class TiledLinear(torch.nn.Linear):
    """A Linear layer that runs plainly until an executor is attached, then through the executor."""

    executor: GemmExecutor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.executor is None:
            return super().forward(x)
        flat = x.reshape(-1, self.in_features).contiguous()
        out = RemoteLinearFunction.apply(flat, self.weight, self.executor)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)


def attach_executor(model: torch.nn.Module, executor: GemmExecutor | None) -> int:
    """Route every :class:`TiledLinear` of ``model`` through ``executor`` (None: plain); returns how many."""
    layers = [m for m in model.modules() if isinstance(m, TiledLinear)]
    for layer in layers:
        layer.executor = executor
    return len(layers)
