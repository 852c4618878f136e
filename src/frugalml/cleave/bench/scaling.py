"""How far adding devices keeps paying off for Cleave and every baseline; where Cleave meets the cloud."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from frugalml.cleave.baselines import BASELINES
from frugalml.cleave.bench.sweep import SweepRow, devices_until_flat, plot_sweep, sweep, write_sweep_csv
from frugalml.cleave.bench.workload import SYSTEM, Setup
from frugalml.common.report import Record

SWEEP_CSV, SWEEP_PNG = "device-sweep.csv", "device-sweep.png"  # beside the claims JSON


def extend_sweep(
    setup: Setup, rows: list[SweepRow], counts: list[int], out_dir: str | Path | None
) -> list[SweepRow]:
    """``rows`` plus the counts above their last one; written as CSV + PNG into ``out_dir`` when given."""
    more = [c for c in counts if c > rows[-1].devices] if rows else counts
    rows = rows + sweep(setup.graph, more, setup.make, seed=setup.seed, quiet=setup.quiet)
    if out_dir is not None:
        out = Path(out_dir)
        write_sweep_csv(rows, out / SWEEP_CSV)
        plot_sweep(rows, out / SWEEP_PNG, f"{setup.model}, batch {setup.batch}x{setup.seq}")
    return rows


def scaling_records(setup: Setup, rows: list[SweepRow], best: tuple[str, ...]) -> list[Record]:
    """Devices until the per-batch time stops falling: Cleave against each baseline that runs.

    ``best`` names the baselines that were best on the main pool (noted in their records).
    """
    xs = [r.devices for r in rows]
    cleave_flat = devices_until_flat(xs, [r.cleave for r in rows])
    records = []
    for b in BASELINES:
        if not any(np.isfinite(r.baselines[b]) for r in rows):
            continue
        base_flat = devices_until_flat(xs, [r.baselines[b] for r in rows])
        best_note = f"best baseline at {setup.devices}, " if b in best else ""
        records.append(
            Record(
                SYSTEM,
                f"{setup.workload}, {xs[0]}..{xs[-1]} devices",
                "devices until per-batch time stops falling (>2% below every smaller count)",
                "devices",
                cleave_flat,
                f"{b} ({best_note}closed form)",
                base_flat,
                higher_is_better=True,
                notes=f"target: ratio >= 8 vs the best baseline; analytic sweep; {xs[-1]} (the "
                "sweep's end) means still improving there, a lower bound",
            )
        )
    return records


def cloud_match_record(setup: Setup, rows: list[SweepRow]) -> Record:
    """The smallest device count at which Cleave's analytic step is no slower than the cloud's."""
    matches = [r.devices for r in rows if r.cleave <= r.cloud]
    best_row = min(rows, key=lambda r: r.cleave)
    return Record(
        SYSTEM,
        setup.workload,
        "devices at which Cleave matches the cloud reference",
        "devices",
        float(matches[0]) if matches else float("nan"),
        notes=("" if matches else "nan: not reached in the sweep; ")
        + f"fastest Cleave in the sweep: {best_row.cleave:.0f} s at {best_row.devices} "
        f"devices vs cloud {best_row.cloud:.2f} s",
    )
