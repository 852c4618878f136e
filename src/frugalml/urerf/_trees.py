"""Numba kernels that grow and route the forest's trees: projections, 1-D split search, flat arrays.

Data arrive column-major as ``Xt`` (features x samples, float32) so one feature of many samples is
one contiguous read. Each tree owns a counter-based random stream (splitmix64) seeded from the
forest seed, so results do not depend on thread scheduling.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

AXIS, SPARSE, GAUSSIAN = 0, 1, 2
FASTBIC, TWOMEANS = 0, 1
BOOTSTRAP, SUBSAMPLE, NO_SAMPLING = 0, 1, 2

_LOG_2PI = float(np.log(2.0 * np.pi))
_ZERO_VARIANCE = 1e-12  # a side whose variance is below this fraction of the node's is constant
_LN2 = float(np.log(2.0))
# log of the lower edge of each of 256 equal buckets of the mantissa range [0.5, 1), rounded down
_LOG_MANTISSA_FLOOR = np.nextafter(np.log(0.5 + np.arange(256) / 512.0), -np.inf)
_RADIX_MIN = 1024  # nodes at least this large sort their projections by radix


@njit(cache=True, inline="always")
def _next_u64(state):
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _uniform(state):
    return float(_next_u64(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def _randint(state, n):
    return min(int(_uniform(state) * n), n - 1)


@njit(cache=True, inline="always")
def _normal(state):
    u = 1.0 - _uniform(state)
    return np.sqrt(-2.0 * np.log(u)) * np.cos(2.0 * np.pi * _uniform(state))


@njit(cache=True, inline="always")
def _log_floor(v):
    """A lower bound of log(v) within log(1 + 1/256), from v's exponent and top mantissa bits."""
    f, e = math.frexp(v)
    return e * _LN2 + _LOG_MANTISSA_FLOOR[int((f - 0.5) * 512.0)]


@njit(cache=True)
def mixing_terms(m, lo, mix):
    """``mix[s]`` = -2 (n1 log(n1 / m) + n2 log(n2 / m)) for the cuts s in [lo, m - lo]: the mixture
    weights' part of the BIC, which depends on the node's size only (shared by its candidates)."""
    for s in range(max(lo, 1), min(m - lo, m - 1) + 1):
        n1, n2 = s, m - s
        mix[s] = -2.0 * (n1 * np.log(n1 / m) + n2 * np.log(n2 / m))


@njit(cache=True)
def best_cut(zs, m, criterion, min_cluster_size):
    """Best cut of the sorted values ``zs[:m]``: (score, s) with the left side ``zs[:s]``; s = -1: none.

    FastBIC scores -2 log L + k log m of a two-component 1-D Gaussian mixture whose components are
    the two sides (ML means, variances, weights n_k / m), minimised over the unequal-variance model
    (k = 5) and the pooled-variance model (k = 4). Cuts where a side has zero variance are skipped.
    TwoMeans scores the within-side sum of squares. Only cuts between distinct values count.
    """
    mix = np.empty(m, dtype=np.float64)
    if criterion == FASTBIC:
        mixing_terms(m, max(min_cluster_size, 1), mix)
    return best_cut_with(zs, m, criterion, min_cluster_size, mix)


@njit(cache=True)
def best_cut_with(zs, m, criterion, min_cluster_size, mix):
    """``best_cut`` given the node's ``mixing_terms`` (one O(m) prefix-sum scan)."""
    shift = zs[(m - 1) // 2]
    total = 0.0
    total_sq = 0.0
    for i in range(m):
        d = zs[i] - shift
        total += d
        total_sq += d * d
    node_var = max(total_sq / m - (total / m) ** 2, 0.0)
    tiny = _ZERO_VARIANCE * node_var
    log_m = np.log(m)
    lo = max(min_cluster_size, 1)
    best, best_s = np.inf, -1
    left, left_sq = 0.0, 0.0
    for s in range(1, m):
        d = zs[s - 1] - shift
        left += d
        left_sq += d * d
        n1, n2 = s, m - s
        if n1 < lo or n2 < lo or zs[s] <= zs[s - 1]:
            continue
        ss1 = max(left_sq - left * left / n1, 0.0)
        right = total - left
        ss2 = max((total_sq - left_sq) - right * right / n2, 0.0)
        if criterion == TWOMEANS:
            score = ss1 + ss2
        else:
            v1, v2 = ss1 / n1, ss2 / n2
            if v1 <= tiny or v2 <= tiny:
                continue
            lb1, lb2 = _log_floor(v1), _log_floor(v2)
            bound = mix[s] + n1 * (_LOG_2PI + lb1) + n2 * (_LOG_2PI + lb2) + m + 4 * log_m
            slack = 1e-9 * (1.0 + abs(bound) + abs(best) + n1 * abs(lb1) + n2 * abs(lb2) + abs(mix[s]))
            if bound - slack >= best:  # a lower bound of the score already loses: skip the logs
                continue
            unequal = mix[s] + n1 * (_LOG_2PI + np.log(v1)) + n2 * (_LOG_2PI + np.log(v2)) + m + 5 * log_m
            pooled = mix[s] + m * (_LOG_2PI + np.log((ss1 + ss2) / m)) + m + 4 * log_m
            score = min(unequal, pooled)
        if score < best:
            best, best_s = score, s
    return best, best_s


@njit(cache=True)
def sort_values(z, m, out, keys, spare, hist):
    """Sorted copy of ``z[:m]`` into ``out[:m]``: numba's quicksort on small nodes, an LSD radix sort
    (8-bit digits of the order-preserving bit pattern, constant digits skipped) on large ones, where
    the quicksort is several times slower. Only the sorted values are used, so any sort is exact."""
    if m < _RADIX_MIN:
        out[:m] = z[:m]
        out[:m].sort()
        return
    sign = np.uint64(1) << np.uint64(63)
    bits = z[:m].view(np.uint64)
    for i in range(m):
        b = bits[i]
        keys[i] = ~b if b & sign else b | sign
    src, dst = keys, spare
    for shift in range(0, 64, 8):
        digit = np.uint64(shift)
        hist[:] = 0
        for i in range(m):
            hist[(src[i] >> digit) & np.uint64(255)] += 1
        if hist[(src[0] >> digit) & np.uint64(255)] == m:
            continue
        total = 0
        for d in range(256):
            count = hist[d]
            hist[d] = total
            total += count
        for i in range(m):
            d = (src[i] >> digit) & np.uint64(255)
            dst[hist[d]] = src[i]
            hist[d] += 1
        src, dst = dst, src
    out_bits = out[:m].view(np.uint64)
    for i in range(m):
        k = src[i]
        out_bits[i] = k ^ sign if k & sign else ~k


@njit(cache=True, inline="always")
def _project(Xt, idx, start, end, feat, weight, e0, e1, z):
    for i in range(start, end):
        z[i - start] = 0.0
    for e in range(e0, e1):
        f, w = feat[e], np.float64(weight[e])
        for i in range(start, end):
            z[i - start] += w * Xt[f, idx[i]]


@njit(cache=True)
def _sample_projections(state, p, mtry, projection, nnz, perm, marker, pos, cand_feat, cand_weight,
                        cand_ptr):
    """Draw the node's candidate projections into CSR form (cand_ptr over cand_feat/cand_weight)."""
    if projection == AXIS:
        for c in range(mtry):  # partial Fisher-Yates: mtry distinct features
            r = c + _randint(state, p - c)
            perm[c], perm[r] = perm[r], perm[c]
            cand_feat[c] = perm[c]
            cand_weight[c] = 1.0
            cand_ptr[c + 1] = c + 1
        return mtry
    total = p * mtry
    # nnz distinct positions of the p x mtry matrix; draw the complement when nnz > total / 2
    chosen = nnz if 2 * nnz <= total else total - nnz
    for a in range(chosen):
        while True:
            r = _randint(state, total)
            if marker[r] == 0:
                marker[r] = 1
                pos[a] = r
                break
    if chosen != nnz:
        a = 0
        for r in range(total):
            if marker[r] == 0:
                pos[a] = r
                a += 1
            else:
                marker[r] = 0
    else:
        for a in range(nnz):
            marker[pos[a]] = 0
    order = np.sort(pos[:nnz])  # column-major position: column = r // p, feature = r % p
    n_cand = 0
    cand_ptr[0] = 0
    e = 0
    prev_col = -1
    for a in range(nnz):
        col, f = order[a] // p, order[a] % p
        if col != prev_col:
            if prev_col >= 0:
                n_cand += 1
                cand_ptr[n_cand] = e
            prev_col = col
        cand_feat[e] = f
        if projection == GAUSSIAN:
            cand_weight[e] = _normal(state)
        else:
            cand_weight[e] = 1.0 if _uniform(state) < 0.5 else -1.0
        e += 1
    if prev_col >= 0:
        n_cand += 1
        cand_ptr[n_cand] = e
    return n_cand


@njit(cache=True)
def _grow_tree(Xt, seed, sampling, n_in, projection, mtry, nnz, criterion, min_parent, max_depth,
               min_cluster_size, min_cluster_fraction, left, right, threshold, proj_start, proj_end,
               depth, parent, proj_feat, proj_weight, leaves, inbag):
    """Grow one tree depth-first into the given flat arrays; return (n_nodes, n_proj_entries)."""
    p, n = Xt.shape
    state = np.empty(1, dtype=np.uint64)
    state[0] = seed
    idx = np.empty(n_in, dtype=np.int64)
    if sampling == BOOTSTRAP:
        for i in range(n_in):
            idx[i] = _randint(state, n)
    elif sampling == SUBSAMPLE:
        perm = np.arange(n)
        for i in range(n_in):
            r = i + _randint(state, n - i)
            perm[i], perm[r] = perm[r], perm[i]
            idx[i] = perm[i]
    else:
        for i in range(n_in):
            idx[i] = i
    for i in range(n_in):
        inbag[idx[i]] += 1

    feat_perm = np.arange(p)
    total = p * mtry if projection != AXIS else 1
    marker = np.zeros(total, dtype=np.uint8)
    pos = np.empty(max(nnz, 1), dtype=np.int64)
    width = mtry if projection == AXIS else max(nnz, 1)
    cand_feat = np.empty(width, dtype=np.int64)
    cand_weight = np.empty(width, dtype=np.float64)
    cand_ptr = np.zeros(mtry + 1, dtype=np.int64)
    best_feat = np.empty(width, dtype=np.int64)
    best_weight = np.empty(width, dtype=np.float64)
    z = np.empty(n_in, dtype=np.float64)
    best_z = np.empty(n_in, dtype=np.float64)
    zs = np.empty(n_in, dtype=np.float64)
    mix = np.empty(n_in, dtype=np.float64)
    keys = np.empty(n_in, dtype=np.uint64)
    spare = np.empty(n_in, dtype=np.uint64)
    hist = np.empty(256, dtype=np.int64)

    cap = left.shape[0]
    stack_node = np.empty(cap, dtype=np.int64)
    stack_start = np.empty(cap, dtype=np.int64)
    stack_end = np.empty(cap, dtype=np.int64)
    stack_node[0], stack_start[0], stack_end[0] = 0, 0, n_in
    top = 1
    left[0], right[0], depth[0], parent[0] = -1, -1, 0, -1
    n_nodes, n_proj = 1, 0
    while top > 0:
        top -= 1
        node, start, end = stack_node[top], stack_start[top], stack_end[top]
        size = end - start
        if size < min_parent or size < 2 or (max_depth >= 0 and depth[node] >= max_depth):
            continue
        n_cand = _sample_projections(state, p, mtry, projection, nnz, feat_perm, marker, pos,
                                     cand_feat, cand_weight, cand_ptr)
        best, best_thr, best_len = np.inf, 0.0, 0
        smallest = max(min_cluster_size, int(np.ceil(min_cluster_fraction * size)))
        if criterion == FASTBIC:
            mixing_terms(size, max(smallest, 1), mix)
        for c in range(n_cand):
            e0, e1 = cand_ptr[c], cand_ptr[c + 1]
            _project(Xt, idx, start, end, cand_feat, cand_weight, e0, e1, z)
            sort_values(z, size, zs, keys, spare, hist)
            score, s = best_cut_with(zs, size, criterion, smallest, mix)
            if s > 0 and score < best:
                best, best_thr, best_len = score, 0.5 * (zs[s - 1] + zs[s]), e1 - e0
                best_feat[:best_len] = cand_feat[e0:e1]
                best_weight[:best_len] = cand_weight[e0:e1]
                z, best_z = best_z, z  # keep the best candidate's projection for the partition
        if best_len == 0:
            continue
        lo, hi = start, end - 1
        while lo <= hi:  # partition idx[start:end]: z < threshold goes left
            if best_z[lo - start] < best_thr:
                lo += 1
            else:
                idx[lo], idx[hi] = idx[hi], idx[lo]
                best_z[lo - start], best_z[hi - start] = best_z[hi - start], best_z[lo - start]
                hi -= 1
        if lo == start or lo == end:
            continue
        for e in range(best_len):
            if n_proj + e < proj_feat.shape[0]:
                proj_feat[n_proj + e] = best_feat[e]
                proj_weight[n_proj + e] = best_weight[e]
        proj_start[node], proj_end[node] = n_proj, n_proj + best_len
        n_proj += best_len
        threshold[node] = best_thr
        for child in (n_nodes, n_nodes + 1):
            left[child], right[child] = -1, -1
            depth[child], parent[child] = depth[node] + 1, node
        # push the right child first so the left one is grown next (depth first)
        stack_node[top], stack_start[top], stack_end[top] = n_nodes + 1, lo, end
        stack_node[top + 1], stack_start[top + 1], stack_end[top + 1] = n_nodes, start, lo
        top += 2
        left[node], right[node] = n_nodes, n_nodes + 1
        n_nodes += 2
    if n_proj <= proj_feat.shape[0]:
        for i in range(n):
            leaves[i] = _route_one(Xt, i, left, right, threshold, proj_start, proj_end, proj_feat,
                                   proj_weight, 0)
    return n_nodes, n_proj


@njit(cache=True, inline="always")
def _route_one(Xt, i, left, right, threshold, proj_start, proj_end, proj_feat, proj_weight, base):
    node = 0
    while left[base + node] >= 0:
        g = base + node
        z = 0.0
        for e in range(proj_start[g], proj_end[g]):
            z += np.float64(proj_weight[e]) * Xt[proj_feat[e], i]
        node = left[g] if z < threshold[g] else right[g]
    return node


@njit(parallel=True, cache=True)
def grow_batch(Xt, seeds, sampling, n_in, projection, mtry, nnz, criterion, min_parent, max_depth,
               min_cluster_size, min_cluster_fraction, node_cap, proj_cap):
    """Grow ``len(seeds)`` trees in parallel into fixed-capacity rows; trimmed by the caller.

    A tree whose projections overflow ``proj_cap`` reports the size it needed (its leaves are not
    routed); the caller grows the batch again with more room (same seeds, same trees).
    """
    n_trees = seeds.shape[0]
    n = Xt.shape[1]
    left = np.empty((n_trees, node_cap), dtype=np.int32)
    right = np.empty((n_trees, node_cap), dtype=np.int32)
    threshold = np.zeros((n_trees, node_cap), dtype=np.float64)
    proj_start = np.zeros((n_trees, node_cap), dtype=np.int64)
    proj_end = np.zeros((n_trees, node_cap), dtype=np.int64)
    depth = np.empty((n_trees, node_cap), dtype=np.int32)
    parent = np.empty((n_trees, node_cap), dtype=np.int32)
    proj_feat = np.zeros((n_trees, proj_cap), dtype=np.int32)
    proj_weight = np.zeros((n_trees, proj_cap), dtype=np.float32)
    leaves = np.empty((n_trees, n), dtype=np.int32)
    inbag = np.zeros((n_trees, n), dtype=np.int32)
    sizes = np.zeros((n_trees, 2), dtype=np.int64)
    for t in prange(n_trees):
        nodes, entries = _grow_tree(
            Xt, seeds[t], sampling, n_in, projection, mtry, nnz, criterion, min_parent, max_depth,
            min_cluster_size, min_cluster_fraction, left[t], right[t], threshold[t], proj_start[t],
            proj_end[t], depth[t], parent[t], proj_feat[t], proj_weight[t], leaves[t], inbag[t])
        sizes[t, 0], sizes[t, 1] = nodes, entries
    return left, right, threshold, proj_start, proj_end, depth, parent, proj_feat, proj_weight, \
        leaves, inbag, sizes


@njit(parallel=True, cache=True)
def route(Xt, node_offsets, left, right, threshold, proj_start, proj_end, proj_feat, proj_weight):
    """Leaf (local node id) of every column of ``Xt`` in every tree: array (n_trees, n_samples)."""
    n = Xt.shape[1]
    n_trees = node_offsets.shape[0] - 1
    leaves = np.empty((n_trees, n), dtype=np.int32)
    for i in prange(n):
        for t in range(n_trees):
            leaves[t, i] = _route_one(Xt, i, left, right, threshold, proj_start, proj_end, proj_feat,
                                      proj_weight, node_offsets[t])
    return leaves
