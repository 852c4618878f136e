"""Ablation of our GP-BO on the tabular benchmark: kernel x acquisition x initial design, many seeds.

Each variant ``KERNEL:ACQUISITION:INITIAL`` (or ``random``) searches the table until it evaluates
the top-1 architecture; jobs run in a process pool. Writes one record per variant against random
(with every seed's evaluations-to-top-1) to ``benchmarks/results/composer/<out>.json`` (default
``bo-ablation-<table>``, e.g. ``bo-ablation-am-6``) and prints medians (seeds split into two
halves, so a choice made on one half can be checked on the other).

    python benchmarks/composer/bo_ablation.py --seeds 0 40 --workers 12 [--table AM_6_5seeds] \
        --variants random hamming:log-ei:4 mixed:thompson:2 ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from frugalml.common.report import write_json
from frugalml.composer.bench.bo_ablation import (
    ablation_records,
    default_variants,
    run_ablation,
    summarise,
    summary_line,
)

RESULTS = Path(__file__).resolve().parents[1] / "results" / "composer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs=2, default=[0, 40], metavar=("FIRST", "END"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=default_variants())
    parser.add_argument("--table", default="AM_6", help="A built-in table name or a table JSON.")
    parser.add_argument("--out", default=None, help="Result name (default bo-ablation-<table>).")
    args = parser.parse_args()
    seeds = list(range(*args.seeds))
    found = run_ablation(args.variants, seeds, args.table, args.workers)
    summary = summarise(found, seeds)
    for variant, entry in summary.items():
        print(summary_line(variant, entry), flush=True)
    out = args.out or f"bo-ablation-{Path(args.table).stem.lower().replace('_', '-')}"
    write_json(ablation_records(summary, seeds, args.table), RESULTS / f"{out}.json")


if __name__ == "__main__":
    main()
