"""Run pacset's benchmark and reproduction; write benchmarks/results/pacset/<claim>.json (+ PNG).

Usage: .venv/bin/python benchmarks/pacset/run.py [small|full|fresh|fresh-big]
(``fresh``: only the fresh-process cold-latency runs, merged into cold-queries.json; ``fresh-big``:
only their 50-500 MB XGBoost/LightGBM part)
"""

import argparse
from pathlib import Path

from frugalml.pacset.bench.fresh import run_fresh
from frugalml.pacset.bench.latency import run_benchmark
from frugalml.pacset.bench.reproduce import run_reproduce

RESULTS = Path(__file__).resolve().parents[1] / "results" / "pacset"
COLD = RESULTS / "cold-queries.json"
LAYOUTS = RESULTS / "layouts-vs-paper.json"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", nargs="?", default="full", choices=["small", "full", "fresh", "fresh-big"])
    size = parser.parse_args().size
    if size == "fresh":
        run_fresh(json_path=COLD)
    elif size == "fresh-big":
        run_fresh(json_path=COLD, parts=("big",))
    else:
        run_benchmark(size=size, json_path=COLD)
        run_reproduce(json_path=LAYOUTS)
        run_fresh(json_path=COLD)
