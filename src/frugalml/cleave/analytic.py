"""The analytic model of a planned step: exact pull-scheduled makespan per GEMM, no events.

Per GEMM, the eligible devices' pull periods and task latencies (pipelined tasks, trace-effective
links, optionally inflated for churn) give the pull schedule's finish time in closed form
(:func:`~frugalml.cleave.costmodel.pull_makespan`); the PS NIC adds a lower bound (all input bytes
out through its egress, all output bytes in through its ingress). With contention and churn off it is
exactly what the discrete-event simulator computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from frugalml.cleave.costmodel import pull_makespan
from frugalml.cleave.opgraph import OpGraph
from frugalml.cleave.planner import GemmPlan, Plan, device_task_seconds, setup_seconds


@dataclass
class StepEstimate:
    """One step's time, split into GEMM stages and PS ops, and each device's busy seconds."""

    seconds: float
    gemm_seconds: float
    ps_seconds: float
    stage_seconds: np.ndarray  # per GEMM plan, one occurrence (0 for GEMMs kept on the PS)
    busy: np.ndarray  # per device, whole step: from its first pull to its last task's end, per GEMM


def stage_ps_seconds(plan: Plan) -> np.ndarray:
    """PS-op time charged after each occurrence of each GEMM (layer ops spread over its GEMMs)."""
    n_layer = len(plan.graph.layer_gemms)
    n_head = len(plan.gemm_plans) - n_layer
    layer = [i < n_layer for i in range(len(plan.gemm_plans))]
    ops = np.array(
        [plan.ps_layer_seconds / n_layer if is_layer else plan.ps_head_seconds / n_head for is_layer in layer]
    )
    return ops + np.array([gp.seconds if gp.on_ps else 0.0 for gp in plan.gemm_plans])


def analytic_step(plan: Plan, *, contention: bool = True, churn: bool | None = None) -> StepEstimate:
    """Estimate one step of ``plan`` without simulating events.

    Parameters
    ----------
    contention : bool
        Apply the PS NIC bound (input bytes through the PS egress, output bytes through its ingress).
    churn : bool, optional
        Inflate task times for churn; defaults to what the plan assumed.
    """
    churn = plan.churn if churn is None else churn
    pool, eligible = plan.pool, plan.eligible()
    ps = stage_ps_seconds(plan)
    stages = np.empty(len(plan.gemm_plans))
    busy = np.zeros(len(pool))
    holders: dict[str, np.ndarray] = {}  # weight name -> devices that keep it (resident weights)
    for i, gp in enumerate(plan.gemm_plans):
        if gp.on_ps:
            stages[i] = 0.0
            continue
        devices = np.flatnonzero(eligible[i])
        period, latency = (a[devices] for a in device_task_seconds(pool, gp.cost, churn, gp.resident_bytes))
        setup = setup_seconds(pool, gp.resident_bytes, holders.get(gp.gemm.b))[devices]
        order = np.argsort(period, kind="stable")
        span, counts = pull_makespan(period[order], latency[order], setup[order], gp.grid.tasks)
        held = np.where(counts > 0, setup[order] + (counts - 1) * period[order] + latency[order], 0.0)
        busy[devices[order]] += gp.repeats * held
        if gp.resident_bytes:  # the devices that ran a task keep the weight for its backward
            holders[gp.gemm.b] = np.zeros(len(pool), dtype=bool)
            holders[gp.gemm.b][devices[order][counts > 0]] = True
        stages[i] = max(span, gp.ps_bound) if contention else span
    repeats = np.array([gp.repeats for gp in plan.gemm_plans])
    gemm_seconds = float((repeats * stages).sum())
    ps_seconds = float((repeats * ps).sum())
    return StepEstimate(gemm_seconds + ps_seconds, gemm_seconds, ps_seconds, stages, busy)


def step_floor(plan: Plan, *, contention: bool = True) -> float:
    """A lower bound on any schedule of ``plan``'s tiles, dataflow across micro-batches included: the
    largest of all tile outputs over every device's uplink at once, all tile inputs over every
    downlink (and through the PS egress, with ``contention``), all FLOPs on every device, and the PS
    ops run one at a time."""
    pool = plan.pool
    tiled = [gp for gp in plan.gemm_plans if not gp.on_ps]
    up = sum(gp.repeats * gp.grid.tasks * gp.cost.bytes_up for gp in tiled)
    down = sum(gp.repeats * gp.grid.tasks * gp.cost.bytes_down for gp in tiled)
    flops = sum(gp.repeats * gp.grid.tasks * gp.cost.flops for gp in tiled)
    ps = float(sum(gp.repeats * t for gp, t in zip(plan.gemm_plans, stage_ps_seconds(plan), strict=True)))
    links = [up / pool.effective_up.sum(), down / pool.effective_down.sum()]
    if contention:
        links += [down / pool.ps.egress, up / pool.ps.ingress]
    return float(max(*links, flops / pool.flops.sum(), ps))


def micro_batch_parts(gp: GemmPlan, graph: OpGraph) -> int:
    """Independent micro-batch groups in a GEMM's tiling: its tasks split into this many equal parts,
    each needing only its own micro-batches (tiles whose rows or products align with micro-batch
    boundaries); 1 when every tile needs the whole batch."""
    micro = graph.micro_batches
    if gp.on_ps:
        return micro
    if gp.gemm.batch % micro == 0:  # products grouped by sequence (attention) or micro-batch (dW)
        return math.gcd(gp.grid.batch_chunks, micro)
    if gp.gemm.m == graph.tokens and gp.grid.batch_chunks == 1:  # token rows
        return math.gcd(gp.grid.grid_rows, micro)
    return 1


def _fluid_seconds(period: np.ndarray, setup: np.ndarray, tasks: float) -> float:
    """When devices that each start after ``setup`` and then finish one task per ``period`` have
    done ``tasks`` tasks between them (the pull schedule without its first-task latency and tail)."""
    if tasks <= 0 or not len(period):
        return 0.0
    lo, hi = 0.0, float(np.max(setup) + tasks * np.min(period))
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if np.sum(np.maximum(mid - setup, 0.0) / period) >= tasks:
            hi = mid
        else:
            lo = mid
    return hi


@dataclass
class OverlapParts:
    """Per GEMM plan, what the overlapped schedule is built from (one occurrence each)."""

    lockstep: np.ndarray  # the lockstep stage (pull makespan or PS NIC bound)
    parts: np.ndarray  # independent micro-batch groups
    part: np.ndarray  # one group's tasks alone: pull makespan or its share of the PS NIC bound
    devices: np.ndarray  # all tasks at the eligible devices' pull rate (no first-task latency, no tail)
    egress: np.ndarray  # all input bytes (and resident weights) through the PS egress
    ingress: np.ndarray  # all output bytes through the PS ingress
    ps: np.ndarray  # PS op seconds after the occurrence
    rounds: np.ndarray  # tasks per eligible device (inf for a GEMM the PS keeps: no tail to hide)


def overlap_parts(plan: Plan, *, contention: bool = True, churn: bool | None = None) -> OverlapParts:
    """The per-GEMM quantities :func:`overlap_step` combines."""
    churn = plan.churn if churn is None else churn
    pool, eligible = plan.pool, plan.eligible()
    n = len(plan.gemm_plans)
    names = ("lockstep", "parts", "part", "devices", "egress", "ingress", "ps")
    out = OverlapParts(**{k: np.zeros(n) for k in names}, rounds=np.full(n, np.inf))
    out.ps[:] = stage_ps_seconds(plan)
    holders: dict[str, np.ndarray] = {}
    for i, gp in enumerate(plan.gemm_plans):
        out.parts[i] = micro_batch_parts(gp, plan.graph)
        if gp.on_ps:
            continue
        devices = np.flatnonzero(eligible[i])
        period, latency = (a[devices] for a in device_task_seconds(pool, gp.cost, churn, gp.resident_bytes))
        setup = setup_seconds(pool, gp.resident_bytes, holders.get(gp.gemm.b))[devices]
        order = np.argsort(period, kind="stable")
        period, latency, setup = period[order], latency[order], setup[order]
        span, counts = pull_makespan(period, latency, setup, gp.grid.tasks)
        size = gp.grid.tasks // int(out.parts[i])
        part, _ = pull_makespan(period, latency, setup, size)
        if gp.resident_bytes:
            holders[gp.gemm.b] = np.zeros(len(pool), dtype=bool)
            holders[gp.gemm.b][devices[order][counts > 0]] = True
        ok = np.isfinite(period)
        out.rounds[i] = gp.grid.tasks / max(1, int(ok.sum()))
        out.devices[i] = _fluid_seconds(period[ok], setup[ok], gp.grid.tasks)
        fetched = float(np.sum(setup[counts > 0] > 0)) * gp.resident_bytes
        if contention:
            out.egress[i] = (gp.grid.tasks * gp.cost.bytes_down + fetched) / pool.ps.egress
            out.ingress[i] = gp.grid.tasks * gp.cost.bytes_up / pool.ps.ingress
        out.lockstep[i] = max(span, gp.ps_bound) if contention else span
        out.part[i] = max(part, gp.ps_bound / out.parts[i]) if contention else part
    return out


TAIL_ROUNDS = 2.0  # fitted: how fast the exposed tail falls with the rounds of tasks per device


def overlap_step(plan: Plan, *, contention: bool = True, churn: bool | None = None) -> float:
    """Per-batch seconds of ``plan`` with GEMMs overlapped across layers and micro-batches (the
    discrete-event simulator's dataflow schedule, in closed form; a simulator option: the networked
    runtime runs lockstep).

    A micro-batch group's next GEMM starts once its own inputs are done and the PS has run their
    ops, so other groups' tiles (and with them the next layer's weight tiles) keep the devices busy
    through a GEMM's tail. Each GEMM occurrence then costs what its binding resource needs (every
    tile at the eligible devices' pull rate, every input byte through the PS egress, or every
    output byte through its ingress) plus the part of its lockstep tail (last tasks, first-task
    latency, PS ops) that the next GEMM's work cannot fill: ``h = 1/q + (1 - 1/q) / (1 + 2 r)``
    with ``q`` independent micro-batch groups and ``r`` tasks per eligible device (groups finish
    spread over the GEMM only when devices pull several rounds; the 2 is fitted to the simulator,
    :data:`TAIL_ROUNDS`). The step's last GEMM drains in full. The result is never below any
    resource's total over the step (each PS NIC direction, the devices' pull rate, the PS ops run
    one at a time), nor below one group's chain of GEMMs (dependencies within a micro-batch are
    kept), nor above lockstep. Weight gradients are still summed over every micro-batch before the
    update, so training stays exactly synchronous. With one micro-batch (``q = 1``) it is exactly
    the lockstep step.
    """
    x = overlap_parts(plan, contention=contention, churn=churn)
    index = {gp.gemm.name: i for i, gp in enumerate(plan.gemm_plans)}
    occ = np.array([index[name] for name, _ in plan.graph.schedule()], dtype=np.int64)
    binding = np.maximum(np.maximum(x.devices, x.egress), x.ingress)
    tail = np.maximum(x.lockstep - binding, 0.0) + x.ps
    exposed = 1.0 / x.parts + (1.0 - 1.0 / x.parts) / (1.0 + TAIL_ROUNDS * x.rounds)
    seconds = float(np.sum(binding[occ] + exposed[occ] * tail[occ]))
    last = occ[-1]
    seconds += float((1.0 - exposed[last]) * tail[last])  # the last GEMM drains alone
    floors = [float(np.sum(a[occ])) for a in (x.devices, x.egress, x.ingress, x.ps)]
    chain = float(np.sum(x.part[occ] + x.ps[occ] / x.parts[occ]))
    lockstep = float(np.sum(x.lockstep[occ] + x.ps[occ]))
    return min(lockstep, max(seconds, chain, *floors))
