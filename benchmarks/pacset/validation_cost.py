"""The open-time checks of a packed file vs a cold single-row query on the >= 100 MB benchmark RF.

Usage: .venv/bin/python benchmarks/pacset/validation_cost.py  (a few minutes: fits a 64-tree RF
on 150k rows; writes benchmarks/results/pacset/validation-cost.json)
"""

from pathlib import Path

from frugalml.pacset.bench.validation import run_validation_cost

RESULTS = Path(__file__).resolve().parents[1] / "results" / "pacset" / "validation-cost.json"

if __name__ == "__main__":
    run_validation_cost(json_path=RESULTS)
