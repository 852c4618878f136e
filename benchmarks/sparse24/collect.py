"""Merge the sparse24 result files (CPU speed, quality, GPU if any) into
benchmarks/results/sparse24/summary.json."""

from __future__ import annotations

from pathlib import Path

from frugalml.sparse24.bench.reproduce import summary

RESULTS = Path(__file__).resolve().parents[1] / "results" / "sparse24"

if __name__ == "__main__":
    records = summary(RESULTS, RESULTS / "summary.json")
    print(f"{len(records)} records -> {RESULTS / 'summary.json'}")
