"""How fast the models themselves run: the analytic sweep and the full discrete-event simulation."""

from __future__ import annotations

import time

from frugalml.cleave.bench.sweep import SweepRow, parse_counts, sweep
from frugalml.cleave.bench.workload import SYSTEM, Setup
from frugalml.cleave.des import SimConfig, simulate_step
from frugalml.cleave.planner import plan
from frugalml.common import env
from frugalml.common.report import Record

SWEEP_COUNTS = "16..4096"
SWEEP_TARGET_S = 10.0
DES_TARGET_S = 60.0


def timed_sweep(setup: Setup) -> tuple[list[SweepRow], Record]:
    """The analytic sweep over 16..4096 devices (plan + analytic + every baseline) and its wall time."""
    start = time.perf_counter()
    rows = sweep(setup.graph, parse_counts(SWEEP_COUNTS), setup.make, seed=setup.seed, quiet=setup.quiet)
    seconds = time.perf_counter() - start
    record = Record(
        SYSTEM,
        f"{setup.workload}, {SWEEP_COUNTS} devices ({len(rows)} counts), plan + analytic + 4 baselines",
        "analytic sweep wall time",
        "s",
        seconds,
        "target",
        SWEEP_TARGET_S,
        notes=f"target <= {SWEEP_TARGET_S:.0f} s; measured on {env.machine()}",
    )
    return rows, record


def des_speed_record(setup: Setup, devices: int) -> Record:
    """Wall time of one full DES step on ``devices`` devices (contention, churn, stragglers, backups)."""
    p = plan(setup.graph, setup.make(devices))
    start = time.perf_counter()
    sim = simulate_step(p, SimConfig(traces=setup.traces is not None))
    seconds = time.perf_counter() - start
    return Record(
        SYSTEM,
        f"{setup.model} {setup.batch}x{setup.seq}, {devices} devices, full DES (contention, "
        f"churn, "
        f"{'traces, ' if setup.traces is not None else ''}stragglers, backups)",
        "discrete-event simulation wall time",
        "s",
        seconds,
        "target",
        DES_TARGET_S,
        notes=f"{sim.events} events, {sim.tasks} tasks, simulated step {sim.seconds:.1f} s; "
        f"measured on {env.machine()}",
    )
