"""Geodesic precision at k on the paper's simulations: ours against peers measured in the same run.

Quality records compare our precision with a peer's measured in the same run, or with the paper's
published number.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from frugalml.common.errors import FrugalError, InvalidInputError
from frugalml.common.progress import progress
from frugalml.common.report import Record
from frugalml.urerf.bench.paper import PAPER_NOISE, PAPER_P50, paper_value
from frugalml.urerf.bench.peers import BASELINES
from frugalml.urerf.datasets import simulate
from frugalml.urerf.forest import UnsupervisedRandomerForest
from frugalml.urerf.metrics import geodesic_precision_at_k

SYSTEM = "urerf"
Scores = dict[tuple[str, int, str], float]


def neighbours_of(
    method: str, X: np.ndarray, k: int, seed: int, n_trees: int, forest_options: dict | None = None
) -> np.ndarray:
    """k-NN lists of one method ("urerf" or a baseline name) on X."""
    if method == "urerf":
        forest = UnsupervisedRandomerForest(n_trees, random_state=seed, **(forest_options or {}))
        return forest.fit(X).kneighbors(n_neighbors=k, return_distance=False)
    if method not in BASELINES:
        raise InvalidInputError(f"unknown method {method!r}; choose urerf or one of {', '.join(BASELINES)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BASELINES[method](X, k, seed=seed, n_trees=n_trees)


def noise_sweep(
    datasets: Sequence[str],
    noise_levels: Sequence[int],
    methods: Sequence[str],
    *,
    n: int = 1000,
    n_trees: int = 300,
    seeds: Sequence[int] = (0, 1, 2),
    k: int = 50,
    projection: str = "axis",
    quiet: bool = False,
) -> tuple[Scores, dict[str, str]]:
    """Mean P@k over seeds for every (dataset, noise, method); unavailable peers are reported.

    Returns (scores, skipped) where skipped maps a method to why it could not run.
    """
    scores: Scores = {}
    skipped: dict[str, str] = {}
    jobs = [(d, z, m) for d in datasets for z in noise_levels for m in methods]
    for dataset, noise, method in progress(jobs, desc="noise sweep", quiet=quiet):
        if method in skipped:
            continue
        values = []
        for seed in seeds:
            data = simulate(dataset, n=n, noise_dims=noise, seed=seed)
            try:
                ind = neighbours_of(method, data.X, k, seed, n_trees, {"projection": projection})
            except FrugalError as exc:  # an optional peer that cannot run here
                if method == "urerf":  # our own failure is the user's to see, never a skipped peer
                    raise
                skipped[method] = str(exc)
                break
            values.append(geodesic_precision_at_k(ind, data.geodesic, k))
        if values:
            scores[(dataset, noise, method)] = float(np.mean(values))
    return scores, skipped


def precision_record(workload: str, k: int, ours: float, peer: str, value: float, notes: str) -> Record:
    """One P@k record (a fraction, higher is better) of ours against a peer or a published number."""
    return Record(
        SYSTEM, workload, f"P@{k}", "fraction", ours, peer, value, higher_is_better=True, notes=notes
    )


def sweep_records(scores: Scores, *, n: int, n_trees: int, n_seeds: int, k: int) -> list[Record]:
    """Our P@k against each peer measured in the run and against the paper's URerF number.

    Examples
    --------
    >>> scores = {("helix", 10, "urerf"): 0.8, ("helix", 10, "isomap"): 0.2}
    >>> [(r.peer, r.peer_value) for r in sweep_records(scores, n=1000, n_trees=300, n_seeds=3, k=50)]
    [('isomap', 0.2), ('paper URerF', 0.752)]
    """
    records = []
    for (dataset, noise, method), value in scores.items():
        if method == "urerf":
            continue
        ours = scores[(dataset, noise, "urerf")]
        workload = f"{dataset}+{noise} noise dims, n={n}"
        records.append(
            precision_record(workload, k, ours, method, value, f"{n_trees} trees, mean of {n_seeds} seeds")
        )
    for (dataset, noise, method), value in scores.items():
        if method == "urerf" and (published := paper_value(dataset, "urerf", noise)) is not None:
            workload = f"{dataset}+{noise} noise dims, n={n}"
            notes = f"paper: 300 trees; ours {n_trees} trees, {n_seeds} seeds"
            records.append(precision_record(workload, k, value, "paper URerF", published, notes))
    return records


def print_scores(scores: Scores, k: int, skipped: dict[str, str]) -> None:
    """Show the measured precisions beside the paper's, then the peers that could not run."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"geodesic precision@{k}")
    for col in ("data set", "noise dims", "method", "ours (measured)", "paper"):
        table.add_column(col)
    for (dataset, noise, method), value in scores.items():
        published = paper_value(dataset, method, noise)
        table.add_row(
            dataset, str(noise), method, f"{value:.3f}", "" if published is None else f"{published:.3f}"
        )
    Console().print(table)
    print_skipped(skipped)


def print_skipped(skipped: dict[str, str]) -> None:
    """One line per peer that could not run here, with the reason."""
    for method, why in skipped.items():
        print(f"skipped {method}: {why}")


def noise_plot(scores: Scores, datasets: Sequence[str], levels: Sequence[int]):
    """Precision vs noise dimensions, one panel per data set, one line per method."""
    from frugalml.common.report import new_figure

    fig, axes = new_figure(1, len(datasets), figsize=(4.5 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        methods = sorted({m for (d, _, m) in scores if d == dataset})
        for method in methods:
            xs = [z for z in levels if (dataset, z, method) in scores]
            ax.plot([x + 1 for x in xs], [scores[(dataset, z, method)] for z in xs], "o-", label=method)
        paper = PAPER_P50.get(dataset, {}).get("urerf")
        if paper:
            ax.plot([x + 1 for x in PAPER_NOISE[: len(paper)]], paper, "k--", label="paper URerF")
        ax.set_xscale("log")
        ax.set_title(dataset)
        ax.set_xlabel("noise dimensions + 1")
        ax.set_ylabel("P@50")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
    return fig
