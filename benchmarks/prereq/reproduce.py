"""Reproduce the PREREQ table on University and NPTEL beside every baseline (frugal prereq reproduce).

Usage: FRUGAL_DATA=../shared/data python benchmarks/prereq/reproduce.py [--quick]
Writes benchmarks/results/prereq.json and prereq.png.
"""

import sys
from pathlib import Path

from frugalml.prereq.reproduce import run

if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "results" / "prereq.json"
    quick = "--quick" in sys.argv
    run(json_path=out, topics=20 if quick else 100, em_iter=5 if quick else 100,
        steps=300 if quick else 3500, quiet=True)
