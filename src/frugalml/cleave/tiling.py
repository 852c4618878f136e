"""Cutting a GEMM into output tiles (the contraction dimension is never split) and what each costs.

A GEMM ``C[m, n] = A[m, k] @ B[k, n]`` becomes a grid of tiles; tile ``(i, j)`` needs rows
``A[r0:r1, :]`` and columns ``B[:, c0:c1]`` downloaded and returns ``C[r0:r1, c0:c1]``. Costs are
in bytes and FLOPs, so the planner, the simulators and the runtime all count the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

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


@dataclass(frozen=True)
class TileGrid:
    """How one (batched) GEMM is cut: ``batch_chunks`` groups of its independent products, each
    product's output on a ``grid_rows x grid_cols`` grid. One task = one chunk x one tile."""

    grid_rows: int = 1
    grid_cols: int = 1
    batch_chunks: int = 1

    @property
    def tasks(self) -> int:
        return self.grid_rows * self.grid_cols * self.batch_chunks

    def __str__(self) -> str:
        chunks = f"{self.batch_chunks}x" if self.batch_chunks > 1 else ""
        return f"{chunks}{self.grid_rows}x{self.grid_cols}"


@dataclass(frozen=True)
class TaskCost:
    """Cost of one task of a tiled GEMM: mean FLOPs and bytes (totals are exact), largest memory."""

    tasks: int
    flops: float
    bytes_down: float
    bytes_up: float
    memory: int


def grid_cost(m: int, n: int, k: int, grid: TileGrid, *, batch: int = 1, dtype_bytes: int = 2) -> TaskCost:
    """Per-task cost of ``batch`` products ``[m, k] @ [k, n]`` cut by ``grid``.

    ``tasks * flops`` equals the untiled FLOPs and ``tasks * bytes_up`` the output bytes exactly;
    ``tasks * bytes_down`` is ``batch * (m * grid_cols + n * grid_rows) * k * dtype_bytes``, the
    price of not splitting the contraction dimension (inputs are re-sent to every tile that needs
    them). ``memory`` is the largest tile's working set.

    Raises
    ------
    InvalidInputError
        A grid finer than the output or the batch.
    """
    if (
        grid.grid_rows > m
        or grid.grid_cols > n
        or grid.batch_chunks > batch
        or min(grid.grid_rows, grid.grid_cols, grid.batch_chunks) < 1
    ):
        raise InvalidInputError(
            f"grid {grid} does not fit a batch of {batch} products of {m}x{n}; use at most {batch}x{m}x{n}"
        )
    rows, cols, chunk = m / grid.grid_rows, n / grid.grid_cols, batch / grid.batch_chunks
    big_rows, big_cols = -(-m // grid.grid_rows), -(-n // grid.grid_cols)
    big_chunk = -(-batch // grid.batch_chunks)
    memory = big_chunk * (big_rows * k + k * big_cols + big_rows * big_cols) * dtype_bytes
    return TaskCost(
        grid.tasks,
        2.0 * chunk * rows * cols * k,
        chunk * (rows + cols) * k * dtype_bytes,
        chunk * rows * cols * dtype_bytes,
        memory,
    )


@lru_cache(maxsize=4096)
def best_grid(m: int, n: int, k: int, batch: int, tasks: int) -> TileGrid | None:
    """The cheapest way to cut a GEMM into exactly ``tasks`` tasks, or None when impossible.

    For a fixed task count every cut gives the same FLOPs and output bytes per task, so the one
    that sends the fewest input bytes is best on every device and for the PS: split the batch of
    independent products first (no input is re-sent), then the output grid by bytes (ties: the
    squarer tile).

    Examples
    --------
    >>> str(best_grid(256, 64, 64, 1, 4))
    '4x1'
    """
    best, best_key = None, None
    for chunks in _divisors(tasks):
        if chunks > batch:
            continue
        rest = tasks // chunks
        for rows in _divisors(rest):
            cols = rest // rows
            if rows > m or cols > n:
                continue
            key = ((batch / chunks) * (m / rows + n / cols), abs(m / rows - n / cols))
            if best_key is None or key < best_key:
                best, best_key = TileGrid(rows, cols, chunks), key
    return best


def _divisors(x: int) -> list[int]:
    return (
        [d for d in range(1, x + 1) if x % d == 0]
        if x < 64
        else sorted({d for i in range(1, int(x**0.5) + 1) if x % i == 0 for d in (i, x // i)})
    )


def smallest_tile_memory(k: int, dtype_bytes: int = 4) -> int:
    """Bytes a device needs for a 1 x 1 output tile of a depth-``k`` GEMM."""
    return Tile(0, 1, 0, 1, k).memory(dtype_bytes)


def choose_grid(
    m: int,
    n: int,
    k: int,
    *,
    tiles: int,
    batch: int = 1,
    max_memory: int | None = None,
    dtype_bytes: int = 4,
) -> TileGrid:
    """The grid with the fewest tasks, at least ``tiles``, whose tiles fit ``max_memory`` bytes.

    Each task count is cut by :func:`best_grid` (fewest input bytes), the same rule the planner
    uses for every count it tries, so a grid the planner wrote down is the grid the runtime cuts.

    Raises
    ------
    InvalidInputError
        ``tiles`` below 1, or not even the finest grid (one element per tile) fits ``max_memory``.

    Examples
    --------
    >>> str(choose_grid(256, 64, 64, tiles=4))
    '4x1'
    >>> str(choose_grid(5, 5, 8, tiles=7))
    '2x4'
    """
    if tiles < 1:
        raise InvalidInputError(f"tiles must be at least 1, got {tiles}")
    if max_memory is not None and smallest_tile_memory(k, dtype_bytes) > max_memory:
        raise InvalidInputError(
            f"no tile of a depth-{k} GEMM fits {max_memory} bytes (the smallest needs "
            f"{smallest_tile_memory(k, dtype_bytes)}); use devices with more memory"
        )
    for tasks in range(min(tiles, batch * m * n), batch * m * n + 1):
        grid = best_grid(m, n, k, batch, tasks)
        if grid is None:
            continue
        cost = grid_cost(m, n, k, grid, batch=batch, dtype_bytes=dtype_bytes)
        if max_memory is None or cost.memory <= max_memory:
            return grid
    raise InvalidInputError(f"no grid of a {batch}x{m}x{n}x{k} GEMM fits {max_memory} bytes per tile")
