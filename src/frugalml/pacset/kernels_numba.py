"""The numba round-robin traversal kernel (same contract as :func:`frugalml.pacset.kernels.walk_numpy`).

The kernel takes flat arguments, the slot's word offsets and state codes as named module constants;
:func:`walk_packed` unpacks the typed :class:`~frugalml.pacset.kernels.PackedArrays` and
:class:`~frugalml.pacset.kernels.WalkState` into it in one place.

Kept apart so that predicting with the numpy walk never imports numba (~0.3 s of a cold start).
"""

from __future__ import annotations

import numba
import numpy as np

from frugalml.pacset.kernels import (
    DONE,
    FEATURE,
    FEATURE_MASK,
    IS_LEAF,
    LEAF_VALUES,
    LEFT,
    RIGHT,
    THRESHOLD32,
    THRESHOLD64,
    VOTE,
    PackedArrays,
    WalkState,
)


@numba.njit(cache=True)
def _checksum(words, mult, block, seal_key):
    h = np.uint64(0)
    for i in range(words.shape[0] - 1):
        h += words[i] * mult[i]
    return h ^ (np.uint64(block + 1) * np.uint64(0xD6E8FEB86659FD93)) ^ seal_key


@numba.njit(cache=True)
def _valid_child(code, child, n_slots, vote_classes):
    """A later slot inside the node region, or a hard vote for one of the model's classes."""
    if child >= 0:
        return code < child < n_slots
    return child <= VOTE and VOTE - child < vote_classes


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
    tree_group,
    bin_start,
    n_values,
    ordered,
    seal_key,
    n_slots,
    vote_classes,
    leaf_limit,
    X,
    state,
    acc,
    missing,
    mark,
    touched,
    trace,
):
    """Advance all (row, tree) states round-robin per bin; return (n_missing, bad, n_trace).

    ``bad``: -1, a block that failed its seal, or ``-2 - block`` for a block holding an invalid
    node. Each node is checked before it is used (see ``walk_numpy``), and a bin's rounds are
    bounded by the slot count (children come after their parents) as a second line.
    """
    n_missing = 0
    n_trace = 0
    doubles_per_slot = words_per_slot // 2
    for r in range(X.shape[0]):
        for b in range(bin_start.shape[0] - 1):
            active = True
            rounds = 0
            while active:
                active = False
                rounds += 1
                if rounds > n_slots + 2:
                    return n_missing, -2, n_trace
                for t in range(bin_start[b], bin_start[b + 1]):
                    code = state[r, t]
                    if code == DONE:
                        continue
                    if code <= VOTE:
                        acc[r, VOTE - code] += 1.0
                        state[r, t] = DONE
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
                        if _checksum(pool_u64[p], mult, blk, seal_key) != pool_u64[p, pool_u64.shape[1] - 1]:
                            return n_missing, blk, n_trace
                        verified[p] = 1
                    if touched.shape[0] > 0:
                        touched[blk] = 1
                    if n_trace < trace.shape[0]:
                        trace[n_trace] = blk
                        n_trace += 1
                    w = (code % spb) * words_per_slot
                    left = pool_i32[p, w + LEFT]
                    if left == IS_LEAF:
                        if code % spb > leaf_limit:
                            return n_missing, -2 - blk, n_trace
                        d = (code % spb) * doubles_per_slot + LEAF_VALUES
                        if ordered:
                            acc[r, t] = pool_f64[p, d]
                        elif n_values == 1:
                            acc[r, tree_group[t]] += pool_f64[p, d]
                        else:
                            for j in range(n_values):
                                acc[r, j] += pool_f64[p, d + j]
                        state[r, t] = DONE
                        continue
                    feat = pool_i32[p, w + FEATURE]
                    right = pool_i32[p, w + RIGHT]
                    if (
                        (feat & FEATURE_MASK) >= X.shape[1]
                        or not _valid_child(code, left, n_slots, vote_classes)
                        or not _valid_child(code, right, n_slots, vote_classes)
                    ):
                        return n_missing, -2 - blk, n_trace
                    x = X[r, feat & FEATURE_MASK]
                    if np.isnan(x):
                        go_left = feat < 0
                    elif wide:
                        go_left = x <= pool_f64[p, (code % spb) * doubles_per_slot + THRESHOLD64]
                    else:
                        go_left = x <= pool_f32[p, w + THRESHOLD32]
                    state[r, t] = left if go_left else right
                    active = True
    for k in range(n_missing):
        mark[missing[k]] = 0
    return n_missing, -1, n_trace


def walk_packed(arrays: PackedArrays, walk: WalkState) -> tuple[int, int, int]:
    """:func:`walk_numba` on the typed arrays and state (the same call as ``walk_numpy``)."""
    return walk_numba(*arrays, *walk)
