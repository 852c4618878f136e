"""The numba round-robin traversal kernel (same contract as :func:`frugalml.pacset.kernels.walk_numpy`).

Kept apart so that predicting with the numpy walk never imports numba (~0.3 s of a cold start).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _checksum(words, mult, block):
    h = np.uint64(0)
    for i in range(words.shape[0] - 1):
        h += words[i] * mult[i]
    return h ^ (np.uint64(block + 1) * np.uint64(0xD6E8FEB86659FD93))


@numba.njit(cache=True)
def walk_numba(
    pool_i32,
    pool_f32,
    pool_f64,
    pool_u64,
    block_slot,
    verified,
    mult,
    spb,
    words_per_slot,
    wide,
    X,
    state,
    acc,
    tree_group,
    bin_start,
    n_values,
    ordered,
    missing,
    mark,
    touched,
    trace,
):
    """Advance all (row, tree) states round-robin per bin; return (n_missing, bad_block, n_trace)."""
    n_missing = 0
    n_trace = 0
    doubles_per_slot = words_per_slot // 2
    for r in range(X.shape[0]):
        for b in range(bin_start.shape[0] - 1):
            active = True
            while active:
                active = False
                for t in range(bin_start[b], bin_start[b + 1]):
                    code = state[r, t]
                    if code == -1:
                        continue
                    if code <= -2:
                        acc[r, -code - 2] += 1.0
                        state[r, t] = -1
                        continue
                    blk = code // spb
                    p = block_slot[blk]
                    if p < 0:
                        if mark[blk] == 0:
                            mark[blk] = 1
                            missing[n_missing] = blk
                            n_missing += 1
                        continue
                    if verified[p] == 0:
                        if _checksum(pool_u64[p], mult, blk) != pool_u64[p, pool_u64.shape[1] - 1]:
                            return n_missing, blk, n_trace
                        verified[p] = 1
                    if touched.shape[0] > 0:
                        touched[blk] = 1
                    if n_trace < trace.shape[0]:
                        trace[n_trace] = blk
                        n_trace += 1
                    w = (code % spb) * words_per_slot
                    left = pool_i32[p, w]
                    if left == -1:
                        d = (code % spb) * doubles_per_slot + 1
                        if ordered:
                            acc[r, t] = pool_f64[p, d]
                        elif n_values == 1:
                            acc[r, tree_group[t]] += pool_f64[p, d]
                        else:
                            for j in range(n_values):
                                acc[r, j] += pool_f64[p, d + j]
                        state[r, t] = -1
                        continue
                    feat = pool_i32[p, w + 2]
                    x = X[r, feat & 0x7FFFFFFF]
                    if np.isnan(x):
                        go_left = feat < 0
                    elif wide:
                        go_left = x <= pool_f64[p, (code % spb) * doubles_per_slot + 2]
                    else:
                        go_left = x <= pool_f32[p, w + 3]
                    state[r, t] = left if go_left else pool_i32[p, w + 1]
                    active = True
    for k in range(n_missing):
        mark[missing[k]] = 0
    return n_missing, -1, n_trace
