"""``frugal pacset reproduce``: layouts x data sets, pages and latency per cold query, beside the paper.

RF rows compare bin+blockwise with plain BFS / DFS / W-DFS as the paper's RF table; boosted rows
compare it with the binned BFS / DFS / W-DFS as the paper's 4096-tree GBT table.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from frugalml.common.report import Record, new_figure, print_table, save_plot, write_json
from frugalml.pacset.bench.data import fit_booster, fit_rf, load_tabular, split
from frugalml.pacset.bench.protocol import (
    BEST,
    BINNED_LAYOUT_SET,
    Contender,
    cold_queries,
    latency_record,
    ours_query,
    pack_layouts,
    pages_record,
)

PAPER_PAGES = {
    "Landsat RF": {"bfs": 18834, "dfs": 7116, "wdfs": 3946, BEST: 3775},
    "Higgs GBT 4096": {"bin+bfs": 3747, "bin+dfs": 3614, "bin+wdfs": 3490, BEST: 2727},
}
PAPER_LATENCY_MS = {
    "Landsat RF": {"bfs": 21631, "dfs": 7240, BEST: 4553},
    "Higgs RF": {"bfs": 6212, "dfs": 4570, BEST: 1495},
    "Higgs GBT 4096": {"bin+bfs": 2243, "bin+dfs": 2212, "bin+wdfs": 2150, BEST: 841},
}
RF_REPRODUCE = (("satellite", "Landsat RF"), ("higgs", "Higgs RF"), ("vehicle", None))
"""(data set, the paper's row) of the 128-tree random forests."""


class Boosted(NamedTuple):
    """A boosted reproduce row: data set, library, trees, depth (XGBoost) or leaves, the paper's row."""

    data: str
    lib: str
    n_trees: int
    size: int
    paper: str | None


BOOSTED_REPRODUCE = (
    Boosted("higgs", "xgboost", 4096, 6, "Higgs GBT 4096"),  # the paper's tree count (its depth is not given)
    Boosted("higgs", "xgboost", 1024, 8, "Higgs GBT 4096"),  # deeper trees, fewer of them (shorter fits)
    Boosted("higgs", "lightgbm", 1024, 255, "Higgs GBT 4096"),
    Boosted("satellite", "xgboost", 1024, 8, None),
)


def run_reproduce(
    json_path: str | os.PathLike | None = None,
    quiet: bool = False,
    n_queries: int = 10,
    boosted: tuple = BOOSTED_REPRODUCE,
    forests: tuple = RF_REPRODUCE,
) -> list[Record]:
    """Layouts x data sets: pages and latency per cold query, beside the paper's ratios.

    ``forests``: (data set, paper row) pairs for 128-tree random forests; ``boosted``: (data set,
    library, trees, depth or leaves, paper row) for boosted models.
    """
    records: list[Record] = []
    with tempfile.TemporaryDirectory(prefix="pacset-repro-") as d:
        tmp = Path(d)
        for data, paper in forests:
            X, y = load_tabular(data)
            test, train = split(len(X))
            rf = fit_rf(X[train], y[train], 128, quiet)
            paths = pack_layouts(rf, tmp, data, quiet)
            records += reproduce_rows(f"{data} RF 128 trees", paths, X[test[:n_queries]], paper, quiet)
        for data, lib, n_trees, size, paper in boosted:
            X, y = load_tabular(data)
            test, train = split(len(X))
            model, workload = fit_booster(lib, X[train], y[train], n_trees, size, data, quiet)
            paths = pack_layouts(model, tmp, f"{data}-{lib}", quiet, layouts=BINNED_LAYOUT_SET)
            records += reproduce_rows(workload, paths, X[test[:n_queries]], paper, quiet)
    print_table(records, title="pacset reproduce: layouts x data sets (cold page cache)")
    if json_path is not None:
        write_json(records, json_path)
        plot_reproduce(records, Path(json_path).with_suffix(".png"))
    return records


def paper_note(paper: str | None, label: str) -> str:
    """The paper's blocks and latency ratios of layout ``label`` over bin+blockwise, where it gives them."""
    note = []
    for kind, table in (("blocks", PAPER_PAGES), ("latency", PAPER_LATENCY_MS)):
        row = table.get(paper or "", {})
        if label in row:
            note.append(f"paper {kind} ratio {row[label] / row[BEST]:.2f}x")
    return "; ".join(note)


def reproduce_rows(
    workload: str, paths: dict[str, Path], queries: np.ndarray, paper: str | None, quiet: bool
) -> list[Record]:
    """Cold queries on each layout; pages and latency of bin+blockwise vs each other layout."""
    ours = {label: Contender(label, p, ours_query(p)) for label, p in paths.items()}
    for c in ours.values():
        c.query(queries[:2])
    cold_queries(list(ours.values()), queries, quiet)
    best = ours[BEST]
    records = []
    for label in (k for k in ours if k != BEST):
        note = paper_note(paper, label)
        records.append(pages_record(workload, best, label, ours[label], note))
        records.append(latency_record(workload, best, ours[label], notes=note))
    return records


def plot_reproduce(records: list[Record], path: Path) -> None:
    """Measured ratios (other layout / bin+blockwise) beside the paper's: pages, then latency."""
    fig, axes = new_figure(1, 2, figsize=(15, 5))
    for ax, prefix, key in (
        (axes[0], "pages read", "paper blocks ratio "),
        (axes[1], "cold query latency", "paper latency ratio "),
    ):
        rows = [r for r in records if r.metric.startswith(prefix)]
        x = np.arange(len(rows))
        ax.bar(x, [r.ratio for r in rows], 0.6, label="measured here")
        paper = [float(r.notes.split(key)[1].split("x")[0]) if key in r.notes else np.nan for r in rows]
        ax.scatter(x, paper, color="black", zorder=3, label="paper (Landsat / Higgs RF, Higgs GBT 4096)")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xticks(x, [f"{r.workload}\n{r.peer}" for r in rows], rotation=70, ha="right", fontsize=6)
        ax.set_ylabel(f"{prefix}: other layout / bin+blockwise")
        ax.legend(fontsize=7)
    save_plot(fig, path)
