"""The papers' claims as measured ratios (``frugal cleave reproduce``): one step per claim.

Every number comes from the planner, the analytic model, the discrete-event simulator and the
baselines on the same pools and links; nothing here is hard-coded.
"""

from __future__ import annotations

from pathlib import Path

from frugalml.cleave.bench import energy, recovery, scaling, simspeed, speedup
from frugalml.cleave.bench.sweep import parse_counts
from frugalml.cleave.bench.workload import Setup
from frugalml.cleave.traces import TraceSet
from frugalml.common.report import Record

SCALING_COUNTS = "16..65536"


def reproduce(
    *,
    model: str = "opt-13b",
    batch: int = 512,
    seq: int = 1024,
    devices: int = 1024,
    counts: list[int] | None = None,
    des_devices: int = 10000,
    traces: TraceSet | None = None,
    seed: int = 0,
    quiet: bool = True,
    out_dir: str | Path | None = None,
) -> list[Record]:
    """Measure the claims: speed-up over the edge baselines, scaling, recovery, simulator speed, energy.

    Returns records (ratio > 1 means Cleave is better); with ``out_dir`` the device sweep is also
    written there as CSV + PNG.
    """
    setup = Setup.build(model, batch, seq, devices, seed=seed, traces=traces, quiet=quiet)
    rows, sweep_time = simspeed.timed_sweep(setup)
    cmp = speedup.compare(setup)
    records = [
        sweep_time,
        *speedup.micro_batch_records(setup, cmp),
        *speedup.baseline_records(setup, cmp),
        *speedup.bound_records(setup, cmp),
        speedup.cloud_record(setup, cmp),
        *speedup.batch_records(setup),
        *speedup.link_records(setup),
    ]
    rows = scaling.extend_sweep(setup, rows, counts or parse_counts(SCALING_COUNTS), out_dir)
    records += scaling.scaling_records(setup, rows, best=(cmp.best_by_des, cmp.best_by_analytic))
    records.append(scaling.cloud_match_record(setup, rows))
    records += recovery.recovery_records(setup, cmp)
    records.append(simspeed.des_speed_record(setup, des_devices))
    records.append(energy.energy_record(setup, cmp))
    return records
