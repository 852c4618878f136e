"""Block stores a packed forest is read from: mmap, pread + LRU cache, O_DIRECT, and Redis.

Each store exposes a *pool* of resident blocks (``pool[slot]`` is ``block_size`` bytes),
``block_slot[block]`` (the pool slot holding a block, -1 when absent) and ``verified[slot]``
(cleared when a block is loaded; the kernel verifies the checksum on first use). ``fetch`` brings
missing blocks in and counts them.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from frugalml.common.errors import (
    CorruptFileError,
    InvalidInputError,
    PeerUnavailableError,
    ServiceUnavailableError,
)
from frugalml.pacset.fileformat import Index, PackedFile

BACKENDS = ("mmap", "pread", "direct", "redis")


@dataclass
class IOStats:
    """What a store did since it was opened (or since ``reset``)."""

    blocks_fetched: int = 0
    bytes_fetched: int = 0
    round_trips: int = 0

    def reset(self) -> None:
        self.blocks_fetched = self.bytes_fetched = self.round_trips = 0


class BlockStore:
    """Common state of every store: the pool, the block -> slot map, verification flags, counters."""

    pool: np.ndarray
    block_slot: np.ndarray
    verified: np.ndarray

    def __init__(self, n_blocks: int, block_size: int):
        self.n_blocks = n_blocks
        self.block_size = block_size
        self.stats = IOStats()

    def fetch(self, blocks: np.ndarray) -> None:
        raise NotImplementedError

    def used(self, blocks: np.ndarray) -> None:
        """Tell the store which blocks the last walk used (keeps an LRU cache in order)."""

    def close(self) -> None:
        """Release files and connections."""


class MmapStore(BlockStore):
    """The node region mapped into memory; the OS pages blocks in.

    With ``prefetch`` (the default) every walk round asks the kernel for all the blocks the
    trees need next at once (MADV_WILLNEED), so their reads proceed in parallel instead of one
    page fault after another; ``blocks_fetched`` counts those blocks. ``readahead=False``
    (MADV_RANDOM) makes the kernel read only the pages asked for.
    """

    def __init__(self, packed: PackedFile, readahead: bool = False, prefetch: bool = True):
        meta = packed.meta
        super().__init__(meta["n_blocks"], meta["block_size"])
        self._file = open(packed.path, "rb")
        self._map = mmap.mmap(
            self._file.fileno(),
            self.n_blocks * self.block_size,
            offset=packed.nodes_offset,
            access=mmap.ACCESS_READ,
        )
        if not readahead:
            self._map.madvise(mmap.MADV_RANDOM)
        self.pool = np.frombuffer(self._map, np.uint8).reshape(self.n_blocks, self.block_size)
        self.block_slot = (
            np.full(self.n_blocks, -1, np.int64) if prefetch else np.arange(self.n_blocks, dtype=np.int64)
        )
        self.verified = np.zeros(self.n_blocks, np.uint8)

    def fetch(self, blocks: np.ndarray) -> None:
        if blocks.max() >= self.n_blocks:
            raise CorruptFileError(f"block {int(blocks.max())} is outside the mapped file; pack it again")
        for b in blocks.tolist():
            self._map.madvise(mmap.MADV_WILLNEED, b * self.block_size, self.block_size)
        self.block_slot[blocks] = blocks
        self.stats.blocks_fetched += len(blocks)
        self.stats.bytes_fetched += len(blocks) * self.block_size
        self.stats.round_trips += 1

    def close(self) -> None:
        self.pool = np.zeros((0, self.block_size), np.uint8)  # drop the view of the map
        try:
            self._map.close()
        except BufferError:  # an array still views the map; it closes when that array is freed
            pass
        self._file.close()


class CachedStore(BlockStore):
    """A fixed pool of ``cache_blocks`` blocks managed as an LRU cache over ``_read``."""

    def __init__(self, n_blocks: int, block_size: int, cache_blocks: int):
        super().__init__(n_blocks, block_size)
        if cache_blocks < 1:
            raise InvalidInputError(f"cache_blocks must be at least 1, got {cache_blocks}")
        self.capacity = min(cache_blocks, n_blocks)
        self.pool = self._allocate(self.capacity)
        self.block_slot = np.full(n_blocks, -1, np.int64)
        self.verified = np.zeros(self.capacity, np.uint8)
        self._lru: OrderedDict[int, int] = OrderedDict()

    def _allocate(self, n: int) -> np.ndarray:
        return np.zeros((n, self.block_size), np.uint8)

    def fetch(self, blocks: np.ndarray) -> None:
        wanted = [int(b) for b in blocks[: self.capacity]]
        keep = set(wanted)
        slots = []
        for b in wanted:
            if len(self._lru) < self.capacity:
                slot = len(self._lru)
            else:
                victim = next(v for v in self._lru if v not in keep)
                slot = self._lru.pop(victim)
                self.block_slot[victim] = -1
            self._lru[b] = slot
            slots.append(slot)
        self._read(wanted, slots)
        for b, slot in zip(wanted, slots, strict=True):
            self.block_slot[b] = slot
            self.verified[slot] = 0
        self.stats.blocks_fetched += len(wanted)
        self.stats.bytes_fetched += len(wanted) * self.block_size
        self.stats.round_trips += 1

    def used(self, blocks: np.ndarray) -> None:
        for b in blocks:
            if int(b) in self._lru:
                self._lru.move_to_end(int(b))

    def _read(self, blocks: list[int], slots: list[int]) -> None:
        raise NotImplementedError


class PreadStore(CachedStore):
    """``os.preadv`` of single blocks into an LRU pool (``direct=True``: O_DIRECT, no page cache)."""

    def __init__(self, packed: PackedFile, cache_blocks: int = 4096, direct: bool = False):
        meta = packed.meta
        self._direct = direct
        super().__init__(meta["n_blocks"], meta["block_size"], cache_blocks)
        self._offset = packed.nodes_offset
        flags = os.O_RDONLY | (getattr(os, "O_DIRECT", 0) if direct else 0)
        if direct and not hasattr(os, "O_DIRECT"):
            raise PeerUnavailableError("O_DIRECT is not available on this platform; use backend='pread'")
        try:
            self._fd = os.open(packed.path, flags)
        except OSError as exc:
            raise PeerUnavailableError(
                f"cannot open {packed.path} with O_DIRECT here ({exc}); use backend='pread'"
            ) from None
        self._path = packed.path

    def _allocate(self, n: int) -> np.ndarray:
        if not self._direct:
            return super()._allocate(n)
        self._buffer = mmap.mmap(-1, n * self.block_size)  # page aligned, as O_DIRECT needs
        return np.frombuffer(self._buffer, np.uint8).reshape(n, self.block_size)

    def _read(self, blocks: list[int], slots: list[int]) -> None:
        for b, slot in zip(blocks, slots, strict=True):
            try:
                got = os.preadv(self._fd, [self.pool[slot]], self._offset + b * self.block_size)
            except OSError as exc:
                if self._direct:
                    raise PeerUnavailableError(
                        f"O_DIRECT reads fail on {self._path} ({exc}); "
                        "this file system may not support it: use backend='pread'"
                    ) from None
                raise
            if got != self.block_size:
                raise CorruptFileError(f"{self._path} is truncated at block {b}; pack it again")

    def close(self) -> None:
        os.close(self._fd)


def _redis_call(fn, url: str):
    import redis

    try:
        return fn()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise ServiceUnavailableError(
            f"Redis at {url} is unreachable ({exc}); start redis-server or check the URL"
        ) from None


def _redis_client(url: str):
    try:
        import redis
    except ImportError:
        raise PeerUnavailableError("the Redis backend needs the redis client; pip install redis") from None
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)


def upload_to_redis(packed: PackedFile, url: str, prefix: str, chunk: int = 256) -> int:
    """Copy a packed file to Redis: ``{prefix}:meta``, ``{prefix}:index``, one key per block.

    Returns the number of block keys written.
    """
    client = _redis_client(url)
    meta = json.dumps(packed.meta, sort_keys=True).encode()
    bs, n = packed.meta["block_size"], packed.meta["n_blocks"]

    def write():
        client.delete(f"{prefix}:meta")  # readers see no model until it is complete
        with open(packed.path, "rb") as f:
            f.seek(packed.header.payload_offset)
            index = f.read(packed.meta["index_length"])
            for start in range(0, n, chunk):
                pipe = client.pipeline(transaction=False)
                for b in range(start, min(start + chunk, n)):
                    pipe.set(f"{prefix}:block:{b}", f.read(bs))
                pipe.execute()
        client.set(f"{prefix}:index", index)
        client.set(f"{prefix}:meta", meta + struct.pack("<I", zlib.crc32(meta)))

    _redis_call(write, url)
    return n


def read_redis_model(url: str, prefix: str) -> tuple[dict, Index]:
    """Fetch and verify a model's metadata and index from Redis."""
    client = _redis_client(url)
    raw, index = _redis_call(lambda: client.mget(f"{prefix}:meta", f"{prefix}:index"), url)
    if raw is None or index is None:
        raise CorruptFileError(
            f"Redis at {url} holds no packed model under {prefix!r}; run 'frugal pacset upload' first"
        )
    meta_bytes, (crc,) = raw[:-4], struct.unpack("<I", raw[-4:])
    if zlib.crc32(meta_bytes) != crc:
        raise CorruptFileError(f"Redis key {prefix}:meta is corrupt; upload the model again")
    meta = json.loads(meta_bytes)
    return meta, Index.parse(index, meta, f"redis {prefix}")


class RedisStore(CachedStore):
    """Blocks as Redis keys ``{prefix}:block:{i}``; one MGET per walk round fetches the missing ones."""

    def __init__(self, meta: dict, url: str, prefix: str, cache_blocks: int = 4096):
        super().__init__(meta["n_blocks"], meta["block_size"], cache_blocks)
        self._client = _redis_client(url)
        self._url, self._prefix = url, prefix

    def _read(self, blocks: list[int], slots: list[int]) -> None:
        keys = [f"{self._prefix}:block:{b}" for b in blocks]
        values = _redis_call(lambda: self._client.mget(keys), self._url)
        for b, slot, v in zip(blocks, slots, values, strict=True):
            if v is None or len(v) != self.block_size:
                raise CorruptFileError(
                    f"Redis block {b} of {self._prefix!r} is missing or truncated; upload the model again"
                )
            self.pool[slot] = np.frombuffer(v, np.uint8)

    def close(self) -> None:
        self._client.close()


def open_store(
    packed: PackedFile, backend: str, cache_blocks: int, readahead: bool = False, prefetch: bool = True
) -> BlockStore:
    """The file-backed store named ``backend`` (Redis stores are opened from a URL instead)."""
    if backend == "mmap":
        return MmapStore(packed, readahead=readahead, prefetch=prefetch)
    if backend in ("pread", "direct"):
        return PreadStore(packed, cache_blocks=cache_blocks, direct=backend == "direct")
    raise InvalidInputError(
        f"unknown backend {backend!r}; choose one of: mmap, pread, direct "
        "(or open a Redis model with PackedForest.from_redis)"
    )


__all__ = [
    "BACKENDS",
    "IOStats",
    "MmapStore",
    "PreadStore",
    "RedisStore",
    "open_store",
    "read_redis_model",
    "upload_to_redis",
]
