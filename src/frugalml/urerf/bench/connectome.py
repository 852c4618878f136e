"""Cell-type precision at k on the larval Drosophila connectome: ours, peers and the paper's numbers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from frugalml.common.errors import FrugalError
from frugalml.common.progress import progress
from frugalml.common.report import Record
from frugalml.urerf.bench.paper import DROSOPHILA_K, PAPER_DROSOPHILA
from frugalml.urerf.bench.quality import neighbours_of, precision_record
from frugalml.urerf.metrics import label_precision_at_k


def drosophila(
    X: np.ndarray,
    labels: np.ndarray,
    methods: Sequence[str],
    *,
    n_trees: int = 300,
    seeds: Sequence[int] = (0, 1, 2),
    forest_options: dict | None = None,
    quiet: bool = False,
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Label precision at k = 50..150 (step 20) per method, mean over seeds."""
    results, skipped = {}, {}
    for method in progress(list(methods), desc="drosophila", quiet=quiet):
        runs = []
        for seed in seeds:
            try:
                ind = neighbours_of(method, X, max(DROSOPHILA_K), seed, n_trees, forest_options)
            except FrugalError as exc:  # an optional peer that cannot run here
                if method == "urerf":  # our own failure is the user's to see, never a skipped peer
                    raise
                skipped[method] = str(exc)
                break
            runs.append([label_precision_at_k(ind, labels, k) for k in DROSOPHILA_K])
        if runs:
            results[method] = np.mean(runs, axis=0).tolist()
    return results, skipped


def print_drosophila(results: dict[str, list[float]], title: str) -> None:
    """One row of P@k per method, each followed by the paper's row when it was published."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("method")
    for k in DROSOPHILA_K:
        table.add_column(f"P@{k}")
    for method, values in results.items():
        table.add_row(method, *(f"{v:.3f}" for v in values))
        if method in PAPER_DROSOPHILA:
            table.add_row(f"  paper {method}", *(f"{v:.3f}" for v in PAPER_DROSOPHILA[method]))
    Console().print(table)


def drosophila_records(results: dict[str, list[float]], setting: str, notes: str) -> list[Record]:
    """Our P@k against every peer measured in the run and against the paper's URerF, per k."""
    ours = results["urerf"]
    peers = [
        *((m, v) for m, v in results.items() if m != "urerf"),
        ("paper URerF", list(PAPER_DROSOPHILA["urerf"])),
    ]
    workload = f"Drosophila right MB ({setting})"
    return [
        precision_record(workload, k, ours[i], peer, values[i], notes)
        for peer, values in peers
        for i, k in enumerate(DROSOPHILA_K)
    ]
