"""Search efficiency: our GP-BO against Optuna TPE, random and evolution on a tabular benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from frugalml.common.parsing import comma_list
from frugalml.common.report import Record, print_table, write_json
from frugalml.common.validate import bounded
from frugalml.composer.bench.records import kept_records
from frugalml.composer.engines import make_engine
from frugalml.composer.limits import MAX_SEED, MAX_SEEDS
from frugalml.composer.tabular import bootstrap_ratio, compare_engines, load_table, plot_regret, records

PEERS = "bo,tpe,random,evolution"
AGGREGATOR_WORKLOAD = "aggregator"


def compare_report(
    engines: str,
    seeds: int,
    table: str | Path | None,
    json_out: Path | None,
    plot: Path | None,
    quiet: bool,
    first_seed: int = 0,
    bo_options: dict[str, Any] | None = None,
) -> list[Record]:
    """Run ``engines`` (comma-separated; ``bo`` always included) on ``table``; print and return records.

    Writes the records to ``json_out`` and the regret curves to ``plot`` when given.
    """
    names: list[str] = comma_list(engines, name="engine")
    if "bo" not in names:
        names.insert(0, "bo")
    t = load_table(table)
    bounded(seeds, "seeds", 1, MAX_SEEDS)
    bounded(first_seed, "first_seed", 0, MAX_SEED - seeds)
    make_engine("bo", t.space, first_seed, **(bo_options or {}))  # refuses bad settings before the runs
    bo = ", ".join(f"{k}={v}" for k, v in (bo_options or {}).items()) or "defaults"
    print(f"{t.describe()}; top-1 {t.top1}; engine seeds {first_seed}..{first_seed + seeds - 1}; bo: {bo}")
    runs = compare_engines(
        t, names, seeds=seeds, first_seed=first_seed, quiet=quiet, options={"bo": bo_options or {}}
    )
    for name, r in runs.items():
        line = f"{name:>10}: median {r.median_evals_to_top1:g} evaluations to the top-1 (of {t.space.size})"
        if name != "bo":
            ratio, low, high = bootstrap_ratio(runs["bo"].evals_to_top1, r.evals_to_top1)
            line += f"; {name}/bo = {ratio:.2f} (95% CI {low:.2f}-{high:.2f})"
        print(f"{line}; {r.seconds:.1f} s for {seeds} seeds")
    span = f"{first_seed}-{first_seed + seeds - 1}"
    recs = records(runs, workload=f"tabular {Path(str(t.name)).stem}, engine seeds {span}, bo {bo}")
    print_table(recs, title=f"composer: our GP-BO vs peers ({t.describe()})")
    if json_out:
        write_json(recs, json_out)
    if plot:
        plot_regret(runs, plot, f"{t.describe()}, engine seeds {span}")
    return recs


def search_efficiency(
    engines: str, seeds: int, table: str | Path | None, json_out: Path, plot: Path, first_seed: int = 0
) -> list[Record]:
    """:func:`compare_report` into ``json_out``, keeping the aggregator-ablation records found there."""
    ablation = kept_records(json_out, lambda workload: workload.startswith(AGGREGATOR_WORKLOAD))
    recs = compare_report(engines, seeds, table, json_out, plot, quiet=False, first_seed=first_seed)
    if ablation:
        write_json(kept_records(json_out, lambda workload: True) + ablation, json_out)
    return recs
