"""Numba kernels on leaf co-membership: member lists, sparse top-k, dense, out-of-bag and path distances.

Nothing here forms an n x n array unless its name says ``dense``: the top-k kernel keeps one
length-n counter per block of queries and resets only the entries it touched.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def leaf_members(leaves, keep, node_offsets):
    """CSR of leaf members: points of global node g are ``members[ptr[g]:ptr[g + 1]]`` (ascending).

    ``leaves`` (n_trees, n) holds local leaf ids; a point counts in tree t only where ``keep[t, i]``.
    """
    n_trees, n = leaves.shape
    total = node_offsets[n_trees]
    ptr = np.zeros(total + 1, dtype=np.int64)
    for t in range(n_trees):
        for i in range(n):
            if keep[t, i]:
                ptr[node_offsets[t] + leaves[t, i] + 1] += 1
    for g in range(total):
        ptr[g + 1] += ptr[g]
    cursor = ptr[:-1].copy()
    members = np.empty(ptr[total], dtype=np.int32)
    for t in range(n_trees):
        for i in range(n):
            if keep[t, i]:
                g = node_offsets[t] + leaves[t, i]
                members[cursor[g]] = i
                cursor[g] += 1
    return ptr, members


@njit(cache=True, inline="always")
def _count_row(q, qleaves, node_offsets, ptr, members, counts, touched):
    n_touched = 0
    for t in range(qleaves.shape[0]):
        leaf = qleaves[t, q]
        if leaf < 0:
            continue
        g = node_offsets[t] + leaf
        for e in range(ptr[g], ptr[g + 1]):
            j = members[e]
            if counts[j] == 0:
                touched[n_touched] = j
                n_touched += 1
            counts[j] += 1
    return n_touched


@njit(parallel=True, cache=True)
def top_k(qleaves, node_offsets, ptr, members, n, k, exclude_self, block):
    """The k training points sharing most leaves with each query: (indices, counts), (m, k) each.

    Order: more shared trees first, then the lower index (the same order as a stable sort of the
    dense similarity row). When fewer than k points share a leaf, the rest are the lowest-index
    points with count 0. With ``exclude_self``, query q is training point q and never its own
    neighbour.
    """
    n_trees, m = qleaves.shape
    out_idx = np.empty((m, k), dtype=np.int64)
    out_cnt = np.empty((m, k), dtype=np.int32)
    n_blocks = (m + block - 1) // block
    for b in prange(n_blocks):
        counts = np.zeros(n, dtype=np.int32)
        touched = np.empty(n, dtype=np.int64)
        hist = np.zeros(n_trees + 2, dtype=np.int64)
        for q in range(b * block, min(m, (b + 1) * block)):
            n_touched = _count_row(q, qleaves, node_offsets, ptr, members, counts, touched)
            if exclude_self and counts[q] > 0:
                n_touched -= 1
                for a in range(n_touched + 1):
                    if touched[a] == q:
                        touched[a] = touched[n_touched]
                        break
                counts[q] = 0
            # smallest count c that still belongs to the top k (counting from the largest)
            for a in range(n_touched):
                hist[counts[touched[a]]] += 1
            cut, above = 1, 0
            for c in range(n_trees, 0, -1):
                if above + hist[c] >= k:
                    cut = c
                    break
                above += hist[c]
            for c in range(n_trees + 2):
                hist[c] = 0
            n_keys = 0
            keys = np.empty(min(n_touched, n), dtype=np.int64)
            for a in range(n_touched):
                j = touched[a]
                if counts[j] >= cut:
                    keys[n_keys] = (n_trees - counts[j]) * n + j
                    n_keys += 1
            keys = np.sort(keys[:n_keys])
            filled = min(n_keys, k)
            for a in range(filled):
                j = keys[a] % n
                out_idx[q, a] = j
                out_cnt[q, a] = counts[j]
            j = 0
            while filled < k:  # pad with the lowest-index points that share no leaf
                if counts[j] == 0 and not (exclude_self and j == q):
                    out_idx[q, filled] = j
                    out_cnt[q, filled] = 0
                    filled += 1
                j += 1
            for a in range(n_touched):
                counts[touched[a]] = 0
            if exclude_self:
                counts[q] = 0
    return out_idx, out_cnt


@njit(parallel=True, cache=True)
def dense_counts(qleaves, node_offsets, ptr, members, n):
    """Number of trees in which each query shares a leaf with each training point: (m, n) int32."""
    n_trees, m = qleaves.shape
    out = np.zeros((m, n), dtype=np.int32)
    for q in prange(m):
        for t in range(n_trees):
            leaf = qleaves[t, q]
            if leaf < 0:
                continue
            g = node_offsets[t] + leaf
            for e in range(ptr[g], ptr[g + 1]):
                out[q, members[e]] += 1
    return out


@njit(parallel=True, cache=True)
def oob_similarity(leaves, inbag):
    """Out-of-bag proximity: over the trees where both points are out of bag, how often they share a
    leaf (0 where never both out of bag; 1 on the diagonal). Dense (n, n) float64."""
    n_trees, n = leaves.shape
    out = np.zeros((n, n), dtype=np.float64)
    for i in prange(n):
        both = np.zeros(n, dtype=np.int32)
        same = np.zeros(n, dtype=np.int32)
        for t in range(n_trees):
            if inbag[t, i] > 0:
                continue
            li = leaves[t, i]
            for j in range(n):
                if inbag[t, j] == 0:
                    both[j] += 1
                    if leaves[t, j] == li:
                        same[j] += 1
        for j in range(n):
            if both[j] > 0:
                out[i, j] = same[j] / both[j]
        out[i, i] = 1.0
    return out


@njit(parallel=True, cache=True)
def path_lengths(qleaves, leaves, node_offsets, depth, parent):
    """Mean over trees of the number of edges between the query's leaf and each point's leaf.

    For each (query, tree) one pass over the tree's nodes (parents come before children) gives the
    depth of the lowest common ancestor with every node. Returns (m, n) float64.
    """
    n_trees, m = qleaves.shape
    n = leaves.shape[1]
    out = np.zeros((m, n), dtype=np.float64)
    width = 0
    for t in range(n_trees):
        width = max(width, node_offsets[t + 1] - node_offsets[t])
    for q in prange(m):
        on_path = np.zeros(width, dtype=np.uint8)
        lca_depth = np.zeros(width, dtype=np.int32)
        for t in range(n_trees):
            base, size = node_offsets[t], node_offsets[t + 1] - node_offsets[t]
            lq = qleaves[t, q]
            node = lq
            while 0 <= node < size:  # parents come before children: at most size steps
                on_path[node] = 1
                up = parent[base + node]
                node = up if up < node else -1
            for v in range(size):
                if on_path[v]:
                    lca_depth[v] = depth[base + v]
                else:  # a parent outside 0..v-1 (a malformed tree) reads nothing outside the tree
                    up = parent[base + v]
                    lca_depth[v] = lca_depth[up] if 0 <= up < v else 0
            dq = depth[base + lq]
            for j in range(n):
                lj = leaves[t, j]
                out[q, j] += dq + depth[base + lj] - 2 * lca_depth[lj]
            node = lq
            while 0 <= node < size:
                on_path[node] = 0
                up = parent[base + node]
                node = up if up < node else -1
        for j in range(n):
            out[q, j] /= n_trees
    return out
