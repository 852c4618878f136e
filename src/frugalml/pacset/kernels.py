"""Block checksums and the pure-numpy traversal kernel (no JIT; the numba twin is in kernels_numba).

Both walks advance a (row, tree) state until every tree has reached a leaf or waits for a block that is
not resident; they report the missing blocks so a block store can fetch them, and verify each
block's checksum (its last 8 bytes) the first time it is used, so a damaged block never yields a prediction.

State codes: a slot number (>= 0), ``-1`` done, ``<= -2`` a hard vote for class ``-code - 2``.
With ``ordered`` set, a single-value leaf is stored in ``acc[row, tree]`` instead of added, so the
caller can sum the trees in tree order and in the source library's precision.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SALT = np.uint64(0x632BE59BD9B4E019)
_BLOCK_MIX = np.uint64(0xD6E8FEB86659FD93)


def checksum_multipliers(block_size: int) -> np.ndarray:
    """One odd 64-bit multiplier per 8-byte word: any single-bit change alters the checksum."""
    return (np.arange(block_size // 8, dtype=np.uint64) * _GOLDEN + _SALT) | np.uint64(1)


def seal_blocks(region: np.ndarray, block_size: int) -> None:
    """Write each block's checksum into its last 8 bytes (words times odd multipliers, plus the id)."""
    words = region.view(np.uint64).reshape(-1, block_size // 8)
    mult = checksum_multipliers(block_size)[:-1]
    sums = (words[:, :-1] * mult).sum(axis=1, dtype=np.uint64)
    ids = np.arange(len(words), dtype=np.uint64) + np.uint64(1)
    words[:, -1] = sums ^ (ids * _BLOCK_MIX)


def _block_mix(block: int) -> np.uint64:
    return np.uint64((block + 1) * int(_BLOCK_MIX) % (1 << 64))


def walk_numpy(
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
    """The same walk vectorised over all (row, tree) pairs in numpy: no JIT, for cold starts."""
    del mark, trace, bin_start
    n_rows = X.shape[0]
    row = np.broadcast_to(np.arange(n_rows)[:, None], state.shape)
    dps = words_per_slot // 2
    blocked = np.zeros(state.shape, bool)
    while True:
        votes = state <= -2
        if votes.any():
            np.add.at(acc, (row[votes], -state[votes] - 2), 1.0)
            state[votes] = -1
        live = (state >= 0) & ~blocked
        if not live.any():
            break
        code = state[live]
        blk = code // spb
        p = block_slot[blk]
        waiting = p < 0
        if waiting.any():
            idx = tuple(a[waiting] for a in np.nonzero(live))
            blocked[idx] = True
        go = ~waiting
        code, blk, p = code[go], blk[go], p[go]
        r, t = (a[go] for a in np.nonzero(live))
        if not code.size:
            continue
        unchecked = verified[p] == 0
        fresh, first = _distinct(p[unchecked])
        for q, bnum in zip(fresh, blk[unchecked][first], strict=True):
            words = pool_u64[q]
            h = (words[:-1] * mult[:-1]).sum(dtype=np.uint64) ^ _block_mix(int(bnum))
            if h != words[-1]:
                return 0, int(bnum), 0
            verified[q] = 1
        if touched.shape[0] > 0:
            touched[blk] = 1
        w = (code % spb) * words_per_slot
        left = pool_i32[p, w]
        leaf = left == -1
        if leaf.any():
            d = (code[leaf] % spb) * dps + 1
            if ordered:
                acc[r[leaf], t[leaf]] = pool_f64[p[leaf], d]
            elif n_values == 1:
                np.add.at(acc, (r[leaf], tree_group[t[leaf]]), pool_f64[p[leaf], d])
            else:
                for j in range(n_values):
                    np.add.at(acc, (r[leaf], j), pool_f64[p[leaf], d + j])
            state[r[leaf], t[leaf]] = -1
        inner = ~leaf
        p, w, r, t, code = p[inner], w[inner], r[inner], t[inner], code[inner]
        feat = pool_i32[p, w + 2]
        x = X[r, feat & 0x7FFFFFFF]
        thr = pool_f64[p, (code % spb) * dps + 2] if wide else pool_f32[p, w + 3]
        go_left = np.where(np.isnan(x), feat < 0, x <= thr)
        state[r, t] = np.where(go_left, left[inner], pool_i32[p, w + 1])
    waiting_blocks = _distinct(state[blocked] // spb)[0]
    missing[: len(waiting_blocks)] = waiting_blocks
    return len(waiting_blocks), -1, 0


def _distinct(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of ``a`` and the index of one occurrence of each (``np.unique`` without
    its lazy import of ``numpy.ma``, which costs ~0.1 s of a cold start)."""
    order = np.argsort(a, kind="stable")
    s = a[order]
    keep = np.ones(len(s), bool)
    keep[1:] = s[1:] != s[:-1]
    return s[keep], order[keep]
