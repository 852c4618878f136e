"""Cleave's cost model: task times on each device, the pull-scheduling makespan, and the LP.

A task moves ``bytes_down`` over the device's downlink, computes ``flops``, and returns
``bytes_up`` over its uplink. A device overlaps consecutive tasks (download the next while
computing this one and uploading the last), so a task's latency is ``down / B_down + flops / F +
up / B_up + rtt`` but the device takes a new task every ``max(down / B_down, flops / F, up /
B_up)`` seconds (its period), as far as its memory holds ``depth`` tiles at once (at most 3: one
per stage; a device that holds one tile runs tasks back to back). Both are inflated by
``1 / (1 - p)`` where ``p`` is the chance the device leaves during a task (churn). A GEMM's tasks
sit in one queue that devices pull from at their period; :func:`pull_makespan` is the exact
finish time of that schedule, and :func:`solve_assignment` the LP (scipy HiGHS) that distributes
tiles over device groups under the PS egress and ingress limits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from frugalml.cleave.devices import TASKS_IN_FLIGHT
from frugalml.cleave.opgraph import Gemm
from frugalml.cleave.tiling import TaskCost, TileGrid, best_grid, grid_cost
from frugalml.common.errors import InvalidInputError

MAX_CHURN_LOSS = 0.9
PIPELINE_DEPTH = TASKS_IN_FLIGHT


def pipeline_depth(
    tile_memory: float, memory: np.ndarray, resident: float = 0.0, limit: int = PIPELINE_DEPTH
) -> np.ndarray:
    """Tiles a device holds at once: ``(memory - resident) // tile_memory`` capped at ``limit``
    (the pool's ``tasks_in_flight``; 0: the tile does not fit); ``resident`` is a weight kept on the
    device."""
    free = np.maximum(np.asarray(memory, dtype=float) - resident, 0.0)
    return np.minimum(np.floor_divide(free, tile_memory), limit).astype(np.int64)


def task_timing(
    cost: TaskCost,
    flops: np.ndarray,
    down: np.ndarray,
    up: np.ndarray,
    rtt: np.ndarray,
    memory: np.ndarray,
    resident: float = 0.0,
    limit: int = PIPELINE_DEPTH,
) -> tuple[np.ndarray, np.ndarray]:
    """Per device: the period between task pulls and one task's latency (``inf`` when no tile fits).

    The period is the slowest stage (download, compute, upload), or ``latency / depth`` when the
    device's memory holds fewer tiles than would keep every stage busy, so a device never has more
    than ``depth`` tasks in flight and pipelined tasks never wait for each other. ``resident``
    bytes (a whole weight the device keeps, see :func:`resident_cost`) are not counted per task
    but take memory; ``limit`` caps the tasks in flight (the pool's ``tasks_in_flight``).
    """
    d, c, u = cost.bytes_down / down, cost.flops / flops, cost.bytes_up / up
    latency = d + c + u + rtt
    depth = pipeline_depth(cost.memory, memory, resident, limit)
    with np.errstate(divide="ignore"):
        period = np.maximum(np.maximum(np.maximum(d, c), u), latency / depth)
    period = np.where(depth >= 1, period, np.inf)
    return period, np.where(depth >= 1, latency, np.inf)


def churn_inflation(seconds: np.ndarray, mean_session: np.ndarray) -> np.ndarray:
    """``1 / (1 - p)`` with ``p`` the chance a device's session ends during a task of ``seconds``.

    Sessions are Weibull; for a device found available at a random time, the chance of leaving in
    the next ``t`` seconds is about ``t / mean_session`` (capped at 0.9 so a task stays finite).
    """
    p = np.minimum(seconds / mean_session, MAX_CHURN_LOSS)
    return 1.0 / (1.0 - p)


def task_counts(limit: int) -> list[int]:
    """Candidate task counts: 1, 2, 3, 4, 6, 8, 12, ... up to ``limit``."""
    out, p = [], 1
    while p <= limit:
        out.append(p)
        if 3 * p // 2 > p and 3 * p // 2 <= limit:
            out.append(3 * p // 2)
        p *= 2
    return sorted(set(out))


def candidate_grids(gemm: Gemm, max_tasks: int) -> list[TileGrid]:
    """The best grid for each candidate task count up to ``max_tasks`` (see
    :func:`~frugalml.cleave.tiling.best_grid`, the rule the runtime cuts by too; for a fused FFN
    task, every (row blocks x column chunks))."""
    limit = min(max_tasks, gemm.batch * gemm.m * gemm.n)
    if gemm.fused:  # every (row blocks x column chunks): which is best depends on the links
        return [g for p in task_counts(limit) for g in _fused_grids(gemm, p)]
    grids = (best_grid(gemm.m, gemm.n, gemm.k, gemm.batch, p) for p in task_counts(limit))
    return [g for g in grids if g is not None]


def _fused_grids(gemm: Gemm, tasks: int) -> list[TileGrid]:
    """Every (row blocks x column chunks) of ``tasks`` fused FFN tasks that fits the FFN."""
    divisors = {d for i in range(1, int(tasks**0.5) + 1) if tasks % i == 0 for d in (i, tasks // i)}
    return [TileGrid(r, tasks // r, 1) for r in sorted(divisors) if r <= gemm.m and tasks // r <= gemm.n]


def fused_ffn_cost(gemm: Gemm, grid: TileGrid, dtype_bytes: int) -> TaskCost:
    """Per-task cost of the column-then-row FFN split (Megatron's tensor-parallel FFN as pulled tasks).

    A task takes ``rows = m / grid_rows`` tokens and FFN columns ``cols = n / grid_cols``: the
    up projection's column chunk (``k x cols``, two for a gated FFN) and the down projection's row
    chunk (``cols x k``). Forward: the input rows and both chunks come down, the device applies the
    activation and returns a partial output (``rows x k``) that the PS adds over the column chunks.
    Backward: the input and output-gradient rows and both chunks come down, the device recomputes
    the chunk's activation and returns a partial input gradient (``rows x k``) and both weight
    chunks' gradients for its rows (the PS adds them over the row blocks). Exact: only sums are
    split, in a fixed order on the PS.
    """
    rows, cols, k = gemm.m / grid.grid_rows, gemm.n / grid.grid_cols, gemm.k
    big_rows, big_cols = -(-gemm.m // grid.grid_rows), -(-gemm.n // grid.grid_cols)
    ups = 2 if gemm.gated else 1
    weights = (ups + 1) * k * cols
    if gemm.fused == "ffn_fwd":
        down, up = rows * k + weights, rows * k
        work = big_rows * k + (ups + 1) * k * big_cols + (ups + 1) * big_rows * big_cols + big_rows * k
    else:
        down, up = 2 * rows * k + weights, rows * k + weights
        work = 3 * big_rows * k + 2 * (ups + 1) * k * big_cols + (ups + 2) * big_rows * big_cols
    return TaskCost(
        grid.tasks,
        gemm.flops / grid.tasks,
        down * dtype_bytes,
        up * dtype_bytes,
        int(work * dtype_bytes),
    )


def gemm_cost(gemm: Gemm, grid: TileGrid, dtype_bytes: int) -> TaskCost:
    if gemm.fused:
        return fused_ffn_cost(gemm, grid, dtype_bytes)
    return grid_cost(gemm.m, gemm.n, gemm.k, grid, batch=gemm.batch, dtype_bytes=dtype_bytes)


def resident_cost(gemm: Gemm, rows: int, dtype_bytes: int) -> tuple[TaskCost, float]:
    """Per-task cost of a weight GEMM cut into ``rows`` row blocks whose devices keep the WHOLE weight.

    Each task then downloads only its activation rows; the weight (``n * k`` elements, returned as
    the second value) is downloaded once per device and reused for all its tasks of this GEMM and
    of the backward GEMM that needs the same whole weight (``dX = dY W^T``), the only way a tile of
    one can serve the other without splitting a contraction dimension.
    """
    full = grid_cost(gemm.m, gemm.n, gemm.k, TileGrid(rows, 1, 1), dtype_bytes=dtype_bytes)
    weight = float(gemm.n * gemm.k * dtype_bytes)
    big_rows = -(-gemm.m // rows)
    return (
        TaskCost(
            rows,
            full.flops,
            full.bytes_down - weight,
            full.bytes_up,
            big_rows * (gemm.k + gemm.n) * dtype_bytes,
        ),
        weight,
    )


@numba.njit(cache=True)
def pull_makespan(
    period: np.ndarray, latency: np.ndarray, offset: np.ndarray, n: int
) -> tuple[float, np.ndarray]:
    """Finish time of ``n`` equal tasks pulled by devices (sorted by ``period``, ascending).

    Device ``i`` pulls its first task at 0 and its ``j``-th (``j = 1, 2, ...``) at ``offset[i] +
    j * period[i]`` (``offset``: a one-off download, e.g. of a weight it keeps, taken with the
    first task); a task ends ``latency[i]`` after its pull, plus ``offset[i]`` for
    the first. Pulls at the same moment go fastest device first. Returns the makespan and the
    tasks per device. This is the discrete-event simulator's schedule without contention, churn or
    backups.
    """
    d = len(period)
    off = offset
    counts = np.zeros(d, dtype=np.int64)
    if n <= 0 or d == 0:
        return 0.0, counts
    if n <= d:
        counts[:n] = 1
        return np.max(latency[:n] + off[:n]), counts
    lo, hi = 0.0, n * period[0] + np.max(off)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        c = 0
        for i in range(d):
            c += 1 + max(0, int(np.floor((mid - off[i]) / period[i])))
        if c >= n:
            hi = mid
        else:
            lo = mid
    used = 0
    for i in range(d):
        counts[i] = 1 + max(0, int(np.floor((lo - off[i]) / period[i])))
        used += counts[i]
    nxt = off + counts * period
    order = np.argsort(nxt, kind="mergesort")
    for j in range(n - used):
        counts[order[j]] += 1
    makespan = 0.0
    for i in range(d):
        end = off[i] + (counts[i] - 1) * period[i] + latency[i]
        if counts[i] > 0 and end > makespan:
            makespan = end
    return makespan, counts


@numba.njit(cache=True)
def group_makespans(
    t: np.ndarray, latency: np.ndarray, offset: np.ndarray, size: np.ndarray, n: np.ndarray
) -> np.ndarray:
    """:func:`pull_makespan` for groups of identical devices, for every (grid, prefix) at once.

    ``t[g, c]`` / ``latency[g, c]`` / ``offset[g, c]``: period, task latency and one-off first-task
    download of group ``c`` (groups sorted by period per grid, ``inf`` when the group cannot run
    the tile); ``size[g, c]`` devices per group in the same order; ``n[g]`` tasks of grid ``g``.
    Returns ``out[g, p]``: the makespan of grid ``g`` using only the ``p + 1`` fastest groups.
    """
    grids, groups = t.shape
    out = np.full((grids, groups), np.inf)
    for g in range(grids):
        for p in range(groups):
            if not np.isfinite(t[g, p]):
                break
            total = 0
            for c in range(p + 1):
                total += size[g, c]
            if n[g] <= total:
                need, c, span = n[g], 0, latency[g, 0] + offset[g, 0]
                while need > size[g, c]:
                    need -= size[g, c]
                    c += 1
                    span = max(span, latency[g, c] + offset[g, c])
                out[g, p] = span
                continue
            lo, hi = 0.0, n[g] * t[g, 0] / size[g, 0] + np.max(offset[g, : p + 1])
            for _ in range(100):
                mid = 0.5 * (lo + hi)
                if mid <= lo or mid >= hi:
                    break
                cnt = 0
                for c in range(p + 1):
                    cnt += size[g, c] * (1 + max(0.0, np.floor((mid - offset[g, c]) / t[g, c])))
                if cnt >= n[g]:
                    hi = mid
                else:
                    lo = mid
            span = 0.0
            for c in range(p + 1):  # each group's last pull by the n-th pull ends a latency later
                last = max(0.0, np.floor((hi - offset[g, c]) / t[g, c]))
                span = max(span, offset[g, c] + last * t[g, c] + latency[g, c])
            out[g, p] = span
    return out


@dataclass(frozen=True)
class Assignment:
    """LP result: tiles per group for each GEMM, each GEMM's fluid time, and their weighted sum."""

    tiles: np.ndarray  # (gemms, groups)
    seconds: np.ndarray  # (gemms,)
    total_seconds: float


def solve_assignment(
    tasks: np.ndarray,
    task_time: np.ndarray,
    group_size: np.ndarray,
    bytes_down: np.ndarray,
    ps_egress: float,
    repeats: np.ndarray,
    bytes_up: np.ndarray | None = None,
    ps_ingress: float = np.inf,
) -> Assignment:
    """The LP: split each GEMM's tiles over device groups to minimise the step's GEMM time.

    Variables ``x[g, c]`` (tiles of GEMM ``g`` on group ``c``) and ``T[g]``. Minimise
    ``sum_g repeats[g] * T[g]`` subject to ``sum_c x[g, c] = tasks[g]`` (all work assigned),
    ``task_time[g, c] * x[g, c] <= group_size[c] * T[g]`` (each device's share fits in the GEMM's
    time), ``bytes_down[g] * sum_c x[g, c] <= ps_egress * T[g]`` and ``bytes_up[g] * sum_c x[g, c]
    <= ps_ingress * T[g]`` (the PS NIC, both directions), and ``x[g, c] = 0``
    where ``task_time`` is infinite (tile does not fit the group's memory, or group not chosen).
    Solved with scipy's HiGHS.

    Raises
    ------
    InvalidInputError
        A GEMM no group can run.
    """
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    gemms, groups = task_time.shape
    ok = np.isfinite(task_time)
    bad = np.flatnonzero(~ok.any(axis=1))
    if len(bad):
        raise InvalidInputError(
            f"GEMM #{bad[0]} cannot run on any device group (no tile fits); "
            "add devices with more memory or allow finer tiles"
        )
    gi, ci = np.nonzero(ok)
    nx = len(gi)
    cost = np.concatenate([np.zeros(nx), repeats.astype(float)])
    eq = coo_matrix((np.ones(nx), (gi, np.arange(nx))), shape=(gemms, nx + gemms))
    # one NIC row per GEMM: the tighter of egress (bytes down) and ingress (bytes up)
    nic = (
        bytes_down / ps_egress
        if bytes_up is None
        else np.maximum(bytes_down / ps_egress, bytes_up / ps_ingress)
    )
    rows = np.concatenate([np.arange(nx), np.arange(nx), nx + gi, nx + np.arange(gemms)])
    cols = np.concatenate([np.arange(nx), nx + gi, np.arange(nx), nx + np.arange(gemms)])
    vals = np.concatenate([task_time[gi, ci], -group_size[ci].astype(float), nic[gi], -np.ones(gemms)])
    ub = coo_matrix((vals, (rows, cols)), shape=(nx + gemms, nx + gemms))
    res = linprog(
        cost,
        A_ub=ub.tocsr(),
        b_ub=np.zeros(nx + gemms),
        A_eq=eq.tocsr(),
        b_eq=tasks.astype(float),
        bounds=(0, None),
        method="highs",
    )
    if res.status != 0:
        raise InvalidInputError(f"the assignment LP failed: {res.message}")
    tiles = np.zeros((gemms, groups))
    tiles[gi, ci] = res.x[:nx]
    return Assignment(tiles, res.x[nx:], float(res.fun))


def fluid_seconds(
    tasks: float,
    task_time: np.ndarray,
    group_size: np.ndarray,
    bytes_down: float,
    ps_egress: float,
    bytes_up: float = 0.0,
    ps_ingress: float = np.inf,
) -> float:
    """The LP optimum for one GEMM in closed form: work over total rate, or a PS NIC bound."""
    rate = np.sum(group_size[np.isfinite(task_time)] / task_time[np.isfinite(task_time)])
    return max(tasks / rate, tasks * bytes_down / ps_egress, tasks * bytes_up / ps_ingress)
