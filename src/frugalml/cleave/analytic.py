"""The analytic model of a planned step: exact pull-scheduled makespan per GEMM, no events.

Per GEMM, the eligible devices' pull periods and task latencies (pipelined tasks, trace-effective
links, optionally inflated for churn) give the pull schedule's finish time in closed form
(:func:`~frugalml.cleave.costmodel.pull_makespan`); the PS NIC adds a lower bound (all input bytes
out through its egress, all output bytes in through its ingress). With contention and churn off it is
exactly what the discrete-event simulator computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frugalml.cleave.costmodel import pull_makespan
from frugalml.cleave.planner import Plan, device_task_seconds, setup_seconds


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
