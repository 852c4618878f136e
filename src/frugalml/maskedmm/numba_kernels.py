"""The numba fallback for the C kernels: same maps, packed panels and counters, no code table.

Used when the compiled extension is missing (a build without a C compiler). Inputs arrive already
filtered (threshold and masks applied), so zero tests here are plain ``!= 0``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

SEGMENTS = 4
_ONE = np.uint64(1)


@njit(cache=True)
def a_maps(a):
    """Row bitmaps of the non-zero entries of ``a`` (M x ceil(K/64) uint64) and the non-finite count."""
    m, k = a.shape
    bits = np.zeros((m, (k + 63) // 64), np.uint64)
    bad = 0
    for i in range(m):
        for j in range(k):
            v = a[i, j]
            if not np.isfinite(v):
                bad += 1
            if v != 0:
                bits[i, j // 64] |= _ONE << np.uint64(j % 64)
    return bits, bad


@njit(cache=True)
def pack_b(b, width):
    """Panels (P x K x 4*width, zero-padded) and per-segment row bitmaps (P x 5 x words) of ``b``."""
    k, n = b.shape
    nr = width * SEGMENTS
    npan = (n + nr - 1) // nr
    panels = np.zeros((npan, k, nr), b.dtype)
    sbits = np.zeros((npan, SEGMENTS + 1, (k + 63) // 64), np.uint64)
    for p in range(npan):
        for kk in range(k):
            bit = _ONE << np.uint64(kk % 64)
            for s in range(SEGMENTS):
                for lane in range(width):
                    j = p * nr + s * width + lane
                    if j < n and b[kk, j] != 0:
                        panels[p, kk, s * width + lane] = b[kk, j]
                        sbits[p, s, kk // 64] |= bit
                        sbits[p, SEGMENTS, kk // 64] |= bit
    return panels, sbits


@njit(cache=True, parallel=True)
def multiply(a, bits, panels, sbits, width, n, c, mr):
    """C = A @ B over (row block, panel) tiles, skipping k absent from the A block or the panel.

    Segments are chosen per 64-k word as in the C driver. Returns (iterations, vector FMAs,
    dispatches), the same counters as the C kernel.
    """
    m, k = a.shape
    nr = width * SEGMENTS
    npan = (n + nr - 1) // nr
    nw = (k + 63) // 64
    nb = (m + mr - 1) // mr
    counters = np.zeros((npan * nb, 3), np.int64)
    for t in prange(npan * nb):
        p, b = t // nb, t % nb
        i0 = b * mr
        rows, cols = min(mr, m - i0), min(nr, n - p * nr)
        tile = np.zeros((rows, nr), c.dtype)
        for w in range(nw):
            word = np.uint64(0)
            for r in range(rows):
                word |= bits[i0 + r, w]
            word &= sbits[p, SEGMENTS, w]
            if word == 0:
                continue
            needed = 0
            for s in range(SEGMENTS):
                if word & sbits[p, s, w]:
                    needed += 1
            counters[t, 2] += 1
            for bit in range(64):
                if (word >> np.uint64(bit)) & _ONE:
                    kk = w * 64 + bit
                    counters[t, 0] += 1
                    counters[t, 1] += rows * needed
                    for r in range(rows):
                        av = a[i0 + r, kk]
                        for s in range(SEGMENTS):
                            if word & sbits[p, s, w]:
                                for lane in range(s * width, (s + 1) * width):
                                    tile[r, lane] += av * panels[p, kk, lane]
        c[i0 : i0 + rows, p * nr : p * nr + cols] = tile[:, :cols]
    return counters.sum(axis=0)


@njit(cache=True, parallel=True)
def spgemm(a, bits, indptr, indices, values, c):
    """C = A @ B with B as CSR rows (Gustavson, a dense row accumulator), A's non-zeros from its
    bitmap. Returns (element products, non-zeros of A visited), the C kernel's counters."""
    m = a.shape[0]
    nw = bits.shape[1]
    counters = np.zeros((m, 2), np.int64)
    for i in prange(m):
        acc = np.zeros(c.shape[1], c.dtype)
        for w in range(nw):
            word = bits[i, w]
            for bit in range(64):
                if (word >> np.uint64(bit)) & _ONE:
                    kk = w * 64 + bit
                    av = a[i, kk]
                    for p in range(indptr[kk], indptr[kk + 1]):
                        acc[indices[p]] += av * values[p]
                    counters[i, 0] += indptr[kk + 1] - indptr[kk]
                    counters[i, 1] += 1
        c[i, :] = acc
    return counters.sum(axis=0)
