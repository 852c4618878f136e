"""Run pacset's benchmark and reproduction and write benchmarks/results/pacset*.json (+ PNG).

Usage: .venv/bin/python benchmarks/pacset/run.py [small|full|fresh|fresh-big]
(``fresh``: only the fresh-process cold-latency runs, merged into pacset.json; ``fresh-big``: only
their 50-500 MB XGBoost/LightGBM part)
"""

import sys
from pathlib import Path

from frugalml.pacset.benchmark import run_benchmark, run_fresh, run_reproduce

RESULTS = Path(__file__).resolve().parents[1] / "results"

if __name__ == "__main__":
    size = sys.argv[1] if len(sys.argv) > 1 else "full"
    if size == "fresh":
        run_fresh(json_path=RESULTS / "pacset.json")
    elif size == "fresh-big":
        run_fresh(json_path=RESULTS / "pacset.json", parts=("big",))
    else:
        run_benchmark(size=size, json_path=RESULTS / "pacset.json")
        run_reproduce(json_path=RESULTS / "pacset-reproduce.json")
        run_fresh(json_path=RESULTS / "pacset.json")
