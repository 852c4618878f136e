"""Cutting a GEMM into output tiles (the contraction dimension is never split) and what each costs.

A GEMM ``C[m, n] = A[m, k] @ B[k, n]`` becomes a grid of tiles; tile ``(i, j)`` needs rows
``A[r0:r1, :]`` and columns ``B[:, c0:c1]`` downloaded and returns ``C[r0:r1, c0:c1]``. Costs are
in bytes and FLOPs, so the planner, the simulators and the runtime all count the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from frugalml.common.errors import InvalidInputError


@dataclass(frozen=True)
class Tile:
    """One output tile ``C[row_start:row_stop, col_start:col_stop]`` of a GEMM with depth ``k``."""

    row_start: int
    row_stop: int
    col_start: int
    col_stop: int
    k: int

    @property
    def rows(self) -> int:
        return self.row_stop - self.row_start

    @property
    def cols(self) -> int:
        return self.col_stop - self.col_start

    @property
    def flops(self) -> int:
        """Multiply-adds counted as two FLOPs."""
        return 2 * self.rows * self.cols * self.k

    def bytes_down(self, dtype_bytes: int = 4) -> int:
        """Bytes a device receives: its rows of A and its columns of B."""
        return (self.rows + self.cols) * self.k * dtype_bytes

    def bytes_up(self, dtype_bytes: int = 4) -> int:
        """Bytes a device returns: its block of C."""
        return self.rows * self.cols * dtype_bytes

    def memory(self, dtype_bytes: int = 4) -> int:
        """Working memory on the device: both inputs and the output block."""
        return self.bytes_down(dtype_bytes) + self.bytes_up(dtype_bytes)


def split_gemm(m: int, n: int, k: int, *, grid_rows: int, grid_cols: int) -> list[Tile]:
    """Split the ``m x n`` output of a depth-``k`` GEMM into a ``grid_rows x grid_cols`` grid.

    Edge tiles absorb the remainder (sizes differ by at most one row / column). Tiles are
    returned row-major, which is also the order results are accumulated in.

    Examples
    --------
    >>> [(t.rows, t.cols) for t in split_gemm(5, 4, 8, grid_rows=2, grid_cols=2)]
    [(3, 2), (3, 2), (2, 2), (2, 2)]
    """
    for name, value in (("m", m), ("n", n), ("k", k), ("grid_rows", grid_rows), ("grid_cols", grid_cols)):
        if value < 1:
            raise InvalidInputError(f"{name} must be a positive integer, got {value}")
    if grid_rows > m or grid_cols > n:
        raise InvalidInputError(
            f"a {grid_rows}x{grid_cols} grid is finer than the {m}x{n} output; use at most {m}x{n}"
        )
    row_edges = _edges(m, grid_rows)
    col_edges = _edges(n, grid_cols)
    return [
        Tile(r0, r1, c0, c1, k)
        for r0, r1 in zip(row_edges[:-1], row_edges[1:], strict=True)
        for c0, c1 in zip(col_edges[:-1], col_edges[1:], strict=True)
    ]


def _edges(size: int, parts: int) -> list[int]:
    base, extra = divmod(size, parts)
    edges = [0]
    for i in range(parts):
        edges.append(edges[-1] + base + (1 if i < extra else 0))
    return edges
