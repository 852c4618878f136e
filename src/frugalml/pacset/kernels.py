"""Block checksums and the pure-numpy traversal kernel (no JIT; the numba twin is in kernels_numba).

Both walks advance a (row, tree) state until every tree has reached a leaf or waits for a block that is
not resident; they report the missing blocks so a block store can fetch them, and verify each
block's seal (its last 8 bytes) the first time it is used, so a damaged block never yields a prediction.
Each node is checked before it is followed: both children are later slots inside the node region
(which rules out cycles: every step moves forward) or hard votes for one of the model's classes,
the feature exists, a leaf's values end before its block's seal. A crafted node ends the walk with
an error code instead of an out-of-bounds read or an endless loop; the number of rounds is bounded
as well, as a second line.

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
BLOCK_MIX = np.uint64(0xD6E8FEB86659FD93)


def checksum_multipliers(block_size: int) -> np.ndarray:
    """One odd 64-bit multiplier per 8-byte word: any single-bit change alters the checksum."""
    return (np.arange(block_size // 8, dtype=np.uint64) * _GOLDEN + _SALT) | np.uint64(1)


def seal_blocks(region: np.ndarray, block_size: int, seal_key: int = 0) -> None:
    """Write each block's seal into its last 8 bytes: words times odd multipliers, mixed with the
    block's number and the model's ``seal_key`` (so a block of another model, or from another
    place in this one, fails its check)."""
    words = region.view(np.uint64).reshape(-1, block_size // 8)
    mult = checksum_multipliers(block_size)[:-1]
    sums = (words[:, :-1] * mult).sum(axis=1, dtype=np.uint64)
    ids = np.arange(len(words), dtype=np.uint64) + np.uint64(1)
    words[:, -1] = sums ^ (ids * BLOCK_MIX) ^ np.uint64(seal_key)


def _block_mix(block: int) -> np.uint64:
    return np.uint64((block + 1) * int(BLOCK_MIX) % (1 << 64))


def leaf_slots(n_values: int, slot_size: int) -> int:
    """Slots a leaf with ``n_values`` float64 values takes (its marker word, then the values)."""
    return -(-(8 + 8 * n_values) // slot_size)


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
    seal_key: np.uint64
    """The model's key mixed into every block's seal (0 for files written before it existed)."""
    n_slots: int
    """Slots in the node region: every child is a slot after its parent's and below this."""
    vote_classes: int
    """Classes a hard vote may name (0: the model has no hard votes)."""
    leaf_limit: int
    """The last position in a block where a leaf can start and still end before the seal."""


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

    Every node is checked before it is used (children after it and inside the node region,
    features and voted classes in range, leaves inside their block), so a crafted block ends the
    walk instead of indexing out of bounds or looping; the round count is bounded as well.

    Returns (blocks missing, a damaged block: ``b`` failed its seal, ``-2 - b`` holds an invalid
    node, -1 none; trace length: always 0).
    """
    a, X, state, acc = arrays, walk.X, walk.state, walk.acc
    row = np.broadcast_to(np.arange(X.shape[0])[:, None], state.shape)
    blocked = np.zeros(state.shape, bool)
    for _ in range(a.n_slots + 3):  # codes grow every round: a second line behind the node checks
        votes = state <= VOTE
        if votes.any():
            np.add.at(acc, (row[votes], VOTE - state[votes]), 1.0)
            state[votes] = DONE
        live = (state >= 0) & ~blocked
        if not live.any():
            waiting_blocks = _distinct(state[blocked] // a.spb)[0]
            walk.missing[: len(waiting_blocks)] = waiting_blocks
            return len(waiting_blocks), -1, 0
        code = state[live]
        blk = code // a.spb
        p = a.block_slot[blk]
        waiting = p < 0
        if waiting.any():
            blocked[tuple(i[waiting] for i in np.nonzero(live))] = True
        go = ~waiting
        code, blk, p = code[go], blk[go], p[go]
        r, t = (i[go] for i in np.nonzero(live))
        if code.size:
            bad = _numpy_step(a, walk, code, blk, p, r, t)
            if bad != -1:
                return 0, bad, 0
    return 0, -2 - int(state.max() // a.spb), 0


def _numpy_step(a: PackedArrays, walk: WalkState, code, blk, p, r, t) -> int:
    """Advance the resident (row, tree) pairs one node; return -1, or the damaged block's code."""
    unchecked = a.verified[p] == 0
    fresh, first = _distinct(p[unchecked])
    for q, bnum in zip(fresh, blk[unchecked][first], strict=True):
        words = a.pool_u64[q]
        h = (words[:-1] * a.mult[:-1]).sum(dtype=np.uint64) ^ _block_mix(int(bnum)) ^ a.seal_key
        if h != words[-1]:
            return int(bnum)
        a.verified[q] = 1
    if walk.touched.shape[0] > 0:
        walk.touched[blk] = 1
    pos = code % a.spb
    w = pos * a.words_per_slot
    dps = a.words_per_slot // 2
    left = a.pool_i32[p, w + LEFT]
    leaf = left == IS_LEAF
    right = a.pool_i32[p, w + RIGHT]
    word = a.pool_i32[p, w + FEATURE]  # bit 31: NaN goes left
    feat = word & FEATURE_MASK
    if a.vote_classes:
        children_ok = _valid_child(a, code, left) & _valid_child(a, code, right)
    else:  # no votes: both children are later slots inside the node region
        children_ok = (np.minimum(left, right) > code) & (np.maximum(left, right) < a.n_slots)
    invalid = np.where(leaf, pos > a.leaf_limit, (feat >= walk.X.shape[1]) | ~children_ok)
    if invalid.any():
        return -2 - int(blk[invalid][0])
    if leaf.any():
        d = pos[leaf] * dps + LEAF_VALUES
        rl, tl, pl = r[leaf], t[leaf], p[leaf]
        if a.ordered:
            walk.acc[rl, tl] = a.pool_f64[pl, d]
        elif a.n_values == 1:
            np.add.at(walk.acc, (rl, a.tree_group[tl]), a.pool_f64[pl, d])
        else:
            for j in range(a.n_values):
                np.add.at(walk.acc, (rl, j), a.pool_f64[pl, d + j])
        walk.state[rl, tl] = DONE
    inner = ~leaf
    p, pos, w, r, t = p[inner], pos[inner], w[inner], r[inner], t[inner]
    x = walk.X[r, feat[inner]]
    thr = a.pool_f64[p, pos * dps + THRESHOLD64] if a.wide else a.pool_f32[p, w + THRESHOLD32]
    go_left = np.where(np.isnan(x), word[inner] < 0, x <= thr)
    walk.state[r, t] = np.where(go_left, left[inner], right[inner])
    return -1


def _valid_child(a: PackedArrays, code: np.ndarray, child: np.ndarray) -> np.ndarray:
    """A child is a later slot inside the node region, or a hard vote for one of the model's classes."""
    return ((child > code) & (child < a.n_slots)) | ((child <= VOTE) & (VOTE - child < a.vote_classes))


def _distinct(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of ``a`` and the index of one occurrence of each (``np.unique`` without
    its lazy import of ``numpy.ma``, which costs ~0.1 s of a cold start)."""
    order = np.argsort(a, kind="stable")
    s = a[order]
    keep = np.ones(len(s), bool)
    keep[1:] = s[1:] != s[:-1]
    return s[keep], order[keep]
