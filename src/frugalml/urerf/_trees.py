"""Numba kernels that grow and route the forest's trees: projections, 1-D split search, flat arrays.

Data arrive column-major as ``Xt`` (features x samples, float32) so one feature of many samples is
one contiguous read. Each tree owns a counter-based random stream (splitmix64) seeded from the
forest seed, so results do not depend on thread scheduling.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

AXIS, SPARSE, GAUSSIAN = 0, 1, 2
FASTBIC, TWOMEANS = 0, 1
BOOTSTRAP, SUBSAMPLE, NO_SAMPLING = 0, 1, 2
# columns of grow_batch's ``sizes`` (n_trees, 2): a tree's node count and projection entry count
SIZE_NODES, SIZE_ENTRIES = 0, 1

_LOG_2PI = float(np.log(2.0 * np.pi))
_ZERO_VARIANCE = 1e-12  # a side whose variance is below this fraction of the node's is constant
_LN2 = float(np.log(2.0))
# log(1 + j / 256) for j = 0..256 rounded down, and the slopes of the chords between them
_LOG_EDGE = np.nextafter(np.log1p(np.arange(257) / 256.0), -np.inf)
_LOG_SLOPE = np.diff(_LOG_EDGE)
_RADIX_MIN = 1024  # nodes at least this large sort their projections by radix
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_BIT = np.zeros(64, dtype=np.int64)  # lowest set bit of a word from its de Bruijn hash
for _bit in range(64):
    _DEBRUIJN_BIT[((1 << _bit) * 0x03F79D71B4CB0A89 % (1 << 64)) >> 58] = _bit


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
def _log_lower(bits):
    """A lower bound of log(v) within 2e-6 from v's bit pattern (v > 0): the exponent plus the chord of
    log over one of 256 equal mantissa buckets (log is concave, so the chord lies below it)."""
    exponent = np.int64((bits >> np.uint64(52)) & np.uint64(0x7FF))
    if exponent == 0:  # subnormal: no cheap bound
        return -np.inf
    bucket = (bits >> np.uint64(44)) & np.uint64(0xFF)
    within = float(bits & np.uint64(0xFFFFFFFFFFF)) * (1.0 / 17592186044416.0)
    return (exponent - 1023) * _LN2 + _LOG_EDGE[bucket] + within * _LOG_SLOPE[bucket]


@njit(cache=True)
def xlogx_table(n):
    """``table[k] = k log k`` for k = 0..n (0 log 0 = 0): the mixture weights' part of every BIC."""
    table = np.zeros(n + 1, dtype=np.float64)
    for k in range(1, n + 1):
        table[k] = k * np.log(k)
    return table


@njit(cache=True)
def best_cut(zs, m, criterion, min_cluster_size):
    """Best cut of the sorted values ``zs[:m]``: (score, s) with the left side ``zs[:s]``; s = -1: none.

    FastBIC scores -2 log L + k log m of a two-component 1-D Gaussian mixture whose components are
    the two sides (ML means, variances, weights n_k / m), minimised over the unequal-variance model
    (k = 5) and the pooled-variance model (k = 4). Cuts where a side has zero variance are skipped.
    TwoMeans scores the within-side sum of squares. Only cuts between distinct values count; among
    equal scores the smallest s wins.
    """
    work = np.empty((4, max(m, 2)), dtype=np.float64)
    return best_cut_with(zs, m, criterion, min_cluster_size, xlogx_table(m), work)


@njit(cache=True, inline="always")
def _fastbic_score(ss1, ss2, n1, n2, m, log_m):
    mix_s = -2.0 * (n1 * np.log(n1 / m) + n2 * np.log(n2 / m))
    unequal = mix_s + n1 * (_LOG_2PI + np.log(ss1 / n1)) + n2 * (_LOG_2PI + np.log(ss2 / n2)) + m + 5 * log_m
    pooled = mix_s + m * (_LOG_2PI + np.log((ss1 + ss2) / m)) + m + 4 * log_m
    return min(unequal, pooled)


@njit(cache=True)
def best_cut_with(zs, m, criterion, min_cluster_size, xlogx, work):
    """``best_cut`` given ``xlogx_table(>= m)`` and a (4, >= m) float64 workspace.

    FastBIC runs in two passes: the sides' sums of squares from prefix sums and a lower bound of every
    cut's score from cheap logarithm bounds (``_log_lower``), whose minimiser is then scored exactly;
    then exact scores only for the cuts whose bound could still beat that score. The result equals
    the exhaustive scan's (score and s).
    """
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
    sum_sq1, sum_sq2, bound = work[0], work[1], work[2]
    scratch = work[3, :2]  # the sides' variances, read back as bit patterns by _log_lower
    scratch_bits = scratch.view(np.uint64)
    first = -1
    left, left_sq = 0.0, 0.0
    for s in range(1, m):
        d = zs[s - 1] - shift
        left += d
        left_sq += d * d
        n1, n2 = s, m - s
        bound[s] = np.inf
        if n1 < lo or n2 < lo or zs[s] <= zs[s - 1]:
            continue
        ss1 = max(left_sq - left * left / n1, 0.0)
        right = total - left
        ss2 = max((total_sq - left_sq) - right * right / n2, 0.0)
        if criterion == TWOMEANS:
            if ss1 + ss2 < best:
                best, best_s = ss1 + ss2, s
            continue
        scratch[0], scratch[1] = ss1 / n1, ss2 / n2
        if scratch[0] <= tiny or scratch[1] <= tiny:
            continue
        sum_sq1[s], sum_sq2[s] = ss1, ss2
        # -2 log L of the unequal-variance model bounds the pooled one's from below (Jensen), so with
        # the pooled model's parameter count this bounds both models; the slack covers the rounding
        # of the bound's own arithmetic
        term1 = n1 * (_LOG_2PI + _log_lower(scratch_bits[0]))
        term2 = n2 * (_LOG_2PI + _log_lower(scratch_bits[1]))
        mix = -2.0 * (xlogx[n1] + xlogx[n2] - xlogx[m])
        b = mix + term1 + term2 + m + 4 * log_m
        bound[s] = b - 1e-9 * (1.0 + abs(b) + abs(term1) + abs(term2) + 2.0 * xlogx[m])
        if first < 0 or bound[s] < bound[first]:
            first = s
    if criterion == TWOMEANS:
        return best, best_s
    if first < 0:
        return best, best_s
    best, best_s = _fastbic_score(sum_sq1[first], sum_sq2[first], first, m - first, m, log_m), first
    for s in range(lo, m - lo + 1):
        if bound[s] - 1e-9 * abs(best) >= best or s == first:
            continue
        score = _fastbic_score(sum_sq1[s], sum_sq2[s], s, m - s, m, log_m)
        if score < best or (score == best and s < best_s):
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


def feature_ranks(Xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's rank on each feature and each feature's sorted values (both features x samples),
    computed once per fit so single-feature candidates are sorted by counting ranks."""
    order = np.argsort(Xt, axis=1, kind="stable")
    ranks = np.empty(Xt.shape, dtype=np.int32)
    np.put_along_axis(ranks, order, np.arange(Xt.shape[1], dtype=np.int32)[None, :], axis=1)
    return ranks, np.take_along_axis(Xt, order, axis=1)


@njit(cache=True)
def rank_sort(ranks, sorted_values, f, weight, idx, start, end, counts, bits, zs):
    """``zs[:m]`` = the sorted values of ``weight * X[f, idx[start:end]]`` (weight != 0), in O(m + n / 64)
    from the samples' precomputed ranks: count each rank, then sweep the set bits of a rank bitmap.
    ``counts`` and ``bits`` must be zero and are left zero."""
    lo_word, hi_word = bits.shape[0], -1
    for i in range(start, end):
        r = ranks[f, idx[i]]
        counts[r] += 1
        w = r >> 6
        bits[w] |= np.uint64(1) << np.uint64(r & 63)
        lo_word = min(lo_word, w)
        hi_word = max(hi_word, w)
    m = end - start
    k = 0
    for w in range(lo_word, hi_word + 1):
        word = bits[w]
        bits[w] = 0
        while word:
            low = word & (np.uint64(0) - word)
            r = (w << 6) + _DEBRUIJN_BIT[(low * _DEBRUIJN) >> np.uint64(58)]
            word ^= low
            value = weight * np.float64(sorted_values[f, r])
            for _ in range(counts[r]):
                if weight > 0:
                    zs[k] = value
                else:
                    zs[m - 1 - k] = value
                k += 1
            counts[r] = 0


@njit(cache=True, inline="always")
def _project(Xt, idx, start, end, feat, weight, e0, e1, z):
    for i in range(start, end):
        z[i - start] = 0.0
    for e in range(e0, e1):
        f, w = feat[e], np.float64(weight[e])
        for i in range(start, end):
            z[i - start] += w * Xt[f, idx[i]]


@njit(cache=True)
def _sample_projections(state, p, mtry, projection, nnz, perm, marker, pos, cand_feat, cand_weight, cand_ptr):
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
    pos[:nnz].sort()  # column-major position: column = r // p, feature = r % p
    n_cand = 0
    cand_ptr[0] = 0
    e = 0
    prev_col = -1
    for a in range(nnz):
        col, f = pos[a] // p, pos[a] % p
        if col != prev_col:
            if prev_col >= 0:
                n_cand += 1
                cand_ptr[n_cand] = e
            prev_col = col
        cand_feat[e] = f
        if projection == GAUSSIAN:  # float32, the precision the tree stores for routing
            cand_weight[e] = np.float32(_normal(state))
        else:
            cand_weight[e] = 1.0 if _uniform(state) < 0.5 else -1.0
        e += 1
    if prev_col >= 0:
        n_cand += 1
        cand_ptr[n_cand] = e
    return n_cand


@njit(cache=True)
def _draw_inbag(state, sampling, n, idx, inbag):
    """Fill ``idx`` with the tree's in-bag sample of the n points and count each point in ``inbag``."""
    n_in = idx.shape[0]
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


@njit(cache=True)
def _best_projection(Xt, ranks, sorted_values, idx, start, end, n_cand, criterion, smallest, ws):
    """Score every candidate projection of the node ``idx[start:end]`` and keep the best one.

    Returns (threshold, number of entries); the winner's entries are left in ``ws.best_feat`` and
    ``ws.best_weight``. Zero entries: no candidate has a valid cut.
    """
    size = end - start
    best, best_thr, best_len = np.inf, 0.0, 0
    for c in range(n_cand):
        e0, e1 = ws.cand_ptr[c], ws.cand_ptr[c + 1]
        if e1 - e0 == 1 and ws.cand_weight[e0] != 0.0:  # faster than sorting at any node size
            rank_sort(
                ranks,
                sorted_values,
                ws.cand_feat[e0],
                ws.cand_weight[e0],
                idx,
                start,
                end,
                ws.counts,
                ws.bits,
                ws.zs,
            )
        else:
            _project(Xt, idx, start, end, ws.cand_feat, ws.cand_weight, e0, e1, ws.z)
            sort_values(ws.z, size, ws.zs, ws.keys, ws.spare, ws.hist)
        score, s = best_cut_with(ws.zs, size, criterion, smallest, ws.xlogx, ws.work)
        if s > 0 and score < best:
            best, best_thr, best_len = score, 0.5 * (ws.zs[s - 1] + ws.zs[s]), e1 - e0
            ws.best_feat[:best_len] = ws.cand_feat[e0:e1]
            ws.best_weight[:best_len] = ws.cand_weight[e0:e1]
    return best_thr, best_len


@njit(cache=True)
def _partition(idx, z, start, end, threshold):
    """Reorder ``idx[start:end]`` (and its projected values ``z``) so points below ``threshold`` come
    first; return where the right side starts."""
    lo, hi = start, end - 1
    while lo <= hi:
        if z[lo - start] < threshold:
            lo += 1
        else:
            idx[lo], idx[hi] = idx[hi], idx[lo]
            z[lo - start], z[hi - start] = z[hi - start], z[lo - start]
            hi -= 1
    return lo


class _Workspace(NamedTuple):
    """Scratch arrays of one tree's growth, allocated once per tree."""

    feat_perm: np.ndarray  # features, partially shuffled for axis-aligned candidates
    marker: np.ndarray  # positions of the p x mtry matrix already drawn
    pos: np.ndarray  # the drawn positions
    best_feat: np.ndarray  # the best candidate's features ...
    best_weight: np.ndarray  # ... and weights
    cand_feat: np.ndarray  # the node's candidate projections: features ...
    cand_weight: np.ndarray  # ... weights ...
    cand_ptr: np.ndarray  # ... and where each candidate's entries start (CSR)
    z: np.ndarray  # a candidate's projected values of the node's points
    zs: np.ndarray  # the same values sorted
    counts: np.ndarray  # rank_sort's per-rank counts (zero between calls)
    bits: np.ndarray  # rank_sort's rank bitmap (zero between calls)
    xlogx: np.ndarray  # xlogx_table(n_in)
    work: np.ndarray  # best_cut_with's (4, n_in) workspace
    keys: np.ndarray  # sort_values' radix keys ...
    spare: np.ndarray  # ... their second buffer ...
    hist: np.ndarray  # ... and the digit histogram


@njit(cache=True)
def _workspace(p, n, n_in, mtry, projection, nnz):
    width = mtry if projection == AXIS else max(nnz, 1)
    return _Workspace(
        np.arange(p),
        np.zeros(p * mtry if projection != AXIS else 1, dtype=np.uint8),
        np.empty(max(nnz, 1), dtype=np.int64),
        np.empty(width, dtype=np.int64),
        np.empty(width, dtype=np.float64),
        np.empty(width, dtype=np.int64),
        np.empty(width, dtype=np.float64),
        np.zeros(mtry + 1, dtype=np.int64),
        np.empty(n_in, dtype=np.float64),
        np.empty(n_in, dtype=np.float64),
        np.zeros(n, dtype=np.int32),
        np.zeros((n + 63) // 64, dtype=np.uint64),
        xlogx_table(n_in),
        np.empty((4, max(n_in, 2)), dtype=np.float64),
        np.empty(n_in, dtype=np.uint64),
        np.empty(n_in, dtype=np.uint64),
        np.empty(256, dtype=np.int64),
    )


class TreeParams(NamedTuple):
    """The growth parameters every tree of a forest shares, as kernel codes (see forest.TreeConfig)."""

    sampling: int  # BOOTSTRAP, SUBSAMPLE or NO_SAMPLING
    n_in: int  # in-bag sample size
    projection: int  # AXIS, SPARSE or GAUSSIAN
    mtry: int  # candidate projections per node
    nnz: int  # non-zeros of a node's projection matrix
    criterion: int  # FASTBIC or TWOMEANS
    min_parent: int  # nodes with fewer in-bag points are leaves
    max_depth: int  # -1: no limit
    min_cluster_size: int  # fewest points either side of a cut ...
    min_cluster_fraction: float  # ... or this fraction of the node's points, whichever is more


class Trees(NamedTuple):
    """A batch of grown trees, one row per tree in fixed-capacity arrays (rows past a tree's size
    are unused); ``sizes[t]`` holds tree t's node count and projection entry count."""

    left: np.ndarray  # (n_trees, node_cap) left child, -1 at a leaf
    right: np.ndarray  # right child
    threshold: np.ndarray  # a point goes left when its projection is below this
    proj_start: np.ndarray  # the node's projection entries: proj_start..proj_end
    proj_end: np.ndarray
    depth: np.ndarray  # the node's depth (root 0)
    parent: np.ndarray  # the node's parent, -1 at the root
    proj_feat: np.ndarray  # (n_trees, proj_cap) feature of each projection entry
    proj_weight: np.ndarray  # its weight
    leaves: np.ndarray  # (n_trees, n) the leaf every training point reaches
    inbag: np.ndarray  # (n_trees, n) how often each point is in the tree's sample
    sizes: np.ndarray  # (n_trees, 2): SIZE_NODES, SIZE_ENTRIES


@njit(cache=True)
def _grow_tree(Xt, ranks, sorted_values, seed, params, trees, t):
    """Grow tree ``t`` of ``trees`` depth-first into its rows; return (n_nodes, n_proj_entries)."""
    p, n = Xt.shape
    n_in, mtry, projection, nnz = params.n_in, params.mtry, params.projection, params.nnz
    left, right, threshold, depth, parent = (
        trees.left[t],
        trees.right[t],
        trees.threshold[t],
        trees.depth[t],
        trees.parent[t],
    )
    proj_start, proj_end, proj_feat, proj_weight = (
        trees.proj_start[t],
        trees.proj_end[t],
        trees.proj_feat[t],
        trees.proj_weight[t],
    )
    state = np.empty(1, dtype=np.uint64)
    state[0] = seed
    idx = np.empty(n_in, dtype=np.int64)
    _draw_inbag(state, params.sampling, n, idx, trees.inbag[t])
    ws = _workspace(p, n, n_in, mtry, projection, nnz)

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
        if size < params.min_parent or size < 2 or (0 <= params.max_depth <= depth[node]):
            continue
        n_cand = _sample_projections(
            state,
            p,
            mtry,
            projection,
            nnz,
            ws.feat_perm,
            ws.marker,
            ws.pos,
            ws.cand_feat,
            ws.cand_weight,
            ws.cand_ptr,
        )
        smallest = max(params.min_cluster_size, int(np.ceil(params.min_cluster_fraction * size)))
        best_thr, best_len = _best_projection(
            Xt, ranks, sorted_values, idx, start, end, n_cand, params.criterion, smallest, ws
        )
        if best_len == 0:
            continue
        _project(Xt, idx, start, end, ws.best_feat, ws.best_weight, 0, best_len, ws.z)
        lo = _partition(idx, ws.z, start, end, best_thr)
        if lo == start or lo == end:
            continue
        for e in range(best_len):
            if n_proj + e < proj_feat.shape[0]:
                proj_feat[n_proj + e] = ws.best_feat[e]
                proj_weight[n_proj + e] = ws.best_weight[e]
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
        leaves = trees.leaves[t]
        for i in range(n):
            leaves[i] = _route_one(
                Xt, i, left, right, threshold, proj_start, proj_end, proj_feat, proj_weight, 0, n_nodes
            )
    return n_nodes, n_proj


@njit(cache=True, inline="always")
def _route_one(Xt, i, left, right, threshold, proj_start, proj_end, proj_feat, proj_weight, base, size):
    """The leaf point ``i`` reaches in the tree of ``size`` nodes starting at ``base``; -1 when a child
    lies outside the tree or does not come after its node (a malformed tree: never loops)."""
    node = 0
    while left[base + node] >= 0:
        g = base + node
        z = 0.0
        for e in range(proj_start[g], proj_end[g]):
            z += np.float64(proj_weight[e]) * Xt[proj_feat[e], i]
        child = left[g] if z < threshold[g] else right[g]
        if child <= node or child >= size:  # children come after their parent: at most size steps
            return -1
        node = child
    return node


@njit(parallel=True, cache=True)
def grow_batch(Xt, ranks, sorted_values, seeds, params, node_cap, proj_cap):
    """Grow ``len(seeds)`` trees in parallel into fixed-capacity rows (:class:`Trees`); trimmed by the
    caller.

    A tree whose projections overflow ``proj_cap`` reports the size it needed (its leaves are not
    routed); the caller grows the batch again with more room (same seeds, same trees).
    """
    n_trees = seeds.shape[0]
    n = Xt.shape[1]
    sizes = np.zeros((n_trees, 2), dtype=np.int64)
    trees = Trees(
        np.empty((n_trees, node_cap), dtype=np.int32),
        np.empty((n_trees, node_cap), dtype=np.int32),
        np.zeros((n_trees, node_cap), dtype=np.float64),
        np.zeros((n_trees, node_cap), dtype=np.int64),
        np.zeros((n_trees, node_cap), dtype=np.int64),
        np.empty((n_trees, node_cap), dtype=np.int32),
        np.empty((n_trees, node_cap), dtype=np.int32),
        np.zeros((n_trees, proj_cap), dtype=np.int32),
        np.zeros((n_trees, proj_cap), dtype=np.float32),
        np.empty((n_trees, n), dtype=np.int32),
        np.zeros((n_trees, n), dtype=np.int32),
        sizes,
    )
    for t in prange(n_trees):
        # stored through the local name: stores to trees.sizes in this parallel loop were lost (numba 0.68)
        sizes[t, SIZE_NODES], sizes[t, SIZE_ENTRIES] = _grow_tree(
            Xt, ranks, sorted_values, seeds[t], params, trees, t
        )
    return trees


@njit(parallel=True, cache=True)
def route(Xt, node_offsets, left, right, threshold, proj_start, proj_end, proj_feat, proj_weight):
    """Leaf (local node id) of every column of ``Xt`` in every tree: array (n_trees, n_samples).

    -1 marks a walk that met a malformed tree (see ``_route_one``); loaded forests are checked
    before use, so this is a second line of defence.
    """
    n = Xt.shape[1]
    n_trees = node_offsets.shape[0] - 1
    leaves = np.empty((n_trees, n), dtype=np.int32)
    for i in prange(n):
        for t in range(n_trees):
            base = node_offsets[t]
            leaves[t, i] = _route_one(
                Xt,
                i,
                left,
                right,
                threshold,
                proj_start,
                proj_end,
                proj_feat,
                proj_weight,
                base,
                node_offsets[t + 1] - base,
            )
    return leaves
