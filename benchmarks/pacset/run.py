"""Run pacset's benchmark and reproduction and write benchmarks/results/pacset*.json (+ PNG).

Usage: .venv/bin/python benchmarks/pacset/run.py [small|full]
"""

import sys
from pathlib import Path

from frugalml.pacset.benchmark import run_benchmark, run_reproduce

RESULTS = Path(__file__).resolve().parents[1] / "results"

if __name__ == "__main__":
    size = sys.argv[1] if len(sys.argv) > 1 else "full"
    run_benchmark(size=size, json_path=RESULTS / "pacset.json")
    run_reproduce(json_path=RESULTS / "pacset-reproduce.json")
