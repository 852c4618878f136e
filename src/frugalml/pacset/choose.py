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
SHARED_TOPS = (3, 4, 5, 6, 7, 8)
"""Interleave depths tried with ``shared_top`` (8 bins of blockwise W-DFS below) for remote files."""
SAMPLE_ROWS = 256
ROUND_ROWS = 64
"""Rows whose walk rounds are simulated (the rounds simulation is costlier than counting blocks)."""
REMOTE_HEAD_BYTES = 1 << 17
"""What a remote reader fetches first (``RemoteOptions.head_bytes``'s default): header, index and
the node blocks after them."""
REMOTE_RTT = 0.05
REMOTE_BANDWIDTH = 100e6
TARGETS = ("local", "remote")


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


def walk_paths(forest: Forest, X) -> np.ndarray:
    """The nodes each (row, tree) visits, in order: shape (rows, trees, depth + 1), -1 after the leaf."""
    X = forest.prepare_input(X)
    node = np.broadcast_to(forest.tree_offsets[:-1], (len(X), forest.n_trees)).copy()
    steps = []
    active = np.ones(node.shape, bool)
    while active.any():
        steps.append(np.where(active, node, -1))
        active &= ~forest.is_leaf[node]
        r, t = np.nonzero(active)
        n = node[r, t]
        x = X[r, forest.feature[n]]
        go_left = np.where(np.isnan(x), forest.default_left[n], x <= forest.threshold[n])
        node[r, t] = np.where(go_left, forest.left[n], forest.right[n])
    return np.stack(steps, axis=2)


def head_blocks(forest: Forest, layout: Layout, head_bytes: int = REMOTE_HEAD_BYTES) -> int:
    """Node blocks a remote reader's first range read brings along with the header and index
    (the header estimated at one block; the index as written)."""
    bs = layout.config.block_size
    index = -(-(2 * forest.n_trees + len(layout.bin_start)) * 8 // bs) * bs
    return max(0, (head_bytes - bs - index) // bs)


def walk_rounds(layout: Layout, paths: np.ndarray, resident: int) -> tuple[float, float]:
    """Mean (round trips, blocks fetched) of a single-row query whose reader already holds blocks
    ``[0, resident)``: each round fetches every block a tree waits for, as the walk does."""
    slots = np.where(paths >= 0, layout.slot[np.maximum(paths, 0)], -1)
    blocks = np.where(slots >= 0, slots // layout.slots_per_block, -1)
    depth = np.arange(blocks.shape[2])
    rounds = fetched = 0
    for blk in blocks:  # one row: (trees, depth)
        have = np.zeros(layout.n_blocks, bool)
        have[:resident] = True
        at = np.zeros(len(blk), np.int64)
        while True:
            ready = (blk < 0) | have[np.maximum(blk, 0)] | (depth[None, :] < at[:, None])
            waiting = ~ready.all(axis=1)
            if not waiting.any():
                break
            at = np.argmax(~ready, axis=1)
            need = np.unique(blk[waiting, at[waiting]])
            have[need] = True
            rounds += 1
            fetched += len(need)
    return rounds / len(blocks), fetched / len(blocks)


def choose_layout(
    forest: Forest, X=None, block_size: int = 4096, vote: str = "soft", target: str = "local"
) -> tuple[LayoutConfig, Layout, dict[str, Any]]:
    """The candidate with the fewest simulated blocks per single-row query (``target="local"``),
    or the least simulated time of a cold single-row query over a remote link (``"remote"``: walk
    rounds times the round trip plus the bytes fetched, header read included, over the bandwidth);
    returns (config, its layout, a report of every candidate and the rows simulated)."""
    from frugalml.common.validate import one_of
    from frugalml.pacset.tune import visited_nodes

    one_of(target, TARGETS, "target")
    if X is not None:
        rows, source = np.asarray(X)[:SAMPLE_ROWS], f"{min(len(X), SAMPLE_ROWS)} calibration rows"
    else:
        rows, source = synthetic_rows(forest), f"{SAMPLE_ROWS} rows drawn from the split thresholds"
    if target == "remote":
        return _choose_remote(forest, rows, source, block_size, vote)
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


def _choose_remote(
    forest: Forest, rows: np.ndarray, source: str, block_size: int, vote: str
) -> tuple[LayoutConfig, Layout, dict[str, Any]]:
    """Every local candidate and every shared-top depth, by simulated remote cold-query time."""
    paths = walk_paths(forest, rows[:ROUND_ROWS])
    configs = [LayoutConfig(n, min(b, forest.n_trees), d, block_size, vote) for n, b, d in CANDIDATES]
    configs += [
        LayoutConfig("blockwise-wdfs", min(8, forest.n_trees), d, block_size, vote, shared_top=True)
        for d in SHARED_TOPS
    ]
    best: tuple[float, LayoutConfig, Layout] | None = None
    table: dict[str, dict[str, float]] = {}
    for config in configs:
        label = _label(config)
        if label in table:
            continue
        layout = compute_layout(forest, config)
        resident = head_blocks(forest, layout)
        rounds, fetched = walk_rounds(layout, paths, resident)
        seconds = rounds * REMOTE_RTT + (REMOTE_HEAD_BYTES + fetched * block_size) / REMOTE_BANDWIDTH
        table[label] = {
            "rounds": round(rounds, 2),
            "blocks": round(fetched, 1),
            "ms": round(seconds * 1e3, 1),
        }
        if best is None or seconds < best[0]:
            best = (seconds, config, layout)
    assert best is not None
    report = {
        "chosen": _label(best[1]),
        "why": (
            "least simulated time of a cold single-row query from a remote store "
            f"({REMOTE_RTT * 1e3:.0f} ms round trips x walk rounds + bytes at "
            f"{REMOTE_BANDWIDTH / 1e6:.0f} MB/s, the first {REMOTE_HEAD_BYTES >> 10} KiB read with the "
            f"header) on {min(len(rows), ROUND_ROWS)} of the {source}"
        ),
        "remote_per_query": table,
    }
    return best[1], best[2], report


def _label(config: LayoutConfig) -> str:
    shared = " shared_top" if config.shared_top else ""
    return f"{config.layout} bins={config.bins} interleave={config.interleave}{shared}"


__all__ = [
    "CANDIDATES",
    "TARGETS",
    "choose_layout",
    "head_blocks",
    "synthetic_rows",
    "walk_paths",
    "walk_rounds",
]
