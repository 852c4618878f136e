"""GEMMs of a Linear layer sent to an executor as output tiles: grid choice and the autograd Function."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from frugalml.cleave.tiling import Tile
from frugalml.common.errors import InvalidInputError


class GemmExecutor(Protocol):
    """Anything that computes ``a @ b`` for numpy matrices (the parameter server's scheduler)."""

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray: ...


def choose_grid(
    m: int, n: int, k: int, *, tiles: int, max_memory: int | None = None, dtype_bytes: int = 4
) -> tuple[int, int]:
    """The ``(grid_rows, grid_cols)`` with at least ``tiles`` tiles that moves the fewest bytes.

    Among grids with ``grid_rows * grid_cols >= tiles`` (as close to ``tiles`` as possible), pick
    the one minimising total downlink ``(m * grid_cols + n * grid_rows) * k``; if a tile would not
    fit ``max_memory`` bytes, ask for more tiles until it does.

    Raises
    ------
    InvalidInputError
        Not even the finest grid (one element per tile) fits ``max_memory``.

    Examples
    --------
    >>> choose_grid(256, 64, 64, tiles=4)
    (4, 1)
    """
    if tiles < 1:
        raise InvalidInputError(f"tiles must be at least 1, got {tiles}")
    if max_memory is not None and smallest_tile_memory(k, dtype_bytes) > max_memory:
        raise InvalidInputError(
            f"no tile of a depth-{k} GEMM fits {max_memory} bytes (the smallest needs "
            f"{smallest_tile_memory(k, dtype_bytes)}); use devices with more memory"
        )
    target = min(tiles, m * n)
    while True:
        best: tuple[int, int, int] | None = None
        for rows in range(1, min(m, target) + 1):
            cols = -(-target // rows)
            if cols > n:
                continue
            cost = (m * cols + n * rows) * k
            memory = (-(-m // rows) + -(-n // cols)) * k + -(-m // rows) * -(-n // cols)
            fits = max_memory is None or memory * dtype_bytes <= max_memory
            key = (rows * cols, cost, rows)
            if fits and (best is None or key < best):
                best = key
        if best is not None:
            return best[2], best[0] // best[2]
        target += 1


def smallest_tile_memory(k: int, dtype_bytes: int = 4) -> int:
    """Bytes a device needs for a 1 x 1 output tile of a depth-``k`` GEMM."""
    return Tile(0, 1, 0, 1, k).memory(dtype_bytes)


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
