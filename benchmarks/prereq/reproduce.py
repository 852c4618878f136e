"""Reproduce the PREREQ table on University and NPTEL beside every baseline (frugal prereq reproduce).

Usage: FRUGAL_DATA=../shared/data python benchmarks/prereq/reproduce.py [--quick]
Runs each data set in turn and writes benchmarks/results/prereq/reproduce-<dataset>.json and .png,
and the merged benchmarks/results/prereq/reproduce.json.
"""

import sys
from pathlib import Path

from frugalml.prereq.bench.reproduce import run_each

if __name__ == "__main__":
    run_each(Path(__file__).resolve().parents[1] / "results" / "prereq", quick="--quick" in sys.argv)
