"""Aggregator ablation on the tabular benchmark: N0, N1, Nall against best-single.

For each seed a search (``--engine``, ``--budget`` evaluations) runs on the table; each method
aggregates that search's history into one architecture, whose table score and rank (1 = top-1 of
the whole space) are recorded; also each method over the full table. Merges the records into
``benchmarks/results/composer.json`` (replacing earlier aggregator records, keeping the others).

    python benchmarks/composer/aggregators.py [--seeds 20] [--budget 16] [--engine bo]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from frugalml.common.report import Record, print_table, read_json, write_json
from frugalml.composer.aggregation import METHODS, aggregate
from frugalml.composer.engines import make_engine
from frugalml.composer.strategies import run_engine
from frugalml.composer.tabular import load_table

RESULTS = Path(__file__).resolve().parents[1] / "results" / "composer.json"
WORKLOAD = "aggregator ablation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--engine", default="bo")
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    table = load_table()
    ranking = sorted(table.scores, key=table.scores.get, reverse=True)
    rank = {a: i + 1 for i, a in enumerate(ranking)}
    picked: dict[str, list[str]] = {m: [] for m in METHODS}
    for seed in range(args.seeds):
        history = run_engine(make_engine(args.engine, table.space, seed), table.score, args.budget).history
        archs, scores = [a for a, _ in history], [s for _, s in history]
        for m in METHODS:
            picked[m].append(aggregate(archs, scores, m, args.k, seed))
    whole = {m: aggregate(list(table.scores), list(table.scores.values()), m, args.k) for m in METHODS}
    records = []
    best_single = [table.scores[a] for a in picked["best-single"]]
    for m in METHODS:
        got = [table.scores[a] for a in picked[m]]
        ranks = [rank[a] for a in picked[m]]
        records.append(
            Record(
                "composer",
                f"{WORKLOAD}: {m} over {args.engine} searches of {args.budget} evaluations",
                "median table score of the aggregated architecture",
                "MAD accuracy",
                float(np.median(got)),
                "best-single",
                float(np.median(best_single)),
                higher_is_better=True,
                spread={
                    "quartiles": np.percentile(got, [25, 75]).tolist(),
                    "median_rank": float(np.median(ranks)),
                    "top1_hits": sum(r == 1 for r in ranks),
                    "seeds": args.seeds,
                    "k": args.k,
                    "over_full_table": {
                        "arch": whole[m],
                        "score": table.scores[whole[m]],
                        "rank": rank[whole[m]],
                    },
                },
                notes=f"built-in six-layer A/M table (64 archs); rank 1 = the table's top-1 {ranking[0]}; "
                f"an aggregate may be an architecture the search never evaluated",
            )
        )
    print_table(records, "aggregator ablation")
    earlier = read_json(RESULTS) if RESULTS.exists() else []
    kept = [
        Record(**{k: v for k, v in r.items() if k != "ratio"})
        for r in earlier
        if not r["workload"].startswith(WORKLOAD)
    ]
    write_json(kept + records, RESULTS)


if __name__ == "__main__":
    main()
