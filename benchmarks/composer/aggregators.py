"""Aggregator ablation on the tabular benchmark: N0, N1, Nall against best-single.

For each seed a search (``--engine``, ``--budget`` evaluations) runs on the table; each method
aggregates that search's history into one architecture, whose table score and rank (1 = top-1 of
the whole space) are recorded; also each method over the full table. Merges the records into
``benchmarks/results/composer/search-efficiency.json`` (replacing earlier aggregator records,
keeping the others).

    python benchmarks/composer/aggregators.py [--seeds 20] [--budget 16] [--engine bo]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from frugalml.common.report import print_table
from frugalml.composer.bench.aggregators import aggregator_records, write_aggregator_records

RESULTS = Path(__file__).resolve().parents[1] / "results" / "composer" / "search-efficiency.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--engine", default="bo")
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    records = aggregator_records(args.engine, args.budget, args.seeds, args.k)
    print_table(records, "aggregator ablation")
    write_aggregator_records(records, RESULTS)


if __name__ == "__main__":
    main()
