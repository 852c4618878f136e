"""Choose bins, interleave depth and block size on a calibration set by simulating block reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frugalml.common.errors import InvalidInputError
from frugalml.pacset.forest import Forest
from frugalml.pacset.layout import LayoutConfig, compute_layout


def visited_nodes(forest: Forest, X) -> tuple[np.ndarray, np.ndarray]:
    """Every (row, node) pair that predicting ``X`` visits."""
    X = forest.prepare_input(X)
    node = np.broadcast_to(forest.tree_offsets[:-1], (len(X), forest.n_trees)).copy()
    row = np.broadcast_to(np.arange(len(X))[:, None], node.shape)
    active = np.ones(node.shape, bool)
    rows, nodes = [], []
    while active.any():
        rows.append(row[active])
        nodes.append(node[active])
        active &= ~forest.is_leaf[node]
        n, r = node[active], row[active]
        x = X[r, forest.feature[n]]
        go_left = np.where(np.isnan(x), forest.default_left[n], x <= forest.threshold[n])
        node[active] = np.where(go_left, forest.left[n], forest.right[n])
    return np.concatenate(rows), np.concatenate(nodes)


def blocks_per_query(forest: Forest, config: LayoutConfig, visits: tuple[np.ndarray, np.ndarray]) -> float:
    """Mean distinct blocks a query touches under ``config`` (voted leaves take no block)."""
    layout = compute_layout(forest, config)
    rows, nodes = visits
    slot = layout.slot[nodes]
    keep = slot >= 0
    block = slot[keep] // layout.slots_per_block
    pairs = np.unique(rows[keep] * (layout.n_blocks + 1) + block)
    return len(pairs) / (rows.max() + 1)


@dataclass(frozen=True)
class TuneResult:
    """The chosen configuration and every configuration tried with its simulated cost."""

    best: LayoutConfig
    trials: list[dict]


def tune(
    forest: Forest,
    X,
    *,
    bins=(1, 2, 4, 8, 16),
    interleave=(0, 1, 2, 3, 4),
    block_sizes=(4096, 8192, 16384),
    layout: str = "blockwise-wdfs",
    vote: str = "soft",
    block_cost_us: float = 80.0,
    kib_cost_us: float = 1.0,
    recount: bool = True,
) -> TuneResult:
    """Grid-search the layout parameters on calibration rows ``X``.

    The cost of a query is ``blocks * (block_cost_us + block_size/1024 * kib_cost_us)``: a random
    block read costs a fixed latency (a cold page fault or a Redis round trip, ``block_cost_us``) plus
    its transfer time. Cardinalities are recounted from ``X`` first when ``recount``.
    """
    if forest.n_trees < 1:
        raise InvalidInputError("the model has no trees")
    if recount:
        forest.recount(X)
    visits = visited_nodes(forest, X)
    trials = []
    for bs in block_sizes:
        for b in bins:
            if b > forest.n_trees:
                continue
            for d in interleave:
                cfg = LayoutConfig(layout, b, d, bs, vote)
                blocks = blocks_per_query(forest, cfg, visits)
                cost = blocks * (block_cost_us + bs / 1024 * kib_cost_us)
                trials.append(
                    {"bins": b, "interleave": d, "block_size": bs, "blocks": blocks, "cost_us": cost}
                )
    best = min(trials, key=lambda t: t["cost_us"])
    return TuneResult(
        LayoutConfig(layout, best["bins"], best["interleave"], best["block_size"], vote), trials
    )
