"""The Cleave planner: tile grid per GEMM, which devices pull it, the LP work split, and why.

Devices are grouped by class and speed (quantile bins), so the search scales to 10,000 devices.
For every GEMM the planner tries the best grid for each task count (1, 2, 3, 4, 6, 8, ... up to
16 tasks per device) and, for weight GEMMs, row blocks whose devices keep the whole weight (fetched
once, reused by the backward dX of the same layer), adds device groups fastest first while the
GEMM's pull-scheduled time keeps falling (greedy selection), and keeps the fastest (grid, groups);
then, per device, keeps the first devices by task latency or pull period when that is faster than
whole groups (a group is as slow as its slowest member; a device on a bad link would finish last).
The LP (scipy HiGHS) then splits each GEMM's tiles over the chosen groups under the PS egress and
ingress limits; :meth:`Plan.explain`
says why each group was used or dropped.

Example
-------
>>> from frugalml.cleave import build_graph, load_model, make_pool, plan
>>> p = plan(build_graph(load_model("opt-1.3b"), batch=8, seq=512), make_pool(64, seed=0))
>>> p.batch_seconds > 0
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from frugalml.cleave.costmodel import (
    Assignment,
    candidate_grids,
    churn_inflation,
    gemm_cost,
    group_makespans,
    pull_makespan,
    resident_cost,
    solve_assignment,
    task_counts,
    task_timing,
)
from frugalml.cleave.devices import GB, Pool
from frugalml.cleave.models import ModelSpec
from frugalml.cleave.opgraph import Gemm, OpGraph, build_graph, default_micro_batch
from frugalml.cleave.tiling import TaskCost, TileGrid
from frugalml.common.errors import InvalidInputError

TASKS_PER_DEVICE = 16


@dataclass(frozen=True)
class DeviceGroups:
    """Devices binned by class and speed: ``group_of[d]``, and per group its class and label."""

    group_of: np.ndarray
    group_class: np.ndarray
    labels: tuple[str, ...]

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.group_of, minlength=len(self.labels))


def group_devices(pool: Pool, bins: int = 4) -> DeviceGroups:
    """Split each class into up to ``bins`` speed quantiles (by FLOP/s times effective downlink)."""
    score = np.log(pool.flops) + np.log(pool.effective_down)
    group_of = np.empty(len(pool), dtype=np.int64)
    group_class: list[int] = []
    labels: list[str] = []
    for ci, cls in enumerate(pool.classes):
        members = np.flatnonzero(pool.class_index == ci)
        if not len(members):
            continue
        parts = min(bins, len(members))
        order = members[np.argsort(score[members], kind="stable")[::-1]]
        for b, chunk in enumerate(np.array_split(order, parts)):
            group_of[chunk] = len(labels)
            group_class.append(ci)
            labels.append(f"{cls.name}#{b + 1}" if parts > 1 else cls.name)
    return DeviceGroups(group_of, np.array(group_class), tuple(labels))


@dataclass
class GemmPlan:
    """How one GEMM runs: its grid, the groups that pull its tiles, and its planned seconds."""

    gemm: Gemm
    repeats: int
    grid: TileGrid
    cost: TaskCost
    groups: np.ndarray  # indices of the groups allowed to pull this GEMM's tiles
    seconds: float  # planned pull-scheduled time, or the PS NIC bound when larger
    ps_bound: float  # the PS NIC's floor: all tiles' input bytes out, or output bytes in
    dropped: dict[int, str] = field(default_factory=dict)
    on_ps: bool = False  # below the split threshold: the PS computes it, no tasks
    resident_bytes: float = 0.0  # > 0: devices keep this whole weight (downloaded once, see resident_cost)
    devices: np.ndarray | None = None  # which devices pull its tiles (bool per device); None: all of groups


@dataclass
class Plan:
    """A training step planned over a pool; ``batch_seconds`` is the planner's estimate."""

    graph: OpGraph
    pool: Pool
    groups: DeviceGroups
    gemm_plans: list[GemmPlan]
    assignment: Assignment
    ps_layer_seconds: float
    ps_head_seconds: float
    churn: bool

    @property
    def gemm_seconds(self) -> float:
        return sum(gp.repeats * gp.seconds for gp in self.gemm_plans if not gp.on_ps)

    @property
    def ps_seconds(self) -> float:
        """Non-GEMM ops plus the small GEMMs the PS keeps."""
        kept = sum(gp.repeats * gp.seconds for gp in self.gemm_plans if gp.on_ps)
        return self.graph.model.layers * self.ps_layer_seconds + self.ps_head_seconds + kept

    @property
    def batch_seconds(self) -> float:
        return self.gemm_seconds + self.ps_seconds

    def used_groups(self) -> np.ndarray:
        used = np.zeros(len(self.groups.labels), dtype=bool)
        for gp in self.gemm_plans:
            used[gp.groups] = True
        return used

    def used_devices(self) -> np.ndarray:
        return np.asarray(self.eligible().any(axis=0))

    def eligible(self) -> np.ndarray:
        """``eligible[g, d]``: device ``d`` may pull tiles of GEMM plan ``g``."""
        allowed = np.zeros((len(self.gemm_plans), len(self.groups.labels)), dtype=bool)
        for i, gp in enumerate(self.gemm_plans):
            allowed[i, gp.groups] = True
        allowed = allowed[:, self.groups.group_of]
        for i, gp in enumerate(self.gemm_plans):
            if gp.devices is not None:
                allowed[i] = gp.devices
        return allowed

    def to_dict(self) -> dict:
        return {
            "model": self.graph.model.name,
            "batch": self.graph.batch,
            "seq": self.graph.seq,
            "micro_batches": self.graph.micro_batches,
            "micro_batch_tokens": self.graph.micro_tokens,
            "devices": len(self.pool),
            "devices_used": int(self.used_devices().sum()),
            "batch_seconds": self.batch_seconds,
            "lp_gemm_seconds": self.assignment.total_seconds,
            "ps_seconds": self.ps_seconds,
            "gemms": [
                {
                    "name": gp.gemm.name,
                    "repeats": gp.repeats,
                    "grid": str(gp.grid),
                    "tasks": gp.grid.tasks,
                    "seconds": gp.seconds,
                    "ps_bound_seconds": gp.ps_bound,
                    "mb_down_per_task": gp.cost.bytes_down / 1e6,
                    "mb_up_per_task": gp.cost.bytes_up / 1e6,
                    "tile_memory_mb": gp.cost.memory / 1e6,
                    "on_ps": gp.on_ps,
                    "resident_weight_mb": gp.resident_bytes / 1e6,
                    "groups": [self.groups.labels[g] for g in gp.groups],
                }
                for gp in self.gemm_plans
            ],
        }

    def explain(self) -> str:
        """Why each device group was chosen or dropped, and what each GEMM costs."""
        g, pool = self.groups, self.pool
        sizes = g.sizes
        lines = [
            f"plan for {self.graph.model.name}, batch {self.graph.batch} x {self.graph.seq} tokens "
            f"on {pool.summary()}",
            f"  {self.graph.micro_batches} micro-batch(es) of {self.graph.micro_tokens} tokens in "
            "lockstep (weight gradients summed on the PS)",
            f"  planned batch time {self.batch_seconds:.1f} s (GEMMs {self.gemm_seconds:.1f} s, "
            f"PS ops {self.ps_seconds:.1f} s; LP fluid bound on GEMMs "
            f"{self.assignment.total_seconds:.1f} s)",
            f"  PS egress {pool.ps.egress / 1e9:.1f} GB/s ({pool.ps.shards} shard(s) x "
            f"{pool.ps.nic_gbps:g} Gbit/s)",
            "",
            "device groups:",
        ]
        tiles = self.assignment.tiles
        repeats = np.array([gp.repeats for gp in self.gemm_plans if not gp.on_ps])
        share = (tiles * repeats[:, None]).sum(axis=0)
        share = share / share.sum() if share.sum() else share
        for c, label in enumerate(g.labels):
            members = g.group_of == c
            cls = pool.classes[g.group_class[c]]
            spec = (
                f"{sizes[c]} x {label}: {pool.flops[members].mean() / 1e12:.2f} TFLOP/s eff, "
                f"{pool.down[members].mean() * 8 / 1e6:.0f}/{pool.up[members].mean() * 8 / 1e6:.0f} "
                f"Mbit/s, {cls.memory_gb:g} GB"
            )
            used_in = [gp.gemm.name for gp in self.gemm_plans if c in gp.groups]
            if used_in:
                lines.append(
                    f"  chosen  {spec}; pulls {len(used_in)}/{len(self.gemm_plans)} GEMMs, "
                    f"{100 * share[c]:.1f}% of tiles (LP)"
                )
            else:
                reasons = sorted({gp.dropped.get(c, "not needed") for gp in self.gemm_plans})
                lines.append(
                    f"  dropped {spec}; {reasons[0]}"
                    + (f" (+{len(reasons) - 1} other reasons)" if len(reasons) > 1 else "")
                )
        lines += ["", "GEMMs (per occurrence):"]
        for gp in self.gemm_plans:
            if gp.on_ps:
                lines.append(
                    f"  {gp.gemm.name:<16} x{gp.repeats:<3} kept on the PS ({gp.gemm.batch} "
                    f"products of "
                    f"{gp.gemm.flops / gp.gemm.batch / 1e9:.2f} GFLOP, below the split threshold), "
                    f"{gp.seconds:9.3f} s"
                )
                continue
            bound = " [PS NIC bound]" if gp.ps_bound >= gp.seconds else ""
            partial = [f"{g.labels[c]}: {why}" for c, why in gp.dropped.items() if "memory" not in why]
            pulling = int(gp.devices.sum()) if gp.devices is not None else int(sizes[gp.groups].sum())
            lines.append(
                f"  {gp.gemm.name:<16} x{gp.repeats:<3} grid {str(gp.grid):<11} "
                f"{gp.grid.tasks:>6} tasks on {pulling:>5} devices, "
                f"{gp.cost.bytes_down / 1e6:8.2f} MB down / "
                f"{gp.cost.bytes_up / 1e6:7.2f} MB up / {gp.cost.memory / 1e6:8.1f} MB per task, "
                f"{gp.seconds:9.3f} s{bound}"
                + (f"; left out {partial[0]}" if partial else "")
                + (
                    f"; devices keep the whole {gp.gemm.b} ({gp.resident_bytes / 1e6:.0f} MB)"
                    if gp.resident_bytes
                    else ""
                )
            )
        return "\n".join(lines)


def device_task_seconds(
    pool: Pool, cost: TaskCost, churn: bool, resident: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Every device's pull period and task latency (trace-effective links, pipelined tasks; ``inf``
    where the tile does not fit), both inflated for churn if asked."""
    period, latency = task_timing(
        cost,
        pool.flops,
        pool.effective_down,
        pool.effective_up,
        pool.rtt,
        pool.memory,
        resident,
        pool.tasks_in_flight,
    )
    if not churn:
        return period, latency
    inflate = churn_inflation(latency, pool.mean_session())
    return period * inflate, latency * inflate


def ps_bound(cost: TaskCost, pool: Pool, setup_bytes: float = 0.0) -> float:
    """The PS NIC's floor for one GEMM: every tile's inputs (plus resident weights sent to devices)
    out, or every output tile in."""
    return max(
        (cost.tasks * cost.bytes_down + setup_bytes) / pool.ps.egress,
        cost.tasks * cost.bytes_up / pool.ps.ingress,
    )


def setup_seconds(pool: Pool, resident: float, cached: np.ndarray | None) -> np.ndarray:
    """Per device: the one-off download of a resident weight (0 where the device already holds it)."""
    setup = resident / pool.effective_down
    return setup if cached is None else np.where(cached, 0.0, setup)


def _plan_gemm(
    gemm: Gemm,
    repeats: int,
    dtype_bytes: int,
    pool: Pool,
    groups: DeviceGroups,
    churn: bool,
    cached: np.ndarray | None = None,
    resident_weights: bool = True,
) -> GemmPlan:
    sizes = groups.sizes
    limit = TASKS_PER_DEVICE * len(pool)
    grids = candidate_grids(gemm, limit)
    costs = [gemm_cost(gemm, grid, dtype_bytes) for grid in grids]
    resident = [0.0] * len(grids)
    if resident_weights and gemm.weight_operand and gemm.batch == 1:  # or keep the whole weight on devices
        for rows in task_counts(min(limit, gemm.m)):
            cost, weight = resident_cost(gemm, rows, dtype_bytes)
            grids.append(TileGrid(rows, 1, 1))
            costs.append(cost)
            resident.append(weight)
    group_mem = np.array([pool.classes[c].memory_gb * GB for c in groups.group_class])
    t_group = np.empty((len(grids), len(sizes)))
    lat_group = np.empty((len(grids), len(sizes)))
    off_group = np.empty((len(grids), len(sizes)))
    for i, cost in enumerate(costs):  # a group is as fast as its slowest member (pull tails)
        period, latency = device_task_seconds(pool, cost, churn, resident[i])
        slowest, slowest_lat, slowest_off = (np.full(len(sizes), -np.inf) for _ in range(3))
        np.maximum.at(slowest, groups.group_of, period)
        np.maximum.at(slowest_lat, groups.group_of, latency)
        np.maximum.at(slowest_off, groups.group_of, setup_seconds(pool, resident[i], cached))
        t_group[i] = np.where(group_mem >= cost.memory, slowest, np.inf)
        lat_group[i] = np.where(group_mem >= cost.memory, slowest_lat, np.inf)
        off_group[i] = slowest_off
    fits = np.isfinite(t_group).any(axis=1)
    if not fits.any():
        finest = min(costs, key=lambda c: c.memory)
        raise InvalidInputError(
            f"no device in the pool can hold a tile of GEMM {gemm.name} ({gemm.batch}x{gemm.m}x{gemm.n}"
            f"x{gemm.k}): the smallest tile tried needs {finest.memory / 1e6:.1f} MB, the largest device "
            f"memory is {group_mem.max() / 1e6:.1f} MB; add devices with more memory or a shorter sequence"
        )
    order = np.argsort(t_group, axis=1, kind="stable")
    t_sorted = np.take_along_axis(t_group, order, axis=1)
    spans = group_makespans(
        t_sorted,
        np.take_along_axis(lat_group, order, axis=1),
        np.take_along_axis(off_group, order, axis=1),
        sizes[order],
        np.array([c.tasks for c in costs], dtype=np.int64),
    )
    # Greedy selection: add the next fastest group until the GEMM's time rises; keep the best prefix.
    with np.errstate(invalid="ignore"):
        rising = ~(spans[:, 1:] <= spans[:, :-1] * (1 + 1e-12))
    first_rise = rising.argmax(axis=1) if rising.shape[1] else np.zeros(len(grids), dtype=np.int64)
    stop = np.where(rising.any(axis=1), first_rise, spans.shape[1] - 1)
    scanned = np.where(np.arange(spans.shape[1])[None, :] <= stop[:, None], spans, np.inf)
    prefix = np.argmin(scanned, axis=1)
    fetchers = len(pool) - (0 if cached is None else int(cached.sum()))  # devices that may fetch a weight
    nic = np.array(
        [ps_bound(c, pool, w * min(c.tasks, fetchers)) for c, w in zip(costs, resident, strict=True)]
    )
    best_span = spans[np.arange(len(grids)), prefix]
    total = np.maximum(best_span, nic)
    total[~fits] = np.inf
    g = int(np.argmin(total))
    chosen = order[g, : prefix[g] + 1]
    dropped = {}
    for c in range(len(sizes)):
        if c in chosen:
            continue
        pos = int(np.flatnonzero(order[g] == c)[0])
        if not np.isfinite(t_group[g, c]):
            dropped[c] = (
                f"memory: a {gemm.name} tile needs {costs[g].memory / 1e6:.0f} MB > "
                f"{group_mem[c] / 1e6:.0f} MB"
            )
        elif pos <= stop[g]:
            dropped[c] = (
                f"not needed: faster devices already take all {costs[g].tasks} tiles of {gemm.name} at once"
            )
        else:
            dropped[c] = (
                f"slower: adding it would take {gemm.name} from {best_span[g]:.3g} s to "
                f"{spans[g, pos]:.3g} s (its tiles would finish last)"
            )
    return GemmPlan(
        gemm,
        repeats,
        grids[g],
        costs[g],
        np.sort(chosen),
        float(total[g]),
        float(nic[g]),
        dropped,
        resident_bytes=resident[g],
    )


def pull_schedule(
    period: np.ndarray, latency: np.ndarray, setup: np.ndarray, devices: np.ndarray, tasks: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """The pull schedule of ``tasks`` tiles over ``devices`` (indices): makespan, the devices sorted
    by period, and each one's task count (:func:`~frugalml.cleave.costmodel.pull_makespan`)."""
    order = devices[np.argsort(period[devices], kind="stable")]
    span, counts = pull_makespan(period[order], latency[order], setup[order], tasks)
    return float(span), order, counts


SELECTION_PREFIXES = 24


def select_devices(plans: list[GemmPlan], pool: Pool, groups: DeviceGroups, churn: bool) -> list[GemmPlan]:
    """Per GEMM, the devices that pull its tiles: the chosen groups, or, when faster, the first ``k``
    devices that can hold a tile ranked by task latency (first task included) or by pull period.

    A device whose single task ends after everyone else's work would finish last, so greedy selection
    per device drops exactly the outliers a group hides (a device on a mostly-down link). ``k`` runs
    over :data:`SELECTION_PREFIXES` geometric steps. GEMMs go in step order, so a backward finds the
    resident weight on the devices that ran its forward.
    """
    holders: dict[str, np.ndarray] = {}
    out = []
    for gp in plans:
        if gp.on_ps:
            out.append(gp)
            continue
        period, latency = device_task_seconds(pool, gp.cost, churn, gp.resident_bytes)
        setup = setup_seconds(pool, gp.resident_bytes, holders.get(gp.gemm.b))
        fits = np.flatnonzero(np.isfinite(period))
        grouped = np.flatnonzero(np.isin(groups.group_of, gp.groups) & np.isfinite(period))
        best = pull_schedule(period, latency, setup, grouped, gp.grid.tasks)
        steps = np.unique(np.geomspace(1, len(fits), SELECTION_PREFIXES).astype(np.int64))
        for key in (latency + setup, period):
            ranked = fits[np.argsort(key[fits], kind="stable")]
            for k in steps:
                trial = pull_schedule(period, latency, setup, ranked[:k], gp.grid.tasks)
                if trial[0] < best[0]:
                    best = trial
        span, order, counts = best
        mask = np.zeros(len(pool), dtype=bool)
        mask[order] = True
        if gp.resident_bytes:  # the devices that ran a task keep the weight (as the simulators do)
            holders[gp.gemm.b] = np.zeros(len(pool), dtype=bool)
            holders[gp.gemm.b][order[counts > 0]] = True
        out.append(
            replace(gp, devices=mask, seconds=max(span, gp.ps_bound), groups=np.unique(groups.group_of[mask]))
        )
    return out


def _kept_on_ps(gemm: Gemm, repeats: int, dtype_bytes: int, ps_flops: float) -> GemmPlan:
    grid = TileGrid(1, 1, 1)
    return GemmPlan(
        gemm,
        repeats,
        grid,
        gemm_cost(gemm, TileGrid(1, 1, gemm.batch), dtype_bytes),
        np.zeros(0, dtype=np.int64),
        gemm.flops / ps_flops,
        0.0,
        on_ps=True,
    )


def plan(
    graph: OpGraph,
    pool: Pool,
    *,
    churn: bool = True,
    bins: int = 4,
    split_threshold: float = 1e10,
    resident_weights: bool = True,
) -> Plan:
    """Plan one training step of ``graph`` on ``pool``.

    Parameters
    ----------
    churn : bool
        Inflate task times for the chance that devices leave mid-task (Weibull sessions).
    bins : int
        Speed bins per device class (groups the planner reasons about).
    split_threshold : float
        Batched GEMMs whose single products have fewer FLOPs than this (per-head attention) stay
        on the PS ("selective" splitting); every other GEMM is tiled.
    resident_weights : bool
        Let devices keep a whole weight between tasks (false for the networked runtime, whose
        workers keep nothing between tasks).

    Raises
    ------
    InvalidInputError
        Some GEMM has no tile that fits any device's memory (message names the GEMM and sizes).
    """
    if len(pool) < 1:
        raise InvalidInputError("the pool has no devices")
    if split_threshold < 0:
        raise InvalidInputError(f"split_threshold must be >= 0, got {split_threshold}")
    groups = group_devices(pool, bins)
    ps_flops = pool.ps.tflops * 1e12
    small = lambda g: g.batch > 1 and not g.partial_sums and g.flops / g.batch < split_threshold  # noqa: E731
    plans: list[GemmPlan] = []
    holders: dict[str, np.ndarray] = {}
    for g, r in graph.gemms():  # in step order: a backward dX finds the weight its forward left
        if small(g):
            plans.append(_kept_on_ps(g, r, graph.dtype_bytes, ps_flops))
            continue
        gp = _plan_gemm(g, r, graph.dtype_bytes, pool, groups, churn, holders.get(g.b), resident_weights)
        if gp.resident_bytes:
            holders[g.b] = np.isin(groups.group_of, gp.groups)
        plans.append(gp)
    plans = select_devices(plans, pool, groups, churn)
    sizes = groups.sizes
    tiled = [gp for gp in plans if not gp.on_ps]
    task_time = np.full((len(tiled), len(sizes)), np.inf)
    for i, gp in enumerate(tiled):
        rate = np.bincount(
            groups.group_of,
            weights=1.0 / device_task_seconds(pool, gp.cost, churn, gp.resident_bytes)[0],
            minlength=len(sizes),
        )
        task_time[i, gp.groups] = sizes[gp.groups] / rate[gp.groups]
    assignment = solve_assignment(
        np.array([gp.grid.tasks for gp in tiled]),
        task_time,
        sizes,
        np.array([gp.cost.bytes_down for gp in tiled]),
        pool.ps.egress,
        np.array([gp.repeats for gp in tiled]),
        np.array([gp.cost.bytes_up for gp in tiled]),
        pool.ps.ingress,
    )
    ps_layer, ps_head = graph.ps_seconds(pool.ps.mem_bandwidth_gbs * 1e9, pool.ps.tflops * 1e12)
    return Plan(graph, pool, groups, plans, assignment, ps_layer, ps_head, churn)


OVERLAP_TOKENS = (2048, 4096, 8192, 16384, 32768, 65536)  # micro-batch sizes worth trying with overlap


def micro_batch_candidates(
    batch: int, seq: int, tokens: tuple[int, ...] = (4096, 8192, 16384, 32768, 65536)
) -> list[int]:
    """Sequences per micro-batch worth trying: divisors of ``batch`` near each token count, and
    the whole batch (no accumulation)."""
    return sorted({default_micro_batch(batch, seq, t) for t in tokens} | {batch})


def plan_micro_batch(
    model: ModelSpec,
    batch: int,
    seq: int,
    pool: Pool,
    *,
    micro_batches: list[int] | None = None,
    dtype_bytes: int = 2,
    ffn_split: bool = False,
    key: Callable[[Plan], float] | None = None,
    **options,
) -> Plan:
    """The fastest plan over micro-batch sizes (sequences per micro-batch; default
    :func:`micro_batch_candidates`), by ``key`` (default: the planned lockstep step,
    :attr:`Plan.batch_seconds`); ``options`` go to :func:`plan`.

    Smaller micro-batches make every weight-gradient tile download less (its contraction is one
    micro-batch's tokens) but upload, and the PS add up, one gradient part per micro-batch.
    """
    candidates = micro_batches or micro_batch_candidates(batch, seq)
    plans = [
        plan(
            build_graph(model, batch, seq, dtype_bytes, micro_batch=mb, ffn_split=ffn_split), pool, **options
        )
        for mb in candidates
    ]
    return min(plans, key=key or (lambda p: p.batch_seconds))
