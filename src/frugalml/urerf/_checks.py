"""Numba kernels that check a loaded forest's arrays before any walker uses them (see fileformat).

Each returns a status code (0: fine) and, for the nodes, where the first defect is; they never index
outside the arrays they are given, whatever the arrays hold, beyond the shapes the caller checked.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# check_nodes' answers
NODE_OK, LEAF_WITH_CHILD, CHILD_OUTSIDE, BAD_ROOT, PARENT_AFTER, NOT_CHILD, BAD_DEPTH, BAD_RANGE = range(8)


@njit(cache=True)
def check_nodes(node_offsets, left, right, parent, depth, proj_start, proj_end, n_entries):
    """Per tree (status, node) of its first defect: children after their node and inside the tree,
    leaves with no children, the root at depth 0 without a parent, every other node a child of an
    earlier parent one level up, projection ranges inside the ``n_entries`` entries."""
    n_trees = node_offsets.shape[0] - 1
    status = np.zeros(n_trees, dtype=np.int64)
    where = np.zeros(n_trees, dtype=np.int64)
    for t in range(n_trees):
        status[t], where[t] = _check_tree(
            node_offsets[t],
            node_offsets[t + 1] - node_offsets[t],
            left,
            right,
            parent,
            depth,
            proj_start,
            proj_end,
            n_entries,
        )
    return status, where


@njit(cache=True)
def _check_tree(base, size, left, right, parent, depth, proj_start, proj_end, n_entries):
    for v in range(size):
        g = base + v
        lo, hi = left[g], right[g]
        if lo == -1:
            if hi != -1:
                return LEAF_WITH_CHILD, v
        elif not (v < lo < size and v < hi < size and lo != hi):
            return CHILD_OUTSIDE, v
        if v == 0:
            if parent[g] != -1 or depth[g] != 0:
                return BAD_ROOT, v
        else:
            up = parent[g]
            if up < 0 or up >= v:
                return PARENT_AFTER, v
            if left[base + up] != v and right[base + up] != v:
                return NOT_CHILD, v
            if depth[g] != depth[base + up] + 1:
                return BAD_DEPTH, v
        if not 0 <= proj_start[g] <= proj_end[g] <= n_entries:
            return BAD_RANGE, v
    return NODE_OK, 0


# check_leaf_lists' answers (the largest code of any tree is returned)
LEAF_OK, LEAF_OUTSIDE, LEAF_INNER, NEGATIVE_INBAG, BAD_POINTERS, BAD_MEMBERS = range(6)


@njit(cache=True)
def check_leaf_lists(leaves, inbag, inbag_only, node_offsets, left, ptr, members):
    """Check a loaded forest's leaves and member lists in one pass; return LEAF_OK or what is wrong.

    Every training point's leaf must be a leaf of its tree (``left == -1``) and the lists must be
    exactly the ones :func:`leaf_members` builds: per leaf, as many entries as kept points land
    there (all points, or with ``inbag_only`` the in-bag ones), strictly ascending, each a kept
    point of that leaf. Shapes and ``node_offsets`` are checked by the caller.
    """
    n_trees, n = leaves.shape
    total = node_offsets[n_trees]
    if ptr[0] != 0 or ptr[total] != members.shape[0]:
        return BAD_POINTERS
    status = np.zeros(n_trees, dtype=np.int64)
    for t in range(n_trees):  # one thread: these passes are cheap, and threads cost more on a busy machine
        status[t] = _check_tree_leaves(t, leaves, inbag, inbag_only, node_offsets, left, ptr, members)
    return status.max()


@njit(cache=True)
def _check_tree_leaves(t, leaves, inbag, inbag_only, node_offsets, left, ptr, members):
    n = leaves.shape[1]
    base, size = node_offsets[t], node_offsets[t + 1] - node_offsets[t]
    count = np.zeros(size, dtype=np.int64)
    for i in range(n):
        leaf = leaves[t, i]
        if leaf < 0 or leaf >= size:
            return LEAF_OUTSIDE
        if left[base + leaf] != -1:
            return LEAF_INNER
        if inbag_only:
            if inbag[t, i] < 0:
                return NEGATIVE_INBAG
            if inbag[t, i] > 0:
                count[leaf] += 1
        else:
            count[leaf] += 1
    for leaf in range(size):
        start, end = ptr[base + leaf], ptr[base + leaf + 1]
        if end - start != count[leaf] or start < 0 or end > members.shape[0]:
            return BAD_POINTERS
        previous = -1
        for e in range(start, end):
            j = members[e]
            if j <= previous or j >= n or leaves[t, j] != leaf or (inbag_only and inbag[t, j] == 0):
                return BAD_MEMBERS
            previous = j
    return LEAF_OK
