"""Merge every claim file of a results folder into one summary (JSON records and a ratio chart)."""

from __future__ import annotations

from pathlib import Path

from frugalml.common.report import read_records, save_plot, write_json
from frugalml.urerf.bench.speed import bench_plot

SUMMARY = "summary.json"


def collect(folder: str | Path) -> tuple[int, Path]:
    """Write ``folder/summary.json`` and ``summary.png`` from the folder's other claim files.

    Run caches (``*-runs.json``) are skipped; returns (number of records, summary path).
    """
    out = Path(folder)
    records = []
    for part in sorted(out.glob("*.json")):
        if part.name == SUMMARY or part.name.endswith("-runs.json"):
            continue
        records += read_records(part)
    write_json(records, out / SUMMARY)
    save_plot(bench_plot(records), (out / SUMMARY).with_suffix(".png"))
    return len(records), out / SUMMARY
