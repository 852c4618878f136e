"""Layout invariants: a permutation of the nodes, valid children, no node across a block boundary,
and blockwise W-DFS starting every block on the hottest pending node."""

import numpy as np
import pytest

from frugalml.common.errors import InvalidInputError
from frugalml.pacset import LAYOUTS, LayoutConfig, compute_layout, from_model
from frugalml.pacset.layout import node_sizes


@pytest.fixture(scope="module")
def forest(rf):
    return from_model(rf)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("vote", ["soft", "hard"])
def test_layout_places_every_node_once(forest, layout, vote):
    cfg = LayoutConfig(layout, bins=3, interleave=2, vote=vote)
    lay = compute_layout(forest, cfg)
    sizes = node_sizes(forest, lay.slot_size, vote == "hard")
    placed = lay.slot >= 0
    assert np.array_equal(placed, sizes > 0)
    # Occupied slot ranges are disjoint and never cross a block boundary.
    starts, ends = lay.slot[placed], lay.slot[placed] + sizes[placed]
    order = np.argsort(starts)
    assert np.all(starts[order][1:] >= ends[order][:-1])
    assert np.all(starts // lay.slots_per_block == (ends - 1) // lay.slots_per_block)
    assert np.all((ends - 1) % lay.slots_per_block < lay.slots_per_block - 1)  # checksum slot free
    assert ends.max() <= lay.n_blocks * lay.slots_per_block
    # Every tree's nodes stay inside its bin's block range; bins start on block boundaries.
    for b in range(len(lay.bin_start) - 1):
        t0, t1 = lay.bin_start[b], lay.bin_start[b + 1]
        nodes = np.arange(forest.tree_offsets[t0], forest.tree_offsets[t1])
        s = lay.slot[nodes][lay.slot[nodes] >= 0]
        others = np.setdiff1d(lay.slot[placed], s)
        assert not np.any((others >= s.min()) & (others <= s.max()))


def test_interleaved_top_comes_first(forest):
    lay = compute_layout(forest, LayoutConfig("dfs", bins=1, interleave=1))
    roots = forest.tree_offsets[:-1]
    assert np.array_equal(np.sort(lay.slot[roots]), np.arange(forest.n_trees))
    assert np.array_equal(lay.slot[roots], np.arange(forest.n_trees))


def test_blockwise_blocks_start_on_hottest_pending_node(forest):
    cfg = LayoutConfig("blockwise-wdfs", bins=1, interleave=0)
    lay = compute_layout(forest, cfg)
    spb, slot, card = lay.slots_per_block, lay.slot, forest.cardinality
    parent = np.full(forest.n_nodes, -1)
    internal = ~forest.is_leaf
    parent[forest.left[internal]] = np.nonzero(internal)[0]
    parent[forest.right[internal]] = np.nonzero(internal)[0]
    checked = 0
    for b in range(1, lay.n_blocks):
        boundary = b * spb
        first = np.nonzero(slot == boundary)[0]
        if not len(first):
            continue
        later = slot >= boundary
        pending = later & ((parent < 0) | (slot[np.maximum(parent, 0)] < boundary) & (parent >= 0))
        assert card[first[0]] == card[pending].max()
        checked += 1
    assert checked > 3


def test_wdfs_puts_the_hotter_child_next(forest):
    lay = compute_layout(forest, LayoutConfig("wdfs", bins=1, interleave=0))
    internal = np.nonzero(~forest.is_leaf)[0]
    left, right = forest.left[internal], forest.right[internal]
    hot = np.where(forest.cardinality[left] >= forest.cardinality[right], left, right)
    same_block = lay.slot[internal] // lay.slots_per_block == lay.slot[hot] // lay.slots_per_block
    assert np.mean(lay.slot[hot][same_block] == lay.slot[internal][same_block] + 1) > 0.99


def test_bad_configs():
    for kwargs, match in [
        ({"layout": "zigzag"}, "unknown layout"),
        ({"bins": 0}, "bins"),
        ({"block_size": 1000}, "multiple of 4096"),
        ({"interleave": -1}, "interleave"),
        ({"vote": "maybe"}, "unknown vote"),
    ]:
        with pytest.raises(InvalidInputError, match=match):
            LayoutConfig(**kwargs)


def test_hard_vote_only_for_forest_classifiers(reg_data):
    from sklearn.ensemble import RandomForestRegressor

    forest = from_model(RandomForestRegressor(2, max_depth=3).fit(*reg_data))
    with pytest.raises(InvalidInputError, match="hard"):
        compute_layout(forest, LayoutConfig(vote="hard"))


@pytest.mark.parametrize("vote", ["soft", "hard"])
def test_shared_top_comes_first_and_the_bins_below_keep_their_blocks(forest, vote):
    depth = 2
    lay = compute_layout(
        forest, LayoutConfig("blockwise-wdfs", bins=3, interleave=depth, vote=vote, shared_top=True)
    )
    sizes = node_sizes(forest, lay.slot_size, vote == "hard")
    assert np.array_equal(lay.slot >= 0, sizes > 0)
    # The top levels of every tree, then nothing else, in the first slots.
    level = np.zeros(forest.n_nodes, np.int64)
    internal = np.nonzero(~forest.is_leaf)[0]
    for i in internal:  # parents come before children in every importer's node order
        level[forest.left[i]] = level[forest.right[i]] = level[i] + 1
    top = (level < depth) & (lay.slot >= 0)
    below = (level >= depth) & (lay.slot >= 0)
    assert lay.slot[top].max() < lay.slot[below].min()
    roots = forest.tree_offsets[:-1]
    assert np.array_equal(lay.slot[roots], np.arange(forest.n_trees))  # level order: all roots first
    # Children after parents (the walk's check), and each bin's subtrees inside its own blocks.
    for i in internal:
        for c in (forest.left[i], forest.right[i]):
            assert lay.slot[c] < 0 or lay.slot[c] > lay.slot[i]
    first_below = -(-(lay.slot[top].max() + 1) // lay.slots_per_block) * lay.slots_per_block
    assert lay.slot[below].min() == first_below
    for b in range(len(lay.bin_start) - 1):
        nodes = np.arange(forest.tree_offsets[lay.bin_start[b]], forest.tree_offsets[lay.bin_start[b + 1]])
        s = lay.slot[nodes][below[nodes]]
        others = np.setdiff1d(lay.slot[below], s)
        assert not np.any((others >= s.min()) & (others <= s.max()))
