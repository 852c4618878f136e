"""Aggregator ablation on the tabular benchmark: N0, N1, Nall against best-single.

For each seed a search runs on the table; each method aggregates that search's history into one
architecture, whose table score and rank (1 = top-1 of the whole space) are recorded; also each
method over the full table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from frugalml.common.report import Record
from frugalml.composer.aggregation import METHODS, aggregate
from frugalml.composer.bench.records import replace_records
from frugalml.composer.engines import make_engine
from frugalml.composer.strategies import run_engine
from frugalml.composer.tabular import Table, load_table

WORKLOAD = "aggregator ablation"


def picked_by_method(table: Table, engine: str, budget: int, seeds: int, k: int) -> dict[str, list[str]]:
    """For each method, the architecture it aggregates from each seed's search history."""
    picked: dict[str, list[str]] = {m: [] for m in METHODS}
    for seed in range(seeds):
        history = run_engine(make_engine(engine, table.space, seed), table.score, budget).history
        archs, scores = [a for a, _ in history], [s for _, s in history]
        for m in METHODS:
            picked[m].append(aggregate(archs, scores, m, k, seed))
    return picked


def aggregator_records(
    engine: str = "bo", budget: int = 16, seeds: int = 20, k: int = 5, table: Table | None = None
) -> list[Record]:
    """One record per aggregation method: the median table score of what it picks vs best-single."""
    table = table or load_table()
    ranking = sorted(table.scores, key=table.scores.__getitem__, reverse=True)
    rank = {a: i + 1 for i, a in enumerate(ranking)}
    picked = picked_by_method(table, engine, budget, seeds, k)
    whole = {m: aggregate(list(table.scores), list(table.scores.values()), m, k) for m in METHODS}
    best_single = [table.scores[a] for a in picked["best-single"]]
    records = []
    for m in METHODS:
        got = [table.scores[a] for a in picked[m]]
        ranks = [rank[a] for a in picked[m]]
        records.append(
            Record(
                "composer",
                f"{WORKLOAD}: {m} over {engine} searches of {budget} evaluations",
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
                    "seeds": seeds,
                    "k": k,
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
    return records


def write_aggregator_records(records: list[Record], path: Path) -> None:
    """Merge ``records`` into ``path``, replacing earlier aggregator records and keeping the others."""
    replace_records(path, records, WORKLOAD)
