"""A slow, pure-Python URerF neighbour search on a forest's arrays: the oracle of the fuzz suite.

It walks every query down every tree one node at a time with plain Python numbers, checks every
index it follows (children inside the tree and after their node, projection ranges, features,
member lists, training leaves), counts shared leaves point by point and sorts (more shared trees
first, then the lower index). New points count the saved member lists of the leaves they reach;
the training points count the points whose saved leaf they share. It shares no code with the
numba kernels or the loader's checks.
"""

from __future__ import annotations

import numpy as np


class Malformed(Exception):
    """The arrays do not describe a forest the walker can answer on."""


def _walk(tree: int, x: list[float], f: dict) -> int:
    base, size = f["offsets"][tree], f["offsets"][tree + 1] - f["offsets"][tree]
    node = 0
    for _ in range(size + 1):
        g = base + node
        left, right = f["left"][g], f["right"][g]
        if left == -1:
            if right != -1:
                raise Malformed(f"leaf {node} of tree {tree} has a right child")
            return node
        start, end = f["start"][g], f["end"][g]
        if not 0 <= start <= end <= len(f["feature"]):
            raise Malformed(f"projection range {start}..{end}")
        z = 0.0
        for e in range(start, end):
            feature = f["feature"][e]
            if not 0 <= feature < len(x):
                raise Malformed(f"feature {feature}")
            z += f["weight"][e] * x[feature]
        child = left if z < f["threshold"][g] else right
        if not node < child < size:
            raise Malformed(f"child {child} of node {node} in a tree of {size} nodes")
        node = child
    raise Malformed("walk did not end")


def _forest(arrays: dict) -> dict:
    """The arrays as plain Python lists (float32 weights widened exactly, like the kernels do)."""
    offsets = [int(v) for v in arrays["tree_offsets_"]]
    if offsets[0] != 0 or any(b <= a for a, b in zip(offsets, offsets[1:], strict=False)):
        raise Malformed("tree offsets")
    if offsets[-1] != len(arrays["children_left_"]):
        raise Malformed("node count")
    return {
        "offsets": offsets,
        "left": [int(v) for v in arrays["children_left_"]],
        "right": [int(v) for v in arrays["children_right_"]],
        "threshold": [float(v) for v in arrays["threshold_"]],
        "start": [int(v) for v in arrays["proj_start_"]],
        "end": [int(v) for v in arrays["proj_end_"]],
        "feature": [int(v) for v in arrays["proj_feature_"]],
        "weight": [float(v) for v in arrays["proj_weight_"]],
    }


def _member_lists(arrays: dict, f: dict, n: int) -> dict[tuple[int, int], list[int]]:
    ptr = [int(v) for v in arrays["_member_ptr"]]
    members = [int(v) for v in arrays["_members"]]
    if len(ptr) != len(f["left"]) + 1 or ptr[0] != 0 or ptr[-1] != len(members):
        raise Malformed("member pointers")
    lists = {}
    for t in range(len(f["offsets"]) - 1):
        for leaf in range(f["offsets"][t + 1] - f["offsets"][t]):
            g = f["offsets"][t] + leaf
            if not 0 <= ptr[g] <= ptr[g + 1] <= len(members):
                raise Malformed("member pointers")
            chunk = members[ptr[g] : ptr[g + 1]]
            if any(not 0 <= j < n for j in chunk):
                raise Malformed("member outside the training points")
            lists[(t, leaf)] = chunk
    return lists


def _top_k(counts: list[int], k: int, n_trees: int, exclude: int | None):
    order = sorted((i for i in range(len(counts)) if i != exclude), key=lambda i: (-counts[i], i))[:k]
    return [i for i in order], [1.0 - counts[i] / n_trees for i in order]


def reference_kneighbors(arrays: dict, params: dict, queries: np.ndarray | None, k: int):
    """(distances, indices) as ``forest.kneighbors(queries, k)`` must return them, from the arrays.

    ``queries`` None means the training points (each excluding itself). Raises Malformed when the
    arrays are not a forest to answer on.
    """
    f = _forest(arrays)
    n_trees = len(f["offsets"]) - 1
    leaves = arrays["leaves_"]
    inbag = arrays["inbag_"]
    if leaves.shape[0] != n_trees or params["n_estimators"] != n_trees:
        raise Malformed("tree count")
    n = leaves.shape[1]
    use = (inbag > 0) if params["route"] == "inbag" else np.ones(leaves.shape, dtype=bool)
    if queries is None:  # training points count the points whose saved leaf they share
        members: dict[tuple[int, int], list[int]] = {}
        for t in range(n_trees):
            size = f["offsets"][t + 1] - f["offsets"][t]
            for i in range(n):
                leaf = int(leaves[t, i])
                if not 0 <= leaf < size or f["left"][f["offsets"][t] + leaf] != -1:
                    raise Malformed(f"training leaf {leaf}")
                if use[t, i]:
                    members.setdefault((t, leaf), []).append(i)
        query_leaves = [[int(leaves[t, i]) if use[t, i] else -1 for t in range(n_trees)] for i in range(n)]
    else:  # new points are answered from the saved member lists: they are what a query reads
        members = _member_lists(arrays, f, n)
        X = np.asarray(queries, dtype=np.float64)
        if params["normalize"]:
            X = (X - arrays["scale_min_"]) / arrays["scale_range_"]
        with np.errstate(over="ignore", invalid="ignore"):  # as the forest: out-of-range becomes inf
            rows = X.astype(np.float32).tolist()
        query_leaves = [[_walk(t, row, f) for t in range(n_trees)] for row in rows]
    dist, ind = [], []
    for q, row_leaves in enumerate(query_leaves):
        counts = [0] * n
        for t, leaf in enumerate(row_leaves):
            for j in members.get((t, leaf), ()):
                counts[j] += 1
        i, d = _top_k(counts, k, n_trees, q if queries is None else None)
        ind.append(i)
        dist.append(d)
    return np.array(dist, dtype=np.float64), np.array(ind, dtype=np.int64)
