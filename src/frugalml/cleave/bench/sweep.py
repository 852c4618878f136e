"""Per-batch time against device count for Cleave and every baseline (``frugal cleave sweep``)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frugalml.cleave.analytic import analytic_step
from frugalml.cleave.baselines import BASELINES, cloud, run_baselines
from frugalml.cleave.devices import MAX_DEVICES, Pool
from frugalml.cleave.opgraph import OpGraph
from frugalml.cleave.planner import plan
from frugalml.common.errors import InvalidInputError
from frugalml.common.files import atomic_write
from frugalml.common.parsing import comma_list
from frugalml.common.progress import progress
from frugalml.common.report import new_figure, save_plot

_COUNTS_HELP = "device counts {text!r} must look like 16..4096, 16,64,256 or 1024 (positive, increasing)"


def _check_largest(count: int) -> None:
    if count > MAX_DEVICES:
        raise InvalidInputError(f"device counts go up to {MAX_DEVICES:,}, got {count:,}")


def parse_counts(text: str) -> list[int]:
    """``"16..4096"`` (powers of two between, and the end), ``"16,64,256"``, or one number.

    Examples
    --------
    >>> parse_counts("16..100"), parse_counts("16, 64"), parse_counts("1024")
    ([16, 32, 64, 100], [16, 64], [1024])
    """
    if ".." in text:
        try:
            lo, hi = (int(x) for x in text.split(".."))
        except ValueError:
            raise InvalidInputError(_COUNTS_HELP.format(text=text)) from None
        if lo < 1 or hi < lo:
            raise InvalidInputError(_COUNTS_HELP.format(text=text))
        _check_largest(hi)
        counts, n = [], lo
        while n <= hi:
            counts.append(n)
            n *= 2
        return counts if counts[-1] == hi else [*counts, hi]
    try:
        counts = comma_list(text, int, name="device count", non_empty=True)
    except InvalidInputError:
        raise InvalidInputError(_COUNTS_HELP.format(text=text)) from None
    if any(c < 1 for c in counts):
        raise InvalidInputError(f"device counts must be positive, got {text!r}")
    _check_largest(max(counts))
    return counts


@dataclass
class SweepRow:
    """Per-batch seconds at one device count: Cleave (planned and analytic) and every baseline."""

    devices: int
    cleave_planned: float
    cleave: float
    baselines: dict[str, float]
    cloud: float

    def best_baseline(self) -> tuple[str, float]:
        name = min(self.baselines, key=lambda b: self.baselines[b])
        return name, self.baselines[name]


def sweep(
    graph: OpGraph,
    counts: list[int],
    make: Callable[[int], Pool],
    *,
    churn: bool = False,
    seed: int = 0,
    cloud_gpus: int = 64,
    quiet: bool = True,
) -> list[SweepRow]:
    """Per-batch time against device count; ``make(n)`` draws the pool of ``n`` devices."""
    reference = cloud(graph, cloud_gpus).seconds
    rows = []
    for n in progress(counts, desc="sweep", quiet=quiet):
        pool = make(n)
        p = plan(graph, pool, churn=churn)
        base = run_baselines(graph, pool, seed)
        rows.append(
            SweepRow(
                n,
                p.batch_seconds,
                analytic_step(p).seconds,
                {k: v.seconds for k, v in base.items()},
                reference,
            )
        )
    return rows


def write_sweep_csv(rows: list[SweepRow], path: str | Path) -> Path:
    """One line per device count: Cleave (analytic, planned), every baseline, the cloud reference."""
    with atomic_write(path, "w") as f:
        w = csv.writer(f)
        w.writerow(["devices", "cleave_analytic_s", "cleave_planned_s", *BASELINES, "cloud_s"])
        for r in rows:
            w.writerow(
                [
                    r.devices,
                    f"{r.cleave:.6g}",
                    f"{r.cleave_planned:.6g}",
                    *(f"{r.baselines[b]:.6g}" for b in BASELINES),
                    f"{r.cloud:.6g}",
                ]
            )
    return Path(path)


def plot_sweep(rows: list[SweepRow], path: str | Path, title: str) -> Path:
    """Seconds per batch against devices (log-log), one line per system, the cloud as a floor."""
    fig, ax = new_figure(figsize=(7, 4.5))
    x = [r.devices for r in rows]
    ax.plot(x, [r.cleave for r in rows], "o-", lw=2, label="Cleave (analytic)")
    for b in BASELINES:
        y = [r.baselines[b] for r in rows]
        if np.isfinite(y).any():
            ax.plot(x, y, ".--", label=b)
    ax.axhline(rows[0].cloud, color="k", lw=1, ls=":", label="cloud reference")
    ax.set(xscale="log", yscale="log", xlabel="devices", ylabel="seconds per batch", title=title)
    ax.legend(fontsize=8)
    return save_plot(fig, path)


def devices_until_flat(counts: list[int], seconds: list[float], tolerance: float = 0.02) -> int:
    """The largest device count whose per-batch time is more than ``tolerance`` below the best time
    at every smaller count (0 when none runs): where adding devices last paid off in the sweep. A
    bump (one count slower than the one before) does not end the scaling if later counts are faster.

    Examples
    --------
    >>> devices_until_flat([16, 32, 64], [10.0, 5.0, 4.99])
    32
    """
    best, last = np.inf, 0
    for count, value in zip(counts, seconds, strict=True):
        if np.isfinite(value) and value < best * (1 - tolerance):
            last = count
        best = min(best, value)
    return last
