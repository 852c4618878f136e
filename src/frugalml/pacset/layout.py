"""Node layouts (BFS, DFS, W-DFS, blockwise W-DFS with bins and an interleaved top) and the node encoding.

A packed file is a sequence of fixed-size *slots* (16 bytes, or 32 when thresholds need float64)
grouped into blocks of ``block_size`` bytes. An internal node takes one slot: left child, right
child (slot numbers, or ``-(class + 2)`` for a hard vote), feature (bit 31 = NaN goes left) and
threshold. A leaf takes the slot(s) right where it is placed: ``-1`` then its float64 values from
byte 8 on, so a leaf's probability vector travels with the leaf. Nothing crosses a block boundary;
the last 8 bytes of every block hold its checksum.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numba
import numpy as np

from frugalml.common.errors import InvalidInputError
from frugalml.common.validate import one_of
from frugalml.pacset.forest import Forest
from frugalml.pacset.kernels import FEATURE, IS_LEAF, LEAF_VALUES, LEFT, RIGHT, THRESHOLD32, THRESHOLD64, VOTE

LAYOUTS = ("bfs", "dfs", "wdfs", "blockwise-wdfs")
VOTES = ("soft", "hard")
PAGE = 4096
MAX_BLOCK = 1 << 26
"""The largest block (64 MiB): one block is the unit a query reads."""
# How a bin's subtrees are ordered below the interleaved top (numba reads these as constants).
BFS, DFS, WDFS, BLOCKWISE_WDFS = 0, 1, 2, 3
_MODE = {"bfs": BFS, "dfs": DFS, "wdfs": WDFS, "blockwise-wdfs": BLOCKWISE_WDFS}


@dataclass(frozen=True)
class LayoutConfig:
    """How to lay a forest out on disk.

    Parameters
    ----------
    layout : {"bfs", "dfs", "wdfs", "blockwise-wdfs"}
        Order of each subtree below the interleaved top. ``blockwise-wdfs`` starts every block on
        the hottest pending node of the bin.
    bins : int
        Trees are split evenly into this many contiguous bins (each walked round-robin).
    interleave : int
        The top ``interleave`` levels of all trees in a bin are written level by level, together.
    block_size : int
        Bytes per block (the unit of I/O); a multiple of 4096.
    vote : {"soft", "hard"}
        RF classifiers: average the leaf probabilities (equal to sklearn's ``predict_proba``) or
        let each tree vote for one class (the paper's class nodes; leaves take no space).
    shared_top : bool
        Write the interleaved top levels of *all* trees first, in the blocks right after the
        index, instead of at the start of each bin. Every query walks the tops, so a reader of a
        remote file gets them in the same range request as the header and index (one round trip
        fewer); the bins below are laid out as before.
    """

    layout: str = "blockwise-wdfs"
    bins: int = 8
    interleave: int = 3
    block_size: int = PAGE
    vote: str = "soft"
    shared_top: bool = False

    def __post_init__(self) -> None:
        one_of(self.layout, LAYOUTS, "layout")
        one_of(self.vote, VOTES, "vote")
        if not isinstance(self.bins, int | np.integer) or self.bins < 1:
            raise InvalidInputError(f"bins must be a positive integer, got {self.bins!r}")
        if not isinstance(self.interleave, int | np.integer) or not 0 <= self.interleave <= 12:
            raise InvalidInputError(f"interleave must be between 0 and 12, got {self.interleave!r}")
        if (
            not isinstance(self.block_size, int | np.integer)
            or not PAGE <= self.block_size <= MAX_BLOCK
            or self.block_size % PAGE
        ):
            raise InvalidInputError(
                f"block_size must be a multiple of {PAGE} bytes (page aligned) up to {MAX_BLOCK >> 20} "
                f"MiB, got {self.block_size!r}"
            )


@dataclass(frozen=True)
class Layout:
    """Where each node went: ``slot[i]`` (-1 for leaves absorbed by a hard vote)."""

    slot: np.ndarray
    root_code: np.ndarray
    bin_start: np.ndarray
    slot_size: int
    slots_per_block: int
    n_blocks: int
    config: LayoutConfig


def slot_size(forest: Forest) -> int:
    """16-byte slots for float32 thresholds, 32-byte slots when the model compares in float64."""
    return 16 if forest.input_precision == "float32" else 32


def node_sizes(forest: Forest, size: int, hard_vote: bool) -> np.ndarray:
    """Slots each node occupies: 1 per split, a leaf's values from byte 8 on, 0 for voted leaves."""
    leaf_slots = -(-(8 + 8 * forest.n_values) // size)
    sizes = np.where(forest.is_leaf, leaf_slots, 1).astype(np.int64)
    if hard_vote:
        sizes[forest.is_leaf] = 0
    return sizes


def compute_layout(forest: Forest, config: LayoutConfig) -> Layout:
    """Place every node of ``forest`` into slots according to ``config``."""
    hard = config.vote == "hard"
    if hard and not (forest.aggregate == "mean" and forest.classes is not None):
        raise InvalidInputError("vote='hard' applies to random-forest classifiers only; use vote='soft'")
    size = slot_size(forest)
    spb = config.block_size // size
    sizes = node_sizes(forest, size, hard)
    if sizes.max() > spb - 1:
        raise InvalidInputError(
            f"a leaf with {forest.n_values} values does not fit a {config.block_size}-byte block; "
            "use a larger block_size"
        )
    bins = min(config.bins, forest.n_trees)
    bin_start = np.linspace(0, forest.n_trees, bins + 1).round().astype(np.int64)
    slot = np.full(forest.n_nodes, -1, np.int64)
    left, right = forest.left.astype(np.int64), forest.right.astype(np.int64)
    roots = forest.tree_offsets[:-1]
    starts = [roots[bin_start[b] : bin_start[b + 1]] for b in range(bins)]
    depth, cursor = config.interleave, 0
    if config.shared_top and depth > 0:  # every tree's top first; the bins start below it
        cursor, below = _place_top(left, right, sizes, roots.astype(np.int64), depth, spb, 0, slot)
        cursor = -(-cursor // spb) * spb
        below = np.asarray(below, np.int64)
        tree_of = np.searchsorted(forest.tree_offsets, below, side="right") - 1
        starts = [below[(tree_of >= bin_start[b]) & (tree_of < bin_start[b + 1])] for b in range(bins)]
        depth = 0
    for b in range(bins):
        if len(starts[b]) == 0:
            continue
        cursor = _layout_bin(
            left,
            right,
            forest.cardinality.astype(np.float64),
            sizes,
            starts[b].astype(np.int64),
            _MODE[config.layout],
            depth,
            spb,
            cursor,
            slot,
        )
        cursor = -(-cursor // spb) * spb
    root_code = np.where(slot[roots] >= 0, slot[roots], VOTE - _class_of(forest, roots))
    return Layout(slot, root_code.astype(np.int64), bin_start, size, spb, max(cursor // spb, 1), config)


def _class_of(forest: Forest, nodes: np.ndarray) -> np.ndarray:
    return np.argmax(forest.value[nodes], axis=1)


def encode(forest: Forest, layout: Layout) -> np.ndarray:
    """The node region: ``n_blocks * block_size`` bytes holding every placed node in its slot."""
    size = layout.slot_size
    region = np.zeros(layout.n_blocks * layout.config.block_size, np.uint8)
    words = region.view(np.int32).reshape(-1, size // 4)
    doubles = region.view(np.float64).reshape(-1, size // 8)
    slot = pos = layout.slot
    placed = slot >= 0
    internal = placed & ~forest.is_leaf
    leaves = placed & forest.is_leaf

    def child(c):
        return np.where(slot[c] >= 0, slot[c], VOTE - _class_of(forest, c))

    i = np.nonzero(internal)[0]
    p = pos[i]
    words[p, LEFT] = child(forest.left[i])
    words[p, RIGHT] = child(forest.right[i])
    words[p, FEATURE] = (
        forest.feature[i].astype(np.uint32) | (forest.default_left[i].astype(np.uint32) << 31)
    ).view(np.int32)
    if size == 16:
        region.view(np.float32).reshape(-1, 4)[p, THRESHOLD32] = forest.threshold[i].astype(np.float32)
    else:
        doubles[p, THRESHOLD64] = forest.threshold[i]
    j = np.nonzero(leaves)[0]
    p = pos[j]
    words[p, LEFT] = IS_LEAF
    flat = region.view(np.float64)
    start = p * (size // 8) + LEAF_VALUES
    for k in range(forest.n_values):
        flat[start + k] = forest.value[j, k]
    return region


@numba.njit(cache=True)
def _place(node, sizes, slot, cursor, spb):
    n = sizes[node]
    if n == 0:
        return cursor
    if cursor % spb + n > spb - 1:  # the last slot of a block holds its checksum
        cursor = (cursor // spb + 1) * spb
    slot[node] = cursor
    return cursor + n


@numba.njit(cache=True)
def _push_children(node, left, right, card, sizes, stack, weighted):
    """Push the placeable children, the one to visit first last (W-DFS: the hotter one)."""
    a, b = right[node], left[node]
    if weighted and card[a] > card[b]:
        a, b = b, a
    if a >= 0 and sizes[a] > 0:
        stack.append(a)
    if b >= 0 and sizes[b] > 0:
        stack.append(b)


@numba.njit(cache=True)
def _place_top(left, right, sizes, roots, depth, spb, cursor, slot):
    """Place the top ``depth`` levels of the bin's trees in (heap position, tree) order; return the
    new cursor and the placeable roots of the subtrees below them."""
    n_trees = len(roots)
    top_nodes = []
    top_keys = []
    sub_roots = []
    for t in range(n_trees):
        level = [roots[t]]
        pos = [0]
        for d in range(depth + 1):
            nxt = []
            nxt_pos = []
            for k in range(len(level)):
                node = level[k]
                if d == depth:
                    if sizes[node] > 0:
                        sub_roots.append(node)
                    continue
                top_nodes.append(node)
                top_keys.append(pos[k] * n_trees + t)
                if left[node] >= 0:
                    nxt.append(left[node])
                    nxt_pos.append(2 * pos[k] + 1)
                    nxt.append(right[node])
                    nxt_pos.append(2 * pos[k] + 2)
            level = nxt
            pos = nxt_pos
            if len(level) == 0:
                break
    if len(top_nodes) > 0:
        order = np.argsort(np.array(top_keys), kind="mergesort")
        for k in order:
            cursor = _place(top_nodes[k], sizes, slot, cursor, spb)
    return cursor, sub_roots


@numba.njit(cache=True)
def _place_bfs(left, right, sizes, sub_roots, spb, cursor, slot):
    """Each subtree breadth first, one subtree root after another."""
    queue = [sub_roots[0]]
    queue.pop()
    for r in sub_roots:
        queue.append(r)
        head = 0
        while head < len(queue):
            node = queue[head]
            head += 1
            cursor = _place(node, sizes, slot, cursor, spb)
            if left[node] >= 0:
                for c in (left[node], right[node]):
                    if sizes[c] > 0:
                        queue.append(c)
        queue.clear()
    return cursor


@numba.njit(cache=True)
def _place_dfs(left, right, card, sizes, sub_roots, weighted, spb, cursor, slot):
    """Each subtree depth first (``weighted``: the child more queries reach first, W-DFS)."""
    stack = [sub_roots[0]]
    stack.pop()
    for r in sub_roots:
        stack.append(r)
        while len(stack) > 0:
            node = stack.pop()
            cursor = _place(node, sizes, slot, cursor, spb)
            if left[node] >= 0:
                _push_children(node, left, right, card, sizes, stack, weighted)
    return cursor


@numba.njit(cache=True)
def _pop_unplaced(heap, slot):
    """The hottest node on ``heap`` not yet placed, or -1."""
    while len(heap) > 0:
        cand = heapq.heappop(heap)[1]
        if slot[cand] < 0:
            return cand
    return -1


@numba.njit(cache=True)
def _place_blockwise(left, right, card, sizes, sub_roots, spb, cursor, slot):
    """W-DFS, but each block starts with the hottest pending node of the bin."""
    stack = [sub_roots[0]]
    stack.pop()
    heap = [(-card[sub_roots[0]], sub_roots[0])]
    heap.pop()
    for k in range(len(sub_roots) - 1, -1, -1):
        stack.append(sub_roots[k])
    for r in sub_roots:
        heapq.heappush(heap, (-card[r], r))
    while len(stack) > 0 or len(heap) > 0:
        node = -1
        if cursor % spb == 0:
            node = _pop_unplaced(heap, slot)
        while node < 0 and len(stack) > 0:
            cand = stack.pop()
            if slot[cand] < 0:
                node = cand
        if node >= 0 and cursor % spb + sizes[node] > spb - 1:
            # It does not fit: the block ends here, and the next one starts on the hottest node.
            stack.append(node)
            cursor = (cursor // spb + 1) * spb
            continue
        if node < 0 and len(stack) == 0:
            node = _pop_unplaced(heap, slot)
        if node < 0:
            break
        cursor = _place(node, sizes, slot, cursor, spb)
        if left[node] >= 0:
            _push_children(node, left, right, card, sizes, stack, True)
            for c in (left[node], right[node]):
                if sizes[c] > 0:
                    heapq.heappush(heap, (-card[c], c))
    return cursor


@numba.njit(cache=True)
def _layout_bin(left, right, card, sizes, roots, mode, depth, spb, cursor, slot):
    """Place one bin's trees from slot ``cursor`` on (``mode``: BFS, DFS, WDFS or BLOCKWISE_WDFS)."""
    cursor, sub_roots = _place_top(left, right, sizes, roots, depth, spb, cursor, slot)
    if len(sub_roots) == 0:
        return cursor
    if mode == BFS:
        return _place_bfs(left, right, sizes, sub_roots, spb, cursor, slot)
    if mode == BLOCKWISE_WDFS:
        return _place_blockwise(left, right, card, sizes, sub_roots, spb, cursor, slot)
    return _place_dfs(left, right, card, sizes, sub_roots, mode == WDFS, spb, cursor, slot)
