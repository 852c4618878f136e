"""Block checksums and the pure-numpy traversal kernel (no JIT; the numba twin is in kernels_numba).

Both walks advance a (row, tree) state until every tree has reached a leaf or waits for a block that is
not resident; they report the missing blocks so a block store can fetch them, and verify each
block's checksum (its last 8 bytes) the first time it is used, so a damaged block never yields a prediction.

State codes: a slot number (>= 0), ``-1`` done, ``<= -2`` a hard vote for class ``-code - 2``.
With ``ordered`` set, a single-value leaf is stored in ``acc[row, tree]`` instead of added, so the
caller can sum the trees in tree order and in the source library's precision.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# A slot's words (see frugalml.pacset.layout). An internal node's int32 words: left child, right
# child, feature (bit 31 set: NaN goes left), float32 threshold; with wide (32-byte) slots the
# threshold is the slot's float64 word THRESHOLD64. A leaf: IS_LEAF in word LEFT, its values from
# float64 word LEAF_VALUES on.
LEFT, RIGHT, FEATURE, THRESHOLD32 = 0, 1, 2, 3
LEAF_VALUES, THRESHOLD64 = 1, 2
IS_LEAF = -1
FEATURE_MASK = 0x7FFFFFFF
# State codes of a (row, tree): a slot number (>= 0), DONE, or VOTE - class for a hard vote.
DONE = -1
VOTE = -2

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


class PackedArrays(NamedTuple):
    """The packed model as one walk reads it: the resident block pool, its tables and the layout's scalars.

    The four ``pool_*`` fields view the same ``(slots, block_size)`` bytes as int32, float32, float64
    and uint64 words. The fields come in the order the numba kernel takes them (before the
    :class:`WalkState` fields), so ``walk_numba(*arrays, *walk)`` passes both.
    """

    pool_i32: np.ndarray
    pool_f32: np.ndarray
    pool_f64: np.ndarray
    pool_u64: np.ndarray
    block_slot: np.ndarray
    """Pool slot holding each block, -1 when it is not resident."""
    verified: np.ndarray
    """Per pool slot: 1 once its checksum was checked."""
    mult: np.ndarray
    """Checksum multipliers (:func:`checksum_multipliers`)."""
    spb: int
    """Slots per block."""
    words_per_slot: int
    wide: bool
    """Thresholds stored as float64 (32-byte slots) instead of float32."""
    tree_group: np.ndarray
    """Output column of each tree."""
    bin_start: np.ndarray
    """First tree of each bin, then the tree count."""
    n_values: int
    """Values stored per leaf."""
    ordered: bool
    """Store a single-value leaf in ``acc[row, tree]`` (summed later in tree order) instead of adding it."""


class WalkState(NamedTuple):
    """What one walk over a chunk of rows advances: the rows, each (row, tree) state, the outputs, scratch."""

    X: np.ndarray
    state: np.ndarray
    """Per (row, tree): a slot number, -1 done, <= -2 a hard vote for class ``-code - 2``."""
    acc: np.ndarray
    missing: np.ndarray
    """Receives the blocks the walk waits for."""
    mark: np.ndarray
    touched: np.ndarray
    """Set to 1 for every block used (an empty array: not recorded)."""
    trace: np.ndarray
    """Receives the block of every node visit in order (numba walk only; may be empty)."""


def walk_numpy(arrays: PackedArrays, walk: WalkState) -> tuple[int, int, int]:
    """The walk vectorised over all (row, tree) pairs in numpy: no JIT, for cold starts.

    Returns (blocks missing, the block that failed its checksum or -1, trace length: always 0).
    """
    a = arrays
    pool_i32, pool_f32, pool_f64, pool_u64 = a.pool_i32, a.pool_f32, a.pool_f64, a.pool_u64
    block_slot, verified, mult, spb, words_per_slot = (
        a.block_slot,
        a.verified,
        a.mult,
        a.spb,
        a.words_per_slot,
    )
    wide, tree_group, n_values, ordered = a.wide, a.tree_group, a.n_values, a.ordered
    X, state, acc, missing, touched = walk.X, walk.state, walk.acc, walk.missing, walk.touched
    n_rows = X.shape[0]
    row = np.broadcast_to(np.arange(n_rows)[:, None], state.shape)
    dps = words_per_slot // 2
    blocked = np.zeros(state.shape, bool)
    while True:
        votes = state <= VOTE
        if votes.any():
            np.add.at(acc, (row[votes], VOTE - state[votes]), 1.0)
            state[votes] = DONE
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
        left = pool_i32[p, w + LEFT]
        leaf = left == IS_LEAF
        if leaf.any():
            d = (code[leaf] % spb) * dps + LEAF_VALUES
            if ordered:
                acc[r[leaf], t[leaf]] = pool_f64[p[leaf], d]
            elif n_values == 1:
                np.add.at(acc, (r[leaf], tree_group[t[leaf]]), pool_f64[p[leaf], d])
            else:
                for j in range(n_values):
                    np.add.at(acc, (r[leaf], j), pool_f64[p[leaf], d + j])
            state[r[leaf], t[leaf]] = DONE
        inner = ~leaf
        p, w, r, t, code = p[inner], w[inner], r[inner], t[inner], code[inner]
        feat = pool_i32[p, w + FEATURE]
        x = X[r, feat & FEATURE_MASK]
        thr = pool_f64[p, (code % spb) * dps + THRESHOLD64] if wide else pool_f32[p, w + THRESHOLD32]
        go_left = np.where(np.isnan(x), feat < 0, x <= thr)
        state[r, t] = np.where(go_left, left[inner], pool_i32[p, w + RIGHT])
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
