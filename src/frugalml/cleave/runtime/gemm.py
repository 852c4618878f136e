"""GEMMs of a Linear layer sent to an executor as output tiles: the autograd Function and layer."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class GemmExecutor(Protocol):
    """Anything that computes ``a @ b`` for numpy matrices (the parameter server's scheduler)."""

    def matmul(self, a: np.ndarray, b: np.ndarray, name: str | None = None) -> np.ndarray: ...


class RemoteLinearFunction(torch.autograd.Function):
    """``y = x W^T`` whose forward and both backward GEMMs run on a :class:`GemmExecutor`.

    Forward: ``Y = X W^T``; backward: ``dX = dY W`` and ``dW = dY^T X``. ``names`` are the three
    GEMMs' names in the planner's op graph (forward, dX, dW), so a plan's grid finds its GEMM.
    """

    @staticmethod
    def forward(
        ctx, x: torch.Tensor, weight: torch.Tensor, executor: GemmExecutor, names: tuple[str, str, str]
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.executor = executor
        ctx.names = names
        out = executor.matmul(x.detach().numpy(), weight.detach().numpy().T, names[0])
        return torch.from_numpy(np.ascontiguousarray(out))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        g = grad.detach().contiguous().numpy()
        dx = None
        if ctx.needs_input_grad[0]:
            dx = torch.from_numpy(
                np.ascontiguousarray(ctx.executor.matmul(g, weight.detach().numpy(), ctx.names[1]))
            )
        dw = torch.from_numpy(
            np.ascontiguousarray(ctx.executor.matmul(g.T, x.detach().numpy(), ctx.names[2]))
        )
        return dx, dw, None, None


class TiledLinear(torch.nn.Linear):
    """A Linear layer that runs plainly until an executor is attached, then through the executor.

    ``gemm_names``: its forward, dX and dW GEMMs as the planner names them (see
    :func:`planned_names`), so the parameter server can look up each one's planned grid.
    """

    executor: GemmExecutor | None = None
    gemm_names: tuple[str, str, str] = ("linear.fwd", "linear.dx", "linear.dw")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.executor is None:
            return super().forward(x)
        flat = x.reshape(-1, self.in_features).contiguous()
        out = RemoteLinearFunction.apply(flat, self.weight, self.executor, self.gemm_names)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)


def attach_executor(model: torch.nn.Module, executor: GemmExecutor | None) -> int:
    """Route every :class:`TiledLinear` of ``model`` through ``executor`` (None: plain); returns how many."""
    layers = [m for m in model.modules() if isinstance(m, TiledLinear)]
    for layer in layers:
        layer.executor = executor
    return len(layers)


def planned_names(base: str, activation: str, weight: str) -> tuple[str, str, str]:
    """The planner's names for a Linear's three GEMMs: ``base.fwd``, ``base.d<a>``, ``base.d<b>``.

    Examples
    --------
    >>> planned_names("qkv", "x", "wqkv")
    ('qkv.fwd', 'qkv.dx', 'qkv.dwqkv')
    """
    return f"{base}.fwd", f"{base}.d{activation}", f"{base}.d{weight}"
