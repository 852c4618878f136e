"""Files that never end half-written: atomic writes, and a versioned, checksummed container header.

The container layout (all integers little-endian)::

    offset  size  field
    0       8     magic (format name, padded with NUL)
    8       4     format version (uint32)
    12      4     metadata length M in bytes (uint32)
    16      8     payload offset (uint64; a multiple of ``align``)
    24      8     payload length (uint64)
    32      32    SHA-256 of the payload
    64      M     metadata, UTF-8 JSON
    64+M    4     CRC-32 of bytes [0, 64+M)
    ...           zero padding up to the payload offset
    P       L     payload

``read_header`` checks everything but the payload hash (cheap; lets a reader map the payload lazily);
``read_container`` also verifies the payload.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError

_FIXED = struct.Struct("<8sIIQQ32s")


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, create_parents: bool = False) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success fsync it and rename it over ``path``.

    If the block raises (or the process dies) ``path`` keeps its previous content, and the
    temporary file is removed (or, after a hard crash, left as an ignorable ``.tmp`` file). A
    missing folder is created only with ``create_parents`` (a mistyped ``-o`` path should fail, not
    grow a directory tree); otherwise it raises DataNotFoundError.

    Examples
    --------
    >>> with atomic_write("model.bin") as f:  # doctest: +SKIP
    ...     f.write(b"...")
    """
    path = Path(path)
    if create_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        require_folder(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # the permissions open() would give, not mkstemp's 0600
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def require_folder(path: str | os.PathLike) -> Path:
    """The folder a file at ``path`` would be written into; DataNotFoundError when it does not exist
    (checked by :func:`atomic_write`, and by commands that check outputs before long work)."""
    folder = Path(path).expanduser().parent
    if not folder.is_dir():
        raise DataNotFoundError(f"the folder {folder} does not exist; create it first or write elsewhere")
    return folder


def check_output(*paths: str | os.PathLike | None) -> None:
    """Refuse, before any work, an output that is a folder itself or whose folder does not exist or
    is not writable (a long run would otherwise end without saving). ``None`` entries are skipped.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> check_output(None, Path(folder) / "out.json")
    >>> check_output(folder)
    Traceback (most recent call last):
    ...
    frugalml.common.errors.InvalidInputError: ... is a folder; name a file to write inside it
    """
    for path in paths:
        if path is None:
            continue
        target = Path(path).expanduser()
        if target.is_dir():
            raise InvalidInputError(f"{target} is a folder; name a file to write inside it")
        folder = require_folder(target)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InvalidInputError(f"the folder {folder} is not writable; write elsewhere")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ContainerHeader:
    """What ``read_header`` learned about a container file."""

    magic: bytes
    version: int
    metadata: dict[str, Any]
    payload_offset: int
    payload_length: int
    payload_sha256: bytes


def write_container(
    path: str | os.PathLike,
    magic: bytes,
    version: int,
    metadata: dict[str, Any],
    payload: bytes | memoryview | Iterable[bytes | memoryview],
    *,
    align: int = 1,
) -> ContainerHeader:
    """Write ``payload`` with a versioned, checksummed header, atomically.

    Parameters
    ----------
    magic : bytes
        Up to 8 bytes naming the format (``b"PACSET"``).
    version : int
        Format version; readers refuse versions newer than they know.
    metadata : dict
        JSON-serialisable description of the payload.
    payload : bytes or iterable of bytes
        The body; an iterable of chunks avoids joining large payloads in memory.
    align : int
        The payload starts at a multiple of this many bytes (e.g. 4096 for page-aligned blocks).
    """
    if len(magic) > 8:
        raise ValueError("magic must be at most 8 bytes")
    chunks = [payload] if isinstance(payload, bytes | bytearray | memoryview) else list(payload)
    digest = hashlib.sha256()
    length = 0
    for chunk in chunks:
        digest.update(chunk)
        length += memoryview(chunk).nbytes
    meta = json.dumps(metadata, sort_keys=True).encode()
    payload_offset = _round_up(_FIXED.size + len(meta) + 4, align)
    fixed = _FIXED.pack(magic.ljust(8, b"\0"), version, len(meta), payload_offset, length, digest.digest())
    head = fixed + meta
    head += struct.pack("<I", zlib.crc32(head))
    with atomic_write(path) as f:
        f.write(head)
        f.write(b"\0" * (payload_offset - len(head)))
        for chunk in chunks:
            f.write(chunk)
    return ContainerHeader(magic, version, metadata, payload_offset, length, digest.digest())


def read_header(path: str | os.PathLike, magic: bytes, max_version: int) -> ContainerHeader:
    """Read and check a container's header (magic, version, header CRC, file length).

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    CorruptFileError
        Wrong magic, a newer version than ``max_version``, a damaged header or a truncated file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist; check the path")
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if hasattr(os, "posix_fadvise"):  # read only the header's pages, no read-ahead into the payload
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        fixed = os.pread(fd, _FIXED.size, 0)
        if len(fixed) < _FIXED.size:
            raise CorruptFileError(f"{path} is truncated ({size} bytes, shorter than a header)")
        file_magic, version, meta_len, offset, length, sha = _FIXED.unpack(fixed)
        if file_magic != magic.ljust(8, b"\0"):
            found = file_magic.rstrip(b"\0")
            raise CorruptFileError(f"{path} is not a {magic.decode()} file (magic {found!r})")
        if _FIXED.size + meta_len + 4 > size:  # checked before reading: the length field is untrusted
            raise CorruptFileError(f"{path} is truncated inside its header; write it again")
        rest = os.pread(fd, meta_len + 4, _FIXED.size)
    finally:
        os.close(fd)
    meta, (crc,) = rest[:meta_len], struct.unpack("<I", rest[meta_len:])
    if zlib.crc32(fixed + meta) != crc:
        raise CorruptFileError(f"{path} has a damaged header (checksum mismatch); write it again")
    if version > max_version:
        raise CorruptFileError(
            f"{path} has format version {version}, newer than this frugalml reads "
            f"({max_version}); upgrade frugalml"
        )
    if offset < _FIXED.size + meta_len + 4:
        raise CorruptFileError(f"{path} has a damaged header (payload inside the header); write it again")
    if size < offset + length:
        raise CorruptFileError(
            f"{path} is truncated: {size} bytes, expected {offset + length}; write it again"
        )
    try:
        metadata = json.loads(meta)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CorruptFileError(f"{path} has unreadable metadata ({exc}); write it again") from None
    if not isinstance(metadata, dict):
        raise CorruptFileError(f"{path} has metadata of the wrong shape (not a JSON object); write it again")
    return ContainerHeader(magic, version, metadata, offset, length, sha)


def read_container(path: str | os.PathLike, magic: bytes, max_version: int) -> tuple[ContainerHeader, bytes]:
    """Read a container whole, verifying the payload's SHA-256; return (header, payload)."""
    header = read_header(path, magic, max_version)
    with open(path, "rb") as f:
        f.seek(header.payload_offset)
        payload = f.read(header.payload_length)
    if hashlib.sha256(payload).digest() != header.payload_sha256:
        raise CorruptFileError(f"{path} is corrupt (payload checksum mismatch); write it again")
    return header, payload


def _round_up(n: int, align: int) -> int:
    return -(-n // align) * align
