"""The default layout: pick layout, bins and interleave depth per model by simulating block reads.

No single layout wins everywhere: bins and interleaved tops pay off for deep forests, but a model
of many small trees (multi-class boosting, whose per-class trees are smaller than a block) reads
fewer blocks when whole trees are interleaved, and sometimes plain BFS is best. ``layout="auto"``
simulates the distinct blocks a single-row query touches under each candidate, on calibration rows
when given, else on rows drawn from the model's own split thresholds (a threshold picked in
proportion to how many training samples reached its node, the side in proportion to its
children's counts), and keeps the cheapest. Plain BFS is always a candidate, so on those rows the
choice never reads more blocks than BFS.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from frugalml.pacset.forest import Forest
from frugalml.pacset.layout import Layout, LayoutConfig, compute_layout

CANDIDATES = (  # (layout, bins, interleave); the first is preferred on ties
    ("blockwise-wdfs", 8, 3),
    ("blockwise-wdfs", 1, 3),
    ("blockwise-wdfs", 1, 6),
    ("blockwise-wdfs", 1, 12),
    ("wdfs", 1, 0),
    ("bfs", 1, 0),
)
SAMPLE_ROWS = 256


def synthetic_rows(forest: Forest, n: int = SAMPLE_ROWS, seed: int = 0) -> np.ndarray:
    """Rows drawn from the model's split thresholds, weighted by the training counts of the nodes."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, forest.n_features))
    internal = np.nonzero(~forest.is_leaf)[0]
    card = np.maximum(forest.cardinality.astype(float), 0.0)
    for f in np.unique(forest.feature[internal]):
        nodes = internal[forest.feature[internal] == f]
        weight = card[nodes] + 1e-9
        pick = rng.choice(nodes, size=n, p=weight / weight.sum())
        thr = forest.threshold[pick].astype(float)
        left_share = card[forest.left[pick]] / np.maximum(card[pick], 1e-9)
        step = np.abs(thr) * 1e-4 + 1e-6
        X[:, f] = np.where(rng.random(n) < left_share, thr - step, thr + step)
    return X


def blocks_per_row(forest: Forest, layout: Layout, visits: tuple[np.ndarray, np.ndarray]) -> float:
    """Mean distinct blocks a single-row query touches under ``layout`` (voted leaves take none)."""
    rows, nodes = visits
    slot = layout.slot[nodes]
    keep = slot >= 0
    block = slot[keep] // layout.slots_per_block
    return len(np.unique(rows[keep] * (layout.n_blocks + 1) + block)) / (rows.max() + 1)


def choose_layout(
    forest: Forest, X=None, block_size: int = 4096, vote: str = "soft"
) -> tuple[LayoutConfig, Layout, dict[str, Any]]:
    """The candidate with the fewest simulated blocks per single-row query: (config, its layout,
    a report of every candidate's blocks and the rows simulated)."""
    from frugalml.pacset.tune import visited_nodes

    if X is not None:
        rows, source = np.asarray(X)[:SAMPLE_ROWS], f"{min(len(X), SAMPLE_ROWS)} calibration rows"
    else:
        rows, source = synthetic_rows(forest), f"{SAMPLE_ROWS} rows drawn from the split thresholds"
    visits = visited_nodes(forest, rows)
    best: tuple[float, LayoutConfig, Layout] | None = None
    blocks: dict[str, float] = {}
    for name, bins, depth in CANDIDATES:
        config = LayoutConfig(name, min(bins, forest.n_trees), depth, block_size, vote)
        label = f"{name} bins={config.bins} interleave={depth}"
        if label in blocks:
            continue
        layout = compute_layout(forest, config)
        blocks[label] = round(float(blocks_per_row(forest, layout, visits)), 2)
        if best is None or blocks[label] < best[0]:
            best = (blocks[label], config, layout)
    assert best is not None
    chosen = best[1]
    report = {
        "chosen": f"{chosen.layout} bins={chosen.bins} interleave={chosen.interleave}",
        "why": f"fewest simulated blocks per single-row query on {source}",
        "blocks_per_query": blocks,
    }
    return chosen, best[2], report


__all__ = ["CANDIDATES", "choose_layout", "synthetic_rows"]
