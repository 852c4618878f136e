"""Reproduce the PREREQ table on University and NPTEL beside every baseline (frugal prereq reproduce).

Usage: FRUGAL_DATA=../shared/data python benchmarks/prereq/reproduce.py [--quick]
Runs each data set in turn and writes benchmarks/results/prereq_<dataset>.json and .png, and the
merged benchmarks/results/prereq.json.
"""

import sys
from pathlib import Path

from frugalml.prereq.reproduce import combine, run

if __name__ == "__main__":
    results = Path(__file__).resolve().parents[1] / "results"
    quick = "--quick" in sys.argv
    parts = []
    for dataset in ("university", "nptel"):
        parts.append(results / f"prereq_{dataset}.json")
        run(
            json_path=parts[-1],
            datasets=(dataset,),
            topics=20 if quick else 100,
            em_iter=5 if quick else 100,
            steps=300 if quick else None,
            quiet=True,
        )
    combine(parts, results / "prereq.json")
