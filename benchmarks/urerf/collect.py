"""Merge the urerf_*.json result files into benchmarks/results/urerf.json and draw urerf.png."""

from __future__ import annotations

import sys
from pathlib import Path

from frugalml.common.report import Record, read_json, save_plot, write_json
from frugalml.urerf.cli import bench_plot


def main(folder: str) -> None:
    out = Path(folder)
    records = []
    for part in sorted(out.glob("urerf_*.json")):
        for row in read_json(part):
            row.pop("ratio", None)
            records.append(Record(**row))
    write_json(records, out / "urerf.json")
    save_plot(bench_plot(records), out / "urerf.png")
    print(f"{len(records)} records -> {out / 'urerf.json'}, {out / 'urerf.png'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results")
