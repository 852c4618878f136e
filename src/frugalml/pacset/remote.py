"""Predict from a packed file served over HTTP(S): range requests for the header, the index and,
per walk round, every block the round is missing.

A file opens with one range request (two when its index is larger than the first read) of
``head_bytes``: the header, the index and the node blocks right after them, which are kept (a file
packed with a shared top, ``pack --target remote``, has every tree's top levels there, so the walk
starts below them). While that request is in flight the pool's other connections open, so the
first walk round pays no handshakes. Each walk round then fetches all of its missing blocks at
once: adjacent blocks are coalesced into one range, the ranges go out in parallel over a pool of
``concurrency`` connections, and every block's seal is checked before it enters the in-memory LRU
cache or the optional on-disk cache shared by processes (``cache_dir``, one file per block, written
atomically, keyed by the payload's SHA-256).

The server must answer range requests: one that ignores them is refused rather than silently
downloaded whole. The first response's ETag (or Last-Modified) is pinned and sent back as
``If-Match`` (or ``If-Unmodified-Since``), so a file replaced on the server while a model is open
is refused, never mixed. Requests time out, and are retried with exponential backoff on 5xx, 429,
dropped connections and stalls. Messages name the host and path, never credentials or a
presigned URL's query string.

``fetch`` chooses how blocks arrive: ``"blocks"`` (only those the walk needs), ``"whole"`` (the
file in one request, its SHA-256 checked) or ``"auto"`` (blocks, unless a batch is expected to
need at least ``whole_share`` of the file); the choice is recorded in ``store.plan``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from frugalml.common.errors import (
    CorruptFileError,
    DataNotFoundError,
    FrugalError,
    InvalidInputError,
    PeerUnavailableError,
    ServiceUnavailableError,
)
from frugalml.pacset.fileformat import MAGIC, VERSION, Index, ModelMeta
from frugalml.pacset.kernels import BLOCK_MIX, checksum_multipliers
from frugalml.pacset.stores import CachedStore

FETCH_POLICIES = ("auto", "blocks", "whole")
REMOTE_SCHEMES = ("http", "https")
OBJECT_SCHEMES = ("s3", "gs", "az", "abfs")
_FIXED = struct.Struct("<8sIIQQ32s")  # the container header's fixed part (frugalml.common.files)
_RETRY_STATUS = {429, 500, 502, 503, 504}
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class RemoteOptions:
    """How a remote model is read.

    concurrency: parallel range requests (and pooled connections); timeout: seconds to connect
    and between bytes of a response; retries: further tries after a 5xx, 429, dropped connection
    or stall, ``backoff`` seconds doubling each time; cache_blocks: blocks held in memory (LRU);
    cache_dir: a folder for blocks shared between processes (None: memory only); fetch: "auto",
    "blocks" or "whole"; whole_share: with "auto", a batch expected to need at least this share
    of the blocks fetches the whole file; head_bytes: the first range read (header, index and
    the node blocks that follow them: a file packed with ``shared_top`` keeps every tree's top
    levels there, so the walk starts below them without another round trip); ranges_per_request:
    runs of blocks asked for in one multi-range request (1: one run per request; object stores
    and servers without multi-range support get one each); readahead: when a walk round needs
    fewer than ``readahead_below`` blocks (the last few deep paths), also fetch the ``readahead``
    blocks after each, in the same ranges (speculation: a W-DFS path often continues there).
    """

    concurrency: int = 16
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.1
    cache_blocks: int = 4096
    cache_dir: str | os.PathLike | None = None
    fetch: str = "auto"
    whole_share: float = 0.5
    head_bytes: int = 1 << 17
    ranges_per_request: int = 64
    readahead: int = 0
    readahead_below: int = 8

    def check(self) -> None:
        if self.fetch not in FETCH_POLICIES:
            raise InvalidInputError(
                f"unknown fetch policy {self.fetch!r}; choose one of: auto, blocks, whole"
            )
        if (
            self.concurrency < 1
            or self.retries < 0
            or self.timeout <= 0
            or self.cache_blocks < 1
            or self.readahead < 0
        ):
            raise InvalidInputError(
                "concurrency and cache_blocks must be at least 1, retries and readahead at least 0 "
                "and timeout positive"
            )


def is_url(path: object) -> bool:
    """Whether ``path`` names a remote model (http, https, or an object store scheme)."""
    return isinstance(path, str) and urlsplit(path).scheme in REMOTE_SCHEMES + OBJECT_SCHEMES


def display_url(url: str) -> str:
    """``url`` without credentials or query string, for messages.

    Examples
    --------
    >>> display_url("https://user:pw@cdn.example.com:8443/m/model.pacset?X-Amz-Signature=abc")
    'https://cdn.example.com:8443/m/model.pacset'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class HttpFile:
    """One remote file read with range requests through a pooled, thread-safe client.

    ``get(start, stop)`` returns bytes ``[start, stop)``; the first response pins the file's size
    and ETag/Last-Modified, and every later response must agree with them.
    """

    def __init__(self, url: str, options: RemoteOptions):
        try:
            import urllib3
        except ImportError:
            raise PeerUnavailableError(
                "reading models over HTTP needs urllib3; pip install urllib3"
            ) from None
        parts = urlsplit(url)
        if parts.scheme not in REMOTE_SCHEMES or not parts.hostname:
            raise InvalidInputError(f"{display_url(url)} is not an http(s) URL with a host")
        self.where = display_url(url)
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self._url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self._headers: dict[str, str] = {"Accept-Encoding": "identity"}
        if parts.username is not None:
            import base64

            token = f"{parts.username}:{parts.password or ''}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        self._options = options
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=options.concurrency,
            block=True,
            retries=False,
            timeout=urllib3.Timeout(connect=options.timeout, read=options.timeout),
        )
        self._errors = urllib3.exceptions
        self.size: int | None = None
        self.validator: tuple[str, str] | None = None  # (header, value) pinned at the first response
        self.requests = 0
        self.bytes = 0
        self.multi_range = options.ranges_per_request > 1

    def warm(self, executor: ThreadPoolExecutor, n: int) -> None:
        """Open ``n`` pooled connections in the background (their TCP and TLS handshakes), so that
        the first walk round does not pay them after the header's round trip. Best effort: a
        failure here shows up, with its message, on the first real request instead."""
        try:
            pool = self._pool.connection_from_url(self._url)
            conns = [pool._get_conn() for _ in range(n)]  # distinct connections, held until open
        except Exception:  # noqa: S110 - only a head start; requests report their own errors
            return

        def connect(conn) -> None:
            try:
                conn.connect()
            except Exception:
                conn.close()
            pool._put_conn(conn)

        for conn in conns:
            executor.submit(connect, conn)

    def get(self, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of the file (``stop`` is clipped to its size when known)."""
        if self.size is not None:
            stop = min(stop, self.size)
        return self._fetch(f"bytes={start}-{stop - 1}", lambda r: self._check(r, start, stop))

    def get_ranges(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Several ``[start, stop)`` ranges in one request (a multipart/byteranges answer); a
        server that answers a multi-range request with the whole file is asked range by range."""
        if len(ranges) == 1 or not self.multi_range:
            return [self.get(a, b) for a, b in ranges]
        spec = "bytes=" + ",".join(f"{a}-{b - 1}" for a, b in ranges)
        try:
            return self._fetch(spec, lambda r: self._check_multi(r, ranges))
        except _NoMultiRange:
            self.multi_range = False
            return [self.get(a, b) for a, b in ranges]

    def _fetch(self, spec: str, parse):
        headers = dict(self._headers, Range=spec)
        if self.validator is not None:
            name, value = self.validator
            headers["If-Match" if name == "etag" else "If-Unmodified-Since"] = value
        last = ""
        for attempt in range(self._options.retries + 1):
            if attempt:
                _backoff(self._options, attempt)
            try:
                response = self._pool.request("GET", self._url, headers=headers, redirect=False)
            except self._errors.HTTPError as exc:
                last = self._describe(exc)
                continue
            self.requests += 1
            if response.status in _RETRY_STATUS:
                last = f"HTTP {response.status}"
                continue
            result = parse(response)
            if result is None:  # a body shorter than announced: the connection dropped
                last = "the connection dropped mid-body"
                continue
            self.bytes += len(response.data)
            return result
        raise ServiceUnavailableError(
            f"{self.where}: {last} after {self._options.retries + 1} tries; check that the server is up "
            "and reachable, or try again later"
        )

    def _check_multi(self, response, ranges: list[tuple[int, int]]) -> list[bytes] | None:
        if response.status == 200:
            raise _NoMultiRange()
        self._status(response)
        ctype = response.headers.get("Content-Type", "")
        body = response.data
        if ctype.startswith("multipart/byteranges"):
            boundary = ctype.partition("boundary=")[2].strip().strip('"')
            parts = _multipart(body, boundary)
            if parts is None:
                return None
        else:  # the server merged the ranges into one
            parts = [(response.headers.get("Content-Range", ""), body)]
        spans = []
        for content_range, data in parts:
            match = _CONTENT_RANGE.fullmatch(content_range)
            if match is None or match.group(3) == "*":
                raise ServiceUnavailableError(f"{self.where}: the server answered an unreadable range")
            self._pin(response.headers, int(match.group(3)))
            first, last = int(match.group(1)), int(match.group(2))
            if len(data) < last - first + 1:
                return None
            spans.append((first, data))
        out = []
        for a, b in ranges:
            for first, data in spans:
                if first <= a and b <= first + len(data):
                    out.append(data[a - first : b - first])
                    break
            else:
                raise ServiceUnavailableError(f"{self.where}: the server left out a requested range")
        return out

    def _describe(self, exc: Exception) -> str:
        e = self._errors
        if isinstance(exc, e.ReadTimeoutError):
            return f"the server stalled (no data for {self._options.timeout:g} s)"
        if isinstance(exc, e.ConnectTimeoutError | e.NewConnectionError | e.NameResolutionError):
            return "the host is unreachable"
        if isinstance(exc, e.SSLError):
            return "the TLS handshake failed"
        return "the connection dropped"

    def _check(self, response, start: int, stop: int) -> bytes | None:
        self._status(response)
        where = self.where
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if match is None or int(match.group(1)) != start or match.group(3) == "*":
            raise ServiceUnavailableError(f"{where}: the server answered a different range; check the server")
        total = int(match.group(3))
        self._pin(response.headers, total)
        body = response.data
        expected = min(stop, total) - start
        if len(body) < expected or int(match.group(2)) != start + expected - 1:
            return None
        return body[:expected]

    def _status(self, response) -> None:
        """Raise the error a non-206 answer means (404, 401/403, 412, 416, 200, anything else)."""
        status, where = response.status, self.where
        if status == 404:
            raise DataNotFoundError(f"{where} was not found (HTTP 404); check the URL")
        if status in (401, 403):
            raise ServiceUnavailableError(
                f"{where}: access denied (HTTP {status}); check the credentials or the presigned URL's expiry"
            )
        if status == 412:
            raise CorruptFileError(
                f"{where} was replaced on the server while it was open (HTTP 412); open it again"
            )
        if status == 416:
            raise CorruptFileError(f"{where} is shorter than its header says (HTTP 416); upload it again")
        if status == 200:
            raise ServiceUnavailableError(
                f"{where}: the server ignores range requests (answered 200 with the whole file); serve it "
                "from a server that supports ranges, or download it and open the local file"
            )
        if status != 206:
            raise ServiceUnavailableError(f"{where}: unexpected HTTP {status}; check the URL and the server")

    def _pin(self, headers, total: int) -> None:
        etag, modified = headers.get("ETag"), headers.get("Last-Modified")
        found = ("etag", etag) if etag else ("last-modified", modified) if modified else None
        if self.size is None:
            self.size, self.validator = total, found
            return
        if total != self.size or (self.validator is not None and found != self.validator):
            raise CorruptFileError(
                f"{self.where} was replaced on the server while it was open; open it again"
            )

    def whole(self) -> bytes:
        """The whole file (a range request for all of it, so the pinned validator still applies)."""
        if self.size is None:
            self.get(0, 1)
        return self.get(0, int(self.size or 0))

    def close(self) -> None:
        self._pool.clear()


class ObjectFile:
    """One object in S3, GCS or Azure Blob read with ranged GETs through obstore (the Rust
    ``object_store`` client), with the credentials the environment configures (``AWS_*``,
    ``GOOGLE_*``, ``AZURE_*`` variables, including ``AWS_ENDPOINT_URL``). Same interface as
    :class:`HttpFile`: the object's size and ETag (or last-modified time) are pinned on first use
    and every later read is made conditional on the ETag."""

    def __init__(self, url: str, options: RemoteOptions):
        try:
            import obstore
            from obstore.store import from_url
        except ImportError:
            raise PeerUnavailableError(
                f"{display_url(url)}: s3://, gs:// and az:// URLs need obstore; pip install obstore "
                "(or open a presigned https:// URL of the object)"
            ) from None
        parts = urlsplit(url)
        segments = parts.path.lstrip("/").split("/")
        if parts.scheme in ("az", "abfs") and len(segments) > 1:  # az://account/container/path
            root, key = f"{parts.scheme}://{parts.netloc}/{segments[0]}", "/".join(segments[1:])
        else:
            root, key = f"{parts.scheme}://{parts.netloc}", "/".join(segments)
        if not parts.netloc or not key:
            raise InvalidInputError(f"{display_url(url)} names no object; use s3://bucket/path/model.pacset")
        self.where = display_url(url)
        self._options = options
        self._obstore = obstore
        self._errors = obstore.exceptions
        try:
            allow_http = os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://")
            self._store = from_url(
                root, client_options={"timeout": f"{options.timeout}s", "allow_http": allow_http}
            )
        except Exception as exc:  # obstore reports bad configuration with its own exception types
            raise InvalidInputError(
                f"{self.where}: cannot configure the object store ({_first_line(exc)})"
            ) from None
        self._key = key
        self.size: int | None = None
        self.validator: tuple[str, str] | None = None
        self.requests = 0
        self.bytes = 0

    def get(self, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of the object (``stop`` clipped to its size). The first read
        learns the size from its answer (a range past the end comes back clipped), so opening
        costs one request, not a HEAD and then a GET."""
        if self.size is not None:
            stop = min(stop, self.size)
        options: Any = {"range": (start, stop)}  # obstore.GetOptions
        if self.validator is not None and self.validator[0] == "etag":
            options["if_match"] = self.validator[1]
        last = ""
        for attempt in range(self._options.retries + 1):
            if attempt:
                _backoff(self._options, attempt)
            try:
                self.requests += 1
                result = self._obstore.get(self._store, self._key, options=options)
                body = bytes(result.bytes())
            except self._errors.GenericError as exc:  # timeouts, 5xx and dropped connections
                last = _first_line(exc)
                continue
            except (self._errors.BaseError, OSError) as exc:
                raise self._refusal(exc) from None
            if self.size is None:
                self.size = int(result.meta["size"])
                stop = min(stop, self.size)
            self._pin(result.meta)
            if len(body) != stop - start:
                raise CorruptFileError(f"{self.where} is shorter than its header says; upload it again")
            self.bytes += len(body)
            return body
        raise ServiceUnavailableError(
            f"{self.where}: the object store did not answer ({last[:120]}) after {self._options.retries + 1} "
            "tries; check the endpoint and network, or try again later"
        )

    multi_range = False

    def warm(self, executor: ThreadPoolExecutor, n: int) -> None:
        """obstore manages its own connections."""

    def get_ranges(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Object stores answer one range per request."""
        return [self.get(a, b) for a, b in ranges]

    def _head(self) -> None:
        try:
            self.requests += 1
            meta = self._obstore.head(self._store, self._key)
        except (self._errors.BaseError, OSError) as exc:
            raise self._refusal(exc) from None
        self.size = int(meta["size"])
        self._pin(meta)

    def _pin(self, meta) -> None:
        etag, modified = meta.get("e_tag"), meta.get("last_modified")
        found = ("etag", etag) if etag else ("last-modified", str(modified)) if modified else None
        if self.validator is None:
            self.validator = found
        elif found != self.validator or int(meta.get("size", self.size)) != self.size:
            raise CorruptFileError(
                f"{self.where} was replaced in the object store while it was open; open it again"
            )

    def _refusal(self, exc: Exception) -> FrugalError:
        e = self._errors
        if isinstance(exc, e.NotFoundError | FileNotFoundError):
            return DataNotFoundError(f"{self.where} was not found; check the bucket and key")
        if isinstance(exc, e.PermissionDeniedError | e.UnauthenticatedError | PermissionError):
            return ServiceUnavailableError(
                f"{self.where}: access denied; check the credentials the environment configures"
            )
        if isinstance(exc, e.PreconditionError | e.NotModifiedError):
            return CorruptFileError(
                f"{self.where} was replaced in the object store while it was open; open it again"
            )
        return ServiceUnavailableError(
            f"{self.where}: the object store refused the read ({_first_line(exc)[:120]})"
        )

    def whole(self) -> bytes:
        if self.size is None:
            self._head()
        return self.get(0, int(self.size or 0))

    def close(self) -> None:
        pass


def _backoff(options: RemoteOptions, attempt: int) -> None:
    """Sleep before retry ``attempt`` (1, 2, ...): ``backoff`` seconds doubling, with jitter."""
    import random

    time.sleep(options.backoff * 2 ** (attempt - 1) * (1 + random.random()))


def _first_line(exc: Exception) -> str:
    """An exception's first line with anything that looks like a query string or secret cut off."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"\?[^\s]*", "", text)


class _NoMultiRange(Exception):
    """The server answered a multi-range request with the whole file."""


def _multipart(body: bytes, boundary: str) -> list[tuple[str, bytes]] | None:
    """The (Content-Range, data) parts of a multipart/byteranges body (each part's length taken from
    its Content-Range, so data that happens to contain the boundary is read correctly); None when
    the body ends early."""
    delim = b"--" + boundary.encode()
    parts: list[tuple[str, bytes]] = []
    pos = body.find(delim)
    while pos >= 0:
        pos += len(delim)
        if body[pos : pos + 2] == b"--":
            return parts
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0:
            return None
        headers = body[pos:head_end].decode("latin-1").split("\r\n")
        content_range = next(
            (h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("content-range:")), ""
        )
        match = _CONTENT_RANGE.fullmatch(content_range)
        if match is None:
            return None
        n = int(match.group(2)) - int(match.group(1)) + 1
        data = body[head_end + 4 : head_end + 4 + n]
        if len(data) < n:
            return None
        parts.append((content_range, data))
        pos = body.find(delim, head_end + 4 + n)
    return None


def parse_header(head: bytes, size: int, where: str) -> tuple[dict[str, Any], int, int, bytes]:
    """The container header in ``head`` (the file's first bytes; ``size`` its length): metadata,
    payload offset, payload length, payload SHA-256. Raises CorruptFileError when damaged."""
    if len(head) < _FIXED.size:
        raise CorruptFileError(f"{where} is truncated ({size} bytes, shorter than a header)")
    magic, version, meta_len, offset, length, sha = _FIXED.unpack(head[: _FIXED.size])
    if magic != MAGIC.ljust(8, b"\0"):
        raise CorruptFileError(f"{where} is not a packed model (magic {magic.rstrip(bytes(1))!r})")
    if version > VERSION:
        raise CorruptFileError(
            f"{where} has format version {version}, newer than this frugalml reads; upgrade"
        )
    end = _FIXED.size + meta_len + 4
    if end > len(head):
        raise CorruptFileError(f"{where}: its header is longer than the bytes read ({end}); pack it again")
    meta, (crc,) = head[_FIXED.size : end - 4], struct.unpack("<I", head[end - 4 : end])
    if zlib.crc32(head[: end - 4]) != crc:
        raise CorruptFileError(f"{where} has a damaged header (checksum mismatch); pack it again")
    if offset < end or size < offset + length:
        raise CorruptFileError(
            f"{where} is truncated: {size} bytes, expected {offset + length}; upload it again"
        )
    try:
        metadata = json.loads(meta)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        metadata = None
    if not isinstance(metadata, dict):
        raise CorruptFileError(f"{where} has unreadable metadata; pack it again")
    return metadata, offset, length, sha


def seals_ok(words: np.ndarray, blocks: np.ndarray, model: ModelMeta) -> np.ndarray:
    """Per block, whether its seal holds (``words``: one row of uint64 words per block)."""
    mult = checksum_multipliers(model.block_size)[:-1]
    sums = (words[:, :-1] * mult).sum(axis=1, dtype=np.uint64)
    ids = np.asarray(blocks, np.uint64) + np.uint64(1)
    return (sums ^ (ids * BLOCK_MIX) ^ np.uint64(model.seal_key)) == words[:, -1]


def coalesce(blocks: list[int]) -> list[tuple[int, int]]:
    """Runs of adjacent blocks as (first, count), in order.

    Examples
    --------
    >>> coalesce([7, 3, 4, 5, 9])
    [(3, 3), (7, 1), (9, 1)]
    """
    runs: list[tuple[int, int]] = []
    for b in sorted(set(blocks)):
        if runs and runs[-1][0] + runs[-1][1] == b:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((b, 1))
    return runs


class HttpStore(CachedStore):
    """Node blocks read with parallel, coalesced range requests into an LRU pool (see the module)."""

    def __init__(
        self,
        remote: HttpFile | ObjectFile,
        meta: dict,
        nodes_offset: int,
        payload_sha: bytes,
        options: RemoteOptions,
        executor: ThreadPoolExecutor | None = None,
    ):
        super().__init__(meta["n_blocks"], meta["block_size"], options.cache_blocks)
        self.remote, self.options = remote, options
        self.model = ModelMeta.from_meta(meta, remote.where)
        self._offset = nodes_offset
        if executor is None and options.concurrency > 1:
            executor = ThreadPoolExecutor(options.concurrency)
        self._executor = executor
        self._pending: dict[int, bytes] = {}
        self.seeded = 0
        self._disk = Path(options.cache_dir) / payload_sha.hex()[:32] if options.cache_dir else None
        if self._disk is not None:
            self._disk.mkdir(parents=True, exist_ok=True)
        self.plan = "blocks" if options.fetch != "whole" else "whole"
        self.disk_hits = 0
        self._whole_pending = options.fetch == "whole"

    def fetch(self, blocks: np.ndarray) -> None:
        """Fetch a walk round's missing ``blocks`` (plus the speculative read-ahead of a short round)."""
        k = self.options.readahead
        if k and len(blocks) < self.options.readahead_below and not self._pending:
            ahead = (np.asarray(blocks)[:, None] + np.arange(1, k + 1)[None, :]).ravel()
            ahead = ahead[ahead < self.n_blocks]
            ahead = ahead[self.block_slot[ahead] < 0]
            room = max(0, self.capacity - len(blocks))
            blocks = np.concatenate([blocks, np.unique(ahead)[:room]])
            blocks = np.unique(blocks)
        super().fetch(blocks)

    # -- planning ---------------------------------------------------------------------------
    def prepare(self, n_rows: int, n_trees: int) -> None:
        """Before a batch: with ``fetch="auto"``, fetch the whole file when the batch is expected to
        need at least ``whole_share`` of the blocks (about one block per tree per row below the
        interleaved tops); with ``fetch="whole"`` fetch it on first use."""
        if self.options.fetch == "blocks" or (self.plan != "blocks" and not self._whole_pending):
            return
        if self.options.fetch == "auto":
            expected = min(self.n_blocks, n_rows * max(1, n_trees // 2))
            if expected < self.options.whole_share * self.n_blocks:
                return
            self.plan = (
                f"whole (a batch of {n_rows} rows is expected to need ~{expected} of {self.n_blocks} blocks)"
            )
        self._fetch_whole()

    def _fetch_whole(self) -> None:
        data = self.remote.whole()
        where = self.remote.where
        head = self._offset
        region = np.frombuffer(data, np.uint8, self.n_blocks * self.block_size, head)
        words = region.view(np.uint64).reshape(self.n_blocks, -1)
        bad = np.nonzero(~seals_ok(words, np.arange(self.n_blocks), self.model))[0]
        if bad.size:
            raise CorruptFileError(f"{where}: block {int(bad[0])} failed its checksum; upload the file again")
        self.pool = region.reshape(self.n_blocks, self.block_size)
        self.block_slot = np.arange(self.n_blocks, dtype=np.int64)
        self.verified = np.zeros(self.n_blocks, np.uint8)
        self.capacity = self.n_blocks
        self._lru.clear()
        self.stats.blocks_fetched += self.n_blocks
        self.stats.bytes_fetched += len(data)
        self.stats.round_trips += 1
        self._whole_pending = False
        if self.plan == "blocks":
            self.plan = "whole"

    def seed(self, data: bytes) -> None:
        """Keep the whole node blocks that came with the header read (``data``: the bytes from the
        node region's start), up to half the cache; their seals are checked as for any fetch."""
        bs = self.block_size
        count = min(len(data) // bs, self.n_blocks, self.capacity // 2)
        if count < 1 or self.plan != "blocks" or self._whole_pending:
            return
        words = np.frombuffer(data, np.uint64, count * bs // 8).reshape(count, bs // 8)
        # a damaged one is left out: fetched again (and refused) if the walk needs it
        good = np.nonzero(seals_ok(words, np.arange(count), self.model))[0]
        self._pending = {int(b): data[b * bs : (b + 1) * bs] for b in good}
        rounds = self.stats.round_trips
        try:
            self.fetch(good)
        finally:
            self._pending = {}
        self.stats.round_trips = rounds  # they came with the header: no round of the walk
        self.seeded = len(good)

    # -- block reads --------------------------------------------------------------------------
    def _read(self, blocks: list[int], slots: list[int]) -> None:
        slot_of = dict(zip(blocks, slots, strict=True))
        if self._pending:
            for b in blocks:
                self._check_and_place([b], slot_of, self._pending[b], b)
            return
        missing = [b for b in blocks if not self._from_disk(b, slot_of[b])]
        runs = coalesce(missing)
        if not runs:
            return
        bs = self.block_size
        per = 1
        if self.remote.multi_range:  # spread the runs over the connections, a few per request
            per = min(self.options.ranges_per_request, -(-len(runs) // self.options.concurrency))
        groups = [runs[i : i + per] for i in range(0, len(runs), per)]

        def one(group: list[tuple[int, int]]) -> list[tuple[tuple[int, int], bytes]]:
            spans = [(self._offset + f * bs, self._offset + (f + c) * bs) for f, c in group]
            return list(zip(group, self.remote.get_ranges(spans), strict=True))

        batches = self._executor.map(one, groups) if self._executor and len(groups) > 1 else map(one, groups)
        for (first, count), body in (item for batch in list(batches) for item in batch):
            if len(body) != count * bs:
                raise CorruptFileError(f"{self.remote.where} is truncated at block {first}; upload it again")
            self._check_and_place(list(range(first, first + count)), slot_of, body, first)

    def _check_and_place(self, blocks: list[int], slot_of: dict[int, int], body: bytes, first: int) -> None:
        """Check the seals of ``blocks`` (consecutive, from ``first``, in ``body``) and put each in its
        slot (and the disk cache)."""
        bs = self.block_size
        words = np.frombuffer(body, np.uint64).reshape(len(blocks), bs // 8)
        ids = np.arange(first, first + len(blocks))
        ok = seals_ok(words, ids, self.model)
        if not ok.all():
            raise CorruptFileError(
                f"{self.remote.where}: block {int(ids[~ok][0])} failed its checksum (damaged, or a "
                "block of another model); upload the file again"
            )
        data = np.frombuffer(body, np.uint8, len(blocks) * bs).reshape(-1, bs)
        self.pool[[slot_of[b] for b in blocks]] = data
        if self._disk is not None:
            for i, b in enumerate(blocks):
                self._to_disk(b, body[i * bs : (i + 1) * bs])

    def _from_disk(self, block: int, slot: int) -> bool:
        if self._disk is None:
            return False
        try:
            data = (self._disk / f"{block}.blk").read_bytes()
        except OSError:
            return False
        if len(data) != self.block_size:
            return False
        words = np.frombuffer(data, np.uint64).reshape(1, -1)
        if not seals_ok(words, np.array([block]), self.model)[0]:  # a damaged cache entry: fetch again
            return False
        self.pool[slot] = np.frombuffer(data, np.uint8)
        self.disk_hits += 1
        return True

    def _to_disk(self, block: int, data: bytes) -> None:
        if self._disk is None:
            return
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=self._disk, prefix=f".{block}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self._disk / f"{block}.blk")
        except OSError:
            Path(tmp).unlink(missing_ok=True)

    @property
    def requests(self) -> int:
        return self.remote.requests

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self.remote.close()


def open_http(url: str, options: RemoteOptions) -> tuple[dict[str, Any], Index, HttpStore]:
    """Read a remote packed file's header and index (one range request, two for a large index) and
    return (metadata, index, a store for its node blocks)."""
    options.check()
    remote: HttpFile | ObjectFile = (
        HttpFile(url, options) if urlsplit(url).scheme in REMOTE_SCHEMES else ObjectFile(url, options)
    )
    executor = ThreadPoolExecutor(options.concurrency) if options.concurrency > 1 else None
    try:
        if executor is None:
            head = remote.get(0, options.head_bytes)
        else:  # the header's request goes first; the pool's threads and handshakes overlap it
            pending = executor.submit(remote.get, 0, options.head_bytes)
            remote.warm(executor, options.concurrency - 1)
            head = pending.result()
        return _open_head(remote, head, options, executor)
    except BaseException:
        if executor is not None:
            executor.shutdown(wait=False)
        remote.close()
        raise


def _open_head(
    remote: HttpFile | ObjectFile, head: bytes, options: RemoteOptions, executor: ThreadPoolExecutor | None
) -> tuple[dict[str, Any], Index, HttpStore]:
    """Parse the header read ``head``: metadata, index, and a store seeded with the node blocks in it."""
    size = int(remote.size or 0)
    meta, offset, length, sha = parse_header(head, size, remote.where)
    ModelMeta.from_meta(meta, remote.where)
    index_length = meta["index_length"]
    expected = index_length + meta["n_blocks"] * meta["block_size"]
    if length != expected:
        raise CorruptFileError(
            f"{remote.where}: payload length {length} does not match its metadata ({expected}); pack it again"
        )
    end = offset + index_length
    index_bytes = head[offset:end] if end <= len(head) else remote.get(offset, end)
    index = Index.parse(index_bytes, meta, remote.where)
    store = HttpStore(remote, meta, end, sha, options, executor)
    if options.fetch != "whole":
        store.seed(head[end:])
    return meta, index, store


def verify_remote(url: str, options: RemoteOptions | None = None) -> None:
    """Download the whole file and check it as ``verify_file`` does a local one (SHA-256, every
    block's seal, every reachable node)."""
    from frugalml.pacset.fileformat import _check_nodes, _check_seals

    meta, index, store = open_http(url, options or RemoteOptions(fetch="whole"))
    try:
        data = store.remote.whole()
        offset = store._offset - meta["index_length"]
        if hashlib.sha256(memoryview(data)[offset:]).digest() != _payload_sha(data):
            raise CorruptFileError(
                f"{store.remote.where} is corrupt (payload checksum mismatch); upload it again"
            )
        model = ModelMeta.from_meta(meta, store.remote.where)
        region = np.frombuffer(data, np.uint8, model.n_blocks * model.block_size, store._offset)
        _check_seals(region, model, store.remote.where)
        _check_nodes(region, model, index, store.remote.where)
    finally:
        store.close()


def remote_info(url: str) -> dict[str, Any]:
    """A remote packed file's header facts and metadata, read with one or two range requests."""
    meta, _, store = open_http(url, RemoteOptions(fetch="blocks", concurrency=1))
    try:
        head = store.remote.get(0, _FIXED.size)
        _, version, _, offset, length, _ = _FIXED.unpack(head)
        return {
            "format_version": version,
            "payload_offset": offset,
            "payload_bytes": length,
            "file_bytes": store.remote.size,
            "validator": store.remote.validator[0] if store.remote.validator else "none",
            **meta,
        }
    finally:
        store.close()


def _payload_sha(data: bytes) -> bytes:
    return _FIXED.unpack(data[: _FIXED.size])[5]


__all__ = [
    "FETCH_POLICIES",
    "HttpFile",
    "HttpStore",
    "ObjectFile",
    "RemoteOptions",
    "coalesce",
    "display_url",
    "is_url",
    "open_http",
    "parse_header",
    "remote_info",
    "verify_remote",
]
