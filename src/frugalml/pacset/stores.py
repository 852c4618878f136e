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
import secrets
import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from frugalml.common.errors import (
    CorruptFileError,
    InvalidInputError,
    PeerUnavailableError,
    ServiceUnavailableError,
)
from frugalml.pacset.fileformat import Index, ModelMeta, PackedFile

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

    def prepare(self, n_rows: int, n_trees: int) -> None:
        """Before a batch of ``n_rows`` rows is walked (a remote store may fetch the whole file)."""

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
        # Uninitialised: a slot is read only after ``fetch`` filled it (``block_slot`` gates it), and
        # zero-filling a pool of thousands of blocks would cost a cold query milliseconds.
        return np.empty((n, self.block_size), np.uint8)

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


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages.

    Examples
    --------
    >>> redact("rediss://app:s3cret@cache:6380/0")
    'rediss://app:***@cache:6380/0'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _redis_call(fn, url: str):
    import redis

    try:
        return fn()
    except redis.exceptions.AuthenticationError:
        raise ServiceUnavailableError(
            f"Redis at {redact(url)} refused the credentials; check the user and password in the URL"
        ) from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise ServiceUnavailableError(
            f"Redis at {redact(url)} is unreachable ({type(exc).__name__}); start redis-server or "
            "check the URL (rediss:// for TLS)"
        ) from None
    except redis.exceptions.ResponseError as exc:
        raise ServiceUnavailableError(
            f"Redis at {redact(url)} refused a command ({str(exc).split(chr(10))[0][:120]}); "
            "check the user's ACL permissions"
        ) from None


def _redis_client(url: str):
    try:
        import redis
    except ImportError:
        raise PeerUnavailableError("the Redis backend needs the redis client; pip install redis") from None
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
    except ValueError:
        raise InvalidInputError(
            f"{redact(url)} is not a Redis URL; use redis://[user:password@]host:port/db or rediss:// for TLS"
        ) from None


def upload_to_redis(packed: PackedFile, url: str, prefix: str, chunk: int = 256) -> int:
    """Copy a packed file to Redis under a fresh version of ``prefix``, then switch to it atomically.

    The blocks, index and metadata go to ``{prefix}:v:{version}:...`` (a random version); only
    when all are written does ``{prefix}:current`` point at the new version, so readers see the
    old model or the new one, never a mix. The version is also the upload's nonce: it is mixed
    into every block's seal and recorded in the metadata (``upload_nonce``), so a block copied
    from another upload of the same model fails its check. The replaced version's keys expire
    after a minute (time for queries that opened it to finish). Returns the number of block keys
    written.
    """
    client = _redis_client(url)
    version = secrets.token_hex(8)
    meta = json.dumps({**packed.meta, "upload_nonce": version}, sort_keys=True).encode()
    bs, n = packed.meta["block_size"], packed.meta["n_blocks"]
    base = f"{prefix}:v:{version}"
    nonce = np.uint64(int(version, 16))

    def write():
        with open(packed.path, "rb") as f:
            f.seek(packed.header.payload_offset)
            index = f.read(packed.meta["index_length"])
            for start in range(0, n, chunk):
                count = min(start + chunk, n) - start
                raw = f.read(count * bs)
                if len(raw) != count * bs:
                    raise CorruptFileError(f"{packed.path} is truncated at block {start}; pack it again")
                words = np.frombuffer(raw, np.uint64).reshape(count, bs // 8).copy()
                words[:, -1] ^= nonce  # the seal now binds this upload too
                pipe = client.pipeline(transaction=False)
                for i in range(count):
                    pipe.set(f"{base}:block:{start + i}", words[i].tobytes())
                pipe.execute()
        client.set(f"{base}:index", index)
        client.set(f"{base}:meta", meta + struct.pack("<I", zlib.crc32(meta)))
        old = client.set(f"{prefix}:current", version, get=True)
        if old is not None and old.decode(errors="replace") != version:
            _expire_version(client, f"{prefix}:v:{old.decode(errors='replace')}")

    _redis_call(write, url)
    return n


def _expire_version(client, base: str, seconds: int = 60) -> None:
    pipe = client.pipeline(transaction=False)
    for key in client.scan_iter(match=f"{base}:*", count=1000):
        pipe.expire(key, seconds)
    pipe.execute()


def _model_keys(client, url: str, prefix: str) -> tuple[str, str | None]:
    """The key prefix of the model ``prefix`` names now (its current version, or an older upload's
    keys) and that version (None for an upload without versions)."""
    version = _redis_call(lambda: client.get(f"{prefix}:current"), url)
    if version is None:
        return prefix, None  # uploaded by an earlier version of pacset, without versions
    text = version.decode(errors="replace")
    if len(text) != 16 or text.strip("0123456789abcdef"):
        raise CorruptFileError(f"Redis key {prefix}:current is not a model version; upload the model again")
    return f"{prefix}:v:{text}", text


def read_redis_model(url: str, prefix: str) -> tuple[dict, Index, str]:
    """Fetch and check a model's metadata and index from Redis; also return its keys' prefix."""
    client = _redis_client(url)
    keys, version = _model_keys(client, url, prefix)
    raw, index, n_keys = _redis_call(
        lambda: [*client.mget(f"{keys}:meta", f"{keys}:index"), client.dbsize()], url
    )
    if raw is None or index is None:
        raise CorruptFileError(
            f"Redis at {redact(url)} holds no packed model under {prefix!r}; run 'frugal pacset upload' first"
        )
    where = f"Redis model {prefix!r}"
    if len(raw) < 5 or zlib.crc32(raw[:-4]) != struct.unpack("<I", raw[-4:])[0]:
        raise CorruptFileError(f"{where}: its metadata key is corrupt; upload the model again")
    try:
        meta = json.loads(raw[:-4])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        meta = None
    if not isinstance(meta, dict):
        raise CorruptFileError(f"{where}: its metadata is not a JSON object; upload the model again")
    model = ModelMeta.from_meta(meta, where)
    if version is not None and meta.get("upload_nonce") != version:
        raise CorruptFileError(
            f"{where}: its metadata belongs to another upload of the model; upload the model again"
        )
    if model.n_blocks > n_keys:  # allocations follow n_blocks: bound it by what the store holds
        raise CorruptFileError(
            f"{where}: metadata claims {model.n_blocks} blocks but the database holds {n_keys} keys; "
            "upload the model again"
        )
    return meta, Index.parse(index, meta, where), keys


class RedisStore(CachedStore):
    """Blocks as Redis keys ``{prefix}:block:{i}``; one MGET per walk round fetches the missing ones."""

    def __init__(self, meta: dict, url: str, prefix: str, cache_blocks: int = 4096, name: str = ""):
        super().__init__(meta["n_blocks"], meta["block_size"], cache_blocks)
        self._client = _redis_client(url)
        self._url, self._prefix, self._name = url, prefix, name or prefix

    def _read(self, blocks: list[int], slots: list[int]) -> None:
        keys = [f"{self._prefix}:block:{b}" for b in blocks]
        values = _redis_call(lambda: self._client.mget(keys), self._url)
        for b, slot, v in zip(blocks, slots, values, strict=True):
            if v is None or len(v) != self.block_size:
                raise CorruptFileError(
                    f"Redis block {b} of {self._name!r} is missing or truncated; upload the model again"
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
    "redact",
    "upload_to_redis",
]
