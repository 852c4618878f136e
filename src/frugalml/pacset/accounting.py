"""I/O accounting: evict a file from the page cache, count its resident pages (mincore), read the
process's bytes read (/proc/self/io), and simulate an LRU block cache smaller than the model."""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np

from frugalml.common.errors import PeerUnavailableError

PAGE = mmap.PAGESIZE


def evict(path: str | os.PathLike) -> None:
    """Drop ``path``'s pages from the page cache (posix_fadvise DONTNEED; no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident_pages(path: str | os.PathLike) -> tuple[int, int]:
    """(pages of ``path`` in the page cache, pages in the file), measured with ``mincore``."""
    size = os.path.getsize(path)
    n_pages = -(-size // PAGE)
    if size == 0:
        return 0, 0
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if not hasattr(libc, "mincore"):
        raise PeerUnavailableError("mincore is not available on this platform")
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
    try:
        anchor = ctypes.c_char.from_buffer(mm)
        vec = (ctypes.c_ubyte * n_pages)()
        rc = libc.mincore(ctypes.c_void_p(ctypes.addressof(anchor)), ctypes.c_size_t(size), vec)
        del anchor
        if rc != 0:
            raise OSError(ctypes.get_errno(), "mincore failed")
        resident = int((np.ctypeslib.as_array(vec) & 1).sum())
    finally:
        mm.close()
    return resident, n_pages


def read_bytes() -> int:
    """Bytes this process caused to be read from storage so far (``/proc/self/io`` read_bytes)."""
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("read_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    raise PeerUnavailableError("/proc/self/io is not readable here; bytes read cannot be counted")


def simulate_lru(traces: Iterable[np.ndarray], capacity: int) -> np.ndarray:
    """Blocks fetched per query when an LRU cache of ``capacity`` blocks serves the queries in order.

    ``traces``: one array of block ids (in access order) per query, e.g. from
    ``PackedForest.raw_scores(x, trace=...)``. The cache persists across queries.
    """
    cache: OrderedDict[int, None] = OrderedDict()
    misses = []
    for trace in traces:
        n = 0
        for b in np.asarray(trace).tolist():
            if b in cache:
                cache.move_to_end(b)
                continue
            n += 1
            cache[b] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
        misses.append(n)
    return np.asarray(misses)
