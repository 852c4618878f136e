"""Search efficiency on the tabular benchmark: our GP-BO vs Optuna TPE, random and evolution.

Same table, same budget (until the top-1 is found), 20 seeds each; writes report records to
``benchmarks/results/composer/search-efficiency.json`` (keeping aggregators.py's records) and the
regret curves to ``search-efficiency.png`` beside it. The evaluations on fresh engine seeds, never
used to choose BO's defaults, are ``frugal composer compare`` runs recorded beside it:

    python benchmarks/composer/bench.py [--seeds 20] [--engines bo,bo-hamming,tpe,random,evolution]
    frugal composer compare --table AM_6 --seeds 100 --first-seed 1000 \
        --json benchmarks/results/composer/fresh-am-6.json --plot benchmarks/results/composer/fresh-am-6.png
    frugal composer compare --table AM_6_5seeds --seeds 100 --first-seed 1000 \
        --json benchmarks/results/composer/fresh-am-6-5seeds.json \
        --plot benchmarks/results/composer/fresh-am-6-5seeds.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from frugalml.composer.bench.engines import search_efficiency

RESULTS = Path(__file__).resolve().parents[1] / "results" / "composer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--engines", default="bo,bo-hamming,tpe,random,evolution")
    parser.add_argument("--table", default="AM_6", help="A built-in table name or a table JSON.")
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()
    search_efficiency(
        args.engines,
        args.seeds,
        args.table,
        RESULTS / "search-efficiency.json",
        RESULTS / "search-efficiency.png",
        first_seed=args.first_seed,
    )


if __name__ == "__main__":
    main()
